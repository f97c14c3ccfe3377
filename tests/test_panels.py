"""extract.panels: grids cut on uniform gutters, panels mapped to caption parts."""

from __future__ import annotations

import numpy as np
import pytest

from extract.panels import find_grid, letter_regions, split_panels
from tests.fixtures.casereport import composite_array, ct_array, encode, radiograph_array

FOUR = "Figure 5. Follow-up. (A) X-ray day 1. (B) CT day 1. (C) X-ray day 9. (D) CT day 9."


@pytest.mark.parametrize("grid", [(1, 2), (2, 1), (2, 2), (1, 3), (3, 1), (2, 3)])
def test_grid_of_panels_found_exactly(grid):
    arr, boxes = composite_array(3, grid)
    assert find_grid(arr) == boxes


def test_panels_take_their_caption_parts_in_reading_order():
    arr, boxes = composite_array(1, (2, 2))
    panels = split_panels(arr, FOUR)
    assert [p.letter for p in panels] == ["A", "B", "C", "D"]
    assert [p.box for p in panels] == boxes
    assert panels[1].caption == "CT day 1"


def test_jpeg_bytes_with_compression_noise_still_split():
    arr, boxes = composite_array(2, (1, 2))
    panels = split_panels(encode(arr, "JPEG", quality=75), "Figure 1. (A) X-ray. (B) CT.")
    assert len(panels) == 2
    for panel, box in zip(panels, boxes, strict=True):
        assert all(abs(a - b) <= 3 for a, b in zip(panel.box, box, strict=True))


def test_black_gutters_split_too():
    arr, boxes = composite_array(4, (1, 2))
    arr[arr == 255] = 0
    assert [p.box for p in split_panels(arr, "Figure 1. (A) X-ray. (B) CT.")] == boxes


def test_not_cut_when_caption_names_no_panels():
    arr, _ = composite_array(1, (1, 2))
    assert split_panels(arr, "Figure 1. Radiographs on days 1 and 5.") == []
    assert len(split_panels(arr, "Figure 1. Radiographs.", require_marks=False)) == 2


def test_kept_whole_when_caption_and_grid_disagree():
    arr, _ = composite_array(1, (1, 3))
    assert split_panels(arr, "Figure 1. (A) X-ray. (B) CT.") == []


def test_single_radiograph_is_one_panel():
    assert split_panels(radiograph_array(0), "Figure 1. (A) X-ray. (B) CT.") == []
    assert split_panels(radiograph_array(0), "", require_marks=False) == []


def test_outer_white_margin_is_not_a_panel():
    arr, boxes = composite_array(5, (1, 2))
    padded = np.pad(arr, 30, constant_values=255)
    panels = split_panels(padded, "Figure 1. (A) X-ray. (B) CT.")
    assert len(panels) == 2
    assert panels[0].box[0] <= 30 and panels[1].box[2] >= 30 + boxes[1][2]


@pytest.mark.parametrize("gutter", [3, 6])
def test_narrow_gutters_split(gutter):
    arr, boxes = composite_array(6, (1, 2), gutter=gutter)
    wide = np.pad(arr, ((0, 0), (0, 1030 - arr.shape[1])), constant_values=255)
    assert [p.box[:2] for p in split_panels(wide, "Figure 1. (A) X-ray. (B) CT.")] == [
        b[:2] for b in boxes]


def test_six_pixel_black_gutter_in_a_1030_pixel_figure_splits():
    left, right = radiograph_array(1, (400, 512)), ct_array(2, (400, 512))
    arr = np.hstack([left, np.zeros((400, 6), np.uint8), right])
    assert arr.shape[1] == 1030
    panels = split_panels(arr, "Figure 1. (A) X-ray. (B) CT.")
    assert [p.box for p in panels] == [(0, 0, 512, 400), (518, 0, 1030, 400)]


@pytest.mark.parametrize("level", [128, 200, 60])
def test_grey_gutters_split(level):
    arr, boxes = composite_array(8, (2, 2))
    arr[200:212, :] = level
    arr[:, 200:212] = level
    assert [p.box for p in split_panels(arr, FOUR)] == boxes


def test_gutter_narrower_than_three_pixels_is_not_a_gutter():
    arr, _ = composite_array(9, (1, 2), gutter=2)
    assert split_panels(arr, "Figure 1. (A) X-ray. (B) CT.") == []


def test_more_than_26_panels_keeps_the_figure_whole():
    arr, boxes = composite_array(1, (5, 6))
    assert len(find_grid(arr)) == len(boxes) == 30
    assert split_panels(arr, "", require_marks=False) == []
    assert len(split_panels(composite_array(1, (4, 6))[0], "", require_marks=False)) == 24


def test_panel_letters_past_z_stay_letters():
    letters = [letter for letter, _ in letter_regions(72, "Figure 1. A vector chart.")]
    assert letters[:2] == ["A", "B"] and letters[25:28] == ["Z", "AA", "AB"]
    assert all(letter.isalpha() and letter.isupper() for letter in letters)
    assert len(set(letters)) == 72


def test_panel_letter_between_two_gutters_joins_its_panel():
    arr, boxes = composite_array(3, (1, 2), gutter=30)
    arr[5:25, 216:224] = 0  # a letter "B" printed in the gutter, 6 px left of panel B
    panels = split_panels(arr, "Figure 1. (A) X-ray. (B) CT.")
    assert [p.box for p in panels] == [boxes[0], (216, 0, boxes[1][2], 200)]


def test_rgb_figures_split_like_their_grey_version():
    arr, boxes = composite_array(2, (2, 2))
    rgb = np.stack([arr, arr, arr], axis=2)
    assert [p.box for p in split_panels(rgb, FOUR)] == boxes


def test_sixteen_bit_grey_bytes_are_scaled_not_clipped_to_white():
    import io

    from PIL import Image

    from extract.panels import to_gray

    values = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    out = io.BytesIO()
    Image.fromarray(values).save(out, "PNG")
    grey = to_gray(out.getvalue())
    assert grey.dtype == np.uint8 and grey.min() == 0 and 250 <= grey.max() <= 255
    assert 100 < grey.mean() < 160  # a ramp, not a white square
