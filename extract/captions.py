"""Figure captions: find where they start, take the whole caption, split it into panel parts."""

from __future__ import annotations

import bisect
import re
from typing import Any

from extract.captionpairs import overlap, union
from extract.captionpairs import pair_captions as pair_captions  # where extract.pdf finds it
from extract.records import BBox, Caption

_PREFIX = r"(?:(?P<supp>supplementa(?:ry|l)|suppl\.?|additional)\s+)?"
_WORD = (
    r"(?P<word>figures?|figs?\.?|abbildung|abb\.|figura|figuur|afbeelding|рисунок|рис\.)"
)
_NUMBER = r"(?P<number>S?\d{1,3}(?:[-–.]\d{1,3})?(?![\d]))"
CAPTION_START = re.compile(
    rf"^\s*{_PREFIX}{_WORD}\s*{_NUMBER}(?P<after>.{{0,3}})", re.IGNORECASE | re.DOTALL
)
_DELIMITERS = ".:|—–-"
_FIRST_PANEL = re.compile(r"\s+a[,.:)]?\s+[A-Z0-9]")  # "Fig. 1 a Chest radiograph ..."

# Panel markers inside a caption: "(A) ...", "(A, B)", "(A–C)", "a, ...", "a ...", "Left: ...".
_PAREN_MARK = re.compile(
    r"\(([A-H](?:\s*(?:[-–—,&]|and|to)\s*[A-H])*|[a-h](?:\s*(?:[-–—,&]|and|to)\s*[a-h])*)\)"
)
_LETTER_MARK = re.compile(r"(?<![\w'’-])([a-hA-H])([,.:)]?)\s+(?=[\w(])")
_LEADING_GROUP = re.compile(  # a bare group of letters right after the label: "a, b", "A–C"
    r"(?:[a-h](?:\s*(?:,?\s*(?:and|&)|[-–—,&]|to)\s*[a-h])+"
    r"|[A-H](?:\s*(?:,?\s*(?:and|&)|[-–—,&]|to)\s*[A-H])+)"
    r"[,.:]?\s+(?=[^\W\d_]{2})"
)
_CLAUSE_END = re.compile(r"\s*(?:[,;.]|and\b|or\b|&|as well as\b|$)")
_CONNECTOR = re.compile(r"^[\s,;.:]*(?:(?:and|or|&|as well as)\s+)?")
_ROW = {"upper": 0, "top": 0, "middle": 1, "lower": 2, "bottom": 2}
_COL = {"left": 0, "middle": 1, "right": 2}


TABLE_START = re.compile(r"^\s*(?:supplementa(?:ry|l)\s+)?(?:table|tab\.)\s*S?\d{1,3}\b", re.I)


def find_table_captions(page_dict: dict[str, Any]) -> list[BBox]:
    """Boxes of table captions ("Table 2 ..."), whose regions are tables, not figures."""
    boxes = []
    for block in page_dict["blocks"]:
        lines = block.get("lines") if block.get("type") == 0 else None
        if lines and TABLE_START.match(_line_text(lines[0])):
            boxes.append(tuple(block["bbox"]))
    return boxes


def parse_caption_start(text: str, *, bold: bool = False) -> tuple[str, str] | None:
    """(label, number) when `text` opens a figure caption ("Fig. 2:" -> ("Figure 2", "2")).

    A reference in running text ("Figure 1 shows ...") is not a caption: the number must be
    followed by a delimiter, a capital letter, "(" or a first panel mark ("Fig. 1 a Chest ..."),
    or the label must be set in bold.
    """
    m = CAPTION_START.match(text)
    if not m:
        return None
    after = m.group("after").lstrip(" \t")
    ok = bold or not after or after[0] in _DELIMITERS or after[0].isupper() or after[0] == "("
    ok = ok or _FIRST_PANEL.match(text, m.end("number")) is not None
    if not ok or (after[:1].isdigit()):
        return None
    number = m.group("number").upper()
    supplementary = m.group("supp") is not None or number.startswith("S")
    label = f"{'Supplementary ' if supplementary else ''}Figure {number}"
    return label, number


def _line_text(line: dict[str, Any]) -> str:
    return "".join(span["text"] for span in line["spans"])


def _line_size(line: dict[str, Any]) -> float:
    sizes = [s["size"] for s in line["spans"] if s["text"].strip()]
    return max(sizes) if sizes else 0.0


def _join(lines: list[str]) -> str:
    text = ""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if text.endswith("-") and not text.endswith(" -") and line[:1].islower():
            text = text[:-1] + line
        else:
            text = f"{text} {line}" if text else line
    return re.sub(r"\s+", " ", text).strip()


