"""Report section parsing: MIMIC-CXR free text and OpenI XML."""
from __future__ import annotations

import pytest

from fixtures_datasets import MIMIC_REPORTS, openi_xml
from medsynth.errors import RejectedInput
from medsynth.reports import make_prompt, parse_mimic_report, parse_openi_xml


def test_mimic_standard_report():
    r = parse_mimic_report(MIMIC_REPORTS["50000001"])
    assert r.findings == ("There is no focal consolidation, pleural effusion or pneumothorax. Bilateral nodular "
                          "opacities most likely represent nipple shadows.")
    assert r.impression == "No acute cardiopulmonary process."
    assert r.indication == "___F with new onset ascites // eval for infection"
    assert r.technique == "Chest PA and lateral"
    assert r.comparison == "None."
    assert r.other == {"examination": "CHEST (PA AND LAT)"}  # 'FINAL REPORT' preamble is dropped


@pytest.mark.parametrize("text, findings, impression, indication", [
    ("FINDINGS AND IMPRESSION:  Right effusion.", "Right effusion.", "", ""),
    ("HISTORY: SOB.\nCONCLUSION: Stable.", "", "Stable.", "SOB."),
    ("CLINICAL HISTORY: Fever.\nIMPRESSIONS: Pneumonia.", "", "Pneumonia.", "Fever."),
    ("REASON FOR EXAM: Cough\nFindings: Clear lungs.\nImpression: Normal.", "Clear lungs.", "Normal.", "Cough"),
    ("FINDINGS:\n\n  Line one\n  continues here.\n\nIMPRESSION:\n1. A.\n2. B.", "Line one continues here.",
     "1. A. 2. B.", ""),
])
def test_mimic_header_variants(text, findings, impression, indication):
    r = parse_mimic_report(text)
    assert (r.findings, r.impression, r.indication) == (findings, impression, indication)


def test_mimic_unknown_headers_stay_text():
    r = parse_mimic_report("IMPRESSION: Small effusion.\nNOTE: Discussed with Dr. ___ at 2pm.")
    assert r.impression == "Small effusion. NOTE: Discussed with Dr. ___ at 2pm."


def test_mimic_empty_and_headerless():
    assert parse_mimic_report("").empty
    assert parse_mimic_report("   \n\n  ").empty
    assert parse_mimic_report(MIMIC_REPORTS["50000004"]).empty
    r = parse_mimic_report("                FINAL REPORT\n  Chest radiograph shows clear lungs.\n")
    assert r.findings == "Chest radiograph shows clear lungs." and r.impression == ""
    assert "preamble" not in r.other  # the body moved to findings, not duplicated


def test_mimic_wet_read_before_final_report():
    r = parse_mimic_report(MIMIC_REPORTS["50000003"])
    assert r.impression == "Small left apical pneumothorax, new since prior."
    assert r.findings == ""
    assert r.other["wet_read"] == "___ ___ 4:12 PM Small left apical pneumothorax."


def test_make_prompt():
    assert make_prompt("A.", "B.") == "FINDINGS: A. IMPRESSION: B."
    assert make_prompt("", "B.") == "IMPRESSION: B."
    assert make_prompt("A.", "") == "FINDINGS: A."
    assert make_prompt("", "") == ""


def test_openi_xml():
    xml = openi_xml("CXR7", "Heart size  normal.\n  No effusion.", "No acute disease.",
                    ["Cardiomegaly/borderline", "Opacity/lung/base/left"], ["CXR7_IM-1-1001", "CXR7_IM-1-2001"])
    rec = parse_openi_xml(xml.encode())
    assert rec["report_id"] == "CXR7"
    assert rec["findings"] == "Heart size normal. No effusion."
    assert rec["impression"] == "No acute disease."
    assert rec["indication"] == "Cough."
    assert rec["comparison"] == "None."
    assert rec["mesh_major"] == ["Cardiomegaly/borderline", "Opacity/lung/base/left"]
    assert rec["image_ids"] == ["CXR7_IM-1-1001", "CXR7_IM-1-2001"]


def test_openi_xml_empty_sections_and_bad_xml():
    rec = parse_openi_xml(openi_xml("CXR9", "", "", [], []))
    assert rec["findings"] == rec["impression"] == "" and rec["image_ids"] == [] and rec["mesh_major"] == []
    with pytest.raises(RejectedInput, match="unreadable report XML"):
        parse_openi_xml(b"<eCitation><uId id='x'>")
