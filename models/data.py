"""Training data: rows and splits of a collection, labels with unknowns masked, the decoded-once
image cache (uint8 memmap keyed by sha256 and size), batches, normalisation and augmentation."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import glob
import hashlib
import math
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cxrbank.collection import Collection, Row, atomic_write_bytes, file_sha256
from cxrbank.schema import FINDINGS, canonical_finding, normalize_modality, normalize_view

FRONTAL_VIEWS: tuple[str, ...] = ("PA", "AP", "AP Supine", "AP Erect")
PARTITION_FILE = Path("splits") / "partition.tsv"
CACHE_DIR = Path(".cxrbank") / "cache"
NORMALIZATIONS: tuple[str, ...] = ("unit", "xrv")


class DataError(Exception):
    """The collection or its split cannot be used for training as asked."""


# -- rows, splits and labels ------------------------------------------------------------------


@dataclass(frozen=True)
class PartitionEntry:
    """One line of splits/partition.tsv."""

    patientid: str
    partition: str  # train, val or test
    fold: str  # "0".."k-1", or "" (test rows)


def read_partition(path: Path) -> dict[str, PartitionEntry]:
    """filename -> its patient, partition and fold, from the partition.tsv of `cxrbank split`."""
    if not path.is_file():
        raise DataError(f"{path}: no partition file; run `cxrbank split` first")
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        needed = {"filename", "patientid", "partition"}
        if not reader.fieldnames or not needed <= set(reader.fieldnames):
            raise DataError(f"{path}: header must name {', '.join(sorted(needed))}")
        return {
            r["filename"]: PartitionEntry(
                r["patientid"], r["partition"].strip(), (r.get("fold") or "").strip()
            )
            for r in reader
        }


def split_hash(root: Path, partition_path: Path | None = None) -> str:
    """The identity of a split: curation's split_hash for a collection's own split, else the
    sha256 of the partition file's bytes."""
    path = partition_path or root / PARTITION_FILE
    if partition_path is None:
        try:
            from curation.split import split_hash as curation_split_hash
        except ImportError:
            curation_split_hash = None
        if curation_split_hash is not None:
            return str(curation_split_hash(root))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def split_of(entry: PartitionEntry, fold: int | None) -> str:
    """train/val/test for a row: the partition, or with a fold, that fold's patients as val."""
    if fold is None or entry.partition == "test":
        return entry.partition
    return "val" if entry.fold == str(fold) else "train"


def select_rows(rows: Iterable[Row], views: Sequence[str], modalities: Sequence[str]) -> list[Row]:
    """Rows of the given views and modalities ("*" keeps all), like torchxrayvision's `views=`."""
    keep_views = None if "*" in views else {normalize_view(v) or v for v in views}
    keep_modalities = (
        None if "*" in modalities else {normalize_modality(m) or m for m in modalities}
    )
    return [
        r
        for r in rows
        if (keep_views is None or normalize_view(r.get("view")) in keep_views)
        and (keep_modalities is None or normalize_modality(r.get("modality")) in keep_modalities)
    ]


def finding_of(row: Row) -> str:
    """The row's hierarchical finding ("" when blank or `todo`): the taxonomy's name for it, or
    for a finding the taxonomy does not know (`relabel --allow-new`) the value as stored."""
    finding = canonical_finding(row.get("finding"))
    if finding is None:
        finding = "/".join(" ".join(part.split()) for part in str(row.get("finding")).split("/"))
    return "" if finding.casefold() in ("todo", "unknown") else finding


def label_vocabulary(rows: Iterable[Row]) -> list[str]:
    """Sorted labels (each `/` token of a finding) over the rows with a known finding."""
    return sorted({token for r in rows for token in finding_of(r).split("/") if token})


def _label_paths(label: str, extra: Iterable[str] = ()) -> list[str]:
    paths = []
    for finding in {*FINDINGS, *extra}:
        tokens = finding.split("/")
        if label in tokens:
            paths.append("/".join(tokens[: tokens.index(label) + 1]))
    return paths


