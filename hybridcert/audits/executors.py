"""Where the sampling runs (issue 7): a work item is (input, stream, first chunk, count) -> class-1 count.

Every sample is seeded by (audit seed, input id, stream, chunk) (``samplers.chunk_seed``), so a work item's
count does not depend on which process, machine or batch computes it, and the counts of the chunks of one
(input, stream) add up to the count of the whole range. The runner therefore only asks an executor for counts
and merges them; ``InProcessExecutor`` (the default) computes them here, ``RayExecutor`` (optional extra
``hybridcert[ray]``) on Ray actors that each load the filter once, on a laptop (``ray.init(num_cpus=...)``) or on
a cluster (``[run] ray_address``) without code changes. The certificates downstream (docs/theory.md §4, §5) see the same
counts either way, so ``results.json`` is the same apart from timing fields.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hybridcert.audits.counting import Executor, WorkItem, count_class_one
from hybridcert.audits.preparation import Audit, prepare

if TYPE_CHECKING:
    from hybridcert.audits.config import AuditSpec, RunSpec

__all__ = ["InProcessExecutor", "RayExecutor", "make_executor", "ray_sampling_device", "split_chunks", "start_ray"]


def _count_here(audit: Audit, item: WorkItem) -> tuple[int, float]:
    start = time.perf_counter()
    ones = count_class_one(audit, audit.dataset.inputs[item.index], item.stream, item.count, item.span,
                           first_chunk=item.first_chunk)
    return ones, time.perf_counter() - start


class InProcessExecutor:
    """The default: every work item in this process, one after another, with the audit's filter."""

    name = "in-process"

    def count(self, audit: Audit, work: Sequence[WorkItem]) -> list[tuple[int, float]]:
        return [_count_here(audit, item) for item in work]

    def close(self) -> None:
        return None


def split_chunks(item: WorkItem, chunk_size: int) -> list[WorkItem]:
    """One work item per chunk of ``item`` (the unit a Ray actor processes); counts add back up exactly."""
    out = []
    start, chunk = 0, item.first_chunk
    while start < item.count:
        size = min(chunk_size, item.count - start)
        out.append(WorkItem(item.index, item.stream, item.span, chunk, size))
        start += size
        chunk += 1
    return out


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValueError("run.executor = \"ray\" needs Ray: pip install 'hybridcert[ray]'") from None
    return ray


class _Worker:
    """A Ray actor's state: the audit prepared once (filter loaded once, on the actor's device)."""

    def __init__(self, spec: AuditSpec, device: str, batch_size: int, threads: int | None) -> None:
        import torch

        torch.set_num_threads(threads or 1)
        self.audit = prepare(spec, device=device, batch_size=batch_size)

    def model_sha256(self) -> str:
        return self.audit.model.sha256

    def count(self, item: WorkItem) -> tuple[int, float]:
        return _count_here(self.audit, item)


