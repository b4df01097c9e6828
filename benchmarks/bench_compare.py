"""How long the regression gate takes on large audits, against reading the two files (the floor).

    python benchmarks/bench_compare.py [--inputs 10000]

Builds two results.json files with real Clopper-Pearson bounds and real frontiers (the candidate loses 2% of
its certificates), then times: json.load of both files (baseline), `load_audit` of both (parse + checks), and
`compare_audits` on the default grid.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hybridcert.regression.gate import compare_audits, load_audit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_results import NOISE, synthetic_results  # noqa: E402

from hybridcert.theory import HybridNoise, clopper_pearson_lower


def results(targets: np.ndarray, labels: np.ndarray) -> dict[str, object]:
    """A complete, valid results object (the one reader checks every field) with these counts and labels."""
    raw = synthetic_results(len(targets), n=1000, seed=0)
    hn = HybridNoise(**NOISE)  # type: ignore[arg-type]
    p = clopper_pearson_lower(targets, 1000, 0.001)
    fronts = hn.frontier(p, tau=0.5, max_budget=4)
    for rec, k, pk, lab, front in zip(raw["inputs"], targets, p, labels, fronts, strict=True):
        decision = "flag" if front else "abstain"
        rec.update(label=int(lab), side="flag", target_class=1, threshold=0.5, p_a_lower=float(pk),
                   decision=decision, correct=bool(front) and int(lab) == 1,
                   frontier=[{"budget": d, "radius": r, "radius_infinite": False} for d, r in front])
        rec["counts"]["target"] = int(k)
    return raw


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=10000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    targets = rng.integers(900, 1001, args.inputs)
    labels = rng.integers(0, 2, args.inputs)
    weak = targets.copy()
    weak[rng.choice(args.inputs, args.inputs // 50, replace=False)] = 500
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, t in (("base", targets), ("cand", weak)):
            folder = Path(tmp) / name
            folder.mkdir()
            (folder / "results.json").write_text(json.dumps(results(t, labels)))
            paths.append(folder)
        t0 = time.perf_counter()
        for p in paths:
            json.loads((p / "results.json").read_text())
        t_json = time.perf_counter() - t0
        t0 = time.perf_counter()
        base, cand = (load_audit(p) for p in paths)
        t_load = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = compare_audits(base, cand)
        t_cmp = time.perf_counter() - t0
    print(f"{args.inputs} inputs per audit, {len(res.grid)} grid points, {len(res.lost)} inputs lost")
    print(f"json.load of both files (baseline): {t_json:.3f} s")
    print(f"load_audit of both (parse + checks): {t_load:.3f} s  ({t_load / t_json:.1f}x the baseline)")
    print(f"compare_audits (default grid):      {t_cmp:.3f} s  ({t_cmp / t_json:.1f}x the baseline)")


if __name__ == "__main__":
    main()
