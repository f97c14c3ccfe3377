"""Tests for extract.facts: patient facts from captions and case text."""

from __future__ import annotations

import csv

import pytest

from extract.facts import Facts, extract_facts, facts_for_panel, facts_of_text


def one(text: str) -> Facts:
    found = extract_facts(text)
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize(("text", "age"), [
    ("A 65-year-old man presented with fever.", 65),
    ("The patient, aged 47, had a cough.", 47),
    ("52 yo female with dyspnoea", 52),
    ("Male patient, 47 years old, with pyrexia.", 47),
    ("A sixty-five-year-old woman presented to the emergency department.", 65),
    ("A man of 72 was admitted.", 72),
    ("Case 2 (37 years old) was the son of Case 1.", 37),
    ("65M with cough and fever.", 65),
    ("An 8-month-old boy with bronchiolitis.", 0),
])
def test_age_phrasings(text: str, age: int) -> None:
    facts = facts_of_text(text)
    assert facts.age == age
    assert facts.evidence["age"]


@pytest.mark.parametrize("text", [
    "A man in his 60s presented with cough.",
    "Elderly male, covid-19 positive.",
    "He had a 4-day history of cough and had smoked for 30 years.",
    "A mean age of 54 years was reported.",
])
def test_no_age_when_text_gives_none(text: str) -> None:
    assert facts_of_text(text).age is None


def test_age_of_relative_is_not_the_patients() -> None:
    facts = facts_of_text("Her 59-year-old daughter lives with her. The 83-year-old woman ...")
    assert facts.age == 83


@pytest.mark.parametrize(("text", "age"), [
    ("At the age of 60 he had a myocardial infarction. Now 72 years old, he presents with fever.",
     72),
    ("At the age of 60, a man presented with fever.", 60),
    ("Twenty-five patients aged 30-70 years were included. Patient 3, a 52-year-old man.", 52),
])
def test_past_ages_and_ranges_give_way_to_the_patients_age(text: str, age: int) -> None:
    assert facts_of_text(text).age == age


@pytest.mark.parametrize(("text", "sex", "age"), [
    ("Patient (F, 45) with cough.", "F", 45),
    ("Patient (45, M) with cough.", "M", 45),
    ("Table (5, 6) shows the counts.", None, None),
    ("The patient (male, 52) was admitted.", "M", 52),
    ("Patient, female, 73 years. Dyspnoea for three days.", "F", 73),
    ("58 y/o M with cough and fever.", "M", 58),
    ("Patients: male, 12; female, 9.", "M", None),
])
def test_sex_and_age_in_parentheses(text: str, sex: str | None, age: int | None) -> None:
    facts = facts_of_text(text)
    assert (facts.sex, facts.age) == (sex, age)


def test_family_cluster_leaves_age_blank() -> None:
    text = ("An 83-year-old female patient presented with fever for four days. She lived with her "
            "daughter. Later, her 59-years-old daughter presented with fever and dry cough. "
            "Axial chest CT demonstrated ground-glass opacities.")
    facts = facts_of_text(text)
    assert facts.age is None
    assert facts.sex == "F"


def test_radiograph_named_as_an_adjective_or_in_general_is_not_a_study() -> None:
    text = ("COVID-19 pneumonia manifesting as radiograph-negative nodular opacities. Axial chest "
            "CT image shows ground-glass opacities.")
    assert (facts_of_text(text).modality, facts_of_text(text).view) == ("CT", "Axial")
    text = ("The most common imaging appearance on chest CT scans include peripheral opacities. "
            "AP chest radiograph at presentation shows peripheral consolidation.")
    assert (facts_of_text(text).modality, facts_of_text(text).view) == ("X-ray", "AP")


def test_view_of_one_of_two_named_modalities_says_nothing() -> None:
    text = ("Chest Xay and CT scan images of a man. A, Transverse CT images on January 9. "
            "D, chest Xay showing bilateral consolidation.")
    facts = facts_of_text(text)
    assert (facts.modality, facts.view) == (None, None)


@pytest.mark.parametrize("text", ["Woman, 58 years old. RX: bilateral interstitial thickening.",
                                  "Chest Rx shows bilateral opacities."])
