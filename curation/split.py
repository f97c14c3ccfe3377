"""Patient-level train/val/test partitions and k folds, balanced and stable across releases.

Every patient becomes a count vector: images, images per finding label and patients per label
(from the finding hierarchy), images per value of each other `--by` column (sex, source).
curation/stratify.py gives each patient a fold: greedily, rarest label first, then by moves and
swaps that lower each fold's weighted squared deviation from its share (scikit-learn's
StratifiedGroupKFold criterion generalised to many labels), and a polish on Sechidis et al.'s
LD itself, over images and over patients. Folds cover all patients; partitions are unions of whole folds (10 folds at 60/20/20:
folds 0-5 train, 6-7 val, 8-9 test), so folds and partitions never disagree and cross-validation
folds nest inside the partitions. Patients of a previous partition.tsv keep their fold (so their
partition); only new patients are placed, against the targets of the whole collection.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from curation.balance import (
    PARTITIONS,
    SplitView,
    balance_report,
    counts_table,
    labels_table,
    tsv_bytes,
)
from curation.stratify import PATIENT_WEIGHT, dim_weights, stratify
from cxrbank.collection import Collection, atomic_write_bytes
from cxrbank.schema import COLUMNS, canonical_finding, expand_labels, normalize_modality

SPLITS = "splits"
PARTITION_FILE = "partition.tsv"
PARTITION_HEADER = ("filename", "patientid", "partition", "fold")


class SplitError(Exception):
    """A split cannot be made or read as asked (one line, naming the cause)."""


@dataclass(frozen=True)
class SplitSettings:
    """What a split is made of; checked on creation, naming the bad field."""

    ratios: tuple[int, ...] = (60, 20, 20)
    folds: int = 10
    seed: int = 0
    by: tuple[str, ...] = ("finding", "sex", "source")
    views: tuple[str, ...] = ()
    modality: str = ""

    def __post_init__(self) -> None:
        if len(self.ratios) != 3 or any(r < 0 for r in self.ratios) or sum(self.ratios) <= 0:
            raise SplitError(f"ratios: need three non-negative numbers (train,val,test), got {self.ratios}")
        if self.folds < 2:
            raise SplitError(f"folds: need at least 2, got {self.folds}")
        for value in self.by:
            if value != "finding" and value not in COLUMNS:
                raise SplitError(f"by: {value!r} is neither 'finding' nor a metadata.csv column")
        exact = [r * self.folds / sum(self.ratios) for r in self.ratios]
        if any(abs(x - round(x)) > 1e-9 for x in exact):
            hint = next(k for k in range(2, 1001) if all((r * k) % sum(self.ratios) == 0 for r in self.ratios))
            raise SplitError(
                f"folds: {self.folds} folds cannot be grouped into {self.ratios} "
                f"(partitions are whole folds; try --folds {hint})"
            )

    def fold_partition(self) -> np.ndarray:
        """(folds,) index into PARTITIONS of each fold: train folds first, then val, test."""
        counts = [round(r * self.folds / sum(self.ratios)) for r in self.ratios]
        return np.repeat(np.arange(len(PARTITIONS)), counts)


def parse_ratios(text: str) -> tuple[int, ...]:
    """'60,20,20' -> (60, 20, 20)."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise SplitError(f"ratios: {text!r} is not three whole numbers like 60,20,20") from None


@dataclass
class PatientTable:
    """Patients of the selected rows with the count vectors the stratifier balances."""

    ids: list[str]
    sex: list[str]
    counts: np.ndarray  # (patients, dims)
    weights: np.ndarray  # (dims,) of the squared deviation, see dim_weights
    base: np.ndarray  # (dims,) the dim each one is a share of (images or patients), -1: none
    dims: list[str]
    image_patient: np.ndarray  # (images,) index into ids
    image_labels: np.ndarray  # (images, labels) bool
    label_names: list[str]
    filenames: list[str]
    image_sex: list[str] = field(default_factory=list)  # (images,) each row's own M, F or ""


