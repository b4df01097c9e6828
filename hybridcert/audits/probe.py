"""``hybridcert probe``: check a filter on the first inputs of an audit before the long run (issue 12).

For each of the first inputs: the prompt length in tokens (what the model reads, image placeholders
included), the clean score and decision, and the decision rate on a few noisy samples drawn with the audit's
own noise (a separate probe stream, so nothing here is reused by an audit); then the throughput at the
configured batch size and the peak memory; on CUDA first the largest batch that fits (halving on out-of-memory,
else doubling up to 16 times the configured one), and the throughput at the configured batch size or, when
that does not fit, at the largest that does.

Nothing here is a certificate: the decision rate on a handful of samples only says whether the smoothed
filter is likely to flag (docs/theory.md §5 needs n samples and a confidence bound for that).
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from hybridcert.audits.config import AuditSpec
from hybridcert.audits.counting import clean_tokens
from hybridcert.audits.preparation import Audit, prepare

PROBE_STREAM = 1 << 20  # a stream no audit uses (audits use SELECT, ESTIMATE + d and the baselines' streams)


@dataclass
class InputProbe:
    id: str
    prompt_tokens: int
    clean_score: float | None
    clean_decision: int
    noisy_rate: float
    noisy_samples: int


@dataclass
class ProbeReport:
    filter: str
    device: str
    batch_size: int
    inputs: list[InputProbe] = field(default_factory=list)
    samples_per_second: float = 0.0
    peak_memory_mib: float = 0.0
    memory_kind: str = "process max RSS"
    largest_batch: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _prompt_tokens(filt: Any, tokens: torch.Tensor, hw: tuple[int, int]) -> int:
    if hasattr(filt, "prompt_ids"):
        prefix, suffix = filt.prompt_ids(*hw)
        return len(prefix) + int(tokens.numel()) + len(suffix)
    return int(tokens.numel())


def _peak_memory(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "CUDA max allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10), "process max RSS"


def _batch(audit: Audit, item: Any, size: int, chunk: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = clean_tokens(audit, item)
    image = torch.from_numpy(item.image).to(audit.device)
    span = audit.threat.noised_positions(len(item.tokens))
    return audit.sampler.draw(item.id, tokens, image, span, PROBE_STREAM, chunk, size)


def _fits(audit: Audit, item: Any, size: int) -> bool:
    cuda = audit.device.type == "cuda"
    try:
        toks, imgs = _batch(audit, item, size)
        audit.filter(toks, imgs)
        if cuda:
            torch.cuda.synchronize(audit.device)
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        if cuda:
            torch.cuda.empty_cache()


def largest_batch(audit: Audit, item: Any, start: int, grow: int = 16) -> int:
    """The largest batch that runs without CUDA out-of-memory: from ``start``, halving on out-of-memory, else
    doubling up to ``grow`` times ``start`` (0 when even a batch of 1 does not fit)."""
    size = start
    while size > 1 and not _fits(audit, item, size):
        size //= 2
    if size < start:
        return size if _fits(audit, item, size) else 0
    while size * 2 <= grow * start and _fits(audit, item, size * 2):
        size *= 2
    return size


def probe(spec: AuditSpec, inputs: int = 4, samples: int = 8, device: str | None = None,
          batch_size: int | None = None, rounds: int = 3) -> ProbeReport:
    """Probe the audit's filter on its first ``inputs`` inputs (see the module docstring)."""
    if inputs < 1 or samples < 1 or rounds < 1:
        raise ValueError("--inputs, samples and rounds must be >= 1")
    audit = prepare(spec, device=device, batch_size=batch_size)
    filt: Any = audit.filter
    if audit.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(audit.device)
    report = ProbeReport(filter=audit.model.name, device=str(audit.device), batch_size=audit.batch_size)
    items = audit.dataset.inputs[:inputs]
    measure = audit.batch_size
    if audit.device.type == "cuda" and items:
        with torch.inference_mode():
            report.largest_batch = largest_batch(audit, items[0], audit.batch_size)
        measure = min(measure, max(report.largest_batch, 1))
        torch.cuda.reset_peak_memory_stats(audit.device)
    report.batch_size = measure
    with torch.inference_mode():
        for item in items:
            tokens = clean_tokens(audit, item)
            image = torch.from_numpy(item.image).to(audit.device)
            hw = (int(image.shape[-2]), int(image.shape[-1]))
            score = None
            if hasattr(filt, "scores"):
                score = float(filt.scores(tokens[None], image[None])[0])
            decision = int(filt(tokens[None], image[None])[0])
            toks, imgs = _batch(audit, item, samples)
            rate = float(filt(toks, imgs).float().mean())
            report.inputs.append(InputProbe(item.id, _prompt_tokens(filt, tokens, hw), score, decision, rate, samples))
        if items:
            toks, imgs = _batch(audit, items[0], measure, chunk=1)
            filt(toks, imgs)  # warm-up
            if audit.device.type == "cuda":
                torch.cuda.synchronize(audit.device)
            start = time.perf_counter()
            for _ in range(rounds):
                filt(toks, imgs)
            if audit.device.type == "cuda":
                torch.cuda.synchronize(audit.device)
            report.samples_per_second = rounds * measure / (time.perf_counter() - start)
    report.peak_memory_mib, report.memory_kind = _peak_memory(audit.device)
    return report
