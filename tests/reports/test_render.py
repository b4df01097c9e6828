"""Real renders: the PDF (pages, PDF/A, signature seen by pdfsig), the HTML in headless Chromium, and every
number in the report traced back to results.json."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hybridcert.reports.bundle import parse_results
from hybridcert.reports.html import SigningInfo, environment, render, render_report
from hybridcert.reports.keys import init_identity
from hybridcert.reports.pdf import render_pdf
from hybridcert.reports.publish import SignedReport, sign_html_report, verify_report
from hybridcert.reports.summary import acceptance
from hybridcert.reports.verify import verification_report
from tests.conftest import CI_PROFILE
from tests.reports.synthetic import make_ca, make_results

SECTIONS = ["1. Identification", "2. System under test", "3. Scope and domain", "4. Threat model", "5. Method",
            "6. Acceptance criteria", "7. Results", "8. Statistical statement", "9. Limitations",
            "10. Reproducibility", "11. Integrity and sign-off", "12. Change history"]

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0", "--hide-scrollbars"]


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        if CI_PROFILE:
            pytest.fail(f"{tool} is not installed; .ci/run must install it")
        pytest.skip(f"{tool} is not installed (.ci/run installs it)")


def _not_blank(png: Path) -> float:
    arr = np.asarray(Image.open(png).convert("L"), dtype=float)
    return float(arr.std())


def test_pdf_pages_render_and_are_not_blank(signed: SignedReport, tmp_path: Path) -> None:
    _need("pdftoppm")
    pdf = signed.folder / "report.pdf"
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))  # type: ignore[union-attr]
    assert 5 <= pages <= 12
    assert "A4" in info
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(pdf), str(tmp_path / "p")], check=True)
    pngs = sorted(tmp_path.glob("p-*.png"))
    assert len(pngs) == pages
    for png in pngs:
        assert _not_blank(png) > 5, png
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for heading in SECTIONS:
        assert heading in text, heading
    assert signed.report_id in text


def test_pdf_is_pdfa3b_with_results_attached(signed: SignedReport) -> None:
    _need("pdfinfo")
    meta = subprocess.run(["pdfinfo", "-meta", str(signed.folder / "report.pdf")], capture_output=True, text=True,
                          check=True).stdout
    assert re.search(r"pdfaid:part(>|=\")3", meta) and re.search(r"pdfaid:conformance(>|=\")B", meta)
    listing = subprocess.run(["pdfdetach", "-list", str(signed.folder / "report.pdf")], capture_output=True,
                             text=True, check=True).stdout
    assert "results.json" in listing


def test_signed_pdf_keeps_pdfa3_structure(signed: SignedReport) -> None:
    """Issue 10: after PAdES signing the file still is PDF/A-3 by the clauses a validator checks: PDF 1.7
    (pyHanko would raise /Version to 2.0 for a P-256 key), one /AF entry per attachment, Info and XMP agree
    (tests/reports/pdfa.py)."""
    from tests.reports.pdfa import pdfa3_problems

    pdf = (signed.folder / "report.pdf").read_bytes()
    assert pdfa3_problems(pdf) == []
    assert pdf.startswith(b"%PDF-1.7")


def test_pdfsig_sees_a_valid_signature(signed: SignedReport) -> None:
    _need("pdfsig")
    out = subprocess.run(["pdfsig", str(signed.folder / "report.pdf")], capture_output=True, text=True).stdout
    assert "Signature Validation: Signature is Valid." in out
    assert "Total document signed" in out
    assert "Ada Auditor (PAdES)" in out


def _chromium(url: str, png: Path) -> tuple[str, int]:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        _need("chromium")
    assert binary is not None
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
                               "--window-size=1280,2200", url], capture_output=True, text=True, timeout=90)
    return proc.stderr, proc.returncode


def _console_messages(stderr: str) -> list[str]:
    # Chromium prints every console message (and failed resource loads) as INFO:CONSOLE lines.
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Refused to" in line]


def test_html_renders_in_chromium_without_console_errors(signed: SignedReport, tmp_path: Path) -> None:
    png = tmp_path / "shot.png"
    stderr, rc = _chromium((signed.folder / "report.html").as_uri(), png)
    assert rc == 0 and png.is_file(), stderr[-2000:]
    assert _console_messages(stderr) == []
    img = np.asarray(Image.open(png).convert("RGB"), dtype=float)
    assert img.shape[1] == 1280 and img.std() > 10
    # content, not a blank page: dark text in the top band and the accent colour of the headings
    top = img[:400].mean(axis=2)
    assert (top < 100).mean() > 0.003
    accent = np.all(np.abs(img - np.array([0x24, 0x52, 0x7A])) < 40, axis=2)
    assert accent.mean() > 0.001


def test_console_error_detection_works(tmp_path: Path) -> None:
    """Positive control: the same check does see a console error and a blocked external resource."""
    page = tmp_path / "bad.html"
    page.write_text("<html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\">"
                    "</head><body><h1>x</h1><img src=\"https://example.invalid/x.png\"></body></html>")
    stderr, _ = _chromium(page.as_uri(), tmp_path / "bad.png")
    assert _console_messages(stderr)


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.cells: list[dict[str, str]] = []
        self._in: dict[str, str] | None = None
        self.ids: dict[str, str] = {}
        self._id: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "tr" and "data-id" in a:
            self.rows.append({"id": a["data-id"], "text": ""})
        if tag == "td" and "data-certified" in a:
            self.cells.append(a)
        if "id" in a:
            self._id, self._text = a["id"], []

    def handle_data(self, data: str) -> None:
        if self.rows and not self.rows[-1].get("done"):
            self.rows[-1]["text"] += data
        if self._id:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self.rows:
            self.rows[-1]["done"] = "1"
        if self._id and tag in ("td", "span", "strong", "pre"):
            self.ids[self._id] = "".join(self._text)
            self._id = None


def test_numbers_in_the_html_come_from_results(signed: SignedReport) -> None:
    html = (signed.folder / "report.html").read_text()
    raw = json.loads((signed.folder / "results.json").read_text())
    p = _Cells()
    p.feed(html)
    # per-input rows: counts, p_a_lower and radii shown are the stored ones, truncated to 4 decimals
    assert [r["id"] for r in p.rows] == [x["id"] for x in raw["inputs"]]
    for row, rec in zip(p.rows, raw["inputs"], strict=True):
        text = row["text"]
        assert f"{rec['counts']['target']}/{rec['counts']['n']}" in text
        shown = [float(v) for v in re.findall(r"\d\.\d{4}", text)]
        stored = [rec["p_a_lower"]] + [f["radius"] for f in rec["frontier"]]
        assert len(shown) == len(stored), text
        for s, v in zip(shown, stored, strict=True):
            assert s <= v < s + 1e-4 + 1e-12
    # rate table: each cell's count recomputed from the raw JSON by the contract's definition
    assert len(p.cells) >= 20
    for cell in p.cells:
        d, eps = int(cell["data-budget"]), float(cell["data-radius"])
        expected = sum(
            1 for rec in raw["inputs"]
            if rec["correct"] and rec["decision"] != "abstain"
            and any(f["budget"] == d and f["radius"] >= eps for f in rec["frontier"])
        )
        assert int(cell["data-certified"]) == expected
    import hashlib

    assert p.ids["results-sha256"] == hashlib.sha256((signed.folder / "results.json").read_bytes()).hexdigest()
    for value in (raw["model"]["sha256"], raw["dataset"]["sha256"], raw["config"]["seed"], raw["command"]):
        assert value in html
    correct = sum(r["correct"] for r in raw["inputs"])
    assert p.ids["clean-rate"].startswith(f"{correct} / {len(raw['inputs'])}")
    assert "self-asserted" in html and "not a deterministic proof" in html
    assert f"1 - alpha = {1 - raw['config']['alpha']:.10g}" in html


def _info(demo: bool = False) -> SigningInfo:
    return SigningInfo(name="N", role="R", organisation="O", demo=demo, signed_at="2026-11-25T17:00:00Z",
                       timestamp_source="self-asserted", dsse_keyid="sha256:00", dsse_certificate_sha256="00",
                       pades_certificate_sha256="11", trust_anchor_sha256="22", trust_anchor_subject="CN=x")


@pytest.mark.slow
def test_rendering_is_deterministic_and_escaped() -> None:
    raw = make_results(n_inputs=8)
    raw["model"]["name"] = "<script>alert(1)</script>"
    raw["change_history"] = {"previous_report_id": "HCR-PREV", "verdict": "REGRESSION",
                             "deltas": [{"budget": 1, "radius": 0.5, "before": 0.6, "after": 0.4, "delta": -0.2}]}
    bundle = parse_results(json.dumps(raw).encode())
    acc = acceptance(bundle)
    a = render_report(bundle, acc, _info(demo=True))
    b = render_report(bundle, acc, _info(demo=True))
    assert a == b
    assert "<script>" not in a and "&lt;script&gt;alert(1)&lt;/script&gt;" in a
    assert "DEMO IDENTITY - NOT FOR COMPLIANCE USE" in a
    assert "HCR-PREV" in a and "REGRESSION" in a and "-0.2" in a
    created = dt.datetime(2026, 11, 25, 16, tzinfo=dt.UTC)
    assert render_pdf(a, bundle.file_bytes, created) == render_pdf(b, bundle.file_bytes, created)
    plain = render_report(parse_results(json.dumps(make_results(n_inputs=8)).encode()), acc, _info())
    assert "None: no previous report" in plain and "DEMO IDENTITY" not in plain


def test_infinite_radius_renders_as_infinite() -> None:
    from tests.reports.test_bundle import unchecked_bundle, with_infinite_radius

    raw, _ = with_infinite_radius(make_results(n_inputs=8))
    bundle = unchecked_bundle(raw)
    html = render_report(bundle, acceptance(bundle), None)
    assert '<td class="num">infinite</td>' in html and "Unsigned draft" in html
    assert not any(math.isnan(float(x)) for x in re.findall(r"\d+\.\d+", html)[:50])


def test_other_reports_extend_the_base_and_sign_the_same_way(tmp_path: Path) -> None:
    """The verifier's report path, here with a CA-issued identity: both leaves must chain to the CA root."""
    ca_cert, ca_key = make_ca(tmp_path / "ca")
    identity = init_identity(tmp_path / "id", "Vera Verifier", "Verifier", "Org", ca_cert=ca_cert, ca_key=ca_key)
    env = environment()
    tpl = env.from_string('{% extends "report-base.html.j2" %}{% block body %}<h1>{{ title }}</h1>'
                          "<p>all 12 checks passed</p>{% endblock %}")
    html = tpl.render(title="Verification <report>", generator="hybridcert test", demo=False)
    assert "Verification &lt;report&gt;" in html and "@page" in html
    out = tmp_path / "vout"
    out.mkdir()
    (out / "verification.html").write_text(html)
    (out / "verification.json").write_text('{"ok": true}')
    sign_html_report(out, "verification.html", identity, extra_subjects=["verification.json"],
                     attach="verification.json")
    checks = verify_report(out, ca_cert, verification_report())
    assert all(c.ok for c in checks), [c.line() for c in checks if not c.ok]
    stranger = init_identity(tmp_path / "stranger", "Vera Verifier", "Verifier", "Org")
    strange = verify_report(out, stranger.pades_cert, verification_report())
    assert not any(c.ok for c in strange if c.name.startswith(("DSSE", "PAdES")))
    assert {"sha256 verification.html", "sha256 verification.pdf", "PAdES verification.pdf"} <= {c.name for c in checks}
    (out / "verification.json").write_text('{"ok": false}')
    assert not all(c.ok for c in verify_report(out, ca_cert, verification_report()))
    assert render("report-base.html.j2", {"title": "t", "generator": "g", "demo": True}).count("DEMO IDENTITY") == 1


