"""Adapter (a): any ``torch.nn.Module`` given by a Python class path, with weights in safetensors.

The module's ``forward(tokens, images)`` returns logits [B, K] (decision: argmax == ``target_index``) or one
score per sample [B] (decision: score > 0). It receives the sampled token ids themselves (docs/theory.md §7: no decode
and re-tokenise round trip).

Weights are read with safetensors: nothing is unpickled. A pickled state dict (``torch.save``: .pt, .pth, .bin,
.ckpt) is refused, whatever its extension (the format is recognised from the file's first bytes), unless the
caller passes ``allow_pickle=True``; even then it is read with ``torch.load(weights_only=True)``, which only
rebuilds tensors and plain containers.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from hybridcert.audits.adapters.common import (
    PickleRefusedError,
    autocast,
    check_inputs,
    clear_errors,
    decide,
    decision_margin,
    directory_sha256,
    resolve_device,
    sha256_file,
    sniff_format,
)

__all__ = [
    "ModuleFilter",
    "import_class",
    "load_module",
    "load_safetensors_module",
    "load_state_dict_file",
    "sha256_file",
]

_PICKLE_WHY = (
    "unpickling can run arbitrary code stored in the file. Convert it once, on a machine you trust, with "
    "safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors'), or pass "
    "allow_pickle=true for a file you trust (it is then read with torch.load(weights_only=True))"
)


_CODE_SHA256: dict[str, str] = {}  # module name (private) -> sha256 of the local source files its import ran


def local_code_sha256(cls: type) -> str | None:
    """For a class imported from the config's folder (``_import_local``): the sha256 over the sorted lines
    ``<sha256 of file>  <path relative to the folder>`` of every source file its import ran there (the module,
    its package's modules, the siblings it imported); None for an installed module."""
    return _CODE_SHA256.get(cls.__module__)


def _import_local(module_name: str, base_dir: Path) -> ModuleType | None:
    """Import ``module_name`` from ``base_dir`` (the folder of audit.toml) when its first component is a file
    ``NAME.py`` or a package folder ``NAME/__init__.py`` there; None when it is not.

    The module is registered under a private name (``_hybridcert_local_<hash>_NAME``, the hash covering the
    file's path and bytes), so it never shadows or is shadowed by another module called ``NAME``, and an
    edited file is imported afresh. ``base_dir`` is on ``sys.path`` only while the module runs its top level,
    so a sibling it imports by absolute name at the top (``from helpers import X``) is found; such siblings are
    then dropped from ``sys.modules`` again, so that another config's ``helpers`` is not mistaken for this one.
    Relative imports inside a package work as usual.
    """
    top, _, rest = module_name.partition(".")
    package = base_dir / top / "__init__.py"
    single = base_dir / f"{top}.py"
    if package.is_file():
        location, search = package, [str(package.parent)]
    elif single.is_file():
        location, search = single, None
    else:
        return None
    digest = hashlib.sha256(str(location.resolve()).encode() + b"\0" + location.read_bytes()).hexdigest()[:16]
    private = f"_hybridcert_local_{digest}_{top}"
    folder = str(base_dir)
    before = set(sys.modules)
    sys.path.insert(0, folder)
    try:
        if private not in sys.modules:
            spec = importlib.util.spec_from_file_location(private, location, submodule_search_locations=search)
            if spec is None or spec.loader is None:
                raise ValueError(f"cannot import {location}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[private] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[private]
                raise
        found = importlib.import_module(f"{private}.{rest}") if rest else sys.modules[private]
        if found.__name__ not in _CODE_SHA256:
            root = base_dir.resolve()
            files = {Path(origin).resolve() for name in set(sys.modules) - before
                     if (origin := getattr(sys.modules[name], "__file__", None))
                     and Path(origin).resolve().is_relative_to(root)}
            files.add(location.resolve())
            lines = [f"{sha256_file(p)}  {p.relative_to(root).as_posix()}\n" for p in sorted(files)]
            _CODE_SHA256[found.__name__] = hashlib.sha256("".join(lines).encode()).hexdigest()
        return found
    except ValueError:
        raise
    except Exception as exc:  # the user's code: any error at import is a bad config, one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"cannot import module {module_name!r} from {location}: "
                         f"{type(exc).__name__}: {first}") from exc
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
        root = base_dir.resolve()
        for name in set(sys.modules) - before:
            origin = getattr(sys.modules[name], "__file__", None)
            if not name.startswith(private) and origin and Path(origin).resolve().is_relative_to(root):
                del sys.modules[name]


def import_class(class_path: str, base_dir: Path | None = None) -> type[torch.nn.Module]:
    """Import ``package.module:ClassName`` (or ``package.module.ClassName``); ValueError when it is not a Module.

    With ``base_dir`` (the folder of audit.toml), a module file or package folder there is used first
    (``_import_local``: a user's own model next to the config); otherwise the module is imported normally.
    """
    module_name, sep, attr = class_path.partition(":")
    if not sep:
        module_name, _, attr = class_path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"class path must look like 'package.module:ClassName', got {class_path!r}")
    module = _import_local(module_name, Path(base_dir)) if base_dir is not None else None
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"cannot import module {module_name!r} for class path {class_path!r}: {exc}") from exc
    cls = getattr(module, attr, None)
    if cls is None:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r} (class path {class_path!r})")
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ValueError(f"{class_path!r} is not a torch.nn.Module class (it is {type(cls).__name__} {cls!r})")
    return cls