def label_matrix(rows: Sequence[Row], labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Targets and a known-mask, both [rows, labels]. A label is unknown for an unreviewed row
    and for a row whose finding is its ancestor ("Pneumonia/Viral" says nothing on COVID-19)."""
    targets = np.zeros((len(rows), len(labels)), dtype=np.float32)
    known = np.zeros((len(rows), len(labels)), dtype=bool)
    findings = [finding_of(row) for row in rows]
    paths = {label: _label_paths(label, findings) for label in labels}
    for i, finding in enumerate(findings):
        if not finding:
            continue
        tokens = finding.split("/")
        for j, label in enumerate(labels):
            if label in tokens:
                targets[i, j], known[i, j] = 1.0, True
            else:
                known[i, j] = not any(p.startswith(finding + "/") for p in paths[label])
    return targets, known


# -- the image cache --------------------------------------------------------------------------


def decode_image(path: Path, size: int) -> np.ndarray:
    """An image file as a size x size uint8 greyscale array, centre-cropped to a square."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        if image.format == "JPEG":
            image.draft("L", (size, size))
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            array = np.asarray(image, dtype=np.float32)
            low, high = float(array.min()), float(array.max())
            array = (array - low) / max(high - low, 1e-6) * 255.0
            image = Image.fromarray(array.astype(np.uint8))
        elif image.mode == "P":
            image = image.convert("RGBA").convert("L")
        elif image.mode != "L":
            image = image.convert("L")
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        image = image.resize((size, size), Image.BILINEAR, reducing_gap=2.0)
        return np.asarray(image, dtype=np.uint8)


@dataclass
class CacheResult:
    """Where each requested image sits in the cache, and what building it cost."""

    pixels: np.ndarray  # memmap [slots, size, size] uint8
    slots: list[int | None]  # per requested image; None when it could not be decoded
    decoded: int = 0
    reused: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_cached(files: Sequence[tuple[Path, str]], cache_dir: Path, size: int) -> CacheResult:
    """Decode the (path, sha256) images not yet cached at this size, append them, and return the
    memmap. Pixels are appended before their index line, so a crash never indexes missing bytes."""
    folder = cache_dir / f"{size}px"
    pixels_path, index_path = folder / "pixels.u8", folder / "index.txt"
    frame = size * size
    failures: list[tuple[str, str]] = []
    decoded = 0
    with _locked(folder):
        hashes = _read_index(index_path, pixels_path, frame)
        slot_of = {h: i for i, h in enumerate(hashes)}
        wanted = {sha: path for path, sha in files if sha not in slot_of}
        if wanted:
            with open(pixels_path, "ab") as out:
                out.truncate(len(hashes) * frame)
                out.seek(len(hashes) * frame)
                new_hashes = []
                for sha, path in wanted.items():
                    try:
                        out.write(decode_image(path, size).tobytes())
                    except Exception as exc:  # any decoder failure: skip the image, report it
                        failures.append((str(path), f"cannot decode: {exc}"))
                        continue
                    decoded += 1
                    slot_of[sha] = len(hashes) + len(new_hashes)
                    new_hashes.append(sha)
                out.flush()
                os.fsync(out.fileno())
            with open(index_path, "a", encoding="ascii") as index:
                index.write("".join(h + "\n" for h in new_hashes))
                index.flush()
                os.fsync(index.fileno())
            hashes += new_hashes
    if hashes:
        pixels = np.memmap(pixels_path, dtype=np.uint8, mode="r", shape=(len(hashes), size, size))
    else:
        pixels = np.zeros((0, size, size), dtype=np.uint8)
    slots = [slot_of.get(sha) for _, sha in files]
    reused = sum(1 for _, sha in files if sha in slot_of and sha not in wanted)
    return CacheResult(pixels, slots, decoded, reused, failures)


_INDEX_LINE = re.compile(rb"[0-9a-f]{64}\n")


def _read_index(index_path: Path, pixels_path: Path, frame: int) -> list[str]:
    """The cache's hashes, slot by slot: the whole lines of 64 hex digits up to the first torn
    or foreign one, and no more than the pixels file holds frames for. What follows (a line torn
    by a crash) is cut off the index, so new hashes never join it."""
    if not index_path.exists():
        return []
    data = index_path.read_bytes()
    good = 0
    while _INDEX_LINE.fullmatch(data, good, good + 65):
        good += 65
    held = pixels_path.stat().st_size // frame if pixels_path.exists() else 0
    good = min(good, held * 65)
    if good != len(data):
        atomic_write_bytes(index_path, data[:good])
    return data[:good].decode("ascii").split()


# -- the dataset ------------------------------------------------------------------------------


class CxrDataset(torch.utils.data.Dataset):
    """Cached images of some rows with their labels; items are uint8 [1, S, S] tensors."""

    def __init__(
        self, rows: list[Row], labels: list[str], pixels: np.ndarray, slots: np.ndarray
    ) -> None:
        self.rows, self.labels, self.pixels, self.slots = rows, labels, pixels, slots
        targets, known = label_matrix(rows, labels)
        self.targets, self.known = torch.from_numpy(targets), torch.from_numpy(known)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y, m = self.batch([i])
        return x[0], y[0], m[0]

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One batch in a single memmap read: images [B, 1, S, S] uint8, targets, known-mask."""
        idx = np.asarray(indices, dtype=np.int64)
        images = torch.from_numpy(self.pixels[self.slots[idx]]).unsqueeze(1)
        return images, self.targets[idx], self.known[idx]

    def class_counts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Known positives and negatives per label."""
        positives = (self.targets * self.known).sum(0)
        return positives, self.known.sum(0) - positives


@dataclass
class Prepared:
    dataset: CxrDataset
    decoded: int
    reused: int
    failures: list[tuple[str, str]]


def prepare_dataset(
    root: Path, rows: list[Row], labels: list[str], size: int, cache_dir: Path | None = None,
    strict: bool = False, release: str | None = None,
) -> Prepared:
    """The dataset of these rows, decoding into the cache only images it does not hold yet.
    A file `cxrbank dedup --apply` moved aside is read from .cxrbank/removed/ (same sha256).
    Rows whose file is missing or undecodable are left out and reported; with `strict` (a
    release's rows, which must all be used) a missing file is a DataError instead."""
    collection = Collection(root)
    cache_dir = cache_dir or root / CACHE_DIR
    files, kept, failures, missing = [], [], [], []
    for row in rows:
        path = collection.image_path(row)
        if not path.is_file():
            path = find_removed(collection, row) or path
        if not path.is_file():
            failures.append((str(path), "missing image file"))
            missing.append(str(path.relative_to(root)) if path.is_relative_to(root) else str(path))
            continue
        files.append((path, row.get("sha256") or file_sha256(path)))
        kept.append(row)
    if strict and missing:
        name = f"release {release}" if release else "these rows"
        tag = f"data-{release}" if release else "the release's tag"
        raise DataError(f"{name}: {len(missing)} image file(s) are missing (first: {missing[0]})"
                        " and not in .cxrbank/removed/ with their sha256: restore them (e.g. "
                        f"`git checkout {tag} -- images`) to use exactly that release")
    cached = ensure_cached(files, cache_dir, size)
    failures += cached.failures
    good = [i for i, slot in enumerate(cached.slots) if slot is not None]
    slots = np.asarray([cached.slots[i] for i in good], dtype=np.int64)
    dataset = CxrDataset([kept[i] for i in good], labels, cached.pixels, slots)
    return Prepared(dataset, cached.decoded, cached.reused, failures)


def find_removed(collection: Collection, row: Row) -> Path | None:
    """The copy of a row's file that `cxrbank dedup --apply` moved to .cxrbank/removed/<stamp>/,
    when one there has the row's sha256 (newest first)."""
    sha, name = row.get("sha256") or "", row.get("filename") or ""
    folder = collection.state_dir / "removed"
    if not sha or not name or not folder.is_dir():
        return None
    for candidate in sorted(folder.glob(f"*/{glob.escape(name)}"), reverse=True):
        if candidate.is_file() and file_sha256(candidate) == sha:
            return candidate
    return None


def iterate_batches(dataset: CxrDataset, order: Sequence[int], batch_size: int) -> Iterator[
    tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]
]:
    """Batches in the given order: (images uint8, targets, known-mask, dataset indices)."""
    order = list(order)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        yield (*dataset.batch(chunk), chunk)


