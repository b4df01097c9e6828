"""Tabular audits (docs/tabular.md, docs/theory.md §9): a schema, a CSV or Parquet table, per-field categorical
noise and Gaussian noise on the standardised numeric features, scikit-learn (skops) and ONNX models.

* Schema (JSON): ``{"label": COLUMN, "categorical": [{"name": N, "categories": [...]}, ...],
  "numeric": [{"name": N, "mean": M, "std": S}, ...]}``. A field's arity is the length of its category list
  (at least 2); numeric features are standardised as (x - mean) / std, which defines the l2 units of the radius.
* Noise: each categorical field by the kernel at its own arity (``absorb`` replaces by the category
  ``MISSING``, outside the schema's list); N(0, sigma^2) on every standardised numeric feature.
* A model sees a 2-D object array, columns in schema order (categorical fields, then numeric features):
  categories as the schema's strings (``MISSING`` for the absorb kernel's missing category), numeric values in
  the data's own units. It returns a class per row; class 1 is the flagged class.
* Bad input (a category outside the schema, a numeric NaN, an arity below 2, an untrusted type in a skops
  file) is a ValueError naming file, row and column, raised before anything is written.
"""

from __future__ import annotations

import csv
import hashlib
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, get_type_hints

import numpy as np
from numpy.typing import NDArray
from pydantic import TypeAdapter, ValidationError

from hybridcert import __version__
from hybridcert.audits.certification import Certifier, Counted
from hybridcert.audits.checkpoint import LOG_NAME, RESULTS_NAME, LogWriter, OutputLock, check_out_dir, start_locked
from hybridcert.audits.config import CertifySpec
from hybridcert.audits.dataset import AuditInput
from hybridcert.results.canonical import canonical_dumps, loads_strict, write_json_atomic
from hybridcert.results.schema import (
    Aggregates,
    AuditConfig,
    AuditResults,
    DatasetInfo,
    Environment,
    InputResult,
    ModelInfo,
    NoiseConfig,
    ThreatModelConfig,
    ToolInfo,
)
from hybridcert.results.stats import aggregate
from hybridcert.theory import HybridNoise

MISSING = "__missing__"
KERNELS = ("uniform-other", "uniform-all", "absorb")


# ----------------------------------------------------------------------------------------------------------
# Schema and table
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schema:
    """Categorical fields with their category lists, numeric features with their standardisation, the label."""

    categorical: tuple[tuple[str, tuple[str, ...]], ...]
    numeric: tuple[tuple[str, float, float], ...]  # (name, mean, std)
    label: str | None = None

    @property
    def arities(self) -> list[int]:
        return [len(c) for _, c in self.categorical]

    @property
    def columns(self) -> list[str]:
        return [n for n, _ in self.categorical] + [n for n, _, _ in self.numeric]

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label,
                "categorical": [{"name": n, "categories": list(c)} for n, c in self.categorical],
                "numeric": [{"name": n, "mean": m, "std": s} for n, m, s in self.numeric]}

    @staticmethod
    def from_json(data: Any, source: str = "schema") -> Schema:
        if not isinstance(data, dict):
            raise ValueError(f"{source}: a schema is a JSON object with 'categorical' and 'numeric' lists")
        unknown = set(data) - {"label", "categorical", "numeric"}
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
        cats, nums, names = [], [], set()
        for item in data.get("categorical", []):
            name = item.get("name") if isinstance(item, dict) else None
            values = item.get("categories") if isinstance(item, dict) else None
            if not isinstance(name, str) or not name or not isinstance(values, list):
                raise ValueError(f"{source}: each categorical entry needs a 'name' and a 'categories' list")
            if len(values) < 2:
                raise ValueError(f"{source}: column {name!r}: arity {len(values)}; a categorical field needs at "
                                 "least 2 categories")
            if any(not isinstance(v, str) or not v for v in values) or len(set(values)) != len(values):
                raise ValueError(f"{source}: column {name!r}: categories must be distinct non-empty strings")
            if MISSING in values:
                raise ValueError(f"{source}: column {name!r}: {MISSING!r} is reserved for the missing category")
            cats.append((name, tuple(values)))
            names.add(name)
        for item in data.get("numeric", []):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or not name:
                raise ValueError(f"{source}: each numeric entry needs a 'name'")
            mean, std = item.get("mean"), item.get("std")
            if not _finite(mean) or not _finite(std) or std <= 0:
                raise ValueError(f"{source}: column {name!r}: needs a finite 'mean' and a 'std' > 0")
            nums.append((name, float(mean), float(std)))
            names.add(name)
        if len(names) != len(cats) + len(nums):
            raise ValueError(f"{source}: a column is listed twice")
        if not cats and not nums:
            raise ValueError(f"{source}: no categorical or numeric columns")
        label = data.get("label")
        if label is not None and (not isinstance(label, str) or label in names):
            raise ValueError(f"{source}: 'label' must name a column that is not a feature")
        return Schema(tuple(cats), tuple(nums), label)


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def load_schema(path: Path) -> Schema:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the schema ({exc.strerror})") from None
    return Schema.from_json(loads_strict(raw, str(path)), str(path))


