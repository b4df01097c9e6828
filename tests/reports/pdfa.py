"""Structural PDF/A-3 checks (ISO 19005-3:2012), for the tests: no PDF/A validator installs on this machine
(veraPDF ships as a Java application outside the package registries reachable here), so the clauses that our
files can get wrong are checked one by one with pikepdf (qpdf).

Each problem is one string naming the clause. Checked: 6.1.2 header and version (PDF/A-3 is built on PDF 1.7:
the header and any catalog /Version must not claim more), 6.1.3 trailer /ID and no encryption, 6.2.2 output
intent with an ICC profile, 6.2.11.4 embedded fonts, 6.6.2 XMP metadata with the pdfaid identification, 6.6.3
document information dictionary consistent with the XMP, 6.8 embedded files (each a file specification with
/F, /UF, /AFRelationship, a MIME /Subtype and /Params /ModDate, named in the catalog's /AF array exactly once),
6.6.1/6.3.2 no JavaScript or additional actions, annotations printable.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import pikepdf

INFO_TO_XMP = {"/Title": "dc:title", "/Author": "dc:creator", "/Subject": "dc:description",
               "/Producer": "pdf:Producer", "/Creator": "xmp:CreatorTool", "/CreationDate": "xmp:CreateDate",
               "/ModDate": "xmp:ModifyDate", "/Keywords": "pdf:Keywords"}


def _pdf_date(value: str) -> dt.datetime:
    m = re.match(r"D:(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(Z|[+-]\d{2}'?\d{2}'?)?", value)
    if not m:
        raise ValueError(value)
    y, mo, d, h, mi, s, tz = m.groups()
    base = dt.datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(s or 0))
    if tz in (None, "Z"):
        return base.replace(tzinfo=dt.UTC)
    sign = 1 if tz[0] == "+" else -1
    hh, mm = int(tz[1:3]), int(tz.replace("'", "")[3:5] or 0)
    return base.replace(tzinfo=dt.timezone(sign * dt.timedelta(hours=hh, minutes=mm)))


def _xmp_date(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _same(info_key: str, info_value: str, xmp_value: Any) -> bool:
    if info_key in ("/CreationDate", "/ModDate"):
        return _pdf_date(info_value) == _xmp_date(str(xmp_value))
    if isinstance(xmp_value, list):  # dc:creator is a sequence; the Info entry is its one item
        return [info_value] == [str(x) for x in xmp_value]
    return info_value == str(xmp_value)


def _fonts(resources: Any, seen: set[tuple[int, int]]) -> list[Any]:
    out = []
    if resources is None:
        return out
    for font in (resources.get("/Font") or {}).values():
        out.append(font)
    for xobj in (resources.get("/XObject") or {}).values():
        if xobj.objgen in seen:
            continue
        seen.add(xobj.objgen)
        if xobj.get("/Subtype") == "/Form":
            out += _fonts(xobj.get("/Resources"), seen)
    return out


def pdfa3_problems(data: bytes) -> list[str]:
    """Every PDF/A-3 problem found in ``data`` (empty when the checked clauses all hold)."""
    problems: list[str] = []
    header = re.match(rb"%PDF-1\.([0-9])\r?\n%([^\r\n]*)", data)
    if header is None:
        return ["6.1.2: the file does not start with a %PDF-1.n header line and a binary comment"]
    if int(header.group(1)) > 7:
        problems.append(f"6.1.2: header claims PDF 1.{header.group(1).decode()}, PDF/A-3 is PDF 1.7")
    if sum(b > 127 for b in header.group(2)) < 4:
        problems.append("6.1.2: the comment after the header has fewer than 4 bytes above 127")
    pdf = pikepdf.open(io.BytesIO(data))
    root = pdf.Root
    version = root.get("/Version")
    if version is not None and str(version).lstrip("/") not in ("1.4", "1.5", "1.6", "1.7"):
        problems.append(f"6.1.2: the catalog's /Version is {version}, PDF/A-3 is PDF 1.7")
    if "/ID" not in pdf.trailer:
        problems.append("6.1.3: the trailer has no /ID")
    if "/Encrypt" in pdf.trailer:
        problems.append("6.1.3: the file is encrypted")
    intents = [oi for oi in root.get("/OutputIntents", []) if oi.get("/S") == "/GTS_PDFA1"]
    if not intents or any("/DestOutputProfile" not in oi for oi in intents):
        problems.append("6.2.2: no /GTS_PDFA1 output intent with a /DestOutputProfile")
    if "/Metadata" not in root:
        return [*problems, "6.6.2: the catalog has no XMP /Metadata stream"]
    with pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False) as xmp:
        part, conformance = xmp.get("pdfaid:part"), xmp.get("pdfaid:conformance")
        if str(part) != "3" or str(conformance) not in ("A", "B", "U"):
            problems.append(f"6.6.2: XMP pdfaid is part {part!r} conformance {conformance!r}, expected 3 and A/B/U")
        for key, value in (pdf.docinfo.items() if "/Info" in pdf.trailer else []):
            name = INFO_TO_XMP.get(key)
            if name is None:
                continue
            xval = xmp.get(name)
            if xval is None or not _same(key, str(value), xval):
                problems.append(f"6.6.3: Info {key} = {str(value)!r} but XMP {name} = {xval!r}")
    af = list(root.get("/AF", []))
    refs = [x.objgen for x in af]
    if len(set(refs)) != len(refs):
        problems.append(f"6.8: the catalog's /AF array lists a file specification more than once ({refs})")
    names = root.get("/Names", {}).get("/EmbeddedFiles")
    specs = list(names.get("/Names", []))[1::2] if names is not None else []
    for spec in specs:
        label = str(spec.get("/UF", spec.get("/F", "?")))
        for key in ("/F", "/UF", "/AFRelationship", "/EF"):
            if key not in spec:
                problems.append(f"6.8: embedded file {label} has no {key}")
        stream = spec.get("/EF", {}).get("/F")
        if stream is None or "/Subtype" not in stream or "/ModDate" not in stream.get("/Params", {}):
            problems.append(f"6.8: embedded file {label} has no MIME /Subtype or /Params /ModDate")
        if spec.objgen not in refs:
            problems.append(f"6.8: embedded file {label} is not in the catalog's /AF array")
    if "/AA" in root or "/JavaScript" in root.get("/Names", {}):
        problems.append("6.6.1: the catalog has additional actions or JavaScript")
    seen: set[tuple[int, int]] = set()
    for number, page in enumerate(pdf.pages, 1):
        for font in _fonts(page.get("/Resources"), seen):
            if font.get("/Subtype") == "/Type3":
                continue
            desc = font.get("/FontDescriptor")
            if desc is None and font.get("/Subtype") == "/Type0":
                desc = font.DescendantFonts[0].get("/FontDescriptor")
            if desc is None or not any(k in desc for k in ("/FontFile", "/FontFile2", "/FontFile3")):
                problems.append(f"6.2.11.4: font {font.get('/BaseFont')} on page {number} is not embedded")
        for annot in page.get("/Annots", []):
            flags = int(annot.get("/F", 0))
            if annot.get("/Subtype") != "/Popup" and (not flags & 4 or flags & 2):
                problems.append(f"6.3.2: an annotation on page {number} is not printable (flags {flags})")
    return list(dict.fromkeys(problems))
