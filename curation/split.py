"""Patient-level train/val/test partitions and k folds, balanced and stable across releases.

Method: every patient becomes a count vector (images, images per finding label and patients per
label from the finding hierarchy, images per value of each other `--by` column). A greedy
stratifier places patients, rarest label first, each in the fold whose deficit it fills best
(the squared relative deviation of every fold's totals from 1/k of the whole: the criterion of
scikit-learn's StratifiedGroupKFold generalised to many labels and weighted like Sechidis et
al.'s iterative stratification), then moves single patients while that lowers the deviation.
Folds cover all patients; partitions are unions of whole folds (10 folds at 60/20/20: folds 0-5
train, 6-7 val, 8-9 test), so folds and partitions can never disagree. Patients already in a
previous partition.tsv keep their fold; only new ones are placed, against the same targets.
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
from cxrbank.collection import Collection, atomic_write_bytes
from cxrbank.schema import COLUMNS, canonical_finding, expand_labels, normalize_modality

SPLITS = "splits"
PARTITION_FILE = "partition.tsv"
PARTITION_HEADER = ("filename", "patientid", "partition", "fold")
SIZE_WEIGHT = 32.0  # how much more equal images per fold weigh than one label's balance
HEADCOUNT_WEIGHT = 8.0  # the same for equal patients per fold
PATIENT_WEIGHT = 0.5  # how much balance over patients weighs beside balance over images
LD_EXPONENT = 4.0  # (S/N)**4/S**2 = (S/N**2)**2, the squared LD sensitivity (dim_weights)
RARE_WEIGHT = 0.01  # how much a rare label's relative spread weighs beside LD
MAX_PASSES = 12  # improvement passes, fewer for large collections (PASS_BUDGET)
PASS_BUDGET = 60_000  # patient visits over all passes: keeps 50,000 patients near 5 s
SWAP_CANDIDATES = 48  # partners tried per patient in a swap pass
SAME_SIZE_SHARE = 0.5  # of them with as many images (swaps that keep fold sizes)


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
    )


def dim_weights(counts: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Weights of each dimension's squared deviation, chosen so that their sum tracks LD.

    A share dimension d (a label's images, say) deviates by U = p - P*s/S in a fold of s of
    the S images; then p/n - P/N = S*U/(n*N) ~ k*S*U/N**2, so d weighs (S/N_d**2)**2 (N_d
    floored at a tenth of S, for labels nearly everyone has), plus RARE_WEIGHT/T_d**2 so that
    rare labels still reach every fold. The count dimensions 0 and 1 (images and patients per
    fold) weigh SIZE_WEIGHT and HEADCOUNT_WEIGHT times their relative deviation from S/k.
    """
    totals = counts.sum(axis=0)
    whole = np.where(base >= 0, totals[np.maximum(base, 0)], totals)
    negatives = np.maximum(whole - totals, np.maximum(whole / 10.0, 1.0))
    weights = (whole / negatives) ** LD_EXPONENT / np.maximum(whole, 1.0) ** 2
    weights += RARE_WEIGHT / np.maximum(totals, 1.0) ** 2
    count_dims = base < 0
    weights[count_dims] = 1.0 / np.maximum(totals[count_dims], 1.0) ** 2
    weights[:2] *= (SIZE_WEIGHT, HEADCOUNT_WEIGHT)[: len(weights)]
    weights[base > 0] *= PATIENT_WEIGHT
    weights[totals == 0] = 0.0
    return weights


def stratify(
    counts: np.ndarray, folds: int, seed: int, fixed: np.ndarray | None = None,
    weights: np.ndarray | None = None, base: np.ndarray | None = None,
) -> np.ndarray:
    """A fold per patient (a row of counts); rows with fixed >= 0 keep that fold.

    A dimension with base[d] = b >= 0 is balanced as a share of dimension b (its deviation in a
    fold is its count minus its overall share of that fold's b), one with base -1 as a count
    (deviation from 1/k of the whole). Minimises sum over d, f of weights[d] * dev[f, d]**2:
    greedily, patients of the rarest dimension first, then by single-patient moves.
    """
    n, d = counts.shape
    rng = np.random.default_rng(seed)
    fixed = np.full(n, -1) if fixed is None else np.asarray(fixed)
    base = np.full(d, -1) if base is None else np.asarray(base)
    weights = dim_weights(counts, base) if weights is None else weights
    totals = counts.sum(axis=0)
    share = base >= 0
    values = counts.copy()
    prevalence = totals[share] / np.maximum(totals[base[share]], 1.0)
    values[:, share] -= counts[:, base[share]] * prevalence
    target = np.where(share, 0.0, totals / folds)
    perm = rng.permutation(folds)  # ties between equal folds go to a seeded order
    slot = np.argsort(perm)[np.maximum(fixed, 0)]
    where = np.where(fixed >= 0, slot, -1)
    deviation = np.tile(-target, (folds, 1))
    for f in range(folds):
        deviation[f] += values[where == f].sum(axis=0)
    wv2 = 2.0 * values * weights
    free = np.flatnonzero(where < 0)
    present = (counts > 0) & share
    rarity = np.where(present, present.sum(axis=0), n + 1).min(axis=1, initial=n + 1)
    order = free[np.lexsort((rng.random(len(free)), -counts[free, 0], rarity[free]))]
    for p in order:
        f = int(np.argmin(deviation @ wv2[p]))
        deviation[f] += values[p]
        where[p] = f
    improve(values, weights, deviation, where, free, rng)
    return perm[where]