def _all_abstain(raw: dict) -> dict:  # type: ignore[type-arg]
    for rec in raw["inputs"]:
        rec.update(decision="abstain", correct=False, frontier=[])
    return raw


@pytest.mark.parametrize(
    "edit",
    [
        _all_abstain,
        lambda raw: {**raw, "inputs": raw["inputs"][:1], "aggregates": {**raw["aggregates"], "n_inputs": 1}},
        lambda raw: {**raw, "acceptance": None},
        lambda raw: {**raw, "config": {**raw["config"], "max_budget": 40}},
    ],
)
def test_edge_cases_render(edit: object) -> None:
    raw = edit(make_results(n_inputs=12))  # type: ignore[operator]
    bundle = parse_results(json.dumps(raw).encode())
    html = render_report(bundle, acceptance(bundle), None)
    for heading in SECTIONS:
        assert heading in html
    assert html.count("<svg") == 3


def test_sequential_method_is_stated() -> None:
    from tests.reports.test_bundle import _sequential

    bundle = parse_results(json.dumps(_sequential(make_results(n_inputs=10))).encode())
    html = render_report(bundle, acceptance(bundle), None)
    assert "sequential estimation: up to n = 1000 per input, in chunks of 100" in html
    assert "beta-mixture-cs: anytime-valid CS" in html


