"""extract.jats: article metadata, licence, exact figure captions and figure records."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from extract.jats import (
    JatsError,
    figures_from_jats,
    parse_jats,
    strip_extension,
    unreadable_graphics,
)
from tests.fixtures.casereport import composite_array, ct_array, encode, radiograph_array

ARTICLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE article PUBLIC "-//NLM//DTD JATS (Z39.96) Journal Publishing DTD v1.2 20190208//EN"
  "JATS-journalpublishing1.dtd">
<article xmlns:xlink="http://www.w3.org/1999/xlink"
         xmlns:ali="http://www.niso.org/schemas/ali/1.0/" article-type="case-report">
<front><article-meta>
  <article-id pub-id-type="pmid">123</article-id>
  <article-id pub-id-type="doi">10.1234/crj.2020.42</article-id>
  <title-group><article-title>COVID-19 pneumonia in a <italic>young</italic> adult</article-title>
  </title-group>
  <permissions><copyright-year>2020</copyright-year>
    <license license-type="open-access">
      <ali:license_ref>https://creativecommons.org/licenses/by/4.0/</ali:license_ref>
      <license-p>This article is distributed under CC BY 4.0.</license-p></license>
  </permissions>
  <abstract><p>A 34-year-old woman with fever.</p><p>She recovered.</p></abstract>
</article-meta></front>
<body><sec><title>Case</title>
  <p>A 34-year-old woman presented with fever and cough (<xref ref-type="fig" rid="f1">Figure
  1</xref>).</p>
  <fig id="f1"><label>Figure 1</label>
    <caption><title>Admission imaging</title><p>(A) PA radiograph. (B) Axial CT.</p></caption>
    <graphic xlink:href="crj-42-g001"/></fig>
  <fig id="f2"><label>Fig. 2</label><caption><p>Follow-up radiograph on day 9.</p></caption>
    <alternatives><graphic xlink:href="crj-42-g002.jpg"/>
    <graphic xlink:href="crj-42-g002.jpg" specific-use="print"/></alternatives></fig>
  <fig-group id="g3"><label>Figure 3</label><caption><p>Imaging on day 14.</p></caption>
    <fig id="f3a"><caption><p>Radiograph.</p></caption><graphic xlink:href="crj-42-g003a"/></fig>
    <fig id="f3b"><caption><p>CT.</p></caption><graphic xlink:href="crj-42-g003b"/></fig>
  </fig-group>
  <p>She was discharged on day 16.</p>
</sec></body></article>
"""


def test_article_metadata_and_licence_url():
    article = parse_jats(ARTICLE)
    assert article.title == "COVID-19 pneumonia in a young adult"
    assert article.doi == "10.1234/crj.2020.42"
    assert article.license == "https://creativecommons.org/licenses/by/4.0/"
    assert article.abstract == "A 34-year-old woman with fever. She recovered."
    assert article.body_text.splitlines() == [
        "A 34-year-old woman presented with fever and cough (Figure 1).",
        "She was discharged on day 16."]


def test_figures_with_labels_exact_captions_and_hrefs_without_extension():
    figs = parse_jats(ARTICLE).figures
    assert [(f.label, f.graphics) for f in figs] == [
        ("Figure 1", ["crj-42-g001"]), ("Figure 2", ["crj-42-g002"]),
        ("Figure 3", ["crj-42-g003a"]), ("Figure 3", ["crj-42-g003b"])]
    assert figs[0].caption == "Admission imaging. (A) PA radiograph. (B) Axial CT."
    assert figs[2].caption == "Imaging on day 14. Radiograph." and figs[2].group == "g3"
    assert [(f.panel, f.panel_caption) for f in figs[2:]] == [("A", "Radiograph."), ("B", "CT.")]


def test_figures_from_jats_splits_a_composite_and_keeps_single_images():
    composite, boxes = composite_array(0, (1, 2))
    single = encode(radiograph_array(1))
    images = {"crj-42-g001": encode(composite, "PNG"), "crj-42-g002": single,
              "crj-42-g003a": encode(radiograph_array(2)), "crj-42-g003b": encode(ct_array(2))}
    figures = figures_from_jats(parse_jats(ARTICLE), images)
    got = [(f.label, f.panel, f.panel_caption) for f in figures]
    assert got == [("Figure 1", "A", "PA radiograph"), ("Figure 1", "B", "Axial CT"),
                   ("Figure 2", None, None), ("Figure 3", "A", "Radiograph."),
                   ("Figure 3", "B", "CT.")]
    assert [tuple(int(v) for v in f.bbox) for f in figures[:2]] == boxes
    assert figures[2].image == single and figures[2].extension == "jpg"
    whole = figures_from_jats(parse_jats(ARTICLE), images, split_panels=False)
    assert [f.panel for f in whole] == [None, None, "A", "B"]  # fig-group members stay panels


