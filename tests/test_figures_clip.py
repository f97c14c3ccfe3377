"""Images cropped by a clip path: only the visible part is saved (a hidden label never leaks)."""

from __future__ import annotations

import io

import numpy as np
import pymupdf
from PIL import Image

from extract.pdf import extract_figures
from tests.fixtures.casereport import encode, radiograph_array


def _clipped_pdf(hide: float) -> tuple[bytes, np.ndarray]:
    """A 288x320 radiograph with a white label band on top, placed at 72,72-342,372 pt; a clip
    path hides the top `hide` points of it."""
    arr = radiograph_array(9).copy()
    arr[:40] = 255  # the "burned-in label" band
    arr[10:30, 20:200] = 0
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(pymupdf.Rect(72, 72, 342, 372), stream=encode(arr, "PNG"))
    xref = page.get_contents()[0]
    inner = doc.xref_stream(xref).decode()
    top = 842 - 72 - hide  # PDF y of the clip's top edge (origin bottom-left)
    clip = f"q 72 {842 - 372} 270 {top - (842 - 372):.2f} re W n\n" if hide else "q\n"
    doc.update_stream(xref, (clip + inner + "\nQ\n").encode())
    page.insert_textbox(pymupdf.Rect(72, 378, 540, 400), "Figure 1. Chest radiograph.",
                        fontsize=8)
    return doc.tobytes(), arr


def test_clipped_image_is_saved_as_its_visible_part_only():
    data, arr = _clipped_pdf(hide=300 * 40 / 320)  # exactly the 40-pixel label band
    (figure,) = extract_figures(data)
    assert figure.method == "clipped" and figure.extension == "png"
    assert np.allclose(figure.bbox, (72, 109.5, 342, 372), atol=0.5)
    with Image.open(io.BytesIO(figure.image)) as im:
        pixels = np.asarray(im.convert("L"))
    assert pixels.shape == (280, 288)
    assert np.array_equal(pixels, arr[40:])  # lossless, and the label band is gone


def test_image_with_no_clip_keeps_its_original_bytes():
    data, _ = _clipped_pdf(hide=0)
    (figure,) = extract_figures(data)
    assert figure.method != "clipped" and (figure.width, figure.height) == (288, 320)