def _page_texts(pdf: Path) -> list[str]:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))  # type: ignore[union-attr]
    return [subprocess.run(["pdftotext", "-layout", "-f", str(p), "-l", str(p), str(pdf), "-"], capture_output=True,
                           text=True, check=True).stdout for p in range(1, pages + 1)]


def test_per_input_table_one_line_per_input_and_40_rows_per_page(signed: SignedReport) -> None:
    """Issue 10: ids, words and counts do not wrap (every row is one text line holding the id, the counts and
    the decision), and a full A4 page holds at least 40 rows."""
    _need("pdftotext")
    raw = json.loads((signed.folder / "results.json").read_text())
    pages = _page_texts(signed.folder / "report.pdf")
    rows_per_page = []
    for text in pages:
        lines = [ln for ln in text.splitlines() if re.match(r"\s*x\d{4}\s", ln)]
        rows_per_page.append(len(lines))
        for ln in lines:
            rec = next(r for r in raw["inputs"] if r["id"] == ln.split()[0])
            assert f"{rec['counts']['target']}/{rec['counts']['n']}" in ln, ln
            assert re.search(rf"\b{rec['decision']}\b", ln) and re.search(rf"\b{rec['side']}\b", ln), ln
    assert sum(rows_per_page) == len(raw["inputs"])
    assert max(rows_per_page) >= 40, rows_per_page


