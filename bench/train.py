"""Benchmark models/: data-pipeline images/s from the cache, DenseNet-121 training images/s, and
COVID-19-vs-other AUC on the frontal X-rays of ../shared/data/cxr-dev with a patient split.

Usage: python bench/train.py [--iters 1] [--threads 1] [--skip-densenet] [--rounds 5] [--epochs 15] [--size 128]

cxr-dev is read in place; its cache and runs go to a temporary folder. Figures depend on what
else runs on the machine: note the load average printed at the top when quoting them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cxrbank.collection import Collection
from models.data import (
    FRONTAL_VIEWS,
    finding_of,
    iterate_batches,
    prepare_dataset,
    random_affine,
    select_rows,
    to_input,
)
from models.evaluate import binary_report, predict, source_of
from models.nets import create_model
from models.train import TrainConfig, load_checkpoint, train

CXR_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr-dev"


def frontal_rows() -> list[dict[str, str]]:
    rows = select_rows(Collection(CXR_DEV).read_rows(), FRONTAL_VIEWS, ["X-ray"])
    for row in rows:
        row["finding"] = finding_of(row) or "todo"  # upstream's flat "COVID-19" -> hierarchical
    return rows


def bench_pipeline(rows: list[dict[str, str]], work: Path, size: int = 224) -> None:
    torch.set_num_threads(1)
    started = time.perf_counter()
    prepared = prepare_dataset(CXR_DEV, rows, ["COVID-19"], size, work / "cache")
    decode_s = time.perf_counter() - started
    print(f"cache build: {prepared.decoded} images decoded at {size} px in {decode_s:.1f} s "
          f"({prepared.decoded / decode_s:.0f} images/s, once per image and size)")
    dataset = prepared.dataset
    rng = np.random.default_rng(0)
    order = rng.integers(0, len(dataset), 20_000).tolist()
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in iterate_batches(dataset, order, 64):
        pass
    print(f"data pipeline from the cache, 1 CPU thread, {size} px, batch 64, fetch only (the "
          f"CPU's part when a GPU trains): {len(order) / (time.perf_counter() - started):,.0f} "
          f"images/s wall, {len(order) / (time.process_time() - cpu_started):,.0f} per CPU-second")
    for label, augment, n in (
        ("fetch + normalise", False, 20_000),
        ("fetch + normalise + random affine (meant for the GPU)", True, 2_000),
    ):
        started, cpu_started = time.perf_counter(), time.process_time()
        for images, _, _, _ in iterate_batches(dataset, order[:n], 64):
            x = to_input(images)
            if augment:
                x = random_affine(x)
        rate = n / (time.perf_counter() - started)
        cpu_rate = n / (time.process_time() - cpu_started)
        print(f"data pipeline from the cache, 1 CPU thread, {size} px, batch 64, {label}: "
              f"{rate:,.0f} images/s wall, {cpu_rate:,.0f} images per CPU-second")


def bench_densenet(iters: int, threads: int, batch: int = 64, size: int = 224) -> None:
    torch.set_num_threads(threads)
    model = create_model("densenet121", 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(x: torch.Tensor, device: torch.device) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = model(x).float().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    x = torch.randn(batch, 1, size, size)
    model.train()
    step(x[:8], torch.device("cpu"))  # warm-up on a small batch: CPU iterations take seconds
    started = time.perf_counter()
    for _ in range(iters):
        step(x, torch.device("cpu"))
    rate = iters * batch / (time.perf_counter() - started)
    print(f"DenseNet-121 forward+backward, CPU fp32, {torch.get_num_threads()} threads, "
          f"{size} px, batch {batch}, {iters} iterations: {rate:.1f} images/s")
    if not torch.cuda.is_available():
        print("DenseNet-121 on CUDA (bf16, channels_last): no GPU available on this machine")
        return
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    model.to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 1, size, size, device=device).contiguous(
        memory_format=torch.channels_last)
    for _ in range(10):
        step(x, device)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(50):
        step(x, device)
    torch.cuda.synchronize()
    rate = 50 * batch / (time.perf_counter() - started)
    print(f"DenseNet-121 forward+backward on {torch.cuda.get_device_name()}, bf16 autocast, "
          f"channels_last, {size} px, batch {batch}: {rate:,.0f} images/s")


def patient_folds(rows: list[dict[str, str]], folds: int) -> dict[str, int]:
    """filename -> fold, whole patients per fold: the project's split when it can run,
    else a sha256 of the patient id (printed which)."""
    try:
        from curation.split import SplitSettings, partition_bytes, split_rows

        split = split_rows(rows, SplitSettings(folds=folds, ratios=(60, 20, 20)))
        lines = partition_bytes(split).decode().splitlines()[1:]
        fold_of = {name: int(fold) for name, _, _, fold in (line.split("\t") for line in lines)}
        if set(fold_of) != {r["filename"] for r in rows}:
            raise ValueError("the split does not cover every frontal row")
        print(f"patient split: curation.split ({folds} folds, stratified by finding, sex, source)")
        return fold_of
    except Exception as exc:  # the split module is optional here; fall back, say so
        print(f"patient split: sha256 of patientid ({folds} folds; curation.split unusable: "
              f"{type(exc).__name__})")
        return {
            r["filename"]: int(hashlib.sha256(r["patientid"].encode()).hexdigest(), 16) % folds
            for r in rows
        }


def bench_covid_auc(rows: list[dict[str, str]], work: Path, args: argparse.Namespace) -> None:
    torch.set_num_threads(1)  # a tiny CNN: a second thread only adds contention
    folds = 10  # two folds test, two val, six train per round; rounds rotate them
    fold_of = patient_folds(rows, folds)
    pooled_p, pooled_y, pooled_rows = [], [], []
    started = time.perf_counter()
    for r in range(args.rounds):
        test, val = {2 * r, 2 * r + 1}, {(2 * r + 2) % folds, (2 * r + 3) % folds}
        lines = ["filename\tpatientid\tpartition\tfold"]
        for row in rows:
            f = fold_of[row["filename"]]
            part = "test" if f in test else "val" if f in val else "train"
            lines.append(f"{row['filename']}\t{row['patientid']}\t{part}\t{f}")
        partition = work / f"partition-{r}.tsv"
        partition.write_text("\n".join(lines) + "\n")
        config = TrainConfig(
            root=str(CXR_DEV), arch="tiny", size=args.size, epochs=args.epochs, batch_size=16,
            lr=2e-3, device="cpu", labels=("COVID-19",), out=str(work / f"run-{r}"),
            patience=6, partition=str(partition), cache_dir=str(work / "cache"), seed=r,
        )
        train(config)
        state = load_checkpoint(work / f"run-{r}" / "best.pt")
        test_rows = [row for row in rows if fold_of[row["filename"]] in test]
        dataset = prepare_dataset(CXR_DEV, test_rows, ["COVID-19"], args.size,
                                  work / "cache").dataset
        model = create_model("tiny", 1)
        model.load_state_dict(state["model"])
        probs = predict(model, dataset, range(len(dataset)), torch.device("cpu")).numpy()[:, 0]
        known = dataset.known.numpy()[:, 0]
        pooled_p.append(probs[known])
        pooled_y.append(dataset.targets.numpy()[known, 0])
        pooled_rows += [row for row, k in zip(dataset.rows, known, strict=True) if k]
    probs, targets = np.concatenate(pooled_p), np.concatenate(pooled_y).astype(bool)
    report = binary_report(targets, probs, 0.5, rounds=2000)
    low, high = report["auc_ci95"]
    print(f"COVID-19 vs other findings, cxr-dev frontal X-rays, tiny CNN {args.size} px, "
          f"{args.rounds} rounds of patient-disjoint train/val/test ({time.perf_counter() - started:.0f} s):")
    print(f"  pooled held-out AUC {report['auc']:.3f} (95% bootstrap CI {low:.3f}-{high:.3f}); "
          f"n={report['n']} ({report['positives']} COVID-19, {report['negatives']} other)")
    print(f"  at 0.5: sensitivity {report['sensitivity']:.3f}, specificity "
          f"{report['specificity']:.3f}")
    sources = np.asarray([source_of(row) for row in pooled_rows])
    counts = {s: (int(targets[sources == s].sum()), int((~targets[sources == s]).sum()))
              for s in sorted(set(sources))}
    mixed = sum(1 for pos, neg in counts.values() if pos and neg)
    print(f"  {len(counts)} sources; {mixed} of them hold both classes (the rest let a model "
          "score by source: DeGrave et al. 2021)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=1, help="timed DenseNet iterations on CPU")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for DenseNet (more only helps on an idle machine)")
    parser.add_argument("--skip-densenet", action="store_true")
    parser.add_argument("--rounds", type=int, default=5, choices=range(1, 6),
                        help="train/test rotations on cxr-dev (5 covers every patient once)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--size", type=int, default=128, help="image size for the cxr-dev AUC")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    if not CXR_DEV.is_dir():
        raise SystemExit(f"{CXR_DEV}: not found (the shared reference data)")
    rows = frontal_rows()
    with tempfile.TemporaryDirectory(prefix="cxrbank-bench-") as tmp:
        work = Path(tmp)
        bench_pipeline(rows, work)
        if not args.skip_densenet:
            bench_densenet(args.iters, args.threads)
        bench_covid_auc(rows, work, args)


if __name__ == "__main__":
    main()
