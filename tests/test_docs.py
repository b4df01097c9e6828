"""The documents the code cites: every citation of the mathematics resolves to a section of docs/theory.md, and
the installed package carries docs/theory.md and docs/report.md (reports cite them)."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THEORY = ROOT / "docs" / "theory.md"
REPORT = ROOT / "docs" / "report.md"

#: "docs/theory.md §4", "docs/theory.md §4, §6", "docs/theory.md §3 and §4", "docs/theory.md §4-§6"
NEW = re.compile(r"docs/theory\.md((?:\s*(?:,|and|-|–)?\s*§\s*\d+)+)")
#: the form the code used before docs/theory.md existed: "THEORY 4", "THEORY.md 1, 3", "THEORY 3 and 4"
OLD = re.compile(r"\bTHEORY(?:\.md)?((?:(?:\s*,|\s+and)?\s+\d+)+)")
SCANNED_SUFFIXES = {".py", ".j2", ".md", ".html", ".css", ".toml", ".txt"}


def _sections(path: Path) -> set[int]:
    return {int(m) for m in re.findall(r"^## (\d+)\. ", path.read_text(encoding="utf-8"), flags=re.M)}


def _scanned_files() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    files += sorted(p for p in (ROOT / "hybridcert").rglob("*") if p.suffix in SCANNED_SUFFIXES and p.is_file())
    return [p for p in files if p.is_file()]


def citations(text: str, patterns: tuple[re.Pattern[str], ...] = (NEW, OLD)) -> list[tuple[str, list[int]]]:
    """(the citation as written, the section numbers it names) for every citation of docs/theory.md in ``text``
    (of docs/report.md with ``patterns=(NEW_REPORT,)``); a range "§4-§6" names 4, 5 and 6."""
    found = []
    for pattern in patterns:
        for m in pattern.finditer(text):
            numbers = [int(n) for n in re.findall(r"\d+", m.group(1))]
            if re.search(r"§?\d+\s*[-–]\s*§?\d+", m.group(1)) and len(numbers) == 2:
                numbers = list(range(numbers[0], numbers[1] + 1))
            found.append((m.group(0), numbers))
    return found


def test_theory_has_the_ten_numbered_sections() -> None:
    assert _sections(THEORY) == set(range(1, 11))


def test_report_doc_numbers_the_twelve_report_sections() -> None:
    numbers = [int(m) for m in re.findall(r"^### (\d+)\. ", REPORT.read_text(encoding="utf-8"), flags=re.M)]
    assert numbers == list(range(1, 13))


def test_the_scanner_finds_both_forms_and_a_dangling_section() -> None:
    text = "see THEORY 4, 6 and THEORY.md 3 and 4; docs/theory.md §2 and §9; docs/theory.md §4-§6; THEORY8 = x"
    assert [n for _, n in citations(text)] == [[2, 9], [4, 5, 6], [4, 6], [3, 4]]
    assert citations("docs/theory.md §11")[0][1] == [11]


def test_every_theory_citation_resolves_to_a_section() -> None:
    sections = _sections(THEORY)
    dangling = []
    n_citations = 0
    for path in _scanned_files():
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for written, numbers in citations(line):
                n_citations += 1
                if not numbers or not set(numbers) <= sections:
                    dangling.append(f"{path.relative_to(ROOT)}:{line_no}: {written!r}")
    assert n_citations > 50  # the scan reaches the code
    assert not dangling, "citations of sections docs/theory.md does not have:\n" + "\n".join(dangling)


def test_citations_name_the_file_that_exists() -> None:
    """Issue 11: the code and the signed report cite "docs/theory.md §n", never the old "THEORY n" / "THEORY.md n"
    (no THEORY.md ships; the rendered report said "(THEORY.md 4)" while docs/report.md promises docs/theory.md)."""
    old = []
    for path in _scanned_files() + sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py")):
        if path.name == "test_docs.py":
            continue
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            old += [f"{path.relative_to(ROOT)}:{line_no}: {m.group(0)!r}" for m in OLD.finditer(line)]
            if "THEORY.md" in line:
                old.append(f"{path.relative_to(ROOT)}:{line_no}: THEORY.md")
    assert not old, "cite docs/theory.md §n instead:\n" + "\n".join(old)


#: "docs/report.md §7", "docs/report.md §7, §8", "docs/report.md §1-§12"
NEW_REPORT = re.compile(r"docs/report\.md((?:\s*(?:,|and|-|–)?\s*§\s*\d+)+)")


def test_report_citations_name_a_section_of_docs_report() -> None:
    """Citations of the report layout say "docs/report.md §n" with n one of its twelve sections, never the old
    bare "REPORT.md" (no such file ships)."""
    sections = {int(m) for m in re.findall(r"^### (\d+)\. ", REPORT.read_text(encoding="utf-8"), flags=re.M)}
    assert citations("docs/report.md §1-§12; docs/report.md §7, §8", (NEW_REPORT,)) == [
        ("docs/report.md §1-§12", list(range(1, 13))), ("docs/report.md §7, §8", [7, 8])]
    bad = []
    n_citations = 0
    files = _scanned_files() + sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))
    for path in files:
        if path.name == "test_docs.py":
            continue
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            where = f"{path.relative_to(ROOT)}:{line_no}"
            for written, numbers in citations(line, (NEW_REPORT,)):
                n_citations += 1
                if not numbers or not set(numbers) <= sections:
                    bad.append(f"{where}: {written!r} names a section docs/report.md does not have")
            if re.search(r"(?<![/\w])REPORT\.md\b", line):
                bad.append(f"{where}: REPORT.md: cite docs/report.md §n")
    assert n_citations >= 5  # the scan reaches the code
    assert not bad, "\n".join(bad)


@pytest.mark.slow  # builds a wheel (pip fetches the build backend)
def test_the_wheel_carries_the_cited_documents(tmp_path: Path) -> None:
    """Reports cite docs/theory.md and docs/report.md: a wheel installs them as hybridcert/docs/*.md."""
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 and "hatchling" in proc.stderr and "No matching distribution" in proc.stderr:
        pytest.skip("no package index to fetch the build backend from")
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("hybridcert-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert zf.read("hybridcert/docs/theory.md") == THEORY.read_bytes()
        assert zf.read("hybridcert/docs/report.md") == REPORT.read_bytes()
    assert "hybridcert/templates/report.html.j2" in names


def test_readme_is_short_and_keeps_the_commands_ci_and_users_run() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 220
    lines = text.splitlines()
    assert ".venv/bin/python -m pytest -q" in lines  # .ci/run runs exactly this
    (install,) = [line for line in lines if line.startswith("python3 -m venv .venv")]
    assert "hybridcert demo --out demo-out" in install
    for constraints in re.findall(r"-c (\S+)", install):
        assert (ROOT / constraints).is_file(), f"the README installs with {constraints}, which is not in the repo"
    for link in re.findall(r"\]\(([^)#]+)\)", text):
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"
