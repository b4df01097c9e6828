"""Report plots as inline SVG strings (matplotlib, Agg), deterministic: fixed hash salt, no date metadata.

Plots only draw numbers handed to them (derived from results.json in ``summary``); labels are fixed text.
"""

from __future__ import annotations

import io
import re
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

_RC: Any = {
    "svg.hashsalt": "hybridcert",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _to_svg(fig: Figure, prefix: str, label: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]  # drop the XML declaration and doctype for inline use
    # ids must be unique across the several SVGs inlined into one page.
    svg = re.sub(r'id="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", svg)
    svg = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'xlink:href="#{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"<svg ", f'<svg role="img" aria-label="{label}" ', svg, count=1)
    return svg


def _x_max(radii: NDArray[np.float64]) -> float:
    finite = radii[np.isfinite(radii) & (radii >= 0)]
    top = float(finite.max()) if finite.size else 1.0
    return top * 1.08 if top > 0 else 1.0


def certified_rate_plot(radii: NDArray[np.float64], budgets: list[int]) -> str:
    """Certified rate against image radius eps, one step curve per token budget d (docs/report.md §7)."""
    n = radii.shape[0]
    xmax = _x_max(radii)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.4, 3.0))
        cmap = plt.get_cmap("viridis")
        for j, d in enumerate(budgets):
            col = radii[:, d]
            steps = np.unique(np.concatenate([[0.0], col[np.isfinite(col) & (col >= 0)]]))
            # rate(eps) = #{r_i >= eps} / n is constant on (r_k, r_k+1]: a "pre" step through the breakpoints.
            xs = np.concatenate([steps[steps < xmax], [xmax]])
            ys = np.array([np.count_nonzero(col >= x) / n for x in xs])
            ax.step(xs, ys, where="pre", color=cmap(j / max(len(budgets) - 1, 1)), label=f"d = {d}", lw=1.6)
        ax.set_xlim(0, xmax)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("image l2 radius eps")
        ax.set_ylabel("certified rate")
        ax.grid(alpha=0.3)
        ax.legend(title="token budget", fontsize=8, frameon=False, loc="upper right")
        return _to_svg(fig, "plot-rate", "Certified rate against image radius, one curve per token budget")


def frontier_heatmap(radii: NDArray[np.float64], budgets: list[int], columns: int = 60) -> str:
    """Certified rate over the (d, eps) plane as a heat map (the dataset's frontier, docs/theory.md §4)."""
    n = radii.shape[0]
    xmax = _x_max(radii)
    edges = np.linspace(0, xmax, columns + 1)
    # Each cell shows the rate at its left edge (the cell's smallest eps): rates fall with eps.
    grid = np.array([[np.count_nonzero(radii[:, d] >= e) / n for e in edges[:-1]] for d in budgets])
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.32 * len(budgets) + 1.2))
        mesh = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, origin="lower", aspect="auto",
                         interpolation="nearest", extent=(0.0, float(xmax), -0.5, len(budgets) - 0.5))
        ax.set_yticks(range(len(budgets)), [str(d) for d in budgets])
        ax.set_xlabel("image l2 radius eps")
        ax.set_ylabel("token budget d")
        fig.colorbar(mesh, ax=ax, label="certified rate", pad=0.02)
        return _to_svg(fig, "plot-frontier", "Heat map of the certified rate over token budget and image radius")


def p_lower_histogram(p_lower: NDArray[np.float64], thresholds: NDArray[np.float64], bins: int = 20) -> str:
    """Distribution of p_a_lower, with the certification threshold(s) marked (docs/theory.md §5)."""
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.4, 2.8))
        ax.hist(p_lower, bins=[float(x) for x in np.linspace(0, 1, bins + 1)], color="#3b6ea5", edgecolor="white")
        for t in sorted(set(float(x) for x in thresholds)):
            ax.axvline(t, color="#b03a2e", ls="--", lw=1)
        ax.set_xlim(0, 1)
        ax.set_xlabel("p_a_lower (lower confidence bound on the certified side)")
        ax.set_ylabel("inputs")
        ax.text(0.01, 0.95, "dashed: threshold", transform=ax.transAxes, va="top", fontsize=8, color="#b03a2e")
        return _to_svg(fig, "plot-pa", "Histogram of p_a_lower over the inputs")