@dataclass
class Table:
    """Encoded rows: category codes (n, m) int, standardised numeric features (n, k), labels, row ids."""

    codes: NDArray[np.int64]
    z: NDArray[np.float64]
    labels: NDArray[np.int64] | None
    ids: list[str]
    sha256: str


def _read_rows(path: Path) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of a CSV (strings) or Parquet file (Python values); Parquet needs pyarrow."""
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ValueError(f"{path}: reading Parquet needs pyarrow (pip install 'hybridcert[tabular]')") from None
        try:
            table = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - any reader error is a bad file
            raise ValueError(f"{path}: cannot read Parquet ({exc})") from None
        header = list(table.column_names)
        cols = [table.column(i).to_pylist() for i in range(len(header))]
        return header, [list(r) for r in zip(*cols, strict=True)] if cols else []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            first: list[str] | None = next(reader, None)
            if first is None:
                raise ValueError(f"{path}: empty file (no header row)")
            return first, list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: cannot read CSV ({exc})") from None


def load_table(path: Path, schema: Schema) -> Table:
    """Read and encode a table; every bad cell is a ValueError naming file, row (1 = first data row) and column."""
    path = Path(path)
    header, rows = _read_rows(path)
    needed = schema.columns + ([schema.label] if schema.label else [])
    missing = [c for c in needed if c not in header]
    if missing:
        raise ValueError(f"{path}: column {missing[0]!r} of the schema is missing from the header")
    if not rows:
        raise ValueError(f"{path}: no data rows")
    pos = {c: header.index(c) for c in needed}
    lookup = [{v: i for i, v in enumerate(c)} for _, c in schema.categorical]
    codes = np.zeros((len(rows), len(schema.categorical)), dtype=np.int64)
    z = np.zeros((len(rows), len(schema.numeric)))
    labels = np.zeros(len(rows), dtype=np.int64) if schema.label else None
    for r, row in enumerate(rows, start=1):
        if len(row) != len(header):
            raise ValueError(f"{path}: row {r}: {len(row)} cells, the header has {len(header)}")
        for j, (name, _) in enumerate(schema.categorical):
            value = row[pos[name]]
            code = lookup[j].get(value if isinstance(value, str) else str(value))
            if code is None:
                raise ValueError(f"{path}: row {r}: column {name!r}: {value!r} is not one of the schema's categories")
            codes[r - 1, j] = code
        for j, (name, mean, std) in enumerate(schema.numeric):
            value = row[pos[name]]
            try:
                x = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{path}: row {r}: column {name!r}: {value!r} is not a number") from None
            if not math.isfinite(x):
                raise ValueError(f"{path}: row {r}: column {name!r}: {value!r} is not allowed (NaN or infinite)")
            z[r - 1, j] = (x - mean) / std
        if labels is not None:
            value = row[pos[schema.label or ""]]
            if str(value) not in ("0", "1"):
                raise ValueError(f"{path}: row {r}: column {schema.label!r}: the label must be 0 or 1, got {value!r}")
            labels[r - 1] = int(str(value))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Table(codes, z, labels, [f"row-{i}" for i in range(1, len(rows) + 1)], digest)


def decode(schema: Schema, codes: NDArray[np.int64], z: NDArray[np.float64]) -> NDArray[Any]:
    """The model's input: categories as strings (code V_j = MISSING), numeric features in the data's units."""
    n = codes.shape[0]
    out = np.empty((n, len(schema.categorical) + len(schema.numeric)), dtype=object)
    for j, (_, cats) in enumerate(schema.categorical):
        table = np.array(list(cats) + [MISSING], dtype=object)
        out[:, j] = table[codes[:, j]]
    base = len(schema.categorical)
    for j, (_, mean, std) in enumerate(schema.numeric):
        out[:, base + j] = mean + std * z[:, j]
    return out


# ----------------------------------------------------------------------------------------------------------
# Noise
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TabularNoise:
    """Per-field categorical kernel (docs/theory.md §1, §9) and N(0, sigma^2) on standardised features."""

    kernel: str
    beta: float
    sigma: float
    arities: tuple[int, ...]

    def __post_init__(self) -> None:
        HybridNoise(self.kernel, list(self.arities), self.beta, self.sigma)  # type: ignore[arg-type]

    def sample(self, codes: NDArray[np.int64], z: NDArray[np.float64], n: int,
               rng: np.random.Generator) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """n noisy copies of one record (codes (m,), z (k,))."""
        m = codes.size
        v = np.array(self.arities, dtype=np.int64)
        out = np.broadcast_to(codes, (n, m)).copy()
        if m:
            hit = rng.random((n, m)) < self.beta
            if self.kernel == "uniform-other":
                shift = (rng.random((n, m)) * (v - 1)).astype(np.int64) + 1  # uniform in 1..V-1
                out = np.where(hit, (out + shift) % v, out)
            elif self.kernel == "uniform-all":
                out = np.where(hit, (rng.random((n, m)) * v).astype(np.int64), out)
            else:
                out = np.where(hit, v, out)  # the missing category
        zn = z[None, :] + self.sigma * rng.standard_normal((n, z.size))
        return out, zn


# ----------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------


class TabularModel(Protocol):
    def predict(self, x: NDArray[Any]) -> NDArray[np.int64]: ...


@dataclass
class SkopsModel:
    """A scikit-learn estimator saved with skops; types outside skops' defaults must be listed in ``trusted``."""

    path: Path
    trusted: Sequence[str] = ()
    model: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import skops.io as sio

        try:
            untrusted = sio.get_untrusted_types(file=str(self.path))
        except Exception as exc:  # noqa: BLE001 - any reader error is a bad file
            raise ValueError(f"{self.path}: not a readable skops file ({exc})") from None
        refused = [t for t in untrusted if t not in set(self.trusted)]
        if refused:
            raise ValueError(f"{self.path}: untrusted type {refused[0]!r} in the model file (list it under "
                             "filter.trusted to load it)")
        self.model = sio.load(str(self.path), trusted=list(untrusted))

    def predict(self, x: NDArray[Any]) -> NDArray[np.int64]:
        return np.asarray(self.model.predict(x)).astype(np.int64)


