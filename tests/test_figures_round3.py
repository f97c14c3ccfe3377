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


def _form(doc: pymupdf.Document, content: str, xobjects: dict[str, int]) -> int:
    xref = doc.get_new_xref()
    names = "".join(f"/{k} {v} 0 R " for k, v in xobjects.items())
    doc.update_object(xref, "<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] "
                            f"/Resources << /XObject << {names}>> >> >>")
    doc.update_stream(xref, content.encode())
    return xref


def _drawn_through_forms(image: str, forms: list[tuple[str, int]], page_content: str) -> bytes:
    """A page with one image (as /Im1) and a chain of forms: forms[i] = (content, fan) where
    each form may draw /Im1 and the previous form as /F; the page draws the last one as /Top
    after `page_content` (which may draw /Im1)."""
    doc = pymupdf.open()
    page = doc.new_page()
    image_xref = page.insert_image(pymupdf.Rect(0, 0, 10, 10), pixmap=pymupdf.Pixmap(
        pymupdf.csGRAY, 64, 64, bytes(range(64)) * 64, False))
    prev = 0
    for content, fan in forms:
        body = content + " /F Do" * fan if prev else content
        prev = _form(doc, body, {"Im1": image_xref, **({"F": prev} if prev else {})})
    page.insert_textbox(pymupdf.Rect(72, 700, 540, 720), CAPTION, fontsize=8)
    holder = page.xref
    kind, value = doc.xref_get_key(holder, "Resources")
    prefix = "Resources/"
    if kind == "xref":
        holder, prefix = int(value.split()[0]), ""
    doc.xref_set_key(holder, f"{prefix}XObject/Top", f"{prev} 0 R")
    doc.xref_set_key(holder, f"{prefix}XObject/Im1", f"{image_xref} 0 R")
    text = b"".join(doc.xref_stream(x) for x in page.get_contents())
    text = text[text.index(b"BT"):text.rindex(b"ET") + 2].decode("latin-1")
    doc.update_stream(page.get_contents()[0], f"{page_content} /Top Do {text}".encode("latin-1"))
    for extra in page.get_contents()[1:]:
        doc.update_stream(extra, b" ")
    return doc.tobytes()


_IMAGE = "q 400 0 0 200 100 300 cm /Im1 Do Q"


def test_clip_trace_stops_at_the_time_limit_and_keeps_images_whole():
    import time

    from extract.clips import image_clips

    clips = "q 0 0 612 792 re W n Q " * 5000
    data = _drawn_through_forms(_IMAGE, [(clips, 0), ("", 200)], _IMAGE)  # 1,000,000 clips
    page = pymupdf.open(stream=data)[0]
    start = time.monotonic()

    def check() -> None:
        if time.monotonic() - start > 0.3:
            raise RuntimeError("time limit")

    assert image_clips(page, check) is None
    assert time.monotonic() - start < 1.5


def test_image_drawn_ten_thousand_times_through_forms_is_one_placement_quickly():
    import time

    from extract.regions import placements_of

    data = _drawn_through_forms(_IMAGE, [("q 100 300 200 200 re W n " + _IMAGE + " Q", 0),
                                         ("", 10), ("", 10), ("", 10), ("", 10)], "")
    page = pymupdf.open(stream=data)[0]
    start = time.monotonic()
    infos = placements_of(page)
    assert time.monotonic() - start < 30  # it took minutes (a draw x draw match)
    assert len(infos) == 1
    assert infos[0]["placed"] == (100.0, 342.0, 500.0, 542.0)
    assert infos[0]["bbox"] == (100.0, 342.0, 300.0, 542.0)


def _two_pages_first_nesting_clips_too_deep() -> bytes:
    doc = pymupdf.open()
    for k in range(2):
        page = doc.new_page()
        page.insert_image(pymupdf.Rect(72, 72, 372, 372), pixmap=pymupdf.Pixmap(
            pymupdf.csGRAY, 64, 64, bytes(range(64)) * 64, False))
        page.insert_textbox(pymupdf.Rect(72, 380, 540, 400), f"Figure {k + 1}. Radiograph.",
                            fontsize=8)
        if k == 0:
            xref = page.get_contents()[0]
            nested = "q " + "72 72 300 300 re W n " * 1100
            doc.update_stream(xref, (nested + doc.xref_stream(xref).decode() + " Q").encode())
    return doc.tobytes()


def test_page_nesting_clips_past_mupdf_limit_is_one_problem_and_other_pages_are_read():
    problems: list[str] = []
    figures = extract_figures(_two_pages_first_nesting_clips_too_deep(), problems=problems)
    assert [(f.page, f.label) for f in figures] == [(2, "Figure 2")]
    assert problems == ["page 1: layer/clip nesting too deep"]


