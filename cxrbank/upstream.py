"""`cxrbank import`: adopt a covid-chestxray-dataset checkout (any version) into a collection."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cxrbank.collection import IMAGES, Collection, Row, file_sha256, read_csv_rows
from cxrbank.schema import (
    COLUMNS,
    TODO,
    UPSTREAM_COLUMNS,
    blank_row,
    canonical_finding,
    normalize_modality,
    normalize_sex,
    normalize_view,
)

_RID = re.compile(r"\brID:?\s*(\d+)", re.IGNORECASE)
_DOI_URL = re.compile(r"^https?://(dx\.)?doi\.org/", re.IGNORECASE)


class UpstreamError(Exception):
    """The source is not an upstream checkout that can be imported."""


@dataclass
class ImportReport:
    imported: int = 0
    already_present: int = 0
    removed_earlier: int = 0  # images `dedup --apply` removed as duplicates: never put back
    patient_ids: dict[str, str] = field(default_factory=dict)  # upstream id -> id, where changed
    problems: list[str] = field(default_factory=list)  # one line each, with the source row
    findings_mapped: dict[str, str] = field(default_factory=dict)  # old -> new, where changed


def radiopaedia_rid(row: Row) -> str | None:
    """The Radiopaedia rID a row names in its notes, or None."""
    if "radiopaedia" not in (row.get("url", "") + row.get("other_notes", "")).lower():
        return None
    match = _RID.search(row.get("other_notes", "")) or _RID.search(row.get("clinical_notes", ""))
    return match.group(1) if match else None


def _source_of(row: Row) -> tuple[str, str]:
    url = row.get("url", "").strip()
    rid = radiopaedia_rid(row)
    if "radiopaedia.org" in url.lower():
        return "radiopaedia", rid or re.sub(r"\?.*$", "", url)
    doi = row.get("doi", "").strip()
    if doi:
        return "paper", _DOI_URL.sub("", doi)
    return "upstream", url


def _number_text(value: str) -> str:
    """'65.0' -> '65' (pandas wrote ints as floats in some upstream versions)."""
    value = value.strip()
    if re.fullmatch(r"-?\d+\.0+", value):
        return value.split(".")[0]
    return value


def map_upstream_row(source: Row, number: int, report: ImportReport) -> Row:
    """One upstream row in cxrbank's schema; what cannot be mapped is said in `report`."""
    row = blank_row()
    for column in UPSTREAM_COLUMNS:
        row[column] = (source.get(column) or "").strip() if column != "finding" else source.get(column, "")
    for column in COLUMNS:
        if column not in UPSTREAM_COLUMNS and source.get(column):
            row[column] = source[column]
    for column in ("offset", "age"):
        row[column] = _number_text(row[column])

    old = source.get("finding", "") or ""
    new = canonical_finding(old)
    if new is None or new == "":
        report.problems.append(f"row {number}: finding {old!r} is not in the taxonomy; imported as 'todo'")
        row["other_notes"] = "; ".join(filter(None, [row["other_notes"], f"upstream finding: {old}"]))
        new = TODO
    elif new != old:
        report.findings_mapped[old] = new
    if "," in old:  # "COVID-19, ARDS": the hierarchy keeps one path, the notes keep the rest
        row["other_notes"] = "; ".join(filter(None, [row["other_notes"], f"upstream finding: {old}"]))
    row["finding"] = new

    view = source.get("view", "").strip()
    row["view"] = normalize_view(view)
    if view and not row["view"] and view != "?":
        report.problems.append(f"row {number}: view {view!r} is not in the vocabulary; left blank")
    modality = source.get("modality", "").strip()
    row["modality"] = normalize_modality(modality)
    if not row["modality"]:
        report.problems.append(f"row {number}: modality {modality!r} is not X-ray or CT")
    row["sex"] = normalize_sex(source.get("sex"))
    kind, source_id = _source_of(row)
    row["source"] = row["source"] or kind
    row["source_id"] = row["source_id"] or source_id
    return row


