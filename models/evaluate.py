"""Evaluation: predictions, per-label AUC, sensitivity/specificity, bootstrap intervals,
per-source results, the metrics JSON and the markdown model card of a checkpoint."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import torch
from torch import nn

from cxrbank.collection import Row, atomic_write_bytes
from models.checkpoints import load_checkpoint
from models.data import CxrDataset, iterate_batches, prepare_dataset, to_input
from models.nets import create_model

SHORTCUT_CAVEAT = (
    "Models trained to tell COVID-19 from other findings on collections assembled from many "
    "sources learn the sources (markers, devices, processing, patient position) as much as the "
    "disease: DeGrave, Janizek and Lee, \"AI for radiographic COVID-19 detection selects shortcuts "
    "over signal\", Nature Machine Intelligence 3, 610-619 (2021). The per-source table above shows "
    "how much a score depends on where images came from; do not use this model for diagnosis."
)


# -- metrics ----------------------------------------------------------------------------------


def roc_auc(targets: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN without both classes."""
    targets = np.asarray(targets, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    positives = int(targets.sum())
    negatives = len(targets) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[targets].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def sensitivity_specificity(
    targets: np.ndarray, scores: np.ndarray, threshold: float
) -> tuple[float, float]:
    targets = np.asarray(targets, dtype=bool)
    predicted = np.asarray(scores) >= threshold
    positives, negatives = targets.sum(), (~targets).sum()
    sensitivity = float((predicted & targets).sum() / positives) if positives else math.nan
    specificity = float((~predicted & ~targets).sum() / negatives) if negatives else math.nan
    return sensitivity, specificity


def bootstrap_interval(
    targets: np.ndarray,
    scores: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float],
    rounds: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a statistic over resampled cases (NaN resamples dropped)."""
    if rounds <= 0 or len(targets) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        pick = rng.integers(0, len(targets), len(targets))
        value = statistic(targets[pick], scores[pick])
        if not math.isnan(value):
            values.append(value)
    if len(values) < rounds // 2:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def binary_report(
    targets: np.ndarray, scores: np.ndarray, threshold: float, rounds: int = 1000
) -> dict[str, Any]:
    """n, positives, AUC, sensitivity and specificity at the threshold, each with a 95% interval."""
    targets = np.asarray(targets, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    sensitivity, specificity = sensitivity_specificity(targets, scores, threshold)
    return {
        "n": len(targets),
        "positives": int(targets.sum()),
        "negatives": int((~targets).sum()),
        "auc": roc_auc(targets, scores),
        "auc_ci95": bootstrap_interval(targets, scores, roc_auc, rounds),
        "threshold": threshold,
        "sensitivity": sensitivity,
        "sensitivity_ci95": bootstrap_interval(
            targets, scores, lambda t, s: sensitivity_specificity(t, s, threshold)[0], rounds
        ),
        "specificity": specificity,
        "specificity_ci95": bootstrap_interval(
            targets, scores, lambda t, s: sensitivity_specificity(t, s, threshold)[1], rounds
        ),
    }


def mean_auc(probs: np.ndarray, targets: np.ndarray, known: np.ndarray) -> float:
    """Mean over labels (with both classes among the known rows) of the AUC; NaN if none."""
    aucs = [roc_auc(targets[known[:, j], j], probs[known[:, j], j]) for j in range(probs.shape[1])]
    aucs = [a for a in aucs if not math.isnan(a)]
    return float(np.mean(aucs)) if aucs else math.nan


def source_of(row: Row) -> str:
    """The site a row came from: the host of its url, else its `source`, else "unknown"."""
    host = urlsplit(row.get("url") or "").hostname or ""
    return host.removeprefix("www.") or row.get("source") or "unknown"


# -- predictions ------------------------------------------------------------------------------


@torch.no_grad()
def predict(
    model: nn.Module,
    dataset: CxrDataset,
    indices: Sequence[int],
    device: torch.device,
    batch_size: int = 64,
    normalization: str = "unit",
) -> torch.Tensor:
    """Sigmoid probabilities [len(indices), labels] on the CPU, in the order of `indices`."""
    model.eval()
    outputs = []
    autocast = device.type == "cuda"
    for images, _, _, _ in iterate_batches(dataset, indices, batch_size):
        x = to_input(images.to(device, non_blocking=True), normalization)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(x)
        outputs.append(torch.sigmoid(logits.float()).cpu())
    if not outputs:
        return torch.zeros(0, len(dataset.labels))
    return torch.cat(outputs)


def evaluate_predictions(
    dataset: CxrDataset, probs: np.ndarray, threshold: float = 0.5, rounds: int = 1000
) -> dict[str, Any]:
    """Per-label results over all rows and per source, and the mean AUC."""
    targets, known = dataset.targets.numpy(), dataset.known.numpy()
    sources = np.asarray([source_of(r) for r in dataset.rows])
    labels: dict[str, Any] = {}
    for j, label in enumerate(dataset.labels):
        mask = known[:, j]
        report = binary_report(targets[mask, j], probs[mask, j], threshold, rounds)
        report["by_source"] = {
            source: binary_report(
                targets[mask & (sources == source), j],
                probs[mask & (sources == source), j],
                threshold,
                rounds,
            )
            for source in sorted(set(sources[mask]))
        }
        labels[label] = report
    return {"mean_auc": mean_auc(probs, targets, known), "labels": labels}


# -- a checkpoint -----------------------------------------------------------------------------


def evaluate_checkpoint(
    checkpoint: Path,
    root: Path | None = None,
    split: str = "test",
    threshold: float = 0.5,
    rounds: int = 1000,
    device: str = "auto",
    out_dir: Path | None = None,
    release: str | None = None,
    seen: Seen | None = None,
    suffix: str | None = None,
    working: bool = False,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint on a split of a release's frozen rows and split — `release`, by
    default the one the checkpoint was trained on — or, without one (or with `working`), of the
    working collection. Write metrics JSON and a model card as <stem>-<split><suffix>.

    On data other than the checkpoint's own, the images and patients it trained or validated
    on are left out (`seen`, by default from its release's partition) and the suffix is
    "-on-RELEASE" or "-on-collection": its own evaluation is never overwritten. Rows that no
    split places (added after it) are not evaluated; `warn` is told how many."""
    from models.compare import seen_by  # noqa: PLC0415
    from models.train import (  # train imports this module: import it late
        TrainConfig,
        load_split_rows,
        resolve_device,
    )

    state = load_checkpoint(checkpoint)
    config = TrainConfig.from_dict(state["config"])
    # the data it trained on: its release's files, or the working collection (a checkpoint
    # whose release is only a name, without the release's files, trained on the collection)
    own_release = state.get("release") if state["config"].get("metadata") else None
    if release is None and not working:
        release = own_release
    if root is not None:
        config.root = str(root)
        config.metadata = config.partition = None  # the collection's own files, unless a release
    if release is not None:
        config.use_release(release)
    elif config.metadata:  # no --root: the working collection the checkpoint names
        config.metadata = config.partition = None
    config.release = release
    torch_device = resolve_device(device)
    evaluated_release = release
    own_data = evaluated_release == own_release
    if not own_data and seen is None:
        seen = seen_by(state, Path(config.root), checkpoint.name)
    splits, current_hash, data_version = load_split_rows(config, warn=warn)
    if split not in splits or not splits[split]:
        raise ValueError(f"split {split!r} has no rows in {config.root}")
    rows, excluded = splits[split], None
    if seen is not None:
        rows, excluded = seen.exclude(rows, [r for part in splits.values() for r in part])
        if not rows:
            raise ValueError(f"every {split} image is of a patient {seen.why}")
    prepared = prepare_dataset(
        Path(config.root), rows, state["labels"], config.size, config.cache_path(),
        strict=config.metadata is not None, release=config.release,
    )
    model = create_model(config.arch, len(state["labels"]))
    model.load_state_dict(state["model"])
    model.to(torch_device)
    dataset = prepared.dataset
    probs = predict(
        model, dataset, range(len(dataset)), torch_device, config.batch_size, config.normalization
    ).numpy()
    metrics = evaluate_predictions(dataset, probs, threshold, rounds)
    report = {
        "checkpoint": str(checkpoint),
        "evaluated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "split": split,
        "fold": config.fold,
        "rows": len(dataset),
        "left_out": [f"{name}: {reason}" for name, reason in prepared.failures],
        "arch": config.arch,
        "size": config.size,
        "epoch": state.get("epoch"),
        "release": state.get("release"),
        "evaluated_release": evaluated_release,
        "excluded": excluded,
        "data_version": data_version,
        "trained_data_version": state.get("data_version"),
        "split_hash": current_hash,
        "trained_split_hash": state.get("split_hash"),
        "views": list(config.views),
        "modalities": list(config.modalities),
        **metrics,
    }
    out = out_dir or checkpoint.parent
    if suffix is None:
        suffix = "" if own_data else f"-on-{evaluated_release or 'collection'}"
    stem = f"{checkpoint.stem}-{split}{suffix}"
    text = json.dumps(plain_json(report), indent=2, allow_nan=False)
    atomic_write_bytes(out / f"{stem}.metrics.json", text.encode())
    result = json.loads(text)
    atomic_write_bytes(out / f"{stem}.model-card.md", model_card(result).encode())
    return result


def plain_json(value: Any) -> Any:
    """Values strict JSON can hold: NaN and infinities become null, tuples lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    return value


def _on(release: str | None) -> str:
    return f"release {release}" if release else "the working collection"


@dataclass
class Seen:
    """Images and patients a model trained or validated on, to leave out of a test."""

    files: set[str]
    patients: set[str]
    why: str  # e.g. "in the training or validation partition of release v1"

    def exclude(self, rows: list[Row], every: list[Row]) -> tuple[list[Row], dict[str, Any]]:
        """`rows` without the seen ones (a seen file's patient counts as seen, under the id
        `every` gives it), and what was left out."""
        patients = self.patients | {r["patientid"] for r in every if r["filename"] in self.files}
        patients.discard("")
        kept, dropped = [], []
        for row in rows:
            gone = row["filename"] in self.files or row["patientid"] in patients
            (dropped if gone else kept).append(row)
        return kept, {"rows": len(dropped), "patients": len({r["patientid"] for r in dropped}),
                      "why": self.why}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _fmt_ci(pair: Sequence[float | None]) -> str:
    low, high = pair
    return "n/a" if low is None or high is None or math.isnan(low) else f"{low:.3f}-{high:.3f}"


def model_card(report: dict[str, Any]) -> str:
    """A markdown model card: what was trained on which data, how it scored, and its caveats."""
    lines = [
        f"# Model card: {report['arch']} ({Path(report['checkpoint']).name})",
        "",
        "## Data",
        f"- Release: {report.get('release') or 'none (working collection)'}",
        f"- Evaluated on: "
        f"{_on(report.get('evaluated_release', report.get('release')))}",
        f"- Data version (sha256 of metadata.csv at training): "
        f"`{report.get('trained_data_version')}`",
        f"- Split hash at training: `{report.get('trained_split_hash')}`; "
        f"at evaluation: `{report['split_hash']}`",
        f"- Evaluated on split `{report['split']}`"
        + (f", fold {report['fold']}" if report.get("fold") is not None else "")
        + f": {report['rows']} images; views {', '.join(report['views'])}; "
        f"modalities {', '.join(report['modalities'])}; {report['size']} px",
    ]
    lines.append(f"- Trained: {report['arch']}, checkpoint of epoch {report.get('epoch')}")
    if report.get("excluded"):
        excluded = report["excluded"]
        lines.append(f"- Left out: {excluded['rows']} images of {excluded['patients']} patients "
                     f"{excluded['why']}")
    if report.get("trained_split_hash") and report["trained_split_hash"] != report["split_hash"]:
        lines.append("- **The split changed since training: these figures may include training "
                     "patients.**")
    lines += [
        "",
        "## Results (95% bootstrap intervals)",
        "",
        f"Mean AUC: {_fmt(report['mean_auc'])}",
        "",
        "| label | n | pos | AUC (95% CI) | sensitivity (95% CI) | specificity (95% CI) "
        "| threshold |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, r in report["labels"].items():
        lines.append(
            f"| {label} | {r['n']} | {r['positives']} | {_fmt(r['auc'])} ({_fmt_ci(r['auc_ci95'])})"
            f" | {_fmt(r['sensitivity'])} ({_fmt_ci(r['sensitivity_ci95'])})"
            f" | {_fmt(r['specificity'])} ({_fmt_ci(r['specificity_ci95'])}) | {r['threshold']} |"
        )
    lines += ["", "### By source", "", "| label | source | n | pos | AUC | AUC 95% CI |",
              "|---|---|---|---|---|---|"]
    for label, r in report["labels"].items():
        for source, s in r["by_source"].items():
            lines.append(
                f"| {label} | {source} | {s['n']} | {s['positives']} | {_fmt(s['auc'])}"
                f" | {_fmt_ci(s['auc_ci95'])} |"
            )
    lines += ["", "## Caveats", "", SHORTCUT_CAVEAT, ""]
    if report.get("left_out"):
        lines += [f"{len(report['left_out'])} images could not be used and were left out.", ""]
    return "\n".join(lines)

