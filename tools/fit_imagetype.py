"""Fit extract.imagetype's model and write extract/imagetype_params.json.

    python tools/fit_imagetype.py [--folds 5] [--seed 0] [--out extract/imagetype_params.json]

Features come from extract.imagetype.image_features on the corpus of tools/imagetype_corpus.py
(real cxr-dev X-ray and CT images grouped by patient, plus non-radiograph figures). The script
first reports held-out accuracy from grouped cross-validation (no patient or base image on both
sides), then fits on everything and writes the parameters. Needs scikit-learn (the bench extra).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from extract.imagetype import (  # noqa: E402
    FEATURE_NAMES,
    PARAMS_PATH,
    TYPES,
    ImageTypeError,
    image_features,
    is_colourful,
    load_thumbnail,
    predict_proba,
)
from tools.imagetype_corpus import corpus  # noqa: E402

AUGMENTED_COPIES = {"X-ray": 2, "CT": 8, "other": 1}


def augment(image: Image.Image, rng: random.Random) -> Image.Image:
    """A crop, gamma, maybe a contrast stretch or equalisation, and maybe a letter or arrow, as
    figures in papers show radiographs."""
    image = image.convert("L") if image.mode not in ("RGB", "L") else image
    w, h = image.size
    cw, ch = int(w * rng.uniform(0.7, 1.0)), int(h * rng.uniform(0.7, 1.0))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    image = image.crop((x, y, x + cw, y + ch))
    gamma = rng.uniform(0.7, 1.4)
    image = image.point(lambda v: int(255 * (v / 255) ** gamma))
    if rng.random() < 0.3:  # contrast adjusted for print: stretched or equalised
        image = (ImageOps.autocontrast(image, cutoff=rng.uniform(1, 8)) if rng.random() < 0.6
                 else ImageOps.equalize(image))
    if rng.random() < 0.4:
        draw = ImageDraw.Draw(image)
        size = max(8, min(image.size) // 12)
        fill = 255 if image.mode == "L" else (255, 255, 255)
        draw.rectangle((4, 4, 4 + size, 4 + size), fill=fill)
    return image


def featurise(samples, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Features of each sample, its mirror image and augmented copies (kind "aug")."""
    rng = random.Random(seed)
    rows, labels, groups, kinds = [], [], [], []
    for sample in samples:
        try:
            rgb, size = load_thumbnail(sample.data)
        except ImageTypeError:
            continue
        variants = [(sample.kind, rgb, size), ("aug", rgb[:, ::-1], size)]
        with Image.open(io.BytesIO(sample.data)) as image:
            image.load()
            for _ in range(AUGMENTED_COPIES[sample.label]):
                variants.append(("aug", *load_thumbnail(augment(image, rng))))
        for kind, array, dims in variants:
            rows.append(image_features(array, dims))
            labels.append(TYPES.index(sample.label))
            groups.append(sample.group)
            kinds.append(kind)
    return np.array(rows), np.array(labels), np.array(groups), kinds


DEPTH = 2
ROUNDS = 40
GATE = (0.9, 0.55)  # channel correlation below, mean saturation above: colour, so "other"


