"""Carrying out dedup decisions: rows removed, files moved aside, aliases merged, logged and undoable."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from curation.dedup import DedupReport
from cxrbank.collection import Collection, CollectionError, Row

REMOVED_DIR = "removed"
LOG_DIR = "logs"


@dataclass
class ApplyResult:
    log: Path | None  # None when there was nothing to apply
    dropped: int = 0
    repointed: int = 0
    rebound: int = 0
    conflicts: list[str] = field(default_factory=list)  # kept files whose patient ids conflict


@dataclass
class UndoResult:
    log: Path
    restored: int = 0
    repointed: int = 0
    rebound: int = 0
    missing: list[str] = field(default_factory=list)  # moved files no longer where the log says


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _append(log: Path, entry: dict) -> None:
    """Write one log line and make it durable before the step it describes is taken."""
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def logs_dir(collection: Collection) -> Path:
    return collection.state_dir / LOG_DIR


def latest_log(collection: Collection) -> Path:
    """The newest dedup log that has not been undone."""
    for log in sorted(logs_dir(collection).glob("dedup-*.jsonl"), reverse=True):
        if not any(e.get("op") == "undone" for e in read_log(log)):
            return log
    raise CollectionError("no dedup --apply log left to undo")


def read_log(log: Path) -> list[dict]:
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CollectionError(f"{log}: cannot read the log ({exc.strerror or exc})") from exc
    entries = []
    lines = [line for line in lines if line.strip()]
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break  # a last line torn by a crash while it was written: that step never ran
            raise CollectionError(f"{log}: not a dedup log (line {number})") from None
        if not _well_formed(entry):
            raise CollectionError(f"{log}: not a dedup log (line {number})")
        entries.append(entry)
    return entries


_FIELDS = {  # what each step of a log must carry, and of which type
    "start": {}, "done": {}, "undone": {},
    "drop": {"index": int, "row": dict, "file": str, "moved_to": str, "keep": str},
    "repoint": {"filename": str, "from": str, "to": str},
    "removed": {"filename": str, "sha256": str},
    "bind": {"key": str, "from": str, "to": str},
}


def _well_formed(entry: object) -> bool:
    """A log line of a known step with its fields, paths inside the collection."""
    if not isinstance(entry, dict) or entry.get("op") not in _FIELDS:
        return False
    if not all(isinstance(entry.get(k), t) for k, t in _FIELDS[entry["op"]].items()):
        return False
    if entry["op"] == "start":
        renames, members = entry.get("renames", {}), entry.get("members", {})
        return isinstance(renames, dict) and all(isinstance(v, str) for v in renames.values()) \
            and isinstance(members, dict) and all(
                isinstance(v, list) and all(isinstance(f, str) for f in v) for v in members.values())
    if entry["op"] != "drop":
        return True
    paths = [Path(entry["file"]), Path(entry["moved_to"])]
    inside = all(not p.is_absolute() and ".." not in p.parts and p.parts for p in paths)
    return inside and isinstance(entry["row"].get("filename"), str)


def apply_report(collection: Collection, report: DedupReport) -> ApplyResult:
    """Remove each group's dropped rows, move their files aside, merge aliased patients.

    Where a group's patients conflict (sex or age disagree) the copies still go, but the
    ids are not merged: that is for a person to review.

    Call under `collection.lock()` with a report made from the rows now on disk. Every step
    is logged before it is taken. Rows are rewritten first (the files they keep pointing at
    all stay), then the dropped files move, so no row ever points at a moved file.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    log = logs_dir(collection) / f"dedup-{stamp}.jsonl"
    result = ApplyResult(log=log)
    rows = report.rows
    if [r["filename"] for r in collection.read_rows()] != [r["filename"] for r in rows]:
        raise CollectionError("metadata.csv changed since the duplicates were found; run again")
    if not report.groups:
        result.log = None  # nothing to do: no log, so `--undo last` still means the last change
        return result
    logs_dir(collection).mkdir(parents=True, exist_ok=True)
    removed_dir = collection.state_dir / REMOVED_DIR / stamp
    drops: dict[int, dict] = {}
    for group in report.groups:
        keep = rows[group.keep]
        if group.relation == "conflicting":
            result.conflicts.append(keep["filename"])
        for index in group.drop:
            row = rows[index]
            drops[index] = {
                "op": "drop", "index": index, "row": row,
                "file": str(collection.image_path(row).relative_to(collection.root)),
                "moved_to": str((removed_dir / row["filename"]).relative_to(collection.root)),
                "keep": keep["filename"], "reason": group.reason, "kinds": group.kinds,
            }
    renames = alias_renames(report)
    # Who carries each merged id once applied: an undo refuses rows added under it later.
    members: dict[str, list[str]] = {target: [] for target in set(renames.values())}
    for index, row in enumerate(rows):
        final = renames.get(row["patientid"], row["patientid"])
        if index not in drops and final in members:
            members[final].append(row["filename"])
    _append(log, {"op": "start", "at": _now(), "groups": len(report.groups), "renames": renames,
                  "members": members})
    for entry in drops.values():
        _append(log, entry)
    kept: list[Row] = []
    for index, row in enumerate(rows):
        if index in drops:
            continue
        target = renames.get(row["patientid"])
        if target:
            _append(log, {"op": "repoint", "filename": row["filename"],
                          "from": row["patientid"], "to": target})
            row = {**row, "patientid": target}
            result.repointed += 1
        kept.append(row)
    collection.write_rows(kept)
    _move_and_rebind(collection, log, list(drops.values()), renames, result)
    return result


