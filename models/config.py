"""A run's configuration and the rows it uses: TrainConfig (written beside every checkpoint),
the device, the split's rows after the view/modality filters and the split checks, labels."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cxrbank.collection import Collection, Row, read_csv_rows
from cxrbank.schema import blank_row
from models.data import (
    CACHE_DIR,
    FRONTAL_VIEWS,
    NORMALIZATIONS,
    PARTITION_FILE,
    DataError,
    read_partition,
    select_rows,
    split_hash,
    split_of,
)
from models.nets import ARCHS
from models.runs import check_no_leak, check_split


@dataclass
class TrainConfig:
    """Everything a run depends on; written beside every checkpoint as run.json."""

    root: str = "."
    arch: str = "densenet121"
    size: int = 224
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    device: str = "auto"
    fold: int | None = None
    init: str | None = None
    trust_init: bool = False
    resume: str | None = None
    out: str = "runs/train"
    compile: bool = False
    views: tuple[str, ...] = FRONTAL_VIEWS
    modalities: tuple[str, ...] = ("X-ray",)
    labels: tuple[str, ...] | None = None  # None: every label found in the training rows
    normalization: str = "unit"  # "xrv" for torchxrayvision's [-1024, 1024] weights
    augment: bool = True
    patience: int = 5  # epochs without a better validation AUC before stopping
    max_pos_weight: float = 20.0
    seed: int = 0
    partition: str | None = None  # default: <root>/splits/partition.tsv
    metadata: str | None = None  # the rows file; default: <root>/metadata.csv
    cache_dir: str | None = None  # default: <root>/.cxrbank/cache
    release: str | None = None  # the data release trained on (`cxrbank train --release`)
    force: bool = False  # replace a run already in `out`

    def __post_init__(self) -> None:
        self.views = tuple(self.views)
        self.modalities = tuple(self.modalities)
        self.labels = tuple(self.labels) if self.labels is not None else None
        checks = {
            "arch": self.arch in ARCHS,
            "size": 16 <= self.size <= 2048,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "device": self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            "fold": self.fold is None or self.fold >= 0,
            "normalization": self.normalization in NORMALIZATIONS,
            "patience": self.patience >= 1,
            "views": bool(self.views),
            "modalities": bool(self.modalities),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"TrainConfig.{name}: bad value {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def use_release(self, version: str) -> None:
        """Train or evaluate on exactly a release's frozen rows and split."""
        from curation.release import ReleaseError, list_releases, release_dir  # noqa: PLC0415

        try:
            folder = release_dir(Collection(self.root), version)
        except ReleaseError as exc:
            raise DataError(str(exc)) from exc
        if not folder.is_dir():
            known = [m["version"] for m in list_releases(Collection(self.root))]
            raise DataError(f"release {version} does not exist in {folder.parent} (releases "
                            f"there: {', '.join(known) or 'none'}); make it with "
                            f"`cxrbank release {version}`")
        for name in ("metadata.csv", "partition.tsv"):
            if not (folder / name).is_file():
                raise DataError(f"release {version} has no {name} ({folder}); "
                                "make releases after `cxrbank split`")
        self.metadata = str(folder / "metadata.csv")
        self.partition = str(folder / "partition.tsv")
        self.release = version

    def partition_path(self) -> Path:
        return Path(self.partition) if self.partition else Path(self.root) / PARTITION_FILE

    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.root) / CACHE_DIR



def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DataError("--device cuda asked for, but no CUDA device is available")
    return torch.device(name)


def load_split_rows(
    config: TrainConfig, warn: Callable[[str], None] | None = None,
) -> tuple[dict[str, list[Row]], str, str]:
    """Rows per split (train/val/test) after the view and modality filters, the split hash and
    the data version (sha256 of metadata.csv). DataError when the split no longer fits the rows
    (rows added after it, a patient in two of train/val/test). With `warn` (evaluation), rows
    added after the split are only said through it: they are in no split, so not evaluated."""
    root = Path(config.root)
    collection = Collection(root)
    if not collection.metadata_path.is_file():
        raise DataError(f"{root}: no metadata.csv here (not a collection)")
    partition_path = config.partition_path()
    partition = read_partition(partition_path)
    metadata = Path(config.metadata) if config.metadata else collection.metadata_path
    all_rows = ([{**blank_row(), **r} for r in read_csv_rows(metadata)[1]] if config.metadata
                else collection.read_rows())
    if warn is None:
        check_split(collection, all_rows, partition_path)
    else:  # a patient in two partitions is still refused
        check_split(collection, [r for r in all_rows if r["filename"] in partition],
                    partition_path)
    rows = select_rows(all_rows, config.views, config.modalities)
    if not rows:
        raise DataError(_no_rows(all_rows, config))
    unplaced = sum(row["filename"] not in partition for row in rows)
    if unplaced and warn is not None:
        warn(f"{unplaced} of {len(rows)} rows are in no split (added after `cxrbank split`) "
             "and are not evaluated; run `cxrbank split` to place them")
    splits: dict[str, list[Row]] = {"train": [], "val": [], "test": []}
    for row in rows:
        entry = partition.get(row["filename"])
        if entry is not None:
            splits.setdefault(split_of(entry, config.fold), []).append(row)
    check_no_leak(splits, config.fold)
    digest = split_hash(root, Path(config.partition) if config.partition else None)
    data_version = hashlib.sha256(metadata.read_bytes()).hexdigest()
    return splits, digest, data_version


def _no_rows(rows: list[Row], config: TrainConfig) -> str:
    """Why the view/modality filters kept nothing, and which --views would keep rows."""
    message = (f"no row has views {', '.join(config.views)} and modality "
               f"{', '.join(config.modalities)}")
    other = select_rows(rows, ("*",), config.modalities)
    if other and "*" not in config.views:
        views = sorted({r.get("view") or "(blank)" for r in other})
        message += (f"; the {len(other)} rows of that modality have views {', '.join(views)}:"
                    " pass --views '*' (or those views)")
    return message


class LabelChoiceError(DataError):
    """--labels names labels the training rows do not have (a usage error)."""


def check_labels(asked: list[str], known: list[str]) -> None:
    """LabelChoiceError naming the asked labels no training row has, with the known ones."""
    unknown = [label for label in asked if label not in known]
    if not unknown:
        return
    shown = ", ".join(known[:12]) + (f", … ({len(known)} in all)" if len(known) > 12 else "")
    raise LabelChoiceError(f"no training row has label {', '.join(map(repr, unknown))}; "
                           f"labels here: {shown or 'none'}")
