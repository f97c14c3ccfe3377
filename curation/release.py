"""Releases: freeze a collection as releases/VERSION (manifest, row snapshot, changelog) and verify one."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curation.stats import label_table
from cxrbank import __version__
from cxrbank.collection import Collection, Row, atomic_write_bytes, file_sha256, read_csv_rows

RELEASES = "releases"
SPLIT_FILES = ("partition.tsv", "counts.tsv", "labels.tsv", "balance.json")
# Files a release keeps its own copy of (they change in the working collection afterwards).
FROZEN = frozenset({"metadata.csv", *(f"splits/{name}" for name in SPLIT_FILES)})
_VERSION = re.compile(r"^v?\d+(\.\d+){0,3}([-+][A-Za-z0-9.]{1,20})?$")
_NO_REDISTRIBUTION = re.compile(r"\bND\b|NoDerivatives|no derivatives", re.IGNORECASE)
_NON_COMMERCIAL = re.compile(r"\bNC\b|NonCommercial|non-commercial", re.IGNORECASE)


class ReleaseError(Exception):
    """A release cannot be made or read as asked."""


@dataclass
class Verification:
    version: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)


def check_version(version: str) -> str:
    if not _VERSION.match(version):
        raise ReleaseError(f"{version!r} is not a version (use e.g. v0.1 or 1.2.0)")
    return version


def release_dir(collection: Collection, version: str) -> Path:
    return collection.root / RELEASES / check_version(version)


def list_releases(collection: Collection) -> list[dict[str, Any]]:
    """Every release's manifest, oldest first (folders that are not release names, such as the
    hidden staging folder of an interrupted release, are not releases)."""
    manifests = [read_manifest(collection, path)
                 for path in (collection.root / RELEASES).glob("*/manifest.json")
                 if _VERSION.match(path.parent.name)]
    return sorted(manifests, key=lambda m: (m["created"], m["version"]))


def clear_interrupted(collection: Collection) -> list[str]:
    """Remove the staging folders (releases/.VERSION.partial) that interrupted releases left;
    call with the collection locked. Returns their names."""
    folder = collection.root / RELEASES
    stale = sorted(folder.glob(".*.partial")) if folder.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return [path.name for path in stale]


def read_manifest(collection: Collection, path: Path) -> dict[str, Any]:
    """A release's manifest.json, or ReleaseError naming the file when it is damaged."""
    name = path.relative_to(collection.root) if path.is_relative_to(collection.root) else path
    try:
        manifest = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReleaseError(f"{name}: not valid JSON ({exc}); restore it from its data"
                           " release tag") from None
    except OSError as exc:
        raise ReleaseError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    keys = ("version", "created", "files")
    if not isinstance(manifest, dict) or any(k not in manifest for k in keys) \
            or not isinstance(manifest["files"], list):
        raise ReleaseError(f"{name}: not a release manifest (needs {', '.join(keys)})")
    return manifest


def check_split_current(collection: Collection, rows: list[Row],
                        partition: Path | None = None) -> None:
    """ReleaseError when a partition file (default: splits/partition.tsv) leaves rows out (rows
    added after `cxrbank split`) or puts one patient in several partitions (ids merged since)."""
    from curation.split import PARTITION_FILE, SPLITS, SplitError, read_partition  # noqa: PLC0415

    partition = partition or collection.root / SPLITS / PARTITION_FILE
    shown = _shown(collection, partition)
    if not partition.is_file():
        return
    try:
        entries = read_partition(partition)
    except (OSError, UnicodeDecodeError, SplitError) as exc:
        raise ReleaseError(f"{shown}: cannot be read ({exc})") from None
    placed = {filename: part for filename, _, part, _ in entries}
    missing = [row["filename"] for row in split_selection(collection, rows, partition.parent)
               if row["filename"] not in placed]
    if missing:
        raise ReleaseError(f"{len(missing)} of {len(rows)} rows are not in {shown}"
                           f" (first: {missing[0]}; rows added after the split):"
                           " run `cxrbank split` first")
    partitions: dict[str, set[str]] = {}
    for row in rows:
        if row["filename"] in placed and row["patientid"].strip():
            partitions.setdefault(row["patientid"].strip(), set()).add(placed[row["filename"]])
    leaking = sorted(pid for pid, where in partitions.items() if len(where) > 1)
    if leaking:
        first = leaking[0]
        raise ReleaseError(f"{len(leaking)} patient(s) span several partitions in {shown} "
                           f"(first: {first} in {', '.join(sorted(partitions[first]))}; ids "
                           "changed or merged since the split): run `cxrbank split` first")


