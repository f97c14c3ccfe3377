"""Radiopaedia crawl state (cases, URL aliases, image ids), CT volumes, and the case writer."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import io
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from cxrbank.collection import Collection

_RID_IN_NOTES = re.compile(r"\brID:?\s*(\d+)")
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS radiopaedia_cases (rid TEXT PRIMARY KEY, url TEXT NOT NULL,"
    " title TEXT, revisions INTEGER, complete INTEGER NOT NULL DEFAULT 0, checked TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS radiopaedia_urls (url TEXT PRIMARY KEY, rid TEXT NOT NULL,"
    " fingerprint TEXT, seen TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS radiopaedia_images (image_id TEXT PRIMARY KEY, rid TEXT NOT NULL,"
    " study_id TEXT NOT NULL, kind TEXT NOT NULL, added TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS radiopaedia_failures (image_id TEXT PRIMARY KEY,"
    " rid TEXT NOT NULL, failures INTEGER NOT NULL, last TEXT NOT NULL, reason TEXT)",
)


@dataclass
class KnownCase:
    rid: str
    revisions: int | None
    complete: bool
    checked: str  # ISO datetime of the last time the case page was read
    fingerprint: str | None  # of the listing card last seen at this URL


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def connect(collection: Collection) -> sqlite3.Connection:
    """state.sqlite with the radiopaedia_ tables."""
    db = collection.state()
    # WAL + NORMAL: a crash of the process loses nothing; a power cut may lose the last
    # cases, which the next crawl then fetches again (images are deduplicated by hash).
    db.execute("PRAGMA synchronous=NORMAL")
    for statement in SCHEMA:
        db.execute(statement)
    columns = {r[1] for r in db.execute("PRAGMA table_info(radiopaedia_failures)")}
    if "reason" not in columns:  # state written before failures kept their reason
        db.execute("ALTER TABLE radiopaedia_failures ADD COLUMN reason TEXT")
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (the connection is in autocommit mode otherwise)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def known_by_url(db: sqlite3.Connection, url: str) -> KnownCase | None:
    """The case an URL (or an alias of it) was last seen to be, with its card fingerprint."""
    row = db.execute(
        "SELECT c.rid, c.revisions, c.complete, c.checked, u.fingerprint FROM radiopaedia_urls u"
        " JOIN radiopaedia_cases c ON c.rid = u.rid WHERE u.url = ?",
        (url,),
    ).fetchone()
    return KnownCase(row[0], row[1], bool(row[2]), row[3], row[4]) if row else None


def known_by_rid(db: sqlite3.Connection, rid: str) -> KnownCase | None:
    row = db.execute(
        "SELECT rid, revisions, complete, checked FROM radiopaedia_cases WHERE rid = ?", (rid,)
    ).fetchone()
    return KnownCase(row[0], row[1], bool(row[2]), row[3], None) if row else None


def known_images(db: sqlite3.Connection, rid: str) -> set[str]:
    """The case's image ids already collected (X-ray or CT); earlier crawls' "skipped" ones
    (not an image, unreadable) are left out so that they are fetched again."""
    rows = db.execute(
        "SELECT image_id FROM radiopaedia_images WHERE rid = ? AND kind IN ('xray', 'ct')", (rid,)
    )
    return {r[0] for r in rows}


def failure_counts(db: sqlite3.Connection, rid: str) -> tuple[dict[str, int], dict[str, str]]:
    """Image id -> the number of crawls in which it failed for good (404/410, not an image,
    unreadable), and image id -> the last such failure's reason."""
    rows = db.execute(
        "SELECT image_id, failures, reason FROM radiopaedia_failures WHERE rid = ?", (rid,)
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}, {r[0]: r[2] for r in rows if r[2]}


def record_failures(db: sqlite3.Connection, rid: str, failed: dict[str, str]) -> None:
    """Count one more crawl in which each of these images failed, with the reason."""
    db.executemany(
        "INSERT INTO radiopaedia_failures (image_id, rid, failures, last, reason)"
        " VALUES (?, ?, 1, ?, ?) ON CONFLICT(image_id) DO UPDATE SET failures = failures + 1,"
        " last = excluded.last, reason = excluded.reason",
        [(image_id, rid, now(), reason) for image_id, reason in failed.items()],
    )


def remember_url(db: sqlite3.Connection, url: str, rid: str, fingerprint: str | None) -> None:
    """Map a case URL (canonical or alias) to its rID, with the card it showed."""
    db.execute(
        "INSERT INTO radiopaedia_urls (url, rid, fingerprint, seen) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(url) DO UPDATE SET rid=excluded.rid,"
        " fingerprint=COALESCE(excluded.fingerprint, radiopaedia_urls.fingerprint),"
        " seen=excluded.seen",
        (url, rid, fingerprint, now()),
    )


def remember_case(
    db: sqlite3.Connection, rid: str, url: str, title: str, revisions: int | None, complete: bool
) -> None:
    """Record that a case page was read; `complete` once every image of it is in the collection."""
    db.execute(
        "INSERT INTO radiopaedia_cases (rid, url, title, revisions, complete, checked)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(rid) DO UPDATE SET url=excluded.url,"
        " title=excluded.title, revisions=excluded.revisions, complete=excluded.complete,"
        " checked=excluded.checked",
        (rid, url, title, revisions, int(complete), now()),
    )


