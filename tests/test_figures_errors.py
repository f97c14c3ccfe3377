"""`cxrbank figures` and the PDF reader on bad output folders, bad limits and padded PDFs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cxrbank.cli import main

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "case-report.pdf"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stdout, result.stderr


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
