"""Dedup fingerprints cached in state.sqlite (table dedup_hashes), keyed by file sha256."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
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
        return f"unreadable image: {exc}"


def load_fingerprints(
    collection: Collection, rows: list[Row], progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> tuple[list[hashing.Fingerprint | None], list[tuple[str, str]], int]:
    """One fingerprint per row (None when unreadable), errors, and how many were computed.

    Files are keyed by the sha256 of their bytes, so an unchanged file is never decoded
    twice; new ones are fingerprinted in worker processes when there are many.
    """
    out: list[hashing.Fingerprint | None] = [None] * len(rows)
    failures: list[tuple[str, str]] = []
    todo: dict[str, list[int]] = {}
    paths: dict[str, str] = {}
    with contextlib.closing(collection.state()) as db:
        ensure_cache(db)
        for index, row in enumerate(rows):
            path = collection.image_path(row)
            try:
                sha = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError as exc:
                failures.append((row["filename"], f"cannot read: {exc.strerror or exc}"))
                continue
            found = db.execute(
                "SELECT * FROM dedup_hashes WHERE sha256=? AND version=?", (sha, CACHE_VERSION)
            ).fetchone()
            if found:
                out[index] = from_record(found)
                if progress:
                    progress(1)
            else:
                todo.setdefault(sha, []).append(index)
                paths[sha] = str(path)
        jobs = [(paths[sha], sha) for sha in todo]
        workers = workers or min(os.cpu_count() or 1, 8)
        if workers > 1 and len(jobs) >= 64:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = pool.map(_fingerprint_file, jobs, chunksize=16)
                done = list(zip(jobs, results, strict=True))
        else:
            done = [(job, _fingerprint_file(job)) for job in jobs]
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
                    sha = hashlib.sha256(collection.image_path(row).read_bytes()).hexdigest()
            found = sha and db.execute(
                "SELECT * FROM dedup_hashes WHERE sha256=? AND version=?", (sha, CACHE_VERSION)
            ).fetchone()
            out.append(from_record(found) if found else None)
    return out