def test_italian_rx_is_a_radiograph(text: str) -> None:
    assert facts_of_text(text).modality == "X-ray"


@pytest.mark.parametrize(("text", "modality"), [
    ("Rx: amoxicillin 1 g three times daily.", None),
    ("RX: amoxicillin. Chest image shows opacities.", None),
    ("RX: azithromycin 500 mg. Chest CT showing ground-glass opacities.", "CT"),
])
def test_prescription_rx_is_not_a_radiograph(text: str, modality: str | None) -> None:
    assert facts_of_text(text).modality == modality


@pytest.mark.parametrize(("text", "modality", "finding"), [
    ("Chest X-ray with typical bilateral peripheral opacities.", "X-ray", None),
    ("Chest radiograph: findings include bilateral patchy consolidation.", "X-ray", None),
    ("COVID-19 pneumonia. Chest CT with characteristic bilateral ground-glass opacities.", "CT",
     "Pneumonia/Viral/COVID-19"),
    ("Tuberculosis with typical upper lobe cavitation.", None, "Tuberculosis"),
])
def test_captions_describing_their_own_image_keep_their_facts(text, modality, finding) -> None:
    facts = facts_of_text(text)
    assert (facts.modality, facts.finding) == (modality, finding)


@pytest.mark.parametrize(("text", "finding"), [
    ("Bacterial pneumonia in a postCOVID patient.", "Pneumonia/Bacterial"),
    ("Pneumonia in a nonCOVID-19 patient: influenza A.", "Pneumonia/Viral/Influenza"),
])
def test_prefixed_virus_names_are_not_split(text: str, finding: str) -> None:
    assert facts_of_text(text).finding == finding


@pytest.mark.parametrize("text", [
    "Differential diagnosis: COVID-19 pneumonia, influenza, PCP.",
    "Findings may represent tuberculosis or fungal infection.",
    "Appearances could represent Legionella pneumonia.",
])
def test_differentials_and_hedges_are_not_the_finding(text: str) -> None:
    assert facts_of_text(text).finding is None


@pytest.mark.parametrize("text", [
    "Discussion: Influenza pneumonia can look similar; PCR confirmed COVID-19.",
    "Discussion: Pneumocystis pneumonia classically presents with perihilar ground-glass. This "
    "patient had positive COVID-19 RT-PCR.",
    "Case discussion: This case illustrates typical features of COVID-19. Tuberculosis is an "
    "important mimic.",
    "Influenza pneumonia was the first diagnosis. Later RT-PCR confirmed COVID-19.",
])
def test_general_statements_and_mimics_give_way_to_the_confirmed_diagnosis(text: str) -> None:
    assert facts_of_text(text).finding == "Pneumonia/Viral/COVID-19"


def test_caption_naming_typical_findings_keeps_its_finding() -> None:
    assert facts_of_text("Typical radiological findings of ARDS.").finding == "ARDS"


def test_virus_name_glued_to_the_word_before_is_found() -> None:
    text = ("A 68-year-old intubated man with fever and cough. ClassicCOVID-19 appearances on CXR. "
            "This patient had a positive RT-PCR forCOVID-19 on the second throat swab.")
    assert facts_of_text(text).finding == "Pneumonia/Viral/COVID-19"


def test_typeset_hyphens_read_as_ascii() -> None:
    facts = facts_of_text("Chest X\u2010ray of a 65\u2010year\u2010old man with COVID\u201119.")
    assert (facts.modality, facts.age, facts.finding) == ("X-ray", 65, "Pneumonia/Viral/COVID-19")


@pytest.mark.parametrize(("text", "sex"), [
    ("a 65-year-old man", "M"),
    ("A 40-year-old female patient", "F"),
    ("12-year-old boy", "M"),
    ("This is an 80-year-old lady presenting", "F"),
    ("The patient had fever. She was admitted.", "F"),
    ("Patient presented with cough; he was intubated.", "M"),
    ("Sex: F. Age 44.", "F"),
    ("Case 2 (37 years old) was the son of Case 1.", "M"),
])
def test_sex_phrasings(text: str, sex: str) -> None:
    assert facts_of_text(text).sex == sex


