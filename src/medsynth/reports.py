"""Radiology report parsing: MIMIC-CXR free text and OpenI / IU X-ray XML into named sections.

MIMIC-CXR reports are free text with upper-case headers ("FINDINGS:", "IMPRESSION:", ...) whose spelling varies
between sites and years; OpenI reports are XML with <AbstractText Label="..."> sections. Both end up as a
`Report` with `findings`, `impression`, `indication` (plus `comparison`, `technique` where present) so the rest
of the pipeline never sees the source format.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from .errors import RejectedInput

# Header spellings seen in MIMIC-CXR (and similar free-text reports) -> canonical section.
# "FINDINGS AND IMPRESSION" style combined headers go to findings: the text describes the image; impression
# is left empty rather than duplicated.
SECTION_ALIASES = {
    "findings": "findings",
    "finding": "findings",
    "findings and impression": "findings",
    "findings/impression": "findings",
    "impression/findings": "findings",
    "findings and impressions": "findings",
    "chest radiograph findings": "findings",
    "pa and lateral views of the chest": "findings",
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "summary": "impression",
    "indication": "indication",
    "indications": "indication",
    "history": "indication",
    "clinical history": "indication",
    "clinical indication": "indication",
    "clinical information": "indication",
    "reason for exam": "indication",
    "reason for examination": "indication",
    "reason for study": "indication",
    "comparison": "comparison",
    "comparisons": "comparison",
    "comparison exam": "comparison",
    "technique": "technique",
    "examination": "examination",
    "exam": "examination",
    "type of examination": "examination",
    "procedure": "examination",
    "wet read": "wet_read",
    "notification": "notification",
    "recommendation": "recommendation",
    "recommendations": "recommendation",
    "addendum": "addendum",
}

# A header is a short phrase at the start of a line ended by a colon. Any case is matched ('Findings:' occurs), but
# only phrases in SECTION_ALIASES open a section; others ('NOTE:', 'Compared to prior:') stay text.
_HEADER = re.compile(r"(?m)^[ \t]*([A-Za-z][A-Za-z /&()\-]{1,60}?)[ \t]*:")
_PREAMBLE = re.compile(r"(?im)^\s*(final report|preliminary report|addendum report)\s*$")
_WS = re.compile(r"\s+")


@dataclass
class Report:
    findings: str = ""
    impression: str = ""
    indication: str = ""
    comparison: str = ""
    technique: str = ""
    other: dict = field(default_factory=dict)  # any further recognised or unknown headed sections

    @property
    def empty(self) -> bool:
        return not (self.findings or self.impression)


def clean(text: str) -> str:
    """Collapse whitespace; keep de-identification placeholders ('___', 'XXXX') as they are."""
    return _WS.sub(" ", text or "").strip()


def parse_mimic_report(text: str) -> Report:
    """Split a MIMIC-CXR style free-text report into sections.

    Text before the first header that is not a preamble ('FINAL REPORT') is kept in `other['preamble']`.
    A report with no recognised findings/impression header but some body text gets the body as findings (the
    whole report describes the image), so no report text is dropped silently.
    """
    body = _PREAMBLE.sub("", text or "")
    report = Report()
    matches = [m for m in _HEADER.finditer(body)]
    spans: list[tuple[str, int, int]] = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        spans.append((m.group(1), m.end(), end))
    lead = body[: matches[0].start()] if matches else body
    sections: dict[str, list[str]] = {}
    unknown_prefix = ""
    for header, start, end in spans:
        name = SECTION_ALIASES.get(clean(header).lower())
        content = body[start:end]
        if name is None:
            # An unrecognised all-caps phrase ending in a colon inside a section (e.g. "NOTE:") is text, not a
            # new section: glue it back onto the previous section.
            if sections:
                last = list(sections)[-1]
                sections[last].append(header + ": " + content)
            else:
                unknown_prefix += header + ": " + content
            continue
        sections.setdefault(name, []).append(content)
    joined = {k: clean(" ".join(v)) for k, v in sections.items()}
    report.findings = joined.pop("findings", "")
    report.impression = joined.pop("impression", "")
    report.indication = joined.pop("indication", "")
    report.comparison = joined.pop("comparison", "")
    report.technique = joined.pop("technique", "")
    report.other = {k: v for k, v in joined.items() if v}
    preamble = clean(lead + " " + unknown_prefix)
    if preamble:
        report.other["preamble"] = preamble
    if report.empty and preamble:
        report.findings = report.other.pop("preamble")
    return report


def parse_openi_xml(data: bytes | str) -> dict:
    """Parse one OpenI / IU X-ray report (ecgen-radiology XML).

    Returns report id, sections, MeSH major/automatic terms and the ids of the images the report belongs to.
    Malformed XML raises RejectedInput so the caller can list it in its rejects.
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise RejectedInput("unreadable report XML", str(exc)) from None
    uid = root.find("uId")
    sections = {}
    for node in root.iter("AbstractText"):
        label = (node.get("Label") or "").strip().lower()
        if label:
            sections[label] = clean("".join(node.itertext()))
    return {
        "report_id": uid.get("id") if uid is not None else "",
        "findings": sections.get("findings", ""),
        "impression": sections.get("impression", ""),
        "indication": sections.get("indication", ""),
        "comparison": sections.get("comparison", ""),
        "mesh_major": [clean(n.text) for n in root.iter("major") if n.text and clean(n.text)],
        "mesh_automatic": [clean(n.text) for n in root.iter("automatic") if n.text and clean(n.text)],
        "image_ids": [n.get("id") for n in root.findall("parentImage") if n.get("id")],
    }


def make_prompt(findings: str, impression: str) -> str:
    """The conditioning text used across the CXR pipelines: 'FINDINGS: ... IMPRESSION: ...', empty parts left out."""
    parts = []
    if findings:
        parts.append(f"FINDINGS: {findings}")
    if impression:
        parts.append(f"IMPRESSION: {impression}")
    return " ".join(parts)