# -- on the device: normalisation and augmentation --------------------------------------------


def to_input(images: torch.Tensor, normalization: str = "unit") -> torch.Tensor:
    """uint8 pixels -> float input: [-1, 1] ("unit") or torchxrayvision's [-1024, 1024] ("xrv")."""
    return normalize(images.float().div_(255.0), normalization)


def normalize(x: torch.Tensor, normalization: str = "unit") -> torch.Tensor:
    """[0, 1] pixels -> the network's input range, in place (one pass, no new allocation)."""
    if normalization == "xrv":
        return x.mul_(2048.0).sub_(1024.0)
    if normalization == "unit":
        return x.mul_(2.0).sub_(1.0)
    raise ValueError(f"unknown normalization {normalization!r}")


def random_affine(
    x: torch.Tensor,
    degrees: float = 10.0,
    translate: float = 0.05,
    scale: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random rotation, shift and zoom per image, on x's device ([0, 1] pixels, black fill)."""
    n = x.shape[0]
    rand = torch.rand(n, 4, generator=generator, device="cpu").to(x.device)
    angle = (rand[:, 0] * 2 - 1) * math.radians(degrees)
    zoom = 1.0 + (rand[:, 1] * 2 - 1) * scale
    shift = (rand[:, 2:] * 2 - 1) * translate * 2
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
