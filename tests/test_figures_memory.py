"""Memory bounds: declared image size counts colour channels; huge figures are not cut."""

from __future__ import annotations

import io

import numpy as np
import pymupdf
import pytest
from PIL import Image

from extract.pdf import PdfError, open_pdf
from extract.records import Figure
from extract.render import pixmap_png, split_figure
from tests.fixtures.casereport import composite_array, encode


def _declared(width: int, height: int, colorspace: str) -> bytes:
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image((72, 72, 200, 200), stream=encode(np.zeros((8, 8), np.uint8), "PNG"))
    xref = page.get_images()[0][0]
    doc.xref_set_key(xref, "Width", str(width))
    doc.xref_set_key(xref, "Height", str(height))
    doc.xref_set_key(xref, "ColorSpace", colorspace)
    return doc.tobytes()


def test_declared_size_counts_channels_against_the_cap():
    open_pdf(_declared(10_000, 10_000, "/DeviceGray")).close()  # 100 M samples
    with pytest.raises(PdfError, match=r"bomb \(image 10000x10000 px, 3 channels\)"):
        open_pdf(_declared(10_000, 10_000, "/DeviceRGB"))  # 300 M samples
    with pytest.raises(PdfError, match="4 channels"):
        open_pdf(_declared(7_000, 7_000, "/DeviceCMYK"))


def test_figure_over_40_megapixels_is_kept_whole_not_cut():
    arr, _ = composite_array(3, (1, 2))
    caption = "Figure 1. (A) Chest radiograph. (B) Axial CT."
    data = encode(arr, "PNG")
    h, w = arr.shape[:2]
    small = Figure(1, (0, 0, w, h), "Figure 1", None, caption, None, data, w, h, "embedded")
    assert [p.panel for p in split_figure(small)] == ["A", "B"]
    huge = Figure(1, (0, 0, w, h), "Figure 1", None, caption, None, data, 8000, 6000, "embedded")
    assert split_figure(huge) == []


def test_pixmap_png_is_lossless_for_grey_and_rgb():
    arr = (np.arange(60 * 80) % 251).astype(np.uint8).reshape(60, 80)
    for pixels, mode in ((arr, "L"), (np.dstack([arr, arr[::-1], 255 - arr]), "RGB")):
        pix = pymupdf.Pixmap(encode(pixels, "PNG"))
        with Image.open(io.BytesIO(pixmap_png(pix))) as im:
            assert im.mode == mode and np.array_equal(np.asarray(im), pixels)
