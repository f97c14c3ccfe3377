"""The row schema of metadata.csv: columns, vocabularies and the finding taxonomy."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Upstream's 29 columns (ieee8023/covid-chestxray-dataset), in upstream order and spelling.
UPSTREAM_COLUMNS: tuple[str, ...] = (
    "patientid", "offset", "sex", "age", "finding", "RT_PCR_positive", "survival", "intubated",
    "intubation_present", "went_icu", "in_icu", "needed_supplemental_O2", "extubated",
    "temperature", "pO2_saturation", "leukocyte_count", "neutrophil_count", "lymphocyte_count",
    "view", "modality", "date", "location", "folder", "filename", "doi", "url", "license",
    "clinical_notes", "other_notes",
)
# cxrbank's provenance columns, after upstream's.
PROVENANCE_COLUMNS: tuple[str, ...] = (
    "source",     # paper, radiopaedia, issue, manual, upstream
    "source_id",  # DOI + figure/panel, or Radiopaedia rID/study/image
    "figure",     # "Figure 2B" for paper rows
    "volume",     # volumes/<name>.nii.gz for a CT row whose whole stack was kept
    "sha256",     # of the image file's bytes
    "width",
    "height",
    "added",      # ISO date the row entered the collection
)
COLUMNS: tuple[str, ...] = UPSTREAM_COLUMNS + PROVENANCE_COLUMNS

SOURCES: tuple[str, ...] = ("paper", "radiopaedia", "issue", "manual", "upstream")
XRAY_VIEWS: tuple[str, ...] = ("PA", "AP", "AP Supine", "AP Erect", "L")
CT_VIEWS: tuple[str, ...] = ("Axial", "Coronal")
VIEWS: tuple[str, ...] = XRAY_VIEWS + CT_VIEWS
MODALITIES: tuple[str, ...] = ("X-ray", "CT")
SEXES: tuple[str, ...] = ("M", "F")
YES_NO_COLUMNS: tuple[str, ...] = (
    "RT_PCR_positive", "survival", "intubated", "intubation_present", "went_icu", "in_icu",
    "needed_supplemental_O2", "extubated",
)
NUMERIC_COLUMNS: tuple[str, ...] = (
    "offset", "age", "temperature", "pO2_saturation", "leukocyte_count", "neutrophil_count",
    "lymphocyte_count", "width", "height",
)
TODO = "todo"
NO_FINDING = "No Finding"

# Every finding the collection uses, hierarchical, as upstream's newest metadata spells them.
FINDINGS: tuple[str, ...] = (
    "Pneumonia",
    "Pneumonia/Viral",
    "Pneumonia/Viral/COVID-19",
    "Pneumonia/Viral/SARS",
    "Pneumonia/Viral/MERS-CoV",
    "Pneumonia/Viral/Influenza",
    "Pneumonia/Viral/Influenza/H1N1",
    "Pneumonia/Viral/Varicella",
    "Pneumonia/Viral/Herpes",
    "Pneumonia/Bacterial",
    "Pneumonia/Bacterial/Streptococcus",
    "Pneumonia/Bacterial/Klebsiella",
    "Pneumonia/Bacterial/Legionella",
    "Pneumonia/Bacterial/Mycoplasma",
    "Pneumonia/Bacterial/Chlamydophila",
    "Pneumonia/Bacterial/E.Coli",
    "Pneumonia/Bacterial/Nocardia",
    "Pneumonia/Bacterial/Staphylococcus/MRSA",
    "Pneumonia/Fungal/Pneumocystis",
    "Pneumonia/Fungal/Aspergillosis",
    "Pneumonia/Aspiration",
    "Pneumonia/Lipoid",
    "Tuberculosis",
    "ARDS",
    NO_FINDING,
    TODO,
)

# Names a finding goes by in text and in older metadata -> the hierarchical finding.
# Keys are matched case-insensitively on word boundaries by facts extraction, and exactly
# (after case folding) by canonical_finding().
SYNONYMS: dict[str, str] = {
    # COVID-19
    "covid-19": "Pneumonia/Viral/COVID-19",
    "covid19": "Pneumonia/Viral/COVID-19",
    "covid 19": "Pneumonia/Viral/COVID-19",
    "covid": "Pneumonia/Viral/COVID-19",
    "2019-ncov": "Pneumonia/Viral/COVID-19",
    "2019 novel coronavirus": "Pneumonia/Viral/COVID-19",
    "sars-cov-2": "Pneumonia/Viral/COVID-19",
    "sars-cov2": "Pneumonia/Viral/COVID-19",
    "sars cov 2": "Pneumonia/Viral/COVID-19",
    "sars-cov-2 pneumonia": "Pneumonia/Viral/COVID-19",
    "novel coronavirus pneumonia": "Pneumonia/Viral/COVID-19",
    "novel coronavirus": "Pneumonia/Viral/COVID-19",
    "ncp": "Pneumonia/Viral/COVID-19",
    "coronavirus disease 2019": "Pneumonia/Viral/COVID-19",
    "coronavirus disease-19": "Pneumonia/Viral/COVID-19",
    "wuhan coronavirus": "Pneumonia/Viral/COVID-19",
    "covid-19, ards": "Pneumonia/Viral/COVID-19",
    # other viral
    "sars": "Pneumonia/Viral/SARS",
    "severe acute respiratory syndrome": "Pneumonia/Viral/SARS",
    "mers": "Pneumonia/Viral/MERS-CoV",
    "mers-cov": "Pneumonia/Viral/MERS-CoV",
    "middle east respiratory syndrome": "Pneumonia/Viral/MERS-CoV",
    "influenza": "Pneumonia/Viral/Influenza",
    "flu": "Pneumonia/Viral/Influenza",
    "h1n1": "Pneumonia/Viral/Influenza/H1N1",
    "swine flu": "Pneumonia/Viral/Influenza/H1N1",
    "varicella": "Pneumonia/Viral/Varicella",
    "varicella pneumonia": "Pneumonia/Viral/Varicella",
    "chickenpox": "Pneumonia/Viral/Varicella",
    "herpes": "Pneumonia/Viral/Herpes",
    "herpes simplex": "Pneumonia/Viral/Herpes",
    "viral pneumonia": "Pneumonia/Viral",
    "viral": "Pneumonia/Viral",
    # bacterial
    "bacterial pneumonia": "Pneumonia/Bacterial",
    "bacterial": "Pneumonia/Bacterial",
    "streptococcus": "Pneumonia/Bacterial/Streptococcus",
    "streptococcus pneumoniae": "Pneumonia/Bacterial/Streptococcus",
    "pneumococcal pneumonia": "Pneumonia/Bacterial/Streptococcus",
    "pneumococcus": "Pneumonia/Bacterial/Streptococcus",
    "klebsiella": "Pneumonia/Bacterial/Klebsiella",
    "klebsiella pneumoniae": "Pneumonia/Bacterial/Klebsiella",
    "legionella": "Pneumonia/Bacterial/Legionella",
    "legionnaires' disease": "Pneumonia/Bacterial/Legionella",
    "legionnaires disease": "Pneumonia/Bacterial/Legionella",
    "mycoplasma": "Pneumonia/Bacterial/Mycoplasma",
    "mycoplasma pneumoniae": "Pneumonia/Bacterial/Mycoplasma",
    "mycoplasma pneumonia": "Pneumonia/Bacterial/Mycoplasma",
    "mycoplasma bacterial pneumonia": "Pneumonia/Bacterial/Mycoplasma",
    "chlamydophila": "Pneumonia/Bacterial/Chlamydophila",
    "chlamydia pneumoniae": "Pneumonia/Bacterial/Chlamydophila",
    "chlamydophila pneumoniae": "Pneumonia/Bacterial/Chlamydophila",
    "e.coli": "Pneumonia/Bacterial/E.Coli",
    "e. coli": "Pneumonia/Bacterial/E.Coli",
    "escherichia coli": "Pneumonia/Bacterial/E.Coli",
    "nocardia": "Pneumonia/Bacterial/Nocardia",
    "nocardiosis": "Pneumonia/Bacterial/Nocardia",
    "mrsa": "Pneumonia/Bacterial/Staphylococcus/MRSA",
    "methicillin-resistant staphylococcus aureus": "Pneumonia/Bacterial/Staphylococcus/MRSA",
    # fungal
    "pneumocystis": "Pneumonia/Fungal/Pneumocystis",
    "pneumocystis jirovecii": "Pneumonia/Fungal/Pneumocystis",
    "pneumocystis jiroveci": "Pneumonia/Fungal/Pneumocystis",
    "pneumocystis carinii": "Pneumonia/Fungal/Pneumocystis",
    "pneumocystis pneumonia": "Pneumonia/Fungal/Pneumocystis",
    "pcp": "Pneumonia/Fungal/Pneumocystis",
    "aspergillosis": "Pneumonia/Fungal/Aspergillosis",
    "aspergillus": "Pneumonia/Fungal/Aspergillosis",
    # other
    "aspiration pneumonia": "Pneumonia/Aspiration",
    "aspiration": "Pneumonia/Aspiration",
    "lipoid": "Pneumonia/Lipoid",
    "lipoid pneumonia": "Pneumonia/Lipoid",
    "pneumonia": "Pneumonia",
    "tuberculosis": "Tuberculosis",
    "tb": "Tuberculosis",
    "pulmonary tuberculosis": "Tuberculosis",
    "ards": "ARDS",
    "acute respiratory distress syndrome": "ARDS",
    "no finding": NO_FINDING,
    "no findings": NO_FINDING,
    "normal": NO_FINDING,
    "todo": TODO,
    "unknown": TODO,
}

_CANONICAL_BY_FOLDED: dict[str, str] = {f.casefold(): f for f in FINDINGS}


def canonical_finding(value: str | None) -> str | None:
    """The hierarchical finding for a stored value (hierarchical, upstream flat, or a synonym).

    Whitespace is trimmed (upstream has "Pneumonia/Viral/Herpes "). Returns None for a value
    the taxonomy does not know, and "" for blank.
    """
    if value is None:
        return ""
    text = " ".join(str(value).split())
    if not text:
        return ""
    folded = text.casefold()
    if folded in _CANONICAL_BY_FOLDED:
        return _CANONICAL_BY_FOLDED[folded]
    if folded in SYNONYMS:
        return SYNONYMS[folded]
    # Hierarchical values whose parts carry stray spaces: "Pneumonia / Viral / COVID-19".
    parts = "/".join(p.strip() for p in text.split("/")).casefold()
    return _CANONICAL_BY_FOLDED.get(parts)


def is_reviewed(finding: str) -> bool:
    """False for `todo` and blank findings (torchxrayvision drops those rows)."""
    return bool(finding.strip()) and finding.strip() not in (TODO, "Unknown")


def expand_labels(finding: str) -> list[str]:
    """The labels of one finding, as torchxrayvision counts them: each `/` token is a label."""
    if not is_reviewed(finding):
        return []
    return [token for token in finding.split("/") if token]


def label_vocabulary(findings: Iterable[str]) -> list[str]:
    """Sorted labels over many findings (torchxrayvision's `pathologies`)."""
    labels: set[str] = set()
    for finding in findings:
        labels.update(expand_labels(finding))
    return sorted(labels)


_VIEW_SPELLINGS: dict[str, str] = {
    "pa": "PA",
    "posteroanterior": "PA",
    "postero-anterior": "PA",
    "ap": "AP",
    "anteroposterior": "AP",
    "antero-posterior": "AP",
    "ap supine": "AP Supine",
    "supine ap": "AP Supine",
    "ap erect": "AP Erect",
    "erect ap": "AP Erect",
    "ap upright": "AP Erect",
    "l": "L",
    "lateral": "L",
    "ll": "L",
    "lat": "L",
    "axial": "Axial",
    "transverse": "Axial",
    "coronal": "Coronal",
}


def normalize_view(value: str | None) -> str:
    """A view in the collection's vocabulary, or "" when unknown ("?" and the like)."""
    if not value:
        return ""
    text = re.sub(r"[\s_]+", " ", str(value)).strip().casefold()
    return _VIEW_SPELLINGS.get(text, "")


_MODALITY_SPELLINGS: dict[str, str] = {
    "x-ray": "X-ray",
    "xray": "X-ray",
    "x ray": "X-ray",
    "cr": "X-ray",
    "dx": "X-ray",
    "radiograph": "X-ray",
    "ct": "CT",
    "computed tomography": "CT",
}


def normalize_modality(value: str | None) -> str:
    """X-ray, CT, or "" for anything else."""
    if not value:
        return ""
    return _MODALITY_SPELLINGS.get(" ".join(str(value).split()).casefold(), "")


def normalize_sex(value: str | None) -> str:
    """M, F, or ""."""
    text = (value or "").strip().casefold()
    if text in ("m", "male", "man", "boy"):
        return "M"
    if text in ("f", "female", "woman", "girl"):
        return "F"
    return ""


def normalize_yes_no(value: str | None) -> str:
    """Y, N, or "" (upstream's "Not visible" and the like are not a yes or a no)."""
    text = (value or "").strip().casefold()
    if text in ("y", "yes", "true", "1"):
        return "Y"
    if text in ("n", "no", "false", "0"):
        return "N"
    return ""


def blank_row() -> dict[str, str]:
    """A row with every column present and empty."""
    return dict.fromkeys(COLUMNS, "")
