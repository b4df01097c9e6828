"""Bad input is a ValueError naming the offending parameter and value; the CLI says it in one line, exit 2."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import mpmath as mp
import numpy as np
import pytest
from scipy.stats import binomtest

from hybridcert.theory import (
    HybridNoise,
    ThreatModel,
    TokenKernel,
    clopper_pearson_lower,
    clopper_pearson_upper,
    cohen_radius,
)


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda n: n.certified_radius(1.5, 1), "p_a must lie in [0, 1], got 1.5"),
        (lambda n: n.certified_radius(-0.1, 1), "p_a must lie in [0, 1], got -0.1"),
        (lambda n: n.certified_radius(np.array([0.5, np.nan]), 1), "p_a must not be NaN"),
        (lambda n: n.certified_radius(0.9, -1), "budget must be an integer >= 0, got -1"),
        (lambda n: n.certified_radius(0.9, 1.5), "budget must be an integer >= 0, got 1.5"),
        (lambda n: n.worst_case(0.9, 1, -0.2), "radius must be finite and >= 0, got -0.2"),
        (lambda n: n.worst_case(0.9, 1, math.nan), "radius must not be NaN"),
        (lambda n: n.certified_radius(0.9, 1, tau=0.0), "tau must lie in (0, 1), got 0.0"),
        (lambda n: n.certified_radius(0.9, 1, tau=math.nan), "tau must not be NaN"),
        (lambda n: n.certified_budget(0.9, -1.0), "radius must be finite and >= 0"),
        (lambda n: n.frontier(0.9, max_budget=-2), "max_budget must be an integer >= 0, got -2"),
    ],
)
def test_bad_query_names_the_problem(call, needle: str) -> None:
    noise = HybridNoise("uniform-other", 100, 0.3, 1.0)
    with pytest.raises(ValueError) as info:
        call(noise)
    assert needle in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"kernel": "gaussian"}, "kernel must be one of uniform-other, uniform-all, absorb, got 'gaussian'"),
        ({"sigma": 0.0}, "sigma must be a finite number > 0, got 0.0"),
        ({"sigma": -1.0}, "sigma must be a finite number > 0, got -1.0"),
        ({"sigma": math.inf}, "sigma must be a finite number > 0"),
        # QA of issue 10: sigma = 1e308 overflowed r*(0) to an infinite radius at p_a = 0.99
        ({"sigma": 1e308}, "sigma must be at most 1e+06 (hybridcert.theory.MAX_SIGMA)"),
        ({"beta": 0.0}, "beta must lie in (0, 1], got 0.0"),
        ({"beta": 1.2}, "beta must lie in (0, 1], got 1.2"),
        ({"beta": math.nan}, "beta must not be NaN"),
        ({"vocab_size": 1}, "vocab_size too small for the uniform-other kernel"),
        ({"vocab_size": 2.5}, "vocab_size must be an integer"),
    ],
)
def test_bad_noise_names_the_problem(kwargs: dict[str, object], needle: str) -> None:
    params: dict[str, object] = {"kernel": "uniform-other", "vocab_size": 100, "beta": 0.3, "sigma": 1.0}
    params.update(kwargs)
    with pytest.raises(ValueError) as info:
        HybridNoise(**params)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_largest_sigma_keeps_radii_finite() -> None:
    from hybridcert.theory import MAX_SIGMA

    noise = HybridNoise("uniform-other", 100, 0.3, MAX_SIGMA)
    assert math.isfinite(noise.certified_radius(0.999999, 0)) and math.isfinite(cohen_radius(0.999999, MAX_SIGMA))
    with pytest.raises(ValueError, match="MAX_SIGMA"):
        cohen_radius(0.99, 1e308)


def test_uninformative_kernel_needs_max_budget() -> None:
    """absorb with beta = 1 masks every noised token: every budget is certified, so an open-ended frontier
    would never end."""
    noise = HybridNoise("absorb", 10, 1.0, 1.0)
    with pytest.raises(ValueError, match="pass max_budget"):
        noise.frontier(0.9)
    frontier = noise.frontier(0.9, max_budget=5)
    assert [d for d, _ in frontier] == [0, 1, 2, 3, 4, 5]
    exact = 1.2815515655446004  # Phi^-1(0.9): the token change is invisible, so r*(d) = r*(0)
    assert all(abs(r - exact) < 1e-9 and r <= exact for _, r in frontier)


def test_threat_models() -> None:
    assert ThreatModel("l0").noised_positions(7) == (0, 7)
    assert ThreatModel("suffix-append", 4).noised_positions(7) == (7, 11)
    assert ThreatModel("suffix-append", 4).input_length(7) == 11
    assert ThreatModel("suffix-inplace", 3).noised_positions(7) == (4, 7)
    assert ThreatModel("suffix-inplace", 3).max_budget(7) == 3
    with pytest.raises(ValueError, match="longer than the text"):
        ThreatModel("suffix-inplace", 9).noised_positions(7)
    with pytest.raises(ValueError, match="span must be an integer >= 1"):
        ThreatModel("suffix-append")
    with pytest.raises(ValueError, match="threat model must be one of"):
        ThreatModel("linf")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="text length must be an integer >= 1"):
        ThreatModel("l0").noised_positions(0)


def test_kernel_table() -> None:
    """docs/theory.md §3's table, and masses that sum to one."""
    assert TokenKernel("uniform-other", 5, 0.4).position_masses() == pytest.approx((0.6, 0.1, 0.3))
    assert TokenKernel("uniform-all", 5, 0.4).position_masses() == pytest.approx((0.68, 0.08, 0.24))
    assert TokenKernel("absorb", 5, 0.4).position_masses() == pytest.approx((0.6, 0.0, 0.4))
    for name in ("uniform-other", "uniform-all", "absorb"):
        k = TokenKernel(name, 9, 0.35)  # type: ignore[arg-type]
        for d in (1, 2, 5):
            a = k.atoms(d)
            assert a.clean.sum() + a.clean_zero_ratio == pytest.approx(1.0, abs=1e-14)
            assert a.attacked.sum() + a.attacked_infinite_ratio == pytest.approx(1.0, abs=1e-14)
            assert (np.diff(a.log_ratio) > 0).all()
        assert k.atoms(3).size == (1 if name == "absorb" else 7)  # 2d + 1 levels for the uniform kernels


