"""Fixtures for the audit tests: a small demo audit (real demo filter, real digits) in a temporary folder."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hybridcert.audits.config import AuditSpec, parse_spec
from hybridcert.audits.demo.run import write_demo


@pytest.fixture(scope="session")
def demo_base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A demo benchmark of 6 inputs and its audit.toml as a dict (n = 200 keeps the tests fast)."""
    root = tmp_path_factory.mktemp("demo-base")
    config = write_demo(root, n_inputs=6, n=200)
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    data["certify"]["n0"] = 32
    data["run"]["wave"] = 4
    return root, data


def _merge(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture()
def make_spec(demo_base: tuple[Path, dict[str, Any]]) -> Callable[..., AuditSpec]:
    """make_spec(certify={"n": 100}, ...) -> a validated spec over the demo benchmark."""
    root, data = demo_base

    def make(**updates: Any) -> AuditSpec:
        return parse_spec(_merge(data, updates), root)

    return make


def toml_value(value: Any) -> str:
    """A value in TOML spelling (JSON's, except inf and nan)."""
    import json
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


@pytest.fixture()
def write_config(demo_base: tuple[Path, dict[str, Any]], tmp_path: Path) -> Callable[..., Path]:
    """write_config(**updates) -> path of an audit.toml (in the demo folder, so relative paths resolve)."""
    root, data = demo_base
    counter = iter(range(10**6))

    def write(**updates: Any) -> Path:
        merged = _merge(data, updates)
        lines = [f"seed = {toml_value(merged.pop('seed'))}"]
        for section, values in merged.items():
            lines.append(f"[{section}]")
            for key, value in values.items():
                lines.append(f"{key} = {toml_value(value)}")
        path = root / f"audit-{tmp_path.name}-{next(counter)}.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Any:
    """The audit tests use small tensors: one torch thread is faster on a shared CPU (restored after)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    """Hugging Face libraries stay offline (the tiny guards are built locally)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield
