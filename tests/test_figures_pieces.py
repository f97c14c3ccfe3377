"""Placements that touch: strips of one image are merged, distinct panels edge to edge are not."""

from __future__ import annotations

import numpy as np
import pymupdf

from extract.pdf import extract_figures
from tests.fixtures.casereport import ct_array, encode, radiograph_array

CAPTION = "Figure 1. (A) Chest radiograph on admission. (B) Axial CT on day 2."


def _pdf(placements: list[tuple[tuple[float, float, float, float], bytes]], caption: str) -> bytes:
    doc = pymupdf.open()
    page = doc.new_page()
    bottom = max(rect[3] for rect, _ in placements)
    for rect, stream in placements:
        page.insert_image(pymupdf.Rect(rect), stream=stream)
    page.insert_textbox(pymupdf.Rect(72, bottom + 6, 540, bottom + 40), caption, fontsize=8)
    return doc.tobytes()


def test_two_panels_placed_edge_to_edge_stay_two_panels_with_their_bytes():
    xray, ct = encode(radiograph_array(1, (288, 288))), encode(ct_array(2))
    data = _pdf([((72, 72, 300, 300), xray), ((300, 72, 528, 300), ct)], CAPTION)
    figures = extract_figures(data)
    assert [(f.panel, f.method) for f in figures] == [("A", "embedded"), ("B", "embedded")]
    assert figures[0].image == xray and figures[1].image == ct
    assert figures[1].panel_caption.startswith("Axial CT")


def test_portrait_panels_edge_to_edge_in_a_row_stay_apart():
    a, b = encode(radiograph_array(3)), encode(radiograph_array(4))  # 288x320 each
    data = _pdf([((72, 72, 252, 272), a), ((252, 72, 432, 272), b)], CAPTION)
    assert [f.panel for f in extract_figures(data)] == ["A", "B"]


def test_image_stored_as_strips_stacked_or_side_by_side_is_one_figure():
    arr = radiograph_array(5, (320, 320))
    bands = [encode(arr[k * 80:(k + 1) * 80], "PNG") for k in range(4)]
    stacked = _pdf([((100, 100 + 60 * k, 340, 160 + 60 * k), band)
                    for k, band in enumerate(bands)], "Figure 1. Chest radiograph.")
    (figure,) = extract_figures(stacked)
    assert figure.method == "merged" and np.allclose(figure.bbox, (100, 100, 340, 340), atol=1)
    columns = [encode(np.ascontiguousarray(arr[:, k * 80:(k + 1) * 80]), "PNG") for k in range(4)]
    in_a_row = _pdf([((100 + 60 * k, 100, 160 + 60 * k, 340), col)
                     for k, col in enumerate(columns)], "Figure 1. Chest radiograph.")
    (figure,) = extract_figures(in_a_row)
    assert figure.method == "merged" and np.allclose(figure.bbox, (100, 100, 340, 340), atol=1)


def test_more_than_26_separate_pieces_under_one_caption_stay_one_figure():
    tile = encode(radiograph_array(6, (64, 64)), "PNG")
    placements = [((72 + 60 * (k % 6), 72 + 60 * (k // 6), 122 + 60 * (k % 6),
                    122 + 60 * (k // 6)), tile) for k in range(30)]
    data = _pdf(placements, "Figure 1. (A) Thirty chest radiographs, (B) one per day.")
    figures = extract_figures(data)
    assert len(figures) == 1 and figures[0].panel in (None, "")