def test_sex_left_blank_when_pronouns_disagree() -> None:
    assert facts_of_text("The patient said she had seen him the day before.").sex is None


def test_sex_ignores_the_husband_of_a_woman() -> None:
    assert facts_of_text("Her husband, a 70-year-old man, was well. She had fever.").sex == "F"


@pytest.mark.parametrize(("text", "finding"), [
    ("Chest X-ray of a patient with COVID-19 pneumonia.", "Pneumonia/Viral/COVID-19"),
    ("RT-PCR for SARS-CoV-2 was positive.", "Pneumonia/Viral/COVID-19"),
    ("Patient with 2019-nCoV infection.", "Pneumonia/Viral/COVID-19"),
    ("Frontal radiograph in a 23-year-old man with SARS.", "Pneumonia/Viral/SARS"),
    ("Pneumocystis jirovecii pneumonia in untreated HIV.", "Pneumonia/Fungal/Pneumocystis"),
    ("Sputum grew Klebsiella pneumoniae.", "Pneumonia/Bacterial/Klebsiella"),
    ("Legionnaires' disease confirmed by urinary antigen.", "Pneumonia/Bacterial/Legionella"),
    ("Lipoid pneumonia after mineral oil use.", "Pneumonia/Lipoid"),
    ("Typical radiological findings of ARDS.", "ARDS"),
    ("H1N1 influenza with respiratory failure.", "Pneumonia/Viral/Influenza/H1N1"),
])
def test_finding_through_the_taxonomy(text: str, finding: str) -> None:
    facts = facts_of_text(text)
    assert facts.finding == finding
    assert facts.evidence["finding"]


@pytest.mark.parametrize("text", [
    "No evidence of COVID-19 on imaging.",
    "COVID-19 was excluded by two negative swabs.",
    "Throat swab negative for SARS-CoV-2.",
    "History of tuberculosis in childhood.",
    "Suspected COVID-19; tests pending.",
    "Admitted during the COVID-19 pandemic with a broken leg.",
])
def test_negated_suspected_or_past_finding_not_counted(text: str) -> None:
    assert facts_of_text(text).finding is None


def test_positive_disease_wins_over_negated_other() -> None:
    text = "RT-PCR for COVID-19 was positive, influenza tests were negative."
    assert facts_of_text(text).finding == "Pneumonia/Viral/COVID-19"


def test_suspected_disease_with_positive_test_counts() -> None:
    text = "He was tested for COVID-19 infection. PCR positive."
    assert facts_of_text(text).finding == "Pneumonia/Viral/COVID-19"


def test_normal_image_without_illness_is_no_finding() -> None:
    assert facts_of_text("Patient 2 - CXR: Normal").finding == "No Finding"
    assert facts_of_text("Fever and cough. Normal appearances.").finding is None


def test_covid_is_not_sars() -> None:
    assert facts_of_text("Confirmed SARS-CoV2 infection").finding == "Pneumonia/Viral/COVID-19"


@pytest.mark.parametrize(("text", "view", "modality"), [
    ("PA chest radiograph shows consolidation.", "PA", "X-ray"),
    ("Posteroanterior chest x-ray on admission.", "PA", "X-ray"),
    ("AP supine chest radiograph in the ICU.", "AP Supine", "X-ray"),
    ("Portable AP erect CXR.", "AP Erect", "X-ray"),
    ("Left lateral chest x-ray showed consolidation.", "L", "X-ray"),
    ("Axial chest CT shows ground-glass opacities.", "Axial", "CT"),
    ("Coronal HRCT reconstruction.", "Coronal", "CT"),
])
def test_view_and_modality(text: str, view: str, modality: str) -> None:
    facts = facts_of_text(text)
    assert (facts.view, facts.modality) == (view, modality)


def test_several_views_named_give_no_view() -> None:
    assert facts_of_text("PA and lateral chest radiographs show consolidation.").view is None
    assert facts_of_text("Axial and coronal CT images.").view is None


