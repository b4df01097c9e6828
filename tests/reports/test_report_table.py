"""The ``[report]`` table of audit.toml (intended purpose, input selection, preprocessing, out of scope) and the
re-run command reach results.json, so the report never says "not stated" for the demo (docs/report.md §2, §3,
§10)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from hybridcert.audits.config import ReportSpec, load_spec
from hybridcert.audits.demo.run import write_demo
from hybridcert.audits.runner import _report_fields, rerun_command
from hybridcert.results.schema import DatasetInfo, ModelInfo


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo(tmp_path_factory.mktemp("demo") / "out", n_inputs=4, n=10)


def test_demo_states_every_report_field(demo_config: Path) -> None:
    spec = load_spec(demo_config)
    for field in ("intended_purpose", "input_selection", "preprocessing", "out_of_scope"):
        assert getattr(spec.report, field), field
    audit = SimpleNamespace(spec=spec, model=ModelInfo(name="m", sha256="0" * 64),
                            dataset_info=DatasetInfo(name="d", sha256="1" * 64, n_inputs=4),
                            command=rerun_command(demo_config, demo_config.parent))
    fields = _report_fields(audit)  # type: ignore[arg-type]
    assert fields["model"].model_dump()["intended_purpose"] == spec.report.intended_purpose
    dataset = fields["dataset"].model_dump()
    assert dataset["selection"] == spec.report.input_selection and dataset["out_of_scope"]
    assert fields["command"] == f"hybridcert audit --config {demo_config} --out {demo_config.parent}"


@pytest.mark.parametrize(("table", "message"), [
    ({"intended_purpose": 3}, "intended_purpose"),
    ({"intended_purpose": ""}, "intended_purpose"),
    ({"purpose": "x"}, "purpose"),
    ({"out_of_scope": "x" * 2001}, "out_of_scope"),
])
def test_report_table_is_strict(demo_config: Path, tmp_path: Path, table: dict[str, object], message: str) -> None:
    from hybridcert.audits.config import parse_spec

    data = tomllib.loads(demo_config.read_text())
    data["report"] = table
    with pytest.raises(ValueError, match=message):
        parse_spec(data, demo_config.parent)


def test_report_table_is_optional() -> None:
    assert ReportSpec().intended_purpose is None
