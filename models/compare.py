"""`cxrbank evaluate --compare`: two releases' models on the newer release's test split, without
the images and patients the older model trained or validated on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cxrbank.collection import Collection
from models.checkpoints import load_checkpoint
from models.data import DataError, read_partition, split_hash
from models.evaluate import Seen, evaluate_checkpoint


def seen_by(state: dict[str, Any], root: Path, name: str) -> Seen:
    """The images and patients a checkpoint trained or validated on: the non-test rows of its
    release's partition.tsv, or of the collection's split when that is still the one it used."""
    release = state.get("release")
    if release:
        from curation.release import ReleaseError, release_dir  # noqa: PLC0415

        try:
            partition = release_dir(Collection(root), release) / "partition.tsv"
        except ReleaseError as exc:
            raise DataError(str(exc)) from None
        if not partition.is_file():
            raise DataError(f"{name} was trained on release {release}, whose partition.tsv is "
                            f"not in {partition.parent}: cannot tell which patients it trained "
                            "on (restore the release)")
        why = f"in the training or validation partition of release {release} ({name}'s)"
    else:
        partition = root / "splits" / "partition.tsv"
        if not partition.is_file() or split_hash(root) != state.get("split_hash"):
            raise DataError(f"{name} was trained on the working collection's split of then, "
                            "which has changed: cannot tell which patients it trained on "
                            "(compare models trained with --release)")
        why = f"in the training or validation partition {name} used"
    entries = {f: e for f, e in read_partition(partition).items() if e.partition != "test"}
    patients = {e.patientid.strip() for e in entries.values()}
    return Seen(files=set(entries), patients=patients, why=why)


def compare_checkpoints(
    old: Path, new: Path, root: Path, split: str = "test", rounds: int = 1000,
    device: str = "auto", warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Two releases' models on the newer one's release (its frozen rows and split), both without
    the old model's training and validation patients: per-label AUC of each and the change.
    Results go beside each checkpoint as <stem>-<split>-compare-<release>.*."""
    release = load_checkpoint(new).get("release")
    seen = seen_by(load_checkpoint(old), root, old.name)
    suffix = f"-compare-{release or 'collection'}"
    reports = {}
    for name, checkpoint in (("old", old), ("new", new)):
        reports[name] = evaluate_checkpoint(checkpoint, root=root, split=split, rounds=rounds,
                                            device=device, release=release, seen=seen,
                                            suffix=suffix, working=release is None,
                                            warn=warn if name == "new" else None)
    labels = sorted(set(reports["old"]["labels"]) | set(reports["new"]["labels"]))
    rows = {}
    for label in labels:
        before = (reports["old"]["labels"].get(label) or {}).get("auc")
        after = (reports["new"]["labels"].get(label) or {}).get("auc")
        change = None if before is None or after is None else after - before
        rows[label] = {"old_auc": before, "new_auc": after, "change": change}
    return {
        "split": split, "release": release, "rows": reports["new"]["rows"],
        "excluded": reports["new"]["excluded"],
        "old": {"checkpoint": str(old), "release": reports["old"]["release"],
                "mean_auc": reports["old"]["mean_auc"]},
        "new": {"checkpoint": str(new), "release": reports["new"]["release"],
                "mean_auc": reports["new"]["mean_auc"]},
        "labels": rows,
    }
