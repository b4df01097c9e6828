"""Adapters that turn real model families into a ``Filter`` (tokens [B, L] + images [B, C, H, W] -> decisions [B]).

Every adapter receives the sampled token ids themselves (docs/theory.md §7: no decode and re-tokenise round trip) and
has the attributes ``device`` (a ``torch.device``), ``name`` and ``weights_sha256``. Entry point:
``load_filter(spec, base_dir)``, where ``spec`` is the ``[filter]`` table of ``audit.toml`` (a dict) or a
``FilterSpec``. Keys:

==================  =====================================  ==================================================
key                 applies to                             meaning
==================  =====================================  ==================================================
``type``            all                                    ``"module"``, ``"torchscript"``, ``"export"``,
                                                           ``"guard"`` (``"llava"`` is an alias)
``class_path``      module                                 ``"package.module:ClassName"`` of a
                                                           ``torch.nn.Module`` whose forward takes
                                                           (tokens, images)
``weights``         module                                 state dict file: ``.safetensors`` (pickles only
                                                           with ``allow_pickle``)
``init_kwargs``     module                                 keyword arguments for the class (default ``{}``)
``model_dir``       module                                 a model directory (e.g. a pretrained backbone),
                                                           passed to the class as keyword ``model_dir``;
                                                           hashed with the weights into the model sha256
``head``            module                                 the submodule (dotted attribute) the ``weights``
                                                           file fills, strictly (default: the whole module)
``path``            torchscript, export, guard             the program file (``torch.jit.save`` /
                                                           ``torch.export.save``) or the guard's model
                                                           directory (families: docs/guards.md)
``device``          all                                    ``"auto"`` (default: CUDA if present, else CPU),
                                                           ``"cpu"``, ``"cuda:0"``, ...
``amp``             all                                    bfloat16 autocast (default false)
``allow_pickle``    all                                    opt in to pickled weights / program files you trust
                                                           (default false; see ``common``, ``program``)
``target_index``    module, torchscript, export            class index of the target class for [B, K] logits
                                                           (default 1); [B] scores use score > 0
``preset``          guard                                  ``"llavaguard"`` or ``"llamaguard3-vision"``: default
                                                           prompt / policy, answer prefix and spellings
``dtype``           guard                                  ``"float32"`` (default), ``"bfloat16"``,
                                                           ``"float16"``: the weights' dtype
``prompt``          guard                                  full prompt with ``{image}`` and ``{text}`` (default:
                                                           the model's chat template around ``policy``)
``policy``          guard                                  user message holding ``{text}``, LlavaGuard-style
``answer_prefix``   guard                                  assistant text before the rating (default
                                                           ``{"rating": "``)
``safe_words``      guard                                  spellings of the safe answer, one token each
                                                           (default ``["Safe"]``)
``unsafe_words``    guard                                  spellings of the target answer, one token each
                                                           (default ``["Unsafe"]``)
``clamp_images``    guard                                  clamp noisy images to [0, 1] first (default true)
``batch_size``      guard                                  largest batch per forward pass (default: no limit)
``name``            all                                    the filter's name in results (default: the class
                                                           path, ``torchscript:<file>``, ``guard:<dir>``)
``version``         all                                    informational, for results (default ``"1"``)
==================  =====================================  ==================================================

Relative paths are resolved against ``base_dir`` (the directory of ``audit.toml``), and so is ``class_path``:
a module file ``NAME.py`` or a package folder ``NAME/`` there is imported first (``module.import_class``), so
a user's own model can sit next to the config. ``device`` and ``amp``
may also come from elsewhere (the ``[run]`` table): keyword arguments of ``load_filter`` override the spec.
Unknown keys, keys of another adapter type and missing required keys are ValueErrors naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from hybridcert.audits.adapters.common import PickleRefusedError, resolve_device, sha256_file
from hybridcert.audits.adapters.module import ModuleFilter, import_class, load_module, load_safetensors_module
from hybridcert.audits.adapters.program import ProgramFilter
from hybridcert.audits.config import GUARD_ONLY_KEYS, FilterSpec
from hybridcert.audits.filters import Filter

__all__ = [
    "FilterSpec",
    "ModuleFilter",
    "PickleRefusedError",
    "ProgramFilter",
    "import_class",
    "load_filter",
    "load_module",
    "load_safetensors_module",
    "resolve_device",
    "sha256_file",
]

def _spec(spec: FilterSpec | dict[str, Any]) -> FilterSpec:
    if isinstance(spec, FilterSpec):
        return spec
    try:
        return FilterSpec.model_validate(spec)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a table-wide problem (FilterSpec.check): its message names the key
            raise ValueError(msg) from None
        raise ValueError(f"filter.{'.'.join(str(p) for p in err['loc'])}: {msg}") from None


def load_filter(
    spec: FilterSpec | dict[str, Any],
    base_dir: Path | None = None,
    *,
    device: str | torch.device | None = None,
    amp: bool | None = None,
) -> Filter:
    """Build the filter a spec describes (ValueError for a bad spec; ``PickleRefusedError`` for pickles).

    ``device`` / ``amp``, when given, override the spec's keys. The result has ``device``, ``name`` and
    ``weights_sha256``.
    """
    s = _spec(spec)
    s.check()
    updates: dict[str, Any] = {}
    if device is not None:
        updates["device"] = str(device)
    if amp is not None:
        updates["amp"] = amp
    if updates:
        s = s.model_copy(update=updates)
    filt = _build(s, base_dir)
    if s.name:
        filt.name = s.name
    built: Filter = filt
    return built


def _build(s: FilterSpec, base_dir: Path | None) -> Any:
    base = Path(base_dir) if base_dir is not None else Path.cwd()

    def resolve(p: Path | None) -> Path:
        assert p is not None  # checked by FilterSpec.check
        return p if p.is_absolute() else base / p

    if s.type == "module":
        assert s.class_path is not None
        return ModuleFilter.load(
            s.class_path, resolve(s.weights), s.init_kwargs, device=s.device, target_index=s.target_index,
            amp=s.amp, allow_pickle=s.allow_pickle, base_dir=base,
            model_dir=resolve(s.model_dir) if s.model_dir is not None else None, head=s.head,
        )
    if s.type in ("torchscript", "export"):
        return ProgramFilter.load(
            s.type, resolve(s.path), device=s.device, target_index=s.target_index, amp=s.amp,
            allow_pickle=s.allow_pickle,
        )
    from hybridcert.audits.adapters.guard import load_guard  # imports transformers: only when needed

    options = {k: getattr(s, k) for k in GUARD_ONLY_KEYS if k != "dtype" and getattr(s, k) is not None}
    path = resolve(s.path)
    return load_guard(
        path, device=s.device, amp=s.amp, allow_pickle=s.allow_pickle, dtype=s.dtype or "float32",
        name=f"{s.type}:{path.name}", **options,
    )
