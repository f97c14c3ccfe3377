"""Runs that must not go wrong silently: resuming (schedule, settings, stripped checkpoints), run
folders never overwritten by accident, and splits that no longer fit the rows."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from cxrbank.cli import main  # noqa: E402
from cxrbank.collection import NewImage  # noqa: E402
from models.checkpoints import load_checkpoint, save_checkpoint  # noqa: E402
from models.data import read_partition  # noqa: E402
from tests.fixtures.torch_threads import one_torch_thread  # noqa: E402, F401
from tests.fixtures.twoclass_cxr import _image, make_twoclass_collection  # noqa: E402

LR = 0.004
TRAIN = ("train", "--arch", "tiny", "--size", "32", "--batch-size", "16", "--device", "cpu",
         "--labels", "COVID-19", "--lr", str(LR), "--no-augment")




def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def partition_of(root: Path) -> dict[str, str]:
    return {name: e.partition for name, e in read_partition(root / "splits" /
                                                             "partition.tsv").items()}


def test_resumed_finished_run_given_more_epochs_follows_the_longer_cosine_schedule(tmp_path):
    root, out = tmp_path / "c", tmp_path / "run"
    make_twoclass_collection(root, per_class=8)
    code, _, err = run(*TRAIN, "--epochs", "2", "--root", str(root), "--out", str(out))
    assert code == 0, err
    before = load_checkpoint(out / "last.pt")
    assert before["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)
    # only --resume and --epochs: size, labels, lr, augmentation come from the checkpoint
    code, stdout, err = run("train", "--resume", str(out / "last.pt"), "--epochs", "4",
                            "--device", "cpu", "--root", str(root), "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["out"] == str(out) and summary["labels"] == ["COVID-19"]
    lrs = [h["lr"] for h in summary["history"]]
    # epochs 1-2 ran on the 2-epoch schedule; 3-4 continue the 4-epoch one (not at lr 0)
    assert lrs[2:] == pytest.approx([LR * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in (2, 3)])
    after = load_checkpoint(out / "last.pt")
    assert after["epoch"] == 4 and after["config"]["size"] == 32
    assert not torch.equal(before["model"]["classifier.weight"], after["model"]["classifier.weight"])


def test_resumed_interrupted_run_given_more_epochs_uses_the_new_length(tmp_path):
    root, out = tmp_path / "c", tmp_path / "run"
    make_twoclass_collection(root, per_class=8)
    assert run(*TRAIN, "--epochs", "2", "--root", str(root), "--out", str(out))[0] == 0
    state = load_checkpoint(out / "last.pt")
    state["config"]["epochs"] = 4  # as if stopped after epoch 2 of 4
    save_checkpoint(out / "last.pt", state)
    code, stdout, err = run("train", "--resume", str(out / "last.pt"), "--epochs", "8",
                            "--device", "cpu", "--root", str(root), "--json")
    assert code == 0, err
    lrs = [h["lr"] for h in json.loads(stdout)["history"]]
    assert lrs[2] == pytest.approx(LR * 0.5 * (1 + math.cos(math.pi * 2 / 8)))  # 8.5e-4 x 4


def test_resume_refuses_changed_settings_and_checkpoints_it_cannot_continue(tmp_path):
    root, out = tmp_path / "c", tmp_path / "run"
    make_twoclass_collection(root, per_class=8)
    assert run(*TRAIN, "--epochs", "1", "--root", str(root), "--out", str(out))[0] == 0
    last = str(out / "last.pt")
    for extra, expected in (
        (("--size", "64"), "was trained with --size 32; this run asks 64"),
        (("--normalization", "xrv"), "was trained with --normalization unit; this run asks xrv"),
        (("--labels", "Viral"), "was trained with --labels COVID-19; this run asks Viral"),
        (("--views", "*"), "was trained with --views PA,AP,AP Supine,AP Erect; this run asks *"),
    ):
        code, _, err = run("train", "--resume", last, "--epochs", "3", *extra,
                           "--device", "cpu", "--root", str(root))
        assert code == 1, err
        assert errors(err) == [f"Error: {last} {expected}: leave {extra[0]} out to continue that "
                               "run with its own settings, or start a new run (--init to start "
                               "from its weights)"]
    code, _, err = run("train", "--resume", last, "--epochs", "1", "--device", "cpu",
                       "--root", str(root))
    assert code == 1 and "has trained 1 epochs already; pass --epochs N with N > 1" in err

    state = load_checkpoint(last)
    slim = tmp_path / "slim.pt"
    torch.save({k: state[k] for k in ("model", "config", "labels")}, slim)
    code, _, err = run("train", "--resume", str(slim), "--epochs", "3", "--device", "cpu",
                       "--out", str(tmp_path / "other"), "--root", str(root))
    assert code == 1
    assert errors(err) == [f"Error: {slim}: cannot resume from it (no optimizer, epoch; resume "
                           "from a last.pt written by `cxrbank train`), or start a new run from "
                           f"its weights with --init {slim}"]
    state["model"]["classifier.weight"] = torch.zeros(3, 128)
    save_checkpoint(tmp_path / "bent.pt", state)
    code, _, err = run("train", "--resume", str(tmp_path / "bent.pt"), "--epochs", "3",
                       "--device", "cpu", "--out", str(tmp_path / "other"), "--root", str(root))
    assert code == 1 and "Traceback" not in err
    assert len(errors(err)) == 1 and "its weights do not fit a tiny network with 1 labels" in err


def test_retraining_on_a_new_release_never_overwrites_the_previous_model(tmp_path):
    root = tmp_path / "c"
    collection = make_twoclass_collection(root, per_class=8)
    assert run("release", "v1", "--root", str(root))[0] == 0
    with collection.editing() as rows:
        rows[0]["finding"] = "todo"
    assert run("release", "v2", "--root", str(root))[0] == 0
    assert run(*TRAIN, "--epochs", "1", "--release", "v1", "--root", str(root))[0] == 0
    assert run("evaluate", str(root / "runs" / "tiny" / "best.pt"), "--bootstrap", "0",
               "--release", "v1", "--root", str(root))[0] == 0
    code, _, err = run(*TRAIN, "--epochs", "1", "--release", "v2", "--root", str(root))
    assert code == 1
    folder = root / "runs" / "tiny"
    assert errors(err) == [f"Error: {folder} holds a run already (trained on release v1): pass "
                           f"--force to replace it, --resume {folder / 'last.pt'} to continue it,"
                           " or --out DIR for a new run"]
    assert load_checkpoint(folder / "best.pt")["release"] == "v1"
    assert json.loads((folder / "run.json").read_text())["release"] == "v1"
    code, _, err = run(*TRAIN, "--epochs", "1", "--release", "v2", "--force", "--root", str(root))
    assert code == 0, err
    assert load_checkpoint(folder / "best.pt")["release"] == "v2"
    assert not (folder / "best-test.metrics.json").exists()  # v1's evaluation went with v1


def test_training_on_a_release_reads_files_dedup_moved_aside_and_refuses_lost_ones(tmp_path):
    root = tmp_path / "c"
    collection = make_twoclass_collection(root, per_class=8)
    assert run("release", "v1", "--root", str(root))[0] == 0
    train_rows = sum(1 for r in collection.read_rows()
                     if partition_of(root)[r["filename"]] == "train" and r["view"] in ("PA", "AP"))
    moved = root / ".cxrbank" / "removed" / "20260101T000000Z" / "img000.png"
    moved.parent.mkdir(parents=True)
    shutil.move(root / "images" / "img000.png", moved)  # what `dedup --apply` does
    with collection.editing() as rows:
        rows[:] = [r for r in rows if r["filename"] != "img000.png"]
    code, stdout, err = run(*TRAIN, "--epochs", "1", "--release", "v1", "--root", str(root),
                            "--json")
    assert code == 0, err
    assert json.loads(stdout)["left_out"] == []
    assert json.loads((root / "runs" / "tiny" / "run.json").read_text())["train_rows"] == train_rows
    moved.unlink()
    code, _, err = run(*TRAIN, "--epochs", "1", "--release", "v1", "--force", "--root", str(root))
    assert code == 1
    assert errors(err) == ["Error: release v1: 1 image file(s) are missing (first: "
                           "images/img000.png) and not in .cxrbank/removed/ with their sha256: "
                           "restore them (e.g. `git checkout data-v1 -- images`) to use exactly "
                           "that release"]


def test_train_and_evaluate_refuse_a_patient_in_two_partitions(tmp_path):
    root = tmp_path / "c"
    collection = make_twoclass_collection(root, per_class=8)
    assert run(*TRAIN, "--epochs", "1", "--root", str(root))[0] == 0
    placed = partition_of(root)
    with collection.editing() as rows:
        test_row = next(r for r in rows if placed[r["filename"]] == "test")
        train_row = next(r for r in rows if placed[r["filename"]] == "train")
        test_row["patientid"] = train_row["patientid"]
    expected = (f"patient(s) span several partitions in splits/partition.tsv (first: "
                f"{train_row['patientid']} in test, train;")
    code, _, err = run(*TRAIN, "--epochs", "1", "--force", "--root", str(root))
    assert code == 1 and len(errors(err)) == 1 and expected in err
    assert err.rstrip().endswith("run `cxrbank split` first")
    code, _, err = run("evaluate", str(root / "runs" / "tiny" / "best.pt"), "--bootstrap", "0",
                       "--root", str(root))
    assert code == 1 and len(errors(err)) == 1 and expected in err


def test_train_refuses_a_patient_in_the_validation_fold_and_a_training_fold(tmp_path):
    root = tmp_path / "c"
    collection = make_twoclass_collection(root, per_class=8)
    entries = read_partition(root / "splits" / "partition.tsv")
    with collection.editing() as rows:
        fold1 = next(r for r in rows if entries[r["filename"]].partition == "train"
                     and entries[r["filename"]].fold == "1")
        fold0 = next(r for r in rows if entries[r["filename"]].partition == "train"
                     and entries[r["filename"]].fold == "0")
        fold1["patientid"] = fold0["patientid"]
    code, _, err = run(*TRAIN, "--epochs", "1", "--fold", "1", "--root", str(root))
    assert code == 1
    assert errors(err) == [f"Error: 1 patient(s) have images in several of train/val/test with "
                           f"--fold 1 (first: {fold0['patientid']} in train, val; ids changed "
                           "since the split): run `cxrbank split` first"]
    assert run(*TRAIN, "--epochs", "1", "--root", str(root))[0] == 0  # no fold: no leak


def test_train_refuses_rows_added_after_the_split(tmp_path):
    root = tmp_path / "c"
    collection = make_twoclass_collection(root, per_class=8)
    rng = np.random.default_rng(5)
    collection.add_images([
        NewImage(_image(i % 2 == 0, rng, "png"), f"new{i}.png",
                 {"patientid": str(700 + i), "finding": "No Finding", "view": "PA",
                  "modality": "X-ray"}) for i in range(3)])
    code, _, err = run(*TRAIN, "--epochs", "1", "--root", str(root))
    assert code == 1
    assert errors(err) == ["Error: 3 of 22 rows are not in splits/partition.tsv (first: new0.png;"
                           " rows added after the split): run `cxrbank split` first"]
    assert not (root / "runs").exists()


def test_validation_without_both_classes_is_refused_before_training(tmp_path):
    root = tmp_path / "c"
    collection = make_twoclass_collection(root, per_class=8)
    path = root / "splits" / "partition.tsv"
    findings = {r["filename"]: r["finding"] for r in collection.read_rows()}
    lines = path.read_text().splitlines()
    fixed = [lines[0]] + [
        line.replace("\tval\t", "\ttrain\t") if "\tval\t" in line
        and findings[line.split("\t")[0]] != "No Finding" else line for line in lines[1:]]
    path.write_text("\n".join(fixed) + "\n")
    code, _, err = run(*TRAIN, "--epochs", "4", "--patience", "2", "--root", str(root))
    assert code == 1
    assert len(errors(err)) == 1
    assert "validation images hold no label with both positives and negatives (COVID-19: 0 " \
           "positive, " in err
    assert "run `cxrbank split --rebalance`" in err
    assert not (root / "runs").exists()


def test_release_option_errors_say_what_is_wrong(tmp_path):
    root = tmp_path / "c"
    make_twoclass_collection(root, per_class=4)
    code, _, err = run(*TRAIN, "--release", "../x", "--root", str(root))
    assert code == 2 and "'../x' is not a release name" in err
    code, _, err = run(*TRAIN, "--release", "v9", "--root", str(root))
    assert code == 1
    assert errors(err) == [f"Error: release v9 does not exist in {root / 'releases'} (releases "
                           "there: none); make it with `cxrbank release v9`"]
    assert run("release", "v1", "--root", str(root))[0] == 0
    code, _, err = run(*TRAIN, "--release", "v9", "--root", str(root))
    assert code == 1 and "(releases there: v1)" in err
    (tmp_path / "x.pt").write_bytes(b"x")
    code, _, err = run("evaluate", str(tmp_path / "x.pt"), "--release", "../x")
    assert code == 2 and "'../x' is not a release name" in err


def test_ct_modality_with_the_frontal_default_views_suggests_views_star(tmp_path):
    root = tmp_path / "c"
    make_twoclass_collection(root, per_class=4)
    code, _, err = run(*TRAIN, "--modality", "CT", "--root", str(root))
    assert code == 1
    assert errors(err) == ["Error: no row has views PA, AP, AP Supine, AP Erect and modality CT;"
                           " the 1 rows of that modality have views Axial: pass --views '*' (or"
                           " those views)"]



def test_findings_outside_the_taxonomy_are_labels_too():
    from models.data import label_matrix, label_vocabulary

    rows = [{"finding": "Pneumonia/Viral/RSV"}, {"finding": "Pneumonia/Viral/RSV "},
            {"finding": "Pneumonia/Viral"}, {"finding": "No Finding"}, {"finding": "todo"}]
    assert label_vocabulary(rows) == ["No Finding", "Pneumonia", "RSV", "Viral"]
    targets, known = label_matrix(rows, ["RSV"])
    assert targets[:, 0].tolist() == [1, 1, 0, 0, 0]
    assert known[:, 0].tolist() == [True, True, False, True, False]  # "Viral" says nothing on RSV
