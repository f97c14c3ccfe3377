"""The CLI as a whole: every command answers --help, is documented, and start-up stays light."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cxrbank import __version__
from cxrbank.cli import COMMANDS, main

README = Path(__file__).resolve().parent.parent / "README.md"


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_answers_help(name: str) -> None:
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_in_the_readme_cli_reference(name: str) -> None:
    reference = README.read_text().split("## CLI reference", 1)[1]
    assert re.search(rf"^### `cxrbank {name}\b", reference, re.MULTILINE), f"{name} undocumented"


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["frobnicate"])
    assert result.exit_code == 2


def test_missing_collection_is_one_error_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["stats", "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {tmp_path}: no metadata.csv here (not a collection)"]


def test_help_imports_nothing_heavy() -> None:
    code = ("import sys, json; from click.testing import CliRunner; from cxrbank.cli import main;"
            " CliRunner().invoke(main, ['--help']);"
            " print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in"
            " ('torch', 'scrapy', 'pymupdf', 'fitz', 'pdfplumber', 'pandas', 'numpy', 'PIL'))))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(output.stdout) == []
