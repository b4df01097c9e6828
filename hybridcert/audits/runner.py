"""The certify loop (THEORY 4 and 5) with an append-only log, resume, and ``results.json``.

Per input: n0 selection samples pick the side (flag when the estimate of P[f = 1] is >= tau, unless a target
class is fixed), n fresh samples count the target class, the one-sided Clopper-Pearson bound at alpha gives
p_a_lower, and the theory engine turns it into the frontier d -> r*(d) against the side's threshold (tau, or
the smallest float above 1 - tau on the no-flag side). With probability >= 1 - alpha over the sampling, each
input's certificate holds for the smoothed filter (THEORY 5).

Sampling modes (THEORY 5): ``one-pass`` noises every eligible position once, so every budget shares one
bound at the full alpha. ``per-budget`` draws one pass per budget d with d noised positions (the whole text
for l0), each at alpha / (D + 1) (Bonferroni); entry d of the frontier then certifies the smoothed filter of
pass d.

Checkpointing: every finished input is appended to ``OUT/results.log.jsonl`` (flushed and fsynced) after a
header line holding the configuration hash; ``resume`` continues a killed audit from that log (a torn last
line is dropped), and because every sample is seeded by (seed, input id, stream, chunk), the final
``results.json`` equals the one of an uninterrupted run. ``results.json`` is written last, atomically.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridcert import __version__
from hybridcert.audits.baselines import with_baselines
from hybridcert.audits.checkpoint import (
    LOG_NAME,
    RESULTS_NAME,
    LogWriter,
    OutputLock,
    check_out_dir,
    read_log,
)
from hybridcert.audits.config import AuditSpec, FilterSpec, load_vocabulary
from hybridcert.audits.dataset import AuditInput, Dataset, load_manifest
from hybridcert.audits.executors import Executor, WorkItem, make_executor
from hybridcert.audits.filters import Filter
from hybridcert.audits.results import (
    AuditConfig,
    AuditResults,
    Counts,
    DatasetInfo,
    Decision,
    DenoiserInfo,
    FrontierPoint,
    InputResult,
    ModelInfo,
    NoiseConfig,
    ThreatModelConfig,
    ToolInfo,
    aggregate,
    canonical_dumps,
    write_json_atomic,
)
from hybridcert.audits.samplers import ESTIMATE, SELECT, HybridSampler, ImageNoise, TokenNoise, chunks
from hybridcert.theory import HybridNoise, ThreatModel, clopper_pearson_lower
from hybridcert.theory.sequential import METHOD as SEQUENTIAL_METHOD
from hybridcert.theory.sequential import SequentialRule, decide


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; otherwise the named device (ValueError when unusable)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"run.device: unknown device {name!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"run.device: {name!r} requested but CUDA is not available")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"run.device: unsupported device {name!r}")
    return device


def build_filter(spec: FilterSpec, base: AuditSpec, device: torch.device, amp: bool) -> tuple[Filter, ModelInfo]:
    """Build the filter named by ``[filter]`` through ``adapters.load_filter`` (every adapter type; pickled
    weights refused unless the table opts in), on the audit's device and precision, and describe it for the
    results (name, version, weights sha256)."""
    from hybridcert.audits.adapters import load_filter

    filt = load_filter(spec.table(), Path(base.base_dir), device=device, amp=amp)
    name = getattr(filt, "name", None) or spec.name or spec.type
    sha = getattr(filt, "weights_sha256", None)
    if not sha:
        raise ValueError(f"filter {name!r} reports no weights_sha256: results must identify the model")
    table = spec.table()
    info = ModelInfo(name=str(name), version=spec.version, sha256=str(sha), type=spec.type,
                     class_path=table.get("class_path"))
    if base.denoiser is not None:  # issue 12: denoised smoothing, part of the base filter (THEORY 10)
        from hybridcert.audits.adapters.denoiser import DenoisedFilter, Denoiser

        den = Denoiser.load(base.path(base.denoiser.path), base.noise.sigma, base.denoiser.pixel_space,
                            device=getattr(filt, "device", device), allow_pickle=base.denoiser.allow_pickle)
        filt = DenoisedFilter(filt, den)
        info.denoiser = DenoiserInfo(**den.info())
    return filt, info


@dataclass
class Audit:
    """A fully validated audit: nothing has been written yet."""

    spec: AuditSpec
    filter: Filter
    model: ModelInfo
    dataset: Dataset
    dataset_info: DatasetInfo
    config: AuditConfig
    device: torch.device
    threat: ThreatModel
    noise: HybridNoise
    sampler: HybridSampler
    batch_size: int
    wave: int
    _memo: dict[tuple[float, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    _memo_p: dict[tuple[float, float], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: the command that reruns this audit (results.json ``command``; set by audit_from_file)
    command: str | None = None

    @property
    def config_hash(self) -> str:
        payload = {"config": self.config.model_dump(mode="json"), "model": self.model.model_dump(mode="json"),
                   "dataset": self.dataset_info.model_dump(mode="json")}
        return hashlib.sha256(canonical_dumps(payload).encode()).hexdigest()


def _baseline_config(names: Sequence[str]) -> dict[str, Any]:
    """``config.baselines`` only when some are asked for (older results keep their config hash)."""
    return {"baselines": list(names)} if names else {}


def prepare(spec: AuditSpec, device: str | None = None, batch_size: int | None = None,
            filt: tuple[Filter, ModelInfo] | None = None, sampling_device: str | None = None) -> Audit:
    """Validate the whole audit (filter, dataset, noise) before anything runs or is written.

    ``sampling_device`` (``cpu`` or ``cuda``; the Ray executor): the device type the work items will be
    sampled on elsewhere, recorded in the config; this process then builds the filter only to validate and
    identify it, on the CPU (so that it takes no GPU memory from an actor on this node; ``device`` is ignored).
    """
    if sampling_device not in (None, "cpu", "cuda"):
        raise ValueError(f"sampling_device must be cpu or cuda, got {sampling_device!r}")
    dev = resolve_device(device or spec.run.device) if sampling_device is None else torch.device("cpu")
    alphabet = spec.tokens.alphabet_ids()
    threat = ThreatModel(spec.threat_model.kind, spec.threat_model.span)
    noise = HybridNoise(spec.noise.kernel, len(alphabet), spec.noise.beta, spec.noise.sigma)
    token_noise = TokenNoise.make(spec.noise.kernel, alphabet, spec.noise.beta, spec.tokens.mask_id, dev)
    alphabet_set = set(alphabet)

    def check_tokens(tokens: tuple[int, ...]) -> None:
        start, stop = threat.noised_positions(len(tokens))  # raises for a suffix span longer than the text
        if threat.kind == "suffix-append":
            return
        outside = [t for t in tokens[start:stop] if t not in alphabet_set]
        if outside:
            raise ValueError(f"token id {outside[0]} at a noised position is not in the alphabet")

    vocabulary = load_vocabulary(spec.path(spec.tokens.vocabulary)) if spec.tokens.vocabulary else None
    manifest = spec.path(spec.dataset.manifest)
    dataset = load_manifest(manifest, spec.dataset.image_shape, spec.tokens.model_vocab_size, vocabulary,
                            check_tokens)
    filter_and_info = filt if filt is not None else build_filter(spec.filter, spec, dev, spec.run.amp)
    c = spec.certify
    if c.sampling == "one-pass":
        testing = "one sampling pass with every eligible position noised: every budget shares one bound"
    else:
        testing = (f"one sampling pass per budget d = 0..{c.max_budget} with d positions noised; alpha split "
                   f"over the {c.max_budget + 1} passes (Bonferroni): alpha / {c.max_budget + 1} each")
    sequential: dict[str, Any] = {}
    if c.stopping == "sequential":
        testing += ("; sequential: each input stops once every requested point is decided (anytime-valid "
                    "confidence sequence at alpha, so stopping on the data keeps the level)")
        sequential = {"confidence_bound": SEQUENTIAL_METHOD}  # filled in below, once the noise is known
    config = AuditConfig(
        noise=NoiseConfig(kernel=spec.noise.kernel, vocab_size=len(alphabet), beta=spec.noise.beta,
                          sigma=spec.noise.sigma, mask_id=spec.tokens.mask_id,
                          alphabet_sha256=hashlib.sha256(json.dumps(sorted(alphabet)).encode()).hexdigest()),
        threat_model=ThreatModelConfig(kind=threat.kind, span=threat.span, pad_id=spec.tokens.pad_id),
        pixel_space=spec.noise.pixel_space, clamp=spec.noise.clamp, tau=c.tau, alpha=c.alpha, n0=c.n0, n=c.n,
        seed=str(spec.seed), sampling=c.sampling, max_budget=c.max_budget, target_class=c.target_class,
        chunk_size=c.chunk_size, multiple_testing=testing, radii=list(c.radii),
        sampling_device=sampling_device or dev.type, amp=spec.run.amp, **sequential,
        **_baseline_config(c.baselines),
    )
    dataset_info = DatasetInfo(name=spec.dataset.name or manifest.stem, version=spec.dataset.version,
                               sha256=dataset.manifest_sha256, n_inputs=len(dataset.inputs),
                               content_sha256=dataset.content_sha256)
    sampler = HybridSampler(token_noise, ImageNoise(spec.noise.sigma, spec.noise.clamp, spec.noise.pixel_space),
                            spec.seed, c.chunk_size)
    audit = Audit(spec, filter_and_info[0], filter_and_info[1], dataset, dataset_info, config, dev, threat, noise,
                  sampler, batch_size or spec.run.batch_size, spec.run.wave)
    if c.stopping == "sequential":
        # both sides share everything in describe() except the threshold, which each input states itself
        config.sequential = sequential_rule(audit, 1).describe()  # type: ignore[attr-defined]
    return audit


# ------------------------------------------------------------------------------------------------------
# sampling
# ------------------------------------------------------------------------------------------------------


def _clean_tokens(audit: Audit, item: AuditInput) -> torch.Tensor:
    tokens = list(item.tokens)
    if audit.threat.kind == "suffix-append":
        assert audit.spec.tokens.pad_id is not None and audit.threat.span is not None
        tokens += [audit.spec.tokens.pad_id] * audit.threat.span
    return torch.tensor(tokens, dtype=torch.int64, device=audit.device)


def count_class_one(audit: Audit, item: AuditInput, stream: int, count: int, span: tuple[int, int],
                    first_chunk: int = 0) -> int:
    """Number of the ``count`` noisy samples of ``stream``, from chunk ``first_chunk`` on, on which the filter
    says class 1 (the counts of consecutive chunk ranges add up to the count of their union)."""
    if count == 0:
        return 0
    tokens = _clean_tokens(audit, item)
    image = torch.from_numpy(item.image).to(audit.device)
    clean_index = audit.sampler.clean_index(tokens, span)
    pending_t: list[torch.Tensor] = []
    pending_i: list[torch.Tensor] = []
    buffered = 0
    total = 0

    def run(toks: torch.Tensor, imgs: torch.Tensor) -> int:
        out = audit.filter(toks, imgs)
        return int(out.sum().item())

    for index, size in chunks(count, audit.sampler.chunk_size):
        chunk = first_chunk + index
        toks, imgs = audit.sampler.draw(item.id, tokens, image, span, stream, chunk, size, clean_index)
        pending_t.append(toks)
        pending_i.append(imgs)
        buffered += size
        if buffered >= audit.batch_size:
            all_t, all_i = (toks, imgs) if len(pending_t) == 1 else (torch.cat(pending_t), torch.cat(pending_i))
            full = (buffered // audit.batch_size) * audit.batch_size
            for s in range(0, full, audit.batch_size):
                total += run(all_t[s:s + audit.batch_size], all_i[s:s + audit.batch_size])
            buffered -= full
            pending_t, pending_i = ([all_t[full:]], [all_i[full:]]) if buffered else ([], [])
    if buffered:
        total += run(torch.cat(pending_t) if len(pending_t) > 1 else pending_t[0],
                     torch.cat(pending_i) if len(pending_i) > 1 else pending_i[0])
    return total


def _budget_span(audit: Audit, full: tuple[int, int], d: int) -> tuple[int, int]:
    """Per-budget mode: the d noised positions of pass d (the whole text for l0)."""
    start, stop = full
    if audit.threat.kind == "suffix-append":
        return (start, start + d)
    if audit.threat.kind == "suffix-inplace":
        return (stop - d, stop)
    return full


@dataclass
class _Counted:
    item: AuditInput
    max_budget: int
    selection_ones: int | None
    target_class: int
    targets: list[int]  # one count (one-pass) or one per budget (per-budget)
    seconds: float
    n_used: int = 0  # samples behind targets (n, or the samples a sequential input drew)
    p_lower: float | None = None  # sequential: the confidence-sequence lower bound at the stopping time
    stopped: str | None = None  # sequential: certified | refuted | cap


def _count_input(audit: Audit, item: AuditInput) -> _Counted:
    """One input in this process (kept for tests and callers that count a single input)."""
    from hybridcert.audits.executors import InProcessExecutor

    index = next(i for i, x in enumerate(audit.dataset.inputs) if x.id == item.id)
    return _count_wave(audit, InProcessExecutor(), [(index, item)])[0]


def _count_wave(audit: Audit, executor: Executor, items: list[tuple[int, AuditInput]]) -> list[_Counted]:
    """Counts for a wave of (dataset index, input): every (input, stream) range handed to the executor at once;
    sequential inputs then advance one chunk per round until ``decide`` stops them (THEORY 5, issue 7)."""
    c = audit.spec.certify
    fulls = [audit.threat.noised_positions(len(item.tokens)) for _, item in items]
    budgets = [min(c.max_budget, full[1] - full[0]) for full in fulls]
    work: list[WorkItem] = []
    owner: list[int] = []
    if c.target_class is None:
        for j, (index, _) in enumerate(items):
            work.append(WorkItem(index, SELECT, fulls[j], 0, c.n0))
            owner.append(j)
    if c.stopping == "fixed":
        for j, (index, _) in enumerate(items):
            if c.sampling == "one-pass":
                work.append(WorkItem(index, ESTIMATE, fulls[j], 0, c.n))
            else:
                work += [WorkItem(index, ESTIMATE + d, _budget_span(audit, fulls[j], d), 0, c.n)
                         for d in range(budgets[j] + 1)]
            owner += [j] * (1 if c.sampling == "one-pass" else budgets[j] + 1)
    got = executor.count(audit, work)
    seconds = [0.0] * len(items)
    selection: list[int | None] = [None] * len(items)
    ones: list[list[int]] = [[] for _ in items]
    for w, j, (k, sec) in zip(work, owner, got, strict=True):
        seconds[j] += sec
        if w.stream == SELECT:
            selection[j] = k
        else:
            ones[j].append(k)
    out: list[_Counted] = []
    for j, (_, item) in enumerate(items):
        sel = selection[j]
        if c.target_class is not None:
            target_class = c.target_class
        else:
            assert sel is not None
            target_class = 1 if sel / c.n0 >= c.tau else 0
        targets = ones[j] if target_class == 1 else [c.n - k for k in ones[j]]
        out.append(_Counted(item, budgets[j], sel, target_class, targets, seconds[j], n_used=c.n))
    if c.stopping == "sequential":
        _sequential(audit, executor, items, fulls, out)
    return out


def sequential_rule(audit: Audit, target_class: int) -> SequentialRule:
    """The stopping rule of one side: requested points, the side's threshold, alpha, cap n, one look per chunk."""
    c = audit.spec.certify
    assert c.requested is not None
    return SequentialRule(noise=audit.noise, points=tuple(c.requested), threshold=side_threshold(c.tau, target_class),
                          alpha=c.alpha, n_max=c.n, chunk=c.chunk_size)