def test_pa_without_imaging_context_is_not_a_view() -> None:
    assert facts_of_text("PA pressure was 45 mmHg.").view is None


def test_modality_of_prior_study_not_counted() -> None:
    text = "A prior CT chest (not available for review) was clear. Chest x-ray shows nodules."
    assert facts_of_text(text).modality == "X-ray"


def test_both_modalities_named_leave_modality_blank() -> None:
    assert facts_of_text("Chest x-ray and chest CT images of a boy.").modality is None


@pytest.mark.parametrize(("text", "offset"), [
    ("Chest radiograph on day 7 shows progression.", 7),
    ("CT obtained on day three after the onset of symptoms is normal.", 3),
    ("Chest radiographs obtained on admission showed an infiltrate.", 0),
    ("Chest x-ray on the eighth day showed improvement.", 8),
    ("A chest CT obtained two days after the onset of the symptoms.", 2),
    ("Follow-up frontal chest radiograph obtained 5 days later.", 5),
    ("He became ill with fever on January 17. On January 25, chest radiographs showed "
     "progression.", 8),
    ("Symptoms started on 3 March 2020. Chest CT on 10 March 2020 showed GGO.", 7),
    ("Chest X-ray after a few days of symptoms; fever for a few days later.", 5),
])
def test_offset(text: str, offset: int) -> None:
    assert facts_of_text(text).offset == offset


def test_course_and_measurements() -> None:
    text = ("A 61-year-old man with fever (38.3°C) and oxygen saturation 67%. He was intubated "
            "and admitted to the intensive care unit, received supplemental oxygen, with a "
            "lymphocyte count of 0.6 × 10^9/L. He died on day 12. Admitted to Cho Ray Hospital, "
            "Ho Chi Minh City.")
    facts = facts_of_text(text)
    assert facts.temperature == 38.3
    assert facts.pO2_saturation == 67.0
    assert facts.intubated == "Y"
    assert facts.went_icu == "Y"
    assert facts.needed_supplemental_O2 == "Y"
    assert facts.lymphocyte_count == 0.6
    assert facts.survival == "N"
    assert facts.location == "Cho Ray Hospital, Ho Chi Minh City"


def test_negated_course_gives_no() -> None:
    text = "Stable during admission without need for oxygen supplementation. No intubation."
    facts = facts_of_text(text)
    assert facts.needed_supplemental_O2 == "N"
    assert facts.intubated == "N"


def test_several_patients_give_one_facts_each() -> None:
    text = ("Patient 1: a 45-year-old man with COVID-19; PA chest radiograph on admission. "
            "Patient 2: a 39-year-old woman; axial CT shows ground-glass opacities.")
    found = extract_facts(text)
    assert [(f.patient, f.age, f.sex) for f in found] == [
        ("Patient 1", 45, "M"), ("Patient 2", 39, "F")]
    assert found[1].view == "Axial"


def test_patient_named_mid_sentence_does_not_split() -> None:
    found = extract_facts("Case 2 (37 years old) was the son of Case 1. He had a cough.")
    assert len(found) == 1
    assert found[0].age == 37


def test_panel_facts_take_panel_then_caption_then_case_text() -> None:
    caption = ("Figure 2. Patient 1 (A, B) and patient 2 (C, D). (A) PA chest radiograph on "
               "admission. (B) Axial CT on day 4. (C) AP supine radiograph on day 7. (D) Coronal "
               "CT showing ground-glass opacities.")
    case = ("Patient 1 was a 50-year-old man with COVID-19. Patient 2 was a 61-year-old woman "
            "with COVID-19 who was intubated.")
    b = facts_for_panel(caption, "B", case)
    assert (b.patient, b.age, b.sex, b.view, b.modality, b.offset) == (
        "Patient 1", 50, "M", "Axial", "CT", 4)
    c = facts_for_panel(caption, "c", case)
    assert (c.patient, c.age, c.view, c.modality, c.offset, c.intubated) == (
        "Patient 2", 61, "AP Supine", "X-ray", 7, "Y")
    assert c.finding == "Pneumonia/Viral/COVID-19"