def improve(
    values: np.ndarray, weights: np.ndarray, deviation: np.ndarray, where: np.ndarray,
    free: np.ndarray, rng: np.random.Generator,
) -> None:
    """Lower the weighted squared deviation by moving single free patients, then by swapping
    pairs of free patients between folds (SWAP_CANDIDATES tried for each); in place."""
    wv2 = 2.0 * values * weights
    own = (wv2 * values).sum(axis=1)  # the cost a patient adds to any fold by itself
    tolerance = 1e-12 * own
    n_free = len(free)
    for _ in range(min(MAX_PASSES, max(1, PASS_BUDGET // max(n_free, 1)))):
        changes = 0
        gains = wv2[free] @ deviation.T
        gains -= gains[np.arange(n_free), where[free]][:, None] - own[free][:, None]
        hopeful = free[(gains < -tolerance[free][:, None]).any(axis=1)]
        for p in hopeful[rng.permutation(len(hopeful))].tolist():
            gain = deviation @ wv2[p]
            a = where[p]
            delta = gain - gain[a] + own[p]
            delta[a] = 0.0
            b = int(delta.argmin())
            if delta[b] < -tolerance[p]:
                deviation[a] -= values[p]
                deviation[b] += values[p]
                where[p] = b
                changes += 1
        if n_free > 1:
            visit = free[rng.permutation(n_free)]
            partners = swap_partners(values[:, 0], free, visit, rng)
            for p, q in zip(visit.tolist(), partners, strict=True):
                a, b = where[p], where[q]
                step = values[p] - values[q]
                delta = ((weights * step) * (deviation[b] - deviation[a] + step)).sum(axis=1)
                delta[b == a] = 0.0
                best = int(delta.argmin())
                if delta[best] < -tolerance[p]:
                    deviation[a] -= step[best]
                    deviation[b[best]] += step[best]
                    where[p], where[q[best]] = b[best], a
                    changes += 1
        if not changes:
            break


def swap_partners(
    images: np.ndarray, free: np.ndarray, visit: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(len(visit), SWAP_CANDIDATES) free patients to try swapping with each visited one:
    SAME_SIZE_SHARE of them with as many images (a swap that keeps fold sizes), the rest any."""
    by_size = free[np.argsort(images[free], kind="stable")]
    sizes = images[by_size]
    low = np.searchsorted(sizes, images[visit], side="left")
    high = np.searchsorted(sizes, images[visit], side="right")
    same = int(SWAP_CANDIDATES * SAME_SIZE_SHARE)
    pick = low[:, None] + (rng.random((len(visit), same)) * (high - low)[:, None]).astype(np.int64)
    anyone = rng.integers(0, len(free), (len(visit), SWAP_CANDIDATES - same))
    return np.concatenate([by_size[pick], free[anyone]], axis=1)


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
    previous = previous or {}
    fold_partition = settings.fold_partition()
    fixed = np.full(len(table.ids), -1)
    if not rebalance:
        for i, pid in enumerate(table.ids):
            if pid in previous:
                partition, fold = previous[pid]
                if fold >= settings.folds or PARTITIONS[fold_partition[fold]] != partition:
                    raise SplitError(
                        f"the previous split puts fold {fold} in {partition}, which --folds "
                        f"{settings.folds} --ratios {','.join(map(str, settings.ratios))} does not; "
                        "use the previous settings or pass --rebalance"
                    )
                fixed[i] = fold
    fold = stratify(table.counts, settings.folds, settings.seed, fixed, table.weights, table.base)
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
