"""The one writer (hybridcert.results.atomic): exclusive, atomic, no planted links, nothing left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hybridcert.results import atomic
from hybridcert.results.atomic import open_append_nofollow, write_bytes_atomic, write_text_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_writes_bytes_with_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_bytes_atomic(target, b"abc")
    assert target.read_bytes() == b"abc" and _mode(target) == 0o644
    write_text_atomic(target, "d\u00e9f", mode=0o600)
    assert target.read_text(encoding="utf-8") == "d\u00e9f" and _mode(target) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_planted_link_at_old_tmp_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "signing.key"
    victim.write_bytes(b"SECRET")
    folder = tmp_path / "audit"
    folder.mkdir()
    (folder / "report.html.tmp").symlink_to(victim)
    write_bytes_atomic(folder / "report.html", b"<html>")
    assert victim.read_bytes() == b"SECRET"
    assert (folder / "report.html").read_bytes() == b"<html>"
    assert not (folder / "report.html").is_symlink()


def test_reports_writer_does_not_follow_planted_tmp_link(tmp_path: Path) -> None:
    """Regression (issue 10): ``report`` wrote NAME.tmp through a link planted there (any file overwritten)."""
    publish = pytest.importorskip("hybridcert.reports.publish")
    victim = tmp_path / "victim"
    victim.write_bytes(b"SECRET")
    folder = tmp_path / "audit"
    folder.mkdir()
    (folder / "report.pdf.tmp").symlink_to(victim)
    publish._write(folder / "report.pdf", b"%PDF")
    assert victim.read_bytes() == b"SECRET"
    assert (folder / "report.pdf").read_bytes() == b"%PDF"


def test_planted_link_at_target_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"SECRET")
    target = tmp_path / "results.json"
    target.symlink_to(victim)
    with pytest.raises(ValueError, match="symbolic link"):
        write_bytes_atomic(target, b"{}")
    assert victim.read_bytes() == b"SECRET" and target.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "victim"]


def test_no_leftover_temp_after_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "results.json"
    target.write_bytes(b"old")

    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_bytes_atomic(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_reports_writer_leaves_nothing_when_the_rename_fails(tmp_path: Path) -> None:
    """Regression: the old ``_write`` left a NAME.tmp behind when the rename failed."""
    publish = pytest.importorskip("hybridcert.reports.publish")
    target = tmp_path / "report.html"
    target.mkdir()
    (target / "keep").write_bytes(b"")
    with pytest.raises((ValueError, OSError)):
        publish._write(target, b"<html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_no_overwrite_is_exclusive(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"SECRET")
    key = tmp_path / "dsse.key"
    key.symlink_to(victim)
    with pytest.raises((FileExistsError, ValueError)):
        write_bytes_atomic(key, b"PRIVATE", 0o600, overwrite=False)
    assert victim.read_bytes() == b"SECRET"
    fresh = tmp_path / "fresh.key"
    write_bytes_atomic(fresh, b"PRIVATE", 0o600, overwrite=False)
    assert fresh.read_bytes() == b"PRIVATE" and _mode(fresh) == 0o600
    with pytest.raises(FileExistsError):
        write_bytes_atomic(fresh, b"OTHER", 0o600, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dsse.key", "fresh.key", "victim"]


def test_append_refuses_links(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"SECRET")
    log = tmp_path / "results.log.jsonl"
    log.symlink_to(victim)
    with pytest.raises(ValueError, match="symbolic link"):
        open_append_nofollow(log)
    assert victim.read_bytes() == b"SECRET"
    plain = tmp_path / "plain.jsonl"
    with open_append_nofollow(plain) as fh:
        fh.write("a\n")
    with open_append_nofollow(plain) as fh:
        fh.write("b\n")
    assert plain.read_text() == "a\nb\n"


def test_results_json_mode_0644(tmp_path: Path) -> None:
    from hybridcert.results.canonical import write_json_atomic

    write_json_atomic(tmp_path / "results.json", {"a": 1})
    assert _mode(tmp_path / "results.json") == 0o644


def test_new_log_gets_its_mode_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        with open_append_nofollow(tmp_path / "results.log.jsonl") as fh:
            fh.write("{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "results.log.jsonl").stat().st_mode) == 0o644
