"""Round-2 regressions: clips not in force, repaired-but-whole PDFs, uniform panels, marks."""

from __future__ import annotations

import io

import numpy as np
import pymupdf
from PIL import Image

from extract import regions
from extract.pdf import extract_figures
from tests.fixtures.casereport import encode, radiograph_array

CAPTION = "Figure 1. Chest radiograph on admission."


def _page_with_image(wrap: str, arr: np.ndarray, fmt: str = "JPEG") -> bytes:
    """One page with `arr` placed at 72,72-342,372 pt (shown coordinates) and a caption;
    `wrap` is content put around the image's drawing: 'BEFORE{}AFTER' with {} the image."""
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(pymupdf.Rect(72, 72, 342, 372), stream=encode(arr, fmt))
    xref = page.get_contents()[0]
    doc.update_stream(xref, wrap.format(doc.xref_stream(xref).decode()).encode())
    page.insert_textbox(pymupdf.Rect(72, 378, 540, 400), CAPTION, fontsize=8)
    return doc.tobytes()


def _pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("L"))


# PDF y of the image: 470 (bottom) to 770 (top); 300 pt for 320 px
_TOP_HALF = "0 620 612 222 re W n"  # shows y 620..842: the image's top half
_LEFT_COLUMN = "40 30 170 740 re W n"  # x 40..210: most of the image's left part


def test_clip_closed_before_the_image_does_not_crop_it():
    arr = radiograph_array(3)
    data = _page_with_image(f"q {_LEFT_COLUMN}\nBT /F1 9 Tf ET\nQ\n{{}}", arr)
    (figure,) = extract_figures(data)
    assert figure.method == "embedded" and figure.extension == "jpg"
    assert (figure.width, figure.height) == (288, 320)
    assert np.allclose(figure.bbox, (72, 72, 342, 372), atol=0.5)


def test_only_the_clip_still_in_force_after_nested_restore_crops():
    arr = radiograph_array(4)
    # outer clip: top half; an inner left-column clip is closed before the image is drawn
    data = _page_with_image(f"q {_TOP_HALF}\nq {_LEFT_COLUMN}\nQ\n{{}}\nQ\n", arr, "PNG")
    (figure,) = extract_figures(data)
    assert figure.method == "clipped"
    assert np.allclose(figure.bbox, (72, 72, 342, 222), atol=0.5)  # full width, top half
    pixels = _pixels(figure.image)
    assert pixels.shape == (160, 288) and np.array_equal(pixels, arr[:160])


def test_clip_inside_a_form_xobject_crops_the_image_drawn_there():
    arr = radiograph_array(5)
    inner = pymupdf.open(stream=_page_with_image(f"q {_TOP_HALF}\n{{}}\nQ\n", arr, "PNG"))
    doc = pymupdf.open()
    page = doc.new_page()
    page.show_pdf_page(page.rect, inner, 0)  # the page drawn as one form XObject
    assert b" W" not in doc.xref_stream(page.get_contents()[0])
    (figure,) = extract_figures(doc.tobytes())
    assert figure.method == "clipped" and figure.caption.startswith("Figure 1.")
    assert np.array_equal(_pixels(figure.image), arr[:160])


def test_clip_on_a_rotated_page_crops_in_shown_coordinates():
    arr = radiograph_array(8, (300, 300))
    doc = pymupdf.open()
    page = doc.new_page()
    page.set_rotation(90)
    back = page.derotation_matrix
    page.insert_image(pymupdf.Rect(100, 80, 400, 380) * back, stream=encode(arr, "PNG"),
                      rotate=90)
    clip = pymupdf.Rect(100, 80, 400, 230) * back  # the shown top half, unrotated
    xref = page.get_contents()[0]
    h = page.mediabox.height
    pre = f"q {clip.x0:.2f} {h - clip.y1:.2f} {clip.width:.2f} {clip.height:.2f} re W n\n"
    doc.update_stream(xref, pre.encode() + doc.xref_stream(xref) + b"\nQ\n")
    page.insert_textbox(pymupdf.Rect(100, 390, 740, 440) * back, CAPTION, fontsize=9,
                        rotate=90)
    (figure,) = extract_figures(doc.tobytes())
    assert figure.method == "clipped"
    assert np.allclose(figure.bbox, (100, 80, 400, 230), atol=0.5)
    assert np.array_equal(_pixels(figure.image), arr[:150])


def test_page_without_clip_operators_is_not_traced(monkeypatch):
    calls = []
    monkeypatch.setattr(regions, "image_clips", lambda page, *_: calls.append(page) or [])
    (figure,) = extract_figures(_page_with_image("{}", radiograph_array(6)))
    assert figure.method == "embedded" and calls == []
    extract_figures(_page_with_image(f"q {_TOP_HALF}\n{{}}\nQ\n", radiograph_array(6)))
    assert len(calls) == 1


def _three_page_pdf() -> bytes:
    doc = pymupdf.open()
    for k in range(3):
        page = doc.new_page()
        page.insert_image(pymupdf.Rect(72, 72, 342, 372), stream=encode(radiograph_array(k)))
        page.insert_textbox(pymupdf.Rect(72, 378, 540, 400), f"Figure {k + 1}. Radiograph.",
                            fontsize=8)
    return doc.tobytes()


