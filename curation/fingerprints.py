"""Dedup fingerprints cached in state.sqlite (table dedup_hashes), keyed by file sha256."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np

from curation import hashing
from cxrbank.collection import Collection, Row

CACHE_VERSION = 8  # bump when fingerprints change meaning: cached ones are then recomputed


def ensure_cache(db) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS dedup_hashes (sha256 TEXT PRIMARY KEY, version INTEGER,"
        " width INTEGER, height INTEGER, aspect REAL, phash BLOB, windows BLOB, thumb BLOB)"
    )


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read through one reused buffer (no copy of the whole file)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _to_record(fp: hashing.Fingerprint) -> tuple:
    return (fp.sha256, CACHE_VERSION, fp.width, fp.height, fp.aspect, fp.phash.tobytes(),
            fp.windows.tobytes(), fp.thumb.tobytes())


def from_record(record: tuple) -> hashing.Fingerprint:
    sha, _, width, height, aspect, phash, windows, thumb = record
    side = hashing.THUMB_SIDE
    return hashing.Fingerprint(
        sha256=sha, width=width, height=height, aspect=aspect,
        phash=np.frombuffer(phash, dtype=np.uint64).copy(),
        windows=np.frombuffer(windows, dtype=np.uint64).reshape(len(hashing.WINDOWS), -1).copy(),
        thumb=np.frombuffer(thumb, dtype=np.uint8).reshape(side, side).copy(),
    )


def _fingerprint_file(job: tuple[str, str]) -> hashing.Fingerprint | str:
    path, sha = job
    try:
        return hashing.fingerprint(Path(path).read_bytes(), sha)
    except Exception as exc:  # noqa: BLE001 - any decoder failure: unreadable
        if type(exc).__name__ == "UnidentifiedImageError":  # its text names a BytesIO object
            return "unreadable image: not an image file of a known format"
        return f"unreadable image: {exc}"


def _fingerprint_files(jobs: list[tuple[str, str]]) -> list[hashing.Fingerprint | str]:
    return [_fingerprint_file(job) for job in jobs]


BATCH = 16  # files per job handed to a worker process
POOL_FROM = 64  # uncached files before worker processes are started


def load_fingerprints(
    collection: Collection, rows: list[Row], progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> tuple[list[hashing.Fingerprint | None], list[tuple[str, str]], int]:
    """One fingerprint per row (None when unreadable), errors, and how many were computed.

    Files are keyed by the sha256 of their bytes, so an unchanged file is never decoded
    twice; new ones are fingerprinted in worker processes when there are many, handed
    out in batches while the rest are still being hashed and looked up.
    """
    out: list[hashing.Fingerprint | None] = [None] * len(rows)
    failures: list[tuple[str, str]] = []
    todo: dict[str, list[int]] = {}
    pending: list[tuple[str, str]] = []  # uncached files not yet handed out
    batches: list[tuple[list[tuple[str, str]], Future]] = []  # (jobs, future) in order
    workers = workers or min(os.cpu_count() or 1, 8)
    pool: ProcessPoolExecutor | None = None
    with contextlib.closing(collection.state()) as db, contextlib.ExitStack() as stack:
        ensure_cache(db)
        for index, row in enumerate(rows):
            path = collection.image_path(row)
            try:
                sha = file_sha256(path)
            except OSError as exc:
                failures.append((row["filename"], f"cannot read: {exc.strerror or exc}"))
                continue
            if sha in todo:
                todo[sha].append(index)
                continue
            found = db.execute(
                "SELECT * FROM dedup_hashes WHERE sha256=? AND version=?", (sha, CACHE_VERSION)
            ).fetchone()
            if found:
                out[index] = from_record(found)
                if progress:
                    progress(1)
                continue
            todo[sha] = [index]
            pending.append((str(path), sha))
            if pool is None and workers > 1 and len(pending) >= POOL_FROM:
                pool = stack.enter_context(ProcessPoolExecutor(max_workers=workers))
            while pool is not None and len(pending) >= BATCH:
                jobs, pending = pending[:BATCH], pending[BATCH:]
                batches.append((jobs, pool.submit(_fingerprint_files, jobs)))
        done = []  # the main process takes the last few itself while the workers finish
        last = list(zip(pending, _fingerprint_files(pending), strict=True))
        for jobs, future in batches:
            done.extend(zip(jobs, future.result(), strict=True))
        done.extend(last)
        db.execute("BEGIN")
        for (_, sha), result in done:
            for index in todo[sha]:
                if isinstance(result, str):
                    failures.append((rows[index]["filename"], result))
                else:
                    out[index] = result
            if not isinstance(result, str):
                db.execute("INSERT OR REPLACE INTO dedup_hashes VALUES (?,?,?,?,?,?,?,?)",
                           _to_record(result))
            if progress:
                progress(len(todo[sha]))
        db.execute("COMMIT")
    return out, failures, sum(1 for _, r in done if not isinstance(r, str))


def cached_fingerprints(
    collection: Collection, rows: list[Row],
) -> list[hashing.Fingerprint | None]:
    """Fingerprints already in the cache, by each row's file sha256 (None where not cached)."""
    out: list[hashing.Fingerprint | None] = []
    with contextlib.closing(collection.state()) as db:
        ensure_cache(db)
        for row in rows:
            sha = row.get("sha256", "")
            if not sha:
                with contextlib.suppress(OSError):
                    sha = file_sha256(collection.image_path(row))
            found = sha and db.execute(
                "SELECT * FROM dedup_hashes WHERE sha256=? AND version=?", (sha, CACHE_VERSION)
            ).fetchone()
            out.append(from_record(found) if found else None)
    return out
