"""`cxrbank split`: options, files, stability across runs, exit codes."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from cxrbank.cli import main
from cxrbank.schema import blank_row, canonical_finding
from tests.fixtures.split_collections import random_rows, write_collection


def run(*args: str):
    return CliRunner().invoke(main, ["split", *args], catch_exceptions=False)


def partition_lines(root) -> list[list[str]]:
    return [line.split("\t") for line in (root / "splits" / "partition.tsv").read_text().splitlines()]


def test_split_writes_the_four_files_and_reports(tmp_path):
    root = write_collection(tmp_path, random_rows(seed=1, patients=120))
    result = run("--root", str(root))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (root / "splits").iterdir()) == [
        "balance.json", "counts.tsv", "labels.tsv", "partition.tsv",
    ]
    assert "split " in result.output and "120 patients" in result.output
    assert "patient overlap 0" in result.output
    assert partition_lines(root)[0] == ["filename", "patientid", "partition", "fold"]


def test_json_report_has_sizes_balance_and_hash(tmp_path):
    root = write_collection(tmp_path, random_rows(seed=2, patients=200))
    result = run("--root", str(root), "--json", "--folds", "5", "--ratios", "3,1,1", "--seed", "4")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["patients"] == 200 and report["folds"] == 5
    assert sum(p["patients"] for p in report["partitions"].values()) == 200
    assert set(report["patient_overlap"].values()) == {0}
    folds = {int(line[3]) for line in partition_lines(root)[1:]}
    assert folds == set(range(5))
    from curation.split import split_hash

    assert report["split_hash"] == split_hash(root)


def test_second_run_keeps_patients_and_places_new_ones(tmp_path):
    rows = random_rows(seed=3, patients=150)
    root = write_collection(tmp_path, rows)
    assert run("--root", str(root)).exit_code == 0
    before = {line[1]: (line[2], line[3]) for line in partition_lines(root)[1:]}
    write_collection(root, rows + random_rows(seed=4, patients=15, first_id=151))
    result = run("--root", str(root), "--seed", "7")
    assert result.exit_code == 0, result.output
    assert "kept 150 patients in place, placed 15 new" in result.output
    after = {line[1]: (line[2], line[3]) for line in partition_lines(root)[1:]}
    assert {pid: after[pid] for pid in before} == before
    assert len(after) == 165


def test_rebalance_says_how_many_patients_moved(tmp_path):
    root = write_collection(tmp_path, random_rows(seed=5, patients=150))
    assert run("--root", str(root), "--seed", "1").exit_code == 0
    result = run("--root", str(root), "--seed", "2", "--rebalance")
    assert result.exit_code == 0, result.output
    assert "rebalanced: " in result.output and "patients changed fold" in result.output
    same = run("--root", str(root), "--seed", "2", "--rebalance", "--json")
    assert json.loads(same.output)["moved_patients"]["fold"] == 0


def test_other_folds_than_the_previous_split_need_rebalance(tmp_path):
    root = write_collection(tmp_path, random_rows(seed=6, patients=60))
    assert run("--root", str(root)).exit_code == 0
    result = run("--root", str(root), "--folds", "5")
    assert result.exit_code == 1
    assert "Error: " in result.output and "--rebalance" in result.output
    assert run("--root", str(root), "--folds", "5", "--rebalance").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ratios", "70,15,15"], "try --folds 20"),
        (["--ratios", "a,b,c"], "three whole numbers"),
        (["--by", "finding,hospital"], "'hospital'"),
        (["--views", "PA,XY"], "'XY'"),
        (["--modality", "MRI"], "'MRI'"),
        (["--folds", "1"], "--folds"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path, args, message):
    root = write_collection(tmp_path, random_rows(seed=7, patients=10))
    result = run("--root", str(root), *args)
    assert result.exit_code == 2
    assert message in result.output
    assert not (root / "splits").exists()


def test_views_and_modality_options_select_rows(tmp_path):
    rows = random_rows(seed=8, patients=80)
    root = write_collection(tmp_path, rows)
    result = run("--root", str(root), "--views", "pa,AP", "--modality", "x-ray")
    assert result.exit_code == 0, result.output
    names = {line[0] for line in partition_lines(root)[1:]}
    assert names == {r["filename"] for r in rows if r["view"] in ("PA", "AP")}


def test_rows_without_patientid_exit_1_and_the_rest_is_split(tmp_path):
    rows = random_rows(seed=9, patients=30)
    rows[3]["patientid"] = ""
    root = write_collection(tmp_path, rows)
    result = run("--root", str(root))
    assert result.exit_code == 1
    assert f"Error: {rows[3]['filename']}: no patientid" in result.output
    assert len(partition_lines(root)) == len(rows)  # header + every other row


def test_no_collection_is_one_error_line(tmp_path):
    result = run("--root", str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    assert result.output.count("Error: ") == 1


def test_empty_selection_is_an_error_and_writes_nothing(tmp_path):
    root = write_collection(tmp_path, random_rows(seed=10, patients=10))
    result = run("--root", str(root), "--views", "Coronal")
    assert result.exit_code == 1
    assert "no rows to split" in result.output
    assert not (root / "splits").exists()


@pytest.mark.realdata
def test_cxr_dev_rows_split_without_overlap(tmp_path, shared_data):
    with open(shared_data / "cxr-dev" / "metadata.csv", encoding="utf-8", newline="") as handle:
        upstream = list(csv.DictReader(handle))
    rows = []
    for source in upstream:
        row = blank_row()
        row.update({k: v for k, v in source.items() if k in row})
        row["finding"] = canonical_finding(source["finding"]) or source["finding"]
        rows.append(row)
    root = write_collection(tmp_path, rows)
    result = run("--root", str(root), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["images"] == len(rows)
    assert set(report["patient_overlap"].values()) == {0}
    assert report["zero_positive_folds"] == {}
    balance = json.loads((root / "splits" / "balance.json").read_text())
    assert balance["max_prevalence_gap"]["COVID-19"]["partitions"] < 0.1
