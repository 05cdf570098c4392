"""The annotation tool's pictures and files without a window: the canvas view, the strip tiles, saved names."""
import json

import numpy as np
import pytest

from isegm.demo.render import NEGATIVE_CLICK, POSITIVE_CLICK, render_strip_tile, render_view
from isegm.inference.clicker import Click
from isegm.interactive.annotation import object_colour, palette
from isegm.interactive.export import read_object_names, save_annotation
from isegm.utils.vis import draw_probmap

GREY = 100


@pytest.fixture
def image():
    return np.full((40, 60, 3), GREY, np.uint8)


def blank_view(image, **changes):
    arguments = dict(instances=np.zeros(image.shape[:2], np.int64), prob=None, prob_thresh=0.5, alpha=0.5,
                     show_probs=False, clicks=[], click_radius=0, current_colour=(255, 0, 0))
    arguments.update(changes)
    return render_view(image, **arguments)


def test_view_without_anything_is_the_image(image):
    out = blank_view(image)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out, image)


def test_view_blends_finished_objects_in_their_palette_colour(image):
    instances = np.zeros(image.shape[:2], np.int64)
    instances[5:15, 5:15] = 1
    instances[20:30, 30:50] = 2
    out = blank_view(image, instances=instances, alpha=0.5)
    colours = palette(2).astype(np.float32)
    for object_id, (y, x) in ((1, (10, 10)), (2, (25, 40))):
        expected = (0.5 * GREY + 0.5 * colours[object_id]).astype(np.uint8)
        assert np.array_equal(out[y, x], expected)
    assert np.array_equal(out[0, 0], image[0, 0])


def test_view_outlines_the_current_object_and_draws_clicks(image):
    prob = np.zeros(image.shape[:2], np.float32)
    prob[10:30, 10:40] = 0.9
    clicks = [Click(is_positive=True, coords=(20, 20)), Click(is_positive=False, coords=(5, 50))]
    out = blank_view(image, prob=prob, clicks=clicks, click_radius=3, current_colour=(255, 0, 0))
    assert tuple(out[10, 25]) == (255, 0, 0)           # on the outline
    assert tuple(out[20, 25]) == (GREY,) * 3            # inside: not filled
    assert tuple(out[20, 20]) == POSITIVE_CLICK         # disc centres
    assert tuple(out[5, 50]) == NEGATIVE_CLICK
    assert np.array_equal(blank_view(image, prob=prob, clicks=clicks, click_radius=0, current_colour=(255, 0, 0))
                          [20, 20], image[20, 20])      # radius 0: no discs


def test_view_of_probabilities_is_the_heat_map_blend(image):
    prob = np.linspace(0, 1, image.shape[0] * image.shape[1], dtype=np.float32).reshape(image.shape[:2])
    out = blank_view(image, prob=prob, show_probs=True, alpha=0.25)
    assert np.array_equal(out, (0.75 * image + 0.25 * draw_probmap(prob)).astype(np.uint8))
    # without a current object the probability view falls back to the objects
    assert np.array_equal(blank_view(image, show_probs=True), image)


def test_strip_tile_tints_only_above_the_threshold(image):
    prob = np.zeros(image.shape[:2], np.float32)
    prob[:, :30] = 0.8
    prob[:, 30:] = 0.3
    tile = render_strip_tile(image, prob, 0.5, (200, 0, 0))
    assert tile.dtype == np.uint8 and tile.shape == image.shape
    assert tuple(tile[0, 0]) == (int(0.4 * GREY + 0.6 * 200), int(0.4 * GREY), int(0.4 * GREY))
    assert np.array_equal(tile[:, 30:], image[:, 30:])
    assert tuple(render_strip_tile(image, prob, 0.9, (200, 0, 0))[0, 0]) == (GREY,) * 3


def test_object_names_round_trip_through_the_saved_coco_json(image, tmp_path):
    instances = np.zeros(image.shape[:2], np.int64)
    instances[5:15, 5:15] = 1
    instances[20:30, 30:50] = 2
    paths = save_annotation(image, instances, tmp_path / "photo.jpg", tmp_path / "out", {1: "cat", 2: "cat ear"})
    assert read_object_names(paths["coco"]) == {1: "cat", 2: "cat ear"}


@pytest.mark.parametrize("content", [None, "not json", json.dumps({"images": []}), json.dumps({"annotations": 3})])
def test_object_names_of_a_missing_or_malformed_file_are_empty(tmp_path, content):
    path = tmp_path / "photo.json"
    if content is not None:
        path.write_text(content)
    assert read_object_names(path) == {}


def test_object_colour_is_the_palette_entry():
    assert object_colour(3) == tuple(int(v) for v in palette(3)[3])
