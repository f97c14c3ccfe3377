"""Pages turned by /Rotate: figures found, cut and reported in the page's upright coordinates."""

from __future__ import annotations

import io

import numpy as np
import pymupdf
from PIL import Image

from extract.pdf import extract_figures
from extract.render import debug_pages
from tests.fixtures.casereport import ct_array, encode, radiograph_array


def _landscape_pdf() -> tuple[bytes, np.ndarray]:
    """A /Rotate 90 page drawn sideways so it reads upright: a JPEG radiograph (A) and a CT
    stored as two PNG strips (B, rendered), one caption under both."""
    ct = ct_array(1, (288, 288))
    doc = pymupdf.open()
    page = doc.new_page()
    page.set_rotation(90)
    back = page.derotation_matrix
    page.insert_image(pymupdf.Rect(100, 80, 400, 380) * back, stream=encode(radiograph_array(2)),
                      rotate=90)
    for k in range(2):
        strip = ct[k * 144:(k + 1) * 144]
        page.insert_image(pymupdf.Rect(440, 80 + 150 * k, 740, 230 + 150 * k) * back,
                          stream=encode(strip, "PNG"), rotate=90)
    page.insert_textbox(pymupdf.Rect(100, 390, 740, 440) * back,
                        "Figure 1. (A) Chest radiograph on admission. (B) Axial CT on day 2.",
                        fontsize=9, rotate=90)
    return doc.tobytes(), ct


def _grey(data: bytes, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L").resize(size), dtype=float)


def test_landscape_page_figures_are_found_with_caption_in_shown_coordinates():
    data, ct = _landscape_pdf()
    figures = extract_figures(data)
    assert [(f.label, f.panel) for f in figures] == [("Figure 1", "A"), ("Figure 1", "B")]
    a, b = figures
    assert a.method == "embedded" and a.extension == "jpg"
    assert np.allclose(a.bbox, (115, 80, 385, 380), atol=1)  # 288x320 px, aspect kept
    assert np.allclose(b.bbox, (440, 80, 740, 380), atol=1)
    assert b.panel_caption.startswith("Axial CT")
    # the rendered CT shows the CT upright, not a blank or a cut-off part of the page
    shown = _grey(b.image, (96, 96))
    assert np.abs(shown - _grey(encode(ct, "PNG"), (96, 96))).mean() < 12


def test_portrait_page_turned_sideways_by_rotate_keeps_its_figure_upright():
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(pymupdf.Rect(150, 210, 450, 510), stream=encode(radiograph_array(3)))
    page.insert_textbox(pymupdf.Rect(72, 516, 540, 540), "Figure 1. Chest radiograph, PA view.",
                        fontsize=8)
    page.set_rotation(90)
    figures = extract_figures(doc.tobytes())
    assert [(f.label, f.method) for f in figures] == [("Figure 1", "embedded")]
    assert np.allclose(figures[0].bbox, (165, 210, 435, 510), atol=1)


def test_debug_page_of_a_landscape_page_draws_the_boxes_where_the_figures_are():
    data, _ = _landscape_pdf()
    figures = extract_figures(data)
    (_, png), = debug_pages(data, figures, dpi=72)
    page = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    assert page.shape[:2] == (595, 842)
    red = (page[..., 0] > 200) & (page[..., 1] < 80) & (page[..., 2] < 80)
    for fig in figures:
        x0, y0, x1, _y1 = (round(v) for v in fig.bbox)
        assert red[y0 - 2:y0 + 3, x0 + 40:x1 - 20].any(axis=0).mean() > 0.9  # its top edge


def _chart_page(rotation: int) -> bytes:
    doc = pymupdf.open()
    page = doc.new_page()
    page.set_rotation(rotation)
    back = page.derotation_matrix
    for k in range(10):
        page.draw_line(pymupdf.Point(100 + k * 20, 100) * back,
                       pymupdf.Point(110 + k * 20, 300) * back, width=2)
    page.draw_rect(pymupdf.Rect(90, 90, 320, 310) * back, width=1)
    page.insert_textbox(pymupdf.Rect(90, 320, 700, 360) * back,
                        "Figure 1. A chart of the viral load over time.", fontsize=9,
                        rotate=rotation)
    return doc.tobytes()


def test_vector_chart_on_a_landscape_page_is_found_and_rendered_as_on_a_plain_page():
    (plain,) = extract_figures(_chart_page(0))
    for rotation in (90, 270):
        (turned,) = extract_figures(_chart_page(rotation))
        assert turned.label == "Figure 1" and np.allclose(turned.bbox, plain.bbox, atol=1)
        size = (plain.width, plain.height)
        assert np.abs(_grey(turned.image, size) - _grey(plain.image, size)).mean() < 3
