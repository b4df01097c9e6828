"""``audit.toml``: the audit specification, parsed with pydantic; every error names the offending field.

Relative paths (dataset manifest, filter weights, word vocabulary) are resolved against the file's folder.
Example (the demo writes a complete one next to its results)::

    seed = 20261125

    [noise]
    kernel = "uniform-other"      # uniform-other | uniform-all | absorb
    beta = 0.75
    sigma = 0.5                   # in [0, 1] pixel space (docs/theory.md §1, §7)

    [threat_model]
    kind = "l0"                   # l0 | suffix-append | suffix-inplace (then: span = m)

    [tokens]
    alphabet_range = [0, 32]      # or alphabet = [ids...]: the allowed token set, V = its size
    model_vocab_size = 34         # every token id must be < this
    mask_id = 33                  # absorb only: outside the alphabet
    pad_id = 0                    # suffix-append only: in the alphabet

    [certify]
    tau = 0.5
    alpha = 0.001
    n0 = 64
    n = 1000
    max_budget = 4

    [dataset]
    manifest = "manifest.jsonl"
    image_shape = [1, 8, 8]

    [filter]
    type = "module"
    class_path = "hybridcert.audits.demo.model:DemoFilterNet"
    weights = "demo_filter.safetensors"

    [run]
    device = "auto"               # auto | cpu | cuda | cuda:1 ...
    batch_size = 1024
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hybridcert.theory import KernelName

MAX_SAMPLES = 10**9
MAX_VOCAB_SIZE = 1 << 21
"""Largest ``tokens.model_vocab_size`` (2,097,152 ids; the largest tokenizers today have ~260k): the alphabet
is a subset of the model vocabulary, so this also bounds the alphabet and the work of building it."""
MAX_SIGMA = 100.0
"""Largest ``noise.sigma`` (in [0, 1] pixel space: 100 drowns every image by two orders of magnitude; larger
values are unit mistakes, and near 1e308 the noisy images overflow to infinity)."""
MAX_RADII = 256
MAX_VOCABULARY_BYTES = 64 << 20
MAX_CONFIG_BYTES = 16 << 20


class _Spec(BaseModel):
    """Strict types (issue 10): TOML ``true`` is not 1, ``"3"`` is not 3, ``100.0`` is not an integer, and an
    array is never a scalar. Integers are accepted where a float belongs (``sigma = 1``)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _array_as_tuple(value: Any) -> Any:
    """TOML has arrays, not tuples: a fixed-length field reads an array (its items are still strict)."""
    return tuple(value) if isinstance(value, list) else value



class NoiseSpec(_Spec):
    kernel: KernelName = "uniform-other"
    beta: float = Field(gt=0.0, le=1.0)
    sigma: float = Field(gt=0.0, le=MAX_SIGMA, allow_inf_nan=False)
    clamp: bool = False
    pixel_space: Literal["[0,1]", "[-1,1]"] = "[0,1]"


class ThreatSpec(_Spec):
    kind: Literal["l0", "suffix-append", "suffix-inplace"] = "l0"
    span: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _span(self) -> ThreatSpec:
        if self.kind == "l0" and self.span is not None:
            raise ValueError("span applies to the suffix threat models only")
        if self.kind != "l0" and self.span is None:
            raise ValueError(f"the {self.kind} threat model needs span = m (the number of noised positions)")
        return self