def alias_renames(report: DedupReport) -> dict[str, str]:
    """Every aliased patient id -> the one id its person ends with.

    Alias groups chain (A~B in one group, B~C in another): they are joined as one person, who
    takes the kept id of the last group that joined them, so no id is renamed to an id that is
    itself renamed."""
    parent: dict[str, str] = {}

    def find(pid: str) -> str:
        while parent.get(pid, pid) != pid:
            pid = parent[pid]
        return pid

    for group in report.groups:
        if group.relation != "alias":
            continue
        ids = [pid for pid in (report.rows[group.keep]["patientid"], *group.patients) if pid]
        if not ids:
            continue
        final = find(ids[0])
        for pid in ids:
            root = find(pid)
            if root != final:
                parent[root] = final
    return {pid: find(pid) for pid in parent if find(pid) != pid}


def _move_and_rebind(collection: Collection, log: Path, drops: list[dict],
                     renames: dict[str, str], result: ApplyResult) -> None:
    """The steps after the rows are rewritten: files aside, removed hashes, patient keys bound
    to the kept id, then "done". Each is safe to repeat, so an interrupted apply can finish."""
    with contextlib.closing(collection.state()) as db:
        for entry in drops:
            source, moved = collection.root / entry["file"], collection.root / entry["moved_to"]
            if source.exists() and not moved.exists():
                moved.parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, moved)
            sha = entry["row"].get("sha256") or (_sha(moved) if moved.exists() else "")
            entry["sha256"] = sha
            if sha:
                db.execute(
                    "INSERT OR REPLACE INTO removed (sha256, filename, reason, at) "
                    "VALUES (?,?,?,?)",
                    (sha, entry["row"]["filename"], f"duplicate of {entry['keep']}", _now()),
                )
            _append(log, {"op": "removed", "filename": entry["row"]["filename"], "sha256": sha})
            result.dropped += 1
        for old, new in renames.items():
            keys = [k for (k,) in db.execute("SELECT key FROM patients WHERE patientid=?", (old,))]
            for key in keys:
                _append(log, {"op": "bind", "key": key, "from": old, "to": new})
                collection.bind_patient(key, new)
                result.rebound += 1
    _append(log, {"op": "done", "at": _now()})


