"""Issue 10: ``report`` and ``verify-report`` read results.json through the one reader, so a file whose
certificates are computed at a threshold the configuration does not imply is refused (neither signed nor
accepted when someone else signed it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hybridcert.reports.keys import ANCHOR, Identity
from hybridcert.reports.publish import render_and_sign, verify_report
from tests.reports.conftest import SIGNING_TIME
from tests.reports.synthetic import make_results
from tests.results.hostile import at_wrong_threshold


def _hostile_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "audit"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(at_wrong_threshold(make_results(n_inputs=6))), encoding="utf-8")
    return folder


def test_report_refuses_certificates_at_the_wrong_threshold(tmp_path: Path, identity: Identity) -> None:
    folder = _hostile_folder(tmp_path)
    with pytest.raises(ValueError, match=r"threshold 0\.01 is not the one config\.tau=0\.5 implies"):
        render_and_sign(folder, identity, signing_time=SIGNING_TIME)
    assert sorted(p.name for p in folder.iterdir()) == ["results.json"]  # nothing written


@pytest.mark.slow
def test_verify_report_refuses_a_signed_file_at_the_wrong_threshold(
    tmp_path: Path, identity: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed by a version without the rule (simulated by switching the whole-file checks off while
    signing), then verified: the results check fails."""
    from hybridcert.results import reader

    folder = _hostile_folder(tmp_path)
    with monkeypatch.context() as m:
        m.setattr(reader, "check_results", lambda *a, **k: None)
        render_and_sign(folder, identity, signing_time=SIGNING_TIME)
    checks = verify_report(folder, identity.dsse_key.parent / ANCHOR)
    failed = [c for c in checks if not c.ok]
    assert failed and any("threshold 0.01" in c.detail for c in failed), [c.line() for c in checks]
    shutil.rmtree(folder)
