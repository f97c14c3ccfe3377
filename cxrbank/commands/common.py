"""What every command shares: the --root/--json options, error reporting and exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_PARTIAL = 1  # some of the work failed; each failure said in one line, the rest kept
EXIT_USAGE = 2


class CxrbankError(click.ClickException):
    """A domain error: printed as one `Error: ...` line, exit 1."""

    exit_code = EXIT_PARTIAL


def root_option(f: F) -> F:
    """Add `--root DIR` (default: the current directory) as a `root: Path` argument."""
    return click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=True,
        help="The collection directory.",
    )(f)


def json_option(f: F) -> F:
    """Add `--json` as an `as_json: bool` argument."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")(f)


def emit_json(obj: Any) -> None:
    """Print one JSON document to stdout."""
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def say_error(message: str) -> None:
    """One clear error line on stderr, for failures that do not stop the command."""
    click.echo(f"Error: {message}", err=True)


def say(message: str) -> None:
    """A progress or report line on stderr (stdout stays for results)."""
    click.echo(message, err=True)


def is_terminal() -> bool:
    return sys.stderr.isatty()