def _sequential(audit: Audit, executor: Executor, items: list[tuple[int, AuditInput]],
                fulls: list[tuple[int, int]], counted: list[_Counted]) -> None:
    """Draw one chunk of every live input per round and stop each input by ``decide`` (issue 7).

    ``decide`` treats every input on its own, so an input's samples, stopping time and bound do not depend on
    the wave it shares, the batch size or the executor.
    """
    c = audit.spec.certify
    rules = {side: sequential_rule(audit, side) for side in (0, 1)}
    k = [0] * len(items)
    n = [0] * len(items)
    live = list(range(len(items)))
    chunk = 0
    while live:
        size = min(c.chunk_size, c.n - chunk * c.chunk_size)
        work = [WorkItem(items[j][0], ESTIMATE, fulls[j], chunk, size) for j in live]
        for j, (ones, sec) in zip(live, executor.count(audit, work), strict=True):
            k[j] += ones if counted[j].target_class == 1 else size - ones
            n[j] += size
            counted[j].seconds += sec
        still: list[int] = []
        for side, rule in rules.items():
            group = [j for j in live if counted[j].target_class == side]
            if not group:
                continue
            dec = decide([k[j] for j in group], [n[j] for j in group], rule)
            for pos, j in enumerate(group):
                if dec.stop[pos]:
                    counted[j].targets = [k[j]]
                    counted[j].n_used = n[j]
                    counted[j].p_lower = float(dec.p_lower[pos])
                    counted[j].stopped = str(dec.status[pos])
                else:
                    still.append(j)
        live = sorted(still)
        chunk += 1


