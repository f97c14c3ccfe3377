"""`cxrbank figures` and the PDF reader on bad output folders, bad limits and padded PDFs."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.cli import EXAMPLE, run


def test_output_folder_that_cannot_be_created_is_one_error_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = blocker / "figs"
    code, _, err = run("figures", str(EXAMPLE), "--out", str(out))
    assert code == 1
    assert err.splitlines() == [f"Error: cannot create {out}: Not a directory"]


@pytest.mark.parametrize("limit", ["0", "-5", "nan", "inf"])
def test_time_limit_must_be_a_finite_positive_number(limit, tmp_path):
    code, _, err = run("figures", str(EXAMPLE), "--out", str(tmp_path / "o"), "--time-limit", limit)
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith("Error: Invalid value for '--time-limit'")
    assert not (tmp_path / "o").exists()


def test_rerun_into_the_same_folder_replaces_the_previous_runs_files_only(tmp_path):
    out = tmp_path / "out"
    code, _, _ = run("figures", str(EXAMPLE), "--out", str(out), "--whole", "--debug")
    assert code == 0
    whole = json.loads((out / "figures.json").read_text())
    (out / "notes.txt").write_text("mine")  # a user's own file: never deleted
    code, _, err = run("figures", str(EXAMPLE), "--out", str(out))
    assert code == 0, err
    records = json.loads((out / "figures.json").read_text())
    assert len(records) > len(whole)  # panels now, not whole figures
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["figures.json", "notes.txt", *(r["file"] for r in records)])


def test_non_empty_folder_without_figures_json_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "001-figure-1.jpg").write_bytes(b"a user's file")
    code, _, err = run("figures", str(EXAMPLE), "--out", str(out))
    assert code == 1
    assert err.splitlines() == [f"Error: {out} is not empty and has no figures.json from an "
                                "earlier run; give a new or empty folder"]
    assert [p.name for p in out.iterdir()] == ["001-figure-1.jpg"]


def test_figures_json_naming_paths_outside_the_folder_deletes_nothing_outside(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (out / "figures.json").write_text(json.dumps([{"file": "../victim.txt"}, {"file": 3}]))
    code, _, err = run("figures", str(EXAMPLE), "--out", str(out))
    assert code == 0, err
    assert victim.read_text() == "keep"


def test_unreadable_figures_json_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "figures.json").write_text("{not json")
    code, _, err = run("figures", str(EXAMPLE), "--out", str(out))
    assert code == 1
    assert err.splitlines() == [f"Error: {out / 'figures.json'} is not a figures.json written by "
                                "cxrbank figures (JSONDecodeError); remove it or give another folder"]
    assert (out / "figures.json").read_text() == "{not json"
