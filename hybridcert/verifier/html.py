"""Render a verification report (or a results-file verification) as self-contained HTML from
``hybridcert/templates/verification.html.j2`` (Jinja2, autoescape on)."""

from __future__ import annotations

from importlib import resources
from typing import Any

from jinja2 import Environment, StrictUndefined, select_autoescape

TEMPLATE = "verification.html.j2"


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def render_html(report: dict[str, Any] | None = None, results: dict[str, Any] | None = None) -> str:
    """HTML for ``VerificationReport.to_dict()`` and/or ``ResultsVerification.to_dict()``."""
    source = resources.files("hybridcert").joinpath("templates", TEMPLATE).read_text(encoding="utf-8")
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _fmt
    return env.from_string(source).render(report=report, results=results)