# ------------------------------------------------------------------------------------------------------
# certificates
# ------------------------------------------------------------------------------------------------------


def side_threshold(tau: float, target_class: int) -> float:
    """tau on the flag side; the smallest float strictly above 1 - tau on the no-flag side (THEORY 4)."""
    return tau if target_class == 1 else float(np.nextafter(1.0 - tau, 2.0))


def _effective_alpha(audit: Audit) -> float:
    c = audit.spec.certify
    return c.alpha if c.sampling == "one-pass" else c.alpha / (c.max_budget + 1)


def _fill_memo_p(audit: Audit, needed: set[tuple[float, float]]) -> None:
    """Sequential inputs: frontier rows for every (threshold, p_a_lower) not yet known (THEORY 4; the
    confidence sequence is time-uniform, so its bound at the stopping time enters like a fixed-n bound)."""
    missing = sorted(needed - set(audit._memo_p))
    for threshold in sorted({t for t, _ in missing}):
        ps = [p for t, p in missing if t == threshold]
        radii, mask = audit.noise.frontier_radii(np.array(ps), tau=threshold,
                                                 max_budget=audit.spec.certify.max_budget)
        for i, p in enumerate(ps):
            audit._memo_p[(threshold, p)] = (radii[i], mask[i])


def _fill_memo(audit: Audit, needed: set[tuple[float, int]]) -> None:
    """Frontier rows for every (threshold, count) not yet known, one vectorised theory call per threshold.

    The theory engine computes each p_a independently, so the rows do not depend on which counts share a
    call (checked by the batch-size and resume tests).
    """
    missing = sorted(needed - set(audit._memo))
    c = audit.spec.certify
    for threshold in sorted({t for t, _ in missing}):
        ks = np.array([k for t, k in missing if t == threshold], dtype=np.int64)
        p = clopper_pearson_lower(ks, c.n, _effective_alpha(audit))
        radii, mask = audit.noise.frontier_radii(p, tau=threshold, max_budget=c.max_budget)
        for i, k in enumerate(ks):
            audit._memo[(threshold, int(k))] = (radii[i], mask[i])


