"""A demo filter that fails on a Ray worker: first call raises, second kills the worker process, later calls
work (faults once per marker file in ``$HYBRIDCERT_TEST_FAULTS``; without that variable it is the demo filter)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from hybridcert.audits.demo.model import DemoFilterNet


class FlakyDemoFilterNet(DemoFilterNet):
    def forward(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        faults = os.environ.get("HYBRIDCERT_TEST_FAULTS")
        if faults:
            for mode in ("raise", "exit"):
                marker = Path(faults) / mode
                try:
                    marker.open("x").close()  # atomic: exactly one call takes each fault
                except FileExistsError:
                    continue
                if mode == "raise":
                    raise RuntimeError("injected failure (test)")
                os._exit(1)
        return super().forward(tokens, images)


class UnloadableOnWorkersNet(DemoFilterNet):
    """The demo filter, except that it cannot be built on a Ray worker (as with weights missing on a node)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        if os.environ.get("HYBRIDCERT_TEST_FAULTS"):
            raise RuntimeError("cannot build the filter on this node (test)")
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
