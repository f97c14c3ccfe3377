"""Damaged images inside a paper: one error line per figure, the rest written, never a traceback."""

from __future__ import annotations

import json

import numpy as np
import pymupdf

from extract.jats import graphic_problem
from extract.pdf import extract_figures
from tests.fixtures.casereport import encode, radiograph_array
from tests.fixtures.cli import run


def _damaged_pdf(path) -> None:
    """Figure 1: a JPEG cut short, under a caption naming panels; Figure 2: a good radiograph."""
    good = encode(np.hstack([radiograph_array(1), np.full((320, 20), 255, np.uint8),
                             radiograph_array(2)]))
    doc = pymupdf.open()
    page = doc.new_page()
    xref = page.insert_image(pymupdf.Rect(72, 72, 540, 302), stream=encode(radiograph_array(3)))
    doc.update_stream(xref, good[:600], new=True, compress=False)
    doc.update_object(xref, "<< /Type /XObject /Subtype /Image /Width 628 /Height 320 "
                            "/ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /DCTDecode >>")
    page.insert_textbox(pymupdf.Rect(72, 308, 540, 340),
                        "Figure 1. (A) Chest radiograph. (B) Chest radiograph on day 3.",
                        fontsize=8)
    page.insert_image(pymupdf.Rect(72, 400, 372, 700), stream=encode(radiograph_array(4)))
    page.insert_textbox(pymupdf.Rect(72, 706, 540, 740), "Figure 2. Chest radiograph.",
                        fontsize=8)
    doc.save(path)


def test_damaged_jpeg_in_a_pdf_is_one_problem_and_the_other_figure_is_kept(tmp_path):
    _damaged_pdf(tmp_path / "bad.pdf")
    problems: list[str] = []
    figures = extract_figures((tmp_path / "bad.pdf").read_bytes(), problems=problems)
    assert [f.label for f in figures] == ["Figure 2"]
    assert len(problems) == 1 and problems[0].startswith("page 1, Figure 1: embedded image is dam")


def test_figures_cli_damaged_jpeg_is_one_error_line_rest_written_exit_1(tmp_path):
    _damaged_pdf(tmp_path / "bad.pdf")
    code, _out, err = run("figures", str(tmp_path / "bad.pdf"), "--out", str(tmp_path / "out"))
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and lines[0].startswith("Error: bad.pdf: page 1, Figure 1:")
    records = json.loads((tmp_path / "out" / "figures.json").read_text())
    assert [r["label"] for r in records] == ["Figure 2"]
    assert (tmp_path / "out" / records[0]["file"]).stat().st_size > 1000


def test_ingest_pdf_with_a_damaged_jpeg_reports_it_and_adds_the_rest(tmp_path):
    _damaged_pdf(tmp_path / "bad.pdf")
    code, out, err = run("ingest", "--pdf", str(tmp_path / "bad.pdf"), "--root",
                         str(tmp_path / "col"))
    assert code == 1
    assert "Figure 1: embedded image is damaged" in err
    assert "1 problem(s) reading the PDF" in out


def test_truncated_jpeg_is_a_graphic_problem_for_jats():
    data = encode(radiograph_array(5))
    assert graphic_problem(data) is None
    assert graphic_problem(data[: len(data) // 2]).startswith("damaged image")


def test_jats_truncated_composite_is_one_error_line_and_the_other_figure_written(tmp_path):
    xml = ('<?xml version="1.0"?><article xmlns:xlink="http://www.w3.org/1999/xlink"><body>'
           '<fig id="f1"><label>Figure 1</label><caption><p>(A) Chest radiograph. (B) Axial CT.'
           '</p></caption><graphic xlink:href="g1"/></fig><fig id="f2"><label>Figure 2</label>'
           '<caption><p>CT.</p></caption><graphic xlink:href="g2"/></fig></body></article>')
    (tmp_path / "article.nxml").write_text(xml)
    composite = encode(np.hstack([radiograph_array(1), np.full((320, 20), 255, np.uint8),
                                  radiograph_array(2)]))
    (tmp_path / "g1.jpg").write_bytes(composite[: len(composite) // 2])
    (tmp_path / "g2.jpg").write_bytes(encode(radiograph_array(3)))
    code, _out, err = run("figures", "--jats", str(tmp_path / "article.nxml"), "--out",
                         str(tmp_path / "out"))
    assert code == 1
    assert "graphic 'g1' left out: damaged image" in err
    records = json.loads((tmp_path / "out" / "figures.json").read_text())
    assert [r["label"] for r in records] == ["Figure 2"]


def test_figures_cli_repaired_pdf_is_one_error_line_and_exit_1(tmp_path):
    from tests.fixtures.cli import EXAMPLE

    data = EXAMPLE.read_bytes()
    (tmp_path / "cut.pdf").write_bytes(data[: len(data) // 2] + b"\n%%EOF\n")
    (tmp_path / "padded.pdf").write_bytes(data + b"\0" * 5000)
    code, _out, err = run("figures", str(tmp_path / "cut.pdf"), "--out", str(tmp_path / "a"))
    assert code == 1
    assert [line for line in err.splitlines() if line.startswith("Error")] == [
        "Error: cut.pdf: damaged PDF (MuPDF repaired a broken or cut-off file); "
        "figures may be missing"]
    assert (tmp_path / "a" / "figures.json").is_file()
    code, _out, err = run("figures", str(tmp_path / "padded.pdf"), "--out", str(tmp_path / "b"))
    assert code == 0 and "Error" not in err


def test_damaged_panel_of_a_figure_of_separate_images_leaves_the_other_panel():
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(pymupdf.Rect(72, 72, 300, 300), stream=encode(radiograph_array(1)))
    xref = page.insert_image(pymupdf.Rect(320, 72, 548, 300), stream=encode(radiograph_array(2)))
    doc.update_stream(xref, encode(radiograph_array(3))[:500], new=True, compress=False)
    doc.xref_set_key(xref, "Filter", "/DCTDecode")
    page.insert_textbox(pymupdf.Rect(72, 306, 540, 340),
                        "Figure 1. (A) Chest radiograph. (B) Chest radiograph on day 3.",
                        fontsize=8)
    problems: list[str] = []
    figures = extract_figures(doc.tobytes(), problems=problems)
    assert [(f.label, f.panel) for f in figures] == [("Figure 1", "A")]
    assert len(problems) == 1
    assert problems[0].startswith("page 1, Figure 1 panel B: embedded image is damaged")
