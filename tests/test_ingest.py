"""`cxrbank ingest` end to end through the CLI: local files, and DOIs against the test web."""

from __future__ import annotations

import io
import json
from pathlib import Path

from click.testing import CliRunner
from PIL import Image, ImageDraw

from crawler.state import previous_outcome
from cxrbank import fakeweb as sw
from cxrbank.cli import main
from cxrbank.collection import Collection
from cxrbank.localweb import Page
from cxrbank.schema import COLUMNS

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "case-report.pdf"
CC_BY = "https://creativecommons.org/licenses/by/4.0/"

JATS_DOI = "10.5555/case.jats1"
PDF_DOI = "10.5555/case.pdf2"
CLOSED_DOI = "10.5555/case.closed3"
MISSING_DOI = "10.5555/case.missing4"
BUSY_DOI = "10.5555/case.busy5"
HTML_DOI = "10.5555/case.html6"
TRUNCATED_DOI = "10.5555/case.truncated7"
PRIVATE_DOI = "10.5555/case.private8"
LANDING_DOI = "10.5555/case.landing9"

CASE = ("Case presentation. A 61-year-old woman presented with fever and cough for 5 days. "
        "RT-PCR was positive for SARS-CoV-2 and she was treated for COVID-19 pneumonia.")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def chart_png() -> bytes:
    """A bar chart: a figure that is neither X-ray nor CT."""
    image = Image.new("RGB", (400, 300), "white")
    draw = ImageDraw.Draw(image)
    for i, (height, color) in enumerate([(120, "#1f77b4"), (200, "#ff7f0e"), (90, "#2ca02c")]):
        draw.rectangle((60 + i * 110, 260 - height, 130 + i * 110, 260), fill=color)
    draw.line((40, 260, 380, 260), fill="black", width=2)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def serve_all_cases(s: sw.ScholarlyWeb) -> None:
    """Eight papers, one per way an ingest can go."""
    example = sw.example_module()
    # 1. open access in Europe PMC: JATS + figure files (two chest images and a chart)
    s.add_europepmc(JATS_DOI, pmcid="PMC900001", open_access=True, license_="cc by",
                    title="COVID-19 pneumonia: a case report", abstract=CASE)
    s.add_jats("PMC900001", sw.jats_article(
        JATS_DOI, "PMC900001", "COVID-19 pneumonia: a case report", CASE, CASE, [
            ("Figure 1", "AP chest radiograph on day 5 showing bilateral opacities.", "g001"),
            ("Figure 2", "Axial chest CT showing ground-glass opacities.", "g002"),
            ("Figure 3", "Daily temperature chart.", "g003")]),
        {"g001": example.radiograph_like(seed=11), "g002": example.ct_like(seed=12),
         "g003": chart_png()})
    s.add_unpaywall(JATS_DOI, sw.unpaywall(JATS_DOI, [(s.url("/never/used.pdf"), "cc-by")]))
    s.add_crossref(JATS_DOI, sw.crossref(JATS_DOI, CC_BY))
    # 2. only a PDF, through Unpaywall's second location (the first has a null url_for_pdf)
    s.add_europepmc(PDF_DOI)
    s.add_unpaywall(PDF_DOI, sw.unpaywall(PDF_DOI, [(None, None),
                                                    (s.url("/files/pdf2.pdf"), "cc-by-nc")]))
    s.add_crossref(PDF_DOI, sw.crossref(PDF_DOI, "http://creativecommons.org/licenses/by-nc/4.0"))
    s.add_file("/files/pdf2.pdf", sw.case_pdf(seed=21))
    # 3. known everywhere, open nowhere
    s.add_europepmc(CLOSED_DOI)
    s.add_unpaywall(CLOSED_DOI, sw.unpaywall(CLOSED_DOI, []))
    s.add_crossref(CLOSED_DOI, sw.crossref(CLOSED_DOI))
    s.add_landing(CLOSED_DOI)
    # 4. a DOI nobody knows
    s.add_unpaywall(MISSING_DOI, sw.unpaywall_missing(MISSING_DOI))
    s.add_crossref(MISSING_DOI, Page(b"Resource not found.", 404, {"Content-Type": "text/plain"}))
    # 5. Unpaywall says 429 with Retry-After first, then answers
    s.add_unpaywall(BUSY_DOI, [Page(b'{"error": true}', 429, {**sw.JSON, "Retry-After": "1"}),
                               Page(sw.unpaywall(BUSY_DOI, [(s.url("/files/busy5.pdf"), "cc-by")]),
                                    200, sw.JSON)])
    s.add_file("/files/busy5.pdf", sw.case_pdf(seed=51))
    # 6. the promised PDF is an HTML landing page
    s.add_unpaywall(HTML_DOI, sw.unpaywall(HTML_DOI, [(s.url("/files/html6.pdf"), "cc-by")]))
    s.add_file("/files/html6.pdf", sw.landing_page(HTML_DOI), {"Content-Type": "application/pdf"})
    # 7. a truncated PDF
    s.add_unpaywall(TRUNCATED_DOI, sw.unpaywall(TRUNCATED_DOI,
                                                [(s.url("/files/trunc7.pdf"), "cc-by")]))
    whole = sw.case_pdf(seed=71)
    s.add_file("/files/trunc7.pdf", whole[: len(whole) // 3])
    # 8. the PDF URL redirects to a link-local (cloud metadata) address
    s.add_unpaywall(PRIVATE_DOI, sw.unpaywall(PRIVATE_DOI, [(s.url("/files/priv8.pdf"), "cc-by")]))
    s.add_file("/files/priv8.pdf", Page(b"", 302, {"Location": "http://169.254.169.254/x.pdf"}))
    # 9. no service names a PDF, but the landing page's citation_pdf_url does
    s.add_crossref(LANDING_DOI, sw.crossref(LANDING_DOI, CC_BY))
    s.add_landing(LANDING_DOI, s.url("/articles/landing9/pdf"))
    s.add_file("/articles/landing9/pdf", sw.case_pdf(seed=91))


ALL_DOIS = [JATS_DOI, PDF_DOI, CLOSED_DOI, MISSING_DOI, BUSY_DOI, HTML_DOI, TRUNCATED_DOI,
            PRIVATE_DOI, LANDING_DOI]


def test_ingest_by_doi_handles_every_case_and_keeps_exactly_the_chest_rows(scholarly, tmp_path):
    serve_all_cases(scholarly)
    root = tmp_path / "coll"
    code, out, err = run("ingest", *[a for d in ALL_DOIS for a in ("--doi", d)],
                         "--root", str(root), "--json")
    assert code == 1, err
    papers = {p["doi"] or p["key"]: p for p in json.loads(out)["papers"]}
    outcome = {doi: (papers[doi]["outcome"], papers[doi]["added"]) for doi in ALL_DOIS}
    assert outcome == {
        JATS_DOI: ("added", 2), PDF_DOI: ("added", 2), CLOSED_DOI: ("no open full text", 0),
        MISSING_DOI: ("error", 0), BUSY_DOI: ("added", 2), HTML_DOI: ("no open full text", 0),
        TRUNCATED_DOI: ("error", 0), PRIVATE_DOI: ("error", 0), LANDING_DOI: ("added", 2)}
    assert papers[JATS_DOI]["source"] == "europepmc"
    assert papers[PDF_DOI]["source"] == "unpaywall"
    assert papers[LANDING_DOI]["source"] == "landing"
    assert "not found" in papers[MISSING_DOI]["reason"]
    assert "HTML" in papers[HTML_DOI]["reason"]
    assert "PDF" in papers[TRUNCATED_DOI]["reason"]
    assert "refused" in papers[PRIVATE_DOI]["reason"]
    for doi in (MISSING_DOI, TRUNCATED_DOI, PRIVATE_DOI):
        assert f"Error: {doi}: " in err
    assert f"{JATS_DOI}: added 2\n" in err  # progress lines while the crawl runs
    assert f"{CLOSED_DOI}: no open full text\n" in err
    assert scholarly.web.count("/never/") == 0  # JATS was preferred over the PDF
    assert scholarly.web.count(f"/unpaywall/{BUSY_DOI}") == 2

    collection = Collection.open(root)
    assert collection.header()[: len(COLUMNS)] == list(COLUMNS)
    rows = collection.read_rows()
    assert sorted((r["doi"], r["figure"], r["modality"]) for r in rows) == sorted([
        (PDF_DOI, "Figure 1A", "X-ray"), (PDF_DOI, "Figure 1B", "CT"),
        (JATS_DOI, "Figure 1", "X-ray"), (JATS_DOI, "Figure 2", "CT"),
        (BUSY_DOI, "Figure 1A", "X-ray"), (BUSY_DOI, "Figure 1B", "CT"),
        (LANDING_DOI, "Figure 1A", "X-ray"), (LANDING_DOI, "Figure 1B", "CT")])
    for row in rows:
        assert row["source"] == "paper"
        assert row["url"] == f"https://doi.org/{row['doi']}"
        assert row["source_id"].startswith(row["doi"] + "#Figure-1") or "Figure-2" in row[
            "source_id"]
        assert collection.image_path(row).is_file()
        assert row["clinical_notes"]
    by_doi = {r["doi"]: r for r in rows}
    assert by_doi[JATS_DOI]["license"] == "CC BY"
    assert by_doi[PDF_DOI]["license"] == "CC BY-NC"
    patients = {doi: {r["patientid"] for r in rows if r["doi"] == doi} for doi in by_doi}
    assert all(len(ids) == 1 for ids in patients.values())
    assert len({next(iter(ids)) for ids in patients.values()}) == 4
    assert by_doi[LANDING_DOI]["license"] == "CC BY 4.0"
    jats_ct = next(r for r in rows if r["doi"] == JATS_DOI and r["modality"] == "CT")
    assert jats_ct["finding"] == "Pneumonia/Viral/COVID-19"
    assert jats_ct["age"] == "61" and jats_ct["sex"] == "F"
    assert previous_outcome(collection, TRUNCATED_DOI).outcome == "error"


def test_reingesting_a_doi_adds_nothing_and_force_redoes_it(scholarly, tmp_path):
    serve_all_cases(scholarly)
    root = tmp_path / "coll"
    assert run("ingest", "--doi", PDF_DOI, "--root", str(root))[0] == 0
    requests = len(scholarly.web.requests)
    code, out, _ = run("ingest", "--doi", f"https://doi.org/{PDF_DOI}", "--root", str(root))
    assert code == 0
    assert "already ingested: added 2 on" in out
    assert len(scholarly.web.requests) == requests  # nothing fetched again
    code, out, _ = run("ingest", "--doi", PDF_DOI, "--force", "--root", str(root), "--json")
    assert code == 0
    paper = json.loads(out)["papers"][0]
    assert (paper["outcome"], paper["added"]) == ("added", 0)
    assert "2 skipped (already in the collection)" in paper["reason"]
    assert len(Collection.open(root).read_rows()) == 2


def test_doi_file_with_comments_and_a_bad_line(scholarly, tmp_path):
    serve_all_cases(scholarly)
    listing = tmp_path / "dois.txt"
    listing.write_text(f"# to ingest\n{CLOSED_DOI}  # closed\n\nnot-a-doi\n")
    code, out, err = run("ingest", "--from", str(listing), "--root", str(tmp_path / "c"))
    assert code == 1
    assert "Error: 'not-a-doi' is not a DOI" in err
    assert CLOSED_DOI in out and "no open full text" in out


def test_network_ingest_needs_a_contact(monkeypatch, tmp_path):
    monkeypatch.delenv("CXRBANK_CONTACT", raising=False)
    code, _, err = run("ingest", "--doi", PDF_DOI, "--root", str(tmp_path))
    assert code == 2
    assert "--contact EMAIL or set CXRBANK_CONTACT" in err


def test_bundled_example_pdf_ingests_offline(tmp_path):
    root = tmp_path / "coll"
    code, out, err = run("ingest", "--pdf", str(EXAMPLE), "--root", str(root))
    assert code == 0, err
    assert "added" in out
    rows = Collection.open(root).read_rows()
    assert sorted((r["figure"], r["modality"], r["view"]) for r in rows) == [
        ("Figure 1A", "X-ray", "PA"), ("Figure 1B", "CT", "Axial")]
    for row in rows:
        assert row["license"] == "CC0 1.0"
        assert row["finding"] == "Pneumonia/Viral/COVID-19"
        assert (row["age"], row["sex"], row["offset"]) == ("54", "M", "6")
        assert row["source"] == "paper" and row["source_id"].startswith("sha256:")
    assert len({r["patientid"] for r in rows}) == 1
    code, out, _ = run("ingest", "--pdf", str(EXAMPLE), "--root", str(root))
    assert code == 0 and "already ingested" in out
    assert len(Collection.open(root).read_rows()) == 2


def test_local_jats_reads_figure_files_beside_it(tmp_path):
    example = sw.example_module()
    folder = tmp_path / "paper"
    folder.mkdir()
    (folder / "article.nxml").write_bytes(sw.jats_article(
        "10.5555/local.jats", "PMC1", "COVID-19 pneumonia", CASE, CASE,
        [("Figure 1", "PA chest radiograph.", "fig1"), ("Figure 2", "Axial CT.", "fig2")]))
    (folder / "fig1.jpg").write_bytes(example.radiograph_like(seed=91))
    (folder / "fig2.png").write_bytes(example.ct_like(seed=92))  # a JPEG named .png
    code, _, err = run("ingest", "--jats", str(folder / "article.nxml"),
                         "--root", str(tmp_path / "c"))
    assert code == 0, err
    rows = Collection.open(tmp_path / "c").read_rows()
    assert sorted((r["figure"], r["modality"]) for r in rows) == [
        ("Figure 1", "X-ray"), ("Figure 2", "CT")]
    assert {r["doi"] for r in rows} == {"10.5555/local.jats"}
    assert {r["license"] for r in rows} == {"CC BY 4.0"}
    assert all(r["filename"].endswith(".jpg") for r in rows)


def test_unreadable_local_pdf_is_one_error_line(tmp_path):
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"<html>not a pdf</html>")
    code, _, err = run("ingest", "--pdf", str(bad), "--root", str(tmp_path / "c"))
    assert code == 1
    assert "not a PDF file" in err
    assert Collection.open(tmp_path / "c").read_rows() == []


def test_a_crawl_that_cannot_start_fails_each_doi_in_one_line(scholarly, monkeypatch, tmp_path):
    broken = {**scholarly.overrides, "DOWNLOADER_MIDDLEWARES": {"no.such.Middleware": 10}}
    monkeypatch.setenv("CXRBANK_SCRAPY_SETTINGS", json.dumps(broken))
    code, out, err = run("ingest", "--doi", PDF_DOI, "--root", str(tmp_path / "c"), "--json")
    assert code == 1
    paper = json.loads(out)["papers"][0]
    assert paper["outcome"] == "error" and "the crawl failed" in paper["reason"]
    assert len(err.strip().splitlines()) == 1 and err.startswith("Error: ")
    assert previous_outcome(Collection.open(tmp_path / "c"), PDF_DOI).outcome == "error"


def test_local_pdf_with_a_doi_counts_as_that_paper(scholarly, tmp_path):
    root = tmp_path / "coll"
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(sw.case_pdf(seed=31))
    code, _, err = run("ingest", "--pdf", str(pdf), "--doi", f"doi:{PDF_DOI}", "--root", str(root))
    assert code == 0, err
    rows = Collection.open(root).read_rows()
    assert {(r["doi"], r["url"]) for r in rows} == {(PDF_DOI, f"https://doi.org/{PDF_DOI}")}
    assert sorted(r["source_id"] for r in rows) == [f"{PDF_DOI}#Figure-1A", f"{PDF_DOI}#Figure-1B"]
    code, out, _ = run("ingest", "--doi", PDF_DOI, "--root", str(root))
    assert code == 0 and "already ingested" in out
    assert len(scholarly.web.requests) == 0


def test_metadata_only_jats_falls_back_to_the_pdf(scholarly, tmp_path):
    doi = "10.5555/case.metaonly10"
    scholarly.add_europepmc(doi, pmcid="PMC900010", open_access=True, license_="cc by")
    front_only = (b'<?xml version="1.0"?><article><front><article-meta><article-id '
                  b'pub-id-type="doi">10.5555/case.metaonly10</article-id></article-meta>'
                  b"</front></article>")
    scholarly.add_jats("PMC900010", front_only, {})
    scholarly.add_unpaywall(doi, sw.unpaywall(doi, [(scholarly.url("/files/m10.pdf"), "cc-by")]))
    scholarly.add_file("/files/m10.pdf", sw.case_pdf(seed=101))
    code, out, err = run("ingest", "--doi", doi, "--root", str(tmp_path / "c"), "--json")
    assert code == 0, err
    paper = json.loads(out)["papers"][0]
    assert (paper["outcome"], paper["added"], paper["source"]) == ("added", 2, "unpaywall")
