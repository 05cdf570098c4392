"""The interactive predictor: owns the image, the previous prediction and the zoom-in state of one session."""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from ...signals import check_granularity, tokenize_phrases
from ..clicker import Click, Clicker
from ..precision import reduced_precision, resolve_precision
from ..transforms import AddHorizontalFlip, LimitLongestSide, SigmoidForPred, ZoomIn


@dataclass
class ModelRequest:
    """One session's transformed model input: B x C x h x w image (B = 2 with flip), its click lists, signal."""
    image: torch.Tensor
    clicks_lists: List[List[Click]]
    gra: Optional[float]
    tokens: Optional[torch.Tensor]


def check_rgb_image(image) -> np.ndarray:
    """Return ``image`` as an H x W x 3 uint8 array, or raise ``ValueError`` saying what is wrong with it."""
    if isinstance(image, torch.Tensor):
        raise ValueError("set_input_image takes an H x W x 3 uint8 numpy array (RGB), not a tensor")
    image = np.asarray(image)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise ValueError(f"expected an RGB image of shape H x W x 3, got a grayscale image of shape {image.shape}; "
                         f"convert it with cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)")
    if image.ndim == 3 and image.shape[2] == 4:
        raise ValueError(f"expected an RGB image of shape H x W x 3, got an RGBA image of shape {image.shape}; "
                         f"drop the alpha channel with image[..., :3]")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape H x W x 3, got an array of shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image (values 0..255), got dtype {image.dtype}")
    if min(image.shape[:2]) < 1:
        raise ValueError(f"the image is empty (shape {image.shape})")
    return image


# A CPU runs the model on at most this many images at a time (a click with the flip): per image, batches of 2-4 were
# the fastest on a 2-core Xeon with AMX (448 px, ViT-B: bf16 0.149/0.146 s at 2/4 images, 0.194 s at 8, 0.261 s at
# 16; fp32 0.614, 0.635, 0.663, 0.747 s), larger ones leave the caches for memory; and with 2 a batch of flipped
# clicks runs the very kernels of one click at a time (bfloat16 results depend on the batch size). A GPU takes the
# whole batch.
CPU_IMAGES_PER_FORWARD = 2