def _exact_cp_lower(k: int, n: int, alpha: float) -> mp.mpf:
    """P[Bin(n, p) >= k] = alpha, solved at 40 digits (the exact one-sided Clopper-Pearson bound)."""
    if k == 0:
        return mp.mpf(0)
    def tail(p: mp.mpf) -> mp.mpf:
        return mp.betainc(k, n - k + 1, 0, p, regularized=True) - alpha
    lo, hi = mp.mpf(0), mp.mpf(1)
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if tail(mid) > 0 else (mid, hi)
    return lo


def test_clopper_pearson_exact_and_against_scipy_binomtest() -> None:
    """The one-sided bound at alpha is the exact Beta quantile (never above it), and equals the lower end of
    scipy's two-sided exact interval at 1 - 2 alpha."""
    for k, n in [(0, 10), (1, 10), (5, 10), (9, 10), (10, 10), (990, 1000), (9999, 10000)]:
        lo = clopper_pearson_lower(k, n, 0.01)
        exact = _exact_cp_lower(k, n, 0.01)
        assert lo <= exact and abs(lo - exact) < 1e-11, (k, n, lo, exact)
        ref = binomtest(k, n).proportion_ci(confidence_level=0.98, method="exact").low
        assert lo == pytest.approx(ref, abs=1e-8), (k, n)
        hi = clopper_pearson_upper(k, n, 0.01)
        exact_hi = 1 - _exact_cp_lower(n - k, n, 0.01)
        assert hi >= exact_hi and abs(hi - exact_hi) < 1e-11, (k, n)
    vec = clopper_pearson_lower(np.array([[1, 2], [3, 4]]), 10, 0.05)
    assert vec.shape == (2, 2) and (np.diff(vec.ravel()) > 0).all()
    for bad, msg in [((11, 10), "must not exceed trials"), ((1.5, 10), "integers >= 0"), ((1, 0), ">= 1")]:
        with pytest.raises(ValueError, match=msg):
            clopper_pearson_lower(*bad, 0.05)
    with pytest.raises(ValueError, match="alpha must lie in"):
        clopper_pearson_lower(1, 10, 1.0)