def test_normal_panel_keeps_the_patients_disease() -> None:
    caption = "(A) Chest radiograph: normal. (B) Axial CT shows ground-glass opacities."
    facts = facts_for_panel(caption, "A", "A 30-year-old woman with confirmed COVID-19.")
    assert facts.finding == "Pneumonia/Viral/COVID-19"
    assert facts_for_panel("(A) CXR: normal. (B) CXR: normal.", "A").finding == "No Finding"


def test_panel_label_after_its_sentence() -> None:
    caption = ("Chest radiograph (A) shows no thoracic abnormalities. Axial CT scan (B) shows "
               "GGOs in the right lower lobe.")
    assert facts_for_panel(caption, "A").modality == "X-ray"
    assert facts_for_panel(caption, "B").view == "Axial"


@pytest.mark.parametrize("text", [
    "", "   ", "\x00\x01\x02" * 1000, "é" * 10, bytes(range(256)).decode("latin-1") * 100,
    ("A 65-year-old man with COVID-19. " * 40_000)[:1_000_000],
])
def test_odd_or_huge_text_does_not_crash(text: str) -> None:
    found = extract_facts(text)
    assert len(found) >= 1
    assert all(isinstance(f.to_dict(), dict) for f in found)


def test_to_dict_has_every_field_and_evidence() -> None:
    d = facts_of_text("A 65-year-old man").to_dict()
    assert d["age"] == 65 and d["sex"] == "M" and d["finding"] is None
    assert d["evidence"] == {"age": "65-year-old", "sex": "man"}


@pytest.mark.realdata
def test_real_notes_age_and_sex_precision(shared_data) -> None:
    path = shared_data / "cxr-dev" / "metadata.csv"
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        rows = list(csv.DictReader(f))
    right = wrong = 0
    for row in rows:
        facts = extract_facts(row["clinical_notes"] or "")[0]
        if facts.sex and row["sex"]:
            right += facts.sex == row["sex"]
            wrong += facts.sex != row["sex"]
        if facts.age is not None and row["age"]:
            right += facts.age == int(float(row["age"]))
            wrong += facts.age != int(float(row["age"]))
    assert right > 150
    assert right / (right + wrong) >= 0.97


@pytest.mark.parametrize(("text", "finding"), [
    # symptoms named after a disease are not the disease
    ("Female patient, 82 years old, with flu syndrome for 5 days. Positive swab. RX: bilateral "
     "interstitial thickening.", None),
    ("A 42-year-old woman with flu like symptoms tested positive for SARS-CoV-2.",
     "Pneumonia/Viral/COVID-19"),
    # a past or vaccine disease never pairs with a later unnamed positive test
    ("Male, 72 years old. COPD, previous pulmonary TB in youth. Swab positive.", None),
    ("Female, 66 years old, vaccinated against influenza in October. Positive swab.", None),
    # "positive for" belongs to the disease after it
    ("Swab negative for SARS-CoV-2, positive for influenza A.", "Pneumonia/Viral/Influenza"),
    ("Negative for COVID-19, positive for Streptococcus pneumoniae on blood culture.",
     "Pneumonia/Bacterial/Streptococcus"),
    # SARS-CoV-2 spelled out or with a lost hyphen is not SARS 2003
    ("Severe acute respiratory syndrome coronavirus 2 infection was confirmed.",
     "Pneumonia/Viral/COVID-19"),
    ("Nasopharyngeal swab positive for SARS?CoV?2.", "Pneumonia/Viral/COVID-19"),
    ("RT-PCR positive for SARS\u2013CoV\u20132.", "Pneumonia/Viral/COVID-19"),
    # a relative's disease and an infection outside the lungs are not the image's finding
    ("A 44-year-old man whose father had died of COVID-19. RT-PCR negative twice. Sputum grew "
     "Klebsiella pneumoniae.", "Pneumonia/Bacterial/Klebsiella"),
    ("A 70-year-old man with Klebsiella pneumoniae bacteremia and COVID-19 pneumonia.",
     "Pneumonia/Viral/COVID-19"),
])
def test_symptoms_past_diseases_and_neighbouring_results_are_read_right(text, finding):
    assert facts_of_text(text).finding == finding


