"""`cxrbank evaluate`/`train` on files that are not checkpoints and on unknown --labels."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from cxrbank.cli import main  # noqa: E402
from tests.fixtures.twoclass_cxr import make_twoclass_collection  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stdout, result.stderr


def not_checkpoints(folder: Path) -> dict[str, tuple[Path, str]]:
    """Files named like checkpoints that are not: path and the reason the error gives."""
    made = {
        "text.pt": (b"hello world\n" * 100, "not a PyTorch file"),
        "empty.pt": (b"", "empty file"),
        "paper.pdf": ((REPO / "examples" / "case-report.pdf").read_bytes(), "not a PyTorch file"),
    }
    files = {}
    for name, (data, why) in made.items():
        (folder / name).write_bytes(data)
        files[name] = (folder / name, why)
    torch.save({"weight": torch.zeros(2)}, folder / "dict.pt")
    files["dict.pt"] = (folder / "dict.pt", "no model, config, labels")
    torch.save([1, 2], folder / "list.pt")
    files["list.pt"] = (folder / "list.pt", "holds a list")
    return files


def test_evaluate_on_files_that_are_not_checkpoints_is_one_error_line(tmp_path):
    for path, why in not_checkpoints(tmp_path).values():
        code, _, err = run("evaluate", str(path), "--root", str(tmp_path / "c"))
        assert code == 1, (path, err)
        assert err.splitlines() == [f"Error: {path}: not a cxrbank checkpoint ({why})"]


def test_train_resume_from_a_non_checkpoint_is_one_error_line(tmp_path):
    make_twoclass_collection(tmp_path / "c", per_class=2)
    for path, why in not_checkpoints(tmp_path).values():
        code, _, err = run("train", "--arch", "tiny", "--resume", str(path),
                           "--root", str(tmp_path / "c"))
        assert code == 1, (path, err)
        assert err.splitlines() == [f"Error: {path}: not a cxrbank checkpoint ({why})"]


def test_train_with_a_label_no_row_has_is_a_usage_error(tmp_path):
    make_twoclass_collection(tmp_path, per_class=4)
    code, _, err = run("train", "--arch", "tiny", "--size", "32", "--epochs", "1",
                       "--labels", "Martian,COVID-19", "--root", str(tmp_path))
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: Invalid value for '--labels': no training row has label 'Martian'; "
                      "labels here: COVID-19, No Finding, Pneumonia, Viral"]
    assert not (tmp_path / "runs").exists()
