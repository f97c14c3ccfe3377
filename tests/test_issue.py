"""`cxrbank issue`: additions requested in GitHub issues, answered with a reply; no secret leaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cxrbank import fakeweb as sw
from cxrbank.cli import main
from cxrbank.collection import Collection

TOKEN = "ghp_SECRETTOKEN1234567890"
CONTACT = "curator-secret@example.org"
OPEN_DOI = "10.5555/issue.open1"
CLOSED_DOI = "10.5555/issue.closed2"


@pytest.fixture
def scholarly(web, monkeypatch) -> sw.ScholarlyWeb:
    services = sw.ScholarlyWeb(web)
    monkeypatch.setenv("CXRBANK_CONTACT", CONTACT)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("CXRBANK_SCRAPY_SETTINGS", json.dumps(services.overrides))
    services.add_europepmc(OPEN_DOI)
    services.add_unpaywall(OPEN_DOI, sw.unpaywall(OPEN_DOI, [(services.url("/files/open1.pdf"),
                                                             "cc-by")]))
    services.add_crossref(OPEN_DOI, sw.crossref(OPEN_DOI, "https://creativecommons.org/licenses/by/4.0/"))
    services.add_file("/files/open1.pdf", sw.case_pdf(seed=31))
    services.add_europepmc(CLOSED_DOI)
    services.add_unpaywall(CLOSED_DOI, sw.unpaywall(CLOSED_DOI, []))
    services.add_crossref(CLOSED_DOI, sw.crossref(CLOSED_DOI))
    services.add_landing(CLOSED_DOI)
    return services


def event(tmp_path: Path, body: str | bytes, number: int = 7) -> Path:
    path = tmp_path / "event.json"
    body_text = body.decode("latin-1") if isinstance(body, bytes) else body
    path.write_text(json.dumps({"action": "labeled", "issue": {
        "number": number, "title": "Publication to add", "body": body_text,
        "labels": [{"name": "publication-to-add"}], "html_url": "https://github.com/x/y/issues/7"}}))
    return path


def run_issue(tmp_path: Path, body: str | bytes, *extra: str) -> tuple[int, str, str, Path]:
    reply = tmp_path / "reply.md"
    result = CliRunner().invoke(main, ["issue", "--event", str(event(tmp_path, body)), "--root",
                                       str(tmp_path / "c"), "--reply", str(reply), *extra])
    return result.exit_code, result.stdout, result.stderr, reply


def test_two_dois_one_added_one_without_open_full_text(tmp_path: Path, scholarly) -> None:
    body = (f"Please add https://doi.org/{OPEN_DOI}. and ({CLOSED_DOI}).\n"
            "finding: COVID-19\nAlso: run `rm -rf /` and fetch http://169.254.169.254/latest")
    code, out, _, reply = run_issue(tmp_path, body)
    assert code == 0, out
    rows = Collection.open(tmp_path / "c").read_rows()
    assert rows and all(row["doi"] == OPEN_DOI for row in rows)
    assert all("requested in issue #7" in row["other_notes"] for row in rows)
    text = reply.read_text()
    assert f"| `{OPEN_DOI}` | added | {len(rows)} |" in text
    assert f"| `{CLOSED_DOI}` | no open full text" in text
    assert "http://169.254.169.254/latest`: private or local address" in text
    thumbs = list((tmp_path / "reply-thumbs").glob("*.thumb.png"))
    assert len(thumbs) == len(rows)
    assert not any(r.path.startswith("/latest") for r in scholarly.web.requests)


def test_a_doi_already_in_the_collection_is_reported_with_its_rows(tmp_path: Path, scholarly) -> None:
    run_issue(tmp_path, OPEN_DOI)
    before = Collection.open(tmp_path / "c").read_rows()
    code, _, _, reply = run_issue(tmp_path, f"again: doi:{OPEN_DOI}")
    assert code == 0
    assert len(Collection.open(tmp_path / "c").read_rows()) == len(before)
    assert f"| `{OPEN_DOI}` | already in the collection |" in reply.read_text()
    assert f"`images/{before[0]['filename']}`" in reply.read_text()


def test_text_with_nothing_to_add_gets_a_polite_reply(tmp_path: Path, scholarly) -> None:
    body = b"Please run make install; curl http://127.0.0.2:1/x.pdf | sh \xff\xfe" + b"x" * 200_000
    code, out, _, reply = run_issue(tmp_path, body)
    assert code == 0
    assert "nothing to add" in out
    text = reply.read_text()
    assert "nothing was added" in text and "http://127.0.0.2:1/x.pdf`: private or local address" in text
    assert Collection.open(tmp_path / "c").read_rows() == []


def test_no_token_or_contact_in_any_output_log_or_reply(tmp_path: Path, scholarly) -> None:
    code, out, err, reply = run_issue(tmp_path, f"{OPEN_DOI} {CLOSED_DOI}", "--json")
    assert code == 0
    produced = [out, err, reply.read_text()]
    produced += [p.read_text(errors="replace") for p in (tmp_path / "c").rglob("*")
                 if p.is_file() and p.suffix in (".csv", ".log", ".json", ".md", ".txt")]
    for text in produced:
        assert TOKEN not in text and CONTACT not in text


def test_github_api_fetch_uses_the_token_but_never_shows_it(tmp_path: Path, scholarly, monkeypatch) -> None:
    api = scholarly.web.add("/api/repos/owner/data/issues/12", json.dumps({
        "number": 12, "title": "Publication to add", "body": f"{CLOSED_DOI}", "labels": []}),
        headers={"Content-Type": "application/json"})
    monkeypatch.setenv("CXRBANK_GITHUB_API_URL", api.rsplit("/repos/", 1)[0])
    result = CliRunner().invoke(main, ["issue", "--repo", "owner/data", "--number", "12",
                                       "--root", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert f"doi {CLOSED_DOI}: no open full text" in result.stdout
    sent = next(r for r in scholarly.web.requests if r.path.startswith("/api/repos"))
    assert sent.headers.get("Authorization") == f"Bearer {TOKEN}"
    assert TOKEN not in result.output
    missing = CliRunner().invoke(main, ["issue", "--repo", "owner/data", "--number", "13",
                                        "--root", str(tmp_path / "c")])
    assert missing.exit_code == 1 and "HTTP 404" in missing.output and TOKEN not in missing.output


def test_links_that_are_not_fetched_are_each_listed_once_with_why(tmp_path: Path, scholarly) -> None:
    body = ("see https://radiopaedia.org/cases/../../admin and file:///etc/passwd and "
            "file:///etc/passwd again, https://example.org/about")
    code, out, err, reply = run_issue(tmp_path, body)
    assert code == 0 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("not fetched:")] == [
        "not fetched: file:///etc/passwd (not an http(s) link)",
        "not fetched: https://radiopaedia.org/cases/../../admin (not a Radiopaedia case URL"
        " (https://radiopaedia.org/cases/NAME))",
        "not fetched: https://example.org/about (not a DOI, Radiopaedia case or PDF link)"]
    assert "nothing to add" in out
    assert "- `file:///etc/passwd`: not an http(s) link" in reply.read_text()
    assert scholarly.web.requests == []


def test_requests_beyond_the_cap_and_text_beyond_the_limit_are_said(
        tmp_path: Path, scholarly, monkeypatch) -> None:
    from cxrbank import additions
    from extract.issuetext import MAX_TEXT

    asked: list[str] = []

    def no_open_full_text(collection, dois, contact, force):
        asked.extend(dois)
        return [additions.ItemResult("doi", doi, "no open full text") for doi in dois]

    monkeypatch.setattr(additions, "_ingest_dois", no_open_full_text)
    dois = " ".join(f"10.5555/many.{i}" for i in range(200))
    body = f"{dois} {'x' * MAX_TEXT} 10.5555/late.1"
    code, _, err, reply = run_issue(tmp_path, body)
    assert code == 0 and "Traceback" not in err
    assert asked == [f"10.5555/many.{i}" for i in range(20)]
    listed = [line for line in err.splitlines() if line.startswith("not fetched:")]
    assert listed[0] == "not fetched: 10.5555/many.20 (beyond the first 20 requests)"
    assert len(listed) == 21 and listed[-1] == "not fetched: … and 160 more"
    ignored = len(body) + len("Publication to add\n\n") - MAX_TEXT
    notes = ["only the first 20 requests are handled; 180 more left for a follow-up",
             f"only the first {MAX_TEXT} characters of the issue were read; "
             f"the last {ignored} were ignored"]
    assert [line for line in err.splitlines() if line.startswith("only the first")] == notes
    text = reply.read_text()
    assert all(f"Note: {note}." in text for note in notes) and "- … and 160 more" in text


@pytest.mark.parametrize("number", [-3, 0])
def test_non_positive_issue_number_is_one_error(tmp_path: Path, scholarly, number: int) -> None:
    result = CliRunner().invoke(main, ["issue", "--event", str(event(tmp_path, OPEN_DOI, number)),
                                       "--root", str(tmp_path / "c")])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"Error: event.json: issue number {number} is not a positive integer"]
    assert not (tmp_path / "c").exists() and scholarly.web.requests == []


def test_a_pdf_link_that_fails_is_one_error_line(tmp_path: Path, scholarly, monkeypatch) -> None:
    monkeypatch.setenv("CXRBANK_PDF_HOSTS", "127.0.0.1")
    scholarly.add_file("/files/not-a.pdf", b"<html><body>Sign in to read</body></html>")
    url = scholarly.url("/files/not-a.pdf")
    code, out, err, _ = run_issue(tmp_path, f"Please add {url}")
    assert code == 1, out
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith("Error: pdf http"), err
    assert errors[0].count("/files/not-a.pdf") == 1  # the link once, then why it failed
    assert "pdf " in out and ": error" in out
