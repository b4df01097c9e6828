"""Device check for issue 13: the attack and the baselines on CUDA (or any torch device), on the demo filter.

Run: ``python benchmarks/check_attack_device.py --device cuda [--inputs 8] [--out DIR]``. Checks, printing one
JSON object: the audit with baselines gives the same results.json (deterministic view) at batch sizes 7 and 1024;
the attack gives the same records at batch sizes 7 and 512 and raises no alarm; a deliberately inflated theory
(radii x 3) raises alarms; every attacked point lies in the threat model (checked inside the engine). Exit 1 when
a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from hybridcert.attacks.engine import AttackSettings
    from hybridcert.attacks.run import run_attack
    from hybridcert.audits.config import load_spec
    from hybridcert.audits.demo.run import write_demo
    from hybridcert.audits.runner import prepare, run_audit
    from hybridcert.results.schema import deterministic_view
    from hybridcert.theory import HybridNoise

    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--inputs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="attack-device-"))
    config = write_demo(root / "demo", n_inputs=args.inputs, n=500, device=args.device)
    text = config.read_text().replace("[certify]\n", '[certify]\nbaselines = ["image-only", "text-only"]\n', 1)
    config.write_text(text)
    spec = load_spec(config)
    report: dict[str, object] = {"device": args.device}
    start = time.perf_counter()
    a = run_audit(prepare(spec, batch_size=7), root / "audit7")
    b = run_audit(prepare(spec, batch_size=1024), root / "audit1024")
    report["audit_seconds"] = round(time.perf_counter() - start, 2)
    report["audit_same_across_batch_size"] = (deterministic_view(a.to_json_obj()) ==
                                              deterministic_view(b.to_json_obj()))
    points = [(0, 0.5), (2, 1.0), (0, 1.5)]
    settings = AttackSettings(steps=4, samples=16, candidates=6)
    start = time.perf_counter()
    x = run_attack(prepare(spec, batch_size=7), root / "attack7", points, settings, results=a)
    y = run_attack(prepare(spec, batch_size=512), root / "attack512", points, settings, results=a)
    report["attack_seconds"] = round(time.perf_counter() - start, 2)

    def strip(r: dict[str, object]) -> list[dict[str, object]]:
        return [{k: v for k, v in rec.items() if k != "seconds"} for rec in r["records"]]  # type: ignore[attr-defined]

    report["attack_same_across_batch_size"] = strip(x) == strip(y)
    diffs = [sorted(k for k in a if a[k] != b.get(k)) for a, b in zip(strip(x), strip(y), strict=True) if a != b]
    report["differing_fields"] = diffs[:5]
    z2 = run_attack(prepare(spec, batch_size=7), root / "attack7-again", points, settings, results=a)
    report["attack_same_on_rerun"] = strip(x) == strip(z2)
    report["alarms"] = len(x["alarms"])
    report["summary"] = [{"d": s["budget"], "eps": s["radius"], "certified": s["certified"]["rate"],
                          "attacked_robust": s["attacked_robust"]["rate"], "flipped": s["successes"]}
                         for s in x["summary"]]

    class Inflated(HybridNoise):
        def frontier_radii(self, p_a, tau=0.5, max_budget=None):  # type: ignore[no-untyped-def]
            radii, mask = super().frontier_radii(p_a, tau=tau, max_budget=max_budget)
            return radii * 3.0, mask

    audit = prepare(spec)
    n = audit.noise
    audit.noise = Inflated(n.kernel, n.vocab_size, n.beta, n.sigma)
    inflated = run_audit(audit, root / "inflated")
    z = run_attack(audit, root / "attack-inflated", points, settings, results=inflated)
    report["inflated_alarms"] = len(z["alarms"])
    ok = (report["audit_same_across_batch_size"] and report["attack_same_across_batch_size"]
          and report["attack_same_on_rerun"]
          and report["alarms"] == 0 and report["inflated_alarms"] > 0)
    report["ok"] = ok
    print(json.dumps(report, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