def test_rate_table_uses_the_configured_radii(signed: SignedReport) -> None:
    raw = json.loads((signed.folder / "results.json").read_text())
    p = _Cells()
    p.feed((signed.folder / "report.html").read_text())
    shown = sorted({float(c["data-radius"]) for c in p.cells})
    criteria = {c["radius"] for c in raw["acceptance"]}
    assert shown == sorted(set(raw["config"]["radii"]) | criteria)


def test_verifier_html_shows_the_proven_worst_case() -> None:
    """The verifier's report shows the proven lower bound on p_adv (not tau under another name) and the margin."""
    from hybridcert.verifier.html import render_html

    cert = {"id": "x1", "budget": 1, "radius": 0.25, "radius_infinite": False, "tau": 0.5, "proved": True,
            "lower_bound": 0.5123456789, "method": "interval", "reason": ""}
    bad = {**cert, "id": "x2", "proved": False, "lower_bound": 0.0, "reason": "below tau"}
    html = render_html(results={"source": "r.json", "noise": {"kernel": "uniform-other", "vocab_size": 10,
                                                               "beta": 0.5, "sigma": 0.5},
                                "n_certificates": 2, "n_failed": 1, "passed": False, "certificates": [cert, bad]})
    row = html[html.index('data-id="x1"'):html.index('data-id="x2"')]
    assert '<td class="num worst-case">0.5123456789</td>' in row and "1.235e-02" in row
    assert "proven worst case p_adv" in html
    assert '<td class="num worst-case">not proven</td>' in html[html.index('data-id="x2"'):]


def test_demo_banner_on_every_pdf_page(tmp_path: Path) -> None:
    """Issue 10: a demo-signed report says so on every printed page (a running element in the top margin)."""
    _need("pdftotext")
    tpl = environment().from_string('{% extends "report-base.html.j2" %}{% block body %}'
                                    "{% for i in range(130) %}<p>line {{ i }}</p>{% endfor %}{% endblock %}")
    pdf = tmp_path / "demo.pdf"
    pdf.write_bytes(render_pdf(tpl.render(title="t", generator="g", demo=True), None,
                               dt.datetime(2026, 11, 25, tzinfo=dt.UTC)))
    pages = _page_texts(pdf)
    assert len(pages) >= 3
    assert all("DEMO IDENTITY - NOT FOR COMPLIANCE USE" in text for text in pages)