class TokensSpec(_Spec):
    """``[tokens]``: the alphabet (``alphabet`` ids, or ``alphabet_range = [start, stop)`` minus the ids in
    ``alphabet_exclude``, e.g. special tokens inside the range) is the allowed token set of size V
    (docs/theory.md §1); it must lie inside the model vocabulary of at most ``MAX_VOCAB_SIZE`` ids."""

    alphabet: list[int] | None = Field(default=None, max_length=MAX_VOCAB_SIZE)
    alphabet_range: tuple[int, int] | None = None
    alphabet_exclude: list[int] = Field(default_factory=list, max_length=MAX_VOCAB_SIZE)
    model_vocab_size: int = Field(ge=2, le=MAX_VOCAB_SIZE)
    mask_id: int | None = Field(default=None, ge=0)
    pad_id: int | None = Field(default=None, ge=0)
    vocabulary: str | None = None

    _range_tuple = field_validator("alphabet_range", mode="before")(_array_as_tuple)

    @model_validator(mode="after")
    def _alphabet(self) -> TokensSpec:
        if (self.alphabet is None) == (self.alphabet_range is None):
            raise ValueError("give exactly one of alphabet (a list of token ids) or alphabet_range = [start, stop)")
        if self.alphabet_range is not None:
            start, stop = self.alphabet_range
            if not 0 <= start < stop <= self.model_vocab_size:
                raise ValueError(f"alphabet token ids must lie in [0, model_vocab_size = {self.model_vocab_size}): "
                                 f"alphabet_range [{start}, {stop}) is not a non-empty range inside it")
        excluded = set(self.alphabet_exclude)
        if len(excluded) != len(self.alphabet_exclude):
            raise ValueError("alphabet_exclude lists a token id twice")
        listed = set(self.alphabet) if self.alphabet is not None else None
        for token in self.alphabet_exclude:
            inside = (token in listed) if listed is not None else (
                self.alphabet_range is not None and self.alphabet_range[0] <= token < self.alphabet_range[1])
            if not inside:
                raise ValueError(f"alphabet_exclude: token id {token} is not in the alphabet")
        ids = self.alphabet_ids()
        if len(ids) < 2:
            raise ValueError("the alphabet needs at least 2 token ids")
        if len(set(ids)) != len(ids):
            raise ValueError("alphabet holds duplicate token ids")
        if min(ids) < 0 or max(ids) >= self.model_vocab_size:
            raise ValueError(f"alphabet token ids must lie in [0, model_vocab_size = {self.model_vocab_size})")
        for name in ("mask_id", "pad_id"):
            value = getattr(self, name)
            if value is not None and value >= self.model_vocab_size:
                raise ValueError(f"{name} {value} is outside the model vocabulary [0, {self.model_vocab_size})")
        return self

    def alphabet_ids(self) -> list[int]:
        """The alphabet's token ids (in the order given; a range ascending), without ``alphabet_exclude``."""
        excluded = set(self.alphabet_exclude)
        if self.alphabet is not None:
            return [t for t in self.alphabet if t not in excluded]
        assert self.alphabet_range is not None
        start, stop = self.alphabet_range
        return [t for t in range(start, stop) if t not in excluded]


