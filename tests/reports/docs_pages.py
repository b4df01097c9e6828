"""Render the two report pages shown in the README (docs/report-page-*.png) from the bundled demo audit.

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
        for page, name in PAGES.items():
            stem = Path(tmp) / f"page{page}"
            subprocess.run(["pdftoppm", "-r", "80", "-png", "-singlefile", "-f", str(page), "-l", str(page),
                            str(folder / "report.pdf"), str(stem)], check=True)
            shutil.copy(stem.with_suffix(".png"), out / name)
            print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