def find_captions(page_dict: dict[str, Any], page_no: int) -> list[Caption]:
    """Figure captions on one page, from PyMuPDF's `page.get_text("dict")` output."""
    blocks = [b for b in page_dict["blocks"] if b.get("type") == 0 and b.get("lines")]
    captions: list[Caption] = []
    seen: set[str] = set()
    for bi, block in enumerate(blocks):
        lines = block["lines"]
        for li, line in enumerate(lines):
            spans = [s for s in line["spans"] if s["text"].strip()]
            if not spans:
                continue
            bold = bool(spans[0]["flags"] & 16) or "bold" in spans[0]["font"].lower()
            parsed = parse_caption_start(_line_text(line), bold=bold)
            if parsed is None or (li > 0 and not _after_sentence_end(lines[li - 1])):
                continue
            label, number = parsed
            body = lines[li:]
            nxt = _next_start(lines, li)
            if nxt is not None:
                body = lines[li:nxt]
            boxes = [tuple(ln["bbox"]) for ln in body]
            texts = [_line_text(ln) for ln in body]
            if nxt is None:
                _extend_with_following_blocks(blocks, bi, body, boxes, texts)
            key = f"{label}@{round(boxes[0][1])}"
            if key in seen:
                continue
            seen.add(key)
            captions.append(Caption(page_no, union(boxes), label, number, _join(texts)))
    return captions


def _after_sentence_end(line: dict[str, Any]) -> bool:
    return _line_text(line).rstrip().endswith((".", ":", ")"))


def _next_start(lines: list[dict[str, Any]], li: int) -> int | None:
    for j in range(li + 1, len(lines)):
        if parse_caption_start(_line_text(lines[j])) and _after_sentence_end(lines[j - 1]):
            return j
    return None


def _extend_with_following_blocks(
    blocks: list[dict[str, Any]], bi: int, body: list, boxes: list, texts: list
) -> None:
    """Continue a caption into the next blocks: the rest of its line (a label set as its own
    block), or blocks right under it in the same style."""
    size = _line_size(body[0])
    label_only = len(body) == 1 and len(_line_text(body[0]).strip()) <= 24
    for block in blocks[bi + 1 :]:
        first = block["lines"][0]
        fx0, fy0, fx1, fy1 = first["bbox"]
        last = boxes[-1]
        height = last[3] - last[1]
        same_line = (
            overlap(fy0, fy1, last[1], last[3]) > 0.5 * height and -2 <= fx0 - last[2] <= 25
        )
        below = -1 <= fy0 - last[3] <= 0.5 * height and fx0 < last[2] and fx1 > last[0]
        if not (same_line or below) or parse_caption_start(_line_text(first)):
            return
        if not (same_line or label_only) and abs(_line_size(first) - size) > 0.6:
            return
        label_only = False
        for line in block["lines"]:
            boxes.append(tuple(line["bbox"]))
            texts.append(_line_text(line))


Mark = tuple[tuple[str, ...], int, int]  # panel letters, start and end of the mark


def caption_parts(caption: str) -> tuple[str, dict[str, str]]:
    """Split a caption into shared text and per-panel parts keyed "A", "B", ...

    Understands "(A) ... (B) ...", "(A, B) ... (C) ...", "a, ... b, ...", "Fig. 1 a ... b ...",
    "Left: ... Right: ...", marks that close their clauses: "X-ray (A) and CT (B) of a
    62-year-old" and "X-ray (left) and CT (right)" (each panel takes the text before its mark),
    and one mark inside each clause: "Radiograph (A) shows X. CT (B) shows Y." (each panel takes
    its clause); for these the whole caption is the shared text. Returns (caption, {}) when it
    names no panels.
    """
    body, after_group = _body_start(caption)
    found = {finder: finder(caption, after_group) for finder in (_paren_marks, _letter_marks)}
    if after_group > body:  # "Fig. 27 a, b Chest radiographs (a) … (b) …": a summary group
        group = set(_group_letters(caption[body:after_group].strip(" ,.:")))
        if group <= {x for marks in found.values() for m in marks for x in m[0]}:
            body = after_group
        else:  # "A & E department …", or the AJR style "A, B, Radiographs … C, CT …"
            found = {finder: finder(caption, body) for finder in (_paren_marks, _letter_marks)}
    named = {finder: {x for m in marks for x in m[0]} for finder, marks in found.items()}
    order = [_paren_marks, _letter_marks]
    if any(len(m[0]) > 1 for m in found[_paren_marks]) and named[_letter_marks] >= named[
        _paren_marks
    ]:
        order.reverse()  # "patient 1 (a, b) and 2 (c, d). a Axial … b …": single marks win
    for finder in order:
        marks = found[finder]
        if len(named[finder]) < 2:
            continue
        if finder is _paren_marks:
            inside = _trailing_parts(caption, body, marks) or _clause_parts(caption, body, marks)
            if inside:
                return caption, inside
        parts: dict[str, str] = {}
        waiting: list[str] = []  # "(A) and (B) Chest radiographs": A shares B's text
        for k, (letters, _start, end) in enumerate(marks):
            stop = marks[k + 1][1] if k + 1 < len(marks) else len(caption)
            text = caption[end:stop].strip(" ;,.")
            if k + 1 < len(marks) and _CONNECTOR.sub("", text + " ") == "":
                waiting.extend(letters)
                continue
            _add_part(parts, (*waiting, *letters), text)
            waiting = []
        return caption[: marks[0][1]].strip(), dict(sorted(parts.items()))
    sides = _side_parts(caption)
    if len(sides) >= 2:
        return caption, sides
    return caption, {}


