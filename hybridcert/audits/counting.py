"""Counting: noisy samples through the filter, class-1 decisions counted (docs/theory.md §1, §2, §5).

A work item is (input, stream, noised span, first chunk, count) -> the number of class-1 decisions. Every sample
is seeded by (audit seed, input id, stream, chunk) (``samplers.chunk_seed``), so a work item's count does not
depend on which process, machine or batch computes it, and the counts of consecutive chunk ranges of one
(input, stream) add up to the count of their union. That is what makes results independent of batch size,
waves, executors and interruption.

Per input (``count_wave``): n0 selection samples (stream ``SELECT``) pick the side, unless a target class is
fixed; then n estimation samples (stream ``ESTIMATE``; ``per-budget`` sampling: stream ``ESTIMATE + d`` with
d noised positions) count the target side. With ``stopping = "sequential"`` the estimation samples are drawn a
chunk at a time by the theory's own loop (``theory.sequential.run_sequential``) until its stopping rule stops
the input; its bound at the stopping time is anytime-valid (docs/theory.md §5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from hybridcert.audits.certification import Counted, sequential_rule
from hybridcert.audits.dataset import AuditInput
from hybridcert.audits.preparation import Audit
from hybridcert.audits.samplers import ESTIMATE, SELECT, chunks
from hybridcert.theory.sequential import run_sequential


@dataclass(frozen=True)
class WorkItem:
    """The ``count`` samples of ``stream`` of input number ``index`` (its position in the dataset), starting at
    chunk ``first_chunk``, with the noised positions ``span``. ``count`` is a whole number of chunks except
    possibly at the end of the range."""

    index: int
    stream: int
    span: tuple[int, int]
    first_chunk: int
    count: int


class Executor(Protocol):
    """Counts class 1 on work items; ``count`` returns, per item and in order, (count, seconds spent).
    Implementations: ``executors.InProcessExecutor``, ``executors.RayExecutor``."""

    name: str

    def count(self, audit: Audit, work: Sequence[WorkItem]) -> list[tuple[int, float]]: ...

    def close(self) -> None: ...


def clean_tokens(audit: Audit, item: AuditInput) -> torch.Tensor:
    """The input's token ids on the sampling device, with the pad span appended for ``suffix-append``."""
    tokens = list(item.tokens)
    if audit.threat.kind == "suffix-append":
        assert audit.spec.tokens.pad_id is not None and audit.threat.span is not None
        tokens += [audit.spec.tokens.pad_id] * audit.threat.span
    return torch.tensor(tokens, dtype=torch.int64, device=audit.device)


def budget_span(audit: Audit, full: tuple[int, int], d: int) -> tuple[int, int]:
    """Per-budget mode: the d noised positions of pass d (the whole text for l0)."""
    start, stop = full
    if audit.threat.kind == "suffix-append":
        return (start, start + d)
    if audit.threat.kind == "suffix-inplace":
        return (stop - d, stop)
    return full


def count_class_one(audit: Audit, item: AuditInput, stream: int, count: int, span: tuple[int, int],
                    first_chunk: int = 0) -> int:
    """Number of the ``count`` noisy samples of ``stream``, from chunk ``first_chunk`` on, on which the filter
    says class 1 (the counts of consecutive chunk ranges add up to the count of their union)."""
    if count == 0:
        return 0
    tokens = clean_tokens(audit, item)
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


def count_wave(audit: Audit, executor: Executor, items: list[tuple[int, AuditInput]]) -> list[Counted]:
    """Counts for a wave of (dataset index, input): every (input, stream) range handed to the executor at once;
    sequential inputs then advance one chunk per look until the stopping rule stops them (module docstring)."""
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
                work += [WorkItem(index, ESTIMATE + d, budget_span(audit, fulls[j], d), 0, c.n)
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
    out: list[Counted] = []
    for j, (_, item) in enumerate(items):
        sel = selection[j]
        if c.target_class is not None:
            target_class = c.target_class
        else:
            assert sel is not None
            target_class = 1 if sel / c.n0 >= c.tau else 0
        targets = ones[j] if target_class == 1 else [c.n - k for k in ones[j]]
        out.append(Counted(item, budgets[j], sel, target_class, targets, seconds[j], n_used=c.n))
    if c.stopping == "sequential":
        for side in (0, 1):
            group = [j for j in range(len(items)) if out[j].target_class == side]
            if group:
                _sequential(audit, executor, [items[j][0] for j in group], [fulls[j] for j in group],
                            [out[j] for j in group], side)
    return out


def _sequential(audit: Audit, executor: Executor, indices: list[int], fulls: list[tuple[int, int]],
                counted: list[Counted], side: int) -> None:
    """The inputs of one side, sampled by ``theory.sequential.run_sequential`` with that side's rule.

    ``run_sequential`` advances every live input together, one chunk per look (``rule.chunk`` = the audit's
    chunk size, cut at ``rule.n_max`` = n), and stops each input on its own, so an input's samples, stopping
    time and bound do not depend on the wave it shares, the batch size or the executor. Its ``draw`` asks the
    executor for the next chunk of each live input and returns the target side's count.
    """
    rule = sequential_rule(audit.noise, audit.spec.certify, side)
    drawn = [0] * len(indices)  # samples drawn so far per input (all live inputs share it)

    def draw(live: NDArray[np.intp], m: int) -> list[int]:
        positions = [int(j) for j in live]
        chunk = drawn[positions[0]] // rule.chunk
        work = [WorkItem(indices[j], ESTIMATE, fulls[j], chunk, m) for j in positions]
        got = []
        for j, (ones, sec) in zip(positions, executor.count(audit, work), strict=True):
            counted[j].seconds += sec
            drawn[j] += m
            got.append(ones if side == 1 else m - ones)
        return got

    result = run_sequential(draw, len(indices), rule)
    for j, x in enumerate(counted):
        x.targets = [int(result.successes[j])]
        x.n_used = int(result.trials[j])
        x.p_lower = float(result.p_lower[j])
        x.stopped = str(result.status[j])
