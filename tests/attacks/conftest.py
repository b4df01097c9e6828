"""Fixtures for the attack tests: a 4-input demo audit (real demo filter, real digits), certified once."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch

from hybridcert.audits.demo.run import write_demo

SMALL = {"steps": 2, "samples": 8, "candidates": 4, "topk": 4, "pgd_steps": 3}


@pytest.fixture(scope="session")
def demo_config(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The demo's audit.toml (4 inputs, n = 200, n0 = 32) as a path and as a dict."""
    root = tmp_path_factory.mktemp("attack-demo")
    config = write_demo(root, n_inputs=4, n=200)
    text = config.read_text(encoding="utf-8").replace("n0 = 64", "n0 = 32")
    config.write_text(text, encoding="utf-8")
    return config, tomllib.loads(text)


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