class CertifySpec(_Spec):
    tau: float = Field(default=0.5, gt=0.0, lt=1.0)
    alpha: float = Field(default=0.001, gt=0.0, lt=1.0)
    n0: int = Field(default=64, ge=0, le=MAX_SAMPLES)
    n: int = Field(default=1000, ge=1, le=MAX_SAMPLES)
    sampling: Literal["one-pass", "per-budget"] = "one-pass"
    max_budget: int = Field(default=4, ge=0, le=256)
    target_class: int | None = Field(default=None, ge=0, le=1)  # not Literal[0, 1]: it accepts true and 1.0
    chunk_size: int = Field(default=1024, ge=1, le=1 << 20)
    radii: list[float] = Field(default_factory=lambda: [0.0, 0.25, 0.5, 1.0], max_length=MAX_RADII)
    # issue 7: "fixed" = n samples and Clopper-Pearson; "sequential" = the anytime-valid confidence sequence,
    # looked at after every chunk, each input stopped once every requested (d, eps) point is decided or n
    # (then the cap n_max) samples are drawn
    stopping: Literal["fixed", "sequential"] = "fixed"
    requested: list[tuple[int, float]] | None = Field(default=None, max_length=MAX_RADII)
    # issue 13: unimodal baselines certified next to the hybrid certificate (hybridcert.audits.baselines)
    baselines: list[Literal["image-only", "text-only"]] = Field(default_factory=list, max_length=2)

    @field_validator("baselines")
    @classmethod
    def _baselines(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("baselines lists a baseline twice")
        return value

    @field_validator("radii")
    @classmethod
    def _radii(cls, value: list[float]) -> list[float]:
        bad = [r for r in value if not (r >= 0.0 and r != float("inf"))]
        if bad:
            raise ValueError(f"radii must be finite and >= 0 (results are JSON: no infinity), got {bad[0]}")
        return value

    @field_validator("requested", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        return [_array_as_tuple(v) for v in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _selection(self) -> CertifySpec:
        if self.n0 == 0 and self.target_class is None:
            raise ValueError("n0 = 0 needs a fixed target_class (0 or 1): no selection samples are drawn")
        if self.stopping == "fixed" and self.requested is not None:
            raise ValueError("requested applies to stopping = \"sequential\" only")
        if self.stopping == "sequential":
            if self.sampling != "one-pass":
                raise ValueError("stopping = \"sequential\" needs sampling = \"one-pass\"")
            if not self.requested:
                raise ValueError("stopping = \"sequential\" needs requested = [[d, eps], ...] (the points that "
                                 "decide when an input stops)")
            for d, eps in self.requested:
                if not 0 <= d <= self.max_budget:
                    raise ValueError(f"requested budget {d} must lie in [0, max_budget = {self.max_budget}]")
                if not (eps >= 0.0 and eps != float("inf")):
                    raise ValueError(f"requested radius {eps} must be finite and >= 0")
        return self


class DatasetSpec(_Spec):
    manifest: str
    name: str | None = None
    version: str = "1"
    image_shape: tuple[int, int, int]

    _shape_tuple = field_validator("image_shape", mode="before")(_array_as_tuple)

    @model_validator(mode="after")
    def _shape(self) -> DatasetSpec:
        if min(self.image_shape) < 1:
            raise ValueError(f"image_shape must be [C, H, W] with positive sizes, got {list(self.image_shape)}")
        return self


GUARD_ONLY_KEYS = (
    "dtype", "preset", "prompt", "policy", "answer_prefix", "safe_words", "unsafe_words", "clamp_images", "batch_size",
)
GUARD_TYPES = ("guard", "llava")


class FilterSpec(BaseModel):
    """``[filter]``: which model is the base filter, and how to load it (the one schema of this table; the
    keys of every adapter type are listed in ``hybridcert.audits.adapters``' docstring, which builds the filter
    from it with ``load_filter``). Strict types; unknown keys and keys of another adapter type are errors.
    ``type`` defaults to ``"module"``."""

    # strict (issue 10): true is not 1, "3" is not 3, 2.0 is not an integer; paths are strings
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="after")
    def _keys(self) -> FilterSpec:
        self.check()
        return self

    type: Literal["module", "torchscript", "export", "guard", "llava"] = "module"
    class_path: str | None = None
    weights: Path | None = Field(default=None, strict=False)
    init_kwargs: dict[str, Any] = {}
    model_dir: Path | None = Field(default=None, strict=False)
    head: str | None = None
    path: Path | None = Field(default=None, strict=False)
    device: str = "auto"
    amp: bool = False
    allow_pickle: bool = False
    target_index: int = 1
    dtype: Literal["float32", "bfloat16", "float16"] | None = None
    preset: Literal["llavaguard", "llamaguard3-vision"] | None = None
    prompt: str | None = None
    policy: str | None = None
    answer_prefix: str | None = None
    safe_words: list[str] | None = None
    unsafe_words: list[str] | None = None
    clamp_images: bool | None = None
    batch_size: int | None = None
    name: str | None = None
    version: str = "1"

    def check(self) -> None:
        """ValueError naming the key when a key is missing or belongs to another adapter type."""
        given = self.model_fields_set
        if self.type == "module":
            for key in ("class_path", "weights"):
                if getattr(self, key) is None:
                    raise ValueError(f"filter.{key} is required for type 'module'")
            if "path" in given:
                raise ValueError("filter.path does not apply to type 'module' (use filter.weights)")
        else:
            if self.path is None:
                raise ValueError(f"filter.path is required for type {self.type!r}")
            for key in ("class_path", "weights", "init_kwargs", "model_dir", "head"):
                if key in given:
                    raise ValueError(f"filter.{key} applies only to type 'module', not {self.type!r}")
        if self.type not in GUARD_TYPES:
            for key in GUARD_ONLY_KEYS:
                if key in given:
                    raise ValueError(f"filter.{key} applies only to type 'guard', not {self.type!r}")
        elif "target_index" in given:
            raise ValueError(f"filter.target_index does not apply to type {self.type!r} (class 1 is the unsafe answer)")


class DenoiserSpec(_Spec):
    """``[denoiser]`` (issue 12): a diffusers UNet2DModel + DDPM-family scheduler in a local directory, run on
    the noisy image before the filter at the timestep matching sigma in its ``pixel_space`` (docs/theory.md §10)."""

    path: str
    pixel_space: Literal["[-1,1]", "[0,1]"] = "[-1,1]"
    allow_pickle: bool = False


class RunSpec(_Spec):
    device: str = "auto"
    batch_size: int = Field(default=1024, ge=1, le=1 << 24)
    amp: bool = False
    wave: int = Field(default=32, ge=1, le=4096)
    # torch CPU threads per process; None: 1 when sampling on the CPU, torch's default on a GPU (runner.torch_threads)
    threads: int | None = Field(default=None, ge=1, le=1024)
    # issue 7: where the (input, chunk) work items run; results do not depend on it (executors.py)
    executor: Literal["in-process", "ray"] = "in-process"
    ray_address: str = ""  # "" = a local Ray started here (ray_num_cpus CPUs); else a cluster address
    ray_num_cpus: int | None = Field(default=None, ge=1, le=4096)
    ray_actors: int | None = Field(default=None, ge=1, le=4096)  # default: GPUs if any, else the CPUs
    ray_retries: int = Field(default=3, ge=0, le=100)  # resubmissions of a failed work item


MAX_REPORT_TEXT = 2000


class ReportSpec(_Spec):
    """``[report]`` (optional): what the compliance report states but the audit cannot know
    (docs/report.md §2, §3). Plain text, at most MAX_REPORT_TEXT characters each; the runner copies it into
    results.json (``model.intended_purpose``, ``dataset.selection``, ``dataset.preprocessing``,
    ``dataset.out_of_scope``). It is not part of the audit's identity (changing it does not block a resume)."""

    intended_purpose: str | None = Field(default=None, min_length=1, max_length=MAX_REPORT_TEXT)
    input_selection: str | None = Field(default=None, min_length=1, max_length=MAX_REPORT_TEXT)
    preprocessing: str | None = Field(default=None, min_length=1, max_length=MAX_REPORT_TEXT)
    out_of_scope: str | None = Field(default=None, min_length=1, max_length=MAX_REPORT_TEXT)


class AuditSpec(_Spec):
    """The whole ``audit.toml``. ``base_dir`` (not in the file) resolves relative paths."""

    seed: int = Field(ge=0, lt=2**64)
    noise: NoiseSpec
    threat_model: ThreatSpec = Field(default_factory=lambda: ThreatSpec())
    tokens: TokensSpec
    certify: CertifySpec = Field(default_factory=lambda: CertifySpec())
    dataset: DatasetSpec
    filter: FilterSpec
    denoiser: DenoiserSpec | None = None
    run: RunSpec = Field(default_factory=lambda: RunSpec())
    report: ReportSpec = Field(default_factory=lambda: ReportSpec())
    base_dir: str = Field(default=".", exclude=True)

    @model_validator(mode="after")
    def _cross(self) -> AuditSpec:
        alphabet = set(self.tokens.alphabet_ids())
        if self.noise.kernel == "absorb":
            if self.tokens.mask_id is None:
                raise ValueError("tokens.mask_id is required by the absorb kernel")
            if self.tokens.mask_id in alphabet:
                raise ValueError(f"tokens.mask_id {self.tokens.mask_id} must lie outside the alphabet")
        if self.denoiser is not None and (self.noise.clamp or self.noise.pixel_space != "[0,1]"):
            raise ValueError("a [denoiser] needs the noisy image as sampled: noise.clamp = false and "
                             "noise.pixel_space = \"[0,1]\" (the denoiser maps to its own space itself)")
        if self.threat_model.kind == "suffix-append":
            if self.tokens.pad_id is None:
                raise ValueError("tokens.pad_id is required by the suffix-append threat model")
            if self.tokens.pad_id not in alphabet:
                raise ValueError(f"tokens.pad_id {self.tokens.pad_id} must be in the alphabet (the attacker "
                                 "overwrites pad positions with alphabet tokens)")
        return self

    def path(self, relative: str) -> Path:
        """A path from the file, resolved against the file's folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p


def _shown(value: Any) -> str:
    """A short TOML-like spelling of an offending value (``true``, ``"3"``, ``100.0``, ``[0.5]``)."""
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _toml_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """The line of ``key = ...`` for a field ``[table] key``, of a top-level key, or of the ``[table]`` header
    for a table-wide problem, in a plain TOML file; None when it cannot be found (inline tables, dotted keys:
    the field name alone then locates the problem)."""
    keys = [str(part) for part in loc if isinstance(part, str)]
    if not keys:
        return None
    table, key = (keys[0], keys[1]) if len(keys) >= 2 else ("", keys[0])
    current = ""
    header = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line.startswith("[") and not line.startswith("[["):
            current = line.strip("[] \t").strip('"')
            if len(keys) == 1 and current == keys[0] and header is None:
                header = number
            continue
        name = line.split("=", 1)[0].strip().strip('"') if "=" in line else None
        if current == table and name == key:
            return number
    return header


def _format_error(source: str, exc: ValidationError, text: str | None = None) -> str:
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] not in ("value_error", "assertion_error", "missing", "extra_forbidden") and \
            not isinstance(first.get("input"), dict):
        msg += f", got {_shown(first.get('input'))}"
    line = _toml_line(text, first["loc"]) if text is not None else None
    where = f"field {loc}: " if loc else ""
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{source}{f':{line}' if line else ''}: {where}{msg}{extra}"


def parse_spec(data: dict[str, Any], base_dir: Path | str = ".", source: str = "audit config",
               text: str | None = None) -> AuditSpec:
    """Validate a config dict; ValueError '<source>[:<line>]: field <a.b>: <problem>' on the first problem
    (``text``, the TOML source, gives the line). Types are strict (see ``_Spec``)."""
    try:
        return AuditSpec.model_validate({**data, "base_dir": str(base_dir)})
    except ValidationError as exc:
        raise ValueError(_format_error(source, exc, text)) from None


def load_spec(path: Path) -> AuditSpec:
    """Read and validate ``audit.toml``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file not found: {path}")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MiB: not an audit config")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    if "base_dir" in data:
        raise ValueError(f"{path}: field base_dir: not a config field")
    return parse_spec(data, path.resolve().parent, str(path), text)


def load_vocabulary(path: Path) -> dict[str, int]:
    """A word vocabulary: a JSON list of words (token id = position) for manifests that give ``text``."""
    try:
        if Path(path).stat().st_size > MAX_VOCABULARY_BYTES:
            raise ValueError(f"tokens.vocabulary: {path} is larger than {MAX_VOCABULARY_BYTES >> 20} MiB")
        words = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"tokens.vocabulary: cannot read {path}: {exc}") from None
    if not isinstance(words, list) or not all(isinstance(w, str) and w and " " not in w for w in words):
        raise ValueError(f"tokens.vocabulary: {path} must be a JSON list of non-empty words without spaces")
    if len(set(words)) != len(words):
        raise ValueError(f"tokens.vocabulary: {path} lists a word twice")
    return {w: i for i, w in enumerate(words)}
