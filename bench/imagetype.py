"""Image type (X-ray / CT / other): accuracy, confusion matrix and images per second on one core.

    python bench/imagetype.py [--skip-cv] [--seed 1]

1. Held-out: grouped 5-fold cross-validation (patients and base images never on both sides),
   refitting the model per fold exactly as tools/fit_imagetype.py does (needs scikit-learn).
2. Shipped model on the corpus of tools/imagetype_corpus.py drawn with another seed: the real
   cxr-dev images were part of its fit (so those rows are training figures); the generated
   "other" figures are new draws.
3. Speed, pinned to one core with one BLAS thread: decode-inclusive on the cxr-dev files as
   stored (bytes already in memory), decoding alone on the same files (the ceiling for any
   classifier that reads them), decode-inclusive on the same images re-encoded at figure size
   (longest side 512 px), and features + model alone on decoded thumbnails.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from extract.imagetype import (  # noqa: E402
    SIDE,
    TYPES,
    classify_image,
    image_features,
    load_thumbnail,
    predict_proba,
)
from tools.imagetype_corpus import corpus  # noqa: E402


def confusion(truth: list[str], predicted: list[str], title: str) -> None:
    matrix = np.zeros((3, 3), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        matrix[TYPES.index(t), TYPES.index(p)] += 1
    accuracy = np.trace(matrix) / max(1, matrix.sum())
    print(f"\n{title}: accuracy {accuracy:.4f} on {matrix.sum()} images")
    print("truth \\ predicted " + " ".join(f"{t:>7}" for t in TYPES))
    for i, t in enumerate(TYPES):
        print(f"{t:>17} " + " ".join(f"{v:>7}" for v in matrix[i]))


def rate(fn, items, repeat: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        for item in items:
            fn(item)
    return len(items) * repeat / (time.perf_counter() - started)


def decode_only(data: bytes) -> None:
    """The least decoding load_thumbnail can do: JPEGs at reduced size, other formats whole."""
    image = Image.open(io.BytesIO(data))
    if image.format == "JPEG":
        image.draft(image.mode, (SIDE * 2, SIDE * 2))
    image.load()


def figure_sized(data: bytes) -> bytes:
    image = Image.open(io.BytesIO(data))
    fmt = image.format
    image.thumbnail((512, 512))
    if fmt == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, fmt or "PNG")
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-cv", action="store_true", help="skip the cross-validation")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print("(measured on a shared machine with other work running)")
    if not args.skip_cv:
        from tools.fit_imagetype import cross_validate, featurise

        x, y, groups, kinds = featurise(corpus(seed=0), seed=0)
        print("\nheld-out, grouped 5-fold cross-validation:")
        cross_validate(x, y, groups, kinds, folds=5)
    samples = corpus(seed=args.seed)
    truth, predicted, kinds = [], [], []
    for sample in samples:
        truth.append(sample.label)
        predicted.append(classify_image(sample.data)[0])
        kinds.append(sample.kind)
    real = [i for i, k in enumerate(kinds) if k in ("X-ray", "CT")]
    other = [i for i, k in enumerate(kinds) if k not in ("X-ray", "CT")]
    confusion([truth[i] for i in real], [predicted[i] for i in real],
              "shipped model, cxr-dev images (seen in fitting)")
    confusion([truth[i] for i in other], [predicted[i] for i in other],
              f"shipped model, non-radiograph figures (seed {args.seed})")
    misses = sorted({(kinds[i], predicted[i]) for i in other if predicted[i] != truth[i]})
    if misses:
        print("other-figure misses (kind, predicted):", misses)

    stored = [samples[i].data for i in real]
    small = [figure_sized(d) for d in stored]
    thumbs = [load_thumbnail(d) for d in stored]
    classify_image(stored[0])
    print(f"\nspeed, one core ({len(stored)} cxr-dev images, median "
          f"{int(np.median([Image.open(io.BytesIO(d)).size[0] for d in stored]))} px wide):")
    print(f"  decode + features + model, files as stored:  {rate(classify_image, stored):7.1f}"
          " images/s")
    print(f"  decode alone (Pillow, JPEG draft), as stored: {rate(decode_only, stored):7.1f}"
          " images/s  (the ceiling for any classifier reading these files)")
    print(f"  decode + features + model, figure-sized:     {rate(classify_image, small):7.1f}"
          " images/s")
    print(f"  features + model on decoded thumbnails:      "
          f"{rate(lambda t: predict_proba(image_features(*t)), thumbs, repeat=3):7.1f} images/s")


if __name__ == "__main__":
    main()
