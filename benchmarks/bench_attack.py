"""Gradient-guided attack against random search with the same query budget, on the demo filter (issue 13).

Run: ``python benchmarks/bench_attack.py [--inputs 40] [--n 500] [--out DIR]``. Writes the demo benchmark,
certifies it (the audit runner), then runs ``hybridcert attack``'s engine twice per point, ``method=gradient``
and ``method=random`` (random feasible perturbations, ``AttackSettings.query_budget`` filter evaluations, the
same as the gradient search's), and prints per point: inputs attacked, successes of each (significant flips
with fresh samples and tau, docs/theory.md §10), the certified and attacked robust rates, and the alarms.
The check the issue asks for: wherever either method succeeds at all, the gradient attack succeeds at least as
often; the script exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

POINTS = [(0, 0.5), (0, 1.0), (2, 0.5), (2, 1.0), (4, 1.0)]


def main() -> int:
    import torch

    from hybridcert.attacks.engine import AttackSettings
    from hybridcert.attacks.run import run_attack
    from hybridcert.audits.config import load_spec
    from hybridcert.audits.demo.run import write_demo
    from hybridcert.audits.runner import prepare, run_audit

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=30)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = args.out or Path(tempfile.mkdtemp(prefix="bench-attack-"))
    config = write_demo(root / "demo", n_inputs=args.inputs, n=args.n)
    audit = prepare(load_spec(config))
    start = time.perf_counter()
    results = run_audit(audit, root / "audit")
    print(f"audit: {args.inputs} inputs, n = {args.n}: {time.perf_counter() - start:.1f} s")
    reports = {}
    for method in ("gradient", "random"):
        start = time.perf_counter()
        settings = AttackSettings(method=method)  # type: ignore[arg-type]
        reports[method] = run_attack(audit, root / f"attack-{method}", POINTS, settings, results=results)
        print(f"{method}: {time.perf_counter() - start:.1f} s, query budget {settings.query_budget} per input and "
              "point")
    print(f"\n{'d':>2} {'eps':>5} {'attacked':>8} {'gradient':>9} {'random':>7} {'certified':>10} "
          f"{'robust(grad)':>13} {'robust(rand)':>13} alarms")
    ok = True
    for g, r in zip(reports["gradient"]["summary"], reports["random"]["summary"], strict=True):
        print(f"{g['budget']:>2} {g['radius']:>5g} {g['attacked']:>8} {g['successes']:>9} {r['successes']:>7} "
              f"{g['certified']['rate']:>10.2f} {g['attacked_robust']['rate']:>13.2f} "
              f"{r['attacked_robust']['rate']:>13.2f} {len(g['alarms']) + len(r['alarms'])}")
        if (g["successes"] or r["successes"]) and g["successes"] < r["successes"]:
            ok = False
    alarms = len(reports["gradient"]["alarms"]) + len(reports["random"]["alarms"])
    print(f"\ngradient >= random wherever either succeeds: {'yes' if ok else 'NO'}; soundness alarms: {alarms}")
    return 0 if ok and alarms == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
