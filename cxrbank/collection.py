"""The collection on disk: metadata.csv, images/, volumes/, state; the one writer of rows."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import fcntl
import hashlib
import io
import os
import re
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click

from cxrbank.schema import COLUMNS, blank_row

METADATA = "metadata.csv"
IMAGES = "images"
VOLUMES = "volumes"
STATE_DIR = ".cxrbank"

Row = dict[str, str]

_IMAGE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", ".jp2"),
    (b"BM", ".bmp"),
)


class CollectionError(Exception):
    """A collection cannot be read or written as asked."""


class MetadataError(CollectionError, click.ClickException):
    """A metadata.csv that cannot be read (not UTF-8, not CSV). A click exception as well, so
    that every command, whether it catches CollectionError or not, ends with one `Error:` line
    and exit 1, never a traceback."""


def sniff_image_extension(data: bytes) -> str | None:
    """The file extension the bytes really are (by content, never by name), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    for magic, ext in _IMAGE_MAGIC:
        if data.startswith(magic):
            return ext
    return None


def safe_stem(name: str, limit: int = 80) -> str:
    """A file-name stem made only of [A-Za-z0-9._-] from an untrusted name; never a path."""
    base = Path(name.replace("\\", "/")).name
    base = re.sub(r"\.(png|jpe?g|gif|tiff?|jp2|bmp|webp)$", "", base, flags=re.IGNORECASE)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip(".-_")[:limit].strip(".-_")
    return stem or "image"


@dataclass
class NewImage:
    """An image to add: its bytes, a suggested name (untrusted) and its row's values."""

    data: bytes
    name: str
    row: Row = field(default_factory=dict)
    volume: bytes | None = None  # a .nii.gz CT stack that goes with this 2D row