def test_missing_image_leaves_the_figure_out():
    figures = figures_from_jats(parse_jats(ARTICLE), {"crj-42-g002": encode(ct_array(0))})
    assert [f.label for f in figures] == ["Figure 2"]
    with Image.open(io.BytesIO(figures[0].image)) as im:
        assert (figures[0].width, figures[0].height) == im.size


@pytest.mark.parametrize("data", [b"", b"<html><body>not jats</body></html>", b"<article><"])
def test_not_jats_is_one_clear_error(data):
    with pytest.raises(JatsError):
        parse_jats(data)


def test_entity_expansion_is_not_performed():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE article [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">'
            b']><article><front><article-meta><title-group><article-title>&c;</article-title>'
            b"</title-group></article-meta></front></article>")
    article = parse_jats(bomb)
    assert len(article.title) < 100


def test_strip_extension_keeps_dotted_names():
    assert strip_extension("pone.0046493.g001.tif") == "pone.0046493.g001"
    assert strip_extension("pone.0046493.g001") == "pone.0046493.g001"


@pytest.mark.realdata
def test_plos_article_figures_and_licence(shared_data):
    article = parse_jats((shared_data / "api" / "jats_plos_pone.0046493.nxml").read_bytes())
    assert article.doi == "10.1371/journal.pone.0046493"
    assert article.license.startswith("This is an open-access article distributed under")
    assert [f.label for f in article.figures] == [f"Figure {n}" for n in range(1, 5)]
    assert article.figures[0].graphics == ["pone.0046493.g001"]
    assert article.figures[0].caption.startswith("Chemical structure of inhibitors. Chemical")
    assert "Tetrahydrolipstatin (THL, Figure 1A)" in article.body_text
    assert "Nucleophilic sites attacked" not in article.body_text  # captions stay out


def test_unreadable_graphics_say_why_and_keep_the_other_panels_letters():
    images = {"crj-42-g001": b"", "crj-42-g002": b"<html>not an image</html>",
              "crj-42-g003b": encode(ct_array(2))}
    assert unreadable_graphics(parse_jats(ARTICLE), images) == [
        ("crj-42-g001", "empty file (0 bytes)"), ("crj-42-g002", "not a readable image"),
        ("crj-42-g003a", "no image file")]
    figures = figures_from_jats(parse_jats(ARTICLE), images)
    assert [(f.label, f.panel) for f in figures] == [("Figure 3", "B")]


def _fig_group(n: int, labels: tuple[str, str]) -> str:
    return (f'<fig-group id="g{n}"><label>Figure {n}</label><caption><p>Patient {n}.</p>'
            f'</caption><fig id="f{n}a"><label>{labels[0]}</label><caption><p>Radiograph.</p>'
            f'</caption><graphic xlink:href="g{n}a"/></fig><fig id="f{n}b"><label>{labels[1]}'
            f'</label><caption><p>Axial CT.</p></caption><graphic xlink:href="g{n}b"/></fig>'
            '</fig-group>')


def test_fig_group_sub_figures_labelled_by_letter_are_panels_of_the_group_figure():
    xml = ('<article xmlns:xlink="http://www.w3.org/1999/xlink"><body>'
           + _fig_group(1, ("A", "B")) + _fig_group(2, ("(a)", "b.")) + "</body></article>")
    article = parse_jats(xml.encode())
    assert [(f.label, f.panel, f.panel_caption) for f in article.figures] == [
        ("Figure 1", "A", "Radiograph."), ("Figure 1", "B", "Axial CT."),
        ("Figure 2", "A", "Radiograph."), ("Figure 2", "B", "Axial CT.")]
    images = {f"g{n}{p}": encode(radiograph_array(n)) for n in (1, 2) for p in "ab"}
    figures = figures_from_jats(article, images)
    keys = [(f.label, f.panel) for f in figures]
    assert keys == [("Figure 1", "A"), ("Figure 1", "B"), ("Figure 2", "A"), ("Figure 2", "B")]


def test_fig_group_sub_figure_with_its_own_figure_label_keeps_it():
    xml = ('<article xmlns:xlink="http://www.w3.org/1999/xlink"><body>'
           + _fig_group(1, ("Figure 1a", "Figure 1b")) + "</body></article>")
    article = parse_jats(xml.encode())
    assert [(f.label, f.panel) for f in article.figures] == [
        ("Figure 1a", None), ("Figure 1b", None)]
