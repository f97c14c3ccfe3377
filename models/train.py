"""Training: the loop (AdamW, cosine schedule, masked weighted BCE, bf16 on CUDA, DDP via
torchrun), checkpoints with their config and split hash beside them, resume and early stopping."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
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

from cxrbank.collection import atomic_write_bytes
from models.checkpoints import check_resumable, load_checkpoint, save_checkpoint
from models.config import (  # noqa: F401 (TrainConfig and the rest are used from here too)
    LabelChoiceError,
    TrainConfig,
    check_labels,
    load_split_rows,
    resolve_device,
)
from models.data import (
    DataError,
    iterate_batches,
    label_vocabulary,
    normalize,
    prepare_dataset,
    random_affine,
)
from models.distributed import gather_predictions, global_loss, setup_distributed
from models.evaluate import mean_auc, plain_json, predict
from models.nets import InitReport, create_model, load_init
from models.runs import (
    check_resume_settings,
    check_run_folder,
    check_val_contrast,
    clear_run_folder,
    cosine_factor,
)

Progress = Callable[[Iterable[Any], int, str], Iterable[Any]]


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
    rank, world, device = setup_distributed(device)
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
        summed, seen_all = global_loss(total_loss, seen, world, device)

        probs = predict(model, val_set, val_indices, device, config.batch_size, config.normalization)
        probs = gather_predictions(probs, val_indices, world, len(val_set), device).numpy()
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