def fit(x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Boosted trees (depth DEPTH, ROUNDS rounds, balanced classes) on the grey images, exported
    as complete binary trees for extract.imagetype.tree_scores."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    keep = ~is_colourful(x, np.array(GATE))
    model = HistGradientBoostingClassifier(max_iter=ROUNDS, max_depth=DEPTH, learning_rate=0.3,
                                           class_weight="balanced", random_state=seed)
    model.fit(x[keep], y[keep])
    n_inner = 2**DEPTH - 1
    features, thresholds, leaves, classes = [], [], [], []
    for round_trees in model._predictors:
        for k, tree in enumerate(round_trees):
            feature = np.zeros(n_inner, dtype=np.int64)
            threshold = np.full(n_inner, 1e30)
            leaf = np.zeros(2**DEPTH)
            _fill(tree.nodes, 0, 0, 0, feature, threshold, leaf)
            features.append(feature)
            thresholds.append(threshold)
            leaves.append(leaf)
            classes.append(model.classes_[k])
    params = {"baseline": np.ravel(model._baseline_prediction), "feature": np.array(features),
              "threshold": np.array(thresholds), "leaf": np.array(leaves),
              "tree_class": np.array(classes), "gate": np.array(GATE)}
    check = predict_proba(x[keep][:50], params)
    assert np.allclose(check, model.predict_proba(x[keep][:50]), atol=1e-6), "export mismatch"
    return params


def _fill(nodes, node: int, pos: int, depth: int, feature, threshold, leaf) -> None:
    """Copy a sklearn tree into complete-tree arrays; a leaf above the last level repeats."""
    n_inner = len(feature)
    if depth == DEPTH:
        leaf[pos - n_inner] = nodes[node]["value"]
        return
    if nodes[node]["is_leaf"]:
        _fill(nodes, node, 2 * pos + 1, depth + 1, feature, threshold, leaf)
        _fill(nodes, node, 2 * pos + 2, depth + 1, feature, threshold, leaf)
        return
    feature[pos] = nodes[node]["feature_idx"]
    threshold[pos] = nodes[node]["num_threshold"]
    _fill(nodes, nodes[node]["left"], 2 * pos + 1, depth + 1, feature, threshold, leaf)
    _fill(nodes, nodes[node]["right"], 2 * pos + 2, depth + 1, feature, threshold, leaf)


def cross_validate(x, y, groups, kinds, folds: int) -> None:
    from sklearn.model_selection import GroupKFold

    original = np.array([k != "aug" for k in kinds])
    predicted = np.full(len(y), -1)
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        params = fit(x[train], y[train])
        predicted[test] = predict_proba(x[test], params).argmax(axis=1)
    keep = original & (predicted >= 0)
    accuracy = (predicted[keep] == y[keep]).mean()
    print(f"grouped {folds}-fold held-out accuracy: {accuracy:.4f} on {keep.sum()} images")
    matrix = np.zeros((3, 3), dtype=int)
    for t, p in zip(y[keep], predicted[keep], strict=True):
        matrix[t, p] += 1
    print("truth \\ predicted " + " ".join(f"{t:>7}" for t in TYPES))
    for i, t in enumerate(TYPES):
        print(f"{t:>17} " + " ".join(f"{v:>7}" for v in matrix[i]))
    wrong = [(kinds[i], TYPES[y[i]], TYPES[predicted[i]]) for i in np.flatnonzero(keep)
             if predicted[i] != y[i]]
    if wrong:
        print("misses (kind, truth, predicted):", wrong)


def write_params(params: dict[str, np.ndarray], path: Path) -> None:
    def rounded(a: np.ndarray):
        return a.tolist() if a.dtype.kind == "i" else [float(f"{v:.5g}") for v in a.ravel()] \
            if a.ndim == 1 else [rounded(row) for row in a]

    doc = {"classes": list(TYPES), "features": list(FEATURE_NAMES),
           **{key: rounded(value) for key, value in params.items()},
           "refit": "python tools/fit_imagetype.py"}
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=PARAMS_PATH)
    parser.add_argument("--no-write", action="store_true", help="only cross-validate")
    args = parser.parse_args()
    samples = corpus(seed=args.seed)
    x, y, groups, kinds = featurise(samples, args.seed)
    print(f"{len(samples)} images: " + ", ".join(
        f"{t} {int((y[[k != 'aug' for k in kinds]] == i).sum())}" for i, t in enumerate(TYPES)))
    cross_validate(x, y, groups, kinds, args.folds)
    if not args.no_write:
        write_params(fit(x, y, args.seed), args.out)


if __name__ == "__main__":
    main()