@dataclass
class OnnxModel:
    """An ONNX model (onnxruntime, CPU). Inputs: one per schema column, named as the column (string tensors
    for categorical fields, float32 for numeric features), or a single float32 input taking the one-hot
    encoding of the categorical fields (all zeros for the missing category) followed by the standardised
    numeric features. The first output is the class."""

    path: Path
    schema: Schema
    session: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import onnxruntime as ort

        try:
            self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{self.path}: not a loadable ONNX model ({exc})") from None
        names = [i.name for i in self.session.get_inputs()]
        if names != self.schema.columns and len(names) != 1:
            raise ValueError(f"{self.path}: the model's inputs {names} are neither the schema's columns nor one "
                             "encoded input")

    def predict(self, x: NDArray[Any]) -> NDArray[np.int64]:
        inputs = self.session.get_inputs()
        m = len(self.schema.categorical)
        if len(inputs) == 1 and inputs[0].name not in self.schema.columns:
            feeds = {inputs[0].name: onehot(self.schema, x)}
        else:
            feeds = {}
            for j, name in enumerate(self.schema.columns):
                col = x[:, j:j + 1]
                feeds[name] = col.astype(str) if j < m else col.astype(np.float32)
        out = self.session.run(None, feeds)[0]
        return np.asarray(out).reshape(-1).astype(np.int64)


