"""Sequential certification versus fixed n = 10^4 on the real demo (issue 7): forward passes and certified rate.

    python benchmarks/bench_sequential_demo.py [--inputs 100] [--points 0:0.25,1:0.1] [--chunk 256]

Both audits run through the audit runner on the demo filter and the demo dataset (``hybridcert demo``'s
benchmark, same seed and noise), one after the other in this run: fixed n = 10^4 with one-sided Clopper-Pearson
(the default) and ``stopping = "sequential"`` (Beta-mixture confidence sequence, a look every ``--chunk``
samples, n_max = 10^4), both at alpha = 0.001. Forward passes are the filter evaluations of the estimation
stream (the n0 = 64 side-selection samples, the same in both, are printed separately). The certified rate at a
requested (d, eps) is the contract's: decision correct and (d, radius >= eps) in the frontier.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

from hybridcert.audits.config import parse_spec
from hybridcert.audits.demo.run import write_demo
from hybridcert.audits.runner import prepare, run_audit
from hybridcert.results.schema import AuditResults

N = 10_000


def parse_points(text: str) -> list[tuple[int, float]]:
    out = []
    for part in text.split(","):
        d, eps = part.split(":")
        out.append((int(d), float(eps)))
    return out


def audit(root: Path, data: dict, certify: dict, name: str, executor: str) -> tuple[AuditResults, float]:
    merged = {**data, "certify": {**data["certify"], **certify}}
    spec = parse_spec(merged, root)
    start = time.perf_counter()
    res = run_audit(prepare(spec), root / name, executor=executor)
    return res, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100)
    parser.add_argument("--points", default="0:0.25,1:0.1", help="requested (d, eps) points: d:eps,d:eps")
    parser.add_argument("--chunk", type=int, default=256, help="samples between two looks (sequential)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--executor", default="in-process", choices=["in-process", "ray"],
                        help="where both audits sample (ray: a local Ray on every CPU, started in each audit)")
    args = parser.parse_args()
    points = parse_points(args.points)
    root = Path(tempfile.mkdtemp(prefix="bench-seq-demo-"))
    config = write_demo(root, n_inputs=args.inputs, n=N, threads=args.threads)
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    fixed, t_fixed = audit(root, data, {}, "fixed", args.executor)
    seq, t_seq = audit(root, data, {"stopping": "sequential", "requested": [list(p) for p in points],
                                    "chunk_size": args.chunk}, "sequential", args.executor)
    n_in = len(fixed.inputs)
    used_fixed = sum(i.counts.n for i in fixed.inputs)
    used_seq = np.array([i.counts.n for i in seq.inputs])
    n0 = sum(i.counts.n0 for i in fixed.inputs)
    stopped: dict[str, int] = {}
    for i in seq.inputs:
        reason = str(getattr(i, "stopped", "?"))
        stopped[reason] = stopped.get(reason, 0) + 1
    print(f"executor {args.executor}; demo: {n_in} inputs,")
    print(f"alpha = {fixed.config.alpha}, tau = {fixed.config.tau}, n0 = {fixed.config.n0}; "
          f"requested points {points}; sequential chunk {args.chunk}, n_max = {N}")
    print(f"forward passes (estimation): fixed {used_fixed:,}  sequential {int(used_seq.sum()):,}  "
          f"ratio {used_fixed / used_seq.sum():.1f}x  (selection n0: {n0:,} in each)")
    print(f"  with selection: ratio {(used_fixed + n0) / (used_seq.sum() + n0):.1f}x")
    print(f"sequential samples per input: mean {used_seq.mean():.0f}, median {np.median(used_seq):.0f}, "
          f"max {used_seq.max()}; stopped: {dict(sorted(stopped.items()))}")
    print(f"wall time: fixed {t_fixed:.1f} s, sequential {t_seq:.1f} s ({t_fixed / t_seq:.1f}x)")
    print(f"clean (smoothed) accuracy: fixed {fixed.aggregates.clean_rate:.1%}, "
          f"sequential {seq.aggregates.clean_rate:.1%}")
    print("certified rate at the requested points (fixed / sequential / difference in points):")
    for d, eps in points:
        a = sum(i.certified(d, eps) for i in fixed.inputs) / n_in
        b = sum(i.certified(d, eps) for i in seq.inputs) / n_in
        print(f"  d = {d}, eps = {eps:g}: {a:.1%} / {b:.1%} / {100 * (b - a):+.1f}")
    everyone = [sum(i.certified(d, eps) for d, eps in points) == len(points) for i in fixed.inputs]
    both = [sum(i.certified(d, eps) for d, eps in points) == len(points) for i in seq.inputs]
    print(f"  all points at once: {np.mean(everyone):.1%} / {np.mean(both):.1%} / "
          f"{100 * (np.mean(both) - np.mean(everyone)):+.1f}")


if __name__ == "__main__":
    main()
