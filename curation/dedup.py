"""Duplicate images in a collection: candidate pairs, verification, groups and the copy kept."""

from __future__ import annotations

import contextlib
import functools
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from curation import align, hashing, verification
from curation.fingerprints import load_fingerprints
from cxrbank.collection import Collection, Row

GLOBAL_BITS = 12  # candidate: whole-image hashes this close (of 64 bits) ...
WINDOW_BITS = 11  # ... or a whole image this close to a window of the other
GATE = 0.63  # candidate kept for the aligned search when its patches correlate this well
SURE = 0.88  # patch correlation so high that the aligned search is not needed
NEAR = 0.86  # aligned band-pass correlation at or above which two images are one picture
GROUP_TRIES = 1  # verifications tried between two groups (best gates first) before giving up
SAME_PIXELS = 4.0  # mean absolute thumbnail difference (0..255) for "same pixels, other file"

_RID = re.compile(r"\brID:?\s*(\d+)", re.IGNORECASE)


@dataclass
class Match:
    """Two images found to be the same picture."""

    a: int
    b: int
    kind: str  # exact (same bytes), pixels (same decoded pixels), near (near duplicate)
    score: float


@dataclass
class Group:
    """Rows whose images are one picture: the copy to keep, the ones to drop, and why."""

    keep: int
    drop: list[int]
    reason: str
    kinds: list[str]
    patients: list[str]
    relation: str = ""  # "", alias, conflicting
    relation_why: str = ""


@dataclass
class DedupReport:
    rows: list[Row]
    groups: list[Group] = field(default_factory=list)
    held_apart: list[Match] = field(default_factory=list)  # same patient, different days
    failures: list[tuple[str, str]] = field(default_factory=list)  # (filename, error)
    hashed: int = 0  # fingerprints computed this run (the others came from the cache)


# -- matching


TOP_WINDOWS = 3  # windows per direction whose patches the gate compares
GATE_CHUNK = 512  # pairs per step of the gate (their gathered patches stay in cache)