def _point(d: int, r: float) -> FrontierPoint:
    if np.isinf(r):
        return FrontierPoint(budget=d, radius=None, radius_infinite=True)
    return FrontierPoint(budget=d, radius=float(r))


def _certify(audit: Audit, counted: _Counted, share_seconds: float) -> InputResult:
    c = audit.spec.certify
    threshold = side_threshold(c.tau, counted.target_class)
    frontier: list[FrontierPoint] = []
    if counted.p_lower is not None:
        p_lowers = [counted.p_lower]
    else:
        p_lowers = [float(clopper_pearson_lower(k, c.n, _effective_alpha(audit))) for k in counted.targets]
    if c.sampling == "one-pass":
        radii, mask = (audit._memo_p[(threshold, counted.p_lower)] if counted.p_lower is not None
                       else audit._memo[(threshold, counted.targets[0])])
        for d in range(counted.max_budget + 1):
            if not mask[d]:
                break
            frontier.append(_point(d, float(radii[d])))
    else:
        prev = np.inf
        for d in range(counted.max_budget + 1):
            radii, mask = audit._memo[(threshold, counted.targets[d])]
            if not mask[d]:
                break
            prev = min(prev, float(radii[d]))
            frontier.append(_point(d, prev))
    decision: Decision = ("flag" if counted.target_class == 1 else "no-flag") if frontier else "abstain"
    label = counted.item.label
    correct = decision != "abstain" and (decision == "flag") == (label == 1)
    extra: dict[str, Any] = {} if counted.stopped is None else {"stopped": counted.stopped}
    return InputResult(
        id=counted.item.id, label=label, group=counted.item.group,
        counts=Counts(n0=c.n0 if c.target_class is None else 0, n=counted.n_used, target=counted.targets[0],
                      selection_target=(None if counted.selection_ones is None else
                                        (counted.selection_ones if counted.target_class == 1
                                         else c.n0 - counted.selection_ones)),
                      target_per_budget=counted.targets if c.sampling == "per-budget" else None),
        target_class=counted.target_class, side="flag" if counted.target_class == 1 else "no-flag",
        threshold=threshold, p_a_lower=p_lowers[0],
        p_a_lower_per_budget=p_lowers if c.sampling == "per-budget" else None,
        decision=decision, correct=correct, max_budget=counted.max_budget, frontier=frontier,
        seconds=round(counted.seconds + share_seconds, 6), **extra,
    )