def _add_part(parts: dict[str, str], letters: tuple[str, ...], text: str) -> None:
    for letter in letters:
        parts[letter] = f"{parts[letter]} {text}" if parts.get(letter) else text


def _body_start(caption: str) -> tuple[int, int]:
    """Where the caption's text starts after its label ("Fig. 1. " / "Figure 2 "), and after
    a bare group of letters that follows the label ("Fig. 27 a, b Chest radiographs (a) …")."""
    m = CAPTION_START.match(caption)
    if not m:
        return 0, 0
    rest = caption[m.end("number") :]
    start = m.end("number") + len(rest) - len(rest.lstrip(" .:|—–-"))
    group = _LEADING_GROUP.match(caption, start)
    return start, group.end() if group else start


def _trailing_parts(caption: str, body: int, marks: list[Mark]) -> dict[str, str]:
    """Parts when every mark but the last closes its clause ("X-ray (A) and CT (B) of ...");
    each panel then takes its clause's text before the mark. {} when the marks lead instead."""
    parts: dict[str, str] = {}
    prev = body
    for k, (letters, start, end) in enumerate(marks):
        if k + 1 < len(marks) and not _CLAUSE_END.match(caption, end):
            return {}
        text = caption[prev:start]
        if k == 0:
            text = re.split(r"(?<=[.;:])\s", text)[-1]
            group = _PAREN_MARK.match(text.lstrip())  # "(a, b) Chest radiographs at … (a)"
            text = text.lstrip()[group.end() :] if group else text
        text = _CONNECTOR.sub("", text).strip(" ,;.:")
        if not re.search(r"[^\W\d_]{2}", text):
            if k == 0:
                return {}
            text = parts[marks[k - 1][0][-1]]  # "radiographs (A) and (B)": a shared clause
        _add_part(parts, letters, text)
        prev = end
    return dict(sorted(parts.items()))


_CLAUSE_BREAK = re.compile(r"[.!?;]\s+|,\s+(?:and|while|whereas|but)\s+")


def _clause_parts(caption: str, body: int, marks: list[Mark]) -> dict[str, str]:
    """Parts when each mark sits inside its own clause, after its subject ("Chest radiograph
    (A) shows X. Axial CT (B) shows Y."): each panel takes its clause without the mark."""
    breaks = [m.end() for m in _CLAUSE_BREAK.finditer(caption, body)]
    parts: dict[str, str] = {}
    used: set[int] = set()
    for letters, start, end in marks:
        first = max([body] + [b for b in breaks if b <= start])
        last = min([len(caption)] + [b for b in breaks if b > end])
        after = caption[end:last].lstrip()
        before = caption[first:start].strip()
        if first in used or not re.search(r"[^\W\d_]{2}", before) or after[:1].isupper():
            return {}
        used.add(first)
        text = f"{before} {after}".strip(" ,;.")
        _add_part(parts, letters, re.sub(r",?\s+(?:and|while|whereas|but)$", "", text))
    return dict(sorted(parts.items()))


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _sequential(found: list[Mark]) -> list[Mark]:
    """Keep the run of marks A, B, C, ... in order; a group ("(A, B)", "(C–E)", "(A, C)")
    starts at the first letter not yet named, a mark may repeat the previous one ("(A) ...
    (A)"), and the run ends where its letters are A, B, C, ... with none missing."""
    run: list[Mark] = []
    seen: set[str] = set()
    for letters, start, end in found:
        expected = min(set(_ALPHABET) - seen)  # "(A, C) and (B, D)": B comes next
        if letters[0] == expected or (run and letters == run[-1][0]):
            run.append((letters, start, end))
            seen.update(letters)
    while run and _ALPHABET[: len(seen)] != "".join(sorted(seen)):  # end on A, B, … with no gap
        run.pop()
        seen = {x for m in run for x in m[0]}
    return run


