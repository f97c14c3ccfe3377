"""`cxrbank evaluate` and `train --resume` (round-2 review): a model's own evaluation is kept,
evaluation works after new rows arrived, and checkpoints of the old --resume bug resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cxrbank.collection import Collection, NewImage  # noqa: E402
from models.checkpoints import load_checkpoint, save_checkpoint  # noqa: E402
from tests.fixtures.torch_threads import one_torch_thread  # noqa: E402, F401
from tests.fixtures.twoclass_cxr import _image, make_twoclass_collection  # noqa: E402
from tests.test_models_runs import TRAIN, errors, run  # noqa: E402

EVALUATE = ("--bootstrap", "0", "--device", "cpu", "--json")


def evaluate(*args: str) -> tuple[int, dict, str]:
    code, out, err = run("evaluate", *args, *EVALUATE)
    return code, (json.loads(out) if code == 0 else {}), err


def release_rows(root: Path, version: str, part: str = "test") -> set[str]:
    lines = (root / "releases" / version / "partition.tsv").read_text().splitlines()[1:]
    return {line.split("\t")[0] for line in lines if line.split("\t")[2] == part}


def frontal(root: Path) -> set[str]:
    return {r["filename"] for r in Collection.open(root).read_rows()
            if r["view"] in ("PA", "AP") and r["modality"] == "X-ray"}


def test_a_plain_evaluate_of_a_release_model_is_on_its_release_and_keeps_its_own_result(
        tmp_path):
    root = tmp_path / "c"
    collection = make_twoclass_collection(root, per_class=8)
    assert run("release", "v1", "--root", str(root))[0] == 0
    out = tmp_path / "v1"
    assert run(*TRAIN, "--epochs", "1", "--release", "v1", "--root", str(root),
               "--out", str(out))[0] == 0
    with collection.editing() as rows:  # the working collection moves on: v1 does not
        for row in rows[:6]:
            row["finding"] = "todo"
    code, report, err = evaluate(str(out / "best.pt"), "--root", str(root))
    assert code == 0, err
    assert (report["release"], report["evaluated_release"], report["excluded"]) == ("v1", "v1",
                                                                                     None)
    assert report["rows"] == len(release_rows(root, "v1") & frontal(root))
    own = json.loads((out / "best-test.metrics.json").read_text())
    assert own["evaluated_release"] == "v1" and own["rows"] == report["rows"]
    assert sorted(p.name for p in out.glob("best-test*")) == [
        "best-test.metrics.json", "best-test.model-card.md"]


def test_a_model_evaluated_on_other_data_leaves_out_its_patients_beside_its_own_result(
        tmp_path):
    root = tmp_path / "c"
    make_twoclass_collection(root, per_class=8)
    out = tmp_path / "work"
    assert run(*TRAIN, "--epochs", "1", "--root", str(root), "--out", str(out))[0] == 0
    code, own, err = evaluate(str(out / "best.pt"), "--root", str(root))
    assert code == 0, err and own["evaluated_release"] is None and own["excluded"] is None
    own_bytes = (out / "best-test.metrics.json").read_bytes()
    path = root / "splits" / "partition.tsv"
    lines = path.read_text().splitlines()
    moved = [line.split("\t")[0] for line in lines[1:] if "\ttrain\t" in line][:3]
    path.write_text("\n".join([lines[0]] + [
        line.replace("\ttrain\t", "\ttest\t") if line.split("\t")[0] in moved else line
        for line in lines[1:]]) + "\n")  # a new split: 3 of the model's training rows now test
    assert run("release", "v2", "--root", str(root))[0] == 0
    path.write_text("\n".join(lines) + "\n")  # the working split is the model's again
    code, other, err = evaluate(str(out / "best.pt"), "--release", "v2", "--root", str(root))
    assert code == 0, err
    assert other["evaluated_release"] == "v2"
    assert other["excluded"] == {"rows": 3, "patients": 3, "why": "in the training or "
                                 "validation partition best.pt used"}
    assert other["rows"] == len((release_rows(root, "v2") & frontal(root)) - set(moved))
    assert (out / "best-test.metrics.json").read_bytes() == own_bytes
    assert json.loads((out / "best-test-on-v2.metrics.json").read_text())["excluded"]["rows"] == 3


def test_evaluate_after_new_rows_arrived_warns_and_evaluates_the_split_rows(tmp_path):
    root = tmp_path / "c"
    collection = make_twoclass_collection(root, per_class=8)
    out = tmp_path / "run"
    assert run(*TRAIN, "--epochs", "1", "--root", str(root), "--out", str(out))[0] == 0
    _, before, _ = evaluate(str(out / "best.pt"), "--root", str(root))
    rng = np.random.default_rng(5)
    collection.add_images([NewImage(_image(True, rng, "png"), f"new{i}.png", {
        "patientid": str(2000 + i), "finding": "Pneumonia/Viral/COVID-19", "view": "PA",
        "modality": "X-ray"}) for i in range(2)])
    code, report, err = evaluate(str(out / "best.pt"), "--root", str(root))
    assert code == 0, err
    assert "Warning: 2 of " in err and "rows are in no split (added after `cxrbank split`) " \
        "and are not evaluated; run `cxrbank split` to place them" in err
    assert report["rows"] == before["rows"]
    code, _, err = run(*TRAIN, "--epochs", "1", "--root", str(root), "--out",
                       str(tmp_path / "again"))
    assert code == 1 and "2 of " in err and "rows added after the split" in err


def test_evaluate_after_new_rows_still_refuses_a_patient_in_two_partitions(tmp_path):
    root = tmp_path / "c"
    collection = make_twoclass_collection(root, per_class=8)
    out = tmp_path / "run"
    assert run(*TRAIN, "--epochs", "1", "--root", str(root), "--out", str(out))[0] == 0
    placed = dict(line.split("\t")[:3:2] for line in
                  (root / "splits" / "partition.tsv").read_text().splitlines()[1:])
    with collection.editing() as rows:
        test_row = next(r for r in rows if placed[r["filename"]] == "test")
        train_row = next(r for r in rows if placed[r["filename"]] == "train")
        test_row["patientid"] = train_row["patientid"]
    collection.add_images([NewImage(_image(True, np.random.default_rng(6), "png"), "new.png", {
        "patientid": "3000", "finding": "No Finding", "view": "PA", "modality": "X-ray"})])
    code, _, err = run("evaluate", str(out / "best.pt"), "--root", str(root), *EVALUATE)
    assert code == 1 and len(errors(err)) == 1
    assert f"patient(s) span several partitions in splits/partition.tsv (first: " \
        f"{train_row['patientid']} in test, train;" in err


def test_a_checkpoint_of_the_old_resume_bug_resumes_with_the_labels_it_trained_on(tmp_path):
    root, out = tmp_path / "c", tmp_path / "run"
    make_twoclass_collection(root, per_class=8)
    code, _, err = run(*[a for a in TRAIN if a not in ("--labels", "COVID-19")], "--epochs", "2",
                       "--root", str(root), "--out", str(out))
    assert code == 0, err
    state = load_checkpoint(out / "last.pt")
    trained = list(state["labels"])
    assert len(trained) > 1
    state["config"]["labels"] = ["COVID-19"]  # what a resumed run under the old bug saved
    save_checkpoint(out / "last.pt", state)
    code, _, err = run("train", "--resume", str(out / "last.pt"), "--epochs", "3", "--root",
                       str(root), "--device", "cpu")
    assert code == 0, err
    resumed = load_checkpoint(out / "last.pt")
    assert resumed["epoch"] == 3 and list(resumed["labels"]) == trained
    assert resumed["config"]["labels"] == trained
    code, _, err = run("train", "--resume", str(out / "last.pt"), "--epochs", "4", "--labels",
                       "COVID-19", "--root", str(root), "--device", "cpu")
    assert code == 1
    assert errors(err) == [f"Error: {out / 'last.pt'} was trained with --labels "
                           f"{','.join(trained)}; this run asks COVID-19: leave --labels out to "
                           "continue that run with its own settings, or start a new run (--init "
                           "to start from its weights)"]