def certify_inputs(audit: Audit, items: list[AuditInput]) -> list[InputResult]:
    """Sample and certify a group of inputs (results in the order given)."""
    return _certify_counted(audit, [_count_input(audit, item) for item in items])


def _certify_counted(audit: Audit, counted: list[_Counted]) -> list[InputResult]:
    """Certificates for counted inputs: one vectorised theory call per side for the counts not yet known."""
    start = time.perf_counter()
    tau = audit.spec.certify.tau
    _fill_memo(audit, {(side_threshold(tau, x.target_class), k) for x in counted if x.p_lower is None
                       for k in x.targets})
    _fill_memo_p(audit, {(side_threshold(tau, x.target_class), x.p_lower) for x in counted
                         if x.p_lower is not None})
    share = (time.perf_counter() - start) / max(len(counted), 1)
    return [_certify(audit, x, share) for x in counted]


# ------------------------------------------------------------------------------------------------------
# log, resume, results
# ------------------------------------------------------------------------------------------------------


def _revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) == 40 else None


def _environment(audit: Audit) -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(),
            "packages": {"torch": torch.__version__, "numpy": np.__version__},
            "device": str(audit.device), "batch_size": audit.batch_size, "amp": audit.spec.run.amp,
            "torch_threads": torch.get_num_threads()}