def candidate_pairs(phash: np.ndarray, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j) whose hashes are close (brute-force Hamming in numpy), and for each the
    TOP_WINDOWS boxes of i that j's whole image matched best, then those of j for i
    (box k is WINDOWS[k-1]): the alignments the gate tries."""
    n = len(phash)
    k = windows.shape[1]
    top = min(TOP_WINDOWS, k)
    by_window = np.ascontiguousarray(windows.transpose(1, 0, 2))  # (k, n, words)
    by_start: dict[int, np.ndarray] = {}

    def chunk(start: int) -> None:  # rows start.. against columns start.. (j > i only)
        stop = min(n, start + 256)
        mine, theirs = phash[start:stop, None], phash[None, start:]
        close = hashing.hamming(mine, theirs) <= GLOBAL_BITS  # (c, n - start)
        for window in by_window:  # a window of i near j's whole image, or the reverse
            close |= hashing.hamming(window[start:stop, None], theirs) <= WINDOW_BITS
            close |= hashing.hamming(mine, window[None, start:]) <= WINDOW_BITS
        close &= np.arange(start, n)[None, :] > np.arange(start, stop)[:, None]
        rows_, cols = np.nonzero(close)
        by_start[start] = np.stack([rows_ + start, cols + start], axis=1)

    hashing.in_threads(chunk, range(0, n, 256))
    pairs = [by_start[start] for start in sorted(by_start)]
    found = np.concatenate(pairs).astype(np.int64) if pairs else np.zeros((0, 2), np.int64)
    if not len(found):
        return found, np.zeros((0, 2 * top), np.int64)
    first, second = found[:, 0], found[:, 1]
    in_mine = hashing.hamming(windows[first], phash[second][:, None])  # (p, k)
    in_theirs = hashing.hamming(windows[second], phash[first][:, None])
    boxes = np.concatenate([np.argsort(in_mine, axis=1, kind="stable")[:, :top],
                            np.argsort(in_theirs, axis=1, kind="stable")[:, :top]], axis=1)
    return found, (boxes + 1).astype(np.int64)


def different_days(a: Row, b: Row) -> bool:
    """Two rows of one patient whose stated day (offset or date) differs: two studies."""
    if not a.get("patientid") or a.get("patientid") != b.get("patientid"):
        return False
    for column in ("offset", "date"):
        left, right = (a.get(column) or "").strip(), (b.get(column) or "").strip()
        if left and right and left != right:
            with contextlib.suppress(ValueError):
                if float(left) == float(right):
                    continue
            return True
    return False


def gate_scores(
    fps: list[hashing.Fingerprint], pairs: np.ndarray, boxes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best patch correlation of each candidate pair, whole on whole or whole on a window,
    with the image whose box it was (outer) and the box (0 = whole)."""
    count = len(pairs)
    if not count:
        return np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    needed = np.unique(pairs)
    slot = np.zeros(int(needed.max()) + 1, dtype=np.int64)
    slot[needed] = np.arange(len(needed))
    desc = hashing.descriptor_stack(np.stack([fps[int(i)].thumb for i in needed]))
    wholes = np.ascontiguousarray(desc[:, 0])
    top = boxes.shape[1] // 2
    gates = np.empty(count, np.float32)
    outer = np.empty(count, np.int64)
    box = np.empty(count, np.int64)

    def chunk(start: int) -> None:
        stop = min(count, start + GATE_CHUNK)
        first, second = slot[pairs[start:stop, 0]], slot[pairs[start:stop, 1]]
        mine, theirs = boxes[start:stop, :top], boxes[start:stop, top:]
        whole = np.einsum("pd,pd->p", wholes[first], wholes[second])
        in_first = np.einsum("ptd,pd->pt", desc[first[:, None], mine], wholes[second])
        in_second = np.einsum("ptd,pd->pt", desc[second[:, None], theirs], wholes[first])
        scores = np.concatenate([whole[:, None], in_first, in_second], axis=1)
        best = scores.argmax(1)
        rows_ = np.arange(len(best))
        gates[start:stop] = scores[rows_, best]
        outer[start:stop] = np.where(best <= top, pairs[start:stop, 0], pairs[start:stop, 1])
        box[start:stop] = np.where(best == 0, 0, np.concatenate([mine, theirs], axis=1)[
            rows_, np.maximum(best - 1, 0)])

    hashing.in_threads(chunk, range(0, count, GATE_CHUNK))
    return gates, outer, box


def same_pixels(a: hashing.Fingerprint, b: hashing.Fingerprint) -> bool:
    """Same decoded pixels within a tolerance (the same image saved in another encoding)."""
    if (a.width, a.height) != (b.width, b.height):
        return False
    return float(np.abs(a.thumb.astype(np.float32) - b.thumb).mean()) <= SAME_PIXELS


def near_score(
    a: hashing.Fingerprint, b: hashing.Fingerprint, outer: hashing.Fingerprint, box: int,
    cache: align.AlignCache | None = None,
) -> float:
    """Aligned similarity of a candidate pair, from its hash alignment, then whole on whole."""
    inner = b if outer is a else a
    size = 1.0 if box == 0 else hashing.WINDOWS[box - 1][0]
    score = align.aligned_similarity(outer.thumb, inner.thumb, size, enough=NEAR, cache=cache,
                                       keys=(outer.sha256, inner.sha256))
    if box != 0 and score < NEAR:
        score = max(score, align.aligned_similarity(
            a.thumb, b.thumb, 1.0, enough=NEAR, cache=cache, keys=(a.sha256, b.sha256)))
    return score


