"""What may leave a DICOM header: an allow-list of non-identifying fields, and redaction of identifying values.

The pipeline copies header fields into outputs only through `allowed_meta` (allow-list, never a deny-list: a tag
we did not think of stays out). `redact` is the second line of defence for free text we did not write ourselves
(exception messages from decoders), so a reject reason or a log line cannot echo a patient's name.
"""
from __future__ import annotations

import re
from typing import Any

# Technical fields that describe the pixels and the projection, not the person. BodyPartExamined and the
# descriptions are deliberately absent: sites put free text (sometimes names) there.
ALLOWED_META = (
    "Modality",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "NumberOfFrames",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "ViewPosition",
    "PatientOrientation",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "SOPClassUID",
    "TransferSyntaxUID",
)

# Identifying attributes (DICOM PS3.15 Annex E basic profile, the ones seen in radiographs). Used to redact free
# text and by the tests; the allow-list above must never intersect it.
IDENTIFYING_KEYWORDS = frozenset({
    "PatientName", "PatientID", "OtherPatientIDs", "OtherPatientNames", "PatientBirthDate", "PatientBirthTime",
    "PatientAddress", "PatientTelephoneNumbers", "PatientMotherBirthName", "MilitaryRank", "EthnicGroup",
    "PatientComments", "IssuerOfPatientID", "MedicalRecordLocator",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber",
    "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy", "RequestingPhysician",
    "AccessionNumber", "StudyID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
    "MediaStorageSOPInstanceUID", "RequestAttributesSequence",
    "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "InstanceCreationDate", "StudyTime", "SeriesTime",
    "AcquisitionTime", "ContentTime", "AcquisitionDateTime",
    "StudyDescription", "SeriesDescription", "ProtocolName", "ImageComments", "AdditionalPatientHistory",
})
# Value representations that hold names, dates or times whatever their keyword (private tags included).
_IDENTIFYING_VRS = {"PN", "DA", "DT", "TM"}
_MIN_REDACT_LEN = 3  # shorter values ('M', '45') would redact innocent digits in messages

assert not set(ALLOWED_META) & IDENTIFYING_KEYWORDS


def _plain(value: Any) -> Any:
    """pydicom values -> JSON/Parquet-friendly Python values."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int)):
        return int(value)
    if isinstance(value, float) or type(value).__name__ in ("DSfloat", "DSdecimal"):
        return float(value)
    if type(value).__name__ == "IS":
        return int(value)
    return str(value)


def allowed_meta(ds) -> dict:
    """The allow-listed fields present in a pydicom Dataset (file meta included), as plain values."""
    out = {}
    file_meta = getattr(ds, "file_meta", None)
    for key in ALLOWED_META:
        src = file_meta if key == "TransferSyntaxUID" else ds
        if src is None or key not in src:
            continue
        value = src[key].value
        if value is None or value == "":
            continue
        out[key] = _plain(value)
    return out


def identifying_values(ds) -> set[str]:
    """String forms of every identifying value in a dataset (sequences walked), for redaction."""
    values: set[str] = set()

    def visit(dataset) -> None:
        for elem in dataset:
            if elem.VR == "SQ":
                for item in elem.value or []:
                    visit(item)
                continue
            if elem.keyword in IDENTIFYING_KEYWORDS or elem.VR in _IDENTIFYING_VRS:
                raw = elem.value
                items = raw if isinstance(raw, (list, tuple)) or type(raw).__name__ == "MultiValue" else [raw]
                for item in items:
                    text = str(item).strip() if item is not None else ""
                    if len(text) >= _MIN_REDACT_LEN:
                        values.add(text)
                        # Person names print in several forms: 'Doe^John' and 'Doe John'.
                        values.update(p for p in re.split(r"[\^= ]+", text) if len(p) >= _MIN_REDACT_LEN)

    try:
        visit(ds)
    except Exception as exc:  # a header too broken to walk: the caller must not use free text from it at all
        raise ValueError(f"cannot enumerate header values ({type(exc).__name__})") from None
    return values


def redact(text: str, ds=None) -> str:
    """`text` with every identifying header value of `ds` replaced by '[redacted]'."""
    if ds is None or not text:
        return text
    try:
        values = identifying_values(ds)
    except ValueError:
        return "[message withheld: unreadable header]"
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, "[redacted]")
    return text
