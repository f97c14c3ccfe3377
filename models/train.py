"""Training: the run configuration, the loop (AdamW, masked weighted BCE, bf16 on CUDA, DDP via
torchrun), checkpoints with their config and split hash beside them, resume and early stopping."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from cxrbank.collection import Collection, Row, atomic_write_bytes, read_csv_rows
from cxrbank.schema import blank_row
from models.checkpoints import check_resumable, load_checkpoint, save_checkpoint
from models.data import (
    CACHE_DIR,
    FRONTAL_VIEWS,
    NORMALIZATIONS,
    PARTITION_FILE,
    DataError,
    iterate_batches,
    label_vocabulary,
    normalize,
    prepare_dataset,
    random_affine,
    read_partition,
    select_rows,
    split_hash,
    split_of,
)
from models.evaluate import mean_auc, plain_json, predict
from models.nets import ARCHS, InitReport, create_model, load_init
from models.runs import (
    check_no_leak,
    check_resume_settings,
    check_run_folder,
    check_split,
    check_val_contrast,
    clear_run_folder,
    cosine_factor,
)

Progress = Callable[[Iterable[Any], int, str], Iterable[Any]]


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
        from curation.release import ReleaseError, release_dir  # noqa: PLC0415

        try:
            folder = release_dir(Collection(self.root), version)
        except ReleaseError as exc:
            raise DataError(str(exc)) from exc
        if not folder.is_dir():
            known = sorted(p.name for p in folder.parent.glob("*/manifest.json")
                           if not p.parent.name.startswith("."))
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


@dataclass
class TrainResult:
    out: Path
    best_score: float
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    labels: list[str]
    history: list[dict[str, Any]] = field(default_factory=list)
    decoded: int = 0
    reused: int = 0
    left_out: list[str] = field(default_factory=list)
    init: InitReport | None = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DataError("--device cuda asked for, but no CUDA device is available")
    return torch.device(name)


def load_split_rows(config: TrainConfig) -> tuple[dict[str, list[Row]], str, str]:
    """Rows per split (train/val/test) after the view and modality filters, the split hash and
    the data version (sha256 of metadata.csv). DataError when the split no longer fits the rows
    (rows added after it, a patient in two of train/val/test)."""
    root = Path(config.root)
    collection = Collection(root)
    if not collection.metadata_path.is_file():
        raise DataError(f"{root}: no metadata.csv here (not a collection)")
    partition_path = config.partition_path()
    partition = read_partition(partition_path)
    metadata = Path(config.metadata) if config.metadata else collection.metadata_path
    all_rows = ([{**blank_row(), **r} for r in read_csv_rows(metadata)[1]] if config.metadata
                else collection.read_rows())
    check_split(collection, all_rows, partition_path)
    rows = select_rows(all_rows, config.views, config.modalities)
    if not rows:
        raise DataError(_no_rows(all_rows, config))
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


def _unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def masked_bce(
    logits: torch.Tensor, targets: torch.Tensor, known: torch.Tensor, pos_weight: torch.Tensor
) -> torch.Tensor:
    """BCE-with-logits averaged over the known labels only, positives weighted per label."""
    loss = F.binary_cross_entropy_with_logits(
        logits.float(), targets, pos_weight=pos_weight, reduction="none"
    )
    known = known.float()
    return (loss * known).sum() / known.sum().clamp(min=1.0)


def _setup_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return dist.get_rank(), world, device


def _collective_device(device: torch.device) -> torch.device:
    """Where tensors for a collective must live: NCCL takes only CUDA tensors."""
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


def _gather_predictions(
    probs: torch.Tensor, indices: list[int], world: int, n: int,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Every rank's predictions for its shard -> the whole split's, in dataset order."""
    index = torch.tensor(indices, dtype=torch.long)
    if world > 1:
        where = _collective_device(device or torch.device("cpu"))
        probs, index = probs.to(where), index.to(where)
        probs_all = [torch.empty_like(probs) for _ in range(world)]
        index_all = [torch.empty_like(index) for _ in range(world)]
        dist.all_gather(probs_all, probs)
        dist.all_gather(index_all, index)
        probs, index = torch.cat(probs_all).cpu(), torch.cat(index_all).cpu()
    out = torch.zeros(n, probs.shape[1])
    out[index] = probs  # DistributedSampler pads by repeating rows: same values, same place
    return out