def onehot(schema: Schema, x: NDArray[Any]) -> NDArray[np.float32]:
    """One-hot categorical fields (missing = all zeros) followed by the standardised numeric features."""
    parts = []
    for j, (_, cats) in enumerate(schema.categorical):
        col = x[:, j]
        parts.append(np.stack([(col == c) for c in cats], axis=1).astype(np.float32))
    base = len(schema.categorical)
    for j, (_, mean, std) in enumerate(schema.numeric):
        parts.append(((x[:, base + j].astype(np.float64) - mean) / std).astype(np.float32)[:, None])
    return np.concatenate(parts, axis=1)


def load_model(kind: str, path: Path, schema: Schema, trusted: Sequence[str] = ()) -> TabularModel:
    if kind == "skops":
        return SkopsModel(Path(path), trusted)
    if kind == "onnx":
        return OnnxModel(Path(path), schema)
    raise ValueError(f"model type must be skops or onnx, got {kind!r}")


# ----------------------------------------------------------------------------------------------------------
# The audit
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TabularAudit:
    """Everything a tabular certificate depends on (docs/theory.md §5, §6), plus two speed settings the results do
    not depend on: ``batch_size``, the rows per model call, and ``wave``, the records counted before they are
    certified together (one vectorised theory call) and logged one line each."""

    data: Path
    schema: Path
    model: Path
    model_type: str = "skops"
    trusted: tuple[str, ...] = ()
    kernel: str = "uniform-other"
    beta: float = 0.25
    sigma: float = 0.5
    tau: float = 0.5
    alpha: float = 0.001
    n0: int = 64
    n: int = 1000
    seed: int = 20261129
    radii: tuple[float, ...] = (0.0, 0.25, 0.5)
    chunk_size: int = 4096
    batch_size: int = 4096
    wave: int = 16
    name: str = "tabular"
    model_name: str = "tabular-model"


