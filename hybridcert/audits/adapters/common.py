"""Shared pieces of the filter adapters: devices, mixed precision, file safety checks, read-outs.

File safety (issue 4): nothing is unpickled unless the user opts in. Formats are recognised by their first
bytes, not by their extension, so a pickle renamed ``.safetensors`` is still refused:

- safetensors: 8-byte little-endian header length, then a JSON header starting with ``{``;
- zip archive (``PK\\x03\\x04``): what ``torch.save`` (since 1.6), TorchScript and ``torch.export`` write;
  ``torch.save`` archives hold a ``data.pkl`` pickle;
- raw pickle (``\\x80`` then the protocol number 2..5): legacy ``torch.save`` and plain ``pickle.dump``.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path

import torch

ZIP_MAGIC = b"PK\x03\x04"
DEVICE_HELP = "device must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"


class PickleRefusedError(ValueError):
    """A file would have to be unpickled (or is a program that may run code) and the user did not opt in."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes (streams, so large weights do not load into memory)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def directory_sha256(path: Path) -> str:
    """sha256 of a model directory: over the sorted lines ``<sha256 of file>  <relative path>`` of its files.

    ValueError when ``path`` is not a directory (a model directory named in a config must exist)."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"model directory not found: {path}")
    lines = [f"{sha256_file(p)}  {p.relative_to(path).as_posix()}\n" for p in sorted(path.rglob("*")) if p.is_file()]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA device 0 when CUDA is available, else the CPU; anything else is parsed by torch.

    ValueError for a string torch does not parse, or for a CUDA device on a machine without CUDA.
    """
    if isinstance(device, torch.device):
        resolved = device
    elif device == "auto":
        return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    else:
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"{DEVICE_HELP}, got {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(resolved)!r} requested but CUDA is not available here (use 'auto' or 'cpu')")
    return resolved


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[object]:
    """Mixed precision on ``device`` when ``enabled``: bfloat16 autocast (CPU and CUDA), else a no-op."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def sniff_format(path: Path) -> str:
    """``"safetensors"``, ``"zip"``, ``"pickle"`` or ``"unknown"``, from the file's first bytes."""
    with Path(path).open("rb") as fh:
        head = fh.read(9)
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) == 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        size = Path(path).stat().st_size
        if 0 < header_len <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    return "unknown"


def decide(out: torch.Tensor, target_index: int) -> torch.Tensor:
    """Decision from a model output: logits [B, K] -> argmax == target_index; scores [B] -> score > 0.

    ``target_index`` must lie in [0, K) for logits (ValueError otherwise: a wrong index would silently give a
    filter that never fires). NaN in the output is a ValueError too (argmax and ``> 0`` would turn a broken
    model, e.g. an overflow under mixed precision, into silent decisions).
    """
    if out.is_floating_point() and bool(torch.isnan(out).any()):
        raise ValueError("the filter's output contains NaN (numerical overflow? try amp=false)")
    if out.ndim == 2:
        if not 0 <= target_index < out.shape[1]:
            raise ValueError(f"target_index {target_index} is out of range for logits with {out.shape[1]} classes")
        decision: torch.Tensor = out.argmax(dim=1) == target_index
        return decision
    if out.ndim == 1:
        positive: torch.Tensor = out > 0
        return positive
    raise ValueError(f"filter output must have shape [B, K] or [B], got {tuple(out.shape)}")


def decision_margin(out: torch.Tensor, target_index: int) -> torch.Tensor:
    """A model output as one differentiable score per sample, > 0 exactly where ``decide`` says class 1 (ties
    aside): logits [B, K] -> logit[target] - max over the other classes; scores [B] unchanged. Used by the
    gradient attack's protocol (hybridcert.attacks.protocol.GradientFilter)."""
    if out.ndim == 1:
        return out
    if out.ndim != 2 or not 0 <= target_index < out.shape[1]:
        raise ValueError(f"filter output must be [B] or [B, K] with target_index < K, got {tuple(out.shape)}")
    others = torch.cat([out[:, :target_index], out[:, target_index + 1:]], dim=1)
    margin: torch.Tensor = out[:, target_index] - others.max(dim=1).values
    return margin


def check_inputs(tokens: torch.Tensor, images: torch.Tensor) -> None:
    """ValueError unless tokens is an integer [B, L] tensor and images a floating [B, C, H, W] tensor, same B."""
    if tokens.ndim != 2 or tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
        raise ValueError(f"tokens must be an integer tensor [B, L], got {tokens.dtype} {tuple(tokens.shape)}")
    if images.ndim != 4 or not images.dtype.is_floating_point:
        raise ValueError(f"images must be a float tensor [B, C, H, W], got {images.dtype} {tuple(images.shape)}")
    if tokens.shape[0] != images.shape[0]:
        raise ValueError(f"batch sizes differ: tokens {tokens.shape[0]}, images {images.shape[0]}")


@contextlib.contextmanager
def clear_errors(what: str) -> Iterator[None]:
    """Turn a model's RuntimeError (shape mismatch inside forward and the like) into a one-line ValueError."""
    try:
        yield
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{what} failed: {first}") from exc