def remember_images(
    db: sqlite3.Connection, rid: str, images: Iterable[tuple[str, str, str]]
) -> None:
    """Record image ids as collected: (image_id, study_id, kind) with kind xray or ct."""
    stamp = now()
    db.executemany(
        "INSERT OR IGNORE INTO radiopaedia_images (image_id, rid, study_id, kind, added)"
        " VALUES (?, ?, ?, ?, ?)",
        [(image_id, rid, study_id, kind, stamp) for image_id, study_id, kind in images],
    )


def adopt_rows(db: sqlite3.Connection, collection: Collection) -> None:
    """Learn the Radiopaedia cases metadata.csv already holds, so that a lost state.sqlite or
    rows imported from upstream never bring a case in twice or under a second patient id.

    Crawled rows give rID/study/image; other rows give the rID of their credit line. Known
    keys are never overwritten: the first patient id seen for an rID stays its id.
    """
    stamp = "1970-01-01T00:00:00+00:00"  # never checked: fetched once at the next listing
    with transaction(db):
        for row in collection.read_rows():
            parts = row.get("source_id", "").split("/")
            if row.get("source") == "radiopaedia" and len(parts) == 3 and parts[0].isdigit():
                rid, study_id, image_id = parts
            else:
                text = f"{row.get('url', '')} {row.get('other_notes', '')}"
                match = _RID_IN_NOTES.search(text) if "radiopaedia" in text.lower() else None
                if not match:
                    continue
                rid, study_id, image_id = match.group(1), "", ""
            if row.get("patientid"):
                db.execute(
                    "INSERT OR IGNORE INTO patients (key, patientid, created) VALUES (?, ?, ?)",
                    (f"radiopaedia:{rid}", row["patientid"], now()),
                )
            if image_id:
                kind = "ct" if row.get("modality") == "CT" else "xray"
                db.execute(
                    "INSERT OR IGNORE INTO radiopaedia_images (image_id, rid, study_id, kind,"
                    " added) VALUES (?, ?, ?, ?, ?)", (image_id, rid, study_id, kind, stamp),
                )
            url = row.get("url", "")
            if "/cases/" in url:
                db.execute(
                    "INSERT OR IGNORE INTO radiopaedia_urls (url, rid, fingerprint, seen)"
                    " VALUES (?, ?, NULL, ?)", (url.split("?")[0].rstrip("/"), rid, stamp),
                )
            db.execute(
                "INSERT OR IGNORE INTO radiopaedia_cases (rid, url, title, revisions, complete,"
                " checked) VALUES (?, ?, NULL, NULL, 1, ?)", (rid, url, stamp),
            )


def is_fresh(checked: str, recheck_days: float) -> bool:
    """True when a case page read at `checked` needs no re-reading yet."""
    if recheck_days <= 0:
        return True
    try:
        when = dt.datetime.fromisoformat(checked)
    except ValueError:
        return False
    return dt.datetime.now(dt.UTC) - when < dt.timedelta(days=recheck_days)


def nifti_bytes(
    slices: list[bytes], spacing: tuple[float, float, float] | None = None
) -> bytes:
    """A gzipped NIfTI volume from 2D slice files already ordered by position (first = z 0)."""
    import nibabel as nib  # only when a CT stack is kept
    import numpy as np
    from PIL import Image

    planes = []
    for data in slices:
        with Image.open(io.BytesIO(data)) as image:
            planes.append(np.asarray(image.convert("L"), dtype=np.uint8))
    shapes = {p.shape for p in planes}
    if len(shapes) != 1:
        raise ValueError(f"CT slices differ in size: {sorted(shapes)}")
    # Image rows run top to bottom; NIfTI's first axis is x, so transpose each plane.
    volume = np.stack([p.T for p in planes], axis=2)
    sx, sy, sz = spacing or (1.0, 1.0, 1.0)
    image = nib.Nifti1Image(volume, np.diag([sx, sy, sz, 1.0]))
    image.header.set_xyzt_units("mm")
    with contextlib.suppress(AttributeError):
        image.header["descrip"] = b"cxrbank radiopaedia CT stack"
    return gzip.compress(image.to_bytes(), mtime=0)


class CollectionPipeline:
    """Writes a finished case through `Collection.add_images`, then records it in state."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> CollectionPipeline:
        return cls(crawler)

    def process_item(self, item: Any) -> Any:
        job = item.get("radiopaedia_case") if isinstance(item, dict) else None
        spider = self.crawler.spider
        if job is None:
            return item
        case, report = job.case, spider.report
        result = spider.collection.add_images(job.images)
        report["images_added"] += len(result.added)
        skipped = dict(result.skipped)
        recorded = []
        for image_id, study_id, kind in job.image_ids:
            name = f"radiopaedia-{case.rid}-{study_id}-{image_id}"
            reason = skipped.get(name, "")
            if reason and not reason.startswith(("already in", "removed earlier")):
                job.errors.append(f"rID {case.rid} image {image_id}: {reason}")
                continue  # not recorded: the next crawl fetches it again
            recorded.append((image_id, study_id, kind))
        with transaction(spider.db):
            remember_images(spider.db, case.rid, recorded)
            record_failures(spider.db, case.rid, job.gone)
            remember_case(
                spider.db, case.rid, case.url, case.title, case.revisions, complete=not job.errors
            )
        entry = {"rid": case.rid, "url": case.url, "images": len(result.added)}
        if job.errors:
            report["incomplete"].append(entry)
        elif job.status == "updated" and not result.added:
            report["unchanged"] += 1  # read again, nothing new in it
        else:
            report[job.status].append(entry)
        report["errors"].extend(job.errors)
        report["skipped"].extend(job.notes)
        return {"rid": case.rid, "status": job.status, "images": len(result.added)}
