"""`cxrbank validate`: the checks a collection must pass, each problem one line with row and column."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cxrbank.collection import (
    IMAGES,
    METADATA,
    Collection,
    Row,
    file_sha256,
    read_csv_values,
)
from cxrbank.schema import (
    COLUMNS,
    CT_VIEWS,
    MODALITIES,
    NUMERIC_COLUMNS,
    SEXES,
    SOURCES,
    TODO,
    UPSTREAM_COLUMNS,
    VIEWS,
    XRAY_VIEWS,
    YES_NO_COLUMNS,
    canonical_finding,
)

ERROR = "error"
WARNING = "warning"
MIN_ADULT_AGE = 18  # upstream excludes pediatric patients
MAX_AGE_JUMP_PER_YEAR = 1.5  # years of age a patient may gain per year of offset, with slack


@dataclass(frozen=True)
class Problem:
    """One finding of validation. `row` is the 1-based data row (line number - 1), 0 for file-level."""

    level: str
    row: int
    column: str
    message: str

    def line(self) -> str:
        where = f"row {self.row}" if self.row else METADATA
        column = f", {self.column}" if self.column else ""
        return f"{self.level}: {where}{column}: {self.message}"


@dataclass(frozen=True)
class Policy:
    """What the collection accepts: pediatric rows are errors unless allowed."""

    allow_pediatric: bool = False


Check = Callable[[Collection, list[Row], Policy], Iterable[Problem]]

# Ranges outside which a value is impossible (error) or implausible (warning: a unit mix-up,
# such as a temperature in Fahrenheit).
PLAUSIBLE: dict[str, tuple[float, float, str, str]] = {
    "pO2_saturation": (0, 100, WARNING, "a saturation in %; upstream also has PaO2 in mmHg"),
    "temperature": (30, 45, WARNING, "a body temperature in °C"),
    "leukocyte_count": (0, 1000, WARNING, "10^9/L"),
    "neutrophil_count": (0, 1000, WARNING, "10^9/L"),
    "lymphocyte_count": (0, 1000, WARNING, "10^9/L"),
    "width": (1, 100_000, ERROR, "pixels"),
    "height": (1, 100_000, ERROR, "pixels"),
}


def check_header(collection: Collection, rows: list[Row], policy: Policy) -> Iterator[Problem]:
    header, records = read_csv_values(collection.metadata_path)
    if not header:
        yield Problem(ERROR, 0, "", "empty file: no header")
        return
    if tuple(header[: len(UPSTREAM_COLUMNS)]) != UPSTREAM_COLUMNS:
        missing = [c for c in UPSTREAM_COLUMNS if c not in header]
        detail = f"missing {', '.join(missing)}" if missing else "columns out of upstream order"
        yield Problem(ERROR, 0, "", f"header is not upstream's 29 columns first: {detail}")
    for column in COLUMNS:
        if column not in header and column not in UPSTREAM_COLUMNS:
            yield Problem(WARNING, 0, column, "provenance column missing")
    for column in header:
        if column == "" or column.startswith("Unnamed"):
            yield Problem(ERROR, 0, column, "empty column name (a trailing comma?)")
    for number, values in enumerate(records, 1):
        if len(values) > len(header):
            yield Problem(ERROR, number, "",
                          f"{len(values)} values but the header has {len(header)} columns;"
                          f" the extra ones ({', '.join(map(repr, values[len(header):][:3]))})"
                          " would be lost")


def check_values(collection: Collection, rows: list[Row], policy: Policy) -> Iterator[Problem]:
    for number, row in enumerate(rows, 1):
        finding = row["finding"]
        if not finding.strip():
            yield Problem(ERROR, number, "finding", "blank (use 'todo' for unreviewed rows)")
        elif canonical_finding(finding) is None:
            yield Problem(ERROR, number, "finding", f"not in the taxonomy: {finding!r}")
        elif canonical_finding(finding) != finding:
            yield Problem(ERROR, number, "finding",
                          f"{finding!r} should be written {canonical_finding(finding)!r}")
        modality = row["modality"]
        if modality not in MODALITIES:
            yield Problem(ERROR, number, "modality", f"{modality!r} is not one of {', '.join(MODALITIES)}")
        view = row["view"]
        if view and view not in VIEWS:
            yield Problem(ERROR, number, "view", f"{view!r} is not one of {', '.join(VIEWS)}")
        elif view and modality == "X-ray" and view not in XRAY_VIEWS:
            yield Problem(ERROR, number, "view", f"{view!r} is a CT view on an X-ray row")
        elif view and modality == "CT" and view not in CT_VIEWS:
            yield Problem(ERROR, number, "view", f"{view!r} is an X-ray view on a CT row")
        if row["sex"] and row["sex"] not in SEXES:
            yield Problem(ERROR, number, "sex", f"{row['sex']!r} is not M, F or blank")
        for column in YES_NO_COLUMNS:
            if row[column] and row[column] not in ("Y", "N"):
                yield Problem(WARNING, number, column, f"{row[column]!r} is not Y, N or blank")
        for column in NUMERIC_COLUMNS:
            value = row[column].strip()
            if value and _number(value) is None:
                yield Problem(ERROR, number, column, f"{value!r} is not a number")
        for column, (low, high, level, unit) in PLAUSIBLE.items():
            value = _number(row[column].strip())
            if value is not None and not low <= value <= high:
                yield Problem(level, number, column, f"{row[column]} is outside {low:g}-{high:g}"
                              f" ({unit})")
        age = _number(row["age"])
        if age is not None and not 0 <= age <= 120:
            yield Problem(ERROR, number, "age", f"{row['age']} is not a plausible age")
        elif age is not None and age < MIN_ADULT_AGE and not policy.allow_pediatric:
            yield Problem(WARNING, number, "age", f"pediatric row (age {row['age']}); upstream excludes age < 18")
        if row["source"] and row["source"] not in SOURCES:
            yield Problem(WARNING, number, "source", f"{row['source']!r} is not one of {', '.join(SOURCES)}")
        if not row["license"].strip():
            yield Problem(WARNING, number, "license", "no licence stated")
        if not row["patientid"].strip():
            yield Problem(ERROR, number, "patientid", "blank")


def check_files(collection: Collection, rows: list[Row], policy: Policy) -> Iterator[Problem]:
    with FileChecks(collection) as checks:
        yield from _check_files(collection, rows, checks)


def _check_files(collection: Collection, rows: list[Row], checks: FileChecks) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    referenced: set[Path] = set()
    for number, row in enumerate(rows, 1):
        filename = row["filename"]
        if not filename:
            yield Problem(ERROR, number, "filename", "blank")
            continue
        if "/" in filename or "\\" in filename or filename.startswith("."):
            yield Problem(ERROR, number, "filename", f"{filename!r} is not a plain file name")
            continue
        if filename in seen:
            yield Problem(ERROR, number, "filename", f"{filename} also used by row {seen[filename]}")
        seen.setdefault(filename, number)
        path = collection.image_path(row)
        where = f"{row['folder'] or IMAGES}/{filename}"
        if not inside(collection, path):
            yield Problem(ERROR, number, "folder", f"{where} resolves outside the collection")
            continue
        referenced.add(path.resolve())
        if not path.is_file():
            yield Problem(ERROR, number, "filename", f"file missing: {where}")
        else:
            yield from check_image_file(path, row, number, where, checks)
        if row["volume"]:
            volume = collection.root / row["volume"]
            if not inside(collection, volume):
                yield Problem(ERROR, number, "volume", f"{row['volume']} resolves outside the collection")
                continue
            referenced.add(volume.resolve())
            if not volume.is_file():
                yield Problem(ERROR, number, "volume", f"file missing: {row['volume']}")
    for folder in (collection.images_dir, collection.volumes_dir):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.name.startswith(".") and path.resolve() not in referenced:
                yield Problem(ERROR, 0, "filename",
                              f"{folder.name}/{path.name} is not referenced by any row")


def inside(collection: Collection, path: Path) -> bool:
    """Whether a path, symlinks followed, lies inside the collection folder."""
    return path.resolve().is_relative_to(collection.root.resolve())


class FileChecks:
    """Each image file's sha256 and header check, kept in state.sqlite by path, size and mtime,
    so a validate of an unchanged 50,000-image collection reads no image again. Without a
    writable state database it simply computes everything."""

    def __init__(self, collection: Collection) -> None:
        self.collection = collection
        self.db: sqlite3.Connection | None = None
        self.pending: list[tuple] = []  # written in short transactions: writers are not blocked

    def __enter__(self) -> FileChecks:
        if not self.collection.state_path.is_file():
            return self  # no state database (a bare checkout): compute, create nothing
        try:
            self.db = self.collection.state()
            self.db.execute("CREATE TABLE IF NOT EXISTS validate_file_checks (path TEXT PRIMARY KEY,"
                            " size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, inode INTEGER,"
                            " sha256 TEXT, unreadable TEXT)")
        except (sqlite3.Error, OSError):
            self.close()
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
        self.close()

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def flush(self) -> None:
        if self.db is not None and self.pending:
            try:
                self.db.execute("BEGIN")
                self.db.executemany("INSERT OR REPLACE INTO validate_file_checks VALUES "
                                    "(?,?,?,?,?,?,?)", self.pending)
                self.db.execute("COMMIT")
            except sqlite3.Error:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
        self.pending = []

    def of(self, path: Path) -> tuple[str, str]:
        """(sha256, why it is unreadable or "") of an image file; OSError when unreadable."""
        stat = path.stat()
        key = str(path.relative_to(self.collection.root))
        stamp = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
        if self.db is not None:
            with contextlib.suppress(sqlite3.Error):
                found = self.db.execute(
                    "SELECT sha256, unreadable FROM validate_file_checks WHERE path=? AND size=? AND "
                    "mtime_ns=? AND ctime_ns=? AND inode=?", (key, *stamp)).fetchone()
                if found:
                    return found[0], found[1]
        sha, why = file_sha256(path), _unreadable(path)
        self.pending.append((key, *stamp, sha, why))
        if len(self.pending) >= 500:
            self.flush()
        return sha, why


def _unreadable(path: Path) -> str:
    """Why PIL cannot read the image's header, or ""."""
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    try:
        with Image.open(path):
            return ""
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return str(exc)


