"""Preparing an audit: everything validated and built before anything runs or is written (issue 10).

``prepare`` reads the dataset (every line and image checked, docs/audit.md), builds the filter through the
adapters (its weights' sha256 identifies it in the results), the samplers and the theory's noise, and the
resolved configuration recorded in ``results.json`` (docs/theory.md §6: a radius is meaningless without
kernel, V, beta, sigma, tau, alpha, n and threat model). Nothing here samples or writes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hybridcert.audits.certification import sequential_rule
from hybridcert.audits.config import AuditSpec, FilterSpec, load_vocabulary
from hybridcert.audits.dataset import Dataset, load_manifest
from hybridcert.audits.filters import Filter
from hybridcert.audits.samplers import HybridSampler, ImageNoise, TokenNoise
from hybridcert.results.canonical import canonical_dumps
from hybridcert.results.schema import AuditConfig, DatasetInfo, DenoiserInfo, ModelInfo, NoiseConfig, ThreatModelConfig
from hybridcert.theory import HybridNoise, ThreatModel
from hybridcert.theory.sequential import METHOD as SEQUENTIAL_METHOD

RUN_DEVICE_TYPES = ("cpu", "cuda", "mps")


def run_device(name: str) -> torch.device:
    """``[run] device`` as a torch device: ``adapters.common.resolve_device`` (the one resolver: ``auto`` is
    CUDA when present, else the CPU), limited to the device types an audit samples on; ValueError
    ``run.device: ...`` otherwise."""
    from hybridcert.audits.adapters.common import resolve_device

    try:
        device = resolve_device(name)
    except ValueError as exc:
        raise ValueError(f"run.device: {exc}") from None
    if device.type not in RUN_DEVICE_TYPES:
        raise ValueError(f"run.device: unsupported device {name!r} (expected auto, cpu, cuda, cuda:N or mps)")
    return device


def build_filter(spec: FilterSpec, base: AuditSpec, device: torch.device, amp: bool) -> tuple[Filter, ModelInfo]:
    """Build the filter named by ``[filter]`` through ``adapters.load_filter`` (every adapter type; pickled
    weights refused unless the table opts in), on the audit's device and precision, and describe it for the
    results (name, version, weights sha256)."""
    from hybridcert.audits.adapters import load_filter

    filt = load_filter(spec, Path(base.base_dir), device=device, amp=amp)
    name = getattr(filt, "name", None) or spec.name or spec.type
    sha = getattr(filt, "weights_sha256", None)
    if not sha:
        raise ValueError(f"filter {name!r} reports no weights_sha256: results must identify the model")
    code = getattr(filt, "code_sha256", None)  # a user's module next to audit.toml: its source is identified too
    extra: dict[str, Any] = {"code_sha256": str(code)} if code else {}
    info = ModelInfo(name=str(name), version=spec.version, sha256=str(sha), type=spec.type,
                     class_path=spec.class_path, **extra)
    if base.denoiser is not None:  # issue 12: denoised smoothing, part of the base filter (docs/theory.md §10)
        from hybridcert.audits.adapters.denoiser import DenoisedFilter, Denoiser

        den = Denoiser.load(base.path(base.denoiser.path), base.noise.sigma, base.denoiser.pixel_space,
                            device=getattr(filt, "device", device), allow_pickle=base.denoiser.allow_pickle)
        filt = DenoisedFilter(filt, den)
        info.denoiser = DenoiserInfo(**den.info())
    return filt, info


@dataclass
class Audit:
    """A fully validated audit: nothing has been written yet. Holds no run state (caches belong to a run:
    ``certification.Certifier``), so one prepared audit can be run, resumed or sampled elsewhere any number of
    times."""

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
    #: the command that reruns this audit (results.json ``command``; set by runner.audit_from_file)
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
    dev = run_device(device or spec.run.device) if sampling_device is None else torch.device("cpu")
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
        config.sequential = sequential_rule(noise, c, 1).describe()  # type: ignore[attr-defined]
    return audit
