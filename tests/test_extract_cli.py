"""Tests for the `cxrbank facts` and `cxrbank imagetype` commands."""

from __future__ import annotations

import io
import json

from click.testing import CliRunner
from PIL import Image, ImageDraw

from cxrbank.cli import main


def run(*args: str, stdin: bytes | None = None):
    return CliRunner().invoke(main, list(args), input=stdin)


def chart_png() -> bytes:
    image = Image.new("RGB", (300, 200), "white")
    draw = ImageDraw.Draw(image)
    for i, h in enumerate((50, 120, 90)):
        draw.rectangle((30 + i * 80, 180 - h, 80 + i * 80, 180), fill=("red", "green", "blue")[i])
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_facts_prints_one_object_for_one_patient() -> None:
    result = run("facts", "A 65-year-old man with COVID-19; PA chest radiograph on day 3.")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["age"] == 65 and doc["sex"] == "M"
    assert doc["finding"] == "Pneumonia/Viral/COVID-19"
    assert (doc["view"], doc["modality"], doc["offset"]) == ("PA", "X-ray", 3)
    assert doc["survival"] is None
    assert doc["evidence"]["age"] == "65-year-old"


def test_facts_reads_stdin_with_dash_and_without_text() -> None:
    for args in (("facts", "-"), ("facts",)):
        result = run(*args, stdin=b"A 40-year-old woman.")
        assert result.exit_code == 0
        assert json.loads(result.output)["sex"] == "F"


def test_facts_lists_several_patients() -> None:
    text = "Patient 1: a 45-year-old man. Patient 2: a 39-year-old woman."
    doc = json.loads(run("facts", text).output)
    assert [(d["patient"], d["age"]) for d in doc] == [("Patient 1", 45), ("Patient 2", 39)]


def test_facts_for_a_panel() -> None:
    caption = "(A) PA chest radiograph on admission. (B) Axial CT on day 4."
    doc = json.loads(run("facts", caption, "--panel", "B").output)
    assert (doc["view"], doc["modality"], doc["offset"]) == ("Axial", "CT", 4)


def test_facts_of_empty_input_are_all_null() -> None:
    result = run("facts", "-", stdin=b"")
    assert result.exit_code == 0
    assert json.loads(result.output)["age"] is None


def test_facts_refuses_binary_input_with_one_error_line() -> None:
    png_like = b"\x89PNG\r\n\x1a\n\x00\x00 TB \x00\xff 7f \x00"
    for stdin in (bytes(range(256)) * 100, png_like):
        result = run("facts", "-", stdin=stdin)
        assert result.exit_code == 1
        assert result.stdout == ""
        assert result.stderr.strip() == "Error: -: binary input, not text"


def test_facts_reads_a_1mb_text() -> None:
    text = ("A 65-year-old man with COVID-19. " + "Bilateral opacities are seen. " * 36000)
    result = run("facts", "-", stdin=text.encode())
    assert result.exit_code == 0
    assert json.loads(result.output)["age"] == 65


def test_facts_panel_must_be_one_letter_and_case_text_needs_it(tmp_path) -> None:
    assert run("facts", "caption", "--panel", "ZZ").exit_code == 2
    assert run("facts", "caption", "--panel", "").exit_code == 2
    case = tmp_path / "case.txt"
    case.write_text("A 65-year-old man.")
    assert run("facts", "caption", "--case-text", str(case)).exit_code == 2


def test_imagetype_one_json_line_per_file_and_errors_kept_apart(tmp_path) -> None:
    good = tmp_path / "chart.png"
    good.write_bytes(chart_png())
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = CliRunner().invoke(main, ["imagetype", str(good), str(bad), str(good)])
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(good), str(good)]
    assert lines[0]["type"] == "other" and 0 <= lines[0]["score"] <= 1
    assert result.stderr.count("Error:") == 1 and "broken.png" in result.stderr


def test_imagetype_reports_a_directory_and_classifies_the_rest(tmp_path) -> None:
    good = tmp_path / "chart.png"
    good.write_bytes(chart_png())
    result = CliRunner().invoke(main, ["imagetype", str(tmp_path), str(good)])
    assert result.exit_code == 1
    assert [json.loads(line)["file"] for line in result.stdout.splitlines()] == [str(good)]
    assert result.stderr.count("Error:") == 1


def test_imagetype_needs_a_file() -> None:
    assert run("imagetype").exit_code == 2