@pytest.mark.parametrize(("text", "age"), [
    ("Pz smoker (for 30 years), hypertensive, presents with fever.", None),
    ("Patient with diabetes for 15 years, hypertension. He arrives with fever.", None),
    ("Kidney transplant recipient (transplanted 8 years), female.", None),
    ("Hypertension for 10 years, diabetes. Age 61. Chest X-ray: opacities.", 61),
    ("Smoker, 45 years old man with cough.", 45),
    ("Female patient, 60 years. Pyrexia and dry cough.", 60),
])
def test_durations_are_not_ages(text, age):
    assert facts_of_text(text).age == age


@pytest.mark.parametrize(("text", "view", "modality"), [
    ("Positive swab. RX: bilateral opacities. TC: bilateral GGO with crazy paving.", None, None),
    ("Positive swab for COVID-19. TC torace: bilateral ground glass areas.", None, "CT"),
    ("Chest X-ray: no effusion. The angio-CT excludes pulmonary embolism.", None, None),
    ("Computerized tomography showed peripheral GGO.", None, "CT"),
    ("Chest X-ray in 2 projections (PA and LL) shows bilateral GGO.", None, "X-ray"),
    ("PA: 90/60. Chest X-ray performed in the PS: bilateral opacities.", None, "X-ray"),
])
def test_italian_abbreviations_for_ct_lateral_and_blood_pressure(text, view, modality):
    facts = facts_of_text(text)
    assert (facts.view, facts.modality) == (view, modality)


def test_a_couple_admitted_together_is_a_family_cluster():
    facts = facts_of_text("A 47-year-old man and his 43-year-old wife were admitted with fever.")
    assert facts.age is None


@pytest.mark.parametrize(("text", "sex"), [
    ("Pz 56 yrs, M. Fever for 10 days.", "M"),
    ("Pz F, 76 years. Cardiac failure.", "F"),
    ("A 71-year-old patient. The physician, a woman, noted fever. He tested positive.", "M"),
    ("A 66-year-old patient was infected by a man back from Germany. She developed fever.", "F"),
    ("A 50-year-old with MS. The patient was admitted with fever.", None),
    ("Ms. Rossi was admitted with fever.", "F"),
    # a Radiopaedia discussion speaks of the disease, except in its sentences about the case
    ("Presentation: Productive cough. She injects drugs. Imaging Notes: CXR shows nodules. "
     "Discussion: COVID-19 predominantly affects male patients.", "F"),
    ("Presentation: High grade fever. Imaging Notes: left basal infiltrate. Discussion: This is "
     "an 80-year-old lady presenting through ER with a high-grade fever.", "F"),
])
def test_sex_of_others_and_of_discussions_is_not_the_patients(text, sex):
    assert facts_of_text(text).sex == sex


@pytest.mark.parametrize(("text", "finding", "modality"), [
    ("A 45-year-old man with COVID-19 confirmed by RT-PCR (CT value 22). Chest X-ray: bilateral "
     "opacities.", "Pneumonia/Viral/COVID-19", "X-ray"),
    ("A 40-year-old man with COVID-19. Chest X-ray: bilateral opacities. CT was not performed.",
     "Pneumonia/Viral/COVID-19", "X-ray"),
    ("A 55-year-old man with COVID-19. Chest X?ray shows bilateral consolidation.",
     "Pneumonia/Viral/COVID-19", "X-ray"),
    ("Swab positive for SARS-CoV-2. RX: normal. TC: bilateral GGO.", "Pneumonia/Viral/COVID-19",
     None),
    ("Negative for COVID-19, positive for Streptococcus pneumoniae urinary antigen.",
     "Pneumonia/Bacterial/Streptococcus", None),
    ("Presentation: cough. Imaging Notes: CXR shows cavitating nodules. Discussion: COVID-19 "
     "predominantly affects male patients.", None, "X-ray"),
])
def test_cycle_thresholds_studies_not_done_and_general_statements(text, finding, modality):
    facts = facts_of_text(text)
    assert (facts.finding, facts.modality) == (finding, modality)
