"""Report pipeline timings against the number of inputs: parse + validate, HTML, PDF/A, PAdES, DSSE, verify.

Run: python benchmarks/report_render.py [N ...]   (default 30 300 1000). Prints seconds per stage and the ratio
of each size's total to the smallest size's total (the baseline, measured in the same run).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hybridcert.reports.bundle import load_results  # noqa: E402
from hybridcert.reports.html import render_report  # noqa: E402
from hybridcert.reports.keys import init_identity  # noqa: E402
from hybridcert.reports.pdf import render_pdf, sign_pdf  # noqa: E402
from hybridcert.reports.publish import render_and_sign, verify_report  # noqa: E402
from hybridcert.reports.summary import acceptance  # noqa: E402
from tests.reports.synthetic import make_results, write_results  # noqa: E402


def run(n: int, root: Path, identity_dir: Path) -> dict[str, float]:
    folder = root / f"n{n}"
    write_results(folder, make_results(n_inputs=n))
    ident = init_identity(identity_dir / f"id{n}", "Bench", "bench", "bench")
    t: dict[str, float] = {}
    s = time.perf_counter()
    bundle = load_results(folder)
    t["parse"] = time.perf_counter() - s
    s = time.perf_counter()
    html = render_report(bundle, acceptance(bundle), None)
    t["html"] = time.perf_counter() - s
    s = time.perf_counter()
    pdf = render_pdf(html, bundle.file_bytes, bundle.results.created_at)
    t["pdf"] = time.perf_counter() - s
    s = time.perf_counter()
    sign_pdf(pdf, ident, reason="bench")
    t["pades"] = time.perf_counter() - s
    s = time.perf_counter()
    render_and_sign(folder, ident)
    t["render_and_sign"] = time.perf_counter() - s
    s = time.perf_counter()
    checks = verify_report(folder, ident.pades_cert)
    t["verify"] = time.perf_counter() - s
    assert all(c.ok for c in checks)
    t["pages_kb"] = (folder / "report.pdf").stat().st_size / 1024
    return t


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [30, 300, 1000]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = {n: run(n, root, root) for n in sizes}
    base = rows[sizes[0]]["render_and_sign"]
    print(f"{'N':>6} {'parse':>7} {'html':>7} {'pdf':>7} {'pades':>7} {'total':>7} {'verify':>7} {'pdf KiB':>8} "
          f"{'x base':>7}")
    for n, t in rows.items():
        print(f"{n:>6} {t['parse']:7.2f} {t['html']:7.2f} {t['pdf']:7.2f} {t['pades']:7.2f} "
              f"{t['render_and_sign']:7.2f} {t['verify']:7.2f} {t['pages_kb']:8.0f} {t['render_and_sign'] / base:7.2f}")


if __name__ == "__main__":
    main()