def load_state_dict_file(weights: Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a state dict (tensor name -> tensor, on the CPU) from safetensors, or from a pickle when allowed.

    The format comes from the file's content. Raises ``PickleRefusedError`` (a ValueError) for a pickle or
    ``torch.save`` zip archive without ``allow_pickle``; ValueError for a missing, truncated or corrupted file.
    """
    weights = Path(weights)
    if not weights.is_file():
        raise ValueError(f"weights file not found: {weights}")
    kind = sniff_format(weights)
    if kind == "safetensors":
        try:
            return dict(load_file(str(weights)))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ValueError(f"{weights} is not a valid safetensors file (corrupted or truncated?): {exc}") from exc
    if kind in ("zip", "pickle"):
        what = "a torch.save zip archive holding a pickle" if kind == "zip" else "a Python pickle"
        if not allow_pickle:
            raise PickleRefusedError(f"refusing weights {weights.name}: the file is {what}; {_PICKLE_WHY}")
        try:
            with weights.open("rb") as fh:  # a file object: torch.load must not dispatch on the file name
                obj = torch.load(fh, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for bad or hostile files
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"cannot read {weights.name} with torch.load(weights_only=True): {first}") from exc
        return _as_state_dict(obj, weights)
    suffix_hint = " (the name says .safetensors but the content does not)" if weights.suffix == ".safetensors" else ""
    raise ValueError(f"{weights} is neither a safetensors file nor a torch.save checkpoint{suffix_hint}")


def _as_state_dict(obj: object, weights: Path) -> dict[str, torch.Tensor]:
    """Accept {name: tensor} or a checkpoint {"state_dict": {name: tensor}, ...}; ValueError otherwise."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{weights.name} does not hold a state dict (found {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise ValueError(f"{weights.name}: state dict entries must map names to tensors; bad entries: {bad[:5]}")
    return {str(k): v for k, v in obj.items()}


def _check_state_dict(module: torch.nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """ValueError naming missing keys, unexpected keys and shape mismatches (at most five of each)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:5]}" + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""))
    if unexpected:
        more = f" (+{len(unexpected) - 5} more)" if len(unexpected) > 5 else ""
        problems.append(f"unexpected keys {unexpected[:5]}{more}")
    if shapes:
        problems.append(f"shape mismatches {shapes[:5]}" + (f" (+{len(shapes) - 5} more)" if len(shapes) > 5 else ""))
    if problems:
        raise ValueError(f"weights do not match {where}: " + "; ".join(problems))


def load_module(
    class_path: str,
    weights: Path,
    init_kwargs: dict[str, Any] | None = None,
    allow_pickle: bool = False,
    base_dir: Path | None = None,
    model_dir: Path | None = None,
    head: str | None = None,
) -> torch.nn.Module:
    """Build ``class_path(**init_kwargs)`` and load a state dict file into it (strict, eval mode, CPU).

    ``model_dir`` (a model directory, e.g. a pretrained backbone) is passed to the class as the keyword
    ``model_dir``; ``head`` names the submodule (dotted attribute path) that the weights file fills, strictly,
    instead of the whole module (the rest comes from ``model_dir``). ``base_dir``: see ``import_class``.
    """
    weights = Path(weights)
    state = load_state_dict_file(weights, allow_pickle=allow_pickle)
    cls = import_class(class_path, base_dir)
    kwargs = dict(init_kwargs or {})
    if model_dir is not None:
        if "model_dir" in kwargs:
            raise ValueError("give the model directory as filter.model_dir, not in init_kwargs")
        if not Path(model_dir).is_dir():
            raise ValueError(f"model directory not found: {model_dir}")
        kwargs["model_dir"] = str(model_dir)
    try:
        module = cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"cannot build {class_path} with init_kwargs {init_kwargs or {}}: {exc}") from exc
    except Exception as exc:  # the user's constructor (a model directory it cannot read, ...): one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot build {class_path}: {first}") from exc
    target = module
    if head is not None:
        found: Any = module
        for part in head.split("."):
            found = getattr(found, part, None)
            if not isinstance(found, torch.nn.Module):
                raise ValueError(f"filter.head {head!r}: {class_path} has no submodule {head!r}")
        target = found
    where = f"{class_path}{f'.{head}' if head else ''} (file {weights.name})"
    _check_state_dict(target, state, where)
    with clear_errors(f"loading {weights.name} into {class_path}"):
        target.load_state_dict(state, strict=True)
    return module.eval()


def load_safetensors_module(
    class_path: str, weights: Path, init_kwargs: dict[str, Any] | None = None
) -> torch.nn.Module:
    """Build ``class_path(**init_kwargs)`` and load safetensors weights into it (pickles refused)."""
    return load_module(class_path, weights, init_kwargs, allow_pickle=False)


class ModuleFilter:
    """A ``Filter`` around a module whose forward takes (tokens [B, L], images [B, C, H, W]).

    ``device="auto"`` picks CUDA when present; ``amp=True`` runs the forward under bfloat16 autocast.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        device: str | torch.device = "cpu",
        target_index: int = 1,
        amp: bool = False,
        weights_sha256: str | None = None,
        name: str | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.module = module.to(self.device).eval()
        self.target_index = target_index
        self.amp = amp
        self.weights_sha256 = weights_sha256
        self.code_sha256: str | None = None  # set by load() for a class from the config's folder
        self.name = name or type(module).__name__

    @classmethod
    def load(
        cls,
        class_path: str,
        weights: Path,
        init_kwargs: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
        target_index: int = 1,
        amp: bool = False,
        allow_pickle: bool = False,
        base_dir: Path | None = None,
        model_dir: Path | None = None,
        head: str | None = None,
    ) -> ModuleFilter:
        """Build the module from its class path and weights file (see ``load_module``).

        ``weights_sha256`` identifies the model in results: the weights file's sha256, or, with a
        ``model_dir``, the sha256 of ``"model_dir <directory_sha256>\nweights <file sha256>\n"`` (both the
        directory and the head file)."""
        module = load_module(class_path, Path(weights), init_kwargs, allow_pickle=allow_pickle, base_dir=base_dir,
                             model_dir=model_dir, head=head)
        code = local_code_sha256(type(module))
        sha = sha256_file(Path(weights))
        if model_dir is not None:
            both = f"model_dir {directory_sha256(Path(model_dir))}\nweights {sha}\n"
            sha = hashlib.sha256(both.encode()).hexdigest()
        filt = cls(module, device, target_index, amp, weights_sha256=sha, name=class_path)
        filt.code_sha256 = code
        return filt

    @torch.inference_mode()
    def __call__(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        check_inputs(tokens, images)
        with autocast(self.device, self.amp):
            out = self.module(tokens.to(self.device), images.to(self.device))
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"{self.name}.forward must return a tensor, got {type(out).__name__}")
        return decide(out, self.target_index)

    # -- the gradient attack's protocol (hybridcert.attacks.protocol.GradientFilter) -------------------------
    # A module opts in by following the Hugging Face convention: ``get_input_embeddings()`` (an nn.Embedding)
    # and ``forward_embeddings(embeddings [B, L, E], images)`` returning what ``forward`` returns.

    def _embedding(self) -> torch.nn.Embedding:
        get = getattr(self.module, "get_input_embeddings", None)
        if not callable(get) or not callable(getattr(self.module, "forward_embeddings", None)):
            raise ValueError(f"module {self.name} has no get_input_embeddings() and forward_embeddings(): the "
                             "gradient attack needs both (hybridcert.attacks.protocol)")
        emb = get()
        if not isinstance(emb, torch.nn.Embedding):
            raise ValueError(f"{self.name}.get_input_embeddings() must return a torch.nn.Embedding")
        return emb

    def embedding_matrix(self) -> torch.Tensor:
        """The input embedding table [model_vocab_size, E] (no gradient)."""
        weight: torch.Tensor = self._embedding().weight.detach()
        return weight

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embeddings [B, L, E] of the token ids (no gradient to the weights)."""
        out: torch.Tensor = self._embedding()(tokens.to(self.device)).detach()
        return out

    def scores_from_embeddings(self, embeddings: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """A differentiable score [B], > 0 exactly where ``__call__`` decides class 1 (float32, no autocast)."""
        out = self.module.forward_embeddings(embeddings.to(self.device), images.to(self.device))  # type: ignore[operator]
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"{self.name}.forward_embeddings must return a tensor, got {type(out).__name__}")
        return decision_margin(out, self.target_index)