def test_arrays_keep_their_shape() -> None:
    noise = HybridNoise("uniform-other", 100, 0.3, 1.0)
    p = np.full((2, 3), 0.95)
    assert noise.certified_radius(p, 1).shape == (2, 3)
    assert noise.worst_case(p, 1, 0.1).shape == (2, 3)
    assert noise.certified_budget(p, 0.1).shape == (2, 3)
    assert noise.frontier(p).shape == (2, 3)
    assert cohen_radius(p, 1.0).shape == (2, 3)
    assert isinstance(noise.certified_radius(0.95, 1), float)
    assert isinstance(noise.certified_budget(0.95, 0.1), int)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hybridcert", *args], capture_output=True, text=True, timeout=120)


def test_cli_certify_json_matches_api(tmp_path) -> None:
    res = _cli("certify", "--p-a", "0.99954", "--tau", "4.6e-5", "--budget", "2", "--radius", "3", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    noise = HybridNoise("uniform-other", 30000, 0.25, 1.0)
    assert out["certified_radius"] == noise.certified_radius(0.99954, 2, tau=4.6e-5)
    assert out["certified_budget"] == noise.certified_budget(0.99954, 3.0, tau=4.6e-5)
    assert [(f["budget"], f["radius"]) for f in out["frontier"]] == noise.frontier(0.99954, tau=4.6e-5)

    lines = tmp_path / "many.jsonl"
    lines.write_text(
        json.dumps({"p_a": 0.9, "vocab": 10, "beta": 0.5, "sigma": 0.5, "kernel": "absorb", "max_budget": 3}) + "\n"
        + json.dumps({"p_a": 0.7, "vocab": 10, "beta": 0.5, "sigma": 0.5}) + "\n"
    )
    res = _cli("certify", "--jsonl", str(lines), "--json")
    assert res.returncode == 0, res.stderr
    assert len(json.loads(res.stdout)) == 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["certify", "--p-a", "1.5"], "p_a must lie in [0, 1]"),
        (["certify", "--p-a", "0.9", "--sigma", "0"], "sigma must be a finite number > 0"),
        (["certify", "--p-a", "0.9", "--sigma", "1e308"], "sigma must be at most 1e+06"),
        (["certify", "--p-a", "0.9", "--vocab", "1"], "vocab_size too small"),
        (["certify", "--p-a", "0.9", "--beta", "0"], "beta must lie in (0, 1]"),
        (["certify", "--p-a", "0.9", "--budget", "-1"], "budget must be an integer >= 0"),
        (["certify", "--p-a", "nan"], "'p_a' must be a finite number"),
        (["certify"], "missing --p-a"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    res = _cli(*args)
    assert res.returncode == 2
    assert needle in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_jsonl_errors_name_the_line(tmp_path) -> None:
    f = tmp_path / "bad.jsonl"
    good = '{"p_a": 0.9, "vocab": 10, "beta": 0.5, "sigma": 0.5}'
    f.write_text(good + '\n{"p_a": 0.9, "vocab": 10, "beta": 2, "sigma": 1}\n')
    res = _cli("certify", "--jsonl", str(f))
    assert res.returncode == 2 and f"{f}:2: beta must lie in (0, 1]" in res.stderr
    f.write_text("{not json\n")
    res = _cli("certify", "--jsonl", str(f))
    assert res.returncode == 2 and f"{f}:1: not valid JSON" in res.stderr
    f.write_bytes(b'{"p_a": 0.9}\n\xff\xfe\n')
    res = _cli("certify", "--jsonl", str(f))
    assert res.returncode == 2 and f"{f}: not UTF-8 text" in res.stderr
    f.write_text("[1, 2]\n")
    res = _cli("certify", "--jsonl", str(f))
    assert res.returncode == 2 and f"{f}:1: expected a JSON object" in res.stderr