def _global_loss(
    total: torch.Tensor, seen: int, world: int, device: torch.device
) -> tuple[float, int]:
    """The epoch's summed loss and image count over all ranks (each rank saw its shard)."""
    if world <= 1:
        return total.item(), seen
    where = _collective_device(device)
    both = torch.stack([total.detach().float().to(where),
                        torch.tensor(float(seen), device=where)])
    dist.all_reduce(both)
    return both[0].item(), int(both[1].item())


def _identity_progress(items: Iterable[Any], length: int, label: str) -> Iterable[Any]:
    return items


def train(
    config: TrainConfig,
    log: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train, validate each epoch, keep the best checkpoint by validation mean AUC."""
    log = log or (lambda message: None)
    device = resolve_device(config.device)
    rank, world, device = _setup_distributed(device)
    is_main = rank == 0
    if not is_main:
        progress, log = None, (lambda message: None)
    progress = progress or _identity_progress
    torch.manual_seed(config.seed + rank)
    np.random.seed(config.seed + rank)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    out = Path(config.out)
    check_run_folder(out, config.resume, config.force)
    resume_state = None
    if config.resume:
        resume_state = check_resumable(load_checkpoint(config.resume), config.resume)
        check_resume_settings(config.resume, resume_state, config.to_dict())
    splits, digest, data_version = load_split_rows(config)
    if not splits["train"] or not splits["val"]:
        hint = f" (is fold {config.fold} a test fold?)" if config.fold is not None else ""
        raise DataError(
            f"need train and val rows; found {len(splits['train'])} train, "
            f"{len(splits['val'])} val after the view/modality filters{hint}"
        )
    if resume_state is not None:
        if resume_state.get("split_hash") != digest:
            log(f"warning: the split changed since {config.resume} was saved")
        labels = list(resume_state["labels"])
    else:
        labels = list(config.labels) if config.labels else label_vocabulary(splits["train"])
        check_labels(labels, label_vocabulary(splits["train"]))
    if not labels:
        raise DataError("no labels: the training rows have no reviewed finding")
    root = Path(config.root)
    strict = config.metadata is not None  # a release's rows: every one of them, or refuse
    train_data = prepare_dataset(root, splits["train"], labels, config.size, config.cache_path(),
                                 strict=strict, release=config.release)
    val_data = prepare_dataset(root, splits["val"], labels, config.size, config.cache_path(),
                               strict=strict, release=config.release)
    train_set, val_set = train_data.dataset, val_data.dataset
    positives, negatives = val_set.class_counts()
    for label in check_val_contrast(labels, positives.tolist(), negatives.tolist(), len(val_set)):
        log(f"warning: no validation contrast for {label} (one class only): "
            "it does not count towards the validation AUC")
    left_out = [f"{name}: {why}" for name, why in train_data.failures + val_data.failures]
    for line in left_out:
        log(f"left out {line}")

    model = create_model(config.arch, len(labels))
    init_report = None
    if resume_state is not None:
        try:
            model.load_state_dict(resume_state["model"])
        except RuntimeError as exc:
            raise DataError(f"{config.resume}: its weights do not fit a {config.arch} network "
                            f"with {len(labels)} labels ({str(exc).splitlines()[0]})") from None
    elif config.init:
        init_report = load_init(model, config.init, trust_pickle=config.trust_init)
        log(init_report.summary())
    model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    forward = torch.compile(model) if config.compile else model

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    positives, negatives = train_set.class_counts()
    pos_weight = torch.where(
        positives > 0, negatives / positives.clamp(min=1), torch.ones_like(positives)
    ).clamp(1 / config.max_pos_weight, config.max_pos_weight).to(device)

    start_epoch, best_score, best_epoch, history = 0, -math.inf, -1, []
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        start_epoch = int(resume_state["epoch"])
        best_score = float(resume_state.get("best_score", -math.inf))
        best_epoch = int(resume_state.get("best_epoch", -1))
        history = list(json.loads(resume_state.get("history") or "[]"))
        log(f"resumed from {config.resume} after epoch {start_epoch} of {config.epochs}")
    for group in optimizer.param_groups:  # the closed-form schedule from this epoch on
        group["initial_lr"] = config.lr
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: cosine_factor(e, config.epochs), last_epoch=start_epoch - 1
    )

    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        if config.force and not config.resume:
            clear_run_folder(out)
        run = {
            "config": config.to_dict(), "labels": labels, "split_hash": digest,
            "data_version": data_version, "release": config.release,
            "train_rows": len(train_set), "val_rows": len(val_set), "world_size": world,
            "torch": torch.__version__, "init": dataclasses.asdict(init_report) if init_report else None,
        }
        atomic_write_bytes(out / "run.json", json.dumps(run, indent=2).encode())

    train_sampler = torch.utils.data.DistributedSampler(
        train_set, num_replicas=world, rank=rank, shuffle=True, seed=config.seed
    )
    val_indices = list(torch.utils.data.DistributedSampler(
        val_set, num_replicas=world, rank=rank, shuffle=False
    ))
    generator = torch.Generator()
    autocast = device.type == "cuda"
    stopped_early = False
    epoch = start_epoch
    for epoch in range(start_epoch, config.epochs):
        train_sampler.set_epoch(epoch)
        generator.manual_seed((config.seed * 100_003 + epoch) * 1009 + rank)  # resumable
        order = list(train_sampler)
        model.train()
        started, seen = time.perf_counter(), 0
        total_loss = torch.zeros((), device=device)  # summed on the device: no sync per step
        batches = _train_batches(train_set, order, config, device, generator)
        steps = math.ceil(len(order) / config.batch_size)
        lr = optimizer.param_groups[0]["lr"]
        for x, y, m in progress(batches, steps, f"epoch {epoch + 1}/{config.epochs}"):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                logits = forward(x)
            loss = masked_bce(logits, y, m, pos_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += x.shape[0]
            total_loss += loss.detach() * x.shape[0]
        scheduler.step()
        elapsed = time.perf_counter() - started
        summed, seen_all = _global_loss(total_loss, seen, world, device)

        probs = predict(model, val_set, val_indices, device, config.batch_size, config.normalization)
        probs = _gather_predictions(probs, val_indices, world, len(val_set), device).numpy()
        val_auc = mean_auc(probs, val_set.targets.numpy(), val_set.known.numpy())
        score = val_auc if not math.isnan(val_auc) else -math.inf
        improved = score > best_score or best_epoch < 0
        if improved:
            best_score, best_epoch = score, epoch + 1
        record = {
            "epoch": epoch + 1, "train_loss": summed / max(seen_all, 1),
            "val_mean_auc": val_auc, "lr": lr,
            "seconds": round(elapsed, 3), "images_per_s": round(seen_all / elapsed, 1),
        }
        history.append(record)
        log(
            f"epoch {epoch + 1}/{config.epochs} loss {record['train_loss']:.4f} "
            f"val mean AUC {val_auc:.4f}{' (best)' if improved else ''} "
            f"{record['images_per_s']:.0f} img/s"
        )
        if is_main:
            state = {
                "model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "epoch": epoch + 1,
                "best_score": best_score, "best_epoch": best_epoch,
                "history": json.dumps(history), "config": config.to_dict(), "labels": labels,
                "split_hash": digest, "data_version": data_version, "release": config.release,
                "saved": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            save_checkpoint(out / "last.pt", state)
            if improved:
                save_checkpoint(out / "best.pt", state)
            atomic_write_bytes(out / "history.json", json.dumps(plain_json(history), indent=2).encode())
        if epoch + 1 - best_epoch >= config.patience:
            stopped_early = epoch + 1 < config.epochs
            log(f"stopping: no better validation AUC for {config.patience} epochs")
            break
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return TrainResult(
        out=out, best_score=best_score, best_epoch=best_epoch,
        epochs_run=len(history), stopped_early=stopped_early, labels=labels, history=history,
        decoded=train_data.decoded + val_data.decoded, reused=train_data.reused + val_data.reused,
        left_out=left_out, init=init_report,
    )


def _train_batches(
    dataset: Any, order: list[int], config: TrainConfig, device: torch.device,
    generator: torch.Generator,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Training batches on the device: uint8 moved once, augmented and normalised there."""
    for images, targets, known, _ in iterate_batches(dataset, order, config.batch_size):
        x = images.to(device, non_blocking=True).float().div_(255.0)
        if config.augment:
            x = random_affine(x, generator=generator)
        x = normalize(x, config.normalization)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, targets.to(device, non_blocking=True), known.to(device, non_blocking=True)


if __name__ == "__main__":  # torchrun --nproc_per_node=N -m models.train [cxrbank train options]
    from cxrbank.commands.models import train_cmd

    train_cmd(prog_name="python -m models.train")
