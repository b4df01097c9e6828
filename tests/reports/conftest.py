"""Shared fixtures for the report tests: identities and one signed audit folder per session (rendering a PDF
takes a few seconds, so tamper tests work on copies of it)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from hybridcert.reports.keys import Identity, init_identity
from hybridcert.reports.publish import SignedReport, render_and_sign
from tests.reports.synthetic import make_results, write_results

SIGNING_TIME = dt.datetime(2026, 11, 25, 17, 0, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    return init_identity(tmp_path_factory.mktemp("ids") / "ada", "Ada Auditor", "Lead auditor", "Example Org")


@pytest.fixture(scope="session")
def other_identity(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    return init_identity(tmp_path_factory.mktemp("ids") / "mallory", "Ada Auditor", "Lead auditor", "Example Org")


@pytest.fixture(scope="session")
def signed(tmp_path_factory: pytest.TempPathFactory, identity: Identity) -> SignedReport:
    folder = tmp_path_factory.mktemp("audit")
    # 100 inputs: the per-input table fills at least one whole page (rows per page are tested)
    write_results(folder, make_results(n_inputs=100))
    return render_and_sign(folder, identity, signing_time=SIGNING_TIME)


@pytest.fixture()
def signed_copy(tmp_path: Path, signed: SignedReport) -> Path:
    """A fresh copy of the signed folder that a test may tamper with."""
    dest = tmp_path / "copy"
    shutil.copytree(signed.folder, dest)
    return dest