@dataclass
class Split:
    """The outcome of a split: a fold per patient and what changed against the previous one."""

    settings: SplitSettings
    table: PatientTable
    fold: np.ndarray  # (patients,)
    problems: list[str] = field(default_factory=list)
    kept: int = 0  # patients whose previous fold was kept
    placed: int = 0  # patients placed now
    moved: dict[str, int] = field(default_factory=dict)

    def view(self) -> SplitView:
        t = self.table
        return SplitView(
            patient=t.image_patient, fold=self.fold[t.image_patient],
            fold_partition=self.settings.fold_partition(), labels=t.image_labels,
            label_names=t.label_names, patient_ids=t.ids, patient_sex=t.sex,
            image_sex=t.image_sex,
        )


def finding_labels(row: dict[str, str]) -> list[str]:
    """The row's labels from the finding hierarchy (none for todo or blank)."""
    value = row.get("finding", "")
    canonical = canonical_finding(value)
    return expand_labels(value.strip() if canonical is None else canonical)


def stratum(row: dict[str, str], column: str) -> str:
    """A row's value for a --by column. `source` falls back to the url's host for upstream rows."""
    value = " ".join((row.get(column) or "").split())
    if column == "source" and value in ("", "upstream"):
        host = urlsplit(row.get("url") or "").hostname or ""
        value = host.removeprefix("www.") or value
    return value or "unknown"


def select_rows(rows: Iterable[dict[str, str]], settings: SplitSettings) -> tuple[list[dict], list[str]]:
    """Rows of the asked views and modality; rows that cannot be split are named in problems."""
    kept, problems = [], []
    modality = normalize_modality(settings.modality) or settings.modality
    for row in rows:
        if settings.views and row.get("view", "") not in settings.views:
            continue
        if modality and row.get("modality", "") != modality:
            continue
        name, pid = row.get("filename", ""), (row.get("patientid") or "").strip()
        if not pid:
            problems.append(f"{name}: no patientid, left out of the split")
        elif any(c in name + pid for c in "\t\r\n"):
            problems.append(f"{name!r}: a tab or newline in filename or patientid, left out")
        else:
            kept.append(row)
    return kept, problems


def patient_table(rows: list[dict[str, str]], settings: SplitSettings) -> PatientTable:
    """Count vectors per patient, sorted by patient id (so row order never matters)."""
    rows = sorted(rows, key=lambda r: (r["patientid"].strip(), r["filename"]))
    ids = sorted({r["patientid"].strip() for r in rows})
    index = {pid: i for i, pid in enumerate(ids)}
    labels_of: dict[str, list[str]] = {}
    row_labels = [
        labels_of.get(r["finding"]) or labels_of.setdefault(r["finding"], finding_labels(r))
        for r in rows
    ]
    label_names = sorted({label for labels in row_labels for label in labels})
    others = [c for c in settings.by if c != "finding"]
    row_strata = [[f"{c}:{stratum(r, c)}" for c in others] for r in rows]
    with_findings = "finding" in settings.by
    dims = ["images", "patients"]
    if with_findings:
        dims += [f"finding:{x}" for x in label_names] + [f"patients:{x}" for x in label_names]
    dims += sorted({value for values in row_strata for value in values})
    dim_index = {d: i for i, d in enumerate(dims)}
    image_patient = np.array([index[r["patientid"].strip()] for r in rows], dtype=np.int64)
    label_rows, label_cols, strata_rows, strata_cols = [], [], [], []
    for i, (labels, values) in enumerate(zip(row_labels, row_strata, strict=True)):
        label_rows += [i] * len(labels)
        label_cols += [label_names.index(x) for x in labels]
        strata_rows += [i] * len(values)
        strata_cols += [dim_index[v] for v in values]
    image_labels = np.zeros((len(rows), len(label_names)), dtype=bool)
    image_labels[label_rows, label_cols] = True
    counts = np.zeros((len(ids), len(dims)))
    np.add.at(counts[:, 0], image_patient, 1.0)
    counts[:, 1] = 1.0
    strata_rows_at = np.asarray(strata_rows, dtype=np.int64)
    np.add.at(counts, (image_patient[strata_rows_at], np.asarray(strata_cols, dtype=np.int64)), 1.0)
    if with_findings and label_names:
        q = len(label_names)
        np.add.at(counts, (image_patient[label_rows], np.asarray(label_cols, dtype=int) + 2), 1.0)
        counts[:, 2 + q : 2 + 2 * q] = counts[:, 2 : 2 + q] > 0
    sex_codes = np.array(
        [{"M": 0, "F": 1}.get((r.get("sex") or "").strip().upper()[:1], 2) for r in rows], dtype=np.int64
    )
    by_sex = np.zeros((len(ids), 3))
    np.add.at(by_sex, (image_patient, sex_codes), 1.0)
    sex = np.where(by_sex[:, 1] >= np.maximum(by_sex[:, 0], 1), "F", np.where(by_sex[:, 0] > 0, "M", ""))
    base = np.array([-1, -1] + [1 if d.startswith("patients:") else 0 for d in dims[2:]])
    return PatientTable(
        ids=ids, sex=sex.tolist(), counts=counts, weights=dim_weights(counts, base), base=base,
        dims=dims, image_patient=image_patient, image_labels=image_labels,
        label_names=label_names, filenames=[r["filename"] for r in rows],
        image_sex=np.array(["M", "F", ""])[sex_codes].tolist(),
    )