def _shown(collection: Collection, path: Path) -> str:
    return str(path.relative_to(collection.root)) if path.is_relative_to(collection.root) \
        else str(path)


def split_selection(collection: Collection, rows: list[Row],
                    splits_dir: Path | None = None) -> list[Row]:
    """The rows the last `cxrbank split` was asked to place: its --views and --modality (from
    balance.json beside partition.tsv, default splits/), rows with a patient id."""
    from curation.split import SplitError, SplitSettings, select_rows  # noqa: PLC0415

    folder = splits_dir or collection.root / "splits"
    try:
        document = json.loads((folder / "balance.json").read_text("utf-8"))
        asked = document["settings"]
        settings = SplitSettings(views=tuple(asked.get("views") or ()),
                                 modality=asked.get("modality") or "")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SplitError):
        settings = SplitSettings()
    return select_rows(rows, settings)[0]


def release_rows(collection: Collection, version: str) -> list[Row]:
    """The rows exactly as frozen in a release."""
    path = release_dir(collection, version) / "metadata.csv"
    if not path.is_file():
        raise ReleaseError(f"release {version} does not exist in {collection.root / RELEASES}")
    return read_csv_rows(path)[1]


def licence_flags(licence: str) -> list[str]:
    flags = []
    if _NO_REDISTRIBUTION.search(licence):
        flags.append("no derivatives (ND)")
    if _NON_COMMERCIAL.search(licence):
        flags.append("non-commercial (NC)")
    if not licence.strip():
        flags.append("no licence stated")
    return flags


def _tracked_files(collection: Collection, rows: list[Row]) -> list[Path]:
    files = {collection.image_path(row) for row in rows}
    files |= {collection.root / row["volume"] for row in rows if row.get("volume")}
    files.add(collection.metadata_path)
    files |= {collection.root / "splits" / name for name in SPLIT_FILES
              if (collection.root / "splits" / name).is_file()}
    return sorted(files)


def diff_rows(old: list[Row], new: list[Row]) -> dict[str, list[Row] | list[tuple[Row, Row]]]:
    """Rows added, removed and relabelled (same file, other finding) between two row lists."""
    before = {row["filename"]: row for row in old}
    after = {row["filename"]: row for row in new}
    return {
        "added": [after[f] for f in after if f not in before],
        "removed": [before[f] for f in before if f not in after],
        "relabelled": [(before[f], after[f]) for f in after
                       if f in before and before[f]["finding"] != after[f]["finding"]],
    }


def _count_lines(rows: list[Row], column: str) -> list[str]:
    counts = Counter(row.get(column, "").strip() or "(blank)" for row in rows)
    return [f"  - {name}: {count}" for name, count in sorted(counts.items(), key=lambda kv: -kv[1])]


def changelog(version: str, previous: str | None, old: list[Row], new: list[Row],
              notes: str = "") -> str:
    """The release's CHANGELOG.md against the previous release (or from nothing)."""
    diff = diff_rows(old, new)
    against = f"since {previous}" if previous else "first release"
    lines = [f"# {version}", "", f"{len(new)} images of "
             f"{len({r['patientid'] for r in new})} patients ({against}).", ""]
    if notes.strip():
        lines += [notes.strip(), ""]
    for kind in ("added", "removed"):
        rows = diff[kind]
        lines.append(f"## Rows {kind}: {len(rows)}")
        if rows:
            lines += ["- by source:", *_count_lines(rows, "source"),
                      "- by licence:", *_count_lines(rows, "license")]
        lines.append("")
    lines.append(f"## Rows relabelled: {len(diff['relabelled'])}")
    lines += [f"- {after['filename']}: {before['finding']} -> {after['finding']}"
              for before, after in diff["relabelled"]]
    lines.append("")
    flagged = Counter()
    for row in new:
        for flag in licence_flags(row.get("license", "")):
            flagged[(row.get("license", "").strip() or "(blank)", flag)] += 1
    lines.append("## Licences that restrict redistribution or use")
    if flagged:
        lines += [f"- {licence}: {count} rows — {flag}"
                  for (licence, flag), count in sorted(flagged.items())]
    else:
        lines.append("- none")
    return "\n".join(lines) + "\n"


