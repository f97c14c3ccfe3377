"""Labels: the matrix torchxrayvision would build, the vocabulary, and logged relabels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curation.labels import (
    check_new_finding,
    finding_values,
    label_counts,
    label_matrix,
    parse_where,
    relabel,
)
from cxrbank.collection import Collection
from cxrbank.schema import blank_row
from tests.fixtures.dedup_images import encoded, radiograph

FINDINGS = [
    "Pneumonia/Viral/COVID-19",
    "Pneumonia/Viral/COVID-19",
    "Pneumonia/Bacterial/Klebsiella",
    "No Finding",
    "todo",
    "Pneumonia/Viral/Herpes ",
]


def rows_of(findings):
    return [{**blank_row(), "finding": f, "filename": f"{i}.png"} for i, f in enumerate(findings)]


def test_each_slash_token_is_a_label_and_todo_rows_are_unlabelled():
    labels, matrix = label_matrix(rows_of(FINDINGS))
    assert labels == ["Bacterial", "COVID-19", "Herpes", "Klebsiella", "No Finding", "Pneumonia", "Viral"]
    covid = dict(zip(labels, matrix[0], strict=True))
    assert covid["Pneumonia"] == covid["Viral"] == covid["COVID-19"] == 1
    assert covid["Bacterial"] == 0
    assert np.isnan(matrix[4]).all()
    assert matrix[5, labels.index("Herpes")] == 1  # the stray space does not make a new label


def test_label_counts_count_rows_per_label():
    counts = label_counts(rows_of(FINDINGS))
    assert counts["Pneumonia"] == 4 and counts["COVID-19"] == 2 and counts["No Finding"] == 1
    assert "todo" not in counts


def test_finding_values_name_the_trailing_space_and_unknown_values():
    values = {v.value: v for v in finding_values(rows_of([*FINDINGS, "Martian flu"]))}
    assert values["Pneumonia/Viral/Herpes "].problem == "stray whitespace"
    assert values["Pneumonia/Viral/Herpes "].canonical == "Pneumonia/Viral/Herpes"
    assert values["Martian flu"].problem == "not in the taxonomy"
    assert values["Pneumonia/Viral/COVID-19"].problem == ""
    assert values["Pneumonia/Viral/COVID-19"].count == 2


def test_new_finding_must_be_canonical():
    assert check_new_finding("Pneumonia/Viral/Herpes") == "Pneumonia/Viral/Herpes"
    with pytest.raises(ValueError, match="canonical"):
        check_new_finding("covid-19")
    with pytest.raises(ValueError, match="taxonomy"):
        check_new_finding("Martian flu")


def test_where_conditions_name_known_columns():
    assert parse_where(["view=PA", "source=paper"]) == [("view", "PA"), ("source", "paper")]
    with pytest.raises(ValueError, match="COLUMN=VALUE"):
        parse_where(["view"])
    with pytest.raises(ValueError, match="no column"):
        parse_where(["colour=red"])


def test_relabel_changes_only_matching_rows_and_logs_each(tmp_path):
    collection = Collection.create(tmp_path)
    rows = []
    for i, (finding, view) in enumerate([("Pneumonia/Viral/Herpes ", "PA"),
                                         ("Pneumonia/Viral/Herpes ", "L"), ("todo", "PA")]):
        (collection.images_dir / f"{i}.png").write_bytes(encoded(radiograph(i)))
        rows.append({**blank_row(), "finding": finding, "view": view, "folder": "images",
                     "filename": f"{i}.png"})
    with collection.lock():
        collection.write_rows(rows)
    changed = relabel(collection, "Pneumonia/Viral/Herpes ", "Pneumonia/Viral/Herpes", [("view", "PA")])
    assert changed == ["0.png"]
    assert [r["finding"] for r in collection.read_rows()] == [
        "Pneumonia/Viral/Herpes", "Pneumonia/Viral/Herpes ", "todo"]
    log = [json.loads(line) for line in
           (collection.state_dir / "logs" / "relabel.jsonl").read_text().splitlines()]
    assert log[0]["filename"] == "0.png" and log[0]["from"] == "Pneumonia/Viral/Herpes "
    assert log[0]["where"] == {"view": "PA"}