def test_figures_cli_page_nesting_clips_too_deep_is_one_error_line_exit_1(tmp_path):
    from click.testing import CliRunner

    from cxrbank.cli import main

    pdf = tmp_path / "deep.pdf"
    pdf.write_bytes(_two_pages_first_nesting_clips_too_deep())
    result = CliRunner().invoke(main, ["figures", str(pdf), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: deep.pdf: page 1: layer/clip nesting too deep"]
    assert "deep.pdf: 1 figure images (1 with captions)" in result.output


def test_text_render_mode_clip_without_w_or_form_crops_the_image():
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(pymupdf.Rect(100, 342, 500, 542), pixmap=pymupdf.Pixmap(
        pymupdf.csGRAY, 64, 64, bytes(range(64)) * 64, False))
    page.insert_textbox(pymupdf.Rect(72, 560, 540, 580), CAPTION, fontsize=8, fontname="helv")
    contents = page.get_contents()
    font = next(f[4] for f in page.get_fonts())
    clip = f"q BT /{font} 150 Tf 7 Tr 100 320 Td (IIII) Tj ET ".encode()
    doc.update_stream(contents[0], clip + doc.xref_stream(contents[0]))
    doc.update_stream(contents[-1], doc.xref_stream(contents[-1]) + b" Q")
    data = doc.tobytes()
    assert b" W " not in b"".join(doc.xref_stream(x) for x in contents) and not page.get_xobjects()
    (figure,) = extract_figures(data, split_panels=False)
    assert figure.method == "clipped"
    x0, y0, x1, y1 = figure.bbox
    assert x0 >= 100 and x1 - x0 < 200 and y1 - y0 < 200


def test_caption_leading_words_like_a_and_e_are_not_stripped_as_a_panel_group():
    from extract.captions import caption_parts

    _, parts = caption_parts("Figure 4. A & E department chest radiograph (A) and CT (B).")
    assert parts == {"A": "A & E department chest radiograph", "B": "CT"}


def test_caption_leading_group_repeated_as_marks_is_still_a_summary():
    from extract.captions import caption_parts

    shared, parts = caption_parts("Fig. 8 a, b Chest radiograph and CT. a Radiograph. b CT.")
    assert parts == {"A": "Radiograph", "B": "CT"}
    assert shared == "Fig. 8 a, b Chest radiograph and CT."


def test_ajr_style_caption_leading_group_is_the_first_panels_mark():
    from extract.captions import caption_parts

    _, parts = caption_parts("Fig. 1—A, B, Chest radiographs on admission show bilateral "
                             "opacities. C, Axial CT shows ground-glass opacity.")
    assert parts == {"A": "Chest radiographs on admission show bilateral opacities",
                     "B": "Chest radiographs on admission show bilateral opacities",
                     "C": "Axial CT shows ground-glass opacity"}
    _, parts = caption_parts("Figure 2. A and B, Axial CT images. C, Coronal reformat.")
    assert parts == {"A": "Axial CT images", "B": "Axial CT images", "C": "Coronal reformat"}


def test_paren_marks_joined_by_and_or_to_name_each_panel():
    from extract.captions import caption_parts

    _, parts = caption_parts("Figure 1. Chest radiograph (A and B) and CT (C).")
    assert parts == {"A": "Chest radiograph", "B": "Chest radiograph", "C": "CT"}
    _, parts = caption_parts("Figure 2. Radiographs (A to C) and CT (D).")
    assert parts == {"A": "Radiographs", "B": "Radiographs", "C": "Radiographs", "D": "CT"}


def test_missing_embedded_font_program_of_a_used_font_is_reported():
    data, _ = _flate_image_pdf(64)
    doc = pymupdf.open(stream=data)
    page = doc[0]
    page.insert_font(fontname="F0", fontbuffer=pymupdf.Font("tiro").buffer)
    page.insert_text((72, 60), "Case 1.", fontname="F0", fontsize=10)
    font = next(f[0] for f in page.get_fonts() if f[4] == "F0")
    descendant = int(doc.xref_get_key(font, "DescendantFonts")[1].strip("[]").split()[0])
    program = int(doc.xref_get_key(descendant, "FontDescriptor/FontFile3")[1].split()[0])
    data = doc.tobytes()
    assert _problems(_shift(data)) == []
    assert _problems(_blank(data, program)) == [DAMAGED]


def test_jpeg_stream_cut_in_the_middle_is_reported_damaged():
    import io

    from PIL import Image

    rng = np.random.default_rng(2)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (300, 300), dtype=np.uint8)).save(buf, "JPEG")
    doc = pymupdf.open()
    page = doc.new_page()
    xref = page.insert_image(pymupdf.Rect(72, 72, 372, 372), stream=buf.getvalue())
    page.insert_textbox(pymupdf.Rect(72, 380, 540, 400), CAPTION, fontsize=8)
    data = doc.tobytes()
    start = data.index(b"stream", data.index(b"\n%d 0 obj" % xref)) + 7
    cut = data[:start + 2000] + data[start + 4000:]
    assert pymupdf.open(stream=cut).is_repaired
    problems: list[str] = []
    assert [f.label for f in extract_figures(cut, problems=problems)] == ["Figure 1"]
    assert problems == [DAMAGED]
    assert _problems(_shift(data)) == []


def test_inflating_a_large_stream_with_bytes_after_its_end_terminates():
    import zlib

    from extract.pdf import _inflated_size

    # MuPDF's repair keeps the end-of-line byte when /Length is indirect: zlib leaves it in
    # unconsumed_tail, and the loop never ended once the data passed one 4 MB chunk
    assert _inflated_size(zlib.compress(b"\0" * 5_000_000) + b"\n") == 5_000_000


def test_an_indirect_length_with_a_long_object_number_is_not_read_as_a_length():
    from extract.pdfrepair import _LENGTH

    assert _LENGTH.findall(b"<< /Length 1234 0 R /Filter /FlateDecode >>") == []
    assert _LENGTH.findall(b"<< /Length 55 /Filter /FlateDecode >>") == [b"55"]


def test_an_oxford_comma_in_a_leading_panel_group_keeps_every_panel():
    from extract.captions import caption_parts

    _label, parts = caption_parts("Figure 2. A, B, C, and D, Serial radiographs over 10 days.")
    assert sorted(parts) == ["A", "B", "C", "D"]
    assert parts["D"] == "Serial radiographs over 10 days"
    assert caption_parts("Figure 9. A, B, C, and D show the four stages.")[1] == {}
