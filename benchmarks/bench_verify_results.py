"""``verify --results`` at scale: time and peak memory of reading (the one strict reader) and proving a
synthetic results file, against the old path that proved every input separately, measured on a sample in the
same run and extrapolated linearly.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_verify_results.py [--inputs 100000] [--sample 20]

Two files: "repeating" (n = 1000 samples per input, so at most ~100 distinct (p_a_lower, threshold, frontier)
rows) and "distinct" (n = 10^5, targets spread so that most rows differ; fewer inputs, since every distinct
row is proven once either way).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_results import synthetic_results  # noqa: E402

from hybridcert.results.reader import read_results  # noqa: E402
from hybridcert.verifier import reference  # noqa: E402
from hybridcert.verifier.interval import prove_frontier  # noqa: E402
from hybridcert.verifier.reference import NoiseParams  # noqa: E402
from hybridcert.verifier.results import proof_jobs, verify_results  # noqa: E402


def _clear_caches() -> None:
    for fn in vars(reference).values():
        if hasattr(fn, "cache_clear"):
            fn.cache_clear()


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(name: str, n_inputs: int, n: int, low: float, sample: int) -> None:
    t0 = time.perf_counter()
    raw = synthetic_results(n_inputs, n=n, low=low)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "results.json"
        path.write_text(json.dumps(raw))
        size = path.stat().st_size
        del raw
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        results = read_results(path, check_frontiers=False).results
        t_read = time.perf_counter() - t0
    distinct = len({key for rec in results.inputs for _, key in proof_jobs(rec)})
    # the old path: one prove_frontier per input, no sharing (a random sample of inputs, cold caches,
    # extrapolated linearly)
    nz = results.config.noise
    noise = NoiseParams(nz.kernel, nz.vocab_size if isinstance(nz.vocab_size, int) else tuple(nz.vocab_size),
                        nz.beta, nz.sigma)
    picks = np.random.default_rng(1).choice(len(results.inputs), size=min(sample, len(results.inputs)),
                                            replace=False)
    _clear_caches()
    t0 = time.perf_counter()
    for i in picks:
        rec = results.inputs[int(i)]
        prove_frontier(noise, rec.p_a_lower, rec.threshold, [(e.budget, e.value) for e in rec.frontier])
    per_input = (time.perf_counter() - t0) / len(picks)
    old = per_input * n_inputs
    _clear_caches()
    t0 = time.perf_counter()
    verification = verify_results(results, "bench")
    t_prove = time.perf_counter() - t0
    assert verification.passed
    print(f"{name}: {n_inputs} inputs, n = {n}, {size / 1e6:.1f} MB, {distinct} distinct rows "
          f"(built in {t_build:.1f} s)")
    print(f"  read (strict reader, all checks but the engine cross-check): {t_read:.2f} s")
    print(f"  prove distinct rows once:                                    {t_prove:.2f} s")
    print(f"  old path, every input proven ({per_input * 1e3:.1f} ms/input on {sample} inputs): "
          f"~{old:.0f} s  ({old / max(t_prove, 1e-9):.0f}x)")
    print(f"  peak RSS so far: {peak_mb():.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--distinct-inputs", type=int, default=2_000)
    parser.add_argument("--sample", type=int, default=20)
    args = parser.parse_args()
    bench("repeating", args.inputs, 1000, 0.9, args.sample)
    bench("distinct", args.distinct_inputs, 100_000, 0.99, args.sample)


if __name__ == "__main__":
    main()
