"""--time-limit is honoured inside every step: placements, vector clustering, rendering, text."""

from __future__ import annotations

import time

import pymupdf
import pytest

from extract import regions, render
from extract.pdf import PdfError, extract_figures, page_texts
from tests.fixtures.casereport import encode, radiograph_array


def _panels_pdf(n: int) -> bytes:
    """One page with n separate radiograph panels in a grid under one caption."""
    doc = pymupdf.open()
    page = doc.new_page()
    for k in range(n):
        x, y = 60 + (k % 4) * 125, 60 + (k // 4) * 140
        page.insert_image(pymupdf.Rect(x, y, x + 115, y + 128), stream=encode(radiograph_array(k)))
    caption = "Figure 1. " + " ".join(f"({chr(65 + k)}) Radiograph day {k}." for k in range(n))
    page.insert_textbox(pymupdf.Rect(60, 60 + 140 * ((n + 3) // 4), 540, 760), caption,
                        fontsize=8)
    return doc.tobytes()


def test_rendering_stops_at_the_time_limit(monkeypatch):
    data = _panels_pdf(8)
    assert len(extract_figures(data)) == 8
    slow = render._region_image
    calls = []

    def slow_region(*args):
        calls.append(1)
        time.sleep(0.1)
        return slow(*args)

    monkeypatch.setattr(render, "_region_image", slow_region)
    with pytest.raises(PdfError, match="time limit"):
        extract_figures(data, time_limit=0.25)
    assert len(calls) < 5


def test_reading_placements_stops_at_the_time_limit(monkeypatch):
    doc = pymupdf.open()
    for _ in range(30):
        doc.new_page().insert_image(pymupdf.Rect(72, 72, 300, 300),
                                    stream=encode(radiograph_array(1)))
    data = doc.tobytes()
    calls = []
    real = regions.placements_of

    def slow_placements(page, *args):
        calls.append(page.number)
        time.sleep(0.03)
        return real(page, *args)

    monkeypatch.setattr(regions, "placements_of", slow_placements)
    with pytest.raises(PdfError, match="time limit"):
        extract_figures(data, time_limit=0.2)
    assert len(calls) < 20


def test_page_with_tens_of_thousands_of_paths_is_not_clustered():
    doc = pymupdf.open()
    page = doc.new_page()
    ops = "".join(f"{50 + (k % 250) * 2} {50 + (k // 250) * 2} 1 1 re f\n" for k in range(25_000))
    page.insert_text((72, 760), "Figure 1. A dense scatter plot.", fontsize=8)
    xref = page.get_contents()[0]
    doc.update_stream(xref, doc.xref_stream(xref) + ops.encode())
    data = doc.tobytes()
    started = time.monotonic()
    assert extract_figures(data) == []
    assert time.monotonic() - started < 3


def test_page_texts_stop_at_the_time_limit():
    doc = pymupdf.open()
    for k in range(5):
        doc.new_page().insert_text((72, 72), f"Page {k}.")
    assert len(page_texts(doc.tobytes())) == 5
    with pytest.raises(PdfError, match="time limit"):
        page_texts(doc.tobytes(), time_limit=1e-9)
