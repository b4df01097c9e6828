"""Report blocks for issue 13: the unimodal baselines' table and the certified-against-attacked table.

- Baselines (``config.baselines`` in results.json): ``hybridcert.audits.baselines.mean_certified`` over the
  inputs, the paper's table (mean certified image radius and token budget per method).
- Attack (``hybridcert attack``): the per-point summary of an ``attack.json`` found next to the audit, at
  ``AUDIT_DIR/attack/attack.json`` or, for ``hybridcert attack --out X`` (which audits into ``X/audit``),
  ``X/attack.json``. It is shown only when its ``certificates_sha256`` is this results.json's (the attack was
  compared with these certificates); otherwise the report says so (docs/theory.md §10).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from hybridcert.audits.baselines import mean_certified
from hybridcert.results.canonical import canonical_dumps
from hybridcert.results.schema import deterministic_view

MAX_ALARM_IDS = 50
MAX_ATTACK_BYTES = 256 << 20


def baselines_table(raw: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Rows (method, radius, budget, n_inputs) when the audit certified baselines, else None."""
    if not raw.get("config", {}).get("baselines"):
        return None
    table = mean_certified(raw["inputs"])
    return [{"method": name, **row} for name, row in table.items()]


def _candidates(folder: Path) -> list[Path]:
    out = [folder / "attack" / "attack.json"]
    if folder.name == "audit":
        out.append(folder.parent / "attack.json")
    return out


def attack_summary(folder: Path, raw: dict[str, Any]) -> dict[str, Any] | None:
    """The attack block's data: {"rows", "alarms", "source", "matches"}; None when there is no attack.json.
    Everything read is checked for type; a malformed file is a ValueError naming it."""
    path = next((p for p in _candidates(Path(folder)) if p.is_file()), None)
    if path is None:
        return None
    if path.stat().st_size > MAX_ATTACK_BYTES:
        raise ValueError(f"{path}: larger than {MAX_ATTACK_BYTES >> 20} MiB")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        expected = data["config"]["certificates_sha256"]
        rows = data["summary"]
        alarms = data["alarms"]
        if not (isinstance(expected, str) and isinstance(rows, list) and isinstance(alarms, list)):
            raise TypeError
        for row in rows:
            for key in ("budget", "radius", "attacked", "successes"):
                if isinstance(row[key], bool) or not isinstance(row[key], int | float):
                    raise TypeError
            for key in ("certified", "attacked_robust"):
                cell = row[key]
                if not (isinstance(cell["count"], int) and isinstance(cell["rate"], int | float)
                        and len(cell["interval"]) == 2):
                    raise TypeError
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        raise ValueError(f"{path}: not a hybridcert attack.json (schema hybridcert/attack/v1)") from None
    mine = hashlib.sha256(canonical_dumps(deterministic_view(raw)).encode()).hexdigest()
    return {"rows": rows, "alarms": [str(a.get("id")) for a in alarms[:MAX_ALARM_IDS] if isinstance(a, dict)],
            "n_alarms": len(alarms), "source": str(path), "matches": expected == mine}
