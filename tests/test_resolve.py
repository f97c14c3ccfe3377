"""DOI resolution: request URLs, each service's parser, candidate order, licences."""

from __future__ import annotations

import json

import pytest

from crawler import resolve
from cxrbank import fakeweb as sw

EPMC = "http://127.0.0.1:1/europepmc"


def test_normalize_doi_accepts_common_spellings():
    assert resolve.normalize_doi("https://doi.org/10.1016/J.TMAID.2020.101663") == (
        "10.1016/j.tmaid.2020.101663")
    assert resolve.normalize_doi("doi: 10.1038/srep16696.") == "10.1038/srep16696"
    for bad in ("", "10.1/x", "not a doi", "10.12345/" + "x" * 400):
        with pytest.raises(ValueError):
            resolve.normalize_doi(bad)


def test_doi_list_skips_comments_and_blank_lines():
    text = "# papers\n10.1038/srep16696\n\n  doi:10.1371/journal.pone.0033693  # PLOS\n"
    assert resolve.read_doi_list(text) == ["10.1038/srep16696", "10.1371/journal.pone.0033693"]


@pytest.mark.parametrize(("value", "expected"), [
    ("https://creativecommons.org/licenses/by/4.0", "CC BY 4.0"),
    ("http://creativecommons.org/licenses/by-nc-nd/3.0/", "CC BY-NC-ND 3.0"),
    ("cc by-nc-nd", "CC BY-NC-ND"),
    ("cc_by_nc_nd", "CC BY-NC-ND"),
    ("cc-by", "CC BY"),
    ("https://creativecommons.org/publicdomain/zero/1.0/", "CC0 1.0"),
    ("under the Creative Commons Attribution-NonCommercial 4.0 License", "CC BY-NC 4.0"),
    ("implied-oa", ""),
    (None, ""),
])
def test_licences_are_normalised(value, expected):
    assert resolve.normalize_license(value) == expected


def test_europepmc_open_access_record_gives_jats_with_licence():
    body = sw.europepmc_search("DOI:x", [sw.europepmc_result(
        "10.5555/a.1", pmcid="PMC42", open_access=True, license_="cc by",
        abstract="A 60-year-old")])
    lookup = resolve.parse_europepmc_search(body, "10.5555/a.1", EPMC)
    assert lookup.found and lookup.license == "CC BY" and lookup.abstract == "A 60-year-old"
    assert [(c.kind, c.url, c.pmcid) for c in lookup.candidates] == [
        ("jats", f"{EPMC}/PMC42/fullTextXML", "PMC42")]


def test_europepmc_closed_record_and_error_inside_200():
    body = sw.europepmc_search("q", [sw.europepmc_result("10.5555/a.1", pmcid="PMC42")])
    lookup = resolve.parse_europepmc_search(body, "10.5555/a.1", EPMC)
    assert lookup.found and lookup.candidates == []
    with pytest.raises(resolve.ResolveError, match="Internal query error"):
        resolve.parse_europepmc_search(b'{"errCode": 500, "errMsg": "Internal query error"}',
                                       "10.5555/a.1", EPMC)


def test_unpaywall_skips_null_pdf_urls_and_knows_unknown_dois():
    body = sw.unpaywall("10.5555/b", [(None, None), ("http://x/b.pdf", "cc-by")])
    lookup = resolve.parse_unpaywall(body)
    assert [(c.url, c.license) for c in lookup.candidates] == [("http://x/b.pdf", "CC BY")]
    missing = sw.unpaywall_missing("10.5555/b")
    assert not resolve.parse_unpaywall(missing.body, 404).found
    assert not resolve.parse_unpaywall(missing.body, 200).found


def test_crossref_pdf_links_and_version_of_record_licence():
    body = sw.crossref("10.5555/c", "https://creativecommons.org/licenses/by/4.0",
                       ("http://x/c.pdf",), abstract="Chest X-ray showed opacities.")
    lookup = resolve.parse_crossref(body)
    assert lookup.license == "CC BY 4.0" and lookup.abstract == "Chest X-ray showed opacities."
    assert [c.url for c in lookup.candidates] == ["http://x/c.pdf"]
    assert not resolve.parse_crossref(b"Resource not found.", 404).found
    with pytest.raises(resolve.ResolveError):
        resolve.parse_crossref(b"<html>oops</html>")