def match_rows(
    fps: list[hashing.Fingerprint | None], apart: Callable[[int, int], bool],
) -> tuple[list[list[int]], list[Match], list[Match]]:
    """Groups of rows showing one picture, the matches that made them, and those held apart.

    Same bytes join first. Hash candidates are then verified strongest first; a pair
    already in one group is not verified again, nor are two groups whose GROUP_TRIES best
    pairs failed. A match that would join two rows that must stay apart (one patient,
    different days) is held apart instead.
    """
    parts = verification.Components(len(fps), apart)
    matches: list[Match] = []
    held: list[Match] = []
    by_sha: dict[str, int] = {}
    distinct: list[int] = []
    for index, fp in enumerate(fps):
        if fp is None:
            continue
        if fp.sha256 in by_sha:
            match = Match(by_sha[fp.sha256], index, "exact", 1.0)
            (matches if parts.join(match.a, match.b) else held).append(match)
            continue
        by_sha[fp.sha256] = index
        distinct.append(index)
    if len(distinct) > 1:
        chosen = [fps[i] for i in distinct]
        pairs, boxes = candidate_pairs(np.stack([f.phash for f in chosen]),
                                       np.stack([f.windows for f in chosen]))
        gates, outers, box_of = gate_scores(chosen, pairs, boxes)
        order = np.argsort(-gates, kind="stable")
        order = order[gates[order] >= GATE]
        verify = functools.partial(_verify, chosen=chosen, distinct=distinct, pairs=pairs,
                                   outers=outers, box_of=box_of, gates=gates)
        for _, match in verification.by_components(order, pairs, parts, verify):
            (matches if parts.join(match.a, match.b) else held).append(match)
    return parts.groups(), matches, held


def _verify(
    order: np.ndarray, parts: verification.Components, *, chosen: list[hashing.Fingerprint],
    distinct: list[int], pairs: np.ndarray, outers: np.ndarray, box_of: np.ndarray,
    gates: np.ndarray,
) -> list[tuple[int, Match]]:
    """Verify the candidates order[k] in turn, joining parts; the (k, match) of each match."""
    found: list[tuple[int, Match]] = []
    refused: set[tuple[int, int]] = set()
    tries: Counter[tuple[int, int]] = Counter()
    cache = align.AlignCache()
    for k, p in enumerate(order):
        i, j, outer, box = int(pairs[p, 0]), int(pairs[p, 1]), int(outers[p]), int(box_of[p])
        a, b = distinct[i], distinct[j]
        if parts.together(a, b):
            continue
        pair_key = (min(parts.root(a), parts.root(b)), max(parts.root(a), parts.root(b)))
        if pair_key in refused or tries[pair_key] >= GROUP_TRIES:
            continue
        tries[pair_key] += 1
        if same_pixels(chosen[i], chosen[j]):
            match = Match(a, b, "pixels", 1.0)
        elif gates[p] >= SURE:
            match = Match(a, b, "near", round(float(gates[p]), 4))
        else:
            score = near_score(chosen[i], chosen[j], chosen[outer], box, cache)
            if score < NEAR:
                continue
            match = Match(a, b, "near", round(score, 4))
        found.append((k, match))
        if not parts.join(a, b):
            refused.add(pair_key)
    return found


# -- choosing the copy to keep


def licence_rank(text: str) -> int:
    """How clearly a licence lets the image be redistributed (higher is clearer)."""
    value = " ".join((text or "").upper().replace("-", " ").split())
    if not value:
        return 0
    if "ND" in value.split() or "NO DERIV" in value:
        return 1
    if "NC" in value.split() or "NONCOMMERCIAL" in value.replace(" ", ""):
        return 2
    if "CC0" in value or "PUBLIC DOMAIN" in value:
        return 5
    if "SA" in value.split():
        return 3
    if "BY" in value.split():
        return 4
    return 1


def source_rank(row: Row) -> int:
    """Primary sources first: the paper, then a teaching-case site, then anything else."""
    source = (row.get("source") or "").lower()
    url = (row.get("url") or "").lower()
    if source == "paper" or (row.get("doi") and source in ("", "upstream")):
        return 3
    if source == "radiopaedia" or "radiopaedia.org" in url or "eurorad.org" in url:
        return 2
    return 1


def _size(row: Row, fp: hashing.Fingerprint | None) -> int:
    if fp is not None:
        return fp.width * fp.height
    with contextlib.suppress(ValueError):
        return int(row.get("width") or 0) * int(row.get("height") or 0)
    return 0


