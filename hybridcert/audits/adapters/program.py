"""Adapter (b): saved programs taking (tokens [B, L], images [B, C, H, W]): TorchScript and ``torch.export``.

The program returns logits [B, K] (decision: argmax == ``target_index``) or scores [B] (decision: score > 0),
like adapter (a), and receives the sampled token ids themselves (docs/theory.md §7).

Why both formats need ``allow_pickle=True`` (checked in torch 2.13's loaders):

- ``torch.export`` (``.pt2``, read by ``torch.export.load``): the archive may mark weights and constants as
  pickled, and the loader then calls ``torch.load(..., weights_only=False)`` and ``pickle.loads`` on them:
  arbitrary Python objects, arbitrary code. torch's own docstring says "never load data from an untrusted
  source".
- TorchScript (``torch.jit.save``, read by ``torch.jit.load``): the pickles inside are read by TorchScript's
  restricted unpickler, but the archive carries TorchScript code that runs when the filter is called, and that
  code may call any registered operator, including ones that read and write files (``torch.from_file``; the
  tests show it). Loading an untrusted TorchScript file is running untrusted code.

So a program file is refused unless the user passes ``allow_pickle=True`` (trusting the file). For untrusted
weights use adapter (a): the architecture comes from code you installed, the weights from safetensors.
Programs exported with a fixed batch size accept only that batch size: export with a dynamic batch dimension
(``torch.export.Dim``) or use TorchScript.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from hybridcert.audits.adapters.common import (
    PickleRefusedError,
    autocast,
    check_inputs,
    clear_errors,
    decide,
    resolve_device,
    sha256_file,
    sniff_format,
)

__all__ = ["ProgramFilter", "load_export", "load_torchscript"]

_WHY = {
    "torchscript": (
        "a TorchScript archive carries code that runs when the filter is called and may use any torch "
        "operator, including ones that read and write files"
    ),
    "export": (
        "torch.export.load unpickles the archive's pickled weights and constants with "
        "torch.load(weights_only=False) / pickle.loads, which can run arbitrary code"
    ),
}


def _check_program_file(path: Path, kind: str, allow_pickle: bool) -> None:
    if not path.is_file():
        raise ValueError(f"{kind} file not found: {path}")
    if sniff_format(path) != "zip":
        raise ValueError(f"{path} is not a {kind} archive (expected a zip file, as torch writes them)")
    if not allow_pickle:
        raise PickleRefusedError(
            f"refusing {kind} file {path.name}: {_WHY[kind]}. Pass allow_pickle=true only for a file you trust, "
            "or use the 'module' adapter (class path + safetensors weights), which runs no code from files"
        )


def load_torchscript(path: Path, allow_pickle: bool = False) -> torch.nn.Module:
    """``torch.jit.load`` onto the CPU, after the opt-in check (see the module docstring)."""
    path = Path(path)
    _check_program_file(path, "torchscript", allow_pickle)
    with clear_errors(f"torch.jit.load({path.name})"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript; still supported
        module: torch.nn.Module = torch.jit.load(str(path), map_location="cpu")  # type: ignore[no-untyped-call]
    return module.eval()


def load_export(path: Path, allow_pickle: bool = False) -> torch.nn.Module:
    """``torch.export.load(path).module()``, after the opt-in check (see the module docstring)."""
    path = Path(path)
    _check_program_file(path, "export", allow_pickle)
    with clear_errors(f"torch.export.load({path.name})"):
        program = torch.export.load(str(path))
    module: torch.nn.Module = program.module()
    return module


class ProgramFilter:
    """A ``Filter`` around a loaded TorchScript or exported program (``device="auto"`` picks CUDA if present)."""

    def __init__(
        self,
        program: torch.nn.Module,
        device: str | torch.device = "cpu",
        target_index: int = 1,
        amp: bool = False,
        weights_sha256: str | None = None,
        name: str = "program",
    ) -> None:
        self.device = resolve_device(device)
        self.module = program.to(self.device)
        self.target_index = target_index
        self.amp = amp
        self.weights_sha256 = weights_sha256
        self.name = name

    @classmethod
    def load(
        cls,
        kind: str,
        path: Path,
        device: str | torch.device = "cpu",
        target_index: int = 1,
        amp: bool = False,
        allow_pickle: bool = False,
    ) -> ProgramFilter:
        """``kind`` is ``"torchscript"`` or ``"export"``; ValueError for anything else."""
        loaders: dict[str, Callable[[Path, bool], torch.nn.Module]] = {
            "torchscript": load_torchscript,
            "export": load_export,
        }
        if kind not in loaders:
            raise ValueError(f"program kind must be 'torchscript' or 'export', got {kind!r}")
        path = Path(path)
        program = loaders[kind](path, allow_pickle)
        return cls(program, device, target_index, amp, weights_sha256=sha256_file(path), name=f"{kind}:{path.name}")

    @torch.inference_mode()
    def __call__(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        check_inputs(tokens, images)
        try:
            with autocast(self.device, self.amp), clear_errors(f"running {self.name}"):
                out = self.module(tokens.to(self.device), images.to(self.device))
        except AssertionError as exc:  # torch.export's shape guards
            raise ValueError(
                f"running {self.name} failed: {exc}; a program exported with a fixed batch size takes only that "
                "size (export with a dynamic batch dimension, torch.export.Dim)"
            ) from exc
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"{self.name} must return a tensor, got {type(out).__name__}")
        return decide(out, self.target_index)