class RayExecutor:
    """Ray actors, each holding the filter, process one chunk per call; failed calls are resubmitted.

    Actors are pinned to one GPU each (``num_gpus=1``) when the audit samples on CUDA, else to one CPU. A dead
    actor is restarted by Ray (``max_restarts``) and its calls retried (``max_task_retries``); a call that
    raises is resubmitted (to the next actor) up to ``retries`` times, then the audit fails with that error.
    Ray is started here (``ray.init(address or local with num_cpus)``) unless it already runs, and then also
    shut down by ``close``.
    """

    name = "ray"

    def __init__(self, audit: Audit) -> None:
        ray = _import_ray()
        run = audit.spec.run
        self._ray = ray
        self._actors: list[Any] = []
        self._owns = start_ray(run)
        gpu = audit.config.sampling_device == "cuda"  # the device type the seeded streams are drawn on
        resources = ray.cluster_resources()
        actors = run.ray_actors or max(1, int(resources.get("GPU" if gpu else "CPU", 1)))
        remote = ray.remote(num_gpus=1 if gpu else 0, num_cpus=0 if gpu else 1, max_restarts=3,
                            max_task_retries=3)(_Worker)
        device = audit.config.sampling_device
        self._actors = [remote.remote(audit.spec, device, audit.batch_size, run.threads) for _ in range(actors)]
        self._retries = run.ray_retries
        try:
            try:
                shas = ray.get([a.model_sha256.remote() for a in self._actors])
            except Exception as exc:
                lines = [line for line in str(exc).splitlines() if line.strip()]
                raise ValueError(f"a Ray actor could not prepare the audit: {lines[-1] if lines else exc!r}") from exc
            if any(sha != audit.model.sha256 for sha in shas):
                raise ValueError("a Ray actor loaded different filter weights than this process (sha256 differs): "
                                 "every node must see the same weights file")
        except BaseException:
            self.close()
            raise

    def count(self, audit: Audit, work: Sequence[WorkItem]) -> list[tuple[int, float]]:
        ray = self._ray
        pieces: list[tuple[int, WorkItem]] = []
        for i, item in enumerate(work):
            pieces += [(i, piece) for piece in split_chunks(item, audit.sampler.chunk_size)]
        totals = [[0, 0.0] for _ in work]
        queue = list(range(len(pieces)))[::-1]
        attempts = [0] * len(pieces)
        in_flight: dict[Any, tuple[int, int]] = {}  # ref -> (piece, actor)
        idle = list(range(len(self._actors))) * 2  # two calls in flight per actor hide the round trip

        def submit(actor: int) -> None:
            piece = queue.pop()
            in_flight[self._actors[actor].count.remote(pieces[piece][1])] = (piece, actor)

        while queue or in_flight:
            while queue and idle:
                submit(idle.pop())
            done, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in done:
                piece, actor = in_flight.pop(ref)
                idle.append(actor)
                try:
                    ones, seconds = ray.get(ref)
                except Exception:
                    attempts[piece] += 1
                    if attempts[piece] > self._retries:
                        raise
                    queue.append(piece)
                    continue
                totals[pieces[piece][0]][0] += ones
                totals[pieces[piece][0]][1] += seconds
        return [(int(k), float(s)) for k, s in totals]

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []
        if self._owns:
            self._ray.shutdown()


def start_ray(run: RunSpec) -> bool:
    """Start Ray unless it runs already: ``ray_address`` (a cluster) or a local Ray with ``ray_num_cpus``;
    True when this call started it (the caller then shuts it down)."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    if run.ray_address:
        ray.init(address=run.ray_address, include_dashboard=False, log_to_driver=False)
        return True
    # a local Ray: its workers import hybridcert from where this process does (a checkout or an installed
    # package alike); a cluster's nodes need hybridcert installed
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    env = {"PYTHONPATH": root + (os.pathsep + path if path else "")}
    ray.init(num_cpus=run.ray_num_cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env})
    return True


def ray_sampling_device(requested: str) -> str:
    """The device type Ray actors sample on, resolved against the running Ray cluster rather than this machine
    (the driver need not have the cluster's GPUs): ``auto`` -> ``cuda`` when the cluster has GPUs, else
    ``cpu``; ``cuda``/``cuda:N`` -> ``cuda`` (each actor gets its own GPU); ``cpu`` -> ``cpu``."""
    import torch

    ray = _import_ray()
    gpus = float(ray.cluster_resources().get("GPU", 0))
    if requested == "auto":
        return "cuda" if gpus > 0 else "cpu"
    try:
        kind = torch.device(requested).type
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"run.device: unknown device {requested!r}") from exc
    if kind == "cuda" and gpus <= 0:
        raise ValueError(f"run.device: {requested!r} requested but the Ray cluster has no GPU")
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"run.device: {requested!r} is not supported with the Ray executor (cpu, cuda or auto)")
    return kind


def make_executor(audit: Audit, name: str | None = None) -> Executor:
    """The executor named by ``name`` (or ``[run] executor``): ``in-process`` or ``ray``."""
    chosen = name or audit.spec.run.executor
    if chosen == "in-process":
        if audit.device.type != audit.config.sampling_device:
            raise ValueError(f"this audit samples on {audit.config.sampling_device} (prepared for Ray actors); "
                             f"in this process it would sample on {audit.device.type}: use the ray executor")
        return InProcessExecutor()
    if chosen == "ray":
        return RayExecutor(audit)
    raise ValueError(f"executor must be in-process or ray, got {chosen!r}")
