"""Lossless output: 16-bit grey stays 16-bit, strips are stacked from their decoded pixels."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pymupdf
from PIL import Image

from extract.pdf import extract_figures
from extract.records import Figure
from extract.render import split_figure
from tests.fixtures.casereport import composite_array, encode, radiograph_array


def _grey16_pdf(arr: np.ndarray, caption: str) -> bytes:
    doc = pymupdf.open()
    page = doc.new_page()
    h, w = arr.shape
    xref = page.insert_image(pymupdf.Rect(72, 72, 72 + w / 2, 72 + h / 2),
                             stream=encode(np.zeros((8, 8), np.uint8), "PNG"))
    doc.update_object(xref, f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} "
                            "/ColorSpace /DeviceGray /BitsPerComponent 16 >>")
    doc.update_stream(xref, zlib.compress(arr.astype(">u2").tobytes()), new=True, compress=False)
    doc.xref_set_key(xref, "Filter", "/FlateDecode")
    page.insert_textbox(pymupdf.Rect(72, 80 + h / 2, 540, 120 + h / 2), caption, fontsize=8)
    return doc.tobytes()


def test_16_bit_grey_image_is_written_as_16_bit_png_with_every_value():
    arr = (np.arange(200 * 300).reshape(200, 300) * 37 % 65536).astype(np.uint16)
    (figure,) = extract_figures(_grey16_pdf(arr, "Figure 1. Chest radiograph."))
    assert figure.method == "decoded" and figure.extension == "png"
    with Image.open(io.BytesIO(figure.image)) as im:
        assert im.mode == "I;16"
        assert np.array_equal(np.asarray(im).astype(np.uint16), arr)


def test_16_bit_composite_is_cut_into_16_bit_panels():
    arr8, _ = composite_array(2, (1, 2))
    if arr8.ndim == 3:
        arr8 = arr8[..., 0]
    arr = arr8.astype(np.uint16) * 257
    data = encode(arr8, "PNG")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    h, w = arr.shape
    caption = "Figure 1. (A) Chest radiograph. (B) Axial CT."
    assert len(split_figure(Figure(1, (0, 0, w, h), "Figure 1", None, caption, None, data, w,
                                   h, "embedded"))) == 2
    panels = split_figure(Figure(1, (0, 0, w, h), "Figure 1", None, caption, None,
                                 buf.getvalue(), w, h, "decoded"))
    assert [p.panel for p in panels] == ["A", "B"]
    with Image.open(io.BytesIO(panels[0].image)) as im:
        assert im.mode == "I;16" and int(np.asarray(im).max()) > 255
    twelve = io.BytesIO()  # 12-bit values (0-4095) in a 16-bit image split the same way
    Image.fromarray(arr8.astype(np.uint16) * 16).save(twelve, format="PNG")
    panels = split_figure(Figure(1, (0, 0, w, h), "Figure 1", None, caption, None,
                                 twelve.getvalue(), w, h, "decoded"))
    assert [p.panel for p in panels] == ["A", "B"]


def test_strips_are_stacked_from_their_pixels_exactly():
    arr = radiograph_array(4, (320, 288))
    doc = pymupdf.open()
    page = doc.new_page()
    for k in range(4):
        page.insert_image(pymupdf.Rect(100, 100 + 50 * k, 280, 150 + 50 * k),
                          stream=encode(arr[k * 80:(k + 1) * 80], "PNG"))
    page.insert_textbox(pymupdf.Rect(100, 310, 540, 340), "Figure 1. Chest radiograph.",
                        fontsize=8)
    (figure,) = extract_figures(doc.tobytes())
    assert figure.method == "merged" and (figure.width, figure.height) == (288, 320)
    with Image.open(io.BytesIO(figure.image)) as im:
        assert np.array_equal(np.asarray(im.convert("L")), arr)
