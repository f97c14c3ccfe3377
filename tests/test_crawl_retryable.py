"""`cxrbank ingest --doi`: passing failures (outages, 403 blocks, odd JSON) are errors retried
next run; only definitive answers are stored as final."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from crawler import resolve
from crawler.state import previous_outcome
from cxrbank import fakeweb as sw
from cxrbank.collection import Collection
from cxrbank.localweb import Page
from tests.fixtures.cli import run

CC_BY = "https://creativecommons.org/licenses/by/4.0/"
DOWN = Page(b"Service Unavailable", 503, {"Content-Type": "text/plain"})
CHALLENGE = b"<html><head><title>Just a moment...</title></head><body>cf-challenge</body></html>"
CASE = ("Case presentation. A 61-year-old woman presented with fever and cough for 5 days. "
        "RT-PCR was positive for SARS-CoV-2 and she was treated for COVID-19 pneumonia.")


def ingest(doi: str, root) -> tuple[int, dict, str]:
    code, out, err = run("ingest", "--doi", doi, "--root", str(root), "--json")
    return code, json.loads(out)["papers"][0], err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("Error:")]


def test_a_service_outage_is_an_error_retried_next_run_not_no_open_full_text(scholarly, tmp_path):
    doi = "10.5555/transient1"
    scholarly.add_europepmc(doi)  # known, not open access
    scholarly.add_unpaywall(doi, DOWN)
    scholarly.add_crossref(doi, Page(b"Resource not found.", 404, {"Content-Type": "text/plain"}))
    code, paper, err = ingest(doi, tmp_path / "c")
    assert code == 1
    assert paper["outcome"] == "error" and "unpaywall: HTTP 503" in paper["reason"]
    assert error_lines(err) == [f"Error: {doi}: {paper['reason']}"]
    assert "tester@example.org" not in paper["reason"]  # the lookup URL is not repeated
    assert previous_outcome(Collection.open(tmp_path / "c"), doi).outcome == "error"

    scholarly.add_unpaywall(doi, sw.unpaywall(doi, [(scholarly.url("/pdf/t1.pdf"), "cc-by")]))
    scholarly.add_file("/pdf/t1.pdf", sw.case_pdf(7))
    code, paper, _ = ingest(doi, tmp_path / "c")
    assert code == 0 and (paper["outcome"], paper["added"]) == ("added", 2)
    assert scholarly.web.count("/pdf/t1.pdf") == 1


def test_a_403_challenge_on_the_pdf_is_an_error_and_the_next_run_gets_the_pdf(scholarly, tmp_path):
    doi = "10.5555/blocked1"
    scholarly.add_unpaywall(doi, sw.unpaywall(doi, [(scholarly.url("/pdf/b1.pdf"), "cc-by")]))
    scholarly.add_file("/pdf/b1.pdf", Page(CHALLENGE, 403, {"Content-Type": "text/html"}))
    code, paper, err = ingest(doi, tmp_path / "c")
    assert code == 1 and paper["outcome"] == "error"
    assert "HTTP 403, a challenge page (not evaded)" in paper["reason"]
    assert len(error_lines(err)) == 1
    scholarly.add_file("/pdf/b1.pdf", sw.case_pdf(11))
    code, paper, _ = ingest(doi, tmp_path / "c")
    assert code == 0 and (paper["outcome"], paper["added"]) == ("added", 2)


def test_a_503_challenge_page_is_fetched_once_not_retried(scholarly, tmp_path):
    doi = "10.5555/blocked3"
    scholarly.add_unpaywall(doi, sw.unpaywall(doi, [(scholarly.url("/pdf/b3.pdf"), "cc-by")]))
    scholarly.add_file("/pdf/b3.pdf", Page(CHALLENGE, 503, {"Content-Type": "text/html"}))
    code, paper, _ = ingest(doi, tmp_path / "c")
    assert code == 1 and "HTTP 503, a challenge page" in paper["reason"]
    assert scholarly.web.count("/pdf/b3.pdf") == 1


def test_a_challenge_page_served_with_200_is_an_error_not_an_html_landing_page(scholarly, tmp_path):
    doi = "10.5555/blocked2"
    scholarly.add_unpaywall(doi, sw.unpaywall(doi, [(scholarly.url("/pdf/b2.pdf"), "cc-by")]))
    scholarly.add_file("/pdf/b2.pdf", Page(CHALLENGE, 200, {"Content-Type": "text/html"}))
    code, paper, _ = ingest(doi, tmp_path / "c")
    assert code == 1 and paper["outcome"] == "error" and "challenge page" in paper["reason"]


def test_a_pdf_answering_404_is_still_final_no_open_full_text(scholarly, tmp_path):
    doi = "10.5555/gone1"
    scholarly.add_unpaywall(doi, sw.unpaywall(doi, [(scholarly.url("/pdf/gone.pdf"), "cc-by")]))
    scholarly.add_crossref(doi, sw.crossref(doi, CC_BY))
    scholarly.add_landing(doi)
    code, paper, _ = ingest(doi, tmp_path / "c")
    assert code == 0 and paper["outcome"] == "no open full text"
    assert "HTTP 404" in paper["reason"]


def test_a_landing_page_outage_is_an_error(scholarly, tmp_path):
    doi = "10.5555/landingdown1"
    scholarly.add_crossref(doi, sw.crossref(doi, CC_BY))  # known, no PDF named anywhere
    scholarly.web.add(f"/doi/{doi}", DOWN)
    code, paper, _ = ingest(doi, tmp_path / "c")
    assert code == 1 and paper["outcome"] == "error"
    assert "landing:" in paper["reason"] and "HTTP 503" in paper["reason"]


def serve_jats(s: sw.ScholarlyWeb, doi: str, pmcid: str) -> None:
    example = sw.example_module()
    s.add_europepmc(doi, pmcid=pmcid, open_access=True, license_="cc by",
                    title="COVID-19 pneumonia", abstract=CASE)
    s.add_jats(pmcid, sw.jats_article(doi, pmcid, "COVID-19 pneumonia", CASE, CASE, [
        ("Figure 1", "AP chest radiograph on day 5 showing bilateral opacities.", "g001"),
        ("Figure 2", "Axial chest CT showing ground-glass opacities.", "g002")]),
        {"g001": example.radiograph_like(seed=21), "g002": example.ct_like(seed=22)})
    s.add_crossref(doi, sw.crossref(doi, CC_BY))


def test_a_figure_server_outage_is_an_error_then_the_figures_come_next_run(scholarly, tmp_path):
    doi, pmcid = "10.5555/figdown", "PMC777001"
    serve_jats(scholarly, doi, pmcid)
    for href in ("g001", "g002"):
        scholarly.web.add(f"/europepmc_figures/{pmcid}/bin/{href}.jpg", DOWN)
    code, paper, err = ingest(doi, tmp_path / "c")
    assert code == 1 and paper["outcome"] == "error"
    assert "2 figure file(s) could not be downloaded" in paper["reason"]
    assert len(error_lines(err)) == 1
    assert Collection.open(tmp_path / "c").read_rows() == []
    serve_jats(scholarly, doi, pmcid)
    code, paper, _ = ingest(doi, tmp_path / "c")
    assert code == 0 and (paper["outcome"], paper["added"]) == ("added", 2)


def test_a_figure_answered_with_an_html_page_is_an_error_not_no_radiographs(scholarly, tmp_path):
    doi, pmcid = "10.5555/fightml", "PMC777003"
    serve_jats(scholarly, doi, pmcid)
    scholarly.web.add(f"/europepmc_figures/{pmcid}/bin/g002.jpg", Page(
        b"<html><body>Temporarily unavailable</body></html>", 200, {"Content-Type": "text/html"}))
    code, paper, _ = ingest(doi, tmp_path / "c")
    assert code == 1 and paper["outcome"] == "error"
    assert "an HTML page instead of the image" in paper["reason"]


def test_a_figure_server_outage_falls_back_to_the_pdf(scholarly, tmp_path):
    doi, pmcid = "10.5555/figdown2", "PMC777002"
    serve_jats(scholarly, doi, pmcid)
    scholarly.web.add(f"/europepmc_figures/{pmcid}/bin/g001.jpg", DOWN)
    scholarly.add_unpaywall(doi, sw.unpaywall(doi, [(scholarly.url("/pdf/f2.pdf"), "cc-by")]))
    scholarly.add_file("/pdf/f2.pdf", sw.case_pdf(23))
    code, paper, _ = ingest(doi, tmp_path / "c")
    assert code == 0 and (paper["outcome"], paper["added"], paper["source"]) == (
        "added", 2, "unpaywall")


def test_a_malformed_crossref_record_does_not_fail_the_doi(scholarly, tmp_path):
    doi = "10.5555/oddcrossref"
    scholarly.add_unpaywall(doi, sw.unpaywall(doi, [(scholarly.url("/pdf/o.pdf"), "cc-by")]))
    scholarly.add_file("/pdf/o.pdf", sw.case_pdf(12))
    scholarly.add_crossref(doi, json.dumps(
        {"status": "ok", "message": {"title": ["T"], "license": [None], "link": ["x", 3]}}).encode())
    done = subprocess.run(  # a real process: its stderr is what a user sees
        [sys.executable, "-m", "cxrbank", "ingest", "--doi", doi, "--root", str(tmp_path / "c"),
         "--json"], capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    assert done.returncode == 0, done.stderr
    paper = json.loads(done.stdout)["papers"][0]
    assert (paper["outcome"], paper["added"]) == ("added", 2)
    assert done.stderr.splitlines() == [f"{doi}: added 2"]


def test_parsers_skip_entries_that_are_not_objects():
    crossref = resolve.parse_crossref(json.dumps({"status": "ok", "message": {
        "title": "T", "license": [None, {"URL": CC_BY}], "link": [1, {"URL": 5},
                                                                {"URL": "http://x/a.pdf",
                                                                 "content-type": "application/pdf"}]}
    }).encode())
    assert crossref.license == "CC BY 4.0"
    assert [c.url for c in crossref.candidates] == ["http://x/a.pdf"]
    epmc = resolve.parse_europepmc_search(
        json.dumps({"resultList": {"result": [None, "x", {"doi": "10.1/a"}]}}).encode(),
        "10.1/a", "http://e")
    assert epmc.found
    assert resolve.parse_europepmc_search(
        json.dumps({"resultList": "junk"}).encode(), "10.1/a", "http://e").found is False
    biorxiv = resolve.parse_biorxiv(
        json.dumps({"messages": [None], "collection": [None]}).encode(), "10.1101/a", "http://b")
    assert biorxiv.found is False
    unpaywall = resolve.parse_unpaywall(json.dumps(
        {"title": "T", "oa_locations": [None, {"url_for_pdf": ""}, {"url_for_pdf": 7}]}).encode())
    assert unpaywall.found and unpaywall.candidates == []


def test_an_unexpected_response_shape_is_that_services_error_only(scholarly, tmp_path, monkeypatch):
    def broken(body, status=200):
        raise AttributeError("'NoneType' object has no attribute 'get'")

    monkeypatch.setattr(resolve, "parse_crossref", broken)
    doi = "10.5555/shape1"
    scholarly.add_unpaywall(doi, sw.unpaywall(doi, [(scholarly.url("/pdf/s.pdf"), "cc-by")]))
    scholarly.add_file("/pdf/s.pdf", sw.case_pdf(13))
    scholarly.add_crossref(doi, sw.crossref(doi, CC_BY))
    code, paper, err = ingest(doi, tmp_path / "c")
    assert code == 0 and (paper["outcome"], paper["added"]) == ("added", 2)
    assert "Traceback" not in err
