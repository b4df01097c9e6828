"""Render a verification report (or a results-file verification) as self-contained HTML from
``hybridcert/templates/verification.html.j2`` (Jinja2, autoescape on)."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from hybridcert import __version__

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
    """HTML for ``VerificationReport.to_dict()`` and/or ``ResultsVerification.to_dict()``, in the layout shared
    with the compliance report (``report-base.html.j2``)."""
    env = Environment(loader=PackageLoader("hybridcert", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _fmt
    return env.get_template(TEMPLATE).render(report=report, results=results, demo=False,
                                             generator=f"hybridcert {__version__}")