def _copy_or_link(src: Path, dst: Path, link: bool) -> None:
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def import_upstream(
    src: Path,
    collection: Collection,
    *,
    link: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import every row of an upstream checkout at `src` into `collection`.

    Image files are copied (or hard-linked) before the rows are written; rows already in the
    collection (same filename) are left as they are. Rows whose image file is missing are
    reported and not imported, since a row never points at a missing file.
    """
    metadata = src / "metadata.csv"
    if not metadata.is_file():
        raise UpstreamError(f"{src}: no metadata.csv (not a covid-chestxray-dataset checkout)")
    header, source_rows = read_csv_rows(metadata)
    missing = [c for c in ("patientid", "finding", "filename") if c not in header]
    if missing:
        raise UpstreamError(f"{metadata}: not upstream's layout (missing {', '.join(missing)})")
    report = ImportReport()
    first_row: dict[str, int] = {}
    dropped = [h for h in header if h == "" or h.startswith("Unnamed")]
    if dropped:
        report.problems.append(f"header: dropped {len(dropped)} empty column(s) (trailing comma)")

    new_rows: list[Row] = []
    with collection.lock():
        existing = collection.read_rows()
        present = {row["filename"] for row in existing}
        removed = collection.removed_hashes()
        fresh = not existing and not _bound_keys(collection)
        ids: dict[str, str] = {}  # upstream id -> this collection's id
        collection.images_dir.mkdir(parents=True, exist_ok=True)
        copied: list[Path] = []
        try:
            for number, source in enumerate(source_rows, 1):
                if progress:
                    progress(number, len(source_rows))
                row = _import_row(src, source, number, report, present, first_row)
                if row is None:
                    continue
                if row["sha256"] in removed:
                    report.removed_earlier += 1
                    continue
                target = collection.images_dir / row["filename"]
                leftover = target.exists() or target.is_symlink()
                if leftover and (target.is_symlink() or not target.is_file()
                                 or file_sha256(target) != row["sha256"]):
                    # a different file (or a link) no row names: never overwritten or deleted
                    report.problems.append(f"row {number}: images/{row['filename']} is already "
                                           "there without a row; not imported")
                    continue
                if not leftover:  # else: the same bytes left by an interrupted import, adopted
                    _copy_or_link(src / (source.get("folder") or IMAGES) / row["filename"],
                                  target, link)
                    copied.append(target)
                row["patientid"] = _patient_id(collection, row["patientid"], fresh, ids)
                new_rows.append(row)
                present.add(row["filename"])
            if new_rows:
                # ids bound before the rows are written: an import stopped in between and run
                # again still gives each upstream patient the id its first rows have
                for upstream_id, patientid in ids.items():
                    _bind_first(collection, f"upstream:{upstream_id}", patientid)
                collection.write_rows(existing + new_rows)
        except BaseException:
            # Files never without their rows, rows never without their files: a failure after
            # metadata.csv was replaced (its folder's fsync) keeps the files the rows now name.
            with contextlib.suppress(Exception):
                named = {row["filename"] for row in collection.read_rows()}
                copied = [path for path in copied if path.name not in named]
            for path in copied:
                path.unlink(missing_ok=True)
            raise
    for row in new_rows:
        rid = radiopaedia_rid(row)
        if rid and row["patientid"]:
            _bind_first(collection, f"radiopaedia:{rid}", row["patientid"])
    report.imported = len(new_rows)
    report.patient_ids = {old: new for old, new in ids.items() if old != new}
    return report


def _import_row(src: Path, source: Row, number: int, report: ImportReport, present: set[str],
                first_row: dict[str, int]) -> Row | None:
    """One source row mapped, with its image's sha256 and size, or None (said in `report`).

    What is reported depends on the checkout only, so a second run reports the same rows."""
    from PIL import Image

    row = map_upstream_row(source, number, report)
    filename = row["filename"]
    if not filename or "/" in filename or "\\" in filename or filename.startswith("."):
        report.problems.append(f"row {number}: filename {filename!r} is not a plain file name; not imported")
        return None
    if filename in first_row:
        report.problems.append(f"row {number}: filename {filename} is also used by row"
                               f" {first_row[filename]}; not imported")
        return None
    first_row[filename] = number
    if filename in present:
        report.already_present += 1
        return None
    folder = source.get("folder") or IMAGES
    image = src / folder / filename
    where = f"{folder}/{filename}"
    if not image.resolve().is_relative_to(src.resolve()):
        report.problems.append(f"row {number}: image {where} lies outside the checkout; not imported")
        return None
    if not image.is_file():
        report.problems.append(f"row {number}: image {where} is missing; not imported")
        return None
    data = image.read_bytes()
    try:
        with Image.open(image) as opened:
            width, height = opened.size
    except Exception as exc:
        report.problems.append(f"row {number}: {filename} is not a readable image ({exc}); not imported")
        return None
    row.update(folder=IMAGES, sha256=hashlib.sha256(data).hexdigest(),
               width=str(width), height=str(height))
    return row


def _bound_keys(collection: Collection) -> int:
    with contextlib.closing(collection.state()) as db:
        return db.execute("SELECT COUNT(*) FROM patients").fetchone()[0]


def _patient_id(collection: Collection, upstream_id: str, fresh: bool, ids: dict[str, str]) -> str:
    """This collection's id for an upstream patient id.

    Into an empty collection upstream's ids are kept as they are. Into one that has rows (or
    patient keys) already, an upstream id is a stable key ("upstream:ID") with its own id, so
    upstream's patient 4 never joins another source's patient 4, a re-import gives the same id,
    and an id merged by `dedup --apply` (which rebinds the key) stays merged.
    """
    if not upstream_id:
        return ""
    if upstream_id not in ids:
        ids[upstream_id] = upstream_id if fresh else collection.patient_id(f"upstream:{upstream_id}")
    return ids[upstream_id]


def _bind_first(collection: Collection, key: str, patientid: str) -> None:
    """Bind a key to a patient id unless it is bound already (aliases stay for dedup to report)."""
    with contextlib.closing(collection.state()) as db:
        db.execute(
            "INSERT OR IGNORE INTO patients (key, patientid, created) VALUES (?, ?, datetime('now'))",
            (key, patientid),
        )
