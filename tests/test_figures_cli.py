"""`cxrbank figures`: figure files and figures.json from a PDF or a JATS file."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cxrbank.cli import main
from tests.fixtures.casereport import (
    bad_pdfs,
    composite_array,
    encode,
    make_case_report_pdf,
    radiograph_array,
)
from tests.test_jats import ARTICLE

KEYS = {"file", "page", "bbox", "label", "panel", "caption", "panel_caption", "width", "height",
        "method"}


def test_pdf_figures_written_with_figures_json(tmp_path):
    truth = make_case_report_pdf(tmp_path / "case.pdf", layout="one-column", seed=2)
    result = CliRunner().invoke(main, ["figures", str(tmp_path / "case.pdf"),
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "out" / "figures.json").read_text())
    assert len(records) == len(truth.figures)
    for record in records:
        assert set(record) == KEYS
        assert (tmp_path / "out" / record["file"]).stat().st_size > 0
        assert len(record["bbox"]) == 4 and record["page"] >= 1
    pair = [r for r in records if r["label"] == "Figure 2"]
    assert [r["panel"] for r in pair] == ["A", "B"]
    assert pair[1]["panel_caption"].startswith("Axial CT image")
    assert records[0]["file"].endswith(".jpg")
    assert "figure images" in result.output


def test_debug_draws_each_page(tmp_path):
    truth = make_case_report_pdf(tmp_path / "case.pdf", layout="two-column", seed=1)
    result = CliRunner().invoke(main, ["figures", str(tmp_path / "case.pdf"), "--out",
                                       str(tmp_path / "out"), "--debug"])
    assert result.exit_code == 0, result.output
    pages = sorted(p.name for p in (tmp_path / "out").glob("debug-page-*.png"))
    assert len(pages) == truth.pages


def test_json_prints_the_records_and_whole_keeps_figures_whole(tmp_path):
    truth = make_case_report_pdf(tmp_path / "case.pdf", seed=3)
    result = CliRunner().invoke(main, ["figures", str(tmp_path / "case.pdf"), "--out",
                                       str(tmp_path / "out"), "--json", "--whole"])
    assert result.exit_code == 0
    records = json.loads(result.stdout)
    assert len(records) == len(truth.whole_figures)
    assert all(r["panel"] is None for r in records)


def test_jats_with_images_beside_it(tmp_path):
    (tmp_path / "article.nxml").write_bytes(ARTICLE)
    composite, _ = composite_array(0, (1, 2))
    (tmp_path / "crj-42-g001.png").write_bytes(encode(composite, "PNG"))
    (tmp_path / "crj-42-g002.jpg").write_bytes(encode(radiograph_array(1)))
    result = CliRunner().invoke(main, ["figures", "--jats", str(tmp_path / "article.nxml"),
                                       "--out", str(tmp_path / "out"), "--json"])
    records = json.loads(result.stdout)
    assert [(r["label"], r["panel"]) for r in records] == [
        ("Figure 1", "A"), ("Figure 1", "B"), ("Figure 2", None)]
    assert result.exit_code == 1  # the fig-group's two images are missing: said, rest kept
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: article.nxml: graphic 'crj-42-g003a' left out: no image file beside it",
                      "Error: article.nxml: graphic 'crj-42-g003b' left out: no image file beside it"]


def test_jats_graphic_that_is_empty_or_garbage_is_one_error_line_each(tmp_path):
    (tmp_path / "article.nxml").write_bytes(ARTICLE)
    (tmp_path / "crj-42-g001.png").write_bytes(b"")
    (tmp_path / "crj-42-g002.jpg").write_bytes(b"\x00garbage, not an image" * 10)
    (tmp_path / "crj-42-g003a.jpg").write_bytes(encode(radiograph_array(1)))
    (tmp_path / "crj-42-g003b.jpg").write_bytes(encode(radiograph_array(2)))
    result = CliRunner().invoke(main, ["figures", "--jats", str(tmp_path / "article.nxml"),
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")] == [
        "Error: article.nxml: graphic 'crj-42-g001' left out: empty file (0 bytes)",
        "Error: article.nxml: graphic 'crj-42-g002' left out: not a readable image"]
    assert "Traceback" not in result.output
    records = json.loads((tmp_path / "out" / "figures.json").read_text())
    assert [(r["label"], r["panel"]) for r in records] == [("Figure 3", "A"), ("Figure 3", "B")]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["figures.json", *(r["file"] for r in records)])


def test_bad_pdf_is_one_error_line_and_exit_1(tmp_path):
    make_case_report_pdf(tmp_path / "case.pdf")
    (tmp_path / "bad.pdf").write_bytes(bad_pdfs((tmp_path / "case.pdf").read_bytes(),
                                                bomb_mb=1)["encrypted"])
    result = CliRunner().invoke(main, ["figures", str(tmp_path / "bad.pdf"), "--out",
                                       str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: bad.pdf: encrypted PDF (password required)"


def test_neither_or_both_inputs_is_a_usage_error(tmp_path):
    make_case_report_pdf(tmp_path / "case.pdf")
    runner = CliRunner()
    assert runner.invoke(main, ["figures", "--out", str(tmp_path)]).exit_code == 2
    both = ["figures", str(tmp_path / "case.pdf"), "--jats", str(tmp_path / "case.pdf"),
            "--out", str(tmp_path)]
    assert runner.invoke(main, both).exit_code == 2


def test_file_names_are_short_and_clean_whatever_the_label_and_panel():
    from cxrbank.commands.figures import _file_name
    from extract.records import Figure

    def name(label, panel):
        return _file_name(7, Figure(1, (0, 0, 1, 1), label, panel, "", None, b"", 1, 1, "x"))

    long = name("Radiographic findings " * 15, None)
    assert long.startswith("007-radiographic-findings-") and len(long) <= 4 + 60 + 4
    assert name("Figure 2", "\x7f") == "007-figure-2.png"
    assert name("Figure 2", "[") == "007-figure-2.png"
    assert name("Figure 2", "B") == "007-figure-2-B.png"
    assert name("Fig. 3/../é", "Aé") == "007-fig--3-A.png"


def test_jats_long_label_is_written_under_a_short_name(tmp_path):
    label = "Radiographic findings " * 15
    (tmp_path / "article.nxml").write_text(
        '<article xmlns:xlink="http://www.w3.org/1999/xlink"><body><fig id="f1"><label>'
        f'{label}</label><caption><p>Chest radiograph.</p></caption><graphic xlink:href="g1"/>'
        '</fig></body></article>')
    (tmp_path / "g1.jpg").write_bytes(encode(radiograph_array(1)))
    result = CliRunner().invoke(main, ["figures", "--jats", str(tmp_path / "article.nxml"),
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    (record,) = json.loads((tmp_path / "out" / "figures.json").read_text())
    assert len(record["file"]) < 80 and (tmp_path / "out" / record["file"]).is_file()