def check_image_file(path: Path, row: Row, number: int, where: str,
                     checks: FileChecks) -> Iterator[Problem]:
    """An image file's bytes: not empty, the row's sha256, a header PIL can read (not decoded)."""
    try:
        if path.stat().st_size == 0:
            yield Problem(ERROR, number, "filename", f"{where} is empty (0 bytes)")
            return
        sha, unreadable = checks.of(path)
    except OSError as exc:
        yield Problem(ERROR, number, "filename", f"{where} cannot be read ({exc.strerror or exc})")
        return
    if row["sha256"] and sha != row["sha256"].strip().lower():
        yield Problem(ERROR, number, "sha256", f"{where} does not match the row's sha256 (file changed)")
    if unreadable:
        yield Problem(ERROR, number, "filename", f"{where} is not a readable image ({unreadable})")


def check_patients(collection: Collection, rows: list[Row], policy: Policy) -> Iterator[Problem]:
    by_patient: dict[str, list[int]] = defaultdict(list)
    for number, row in enumerate(rows, 1):
        if row["patientid"]:
            by_patient[row["patientid"]].append(number)
    for patient, numbers in by_patient.items():
        sexes = Counter(rows[n - 1]["sex"] for n in numbers if rows[n - 1]["sex"])
        if len(sexes) > 1:
            detail = ", ".join(f"{s} in {c} rows" for s, c in sorted(sexes.items()))
            yield Problem(ERROR, numbers[0], "sex",
                          f"patient {patient} has contradictory sex ({detail}): two people under one id?")
        ages = [(_number(rows[n - 1]["offset"]), _number(rows[n - 1]["age"]), n) for n in numbers]
        aged = [(o if o is not None else 0.0, a, n) for o, a, n in ages if a is not None]
        if aged:
            low = min(aged, key=lambda t: t[1])
            high = max(aged, key=lambda t: t[1])
            span_years = abs(high[0] - low[0]) / 365.25
            if high[1] - low[1] > 1 + MAX_AGE_JUMP_PER_YEAR * span_years:
                yield Problem(ERROR, high[2], "age",
                              f"patient {patient} is {low[1]:g} in row {low[2]} and {high[1]:g} here"
                              f" within {span_years * 365.25:g} days: two people under one id?")