@dataclass
class AddResult:
    added: list[Row] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(folder: Path) -> None:
    """Make the entries of a folder (new or renamed files) durable."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_bytes(path: Path, data: bytes, sync_dir: bool = True) -> None:
    """Write a file so that a crash leaves the old file or the new one, never a mix.

    With sync_dir=False the caller fsyncs the folder itself (once for many files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def rows_to_csv(rows: Iterable[Row], columns: Iterable[str] = COLUMNS) -> bytes:
    """metadata.csv bytes: a header, then one line per row, no trailing comma."""
    cols = list(columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") or "" for c in cols})
    return buffer.getvalue().encode("utf-8")


CSV_FIELD_LIMIT = 16 * 1024 * 1024  # characters in one metadata.csv value (csv's default: 131,072)


def read_csv_values(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the non-empty records of a CSV file as lists of values, as written.

    MetadataError (one line: file, line, what) when the file is not UTF-8 or not CSV."""
    data = path.read_bytes()
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = data[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = bom + exc.start
        line = data.count(b"\n", 0, offset) + 1
        raise MetadataError(f"{path}: not UTF-8 (byte 0x{data[offset]:02x} at offset {offset},"
                            f" line {line}); re-save it as UTF-8") from None
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, [])
        records = [values for values in reader if values]
    except csv.Error as exc:
        raise MetadataError(f"{path}: line {reader.line_num}: not readable as CSV ({exc})") from None
    return header, records


def read_csv_rows(path: Path) -> tuple[list[str], list[Row]]:
    """The header and rows of a CSV file, every value a string ("" when blank)."""
    header, records = read_csv_values(path)
    rows = []
    for values in records:
        values = values + [""] * (len(header) - len(values))
        rows.append(dict(zip(header, values, strict=False)))
    return header, rows


class Collection:
    """A collection directory. All writes of metadata.csv go through `write_rows`."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._state_ready = False
        self._id_cache: tuple[tuple[int, int, int] | None, int] = (None, 0)

    # -- paths
    @property
    def metadata_path(self) -> Path:
        return self.root / METADATA

    @property
    def images_dir(self) -> Path:
        return self.root / IMAGES

    @property
    def volumes_dir(self) -> Path:
        return self.root / VOLUMES

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def state_path(self) -> Path:
        return self.state_dir / "state.sqlite"

    def image_path(self, row: Row) -> Path:
        return self.root / (row.get("folder") or IMAGES) / row["filename"]

    # -- life cycle
    @classmethod
    def create(cls, root: Path | str) -> Collection:
        """Open a collection, making its folders and a header-only metadata.csv if missing."""
        collection = cls(root)
        collection.root.mkdir(parents=True, exist_ok=True)
        collection.images_dir.mkdir(exist_ok=True)
        collection.state_dir.mkdir(exist_ok=True)
        if not collection.metadata_path.exists():
            with collection.lock():
                if not collection.metadata_path.exists():
                    atomic_write_bytes(collection.metadata_path, rows_to_csv([]))
        return collection

    @classmethod
    def open(cls, root: Path | str) -> Collection:
        """Open an existing collection; CollectionError when there is no metadata.csv."""
        collection = cls(root)
        if not collection.metadata_path.is_file():
            raise CollectionError(f"{collection.root}: no {METADATA} here (not a collection)")
        collection.state_dir.mkdir(exist_ok=True)
        return collection

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The collection's write lock (an exclusive flock held across read-modify-write)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "write.lock", "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # -- rows
    def header(self) -> list[str]:
        header, _ = read_csv_rows(self.metadata_path)
        return header

    def read_rows(self) -> list[Row]:
        """Every row, each with all of COLUMNS (missing ones "") plus any extra columns."""
        _, rows = read_csv_rows(self.metadata_path)
        return [{**blank_row(), **row} for row in rows]

    def columns_for(self, rows: list[Row]) -> list[str]:
        extra: list[str] = []
        for row in rows:
            for key in row:
                if key not in COLUMNS and key not in extra and key:
                    extra.append(key)
        return list(COLUMNS) + extra

    def write_rows(self, rows: list[Row]) -> None:
        """Replace metadata.csv atomically. Callers that read first must hold `lock()`."""
        self._write_rows(rows, rows)

    def _write_rows(self, rows: list[Row], unchecked: list[Row]) -> None:
        """Write rows, first checking that the `unchecked` ones point at existing files."""
        for row in unchecked:
            filename = row.get("filename", "")
            if not filename:
                raise CollectionError("a row without a filename cannot be written")
            if not self.image_path(row).exists():
                raise CollectionError(f"row points at a missing file: {filename}")
        atomic_write_bytes(self.metadata_path, rows_to_csv(rows, self.columns_for(rows)))

    @contextlib.contextmanager
    def editing(self) -> Iterator[list[Row]]:
        """Lock, read the rows, let the caller change the list in place, write them back."""
        with self.lock():
            rows = self.read_rows()
            yield rows
            self.write_rows(rows)

    # -- images
    def _unique_filename(self, stem: str, ext: str, taken: set[str]) -> str:
        candidate = f"{stem}{ext}"
        counter = 1
        while candidate in taken or (self.images_dir / candidate).exists():
            counter += 1
            candidate = f"{stem}-{counter}{ext}"
        return candidate

    def add_images(self, items: Iterable[NewImage]) -> AddResult:
        """Add images and their rows: files first (atomically), then metadata.csv, under lock.

        An image whose bytes are already in the collection, or that `cxrbank dedup --apply`
        removed earlier, is skipped with its reason. sha256, width, height, folder, filename
        and added are filled here.
        """
        from PIL import Image

        result = AddResult()
        with self.lock():
            rows = self.read_rows()
            known = {r["sha256"]: r["filename"] for r in rows if r.get("sha256")}
            removed = self.removed_hashes()
            taken = {r["filename"] for r in rows}
            today = dt.date.today().isoformat()
            for item in items:
                digest = hashlib.sha256(item.data).hexdigest()
                if digest in known:
                    result.skipped.append((item.name, f"already in the collection as {known[digest]}"))
                    continue
                if digest in removed:
                    result.skipped.append((item.name, "removed earlier as a duplicate"))
                    continue
                ext = sniff_image_extension(item.data)
                if ext is None:
                    result.skipped.append((item.name, "not an image file"))
                    continue
                try:
                    with Image.open(io.BytesIO(item.data)) as image:
                        width, height = image.size
                except Exception as exc:
                    result.skipped.append((item.name, f"unreadable image: {exc}"))
                    continue
                filename = self._unique_filename(safe_stem(item.name), ext, taken)
                atomic_write_bytes(self.images_dir / filename, item.data, sync_dir=False)
                row = {**blank_row(), **{k: v for k, v in item.row.items() if v is not None}}
                if item.volume is not None:
                    volume_name = f"{Path(filename).stem}.nii.gz"
                    atomic_write_bytes(self.volumes_dir / volume_name, item.volume, sync_dir=False)
                    row["volume"] = f"{VOLUMES}/{volume_name}"
                row.update(
                    folder=IMAGES, filename=filename, sha256=digest, width=str(width),
                    height=str(height), added=row.get("added") or today,
                )
                rows.append({k: str(v) for k, v in row.items()})
                taken.add(filename)
                known[digest] = filename
                result.added.append(row)
            if result.added:
                for folder in (self.images_dir, self.volumes_dir):  # the files, before their rows
                    if folder.is_dir():
                        fsync_dir(folder)
                self._write_rows(rows, result.added)
        return result

    # -- state
    def state(self) -> sqlite3.Connection:
        """A connection to .cxrbank/state.sqlite (WAL, waits on a busy database)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.state_path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA busy_timeout=30000")
        # WAL + NORMAL: a power cut may lose the last commits, never corrupt the file; a lost
        # patient-id allocation is safe because new ids also count the ids in metadata.csv.
        connection.execute("PRAGMA synchronous=NORMAL")
        if not self._state_ready:  # once per Collection: WAL mode and the core tables persist
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS patients (key TEXT PRIMARY KEY, patientid TEXT"
                " NOT NULL, created TEXT NOT NULL)"
            )
            connection.execute(
                "CREATE TABLE IF NOT EXISTS removed (sha256 TEXT PRIMARY KEY, filename TEXT,"
                " reason TEXT, at TEXT NOT NULL)"
            )
            self._state_ready = True
        return connection

    def removed_hashes(self) -> set[str]:
        with contextlib.closing(self.state()) as db:
            return {r[0] for r in db.execute("SELECT sha256 FROM removed")}

    def patient_id(self, key: str) -> str:
        """The patient id for a stable source key ("radiopaedia:rID:75526", "doi:…:patient 1").

        The same key gets the same id forever; a new key gets one past the largest id in
        use in metadata.csv or in state.
        """
        if not key:
            raise CollectionError("a patient key cannot be empty")
        with contextlib.closing(self.state()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                found = db.execute("SELECT patientid FROM patients WHERE key=?", (key,)).fetchone()
                if found:
                    db.execute("COMMIT")
                    return str(found[0])
                used = [r[0] for r in db.execute("SELECT patientid FROM patients")]
                numbers = [int(v) for v in used if str(v).isdigit()]
                new_id = str(max(*numbers, self._largest_id_in_metadata(), 0) + 1)
                db.execute(
                    "INSERT INTO patients (key, patientid, created) VALUES (?, ?, ?)",
                    (key, new_id, dt.datetime.now(dt.UTC).isoformat(timespec="seconds")),
                )
                db.execute("COMMIT")
                return new_id
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _largest_id_in_metadata(self) -> int:
        """The largest numeric patient id in metadata.csv, re-read only when the file changed."""
        try:
            stamp = self.metadata_path.stat()
        except FileNotFoundError:
            return 0
        key = (stamp.st_mtime_ns, stamp.st_size, stamp.st_ino)
        if self._id_cache[0] != key:
            ids = [r["patientid"] for r in self.read_rows()]
            self._id_cache = (key, max((int(v) for v in ids if v.isdigit()), default=0))
        return self._id_cache[1]

    def bind_patient(self, key: str, patientid: str) -> None:
        """Record that a source key belongs to an existing patient id (import, alias merge)."""
        with contextlib.closing(self.state()) as db:
            db.execute(
                "INSERT INTO patients (key, patientid, created) VALUES (?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET patientid=excluded.patientid",
                (key, patientid, dt.datetime.now(dt.UTC).isoformat(timespec="seconds")),
            )