def ld_terms(dims: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the stratifier's LD polish balances: each label over images (dimension 0) and,
    PATIENT_WEIGHT as much, over patients (dimension 1)."""
    cols = [i for i, d in enumerate(dims) if d.startswith(("finding:", "patients:"))]
    base = np.array([1 if dims[i].startswith("patients:") else 0 for i in cols], dtype=int)
    return np.array(cols, dtype=int), base, np.where(base == 1, PATIENT_WEIGHT, 1.0)


def read_partition(path: Path) -> list[tuple[str, str, str, int]]:
    """Rows (filename, patientid, partition, fold) of a partition.tsv; SplitError when malformed."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or tuple(lines[0].split("\t")) != PARTITION_HEADER:
        raise SplitError(f"{path}: not a partition.tsv (header must be {' '.join(PARTITION_HEADER)})")
    out = []
    for number, line in enumerate(lines[1:], start=2):
        parts = line.split("\t")
        if len(parts) != 4 or parts[2] not in PARTITIONS or not parts[3].isdigit():
            raise SplitError(f"{path}:{number}: malformed line {line!r}")
        out.append((parts[0], parts[1], parts[2], int(parts[3])))
    return out


def previous_assignment(entries: list[tuple[str, str, str, int]]) -> tuple[dict[str, tuple[str, int]], int]:
    """Patient id -> (partition, fold) of a previous split, and how many patients were split.

    A patient found in several partitions (two ids merged since) takes the most held-out one
    (test, then val), so that a test patient never moves to training.
    """
    found: dict[str, set[tuple[str, int]]] = {}
    for _, pid, partition, fold in entries:
        found.setdefault(pid, set()).add((partition, fold))
    rank = {name: -i for i, name in enumerate(PARTITIONS)}
    chosen = {pid: min(places, key=lambda pf: (rank[pf[0]], pf[1])) for pid, places in found.items()}
    return chosen, sum(1 for places in found.values() if len(places) > 1)


def split_rows(
    rows: Iterable[dict[str, str]], settings: SplitSettings,
    previous: dict[str, tuple[str, int]] | None = None, rebalance: bool = False,
) -> Split:
    """Split rows by patient; patients in `previous` keep their fold unless rebalancing."""
    selected, problems = select_rows(rows, settings)
    if not selected:
        raise SplitError("no rows to split (check --views and --modality)")
    table = patient_table(selected, settings)
    if len(table.ids) < settings.folds:
        raise SplitError(
            f"{len(table.ids)} patients cannot fill {settings.folds} folds (a fold would be empty); "
            f"use --folds {len(table.ids)} or fewer" if len(table.ids) >= 2 else
            f"{len(table.ids)} patient: nothing to split")
    previous = previous or {}
    fold_partition = settings.fold_partition()
    fixed = np.full(len(table.ids), -1)
    if not rebalance:
        for i, pid in enumerate(table.ids):
            if pid in previous:
                partition, fold = previous[pid]
                if fold >= settings.folds or PARTITIONS[fold_partition[fold]] != partition:
                    folds_before = max(f for _, f in previous.values()) + 1
                    raise SplitError(
                        f"the previous split puts fold {fold} in {partition}, which --folds "
                        f"{settings.folds} --ratios {','.join(map(str, settings.ratios))} does not; "
                        f"use the previous settings (it has {folds_before} folds) or pass "
                        "--rebalance"
                    )
                fixed[i] = fold
    fold = stratify(
        table.counts, settings.folds, settings.seed, fixed, table.weights, table.base,
        ld_terms(table.dims),
    )
    split = Split(settings, table, fold, problems, kept=int((fixed >= 0).sum()))
    split.placed = len(table.ids) - split.kept
    split.moved = moved_patients(table.ids, fold, fold_partition, previous)
    return split


def moved_patients(
    ids: list[str], fold: np.ndarray, fold_partition: np.ndarray, previous: dict[str, tuple[str, int]]
) -> dict[str, int]:
    """Patients of a previous split whose fold or partition changed, and those that left test."""
    moved = {"fold": 0, "partition": 0, "test_to_train": 0, "left_test": 0}
    for pid, f in zip(ids, fold.tolist(), strict=True):
        if pid not in previous:
            continue
        old_partition, old_fold = previous[pid]
        new_partition = PARTITIONS[fold_partition[f]]
        moved["fold"] += old_fold != f
        moved["partition"] += old_partition != new_partition
        moved["left_test"] += old_partition == "test" and new_partition != "test"
        moved["test_to_train"] += old_partition == "test" and new_partition == "train"
    return moved


def partition_bytes(split: Split) -> bytes:
    """partition.tsv: filename, patientid, partition, fold; sorted by filename."""
    t = split.table
    fold_partition = split.settings.fold_partition()
    lines = []
    for name, p in zip(t.filenames, t.image_patient.tolist(), strict=True):
        f = int(split.fold[p])
        lines.append([name, t.ids[p], PARTITIONS[fold_partition[f]], str(f)])
    lines.sort()
    return tsv_bytes([list(PARTITION_HEADER), *lines])


def balance_document(split: Split, digest: str) -> dict:
    """balance.json: settings, sizes, what changed, and the balance measures."""
    view = split.view()
    report = balance_report(view)
    return {
        "settings": asdict(split.settings),
        "split_hash": digest,
        "patients": len(split.table.ids),
        "images": len(split.table.filenames),
        "kept_patients": split.kept,
        "placed_patients": split.placed,
        "moved_patients": split.moved,
        **report,
    }


def write_split(root: Path, split: Split) -> dict:
    """Write splits/{counts,labels}.tsv, balance.json, then partition.tsv; return balance.json."""
    folder = Path(root) / SPLITS
    data = partition_bytes(split)
    digest = hashlib.sha256(data).hexdigest()
    view = split.view()
    atomic_write_bytes(folder / "counts.tsv", tsv_bytes(counts_table(view)))
    atomic_write_bytes(folder / "labels.tsv", tsv_bytes(labels_table(view)))
    document = balance_document(split, digest)
    text = json.dumps(document, indent=2, default=_json_number) + "\n"
    atomic_write_bytes(folder / "balance.json", text.encode("utf-8"))
    atomic_write_bytes(folder / PARTITION_FILE, data)
    return document


def _json_number(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if math.isnan(value) else float(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def split_collection(
    root: Path | str, settings: SplitSettings, rebalance: bool = False
) -> tuple[Split, dict]:
    """Split a collection's rows, keeping a previous split's patients; write splits/.

    Returns the split and the balance.json document written beside partition.tsv.
    """
    collection = Collection.open(root)
    path = collection.root / SPLITS / PARTITION_FILE
    previous: dict[str, tuple[str, int]] = {}
    merged = 0
    if path.exists():
        try:
            previous, merged = previous_assignment(read_partition(path))
        except SplitError:
            if not rebalance:
                raise  # with --rebalance an unreadable previous split is simply replaced
    split = split_rows(collection.read_rows(), settings, previous, rebalance)
    split.moved["merged"] = merged
    return split, write_split(collection.root, split)


def split_hash(root: Path | str) -> str:
    """sha256 of <root>/splits/partition.tsv: names one split exactly (training, releases)."""
    path = Path(root) / SPLITS / PARTITION_FILE
    if not path.is_file():
        raise SplitError(f"{path}: no split here (run `cxrbank split`)")
    return hashlib.sha256(path.read_bytes()).hexdigest()
