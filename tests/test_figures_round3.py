"""Round-3 regressions: cut-off streams, inherited resources, time limit in the clip trace,
deep clip nesting, text clips, caption leading groups."""

from __future__ import annotations

import numpy as np
import pymupdf

from extract.pdf import extract_figures, open_pdf

DAMAGED = "damaged PDF (MuPDF repaired a broken or cut-off file); figures may be missing"
CAPTION = "Figure 1. Chest radiograph on admission."


def _flate_image_pdf(size: int = 400) -> tuple[bytes, int]:
    """One page with a Flate-compressed RGB noise image and a caption; (bytes, image xref)."""
    rng = np.random.default_rng(1)
    pix = pymupdf.Pixmap(pymupdf.csRGB, size, size, rng.integers(0, 256, size * size * 3,
                                                                 dtype=np.uint8).tobytes(), False)
    doc = pymupdf.open()
    page = doc.new_page()
    xref = page.insert_image(pymupdf.Rect(72, 72, 372, 372), pixmap=pix)
    page.insert_textbox(pymupdf.Rect(72, 380, 540, 400), CAPTION, fontsize=8)
    return doc.tobytes(), xref


def _shift(data: bytes) -> bytes:
    """A line added after the header: every xref offset is stale (MuPDF repairs, losing nothing)."""
    nl = data.index(b"\n") + 1
    return data[:nl] + b"%c\n" + data[nl:]


def _problems(data: bytes) -> list[str]:
    problems: list[str] = []
    open_pdf(data, problems).close()
    return problems


def test_image_stream_cut_in_the_middle_is_reported_damaged_but_figure_still_written():
    data, xref = _flate_image_pdf()
    start = data.index(b"stream", data.index(b"\n%d 0 obj" % xref)) + 7
    cut = data[:start + 2000] + data[start + 4000:]  # 2,000 bytes of the image gone, %%EOF kept
    assert pymupdf.open(stream=cut).is_repaired
    problems: list[str] = []
    figures = extract_figures(cut, problems=problems, split_panels=False)
    assert [f.label for f in figures] == ["Figure 1"]
    assert problems == [DAMAGED]


def test_whole_pdf_with_stale_offsets_is_not_reported_damaged():
    data, _ = _flate_image_pdf()
    shifted = _shift(data)
    assert pymupdf.open(stream=shifted).is_repaired
    assert _problems(shifted) == []


def _blank(data: bytes, xref: int) -> bytes:
    """The object `xref` overwritten with blanks (gone: MuPDF repairs when it is read)."""
    at = data.index(b"\n%d 0 obj" % xref) + 1
    end = data.index(b"endobj", at) + 6
    return data[:at] + b" " * (end - at) + data[end:]


def test_missing_image_of_a_page_inheriting_resources_from_pages_is_reported():
    data, xref = _flate_image_pdf(64)
    doc = pymupdf.open(stream=data)
    page = doc[0]
    parent = int(doc.xref_get_key(page.xref, "Parent")[1].split()[0])
    doc.xref_set_key(parent, "Resources", doc.xref_get_key(page.xref, "Resources")[1])
    doc.xref_set_key(page.xref, "Resources", "null")
    inherited = doc.tobytes()
    assert len(pymupdf.open(stream=inherited)[0].get_images()) == 1
    assert _problems(_blank(inherited, xref)) == [DAMAGED]
    assert _problems(_shift(inherited)) == []


def test_resource_naming_a_free_object_the_content_does_not_use_is_no_false_alarm():
    data, _ = _flate_image_pdf(64)
    doc = pymupdf.open(stream=data)
    page = doc[0]
    free = doc.get_new_xref()
    doc.update_object(free, "<< >>")
    holder = page.xref
    kind, value = doc.xref_get_key(holder, "Resources")
    if kind == "xref":
        holder = int(value.split()[0])
        doc.xref_set_key(holder, "XObject/Unused", f"{free} 0 R")
    else:
        doc.xref_set_key(holder, "Resources/XObject/Unused", f"{free} 0 R")
    doc.update_object(free, "null")
    assert _problems(_shift(doc.tobytes())) == []
