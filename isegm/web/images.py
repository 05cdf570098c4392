"""Images a browser sends: read any upload into H x W x 3 uint8 RGB, or say in one line why not."""
import warnings
from pathlib import Path
from typing import List, Tuple, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

#: the most pixels an upload may decode to (80 megapixels, below Pillow's decompression-bomb limit); more is refused
#: before decoding
MAX_PIXELS = 80 * 2 ** 20


class ImageInputError(ValueError):
    """An upload that is not a usable image; the message is shown in the page."""


def read_upload(path: Union[str, Path], max_side: int) -> Tuple[np.ndarray, List[str]]:
    """The image file at ``path`` as H x W x 3 uint8 RGB whose longer side is at most ``max_side``, and notes on
    what was changed (converted from grayscale or RGBA, resized). Raises :class:`ImageInputError`."""
    name = Path(path).name
    notes = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise ImageInputError(f"{name}: {width} x {height} pixels is too large to open "
                                          f"(at most {MAX_PIXELS // 2 ** 20} megapixels)")
                image = ImageOps.exif_transpose(image)
                mode = image.mode
                if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
                    background = Image.new("RGBA", image.size, (255, 255, 255, 255))
                    image = Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
                    notes.append(f"converted from {mode} (transparent pixels on white)")
                elif mode in ("I;16", "I;16B", "I;16L", "I"):
                    array = np.asarray(image, dtype=np.float64)
                    top = max(float(array.max()), 1.0)
                    image = Image.fromarray((array * (255.0 / top)).astype(np.uint8)).convert("RGB")
                    notes.append(f"converted from {mode} (16-bit grey, scaled to 8 bits)")
                elif mode != "RGB":
                    image = image.convert("RGB")
                    notes.append(f"converted from {mode}" + (" (grayscale)" if mode in ("L", "1") else ""))
                array = np.array(image, dtype=np.uint8)
    except ImageInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageInputError(f"{name}: too large to open ({_first_line(error)})") from None
    except UnidentifiedImageError as error:
        raise ImageInputError(f"{name}: not a readable image ({_first_line(error)})") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageInputError(f"{name}: not a readable image ({_first_line(error)})") from None
    if array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise ImageInputError(f"{name}: not a usable image (decoded shape {array.shape})")
    return limit_longest_side(array, max_side, notes)


def limit_longest_side(image: np.ndarray, max_side: int, notes: List[str]) -> Tuple[np.ndarray, List[str]]:
    """``image`` resized (area interpolation) so that its longer side is at most ``max_side``."""
    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image, notes
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = np.array(Image.fromarray(image).resize(size, Image.Resampling.BOX))
    notes.append(f"resized from {width} x {height} to {size[0]} x {size[1]} (longest side {max_side})")
    return resized, notes


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