def rerun_command(config: Path, out_dir: Path, executor: str | None = None) -> str:
    """The command that reruns an audit (into a new folder, or this one with --overwrite)."""
    import shlex

    extra = f" --executor {executor}" if executor else ""
    return f"hybridcert audit --config {shlex.quote(str(config))} --out {shlex.quote(str(out_dir))}{extra}"


def audit_from_file(config: Path, out_dir: Path, resume: bool = False, overwrite: bool = False,
                    device: str | None = None, batch_size: int | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    executor: str | None = None) -> AuditResults:
    """``hybridcert audit``: validate everything first (nothing is written on bad input), then run.
    ``executor`` overrides ``[run] executor`` (in-process or ray)."""
    from hybridcert.audits.config import load_spec

    if executor is not None and executor not in ("in-process", "ray"):
        raise ValueError(f"--executor must be in-process or ray, got {executor!r}")
    check_out_dir(Path(out_dir), resume, overwrite)
    spec = load_spec(config)
    if (executor or spec.run.executor) != "ray":
        audit = prepare(spec, device=device, batch_size=batch_size)
        audit.command = rerun_command(config, out_dir)
        return run_audit(audit, out_dir, resume=resume, overwrite=overwrite, progress=progress, executor=executor)
    # Ray: the sampling device is the cluster's (a driver without a GPU can run a GPU cluster's audit)
    from hybridcert.audits.executors import ray_sampling_device, start_ray

    owned = start_ray(spec.run)  # a clear ValueError when Ray is not installed
    import ray as ray_module

    try:
        audit = prepare(spec, batch_size=batch_size, sampling_device=ray_sampling_device(device or spec.run.device))
        audit.command = rerun_command(config, out_dir, "ray")
        return run_audit(audit, out_dir, resume=resume, overwrite=overwrite, progress=progress, executor="ray")
    finally:
        if owned:
            ray_module.shutdown()


