"""The Ray executor (issue 7): the same results.json as the in-process executor, for fixed-n and sequential
audits, on a small local Ray cluster started once per session (slow: ray.init takes seconds)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hybridcert.audits.checkpoint import RESULTS_NAME
from hybridcert.audits.config import AuditSpec
from hybridcert.audits.runner import prepare, run_audit
from hybridcert.results.canonical import canonical_dumps
from hybridcert.results.schema import deterministic_view

SpecMaker = Callable[..., AuditSpec]


@pytest.fixture(scope="session")
def fault_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where ray_support.FlakyDemoFilterNet marks the faults it has injected (only on Ray workers)."""
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="session")
def ray_cluster(fault_dir: Path) -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    import os

    # the workers import hybridcert (and the tests' filter) from this checkout, as the driver does
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    env = {"PYTHONPATH": root + (os.pathsep + path if path else ""), "HYBRIDCERT_TEST_FAULTS": str(fault_dir)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    try:
        yield ray
    finally:
        ray.shutdown()


def results(spec: AuditSpec, out: Path, executor: str) -> dict:
    run_audit(prepare(spec), out, executor=executor)
    return json.loads((out / RESULTS_NAME).read_text(encoding="utf-8"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "certify",
    [{"n": 500, "chunk_size": 128},
     {"n": 1000, "chunk_size": 128, "stopping": "sequential", "requested": [[0, 0.25], [1, 0.1]]}],
    ids=["fixed", "sequential"],
)
def test_ray_gives_the_same_results_as_in_process(
    ray_cluster: Any, make_spec: SpecMaker, tmp_path: Path, certify: dict
) -> None:
    spec = make_spec(certify=certify)
    here = results(spec, tmp_path / "here", "in-process")
    there = results(spec, tmp_path / "ray", "ray")
    assert canonical_dumps(deterministic_view(here)) == canonical_dumps(deterministic_view(there))
    assert there["environment"]["executor"] == "ray" and here["environment"]["executor"] == "in-process"
    assert ray_cluster.is_initialized()  # an audit does not shut down a Ray it did not start


@pytest.mark.slow
def test_failed_work_items_are_retried(ray_cluster: Any, fault_dir: Path, make_spec: SpecMaker,
                                       tmp_path: Path) -> None:
    """One call raises and one kills its worker process (tests/audits/ray_support.py): the audit still finishes,
    with the in-process results (where the filter does not fail)."""
    spec = make_spec(certify={"n": 300, "chunk_size": 100},
                     filter={"class_path": "tests.audits.ray_support:FlakyDemoFilterNet"})
    here = results(spec, tmp_path / "here", "in-process")
    there = results(spec, tmp_path / "ray", "ray")
    assert (fault_dir / "raise").exists() and (fault_dir / "exit").exists()  # both faults did happen
    assert canonical_dumps(deterministic_view(here)) == canonical_dumps(deterministic_view(there))


@pytest.mark.slow
def test_cli_audit_executor_ray(ray_cluster: Any, write_config: Callable[..., Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hybridcert.cli import app

    config = write_config(certify={"n": 200})
    cli = CliRunner()
    ray_run = cli.invoke(app, ["audit", "--config", str(config), "--out", str(tmp_path / "r"), "--executor", "ray"])
    assert ray_run.exit_code == 0, ray_run.stdout + ray_run.stderr
    here = cli.invoke(app, ["audit", "--config", str(config), "--out", str(tmp_path / "h")])
    assert here.exit_code == 0
    a, b = (json.loads((tmp_path / d / RESULTS_NAME).read_text(encoding="utf-8")) for d in ("r", "h"))
    assert canonical_dumps(deterministic_view(a)) == canonical_dumps(deterministic_view(b))
    bad = cli.invoke(app, ["audit", "--config", str(config), "--out", str(tmp_path / "x"), "--executor", "dask"])
    assert bad.exit_code == 2 and "--executor must be in-process or ray" in bad.stderr


@pytest.mark.slow
def test_an_actor_that_cannot_load_the_filter_is_a_clear_error(ray_cluster: Any, make_spec: SpecMaker,
                                                              tmp_path: Path) -> None:
    spec = make_spec(filter={"class_path": "tests.audits.ray_support:UnloadableOnWorkersNet"})
    audit = prepare(spec)  # builds here: the variable that breaks it is set on the workers only
    with pytest.raises(ValueError, match="a Ray actor could not prepare the audit: .*cannot build the filter"):
        run_audit(audit, tmp_path / "o", executor="ray")
    assert ray_cluster.is_initialized()


@pytest.mark.slow
def test_the_sampling_device_is_resolved_against_the_cluster(ray_cluster: Any, make_spec: SpecMaker,
                                                             tmp_path: Path) -> None:
    """A driver need not have the cluster's GPUs: auto follows the cluster (here CPU only), cuda without GPUs
    in the cluster is a clear error, and an audit prepared for CUDA actors refuses to sample in-process."""
    from hybridcert.audits.executors import ray_sampling_device

    assert ray_sampling_device("auto") == "cpu" and ray_sampling_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="the Ray cluster has no GPU"):
        ray_sampling_device("cuda:0")
    with pytest.raises(ValueError, match="not supported with the Ray executor"):
        ray_sampling_device("mps")
    audit = prepare(make_spec(), sampling_device="cuda")  # built here on the CPU whatever this machine has
    assert audit.config.sampling_device == "cuda" and audit.device.type == "cpu"
    assert audit.config_hash != prepare(make_spec(run={"device": "cpu"})).config_hash  # CPU and CUDA streams differ
    with pytest.raises(ValueError, match="this audit samples on cuda"):
        run_audit(audit, tmp_path / "o", executor="in-process")