def make_release(collection: Collection, version: str, notes: str = "") -> dict[str, Any]:
    """Freeze the collection as releases/VERSION; return its manifest. Releases never change."""
    from curation.validate import ERROR, inside, validate_collection  # noqa: PLC0415

    target = release_dir(collection, version)
    if target.exists():
        raise ReleaseError(f"release {version} exists already ({target}); releases never change")
    errors = [p for p in validate_collection(collection) if p.level == ERROR]
    if errors:
        raise ReleaseError(f"the collection has {len(errors)} validation errors "
                           f"(first: {errors[0].line()}); run `cxrbank validate`")
    with collection.lock():
        if target.exists():
            raise ReleaseError(f"release {version} exists already ({target}); releases never change")
        clear_interrupted(collection)
        previous = list_releases(collection)
        previous_version = previous[-1]["version"] if previous else None
        old_rows = release_rows(collection, previous_version) if previous_version else []
        rows = collection.read_rows()
        check_split_current(collection, rows)
        tracked = _tracked_files(collection, rows)
        outside = [p for p in tracked if not inside(collection, p)]
        if outside:
            raise ReleaseError(f"{outside[0]} lies outside the collection; run `cxrbank validate`")
        files = [{"path": str(p.relative_to(collection.root)), "sha256": file_sha256(p),
                  "size": p.stat().st_size} for p in tracked]
        staging = target.with_name(f".{version}.partial")  # clear_interrupted removed any old one
        staging.mkdir(parents=True)
        shutil.copyfile(collection.metadata_path, staging / "metadata.csv")
        splits = collection.root / "splits"
        for name in SPLIT_FILES:
            if (splits / name).is_file():
                shutil.copyfile(splits / name, staging / name)
        partition = next((f for f in files if f["path"] == "splits/partition.tsv"), None)
        manifest = {
            "version": version,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "tool_version": __version__,
            "previous": previous_version,
            "rows": len(rows),
            "patients": len({row["patientid"] for row in rows}),
            "labels": {k: {str(a): b for a, b in v.items()} for k, v in label_table(rows).items()},
            "split_hash": partition["sha256"] if partition else None,
            "files": files,
        }
        atomic_write_bytes(staging / "manifest.json", json.dumps(manifest, indent=2).encode())
        atomic_write_bytes(staging / "CHANGELOG.md",
                           changelog(version, previous_version, old_rows, rows, notes).encode())
        staging.rename(target)
    return manifest


def verify_release(collection: Collection, version: str) -> Verification:
    """Check every file of a release's manifest against the checkout: present, same bytes."""
    path = release_dir(collection, version) / "manifest.json"
    if not path.is_file():
        raise ReleaseError(f"release {version} has no manifest ({path})")
    manifest = read_manifest(collection, path)
    result = Verification(version)
    for entry in manifest["files"]:
        result.checked += 1
        if not isinstance(entry, dict) or not {"path", "sha256", "size"} <= entry.keys():
            result.problems.append(f"manifest entry {result.checked}: not a file entry")
            continue
        target = collection.root / entry["path"]
        if entry["path"] in FROZEN:
            target = path.parent / Path(entry["path"]).name  # the frozen copy, not today's file
        if not target.is_file():
            result.problems.append(f"{entry['path']}: missing")
        elif target.stat().st_size != entry["size"] or file_sha256(target) != entry["sha256"]:
            result.problems.append(f"{entry['path']}: modified (sha256 differs from the manifest)")
    return result