class BasePredictor:
    """Predict a probability map from the clicks so far, with optional zoom-in, test-time flip and control signal.

    Usage::

        predictor.set_input_image(rgb_uint8)          # H x W x 3
        clicker.add_click(Click(True, (y, x)))
        probs = predictor.get_prediction(clicker, gra=0.5)   # H x W float32 in [0, 1]
    """

    def __init__(self, model, device: Union[str, torch.device], net_clicks_limit: Optional[int] = None,
                 with_flip: bool = False, zoom_in: Optional[ZoomIn] = None, max_size: Optional[int] = None,
                 precision: str = "fp32", **kwargs):
        """``precision``: ``'fp32'`` (default, matches the published outputs), ``'bf16'`` (bfloat16 activations and
        products; probabilities differ from fp32 by a few 1e-2 at most) or ``'auto'`` (bf16 where the device
        multiplies bfloat16 natively, else fp32); see :mod:`isegm.inference.precision`. The model is not modified;
        bfloat16 weights are made once per model. ``self.precision`` is the mode in use (``auto`` resolved)."""
        if kwargs:
            raise TypeError(f"unexpected predictor parameters: {', '.join(sorted(kwargs))}")
        self.net = model
        self.device = torch.device(device)
        self.precision = resolve_precision(precision, self.device)
        self.net_clicks_limit = net_clicks_limit
        self.with_flip = with_flip
        self.zoom_in = zoom_in
        self.transforms = [zoom_in] if zoom_in is not None else []
        if max_size is not None:
            self.transforms.append(LimitLongestSide(max_size=max_size))
        self.transforms.append(SigmoidForPred())
        if with_flip:
            self.transforms.append(AddHorizontalFlip())
        self.max_size = max_size
        self.original_image: Optional[torch.Tensor] = None
        self.prev_prediction: Optional[torch.Tensor] = None

    def set_input_image(self, image: np.ndarray) -> None:
        """Start a new session on an H x W x 3 uint8 RGB image (resets the previous prediction and zoom-in)."""
        image = check_rgb_image(image)
        for transform in self.transforms:
            transform.reset()
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)
        self.original_image = tensor.unsqueeze(0).to(self.device)
        self.prev_prediction = torch.zeros_like(self.original_image[:, :1])

    def get_prediction(self, clicker: Clicker, prev_mask: Optional[torch.Tensor] = None,
                       gra: Optional[float] = None, phrase: Optional[Union[str, torch.Tensor]] = None) -> np.ndarray:
        """Probability map (H x W float32) for the clicks of ``clicker``.

        Args:
            clicker: the clicks so far.
            prev_mask: 1 x 1 x H x W previous probabilities; default: this session's last prediction.
            gra: granularity in [0, 1] (slider), or None.
            phrase: a part name such as ``"head"`` (or 1 x 77 CLIP tokens), or None.
        """
        request = self.prepare(clicker, prev_mask=prev_mask, gra=gra, phrase=phrase)
        previous = self.prev_prediction
        probs = self.finish(self.forward([request])[0])
        if self.zoom_in is not None and self.zoom_in.check_possible_recalculation():
            self.prev_prediction = previous  # the whole-image prediction is discarded, as published
            return self.get_prediction(clicker, gra=gra, phrase=phrase)
        return probs

    def spawn(self, with_flip: Optional[bool] = None) -> "BasePredictor":
        """A new predictor with the same model and settings (the test-time flip as given, by default as here) and its
        own (empty) session state."""
        zoom_in = None if self.zoom_in is None else ZoomIn(**self.zoom_in.params)
        with_flip = self.with_flip if with_flip is None else with_flip
        return BasePredictor(self.net, self.device, net_clicks_limit=self.net_clicks_limit, with_flip=with_flip,
                             zoom_in=zoom_in, max_size=self.max_size, precision=self.precision)

    def prepare(self, clicker: Clicker, prev_mask: Optional[torch.Tensor] = None, gra: Optional[float] = None,
                phrase: Optional[Union[str, torch.Tensor]] = None) -> "ModelRequest":
        """Validate the request and apply the input transforms (zoom-in, flip); see :meth:`get_prediction`."""
        if self.original_image is None:
            raise ValueError("call set_input_image before get_prediction")
        if gra is not None and phrase is not None:
            raise ValueError("give a granularity or a phrase, not both")
        if gra is not None:
            gra = check_granularity(gra)
        clicks = clicker.get_clicks()
        self._check_clicks(clicks)
        tokens = self._phrase_tokens(phrase)
        input_image = self.original_image
        if prev_mask is None:
            prev_mask = self.prev_prediction
        elif not isinstance(prev_mask, torch.Tensor) or tuple(prev_mask.shape) != tuple(self.prev_prediction.shape):
            raise ValueError(f"prev_mask must be a tensor of shape {tuple(self.prev_prediction.shape)} "
                             f"(probabilities), got {type(prev_mask).__name__} {tuple(getattr(prev_mask, 'shape', ()))}")
        if getattr(self.net, "with_prev_mask", False):
            input_image = torch.cat((input_image, prev_mask.to(self.device, torch.float32)), dim=1)
        image_nd, clicks_lists = input_image, [clicks]
        for transform in self.transforms:
            image_nd, clicks_lists = transform.transform(image_nd, clicks_lists)
        return ModelRequest(image_nd, clicks_lists, gra, tokens)

    @property
    def images_per_call(self) -> Optional[int]:
        """How many images :meth:`forward` gives the model at a time: ``CPU_IMAGES_PER_FORWARD`` on a CPU, all of
        them (None) on a GPU."""
        return CPU_IMAGES_PER_FORWARD if self.device.type == "cpu" else None

    def forward(self, requests: List["ModelRequest"]) -> List[torch.Tensor]:
        """Run the model once on several prepared requests (same crop size and signal kind) and return each
        request's logits, resized to its input."""
        images = torch.cat([r.image for r in requests])
        points = self.get_points_nd([clicks for r in requests for clicks in r.clicks_lists])
        gras = [r.gra for r in requests]
        gra_nd = None
        if any(g is not None for g in gras):
            if any(g is None for g in gras):
                raise ValueError("a batch mixes requests with and without a granularity")
            gra_nd = torch.tensor([g for r in requests for g in [r.gra] * r.image.shape[0]], dtype=torch.float32,
                                  device=self.device)
        tokens = requests[0].tokens
        if any((r.tokens is None) != (tokens is None) or (tokens is not None and not torch.equal(r.tokens, tokens))
               for r in requests):
            raise ValueError("a batch mixes different phrases")
        chunk = self.images_per_call or images.shape[0]
        with torch.inference_mode(), reduced_precision(self.net, self.precision):
            logits = torch.cat([
                self.net(images[i:i + chunk], points[i:i + chunk], None if gra_nd is None else gra_nd[i:i + chunk],
                         tokens)["instances"].float()
                for i in range(0, images.shape[0], chunk)])
        out = []
        for request, part in zip(requests, logits.split([r.image.shape[0] for r in requests])):
            if part.shape[2:] != request.image.shape[2:]:
                part = F.interpolate(part, size=request.image.shape[2:], mode="bilinear", align_corners=True)
            out.append(part)
        return out

    def finish(self, logits: torch.Tensor) -> np.ndarray:
        """Apply the inverse transforms to this session's logits, keep them as the previous prediction and return
        the H x W probability map."""
        prediction = logits
        for transform in reversed(self.transforms):
            prediction = transform.inv_transform(prediction)
        self.prev_prediction = prediction
        return prediction.cpu().numpy()[0, 0].astype(np.float32)

    def _check_clicks(self, clicks: Sequence[Click]) -> None:
        height, width = self.original_image.shape[2:]
        for click in clicks:
            try:
                y, x = (float(v) for v in click.coords)
            except (TypeError, ValueError):
                raise ValueError(f"click {click.indx} has coordinates {click.coords!r}; expected (y, x) numbers") from None
            if not (0 <= y < height and 0 <= x < width):
                raise ValueError(f"click {click.indx} at (y={y}, x={x}) is outside the {height} x {width} image")

    def _phrase_tokens(self, phrase) -> Optional[torch.Tensor]:
        if phrase is None:
            return None
        encoder = getattr(self.net, "phrase_encoder", None)
        if encoder is None:
            raise ValueError("this model has no phrase input")
        if isinstance(phrase, str):
            if not phrase.strip():
                raise ValueError("the phrase is empty")
            phrase = tokenize_phrases(phrase)
        elif not isinstance(phrase, torch.Tensor) or phrase.ndim != 2:
            raise ValueError(f"phrase must be a string or a 1 x 77 tensor of CLIP tokens, got {type(phrase).__name__}")
        return phrase.to(self.device)

    def get_points_nd(self, clicks_lists: List[List[Click]]) -> torch.Tensor:
        """B x 2N x 3 tensor of (y, x, order): positives first, then negatives, each padded with (-1, -1, -1)."""
        clicks_lists = [clicks[:self.net_clicks_limit] for clicks in clicks_lists]
        num_pos = [sum(c.is_positive for c in clicks) for clicks in clicks_lists]
        num_neg = [len(clicks) - n for clicks, n in zip(clicks_lists, num_pos)]
        num_points = max(1, max(num_pos + num_neg))
        rows = []
        for clicks in clicks_lists:
            pos = [c.coords_and_indx for c in clicks if c.is_positive]
            neg = [c.coords_and_indx for c in clicks if not c.is_positive]
            rows.append(pos + [(-1, -1, -1)] * (num_points - len(pos)) + neg + [(-1, -1, -1)] * (num_points - len(neg)))
        return torch.tensor(rows, dtype=torch.float32, device=self.device)

    def predict_granularities(self, clicker: Clicker, granularities: Sequence[float],
                              prev_mask: Optional[torch.Tensor] = None) -> List[np.ndarray]:
        """Probability maps (H x W float32 each) of the same clicks at several granularities, from one batched
        forward. The predictor's state (previous prediction, zoom-in) is left as it was."""
        if len(granularities) == 0:
            raise ValueError("predict_granularities needs at least one granularity")
        before = self.get_states()
        request = self.prepare(clicker, prev_mask, gra=granularities[0])
        prepared = self.get_states()
        requests = [ModelRequest(request.image, request.clicks_lists, check_granularity(g), None)
                    for g in granularities]
        maps = []
        for gra, logits in zip(granularities, self.forward(requests)):
            self.set_states(prepared)
            probs = self.finish(logits)
            if self.zoom_in is not None and self.zoom_in.check_possible_recalculation():
                self.set_states(before)  # as get_prediction: this granularity's crop changes, predict it again
                probs = self.get_prediction(clicker, prev_mask, gra=gra)
            maps.append(probs)
        self.set_states(before)
        return maps

    def get_states(self) -> dict:
        return {"transform_states": [t.get_state() for t in self.transforms],
                "prev_prediction": self.prev_prediction.clone()}

    def set_states(self, states: dict) -> None:
        for state, transform in zip(states["transform_states"], self.transforms):
            transform.set_state(state)
        self.prev_prediction = states["prev_prediction"]
