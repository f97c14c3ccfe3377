"""models/: the tiny network learns, the cache decodes once, checkpoints resume, DDP runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

import models.data as data  # noqa: E402
from cxrbank.cli import main  # noqa: E402
from models.evaluate import evaluate_checkpoint, roc_auc  # noqa: E402
from models.train import TrainConfig, load_checkpoint, train  # noqa: E402
from tests.fixtures.torch_threads import one_torch_thread  # noqa: E402, F401
from tests.fixtures.twoclass_cxr import make_twoclass_collection  # noqa: E402

REPO = Path(__file__).resolve().parent.parent




@pytest.fixture(scope="module")
def collection_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("twoclass")
    make_twoclass_collection(root, per_class=40)
    return root


def tiny_config(root: Path, out: Path, **changes: object) -> TrainConfig:
    values: dict = dict(
        root=str(root), arch="tiny", size=32, epochs=8, batch_size=16, lr=3e-3, device="cpu",
        labels=("COVID-19",), out=str(out), patience=8, cache_dir=str(out / "cache"),
    )
    values.update(changes)
    return TrainConfig(**values)


def test_tiny_network_learns_two_classes_to_auc_above_0_9(collection_root, tmp_path):
    result = train(tiny_config(collection_root, tmp_path / "run"))
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0]
    assert result.best_score > 0.9
    report = evaluate_checkpoint(tmp_path / "run" / "best.pt", root=collection_root, rounds=200)
    covid = report["labels"]["COVID-19"]
    assert covid["auc"] > 0.9
    assert covid["n"] == report["rows"] > 0
    assert covid["auc_ci95"][0] <= covid["auc"] <= covid["auc_ci95"][1]
    assert set(covid["by_source"]) == {"site-a.example", "site-b.example"}


def test_cache_decodes_each_image_once_across_epochs_and_runs(
    collection_root, tmp_path, monkeypatch
):
    decoded: list[Path] = []
    real_decode = data.decode_image

    def counting_decode(path: Path, size: int) -> np.ndarray:
        decoded.append(path)
        return real_decode(path, size)

    monkeypatch.setattr(data, "decode_image", counting_decode)
    config = tiny_config(collection_root, tmp_path / "run", epochs=3, cache_dir=str(tmp_path / "c"))
    first = train(config)
    used = first.decoded
    assert used == len(decoded) == len(set(decoded)) > 0
    assert first.epochs_run == 3
    second = train(tiny_config(collection_root, tmp_path / "run2", epochs=3,
                               cache_dir=str(tmp_path / "c")))
    assert len(decoded) == used  # no image decoded again: epochs and runs read the memmap
    assert second.decoded == 0 and second.reused == used
    assert (tmp_path / "c" / "32px" / "pixels.u8").stat().st_size == used * 32 * 32


def test_checkpoint_resumes_where_an_interrupted_run_stopped(collection_root, tmp_path):
    full = train(tiny_config(collection_root, tmp_path / "full", epochs=4))
    calls = []

    def interrupt_in_third_epoch(items, length, label):
        calls.append(label)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return items

    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(collection_root, tmp_path / "part", epochs=4),
              progress=interrupt_in_third_epoch)
    assert load_checkpoint(tmp_path / "part" / "last.pt")["epoch"] == 2
    resumed = train(tiny_config(
        collection_root, tmp_path / "part", epochs=4, resume=str(tmp_path / "part" / "last.pt"),
    ))
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    for mine, theirs in zip(resumed.history, full.history, strict=True):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-3)
    state = load_checkpoint(tmp_path / "part" / "last.pt")
    assert state["epoch"] == 4
    run = json.loads((tmp_path / "part" / "run.json").read_text())
    assert len(run["split_hash"]) == 64 and run["split_hash"] == state["split_hash"]
    assert run["config"]["resume"].endswith("last.pt")
    assert "release" in run and state["release"] is None


def test_resume_refuses_a_checkpoint_of_another_arch(collection_root, tmp_path):
    train(tiny_config(collection_root, tmp_path / "run", epochs=1))
    config = tiny_config(collection_root, tmp_path / "run", arch="resnet50",
                         resume=str(tmp_path / "run" / "last.pt"))
    with pytest.raises(data.DataError, match="is a tiny run, not resnet50"):
        train(config)


def test_release_is_recorded_in_checkpoint_and_model_card(collection_root, tmp_path):
    train(tiny_config(collection_root, tmp_path / "run", epochs=1, release="2026.11"))
    assert load_checkpoint(tmp_path / "run" / "best.pt")["release"] == "2026.11"
    evaluate_checkpoint(tmp_path / "run" / "best.pt", root=collection_root, rounds=0)
    card = (tmp_path / "run" / "best-test.model-card.md").read_text()
    assert "Release: 2026.11" in card
    assert "DeGrave" in card and "Nature Machine Intelligence" in card


def test_ddp_runs_two_gloo_processes_under_torchrun(collection_root, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "models.train", "--arch", "tiny", "--size", "32", "--epochs", "2",
         "--batch-size", "8", "--device", "cpu", "--labels", "COVID-19", "--root",
         str(collection_root), "--out", str(out), "--json"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = json.loads(completed.stdout)  # one JSON document: only rank 0 reports
    assert summary["epochs_run"] == 2
    assert json.loads((out / "run.json").read_text())["world_size"] == 2
    assert load_checkpoint(out / "best.pt")["epoch"] >= 1


def test_train_and_evaluate_commands_report_json(collection_root, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(main, [
        "train", "--arch", "tiny", "--size", "32", "--epochs", "2", "--batch-size", "16",
        "--device", "cpu", "--labels", "COVID-19", "--fold", "1", "--root", str(collection_root),
        "--out", str(out), "--json",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["labels"] == ["COVID-19"] and summary["epochs_run"] == 2
    assert json.loads((out / "run.json").read_text())["config"]["fold"] == 1
    result = runner.invoke(main, [
        "evaluate", str(out / "best.pt"), "--split", "val", "--bootstrap", "50",
        "--root", str(collection_root), "--json",
    ])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["split"] == "val" and report["fold"] == 1
    assert (out / "best-val.metrics.json").is_file()
    assert (out / "best-val.model-card.md").is_file()


def test_train_command_without_split_is_one_error_line(tmp_path):
    make_twoclass_collection(tmp_path, per_class=2)
    (tmp_path / "splits" / "partition.tsv").unlink()
    result = CliRunner().invoke(main, ["train", "--arch", "tiny", "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert "run `cxrbank split` first" in result.output


def test_labels_mask_todo_rows_and_findings_above_the_label():
    rows = [
        {"finding": "Pneumonia/Viral/COVID-19"},
        {"finding": "No Finding"},
        {"finding": "todo"},
        {"finding": "Pneumonia/Viral"},
        {"finding": "COVID-19"},  # upstream's old flat value
        {"finding": "Pneumonia/Bacterial/Streptococcus"},
    ]
    targets, known = data.label_matrix(rows, ["COVID-19", "Viral"])
    assert targets[:, 0].tolist() == [1, 0, 0, 0, 1, 0]
    assert known[:, 0].tolist() == [True, True, False, False, True, True]
    assert targets[:, 1].tolist() == [1, 0, 0, 1, 1, 0]
    assert known[:, 1].tolist() == [True, True, False, True, True, True]


def test_view_and_modality_filters_keep_frontal_xrays():
    rows = [
        {"view": "PA", "modality": "X-ray"}, {"view": "L", "modality": "X-ray"},
        {"view": "AP Supine", "modality": "X-ray"}, {"view": "Axial", "modality": "CT"},
    ]
    assert len(data.select_rows(rows, data.FRONTAL_VIEWS, ["X-ray"])) == 2
    assert len(data.select_rows(rows, ["*"], ["*"])) == 4
    assert len(data.select_rows(rows, ["*"], ["CT"])) == 1


def test_undecodable_image_is_left_out_with_its_reason(tmp_path):
    collection = make_twoclass_collection(tmp_path, per_class=2)
    rows = collection.read_rows()
    collection.image_path(rows[0]).write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    rows[0]["sha256"] = "0" * 64
    prepared = data.prepare_dataset(tmp_path, rows[:3], ["COVID-19"], 32)
    assert len(prepared.dataset) == 2
    assert len(prepared.failures) == 1 and "cannot decode" in prepared.failures[0][1]


def test_cache_ignores_pixels_written_after_a_crash(tmp_path):
    collection = make_twoclass_collection(tmp_path, per_class=2)
    files = [(collection.image_path(r), r["sha256"]) for r in collection.read_rows()[:2]]
    first = data.ensure_cached(files[:1], tmp_path / "cache", 32)
    with open(tmp_path / "cache" / "32px" / "pixels.u8", "ab") as handle:
        handle.write(b"\x07" * 100)  # a crash between pixels and index
    second = data.ensure_cached(files, tmp_path / "cache", 32)
    assert second.decoded == 1 and second.slots == [0, 1]
    np.testing.assert_array_equal(second.pixels[0], first.pixels[0])
    assert (tmp_path / "cache" / "32px" / "pixels.u8").stat().st_size == 2 * 32 * 32


def test_no_rows_give_an_empty_dataset(tmp_path):
    prepared = data.prepare_dataset(tmp_path, [], ["COVID-19"], 32)
    assert len(prepared.dataset) == 0 and prepared.decoded == 0


def test_roc_auc_counts_ties_half_and_needs_both_classes():
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert np.isnan(roc_auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_random_affine_keeps_shape_and_zero_ranges_are_identity():
    x = torch.rand(4, 1, 32, 32)
    moved = data.random_affine(x, generator=torch.Generator().manual_seed(0))
    assert moved.shape == x.shape and not torch.allclose(moved, x)
    still = data.random_affine(x, degrees=0, translate=0, scale=0)
    torch.testing.assert_close(still, x, atol=1e-5, rtol=0)


def test_xrv_normalisation_spans_minus_to_plus_1024():
    images = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    assert data.to_input(images, "xrv").flatten().tolist() == [-1024.0, 1024.0]
    assert data.to_input(images, "unit").flatten().tolist() == [-1.0, 1.0]
