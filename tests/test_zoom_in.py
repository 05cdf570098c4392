import numpy as np
import torch

from isegm.inference.clicker import Click
from isegm.inference.transforms import AddHorizontalFlip, ZoomIn


def test_first_click_uses_whole_image_resized_to_target():
    zoom = ZoomIn(skip_clicks=-1, target_size=(448, 448))
    image = torch.rand(1, 4, 300, 400)
    out, clicks = zoom.transform(image, [[Click(True, (150, 200), indx=0)]])
    assert out.shape == (1, 4, 448, 448) and zoom._object_roi == (0, 299, 0, 399) and zoom.image_changed
    assert clicks[0][0].coords == (448 * 150 / 300, 448 * 200 / 400)


def test_crop_follows_previous_prediction_with_min_size_and_expansion():
    zoom = ZoomIn(skip_clicks=-1, target_size=(224, 224))
    image = torch.rand(1, 4, 600, 800)
    zoom.transform(image, [[Click(True, (310, 410), indx=0)]])  # whole image first
    probs = np.zeros((1, 1, 600, 800), np.float32)
    probs[0, 0, 300:320, 400:420] = 0.9
    zoom._prev_probs = probs
    out, clicks = zoom.transform(image, [[Click(True, (310, 410), indx=0)]])
    # box rows 300..319, cols 400..419; 1.4x is below the 200-px minimum; Python rounding of x.5 to even
    assert zoom._object_roi == (210, 410, 310, 510) and zoom.image_changed
    assert out.shape == (1, 4, 224, 224)
    assert clicks[0][0].coords == (224 * (310 - 210) / 201, 224 * (410 - 310) / 201)


def test_crop_is_kept_while_clicks_inside_and_iou_high():
    zoom = ZoomIn(skip_clicks=-1, target_size=(224, 224))
    image = torch.rand(1, 4, 600, 800)
    zoom._object_roi = (200, 420, 300, 520)
    zoom._prev_probs = np.zeros((1, 1, 600, 800), np.float32)
    zoom._prev_probs[0, 0, 300:320, 400:420] = 0.9
    zoom.transform(image, [[Click(True, (310, 410), indx=0)]])
    assert zoom._object_roi == (200, 420, 300, 520) and not zoom.image_changed
    zoom.transform(image, [[Click(True, (310, 410), indx=0), Click(True, (100, 100), indx=1)]])
    assert zoom._object_roi != (200, 420, 300, 520) and zoom.image_changed  # a positive click left the crop


def test_inverse_pastes_crop_into_zeros():
    zoom = ZoomIn(skip_clicks=-1, target_size=(224, 224))
    zoom._object_roi = (10, 59, 20, 69)
    zoom._prev_probs = np.zeros((1, 1, 100, 100), np.float32)
    full = zoom.inv_transform(torch.ones(1, 1, 224, 224))
    assert full.shape == (1, 1, 100, 100)
    torch.testing.assert_close(full[0, 0, 10:60, 20:70], torch.ones(50, 50))
    assert full[0, 0, :10].sum() == 0 and full[0, 0, :, 70:].sum() == 0


def test_flip_averages_mirrored_halves():
    flip = AddHorizontalFlip()
    image = torch.arange(12.0).view(1, 1, 3, 4)
    doubled, clicks = flip.transform(image, [[Click(True, (1, 0), indx=0)]])
    assert doubled.shape == (2, 1, 3, 4) and clicks[1][0].coords == (1, 3)
    logits = torch.stack([torch.zeros(1, 3, 4), torch.ones(1, 3, 4)])
    assert torch.equal(flip.inv_transform(logits), torch.full((1, 1, 3, 4), 0.5))


def test_zoom_in_matches_published_reference():
    """Crop boxes, transformed clicks, crop images and pasted-back maps equal those of the published ZoomIn driven
    by a synthetic previous prediction (fixtures/published_parity.npz, zoomunit__*)."""
    import cv2

    from helpers import FIXTURES
    from isegm.inference.clicker import Clicker

    ref = np.load(FIXTURES / "published_parity.npz")
    rgb = ref["image"]
    height, width = rgb.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (200, 150), (80, 55), 0, 0, 360, 1, -1)
    cv2.rectangle(mask, (235, 190), (265, 265), 1, -1)
    synthetic = torch.from_numpy(mask.astype(np.float32) * 0.9 + 0.05)[None, None]
    image = torch.cat([torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255, torch.zeros(1, 1, height, width)], 1)
    zoom = ZoomIn(skip_clicks=-1, target_size=(448, 448))
    clicker = Clicker()
    for k, (positive, coords) in enumerate([(True, (150, 200)), (False, (100, 120)), (True, (200, 260))], 1):
        clicker.add_click(Click(positive, coords))
        crop, clicks = zoom.transform(image, [clicker.get_clicks()])
        rmin, rmax, cmin, cmax = zoom._object_roi
        prediction = torch.nn.functional.interpolate(synthetic[:, :, rmin:rmax + 1, cmin:cmax + 1],
                                                     size=crop.shape[2:], mode="bilinear", align_corners=True)
        pasted = zoom.inv_transform(prediction)
        key = f"zoomunit__click{k}__"
        assert tuple(zoom._object_roi) == tuple(ref[key + "roi"])
        assert zoom.image_changed == bool(ref[key + "image_changed"])
        np.testing.assert_allclose([[c.coords[0], c.coords[1], c.is_positive] for c in clicks[0]], ref[key + "clicks"],
                                   rtol=0, atol=1e-9)
        # crop and paste-back are bilinear resamplings of values in [0, 1]: the published code and ours differ by
        # float32 rounding (a few steps of 6e-8); a box or size off by one pixel moves values by the image's
        # gradient (1e-2 and more), so 1e-6 tells them apart on any CPU
        np.testing.assert_allclose(crop[:, :, 3::16, 3::16].numpy(), ref[key + "roi_image"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(pasted[0, 0, 5::10, 5::10].numpy(), ref[key + "inv"], rtol=0, atol=1e-6)
    assert zoom._object_roi != (0, height - 1, 0, width - 1)  # the crop path was exercised