def count_class_one(model: TabularModel, schema: Schema, noise: TabularNoise, codes: NDArray[np.int64],
                    z: NDArray[np.float64], seed: int, index: int, stream: int, n: int, chunk_size: int,
                    batch_size: int) -> int:
    """How many of the ``n`` noisy copies of record number ``index`` (its row, 0 = first) in ``stream`` the model
    puts in class 1.

    Seeding: one generator per (seed, record, stream), ``SeedSequence(seed, spawn_key=(index, stream))``, drawn
    in blocks of ``chunk_size`` copies (``TabularNoise.sample`` per block). The copies are therefore a function of
    (seed, record, stream, chunk_size) alone: independent of the other records (so a resumed audit recomputes a
    record exactly) and of ``batch_size``, which only cuts the copies into model calls. (The image and token
    runner seeds each block on its own; tabular audits keep this scheme, which gives the results they gave
    before ``batch_size`` and ``chunk_size`` were separate settings, bit for bit.)"""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, stream)))
    hits = 0
    pend_c: list[NDArray[np.int64]] = []
    pend_z: list[NDArray[np.float64]] = []
    buffered = 0

    def run(c: NDArray[np.int64], zn: NDArray[np.float64]) -> int:
        return int((model.predict(decode(schema, c, zn)) == 1).sum())

    for lo in range(0, n, chunk_size):
        c, zn = noise.sample(codes, z, min(chunk_size, n - lo), rng)
        pend_c.append(c)
        pend_z.append(zn)
        buffered += c.shape[0]
        if buffered >= batch_size:
            all_c = pend_c[0] if len(pend_c) == 1 else np.concatenate(pend_c)
            all_z = pend_z[0] if len(pend_z) == 1 else np.concatenate(pend_z)
            full = (buffered // batch_size) * batch_size
            for s in range(0, full, batch_size):
                hits += run(all_c[s:s + batch_size], all_z[s:s + batch_size])
            buffered -= full
            pend_c, pend_z = ([all_c[full:]], [all_z[full:]]) if buffered else ([], [])
    if buffered:
        hits += run(np.concatenate(pend_c), np.concatenate(pend_z))
    return hits


@dataclass
class PreparedTabular:
    """A validated tabular audit: everything read and built, nothing written (``prepare_tabular``)."""

    audit: TabularAudit
    schema: Schema
    table: Table
    model: TabularModel
    noise: TabularNoise
    engine: HybridNoise
    certify: CertifySpec
    config: AuditConfig
    config_extra: dict[str, Any]
    model_info: ModelInfo
    dataset_info: DatasetInfo
    schema_sha256: str

    @property
    def config_json(self) -> dict[str, Any]:
        """``config`` as results.json holds it (with ``config.tabular``)."""
        return {**self.config.model_dump(mode="json", by_alias=True), "tabular": self.config_extra}

    @property
    def config_hash(self) -> str:
        """What a resumed run must share with the run that wrote the log: the configuration (chunk_size included,
        batch_size not), the model, the table and the schema (its means and standard deviations define the
        standardised units without appearing in the configuration)."""
        payload = {"config": self.config_json, "model": self.model_info.model_dump(mode="json"),
                   "dataset": self.dataset_info.model_dump(mode="json"), "schema_sha256": self.schema_sha256}
        return hashlib.sha256(canonical_dumps(payload).encode()).hexdigest()

    def count(self, index: int) -> Counted:
        """Selection (n0 copies, stream 0) picks the side; estimation (n copies, stream 1) counts it."""
        a, t = self.audit, self.table
        t0 = time.perf_counter()

        def ones(stream: int, n: int) -> int:
            return count_class_one(self.model, self.schema, self.noise, t.codes[index], t.z[index], a.seed, index,
                                   stream, n, a.chunk_size, a.batch_size)

        sel = ones(0, a.n0)
        target = 1 if sel / a.n0 >= a.tau else 0
        hits = ones(1, a.n)
        label = int(t.labels[index]) if t.labels is not None else -1
        item = AuditInput(id=t.ids[index], tokens=(), image=np.zeros(0, dtype=np.float32), label=label, group=None)
        m = len(self.schema.categorical)
        return Counted(item=item, max_budget=m, selection_ones=sel, target_class=target,
                       targets=[hits if target == 1 else a.n - hits], seconds=time.perf_counter() - t0, n_used=a.n)


def _positive_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 1


def prepare_tabular(audit: TabularAudit) -> PreparedTabular:
    """Read and check every input (schema, table, model, settings) before anything runs or is written."""
    if audit.kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {audit.kernel!r}")
    if not (0.0 < audit.tau < 1.0 and 0.0 < audit.alpha < 1.0 and audit.n >= 1 and audit.n0 >= 1):
        raise ValueError("tau and alpha must lie in (0, 1), n and n0 must be >= 1")
    for key in ("chunk_size", "batch_size", "wave"):
        if not _positive_int(getattr(audit, key)):
            raise ValueError(f"{key} must be an integer >= 1, got {getattr(audit, key)!r}")
    schema = load_schema(audit.schema)
    if not schema.categorical:
        raise ValueError(f"{audit.schema}: a tabular audit needs at least one categorical field")
    m = len(schema.categorical)
    if m > 256:
        raise ValueError(f"{audit.schema}: {m} categorical fields; at most 256 are supported")
    table = load_table(audit.data, schema)
    model = load_model(audit.model_type, audit.model, schema, audit.trusted)
    noise = TabularNoise(audit.kernel, audit.beta, audit.sigma, tuple(schema.arities))
    engine = HybridNoise(audit.kernel, schema.arities, audit.beta, audit.sigma)  # type: ignore[arg-type]
    spec = CertifySpec(tau=audit.tau, alpha=audit.alpha, n0=audit.n0, n=audit.n, max_budget=m,
                       radii=list(audit.radii))
    config = AuditConfig(
        noise=NoiseConfig(kernel=audit.kernel, vocab_size=schema.arities, beta=audit.beta, sigma=audit.sigma),
        threat_model=ThreatModelConfig(kind="fields"), pixel_space="standardised", tau=audit.tau,
        alpha=audit.alpha, n0=audit.n0, n=audit.n, seed=str(audit.seed), sampling="one-pass", max_budget=m,
        multiple_testing="none: one sampling pass serves every budget (docs/theory.md §5)",
        radii=list(audit.radii), chunk_size=audit.chunk_size,
    )
    extra = {"fields": [n for n, _ in schema.categorical], "numeric": [n for n, _, _ in schema.numeric],
             "units": "fields changed; l2 radius in standardised units of the numeric features"}
    model_info = ModelInfo(name=audit.model_name, sha256=hashlib.sha256(Path(audit.model).read_bytes()).hexdigest(),
                           type=audit.model_type)
    dataset_info = DatasetInfo(name=audit.name, sha256=table.sha256, n_inputs=len(table.ids))
    schema_sha = hashlib.sha256(Path(audit.schema).read_bytes()).hexdigest()
    return PreparedTabular(audit, schema, table, model, noise, engine, spec, config, extra, model_info,
                           dataset_info, schema_sha)


def run_tabular_audit(audit: TabularAudit, out_dir: Path, resume: bool = False, overwrite: bool = False,
                      progress: Callable[[int, int], None] | None = None) -> AuditResults:
    """Count, bound (one-sided Clopper-Pearson at alpha, one pass for every budget), certify, write
    ``out_dir/results.json``. Every input is checked before anything is written.

    The checkpoint is the image and token runner's own (``checkpoint.py``): the folder lock for the whole run,
    one fsynced line of ``out_dir/results.log.jsonl`` per finished record, ``resume`` to continue a killed run
    from it (refused when the configuration, model, table or schema changed) and ``overwrite`` to start again.
    Each record's samples depend only on (seed, record, stream, chunk_size) (``count_class_one``), so a resumed
    run's results.json equals an uninterrupted run's apart from timing fields, whatever the batch size."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir, resume, overwrite)
    prep = prepare_tabular(audit)
    config_hash = prep.config_hash
    with OutputLock(out_dir):  # one audit per folder, held until results.json is written
        return _run_locked(prep, out_dir, resume, overwrite, progress, config_hash)


def _run_locked(prep: PreparedTabular, out_dir: Path, resume: bool, overwrite: bool,
                progress: Callable[[int, int], None] | None, config_hash: str) -> AuditResults:
    log_path, results_path = out_dir / LOG_NAME, out_dir / RESULTS_NAME
    ids = prep.table.ids
    done = start_locked(out_dir, resume, overwrite, config_hash, ids)
    if progress:
        progress(len(done), len(ids))
    # the runner's certification step (docs/theory.md §4, §5): Clopper-Pearson at alpha, one pass for every
    # budget, the frontier against the side's threshold, with per-field arities in the engine. A wave of records
    # shares one theory call (the engine computes every p_a independently, so the wave does not change the
    # results); a kill loses at most the counting of the records of the wave not yet logged, never a logged one
    certifier = Certifier(prep.engine, prep.certify)
    todo = [index for index, rid in enumerate(ids) if rid not in done]
    with LogWriter(log_path, config_hash, prep.config_json) as log:
        for start in range(0, len(todo), prep.audit.wave):
            counted = [prep.count(index) for index in todo[start:start + prep.audit.wave]]
            log.write(certifier.certify_counted(counted), done, len(ids), progress)
    records = [done[rid] for rid in ids]
    a, m = prep.audit, len(prep.schema.categorical)
    results = AuditResults(
        tool=ToolInfo(version=__version__),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        config=prep.config,
        model=prep.model_info,
        dataset=prep.dataset_info,
        inputs=records,
        aggregates=_aggregates(records, m, list(a.radii)),
        environment=Environment.model_validate({"python": platform.python_version(),
                                                "platform": platform.platform(), "device": "cpu",
                                                "batch_size": a.batch_size}),
    )
    obj = results.to_json_obj()
    obj["config"]["tabular"] = prep.config_extra
    write_json_atomic(results_path, obj)
    return results


def _aggregates(records: list[InputResult], max_budget: int, radii: list[float]) -> Aggregates:
    return aggregate(records, max_budget, radii)


_CONFIG_KEYS = {"data", "schema", "model", "model_type", "trusted", "kernel", "beta", "sigma", "tau", "alpha", "n0",
                "n", "seed", "radii", "chunk_size", "batch_size", "wave", "name", "model_name"}


_FIELD_TYPES = {name: TypeAdapter(hint) for name, hint in get_type_hints(TabularAudit).items()}


def load_tabular_config(path: Path) -> TabularAudit:
    """A tabular audit configuration (JSON); paths are relative to the file's folder; unknown keys refused."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the tabular audit configuration ({exc.strerror})") from None
    data = loads_strict(raw, str(path))  # no duplicate keys, NaN, deep nesting or oversized files
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    unknown = set(data) - _CONFIG_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("data", "schema", "model"):
        if not isinstance(data.get(key), str):
            raise ValueError(f"{path}: {key!r} must name a file")
        data[key] = path.parent / data[key]
    for key in ("trusted", "radii"):
        if key in data:
            if not isinstance(data[key], list):
                raise ValueError(f"{path}: {key!r} must be a list")
            data[key] = tuple(data[key])
    for key, value in data.items():  # strict types: true is not 1, "0.5" is not 0.5, 100.0 is not an integer
        try:
            _FIELD_TYPES[key].validate_python(value, strict=True)
        except ValidationError as exc:
            raise ValueError(f"{path}: field {key}: {exc.errors()[0]['msg']}, got {value!r}") from None
    try:
        return TabularAudit(**data)
    except TypeError as exc:
        raise ValueError(f"{path}: {exc}") from None


def tabular_audit_from_file(config: Path, out_dir: Path, resume: bool = False, overwrite: bool = False,
                            device: str | None = None, batch_size: int | None = None,
                            executor: str | None = None,
                            progress: Callable[[int, int], None] | None = None) -> AuditResults:
    """``hybridcert tabular-audit``, and ``hybridcert audit`` given a ``.json`` configuration: load the
    configuration, then ``run_tabular_audit``. Tabular models run in this process on the CPU, so ``device`` may
    only be ``cpu`` or ``auto`` and ``executor`` only ``in-process``; ``batch_size`` overrides the configuration's
    (rows per model call: the results do not depend on it)."""
    from dataclasses import replace

    if device not in (None, "auto", "cpu"):
        raise ValueError(f"--device {device}: a tabular audit runs on the CPU (auto or cpu)")
    if executor not in (None, "in-process"):
        raise ValueError(f"--executor {executor}: a tabular audit runs in-process")
    audit = load_tabular_config(config)
    if batch_size is not None:
        audit = replace(audit, batch_size=batch_size)
    return run_tabular_audit(audit, out_dir, resume=resume, overwrite=overwrite, progress=progress)
