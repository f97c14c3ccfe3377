"""The schema: upstream's columns first, the finding taxonomy, vocabularies."""

from __future__ import annotations

import pytest

from cxrbank.schema import (
    COLUMNS,
    FINDINGS,
    SYNONYMS,
    UPSTREAM_COLUMNS,
    canonical_finding,
    expand_labels,
    label_vocabulary,
    normalize_modality,
    normalize_sex,
    normalize_view,
)


def test_upstream_columns_come_first_in_upstream_order() -> None:
    assert len(UPSTREAM_COLUMNS) == 29
    assert COLUMNS[:29] == UPSTREAM_COLUMNS
    assert UPSTREAM_COLUMNS[4:6] == ("finding", "RT_PCR_positive")
    assert UPSTREAM_COLUMNS[-2:] == ("clinical_notes", "other_notes")
    assert len(set(COLUMNS)) == len(COLUMNS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("COVID-19", "Pneumonia/Viral/COVID-19"),
        ("2019-nCoV", "Pneumonia/Viral/COVID-19"),
        ("SARS-CoV-2", "Pneumonia/Viral/COVID-19"),
        ("novel coronavirus pneumonia", "Pneumonia/Viral/COVID-19"),
        ("COVID-19, ARDS", "Pneumonia/Viral/COVID-19"),
        ("Streptococcus", "Pneumonia/Bacterial/Streptococcus"),
        ("Mycoplasma Bacterial Pneumonia", "Pneumonia/Bacterial/Mycoplasma"),
        ("Pneumocystis jirovecii", "Pneumonia/Fungal/Pneumocystis"),
        ("Pneumonia/Viral/Herpes ", "Pneumonia/Viral/Herpes"),
        ("pneumonia / viral / covid-19", "Pneumonia/Viral/COVID-19"),
        ("No Finding", "No Finding"),
        ("todo", "todo"),
        ("Unknown", "todo"),
        ("", ""),
        ("Scurvy", None),
    ],
)
def test_canonical_finding_maps_flat_hierarchical_and_synonyms(value: str, expected: str | None) -> None:
    assert canonical_finding(value) == expected


def test_every_synonym_points_at_a_known_finding() -> None:
    assert set(SYNONYMS.values()) <= set(FINDINGS)


def test_labels_expand_like_torchxrayvision() -> None:
    assert expand_labels("Pneumonia/Viral/COVID-19") == ["Pneumonia", "Viral", "COVID-19"]
    assert expand_labels("todo") == []
    assert label_vocabulary(["Pneumonia/Viral/SARS", "No Finding", "todo"]) == [
        "No Finding", "Pneumonia", "SARS", "Viral"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("PA", "PA"), ("ap supine", "AP Supine"), ("AP_Supine", "AP Supine"), ("Lateral", "L"),
     ("?", ""), ("", ""), ("axial", "Axial"), ("oblique", "")],
)
def test_views_normalise_to_the_vocabulary(value: str, expected: str) -> None:
    assert normalize_view(value) == expected


def test_sex_and_modality_normalise() -> None:
    assert [normalize_sex(v) for v in ("male", "F", "woman", "", "x")] == ["M", "F", "F", "", ""]
    assert [normalize_modality(v) for v in ("xray", "CT", "MRI")] == ["X-ray", "CT", ""]
