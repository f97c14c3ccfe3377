"""Benchmark `cxrbank split` against GroupKFold, StratifiedGroupKFold and MultilabelStratifiedKFold.

Usage: python bench/split.py [--patients 50000] [--root COLLECTION] [--seed 0]
       [--incremental-seeds 0,...,9] [--generated-incremental-seeds 0,1,2,3]

Data: the collection at --root if given, else ../shared/data/cxr-dev imported into a temporary
collection (images hard-linked, nothing copied into the repository); and a generated collection of --patients
patients with upstream-like label rarity, a hospital mix per source, 1-8 images per patient.
Every method's patient -> fold assignment is measured the same way (curation/balance.py).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from curation.balance import balance_report
from curation.split import Split, SplitSettings, finding_labels, split_rows
from cxrbank.collection import Collection

CXR_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "cxr-dev" / "metadata.csv"

# Patient-level finding frequencies shaped like covid-chestxray-dataset (2020-2021).
FINDINGS: dict[str, float] = {
    "Pneumonia/Viral/COVID-19": 0.52, "No Finding": 0.10, "todo": 0.08,
    "Pneumonia/Bacterial/Streptococcus": 0.03, "Pneumonia/Fungal/Pneumocystis": 0.03,
    "Pneumonia": 0.025, "Pneumonia/Viral/SARS": 0.02, "ARDS": 0.02, "Tuberculosis": 0.02,
    "Pneumonia/Bacterial": 0.015, "Pneumonia/Viral": 0.01, "Pneumonia/Bacterial/Klebsiella": 0.01,
    "Pneumonia/Bacterial/Legionella": 0.008, "Pneumonia/Bacterial/Mycoplasma": 0.006,
    "Pneumonia/Viral/MERS-CoV": 0.005, "Pneumonia/Viral/Influenza": 0.005,
    "Pneumonia/Aspiration": 0.003, "Pneumonia/Viral/Influenza/H1N1": 0.003,
    "Pneumonia/Viral/Varicella": 0.002, "Pneumonia/Bacterial/Chlamydophila": 0.0015,
    "Pneumonia/Lipoid": 0.001, "Pneumonia/Bacterial/E.Coli": 0.001,
    "Pneumonia/Fungal/Aspergillosis": 0.001, "Pneumonia/Bacterial/Nocardia": 0.0006,
    "Pneumonia/Viral/Herpes": 0.0004, "Pneumonia/Bacterial/Staphylococcus/MRSA": 0.0003,
}
VIEWS = ("PA", "AP", "AP Supine", "L", "Axial")


def generated_rows(patients: int, seed: int) -> list[dict[str, str]]:
    """Rows of a synthetic collection: label mixes differ by source (the hospital shortcut)."""
    rng = np.random.default_rng(seed)
    names = list(FINDINGS)
    base = np.array(list(FINDINGS.values()))
    base /= base.sum()
    n_sources = 24
    source_share = 1.0 / np.arange(1, n_sources + 1) ** 1.1
    source_share /= source_share.sum()
    mixes = rng.dirichlet(base * 40 + 1e-3, size=n_sources)
    rows = []
    for pid in range(1, patients + 1):
        source = int(rng.choice(n_sources, p=source_share))
        finding = names[int(rng.choice(len(names), p=mixes[source]))]
        sex = str(rng.choice(["M", "F", ""], p=[0.55, 0.35, 0.10]))
        for image in range(min(1 + int(rng.geometric(0.55)) - 1, 8)):
            this = finding
            if image and rng.random() < 0.04:  # a later image relabelled (e.g. COVID-19 -> ARDS)
                this = names[int(rng.choice(len(names), p=base))]
            rows.append({
                "patientid": str(pid), "filename": f"p{pid}_{image}.png", "finding": this,
                "sex": sex, "source": f"site{source:02d}", "view": VIEWS[image % len(VIEWS)],
                "modality": "CT" if image % len(VIEWS) == 4 else "X-ray",
            })
    return rows


def cxr_dev_rows() -> list[dict[str, str]]:
    """The rows of cxr-dev's metadata.csv as upstream wrote them (flat findings)."""
    with open(CXR_DEV, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def imported_cxr_dev_rows() -> tuple[list[dict[str, str]], str]:
    """cxr-dev imported by `cxrbank import --link` into a temporary collection, or its CSV rows."""
    try:
        from cxrbank.upstream import import_upstream  # noqa: PLC0415
    except ImportError:
        return cxr_dev_rows(), "cxr-dev (rows of metadata.csv read in place; no importer)"
    with tempfile.TemporaryDirectory() as tmp:
        collection = Collection.create(Path(tmp) / "cxr-dev")
        import_upstream(CXR_DEV.parent, collection, link=True)
        return collection.read_rows(), "cxr-dev imported with `cxrbank import --link`"


def baseline_folds(name: str, split: Split, seed: int) -> np.ndarray:
    """A fold per patient from a baseline (scikit-learn / iterative-stratification)."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold  # noqa: PLC0415
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold  # noqa: PLC0415

    t, k = split.table, split.settings.folds
    n_images = len(t.image_patient)
    fold = np.full(len(t.ids), -1)
    dummy = np.zeros((n_images, 1))
    if name == "GroupKFold":
        splits = GroupKFold(n_splits=k).split(dummy, groups=t.image_patient)
    elif name == "StratifiedGroupKFold":
        collapsed = ["/".join(np.array(t.label_names)[row]) or "none" for row in t.image_labels]
        splits = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(
            dummy, collapsed, groups=t.image_patient
        )
    else:
        y = np.zeros((len(t.ids), len(t.label_names)), dtype=int)
        np.maximum.at(y, t.image_patient, t.image_labels.astype(int))
        splits = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(
            np.zeros((len(t.ids), 1)), y
        )
        for f, (_, test) in enumerate(splits):
            fold[test] = f
        return fold
    for f, (_, test) in enumerate(splits):
        fold[t.image_patient[test]] = f
    return fold


def measure(name: str, split: Split, seconds: float) -> dict:
    report = balance_report(split.view())
    gaps = report["max_prevalence_gap"]
    return {
        "method": name,
        "LD_folds": report["ld"]["folds"],
        "LD_partitions": report["ld"]["partitions"],
        "LD_patients": report["ld_patients"]["folds"],
        "max_gap_pp": 100 * max((g["folds"] for g in gaps.values()), default=0.0),
        "zero_pos_folds": sum(len(v) for v in report["zero_positive_folds"].values()),
        "overlap": sum(report["patient_overlap"].values()),
        "seconds": seconds,
    }


def compare(title: str, rows: list[dict[str, str]], settings: SplitSettings) -> list[dict]:
    import iterstrat.ml_stratifiers  # noqa: F401, PLC0415 - imported before any timing
    import sklearn.model_selection  # noqa: F401, PLC0415

    start = time.perf_counter()
    ours = split_rows(rows, settings)
    results = [measure("cxrbank split", ours, time.perf_counter() - start)]
    for name in ("GroupKFold", "StratifiedGroupKFold", "MultilabelStratifiedKFold"):
        start = time.perf_counter()
        fold = baseline_folds(name, ours, settings.seed)
        elapsed = time.perf_counter() - start
        results.append(measure(name, Split(settings, ours.table, fold), elapsed))
    t = ours.table
    print(f"\n## {title}: {len(t.ids)} patients, {len(t.filenames)} images, "
          f"{len(t.label_names)} labels, {settings.folds} folds")
    print(f"{'method':28} {'LD folds':>9} {'LD part':>9} {'LD pat':>9} {'gap pp':>7} "
          f"{'0-pos':>6} {'overlap':>7} {'time s':>7}")
    for r in results:
        print(f"{r['method']:28} {r['LD_folds']:9.2e} {r['LD_partitions']:9.2e} "
              f"{r['LD_patients']:9.2e} {r['max_gap_pp']:7.3f} {r['zero_pos_folds']:6d} "
              f"{r['overlap']:7d} {r['seconds']:7.2f}")
    return results


def incremental(rows: list[dict[str, str]], settings: SplitSettings, seed: int) -> tuple[float, float]:
    """Split 90% of patients, add the other 10%: nobody moves; LD close to a full rebalance.

    Returns the relative LD gaps (over images, over patients) of the incremental split against
    a full rebalance of the same rows with the same seed."""
    settings = replace(settings, seed=seed)
    patients = sorted({r["patientid"] for r in rows})
    rng = np.random.default_rng(seed)
    late = set(rng.choice(patients, size=len(patients) // 10, replace=False).tolist())
    first = split_rows([r for r in rows if r["patientid"] not in late], settings)
    fold_partition = settings.fold_partition()
    previous = {
        pid: (("train", "val", "test")[fold_partition[f]], int(f))
        for pid, f in zip(first.table.ids, first.fold.tolist(), strict=True)
    }
    start = time.perf_counter()
    grown = split_rows(rows, settings, previous)
    elapsed = time.perf_counter() - start
    full = split_rows(rows, settings, previous, rebalance=True)
    grown_report, full_report = balance_report(grown.view()), balance_report(full.view())
    ld_grown, ld_full = grown_report["ld"]["folds"], full_report["ld"]["folds"]
    pat_grown, pat_full = grown_report["ld_patients"]["folds"], full_report["ld_patients"]["folds"]
    gap, gap_patients = ld_grown / ld_full - 1, pat_grown / pat_full - 1
    verdict = "within 10%" if gap <= 0.10 else "OVER 10%"
    print(f"incremental seed {seed} (+{len(late)} patients): moved {grown.moved['fold']} existing "
          f"patients, LD {ld_grown:.3e} vs full rebalance {ld_full:.3e} ({100 * gap:+.1f}%, "
          f"{verdict}), LD patients {pat_grown:.3e} vs {pat_full:.3e} ({100 * gap_patients:+.1f}%), "
          f"{elapsed:.2f} s; a rebalance would move {full.moved['fold']} patients "
          f"({full.moved['left_test']} out of test)")
    return gap, gap_patients


def incremental_seeds(rows: list[dict[str, str]], settings: SplitSettings, seeds: list[int]) -> None:
    """incremental() for each seed, then the mean and worst gaps over them."""
    gaps = np.array([incremental(rows, settings, seed) for seed in seeds])
    print(f"incremental over seeds {','.join(map(str, seeds))}: LD gap mean "
          f"{100 * gaps[:, 0].mean():+.1f}%, worst {100 * gaps[:, 0].max():+.1f}%; LD patients "
          f"gap mean {100 * gaps[:, 1].mean():+.1f}%, worst {100 * gaps[:, 1].max():+.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=50_000)
    parser.add_argument("--root", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--incremental-seeds", default="0,1,2,3,4,5,6,7,8,9",
                        help="seeds of the 10%%-new-patients measurement on the real collection")
    parser.add_argument("--generated-incremental-seeds", default="0,1,2,3",
                        help="the same on the generated collection (about 25 s each at 50,000)")
    args = parser.parse_args()
    settings = SplitSettings(folds=args.folds, seed=args.seed)
    if args.root:
        real, title = Collection.open(args.root).read_rows(), f"collection {args.root}"
    elif CXR_DEV.exists():
        real, title = imported_cxr_dev_rows()
    else:
        real, title = [], ""
        print("no cxr-dev data beside the repository; generated collection only", file=sys.stderr)
    if real:
        labelled = {r["patientid"] for r in real if finding_labels(r)}
        print(f"{title}: {len(labelled)} patients with labels")
        compare(title, real, settings)
        incremental_seeds(real, settings, _seeds(args.incremental_seeds))
    rows = generated_rows(args.patients, args.seed)
    compare(f"generated ({args.patients} patients)", rows, settings)
    incremental_seeds(rows, settings, _seeds(args.generated_incremental_seeds))


def _seeds(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


if __name__ == "__main__":
    main()
