"""Adapter (a): any ``torch.nn.Module`` given by a Python class path, with weights in safetensors.

The module's ``forward(tokens, images)`` returns logits [B, K] (decision: argmax == ``target_index``) or one
score per sample [B] (decision: score > 0). Weights are read with safetensors only: nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes (streams, so large weights do not load into memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_class(class_path: str) -> type[torch.nn.Module]:
    """Import ``package.module:ClassName`` (or ``package.module.ClassName``); ValueError when it is not a Module."""
    module_name, sep, attr = class_path.partition(":")
    if not sep:
        module_name, _, attr = class_path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"class path must look like 'package.module:ClassName', got {class_path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} for class path {class_path!r}: {exc}") from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ValueError(f"{class_path!r} is not a torch.nn.Module class")
    return cls


def load_safetensors_module(
    class_path: str, weights: Path, init_kwargs: dict[str, Any] | None = None
) -> torch.nn.Module:
    """Build ``class_path(**init_kwargs)`` and load a safetensors state dict into it (strict, eval mode)."""
    weights = Path(weights)
    if not weights.is_file():
        raise ValueError(f"weights file not found: {weights}")
    if weights.suffix != ".safetensors":
        raise ValueError(
            f"refusing {weights.name}: weights must be a .safetensors file (pickled checkpoints such as .pt, "
            ".pth, .bin or .ckpt can run arbitrary code when loaded)"
        )
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{weights} is not a valid safetensors file: {exc}") from exc
    module = import_class(class_path)(**(init_kwargs or {}))
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ValueError(f"weights {weights.name} do not match {class_path}: {first}") from exc
    return module.eval()


class ModuleFilter:
    """A ``Filter`` around a module whose forward takes (tokens [B, L], images [B, C, H, W])."""

    def __init__(
        self,
        module: torch.nn.Module,
        device: str | torch.device = "cpu",
        target_index: int = 1,
        amp: bool = False,
        weights_sha256: str | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.module = module.to(self.device).eval()
        self.target_index = target_index
        self.amp = amp
        self.weights_sha256 = weights_sha256

    @classmethod
    def load(
        cls,
        class_path: str,
        weights: Path,
        init_kwargs: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
        target_index: int = 1,
        amp: bool = False,
    ) -> ModuleFilter:
        module = load_safetensors_module(class_path, Path(weights), init_kwargs)
        return cls(module, device, target_index, amp, weights_sha256=sha256_file(Path(weights)))

    @torch.inference_mode()
    def __call__(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, enabled=self.amp):
            out = self.module(tokens, images)
        if out.ndim == 2:
            decision: torch.Tensor = out.argmax(dim=1) == self.target_index
            return decision
        if out.ndim == 1:
            positive: torch.Tensor = out > 0
            return positive
        raise ValueError(f"filter output must have shape [B, K] or [B], got {tuple(out.shape)}")
