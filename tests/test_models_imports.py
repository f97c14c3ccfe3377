"""The ingest path never imports torch: models/ loads only inside train and evaluate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

PROBE = """
import importlib, json, pkgutil, sys
import cxrbank.cli, cxrbank.commands.models, extract, crawler, curation
from click.testing import CliRunner
CliRunner().invoke(cxrbank.cli.main, ["--help"])
CliRunner().invoke(cxrbank.cli.main, ["ingest", "--help"])
failed = []
for package in (extract, crawler, curation):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # another area's module in progress: reported, not hidden
            failed.append(f"{info.name}: {exc}")
print(json.dumps({"torch": "torch" in sys.modules, "models": [m for m in sys.modules
      if m == "models" or m.startswith("models.")], "failed": failed}))
"""


def test_cli_extract_crawler_and_curation_never_import_torch():
    completed = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=REPO, timeout=120,
        check=True,
    )
    found = json.loads(completed.stdout.strip().splitlines()[-1])
    assert found["torch"] is False, found
    assert found["models"] == [], found
