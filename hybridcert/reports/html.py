"""HTML reports from the Jinja2 templates in ``hybridcert/templates`` (autoescape on, StrictUndefined).

The report is rendered from a validated :class:`~hybridcert.reports.bundle.Bundle` only; the renderer derives
rates and intervals deterministically (``summary``) and never recomputes a certificate. Other reports (the
verifier's) reuse :func:`environment` and extend ``report-base.html.j2``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from functools import cache
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from hybridcert import __version__
from hybridcert.reports.bundle import Bundle
from hybridcert.reports.summary import (
    AcceptanceResult,
    configured_radii,
    radius_matrix,
    rate_cell,
    table_budgets,
    table_radii,
)

REPORT_TEMPLATE = "report.html.j2"
#: The per-input table lists at most this many inputs (in results order); all of them are in results.json,
#: which the PDF carries as an attachment. Keeps a 10^4-input report printable.
MAX_INPUT_ROWS = 2000
SELF_ASSERTED = "self-asserted"
#: The per-input table shows r*(d) in one column per budget up to this many budgets.
MAX_FRONTIER_COLUMNS = 9


@dataclass(frozen=True)
class SigningInfo:
    """What section 11 states about the signature (known before signing; the signature itself is separate)."""

    name: str
    role: str
    organisation: str
    demo: bool
    signed_at: str
    timestamp_source: str
    dsse_keyid: str
    dsse_certificate_sha256: str
    pades_certificate_sha256: str
    trust_anchor_sha256: str
    trust_anchor_subject: str


@cache
def environment() -> Environment:
    """The shared Jinja2 environment: package templates, autoescape on, undefined names are errors."""
    env = Environment(
        loader=PackageLoader("hybridcert", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["down"] = fmt_down
    env.filters["pct"] = fmt_pct
    env.filters["pct_down"] = lambda x: fmt_pct(x, rounding=ROUND_FLOOR)
    env.filters["pct_up"] = lambda x: fmt_pct(x, rounding=ROUND_CEILING)
    env.filters["g"] = lambda x: "null" if x is None else f"{x:.6g}"
    return env


def render(template: str, context: dict[str, Any]) -> str:
    """Render one package template with ``context``."""
    return environment().get_template(template).render(**context)


def build_context(bundle: Bundle, acceptance: AcceptanceResult, signing: SigningInfo | None,
                  attack: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything report.html.j2 shows, taken from the bundle (and derived from it deterministically), plus the
    attack summary found next to it (``reports.evidence.attack_summary``), if any."""
    from hybridcert.reports import plots  # matplotlib: only when rendering
    from hybridcert.reports.evidence import baselines_table

    res = bundle.results
    radii = radius_matrix(bundle)
    crit = acceptance.verdicts
    budgets = table_budgets(res.max_budget(), [v.criterion.budget for v in crit])
    configured = configured_radii(bundle)
    grid = table_radii(res.config.noise.sigma, [v.criterion.radius for v in crit], configured)
    rate_table = [[rate_cell(radii, d, eps) for eps in grid] for d in budgets]
    n = len(res.inputs)
    p_lower = np.array([r.p_a_lower for r in res.inputs])
    thresholds = np.array([r.threshold for r in res.inputs])
    correct = sum(r.correct for r in res.inputs)
    abstain = sum(r.decision == "abstain" for r in res.inputs)
    radius_col0 = radii[:, 0]
    certified_any = int(np.count_nonzero(radius_col0 >= 0))
    alpha = res.config.alpha
    return {
        "title": f"Robustness certification report {bundle.report_id}",
        "report_id": bundle.report_id,
        "generator": f"hybridcert {__version__}",
        "r": res,
        "raw_config_json": json.dumps(bundle.raw["config"], indent=2, sort_keys=True, allow_nan=False),
        "results_sha256": bundle.file_sha256,
        "results_canonical_sha256": bundle.canonical_sha256,
        "n": n,
        "correct": correct,
        "clean_cell": rate_cell(np.where(np.array([r.correct for r in res.inputs]), 0.0, -1.0)[:, None], 0, 0.0),
        "abstain": abstain,
        "certified_d0": certified_any,
        "samples_used": sum(r.counts.n0 + r.counts.n for r in res.inputs),
        "seconds_total": sum(r.seconds or 0.0 for r in res.inputs),
        "budgets": budgets,
        "all_budgets_shown": len(budgets) == res.max_budget() + 1,
        "radii_grid": grid,
        "radii_configured": configured is not None,
        "rate_table": rate_table,
        "acceptance": acceptance,
        "alpha": alpha,
        "union_confidence": max(0.0, 1.0 - n * alpha),
        "expected_wrong": n * alpha,
        "plot_rate": Markup(plots.certified_rate_plot(radii, budgets)),
        "plot_frontier": Markup(plots.frontier_heatmap(radii, budgets)),
        "plot_pa": Markup(plots.p_lower_histogram(p_lower, thresholds)),
        "sides": sorted({r.side for r in res.inputs}),
        "signing": signing,
        "demo": bool(signing and signing.demo),
        "change_history": res.change_history,
        "sequential": bundle.raw["config"].get("sequential") if isinstance(bundle.raw["config"].get("sequential"),
                                                                            dict) else None,
        "baselines": baselines_table(bundle.raw),
        "attack": attack,
        "inputs_shown": res.inputs[:MAX_INPUT_ROWS],
        # one column per budget when they fit on a page, else one "d=0: r; d=1: r" cell
        "frontier_columns": list(range(res.max_budget() + 1)) if res.max_budget() < MAX_FRONTIER_COLUMNS else [],
        "inputs_omitted": max(0, n - MAX_INPUT_ROWS),
        # scalar aggregates as recorded; list-valued ones (the runner's rate grid) are in results.json and are
        # recomputed by the tables below
        "extra_aggregates": {
            k: v for k, v in bundle.raw.get("aggregates", {}).items() if isinstance(v, int | float | str | bool)
        },
    }


def render_report(bundle: Bundle, acceptance: AcceptanceResult, signing: SigningInfo | None,
                  attack: dict[str, Any] | None = None) -> str:
    """The compliance report as one self-contained HTML document (inline CSS and SVG, no scripts)."""
    return render(REPORT_TEMPLATE, build_context(bundle, acceptance, signing, attack))


def fmt_down(x: float | None, digits: int = 4) -> str:
    """Format a radius or probability truncated DOWN, exactly (the shown decimal never exceeds the stored float)."""
    if x is None or math.isinf(x):
        return "infinite" if x is None or x > 0 else "-infinite"
    return str(Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_FLOOR))


def fmt_pct(x: float, digits: int = 1, rounding: str = ROUND_HALF_EVEN) -> str:
    """A fraction as a percentage; interval ends use ROUND_FLOOR / ROUND_CEILING so intervals only widen."""
    return f"{(Decimal(x) * 100).quantize(Decimal(1).scaleb(-digits), rounding=rounding)}%"