def test_pdf_with_stale_xref_offsets_is_repaired_silently():
    data = _three_page_pdf()
    end = data.index(b"\n") + 1
    shifted = data[:end] + b"%comment line added after the header\n" + data[end:]
    assert pymupdf.open(stream=shifted).is_repaired  # MuPDF rebuilds the table...
    problems: list[str] = []
    figures = extract_figures(shifted, problems=problems)
    assert problems == []  # ...but nothing was lost
    assert [f.image for f in figures] == [f.image for f in extract_figures(data)]


def test_pdf_cut_between_objects_is_reported_as_damaged():
    data = _three_page_pdf()
    # cut exactly at an object boundary: no object is cut off, later ones are missing
    cut = data[: data.index(b"endobj", len(data) // 2) + 6] + b"\n%%EOF\n"
    problems: list[str] = []
    figures = extract_figures(cut, problems=problems)
    assert len(figures) < 3
    assert problems == ["damaged PDF (MuPDF repaired a broken or cut-off file); "
                        "figures may be missing"]


def test_a_noisy_black_border_is_never_a_panel():
    from extract.panels import split_panels

    rng = np.random.default_rng(0)
    arr = np.zeros((400, 300), dtype=np.uint8)
    arr[:80] = rng.integers(0, 18, size=(80, 300))  # a black border with JPEG-like noise
    arr[80:83] = 0  # a uniform 3-pixel line under it, like a gutter
    arr[83:] = radiograph_array(7, (317, 300))
    caption = "Figure 1. (A) Chest radiograph. (B) Axial CT shows ground-glass opacity."
    assert split_panels(arr, caption) == []
    two = np.full((400, 620), 255, dtype=np.uint8)  # two real panels still split
    two[:, :300], two[:, 320:] = radiograph_array(1, (400, 300)), radiograph_array(2, (400, 300))
    assert [p.box for p in split_panels(two, caption)] == [(0, 0, 300, 400), (320, 0, 620, 400)]


def test_group_marks_out_of_order_name_every_panel():
    from extract.captions import caption_parts

    _, parts = caption_parts("Fig. 2. Mid sagittal (A, C) and axial MRI (B, D) of the cervical "
                             "spine show a lesion.")
    assert parts == {"A": "Mid sagittal", "B": "axial MRI", "C": "Mid sagittal",
                     "D": "axial MRI"}
    _, gap = caption_parts("Figure 1. Chest radiographs (A, C) on admission.")
    assert gap == {}  # B never named: no panels rather than a wrong grid


def test_leading_letter_group_after_the_label_is_not_panel_text():
    from extract.captions import caption_parts

    for group in ("a, b", "(a, b)", "a–b"):
        _, parts = caption_parts(f"Fig. 27 {group} Chest radiographs at admission (a) and "
                                 "discharge (b).")
        assert parts == {"A": "Chest radiographs at admission", "B": "discharge"}


def test_bare_single_marks_win_over_a_summary_group():
    from extract.captions import caption_parts

    shared, parts = caption_parts(
        "Fig. 8 Chest CT of patient 1 (a, b) and patient 2 (c, d). a Axial CT at admission. "
        "b Follow-up. c Axial. d Coronal.")
    assert parts == {"A": "Axial CT at admission", "B": "Follow-up", "C": "Axial",
                     "D": "Coronal"}
    assert shared == "Fig. 8 Chest CT of patient 1 (a, b) and patient 2 (c, d)."


def test_pdf_whose_image_object_is_destroyed_is_reported_as_damaged():
    data = _three_page_pdf()
    doc = pymupdf.open(stream=data)
    image = doc[1].get_images()[0][0]
    head = b"%d 0 obj" % image
    at = data.index(b"\n" + head) + 1
    broken = data[:at] + b"X" * len(head) + data[at + len(head):]  # MuPDF repairs when read
    problems: list[str] = []
    figures = extract_figures(broken, problems=problems)
    assert [f.label for f in figures] == ["Figure 1", "Figure 3"]
    assert problems == ["damaged PDF (MuPDF repaired a broken or cut-off file); "
                        "figures may be missing"]


def test_pdf_with_one_wrong_xref_offset_is_repaired_silently():
    data = _three_page_pdf()
    table = data.rindex(b"\nxref\n") + 1
    first = data.index(b"\n", data.index(b"\n", table) + 1) + 1  # after "xref" and "0 N"
    entry = first + 20 * 5  # object 5's entry: its offset off by 3
    offset = int(data[entry:entry + 10]) + 3
    broken = data[:entry] + b"%010d" % offset + data[entry + 10:]
    doc = pymupdf.open(stream=broken)
    doc.xref_object(5)
    assert doc.is_repaired
    problems: list[str] = []
    assert len(extract_figures(broken, problems=problems)) == 3 and problems == []


def test_image_wholly_hidden_by_its_clip_is_left_out():
    data = _page_with_image("q 400 50 100 100 re W n\n{}\nQ\n", radiograph_array(9))
    assert extract_figures(data) == []
