"""The bundled offline demo (issue 4): digits x digit names, a small filter, a full audit on CPU.

``hybridcert demo --out DIR`` writes the benchmark into ``DIR/data``, an ``audit.toml`` that reproduces the
run with ``hybridcert audit``, and the audit's ``results.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

KERNEL: Final = "uniform-other"
BETA = 0.75
SIGMA = 0.35
WEIGHTS = Path(__file__).with_name("demo_filter.safetensors")