def choose_keep(
    members: list[int], rows: list[Row], fps: list[hashing.Fingerprint | None],
) -> tuple[int, str]:
    """The best copy (largest resolution, then clearest licence, then primary source) and why."""

    def key(i: int) -> tuple[int, int, int]:
        return (_size(rows[i], fps[i]), licence_rank(rows[i].get("license", "")), source_rank(rows[i]))

    ranked = sorted(members, key=lambda i: (key(i), -i), reverse=True)
    best, runner = ranked[0], ranked[1]
    fp = fps[best]
    size = f"{fp.width}x{fp.height}" if fp else "?"
    if key(best)[0] > key(runner)[0]:
        return best, f"largest resolution ({size})"
    if key(best)[1] > key(runner)[1]:
        return best, f"same resolution; clearest licence ({rows[best].get('license') or 'none'})"
    if key(best)[2] > key(runner)[2]:
        return best, "same resolution and licence; primary source"
    return best, "equal copies; the first listed"


def case_keys(row: Row) -> set[str]:
    """Source-case identities of a row: Radiopaedia rID, DOI + figure, case URL."""
    keys = set()
    for text in (row.get("other_notes", ""), row.get("source_id", ""), row.get("url", "")):
        keys.update(f"rID:{m}" for m in _RID.findall(text or ""))
    if row.get("doi"):
        keys.add(f"doi:{row['doi'].strip().lower()}")
    return keys


def patient_relation(members: list[int], rows: list[Row], all_rows: list[Row]) -> tuple[str, str]:
    """For a group spanning patient ids: alias (one person) or conflicting (ids disagree), and why."""
    ids = sorted({rows[i]["patientid"] for i in members if rows[i].get("patientid")})
    if len(ids) < 2:
        return "", ""
    shared = set.intersection(*[
        set().union(*[case_keys(rows[i]) for i in members if rows[i]["patientid"] == pid])
        for pid in ids
    ])
    facts = {pid: [r for r in all_rows if r.get("patientid") == pid] for pid in ids}
    sexes = {pid: {r["sex"].strip().upper() for r in rs if r.get("sex", "").strip()} for pid, rs in facts.items()}
    if len(set().union(*sexes.values())) > 1:
        return "conflicting", (
            f"patients {', '.join(ids)} share an image but their sex differs: an id reused for"
            " two people or a wrong row; not merged"
        )
    ages = {}
    for pid, rs in facts.items():
        values = [float(r["age"]) for r in rs if _is_number(r.get("age", ""))]
        if values:
            ages[pid] = min(values)
    if ages and max(ages.values()) - min(ages.values()) > 2:
        return "conflicting", (
            f"patients {', '.join(ids)} share an image but their ages differ by more than 2"
            " years: an id reused for two people or a wrong row; not merged"
        )
    if shared:
        return "alias", f"same source case ({', '.join(sorted(shared))}) under ids {', '.join(ids)}"
    compared = [what for what, known in (("sex", sum(1 for v in sexes.values() if v)),
                                         ("age", len(ages))) if known > 1]
    if not compared:
        return "alias", (f"the same image under ids {', '.join(ids)}; no sex or age recorded for"
                         " both to compare")
    agree = {2: "their sex and age agree", 1: f"their {compared[0]} agrees"}[len(compared)]
    return "alias", f"the same image under ids {', '.join(ids)}; {agree}"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def find_duplicates(
    collection: Collection, progress: Callable[[int], None] | None = None,
) -> DedupReport:
    """Every duplicate group of the collection, with the copy to keep and the patient relation."""
    rows = collection.read_rows()
    fps, failures, computed = load_fingerprints(collection, rows, progress)
    components, matches, held = match_rows(fps, lambda x, y: different_days(rows[x], rows[y]))
    kinds: dict[tuple[int, int], str] = {(m.a, m.b): m.kind for m in matches}
    report = DedupReport(rows=rows, held_apart=held, failures=failures, hashed=computed)
    for members in components:
        keep, reason = choose_keep(members, rows, fps)
        relation, why = patient_relation(members, rows, rows)
        found = sorted({k for (a, b), k in kinds.items() if a in members and b in members})
        report.groups.append(Group(
            keep=keep, drop=[i for i in members if i != keep], reason=reason, kinds=found,
            patients=sorted({rows[i]["patientid"] for i in members}), relation=relation,
            relation_why=why,
        ))
    return report