def check_source_identity(collection: Collection, rows: list[Row], policy: Policy) -> Iterator[Problem]:
    """A Radiopaedia case under two patient ids (an alias), or one id over two cases (two people)."""
    from cxrbank.upstream import radiopaedia_rid

    patients_of_case: dict[str, dict[str, int]] = defaultdict(dict)
    cases_of_patient: dict[str, dict[str, int]] = defaultdict(dict)
    for number, row in enumerate(rows, 1):
        rid = radiopaedia_rid(row)
        if rid and row["patientid"]:
            patients_of_case[rid].setdefault(row["patientid"], number)
            cases_of_patient[row["patientid"]].setdefault(rid, number)
    for rid, patients in sorted(patients_of_case.items()):
        if len(patients) > 1:
            where = ", ".join(f"{p} (row {n})" for p, n in patients.items())
            yield Problem(ERROR, min(patients.values()), "patientid",
                          f"Radiopaedia rID {rid} is entered under patient ids {where}: one person, aliased")
    for patient, cases in sorted(cases_of_patient.items()):
        if len(cases) > 1:
            where = ", ".join(f"rID {r} (row {n})" for r, n in cases.items())
            yield Problem(ERROR, min(cases.values()), "patientid",
                          f"patient id {patient} is used for different cases {where}: two people under one id")


def check_todo(collection: Collection, rows: list[Row], policy: Policy) -> Iterator[Problem]:
    todo = sum(1 for row in rows if row["finding"].strip() == TODO)
    if todo:
        yield Problem(WARNING, 0, "finding", f"{todo} rows not yet reviewed (finding 'todo')")


# The checks `cxrbank validate` runs, in order. Other modules add theirs here.
CHECKS: list[Check] = [
    check_header, check_values, check_files, check_patients, check_source_identity, check_todo,
]
from curation.consistency import CHECKS as CONSISTENCY_CHECKS  # noqa: E402 - needs Problem above

CHECKS += CONSISTENCY_CHECKS


def validate_collection(collection: Collection, policy: Policy | None = None) -> list[Problem]:
    """Every problem in a collection, errors and warnings, in check order."""
    policy = policy or Policy()
    rows = collection.read_rows()
    problems: list[Problem] = []
    for check in CHECKS:
        problems.extend(check(collection, rows, policy))
    return problems


_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _number(value: str) -> float | None:
    value = value.strip()
    return float(value) if _NUMBER.match(value) else None
