"""Runner overhead: the demo filter's raw forward throughput vs the audit runner's end-to-end throughput.

Both are measured in the same run, on the same device, thread count and batch size:

- raw: the filter called on ready-made batches (samples/s of forward passes alone);
- end-to-end: ``run_audit`` on the demo benchmark (noise sampling, filter, counting, Clopper-Pearson, the
  frontier from the theory engine, the fsynced log and results.json), samples/s = inputs x (n0 + n) / wall time.

Overhead = raw / end-to-end - 1 (the fraction of extra time per sample). Each round measures the two back to
back; the script prints the best round of each, and the median over rounds of the paired ratio, which is
steadier on a busy machine. It also times the filter calls *inside* the end-to-end run (a thin timing
wrapper): "in-run overhead" = end-to-end time / time inside the filter - 1 sees the same background load on
both sides.

    python benchmarks/bench_runner.py                       # CPU, one thread, 10 inputs x (64 + 10000), 6 rounds
    python benchmarks/bench_runner.py --device cuda --batch-size 8192 --threads 0
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from statistics import median

import torch

from hybridcert.audits.config import load_spec
from hybridcert.audits.demo.run import write_demo
from hybridcert.audits.filters import Filter
from hybridcert.audits.runner import prepare, run_audit


class TimedFilter:
    """Delegates to a filter and adds up the wall time of its calls (synchronised on CUDA)."""

    def __init__(self, inner: Filter) -> None:
        self.inner, self.device, self.seconds = inner, inner.device, 0.0

    def __call__(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        out = self.inner(tokens, images)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - start
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--inputs", type=int, default=10)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: leave torch's default)")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = write_demo(root / "bench", n_inputs=args.inputs, n=args.n, device=args.device,
                            batch_size=args.batch_size, threads=args.threads or torch.get_num_threads())
        audit = prepare(load_spec(config))
        filt, device = audit.filter, audit.device
        samples = args.inputs * (audit.config.n0 + audit.config.n)

        # raw forward passes over the same number of samples, on noisy batches drawn once
        item = audit.dataset.inputs[0]
        tokens = torch.tensor(item.tokens, device=device)
        image = torch.from_numpy(item.image).to(device)
        span = audit.threat.noised_positions(len(item.tokens))
        batch_t, batch_i = audit.sampler.draw(item.id, tokens, image, span, 1, 0, args.batch_size)
        filt(batch_t, batch_i)  # warm-up

        def raw() -> float:
            done = 0
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            while done < samples:
                size = min(args.batch_size, samples - done)
                filt(batch_t[:size], batch_i[:size]).sum().item()  # .item(): the runner reads counts too
                done += size
            if device.type == "cuda":
                torch.cuda.synchronize()
            return time.perf_counter() - start

        timed = TimedFilter(filt)
        audit.filter = timed

        def end_to_end(round_index: int) -> tuple[float, float]:
            pass  # the frontier cache is per run (runner.certify.Certifier): every round pays the theory engine
            timed.seconds = 0.0
            start = time.perf_counter()
            run_audit(audit, root / f"out{round_index}")
            return time.perf_counter() - start, timed.seconds

        raw_times, e2e_times, in_run, paired = [], [], [], []
        for r in range(args.rounds):
            raw_times.append(raw())
            total, inside = end_to_end(r)
            e2e_times.append(total)
            in_run.append(total / inside - 1)
            paired.append(total / raw_times[-1] - 1)
        t_raw, t_e2e = min(raw_times), min(e2e_times)

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {device} ({device_name}), torch threads {torch.get_num_threads()}, batch {args.batch_size}, "
          f"{args.inputs} inputs x (n0 {audit.config.n0} + n {audit.config.n}) = {samples} samples, "
          f"best of {args.rounds} rounds")
    print(f"raw filter forward : {samples / t_raw:12,.0f} samples/s  ({t_raw:.2f} s)")
    print(f"runner end-to-end  : {samples / t_e2e:12,.0f} samples/s  ({t_e2e:.2f} s)")
    print(f"overhead           : {100 * (t_e2e / t_raw - 1):+.1f} % best rounds, "
          f"{100 * median(paired):+.1f} % median of paired rounds  (raw / end-to-end throughput - 1)")
    print(f"in-run overhead    : {100 * median(in_run):+.1f} % median  "
          "(end-to-end time / time inside filter calls - 1)")


if __name__ == "__main__":
    main()