def summary_rows(results: AuditResults) -> tuple[list[float], list[tuple[int, list[float]]]]:
    """(radii, [(budget, certified rate at each radius)]) from the aggregates, for a summary table."""
    radii = list(results.config.radii)
    rows: dict[int, list[float]] = {}
    for cell in results.aggregates.certified:
        rows.setdefault(cell.budget, []).append(cell.rate)
    return radii, sorted(rows.items())


def run_audit(
    audit: Audit,
    out_dir: Path,
    resume: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    executor: str | None = None,
) -> AuditResults:
    """Certify every input, appending each to the log as it finishes; write ``results.json`` at the end.
    The counts come from ``executor`` (default ``[run] executor``; executors.py): results do not depend on it."""
    check_out_dir(Path(out_dir), resume, overwrite)
    threads = torch.get_num_threads()
    if audit.spec.run.threads is not None:
        torch.set_num_threads(audit.spec.run.threads)
    runner = make_executor(audit, executor)
    try:
        return _run_audit(audit, Path(out_dir), resume, overwrite, progress, runner)
    finally:
        runner.close()
        torch.set_num_threads(threads)


def _run_audit(
    audit: Audit, out_dir: Path, resume: bool, overwrite: bool, progress: Callable[[int, int], None] | None,
    executor: Executor,
) -> AuditResults:
    config_hash = audit.config_hash  # before anything is written: a config that cannot be hashed fails here
    with OutputLock(out_dir):  # one audit per folder, held until results.json is written (checkpoint.py)
        return _run_locked(audit, out_dir, resume, overwrite, progress, executor, config_hash)


def _run_locked(
    audit: Audit, out_dir: Path, resume: bool, overwrite: bool, progress: Callable[[int, int], None] | None,
    executor: Executor, config_hash: str,
) -> AuditResults:
    log_path, results_path = out_dir / LOG_NAME, out_dir / RESULTS_NAME
    check_out_dir(out_dir, resume, overwrite)  # again, under the lock
    ids = [item.id for item in audit.dataset.inputs]
    done: dict[str, InputResult] = {}
    if resume:
        done = read_log(log_path, config_hash, set(ids))
    else:
        results_path.unlink(missing_ok=True)
        log_path.unlink(missing_ok=True)
    todo = [item for item in audit.dataset.inputs if item.id not in done]
    index_of = {item.id: i for i, item in enumerate(audit.dataset.inputs)}
    total = len(ids)
    if progress:
        progress(len(done), total)
    with LogWriter(log_path, config_hash, audit.config.model_dump(mode="json")) as log:
        # Pipeline: the certificates of one wave are computed in a worker thread while the next wave is
        # sampled (the theory engine and the filter then use different cores); lines are logged in order.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="certify") as pool:
            pending: Future[list[InputResult]] | None = None
            for start in range(0, len(todo), audit.wave):
                counted = _count_wave(audit, executor, [(index_of[item.id], item)
                                                        for item in todo[start:start + audit.wave]])
                if pending is not None:
                    log.write(with_baselines(audit, pending.result()), done, total, progress)
                pending = pool.submit(_certify_counted, audit, counted)
            if pending is not None:
                log.write(with_baselines(audit, pending.result()), done, total, progress)
    inputs = [done[i] for i in ids]
    results = AuditResults(
        tool=ToolInfo(version=__version__, revision=_revision()),
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        config=audit.config, **_report_fields(audit), inputs=inputs,
        aggregates=aggregate(inputs, audit.spec.certify.max_budget, audit.spec.certify.radii),
        environment={**_environment(audit), "executor": executor.name},
    )
    write_json_atomic(results_path, results.to_json_obj())
    return results


def _report_fields(audit: Audit) -> dict[str, Any]:
    """model, dataset and command for results.json, with the ``[report]`` texts (docs/results-format.md)."""
    r = audit.spec.report
    model = {"intended_purpose": r.intended_purpose} if r.intended_purpose else {}
    data = {k: v for k, v in (("selection", r.input_selection), ("preprocessing", r.preprocessing),
                              ("out_of_scope", r.out_of_scope)) if v}
    fields: dict[str, Any] = {"model": audit.model.model_copy(update=model),
                              "dataset": audit.dataset_info.model_copy(update=data)}
    if audit.command:
        fields["command"] = audit.command
    return fields
