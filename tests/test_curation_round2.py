"""Round-2 review regressions: import ids, dedup chains, reply escaping, 16-bit greys, parsing."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from cxrbank.cli import main
from cxrbank.collection import Collection, NewImage
from cxrbank.schema import blank_row
from tests.fixtures.upstream import CASES, make_upstream_checkout


def run(*args: str):
    return CliRunner().invoke(main, [*args])


def state_binding(collection: Collection, key: str) -> str | None:
    with collection.state() as db:
        found = db.execute("SELECT patientid FROM patients WHERE key=?", (key,)).fetchone()
    return found[0] if found else None


def add_upstream_row(src: Path, filename: str, data: bytes, **values: str) -> None:
    """One more row (and its image) in an upstream checkout's metadata.csv."""
    (src / "images" / filename).write_bytes(data)
    with open(src / "metadata.csv", newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header, rows = reader.fieldnames, list(reader)
    rows.append({**dict.fromkeys(header, ""), "folder": "images", "filename": filename, **values})
    with open(src / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


# -- B1: import into a collection that has rows never merges unrelated people
def test_import_into_a_collection_with_rows_gives_upstream_patients_their_own_ids(tmp_path):
    from tests.fixtures.upstream import write_image

    collection = Collection.create(tmp_path / "c")
    write_image(tmp_path / "mine.png", 99)
    mine = {**blank_row(), "patientid": collection.patient_id("doi:10.1/x:patient 1"),
            "finding": "No Finding", "modality": "X-ray", "sex": "F"}
    collection.add_images([NewImage((tmp_path / "mine.png").read_bytes(), "mine", mine)])
    assert mine["patientid"] == "1"
    src = make_upstream_checkout(tmp_path / "src")
    result = run("import", str(src), "--root", str(collection.root), "--json")
    assert result.exit_code == 0, result.output
    mapped = json.loads(result.stdout)["patient_ids"]
    assert sorted(mapped) == sorted({case[0] for case in CASES}) and "1" not in mapped.values()
    rows = collection.read_rows()
    assert [r["patientid"] for r in rows if r["filename"].startswith("mine")] == ["1"]
    upstream = [r for r in rows if r["filename"].startswith("case")]
    assert "1" not in {r["patientid"] for r in upstream}
    by_upstream: dict[str, set[str]] = {}
    for case, row in zip(CASES, sorted(upstream, key=lambda r: r["filename"]), strict=True):
        by_upstream.setdefault(case[0], set()).add(row["patientid"])
    assert all(len(ids) == 1 for ids in by_upstream.values())  # one person stays one id
    assert len({next(iter(ids)) for ids in by_upstream.values()}) == len(by_upstream)
    # a newer upstream version: the same upstream patient gets the same id again
    write_image(tmp_path / "late.png", 123)
    add_upstream_row(src, "late.png", (tmp_path / "late.png").read_bytes(), patientid="2",
                     finding="COVID-19", modality="X-ray")
    assert run("import", str(src), "--root", str(collection.root)).exit_code == 0
    late = next(r for r in collection.read_rows() if r["filename"] == "late.png")
    assert {late["patientid"]} == by_upstream["2"]
    assert state_binding(collection, "upstream:2") == late["patientid"]


def test_import_into_an_empty_collection_keeps_upstream_ids(tmp_path):
    src = make_upstream_checkout(tmp_path / "src")
    assert run("import", str(src), "--root", str(tmp_path / "c")).exit_code == 0
    rows = Collection.open(tmp_path / "c").read_rows()
    assert sorted(r["patientid"] for r in rows) == sorted(case[0] for case in CASES)


# -- B3: removed duplicates stay removed and id merges stay merged on re-import
def test_reimport_after_dedup_apply_adds_nothing_and_keeps_the_merge(tmp_path):
    src = make_upstream_checkout(tmp_path / "src")
    copy = (src / "images" / "case00.jpg").read_bytes()
    add_upstream_row(src, "copy00.jpg", copy, patientid="9", sex="M", age="65",
                     finding="COVID-19", modality="X-ray", view="PA")
    root = str(tmp_path / "c")
    assert run("import", str(src), "--root", root).exit_code == 0
    applied = run("dedup", "--apply", "--root", root, "--json")
    assert applied.exit_code == 0, applied.output
    collection = Collection.open(root)
    before = collection.read_rows()
    assert len(before) == len(CASES)
    merged = {state_binding(collection, "upstream:1"), state_binding(collection, "upstream:9")}
    assert len(merged) == 1
    again = run("import", str(src), "--root", root, "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["imported"] == 0 and report["removed_earlier"] == 1
    assert collection.read_rows() == before
    assert {state_binding(collection, "upstream:1"), state_binding(collection, "upstream:9")} == merged


# -- B6: an import killed after copying files but before writing rows is finished by a rerun
def test_rerun_of_an_import_killed_before_its_rows_adopts_the_copied_files(tmp_path):
    src = make_upstream_checkout(tmp_path / "src")
    collection = Collection.create(tmp_path / "c")
    for name in ("case00.jpg", "case01.png"):  # what the killed run had copied
        shutil.copyfile(src / "images" / name, collection.images_dir / name)
    (collection.images_dir / "case02.jpg").write_bytes(b"someone else's file")
    (collection.images_dir / "case03.png").symlink_to(src / "images" / "case03.png")  # same bytes
    result = run("import", str(src), "--root", str(collection.root), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["imported"] == len(CASES) - 2
    assert [p for p in report["problems"] if "not imported" in p] == [
        "row 3: images/case02.jpg is already there without a row; not imported",
        "row 4: images/case03.png is already there without a row; not imported"]
    names = {r["filename"] for r in collection.read_rows()}
    assert {"case00.jpg", "case01.png"} <= names and "case02.jpg" not in names
    assert (collection.images_dir / "case02.jpg").read_bytes() == b"someone else's file"


# -- B2: chained alias groups end with one id; undo gives back every id exactly
def chained_collection(tmp_path: Path) -> Collection:
    """Patients A, B, C: A's film is B's (B keeps it), B's other film is C's (C keeps it)."""
    from tests.fixtures.dedup_images import encoded, radiograph

    p, q, r = radiograph(1), radiograph(2), radiograph(3)
    files = [("a1.png", p, "A", "0", 200), ("a2.png", r, "A", "5", 240),
             ("b1.png", p, "B", "0", 400), ("b2.png", q, "B", "2", 200),
             ("c1.png", q, "C", "2", 400)]
    collection = Collection.create(tmp_path / "c")
    rows = []
    for name, image, pid, offset, width in files:
        small = image.resize((width, width * image.height // image.width))
        (collection.images_dir / name).write_bytes(encoded(small, "PNG"))
        rows.append({**blank_row(), "patientid": pid, "offset": offset, "sex": "M", "age": "60",
                     "finding": "Pneumonia/Viral/COVID-19", "modality": "X-ray",
                     "folder": "images", "filename": name})
    with collection.lock():
        collection.write_rows(rows)
    for pid in "ABC":
        collection.bind_patient(f"upstream:{pid}", pid)
    return collection


def test_chained_aliases_all_end_with_the_final_id_and_undo_is_exact(tmp_path):
    collection = chained_collection(tmp_path)
    before = collection.read_rows()
    root = str(collection.root)
    applied = run("dedup", "--apply", "--root", root)
    assert applied.exit_code == 0, applied.output
    after = {r["filename"]: r["patientid"] for r in collection.read_rows()}
    assert after == {"a2.png": "C", "b1.png": "C", "c1.png": "C"}
    assert {state_binding(collection, f"upstream:{p}") for p in "ABC"} == {"C"}
    log = sorted((collection.state_dir / "logs").glob("dedup-*.jsonl"))[-1]
    start = json.loads(log.read_text().splitlines()[0])
    assert start["renames"] == {"A": "C", "B": "C"}
    assert run("dedup", "--undo", "last", "--root", root).exit_code == 0
    assert collection.read_rows() == before
    assert [state_binding(collection, f"upstream:{p}") for p in "ABC"] == ["A", "B", "C"]


def test_alias_reason_says_when_there_was_nothing_to_compare():
    from curation.dedup import patient_relation

    rows = [{**blank_row(), "patientid": "1"}, {**blank_row(), "patientid": "2"}]
    relation, why = patient_relation([0, 1], rows, rows)
    assert relation == "alias"
    assert why == "the same image under ids 1, 2; no sex or age recorded for both to compare"
    rows[0]["sex"] = rows[1]["sex"] = "F"
    assert patient_relation([0, 1], rows, rows)[1].endswith("; their sex agrees")


# -- B10: a malformed dedup log is one error line, no traceback
def test_undo_of_a_malformed_log_is_one_error_line(tmp_path):
    src = make_upstream_checkout(tmp_path / "src")
    root = tmp_path / "c"
    assert run("import", str(src), "--root", str(root)).exit_code == 0
    before = (root / "metadata.csv").read_bytes()
    bad = [
        '{"op":"start"}\n{"op":"drop","index":0}\n',
        '{"op":"start"}\n[1, 2]\n',
        '{"op":"start"}\n{"op":"drop","index":0,"row":{"filename":"x"},"file":"../../etc/x",'
        '"moved_to":".cxrbank/removed/x","keep":"y"}\n',
    ]
    for number, text in enumerate(bad):
        log = tmp_path / f"fake{number}.jsonl"
        log.write_text(text)
        result = run("dedup", "--undo", str(log), "--root", str(root))
        assert result.exit_code == 1
        assert result.output == f"Error: {log}: not a dedup log (line 2)\n"
    assert (root / "metadata.csv").read_bytes() == before


# -- C2: 16-bit greys are read by their top bits, not clipped to white
def grey16_png(pixels8) -> bytes:
    """A 16-bit grey PNG of an 8-bit picture (each value v as v * 257, as PDFs store them)."""
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels8, np.uint16) * 257).save(buffer, "PNG")
    return buffer.getvalue()


def test_grey8_scales_wide_greys_instead_of_clipping_them():
    import numpy as np
    from PIL import Image

    from cxrbank.greys import grey8

    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    sixteen = Image.fromarray(ramp.astype(np.uint16) * 257)
    assert sixteen.mode == "I;16"
    assert np.array_equal(np.asarray(grey8(sixteen)), ramp)
    wide = Image.fromarray(ramp.astype(np.int32) * 1000 - 5000)
    assert np.array_equal(np.asarray(grey8(wide)), ramp)
    floats = Image.fromarray(ramp.astype(np.float32) / 255)
    assert np.array_equal(np.asarray(grey8(floats)), ramp)
    assert np.asarray(grey8(Image.new("F", (4, 4), 3.0))).max() == 0
    twelve = Image.fromarray(ramp.astype(np.uint16) * 16)  # 12-bit data in a 16-bit image
    assert np.array_equal(np.asarray(grey8(twelve)), ramp)


def test_a_16_bit_png_and_its_8_bit_jpeg_are_one_duplicate(tmp_path):
    import io

    import numpy as np
    from PIL import Image

    from curation.dedup import find_duplicates
    from curation.hashing import decode_grey
    from tests.fixtures.dedup_images import encoded, radiograph

    picture = radiograph(4)
    png16 = grey16_png(picture)
    assert Image.open(io.BytesIO(png16)).mode == "I;16"
    grey, _, _ = decode_grey(png16)
    assert abs(float(grey.mean()) - float(np.asarray(picture).mean())) < 2
    collection = Collection.create(tmp_path / "c")
    (collection.images_dir / "a.png").write_bytes(png16)
    (collection.images_dir / "b.jpg").write_bytes(encoded(picture, "JPEG"))
    rows = [{**blank_row(), "patientid": "1", "finding": "todo", "modality": "X-ray",
             "folder": "images", "filename": name} for name in ("a.png", "b.jpg")]
    with collection.lock():
        collection.write_rows(rows)
    report = find_duplicates(collection)
    assert [{report.rows[i]["filename"] for i in [g.keep, *g.drop]} for g in report.groups] == [
        {"a.png", "b.jpg"}]


def test_issue_thumbnail_of_a_16_bit_image_shows_its_greys(tmp_path):
    import io

    import numpy as np
    from PIL import Image

    from cxrbank.additions import IssueResult, ItemResult, write_thumbnails
    from extract.issuetext import parse_request
    from tests.fixtures.dedup_images import radiograph

    picture = radiograph(5)
    collection = Collection.create(tmp_path / "c")
    row = {**blank_row(), "patientid": "1", "finding": "todo", "modality": "X-ray"}
    added = collection.add_images([NewImage(grey16_png(picture), "deep", row)]).added
    result = IssueResult(7, parse_request(""), [ItemResult("pdf", "x", "added", rows=added)])
    thumbs = write_thumbnails(collection, result, tmp_path / "thumbs")
    thumb = Image.open(io.BytesIO((tmp_path / "thumbs" / thumbs["deep.png"]).read_bytes()))
    assert thumb.mode == "L"
    assert abs(float(np.asarray(thumb).mean()) - float(np.asarray(picture).mean())) < 3


# -- B4: nothing from the issue (or a paper) renders in the reply: it all sits in code spans
def test_reply_puts_every_untrusted_value_in_code_spans_and_keeps_the_table_whole():
    import re

    from cxrbank.additions import IssueResult, ItemResult, reply_markdown
    from extract.issuetext import parse_request

    evil = "https://www.nature.com/x|y](https://evil.example/)![t](https://evil.example/p.png)`@octocat`"
    text = f"Please add {evil}.pdf and http://169.254.169.254/<img src=x> @octocat \u202egnp.exe"
    request = parse_request(text)
    row = {**blank_row(), "filename": "a.png", "patientid": "3", "modality": "X-ray",
           "finding": "todo", "figure": "Figure 1 <b>@octocat</b> [x](https://evil.example/)"}
    result = IssueResult(7, request, [
        ItemResult("pdf", evil, "error", reason=f"refused {evil}: cannot resolve \\|x\n## heading"),
        ItemResult("pdf", "https://www.nature.com/ok.pdf", "added", rows=[row]),
    ])
    reply = reply_markdown(result, {"a.png": "a.thumb.png"}, "thumbs/")
    outside = re.sub(r"`[^`\n]*`", "", reply)
    for marker in ("evil", "@", "<", "](https", "\u202e", "## heading"):
        assert marker not in outside, (marker, outside)
    assert "![a.png](thumbs/a.thumb.png)" in reply  # our own thumbnail still shows
    table = [line for line in reply.splitlines() if line.startswith("| ")]
    for line in table:  # three cells: no pipe of the values splits a cell
        assert len(re.findall(r"(?<!\\)(?:\\\\)*\|", line.replace("\\\\", ""))) == 4, line


# -- B5: the address that was checked is the address connected to (no DNS rebinding)
def resolving(monkeypatch, answers: dict[str, list[str]]) -> list[str]:
    """getaddrinfo answers each name in `answers` with its next address (the last repeats)."""
    import socket

    real, asked = socket.getaddrinfo, []

    def fake(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        asked.append(host)
        queue = answers[host]
        address = queue.pop(0) if len(queue) > 1 else queue[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


def test_a_name_that_rebinds_to_a_private_address_after_the_check_is_never_connected(
        web, monkeypatch):
    import pytest

    from crawler.fetch import FetchError, fetch_bytes

    web.add("/x.pdf", b"%PDF-1.4 internal secret")
    asked = resolving(monkeypatch, {"rebind.example": ["93.184.216.34", "127.0.0.1"]})
    with pytest.raises(FetchError) as caught:
        fetch_bytes(f"http://rebind.example:{web.port}/x.pdf", "t@example.org", allowed=set())
    assert str(caught.value) == (f"refused http://rebind.example:{web.port}/x.pdf: rebind.example"
                                 " resolves to private address 127.0.0.1")
    assert len(asked) >= 2 and web.count("/") == 0  # checked, re-resolved, nothing reached


def test_the_guarded_connection_sends_the_names_own_host_header(web, monkeypatch):
    import crawler.fetch as fetch

    web.add("/x.pdf", b"%PDF-1.4 the paper")
    resolving(monkeypatch, {"pdfs.example": ["127.0.0.1"]})
    monkeypatch.setattr(fetch, "is_public_address", lambda address: True)  # loopback as "public"
    data, final = fetch.fetch_bytes(f"http://pdfs.example:{web.port}/x.pdf", "t@example.org")
    assert data == b"%PDF-1.4 the paper" and final.endswith("/x.pdf")
    got = next(r for r in web.requests if r.path == "/x.pdf")
    host = next(v for k, v in got.headers.items() if k.lower() == "host")
    assert host == f"pdfs.example:{web.port}"


def test_the_guarded_session_keeps_the_configured_ca_bundle(monkeypatch, tmp_path):
    import crawler.fetch as fetch

    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    session = fetch._guarded_session(set(), [])
    assert session.trust_env is False and session.verify == str(bundle)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert fetch._guarded_session(set(), []).verify is True


# -- B7: a long run of brackets after a link is trimmed in linear time
def test_trailing_brackets_are_trimmed_in_linear_time():
    import time

    from extract.issuetext import parse_request, strip_trailing

    assert strip_trailing("10.1016/S0140-6736(20)30183-5).") == "10.1016/S0140-6736(20)30183-5"
    assert strip_trailing("https://x.org/a_(b)]),") == "https://x.org/a_(b)"
    assert strip_trailing("(x)>>}") == "(x)"
    start = time.perf_counter()
    request = parse_request("see https://a.org/x" + ")" * 250_000 + " and 10.1234/x" + ")" * 250_000)
    assert time.perf_counter() - start < 2.0  # was 27 s: the brackets were recounted per character
    assert request.dois == ["10.1234/x"]


# -- B8: stats and labels count a finding in another known spelling the same way
def test_stats_and_labels_count_the_same_labels_for_non_canonical_spellings():
    from curation.labels import label_counts
    from curation.stats import label_table

    findings = ["Pneumonia/Viral/SARS", "SARS", "covid-19", " Pneumonia / Viral / COVID-19",
                "No Finding", "todo", "Made Up/Thing "]
    rows = [{**blank_row(), "finding": f} for f in findings]
    table, counts = label_table(rows), label_counts(rows)
    assert {label: table[label][1] for label in table} == dict(counts)
    assert table["Pneumonia"] == {0: 2, 1: 4} and table["SARS"][1] == 2
    assert table["Thing"][1] == 1


def test_relabel_allow_new_refuses_a_spelling_the_taxonomy_maps_elsewhere(tmp_path):
    src = make_upstream_checkout(tmp_path / "src")
    root = str(tmp_path / "c")
    assert run("import", str(src), "--root", root).exit_code == 0
    before = (tmp_path / "c" / "metadata.csv").read_bytes()
    refused = run("relabel", "Pneumonia/Viral/SARS", "SARS", "--allow-new", "--root", root)
    assert refused.exit_code == 2
    assert "Error: 'SARS' is not the canonical spelling: use 'Pneumonia/Viral/SARS'" in refused.output
    spaced = run("relabel", "Pneumonia/Viral/SARS", "Pneumonia/Viral/New ", "--allow-new",
                 "--root", root)
    assert spaced.exit_code == 2 and "stray whitespace" in spaced.output
    assert (tmp_path / "c" / "metadata.csv").read_bytes() == before
    new = run("relabel", "Pneumonia/Viral/SARS", "Pneumonia/Viral/New", "--allow-new", "--root", root)
    assert new.exit_code == 0, new.output
    assert "Pneumonia/Viral/New" in {r["finding"] for r in Collection.open(root).read_rows()}


# -- B9: counts.tsv counts each image by its own row's sex, each subject once by the patient's
def test_counts_table_counts_images_by_their_own_rows_sex():
    from curation.balance import counts_table
    from curation.split import SplitSettings, split_rows

    def row(pid: str, name: str, sex: str) -> dict[str, str]:
        return {**blank_row(), "patientid": pid, "filename": name, "sex": sex,
                "finding": "Pneumonia/Viral/COVID-19", "modality": "X-ray", "view": "PA"}

    rows = [row("1", "a.png", "F"), row("1", "b.png", "F"), row("1", "c.png", "M"),
            row("2", "d.png", "M"), row("3", "e.png", "")]
    split = split_rows(rows, SplitSettings(ratios=(1, 1, 1), folds=3, seed=1))
    table = {(r[0], r[1]): (int(r[2]), int(r[3])) for r in counts_table(split.view())[1:]}
    assert table[("all", "all")] == (3, 5)
    assert table[("all", "F")] == (1, 2)  # patient 1 is F; two of its images are
    assert table[("all", "M")] == (1, 2)  # patient 2, and patient 1's image c.png
    assert table[("all", "unknown")] == (1, 1)


def test_a_first_import_stopped_before_its_rows_keeps_upstream_ids_when_run_again(
        tmp_path, monkeypatch):
    import pytest

    from cxrbank.upstream import import_upstream

    src = make_upstream_checkout(tmp_path / "src")
    collection = Collection.create(tmp_path / "c")

    def full(rows) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(collection, "write_rows", full)
    with pytest.raises(OSError):
        import_upstream(src, collection)
    monkeypatch.undo()
    report = import_upstream(src, collection)
    assert report.imported == len(CASES)
    assert sorted(r["patientid"] for r in collection.read_rows()) == sorted(c[0] for c in CASES)


def test_a_connection_whose_peer_is_private_is_closed_before_any_request(web, monkeypatch):
    import pytest

    import crawler.fetch as fetch

    web.add("/x.pdf", b"%PDF-1.4 internal secret")
    resolving(monkeypatch, {"peer.example": ["127.0.0.1"]})
    # the answer passes each check (the URL's, then robots.txt's and the file's connections),
    # the connected peer does not
    verdicts = iter([True, True, False, True, False])
    monkeypatch.setattr(fetch, "is_public_address", lambda address: next(verdicts, False))
    with pytest.raises(fetch.FetchError) as caught:
        fetch.fetch_bytes(f"http://peer.example:{web.port}/x.pdf", "t@example.org")
    assert "peer.example connected to private address 127.0.0.1" in str(caught.value)
    assert web.count("/") == 0


def test_undo_refuses_rows_added_under_a_merged_id_since_the_apply(tmp_path):
    from tests.fixtures.dedup_images import encoded, radiograph

    collection = chained_collection(tmp_path)
    root = str(collection.root)
    assert run("dedup", "--apply", "--root", root).exit_code == 0
    # a later import gives upstream patient B's new film the merged id C
    (collection.images_dir / "b3.png").write_bytes(encoded(radiograph(9), "PNG"))
    rows = collection.read_rows()
    with collection.lock():
        collection.write_rows([*rows, {**rows[0], "filename": "b3.png", "patientid": "C"}])
    before = (collection.root / "metadata.csv").read_bytes()
    undone = run("dedup", "--undo", "last", "--root", root)
    assert undone.exit_code == 1
    assert "1 row(s) added since this apply carry a merged patient id (b3.png)" in undone.output
    assert (collection.root / "metadata.csv").read_bytes() == before
