"""How balanced a patient-level split is: LD, prevalence gaps, empty folds, overlap, tables."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PARTITIONS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class SplitView:
    """A split seen per image: the arrays every balance measure reads."""

    patient: np.ndarray  # (n_images,) int: index into patient_ids
    fold: np.ndarray  # (n_images,) int: 0..folds-1
    fold_partition: np.ndarray  # (folds,) int: index into PARTITIONS of each fold
    labels: np.ndarray  # (n_images, n_labels) bool
    label_names: list[str]
    patient_ids: list[str]
    patient_sex: list[str]  # per patient: M, F or "" (the sex most of its rows give)
    image_sex: list[str] = field(default_factory=list)  # per image: its own row's M, F or ""

    @property
    def folds(self) -> int:
        return len(self.fold_partition)

    @property
    def partition(self) -> np.ndarray:
        """(n_images,) int: index into PARTITIONS of each image."""
        return self.fold_partition[self.fold]


def _positives(labels: np.ndarray, subset: np.ndarray, n_subsets: int) -> np.ndarray:
    """(n_subsets, n_labels) count of positive rows per subset."""
    onehot = np.zeros((len(subset), n_subsets))
    onehot[np.arange(len(subset)), subset] = 1.0
    return onehot.T @ labels.astype(float)


def label_distribution(labels: np.ndarray, subset: np.ndarray, n_subsets: int) -> float:
    """LD of Sechidis et al. (2011): mean over labels, then subsets, of |p_i/n_i - P/N|.

    p/n are positive and negative rows of a label in subset i, P/N in the whole set. Labels
    positive in every row or in none, and empty subsets, carry no information and are left out.
    """
    if labels.size == 0 or len(subset) == 0:
        return 0.0
    sizes = np.bincount(subset, minlength=n_subsets).astype(float)
    pos = _positives(labels, subset, n_subsets)
    total_pos = labels.sum(axis=0).astype(float)
    total_neg = len(subset) - total_pos
    keep = (total_pos > 0) & (total_neg > 0)
    used = sizes > 0
    if not keep.any():
        return 0.0
    pos = pos[used][:, keep]
    neg = sizes[used][:, None] - pos
    overall = total_pos[keep] / total_neg[keep]
    ratio = pos / np.maximum(neg, 1.0)
    return float(np.abs(ratio - overall).mean())


def prevalence_gaps(labels: np.ndarray, subset: np.ndarray, n_subsets: int) -> np.ndarray:
    """Per label, the largest |prevalence in a subset - prevalence overall| (a fraction)."""
    sizes = np.bincount(subset, minlength=n_subsets).astype(float)
    used = sizes > 0
    if not used.any():
        return np.zeros(labels.shape[1])
    prevalence = _positives(labels, subset, n_subsets)[used] / sizes[used][:, None]
    overall = labels.mean(axis=0)
    return np.abs(prevalence - overall).max(axis=0)


def patient_labels(view: SplitView) -> np.ndarray:
    """(n_patients, n_labels) bool: the patient has the label on any image."""
    out = np.zeros((len(view.patient_ids), view.labels.shape[1]), dtype=bool)
    if len(view.patient):
        order = np.argsort(view.patient, kind="stable")
        sorted_patients = view.patient[order]
        starts = np.flatnonzero(np.r_[True, sorted_patients[1:] != sorted_patients[:-1]])
        if view.labels.shape[1]:
            grouped = np.maximum.reduceat(view.labels[order].astype(np.int8), starts, axis=0)
            out[sorted_patients[starts]] = grouped.astype(bool)
    return out


def patient_folds(view: SplitView) -> np.ndarray:
    """(n_patients,) the fold of each patient, -1 when a patient has images in several folds."""
    out = np.full(len(view.patient_ids), -2)
    for patient, fold in zip(view.patient.tolist(), view.fold.tolist(), strict=True):
        out[patient] = fold if out[patient] in (-2, fold) else -1
    return out


def patient_overlap(view: SplitView) -> dict[str, int]:
    """Patients with images in two partitions (pairwise) or in two folds: all must be 0."""
    members = [set(view.patient[view.partition == i].tolist()) for i in range(len(PARTITIONS))]
    overlap = {
        f"{PARTITIONS[a]}/{PARTITIONS[b]}": len(members[a] & members[b])
        for a in range(len(PARTITIONS))
        for b in range(a + 1, len(PARTITIONS))
    }
    overlap["folds"] = int((patient_folds(view) == -1).sum())
    return overlap


def balance_report(view: SplitView, min_patients: int | None = None) -> dict:
    """balance.json's measures: LD, prevalence gaps, zero-positive and empty folds, overlap.

    LD and gaps are over images (what a model trains on); `ld_patients` is LD over patients.
    A label with at least `min_patients` (default: the number of folds) patients should have
    positives in every fold; those that do not are listed under `zero_positive_folds`.
    """
    k = view.folds
    min_patients = k if min_patients is None else min_patients
    plabels = patient_labels(view)
    pfold = patient_folds(view)
    single = pfold >= 0
    partition = view.partition
    fold_pos = _positives(view.labels, view.fold, k)
    zero: dict[str, list[int]] = {}
    for j, name in enumerate(view.label_names):
        if plabels[:, j].sum() >= min_patients:
            empty = [f for f in range(k) if fold_pos[f, j] == 0]
            if empty:
                zero[name] = empty
    gaps_part = prevalence_gaps(view.labels, partition, len(PARTITIONS))
    gaps_fold = prevalence_gaps(view.labels, view.fold, k)
    return {
        "ld": {
            "folds": label_distribution(view.labels, view.fold, k),
            "partitions": label_distribution(view.labels, partition, len(PARTITIONS)),
        },
        "ld_patients": {
            "folds": label_distribution(plabels[single], pfold[single], k),
            "partitions": label_distribution(
                plabels[single], view.fold_partition[pfold[single]], len(PARTITIONS)
            ),
        },
        "max_prevalence_gap": {
            name: {"partitions": round(float(gaps_part[j]), 6), "folds": round(float(gaps_fold[j]), 6)}
            for j, name in enumerate(view.label_names)
        },
        "zero_positive_folds": zero,
        "empty_folds": [f for f in range(k) if not (view.fold == f).any()],
        "patient_overlap": patient_overlap(view),
    }


def _sex_name(sex: str) -> str:
    return sex if sex in ("M", "F") else "unknown"


def counts_table(view: SplitView) -> list[list[str]]:
    """counts.tsv: subjects and images per partition and overall, in total and by sex.

    Images are counted by their own row's sex, subjects by the patient's (most rows') sex."""
    own = view.image_sex or [view.patient_sex[p] for p in view.patient.tolist()]
    image_sex = np.array([_sex_name(sex) for sex in own], dtype=object)
    subject_sex = np.array([_sex_name(sex) for sex in view.patient_sex], dtype=object)
    partition = view.partition
    rows = [["partition", "sex", "subjects", "images"]]
    for name in (*PARTITIONS, "all"):
        in_part = np.ones(len(partition), bool) if name == "all" else partition == PARTITIONS.index(name)
        patients = np.unique(view.patient[in_part])
        for sex in ("all", "F", "M", "unknown"):
            images = in_part if sex == "all" else in_part & (image_sex == sex)
            subjects = patients if sex == "all" else patients[subject_sex[patients] == sex]
            rows.append([name, sex, str(len(subjects)), str(int(images.sum()))])
    return rows


def labels_table(view: SplitView) -> list[list[str]]:
    """labels.tsv: each label's images and patients, count and percent, per subset.

    Subsets are `all`, the partitions, then `fold0`..; percentages are of that subset's images
    (or patients).
    """
    pfold = patient_folds(view)
    pmask_all = pfold >= 0
    plabels = patient_labels(view)
    partition = view.partition
    subsets: list[tuple[str, np.ndarray, np.ndarray]] = [
        ("all", np.ones(len(partition), bool), pmask_all)
    ]
    for i, name in enumerate(PARTITIONS):
        subsets.append((name, partition == i, pmask_all & (view.fold_partition[pfold] == i)))
    for f in range(view.folds):
        subsets.append((f"fold{f}", view.fold == f, pfold == f))
    rows = [["label", "subset", "images", "images_pct", "patients", "patients_pct"]]
    for j, label in enumerate(view.label_names):
        for name, imask, pmask in subsets:
            n_img, n_pat = int(imask.sum()), int(pmask.sum())
            pos_img = int(view.labels[imask, j].sum())
            pos_pat = int(plabels[pmask, j].sum())
            rows.append([
                label, name, str(pos_img), _pct(pos_img, n_img), str(pos_pat), _pct(pos_pat, n_pat),
            ])
    return rows


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.2f}" if whole else "0.00"


def tsv_bytes(rows: list[list[str]]) -> bytes:
    """Tab-separated lines, header first, newline-terminated."""
    return "".join("\t".join(row) + "\n" for row in rows).encode("utf-8")
