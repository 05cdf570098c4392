import numpy as np
import pytest

from isegm.inference.clicker import Click, Clicker


def test_first_click_is_centre_of_object():
    gt = np.zeros((21, 31), np.int32)
    gt[5:16, 10:21] = 1  # 11 x 11 square centred at (10, 15)
    clicker = Clicker(gt_mask=gt)
    clicker.make_next_click(np.zeros_like(gt, bool))
    click = clicker.get_clicks()[0]
    assert click.is_positive and click.coords == (10, 15) and click.indx == 0


def test_padding_makes_image_border_count_as_background():
    gt = np.zeros((10, 30), np.int32)
    gt[:, :6] = 1  # touches the left border: with padding, the peak is 3 px in, not at the border
    clicker = Clicker(gt_mask=gt)
    clicker.make_next_click(np.zeros_like(gt, bool))
    assert clicker.get_clicks()[0].coords[1] in (2, 3)
    assert clicker.get_clicks()[0].coords[1] != 0


def test_row_major_tie_break():
    gt = np.zeros((20, 20), np.int32)
    gt[2:5, 2:5] = 1
    gt[2:5, 12:15] = 1  # two identical squares: the first in row-major order wins
    gt[12:15, 2:5] = 1
    clicker = Clicker(gt_mask=gt)
    clicker.make_next_click(np.zeros_like(gt, bool))
    assert clicker.get_clicks()[0].coords == (3, 3)


def test_equal_error_peaks_give_a_negative_click():
    gt = np.zeros((20, 40), np.int32)
    gt[5:10, 5:10] = 1  # false negative square
    pred = np.zeros_like(gt, bool)
    pred[5:10, 25:30] = True  # false positive square of the same size
    clicker = Clicker(gt_mask=gt)
    clicker.make_next_click(pred)
    click = clicker.get_clicks()[0]
    assert not click.is_positive and click.coords == (7, 27)


def test_clicked_pixels_are_not_chosen_again_and_ignore_pixels_skipped():
    gt = np.zeros((9, 9), np.int32)
    gt[3:6, 3:6] = 1
    gt[0, :] = -1
    clicker = Clicker(gt_mask=gt, init_clicks=[Click(True, (4, 4))])
    pred = np.zeros_like(gt, bool)
    pred[0, :] = True  # a false positive row, but ignored: it must not attract a negative click
    clicker.make_next_click(pred)
    second = clicker.get_clicks()[1]
    assert second.coords == (3, 3) and second.is_positive and second.indx == 1
    assert clicker.not_clicked_map[4, 4] == False  # noqa: E712


def test_simulator_needs_gt_and_matching_shape():
    with pytest.raises(ValueError, match="ground-truth"):
        Clicker().make_next_click(np.zeros((3, 3), bool))
    with pytest.raises(ValueError, match="does not match"):
        Clicker(gt_mask=np.ones((3, 3))).make_next_click(np.zeros((4, 4), bool))
