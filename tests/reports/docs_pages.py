"""Render the report pages shown in the README and docs/report.md (docs/report-page-*.png, and the fullest
page of the per-input table as docs/report-inputs-page.png) from the bundled demo audit.

Run from the repository root: python -m tests.reports.docs_pages   (needs pdftoppm).
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import tempfile
from pathlib import Path

from hybridcert.audits.demo.run import write_demo
from hybridcert.audits.runner import audit_from_file
from hybridcert.reports.keys import demo_identity
from hybridcert.reports.publish import render_and_sign, verify_report

PAGES = {1: "report-page-1.png", 3: "report-page-3.png"}


def main(out: Path = Path("docs")) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "audit"
        audit_from_file(write_demo(folder, n_inputs=100, n=1000, device="cpu"), folder)
        ident = demo_identity(Path(tmp) / "demo-identity")
        render_and_sign(folder, ident, signing_time=dt.datetime(2026, 11, 25, 17, 0, tzinfo=dt.UTC))
        assert all(c.ok for c in verify_report(folder, ident.pades_cert))
        pages = dict(PAGES)
        pages[_fullest_inputs_page(folder / "report.pdf")] = "report-inputs-page.png"
        for page, name in pages.items():
            stem = Path(tmp) / f"page{page}"
            subprocess.run(["pdftoppm", "-r", "80", "-png", "-singlefile", "-f", str(page), "-l", str(page),
                            str(folder / "report.pdf"), str(stem)], check=True)
            shutil.copy(stem.with_suffix(".png"), out / name)
            print(f"wrote {out / name}")


def _fullest_inputs_page(pdf: Path) -> int:
    """The page of the per-input table with the most rows (demo ids are d0000, d0001, ...)."""
    import re

    counts = {}
    for page in range(1, 40):
        proc = subprocess.run(["pdftotext", "-layout", "-f", str(page), "-l", str(page), str(pdf), "-"],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            break
        counts[page] = sum(bool(re.match(r"\s*d\d{4}\s", line)) for line in proc.stdout.splitlines())
    page = max(counts, key=lambda p: counts[p])
    print(f"per-input table: {counts[page]} rows on page {page}")
    return page


if __name__ == "__main__":
    main()