def _group_letters(group: str) -> tuple[str, ...]:
    """Letters of a mark's group: "A" -> (A,), "A, B" -> (A, B), "A–C" -> (A, B, C)."""
    group = re.sub(r"\s*\bto\b\s*", "-", group, flags=re.IGNORECASE)
    group = re.sub(r"\band\b|&", ",", group, flags=re.IGNORECASE).upper()
    letters: list[str] = []
    for m in re.finditer(r"([A-H])(?:\s*[-–—]\s*([A-H]))?", group):
        first, last = m.group(1), m.group(2) or m.group(1)
        letters.extend(chr(c) for c in range(ord(first), ord(last) + 1))
    if letters != sorted(set(letters)):
        return ()
    return tuple(letters)


def _paren_marks(caption: str, body: int) -> list[Mark]:
    found = [(_group_letters(m.group(1)), m.start(), m.end())
             for m in _PAREN_MARK.finditer(caption, body)]
    run = _sequential([f for f in found if f[0]])
    # Groups that only sum up ("Patient 1 (A, B) and patient 2 (C, D). (A) … (B) …") give
    # way to single marks that name the same panels.
    singles = _sequential([f for f in found if len(f[0]) == 1])
    if {x for m in singles for x in m[0]} == {x for m in run for x in m[0]}:
        return singles
    return run


def _letter_marks(caption: str, body: int) -> list[Mark]:
    """Letter marks opening the text or a sentence: "a, ...", "A. ...", "a) ..." and bare
    lowercase "a ..." (a bare capital is the article "A"); a group opening the text and ending
    in a comma ("A, B, ...", "A and B, ...") is one mark."""
    found: list[Mark] = []
    scan = body
    group = _LEADING_GROUP.match(caption, body)  # "A, B, Chest radiographs … C, Axial CT …"
    if group and group.group().rstrip().endswith(","):
        found.append((_group_letters(group.group().strip(" ,")), body, group.end()))
        scan = group.end()
    for m in _LETTER_MARK.finditer(caption, scan):
        letter, punct = m.group(1), m.group(2)
        if not punct and letter.isupper():
            continue
        before = caption[max(0, m.start() - 12) : m.start()]
        opens = m.start() == body or re.search(r"(?<!\b[^\W\d])[.;:]\s+$", before) is not None
        if opens:
            found.append(((letter.upper(),), m.start(), m.end()))
    return _sequential(found)


_SIDE = (
    r"((?:upper|lower|top|bottom|middle)[ -](?:left|right|middle|centre|center)"
    r"|left|right|top|bottom|upper|lower|middle)"
)
_SIDE_COLON = re.compile(
    rf"(?:^|(?<=[.;]\s)|(?<=^\())(?:{_SIDE})(?: panel| image)?\s*:", re.IGNORECASE
)
_SIDE_PAREN = re.compile(
    rf"\((?:{_SIDE})(?: panel| image)?(?:[,;]([^)]*))?\)", re.IGNORECASE
)


def _side_key(side: str) -> tuple[int, int]:
    """(row, column) of a position word: "left" (1, 0), "top" (0, 1), "lower right" (2, 2)."""
    words = side.lower().replace("-", " ").replace("centre", "middle").replace("center", "middle")
    parts = words.split()
    if len(parts) == 2:
        return _ROW[parts[0]], _COL[parts[1]]
    word = parts[0]
    return (1, _COL[word]) if word in ("left", "right") else (_ROW[word], 1)


def _side_parts(caption: str) -> dict[str, str]:
    """Parts named by position: "Left: ..." (text after) or "CT image (right)" (text before)."""
    m = CAPTION_START.match(caption)
    body = (caption[m.end("number") :] if m else caption).lstrip(" .:|—–-")
    found: list[tuple[str, int, str]] = []
    clause_start = 0
    for m in _SIDE_PAREN.finditer(body):
        before = body[clause_start : m.start()]
        before = re.sub(r"^\s*(?:and|,|;|\.)\s*", "", before).strip(" ,;.")
        extra = (m.group(2) or "").strip()
        text = f"{before} ({extra})" if extra else before
        found.append((m.group(1).lower(), m.start(), text))
        clause_start = m.end()
    colon = list(_SIDE_COLON.finditer(body))
    paren_starts = [s for _, s, _ in found]  # in order
    for k, m in enumerate(colon):
        stop = colon[k + 1].start() if k + 1 < len(colon) else len(body)
        later = bisect.bisect_right(paren_starts, m.end())
        if later < len(paren_starts):
            stop = min(stop, paren_starts[later])
        found.append((m.group(1).lower(), m.start(), body[m.end() : stop].strip(" ;,.")))
    found.sort(key=lambda f: f[1])
    sides = sorted({_side_key(f[0]) for f in found})
    if len(sides) < 2:
        return {}
    letters = {side: chr(ord("A") + k) for k, side in enumerate(sides)}
    parts: dict[str, str] = {}
    for side, _, text in found:
        letter = letters[_side_key(side)]
        parts[letter] = f"{parts[letter]} {text}" if letter in parts else text
    return dict(sorted(parts.items()))