def finish_interrupted(collection: Collection) -> list[str]:
    """Bring every interrupted `dedup --apply` (a log with no "done") to an end; call under
    `collection.lock()`. Where the rows were already rewritten, the files still in images/ are
    moved aside and the ids merged; where they were not, nothing had changed and the log is
    closed as undone. Returns one line per log handled."""
    done = []
    present: set[str] | None = None  # metadata.csv's files, read once if a log needs them
    for log in sorted(logs_dir(collection).glob("dedup-*.jsonl")):
        entries = read_log(log)
        if not entries or any(e.get("op") in ("done", "undone") for e in entries):
            continue
        drops = [e for e in entries if e.get("op") == "drop"]
        if present is None:
            present = {r["filename"] for r in collection.read_rows()}
        if any(e["row"]["filename"] in present for e in drops):
            _append(log, {"op": "undone", "at": _now(), "restored": 0,
                          "why": "interrupted before its rows were written"})
            done.append(f"{log.name}: interrupted before any change; closed")
            continue
        renames = {**{e["from"]: e["to"] for e in entries if e.get("op") == "repoint"},
                   **entries[0].get("renames", {})}  # also ids whose every row was dropped
        result = ApplyResult(log=log)
        _move_and_rebind(collection, log, drops, renames, result)
        done.append(f"{log.name}: interrupted apply finished ({result.dropped} files moved "
                    "aside)")
    return done


def _sha(path: Path) -> str:
    import hashlib  # noqa: PLC0415

    return hashlib.sha256(path.read_bytes()).hexdigest()


def undo_log(collection: Collection, log: Path) -> UndoResult:
    """Reverse one `dedup --apply` from its log: files back, rows back, ids and state back.

    Call under `collection.lock()`. Files return before their rows, so no row points at a
    missing file; a log already undone is refused.
    """
    entries = read_log(log)
    if not entries or entries[0].get("op") != "start":
        raise CollectionError(f"{log}: not a dedup log")
    if any(e.get("op") == "undone" for e in entries):
        raise CollectionError(f"{log}: already undone")
    rows = collection.read_rows()
    members = entries[0].get("members") or {}
    if members:
        later = [r["filename"] for r in rows
                 if r["patientid"] in members and r["filename"] not in members[r["patientid"]]]
        if later:
            shown = ", ".join(later[:5]) + (f" and {len(later) - 5} more" if len(later) > 5 else "")
            raise CollectionError(
                f"{log}: {len(later)} row(s) added since this apply carry a merged patient id "
                f"({shown}); undoing would leave their person under it while the rest goes back "
                "to the old ids. Remove those rows or give them their ids first")
    result = UndoResult(log=log)
    drops = [e for e in entries if e.get("op") == "drop"]
    restorable = []
    for entry in drops:
        target, moved = collection.root / entry["file"], collection.root / entry["moved_to"]
        if moved.exists() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(moved, target)
        if target.exists():
            restorable.append(entry)
        else:
            result.missing.append(entry["row"]["filename"])
    back = {e["filename"]: e["from"] for e in entries if e.get("op") == "repoint"}
    present = {r["filename"] for r in rows}
    for index, row in enumerate(rows):
        if row["filename"] in back:
            rows[index] = {**row, "patientid": back[row["filename"]]}
            result.repointed += 1
    for entry in sorted(restorable, key=lambda e: e["index"]):
        if entry["row"]["filename"] not in present:
            rows.insert(min(entry["index"], len(rows)), entry["row"])
            result.restored += 1
    collection.write_rows(rows)
    with contextlib.closing(collection.state()) as db:
        for entry in entries:
            if entry.get("op") == "removed":
                db.execute("DELETE FROM removed WHERE sha256=?", (entry["sha256"],))
    for entry in entries:
        if entry.get("op") == "bind":
            collection.bind_patient(entry["key"], entry["from"])
            result.rebound += 1
    _append(log, {"op": "undone", "at": _now(), "restored": result.restored})
    return result
