"""The GitHub Actions workflows: valid structure, and every cxrbank call names a real command and options."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import yaml

from cxrbank.cli import main

WORKFLOWS = sorted((Path(__file__).resolve().parent.parent / ".github" / "workflows").glob("*.yml"))


def cxrbank_calls(workflow: dict) -> list[list[str]]:
    calls = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "")
            for line in re.split(r"\n|&&|\|\|", script.replace(">-\n", " ")):
                line = re.sub(r"\$\{\{[^}]*\}\}", "X", line).strip()
                if line.startswith("cxrbank "):
                    calls.append(shlex.split(line, comments=True))
    return calls


def resolve(tokens: list[str]) -> tuple[click.Command, list[str]]:
    """The click command a call reaches, and the options it passes."""
    context = click.Context(main)
    command: click.Command = main
    rest = tokens[1:]
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(context, rest[0])
        assert sub is not None, f"no command {rest[0]!r} in {' '.join(tokens)}"
        command, rest = sub, rest[1:]
    return command, [t.split("=")[0] for t in rest if t.startswith("--")]


def test_there_are_workflows_for_additions_crawls_and_retraining() -> None:
    names = {path.stem for path in WORKFLOWS}
    assert {"additions", "retrain"} <= names
    assert any("schedule" in (yaml.safe_load(p.read_text()).get(True) or {}) for p in WORKFLOWS)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_structure_and_cxrbank_calls(path: Path) -> None:
    workflow = yaml.safe_load(path.read_text())
    assert workflow["name"]
    assert workflow[True]  # YAML 1.1 reads the `on:` key as True
    assert workflow["jobs"]
    for job in workflow["jobs"].values():
        assert job["runs-on"] and job["steps"]
        assert all("uses" in step or "run" in step for step in job["steps"])
    calls = cxrbank_calls(workflow)
    assert calls, f"{path.name} runs no cxrbank command"
    for call in calls:
        command, options = resolve(call)
        known = {opt for param in command.params for opt in getattr(param, "opts", [])}
        for option in options:
            assert option in known, f"{path.name}: {' '.join(call)}: {option} is not an option"