def test_biorxiv_latest_version_and_empty_body():
    body = json.dumps({"messages": [{"status": "ok"}], "collection": [
        {"doi": "10.1101/2020.01.01.1", "version": "1", "license": "cc_by", "server": "medRxiv",
         "title": "T", "abstract": "A"},
        {"doi": "10.1101/2020.01.01.1", "version": "2", "license": "cc_by_nc_nd",
         "server": "medRxiv", "title": "T2", "abstract": "A2"}]}).encode()
    lookup = resolve.parse_biorxiv(body, "10.1101/2020.01.01.1", "https://www.{server}.org")
    assert lookup.license == "CC BY-NC-ND" and lookup.title == "T2"
    assert lookup.candidates[0].url == (
        "https://www.medrxiv.org/content/10.1101/2020.01.01.1v2.full.pdf")
    assert not resolve.parse_biorxiv(b"", "10.1101/2020.01.01.1", "x").found
    assert resolve.biorxiv_urls("B", "10.1016/x") == []


def test_citation_pdf_url_is_made_absolute():
    page = b'<html><head><meta content="/content/a.pdf" name="citation_pdf_url"></head></html>'
    assert resolve.citation_pdf_url(page, "https://pub.example/article/1") == (
        "https://pub.example/content/a.pdf")
    assert resolve.citation_pdf_url(b"<html></html>", "https://pub.example/") is None


def test_candidates_ordered_jats_first_without_repeats_and_licence_borrowed():
    jats = resolve.Candidate("http://e/x", "jats", "europepmc", "CC BY")
    lookups = [
        resolve.Lookup("crossref", True, license="CC BY 4.0",
                       candidates=[resolve.Candidate("http://p/x.pdf", "pdf", "crossref")]),
        resolve.Lookup("unpaywall", True,
                       candidates=[resolve.Candidate("http://p/x.pdf", "pdf", "unpaywall")]),
        resolve.Lookup("europepmc", True, license="CC BY", candidates=[jats]),
    ]
    ordered = resolve.order_candidates(lookups)
    assert [(c.source, c.url) for c in ordered] == [
        ("europepmc", "http://e/x"), ("unpaywall", "http://p/x.pdf")]
    assert ordered[1].license == "CC BY"


@pytest.mark.realdata
def test_real_service_responses_parse(shared_data):
    api = shared_data / "api"
    srep = resolve.parse_crossref((api / "crossref_works_10.1038_srep16696.json").read_bytes())
    assert srep.license == "CC BY 4.0"
    assert srep.candidates[0].url == "https://www.nature.com/articles/srep16696.pdf"
    elsevier = resolve.parse_crossref(
        (api / "crossref_works_10.1016_j.neurobiolaging.2010.03.024.json").read_bytes())
    assert elsevier.found and elsevier.license != "CC BY 4.0"
    bronze = resolve.parse_unpaywall(
        (api / "unpaywall_v2_10.1016_j.tmaid.2020.101663.json").read_bytes())
    assert bronze.found and bronze.candidates == []
    green = resolve.parse_unpaywall((api / "unpaywall_v2_10.1038_nature12373.json").read_bytes())
    assert green.candidates[0].url.startswith("https://dash.harvard.edu/")
    search = (api / "europepmc_search_core_trimmed.json").read_bytes()
    oa = resolve.parse_europepmc_search(search, "10.1002/hpja.70059", EPMC)
    assert oa.license == "CC BY-NC-ND" and oa.candidates[0].pmcid == "PMC12120539"
    closed = resolve.parse_europepmc_search(search, "10.1016/s0140-6736(24)02716-8", EPMC)
    assert closed.found and closed.candidates == []
    preprint = json.loads((api / "biorxiv_details_2026-08-01_trimmed.json").read_text())
    doi = preprint["collection"][0]["doi"]
    lookup = resolve.parse_biorxiv(json.dumps(preprint).encode(), doi, "https://www.{server}.org")
    assert lookup.license == "CC BY-NC-ND" and lookup.candidates
