"""Denoised smoothing (issue 12): the timestep matches sigma in the denoiser's pixel space (docs/theory.md §10).

A tiny random diffusers UNet2DModel with a real DDPMScheduler config, built offline. The chosen timestep is
checked against alphas recomputed from the scheduler's betas, for sigma given in [0, 1] and a model in
[-1, 1] (noise std 2 sigma) or [0, 1] (std sigma); the one-step estimate against the formula; and an audit
with a [denoiser] records the stage and ``verify --results`` proves its certificates.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


def build_tiny_denoiser(directory: Path, channels: int = 1, size: int = 8, pickled: bool = False,
                        layout: str = "flat") -> Path:
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=size, in_channels=channels, out_channels=channels, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4,
    )
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)
    unet_dir = directory / "unet" if layout == "pipeline" else directory
    sched_dir = directory / "scheduler" if layout == "pipeline" else directory
    unet.save_pretrained(unet_dir)
    scheduler.save_pretrained(sched_dir)
    if pickled:
        from safetensors.torch import load_file

        weights = unet_dir / "diffusion_pytorch_model.safetensors"
        state = load_file(str(weights))
        weights.unlink()
        torch.save(state, unet_dir / "diffusion_pytorch_model.bin")
    return directory


def _alphas_cumprod() -> np.ndarray:
    betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)  # DDPM's linear schedule, recomputed here
    return np.cumprod(1.0 - betas)


@pytest.mark.parametrize("sigma", [0.12, 0.25, 0.5, 1.0])
def test_the_timestep_matches_sigma_in_the_denoisers_pixel_space(sigma: float, tmp_path: Path) -> None:
    from hybridcert.audits.adapters.denoiser import Denoiser

    directory = build_tiny_denoiser(tmp_path / "d")
    abar = _alphas_cumprod()
    level = np.sqrt(1 - abar) / np.sqrt(abar)
    chosen = {}
    for space, std in (("[-1,1]", 2 * sigma), ("[0,1]", sigma)):
        den = Denoiser.load(directory, sigma, space)
        t = den.timestep
        assert np.allclose(den.alphas_cumprod.numpy(), abar, rtol=1e-5)  # the scheduler computes in float32
        # t is the closest level to the noise std the model sees (2 sigma in [-1, 1])
        assert abs(level[t] - std) <= np.abs(level - std).min() + 1e-12
        assert abs(level[t] - std) < 0.05 * std
        assert den.matched_level == pytest.approx(level[t] / (2 if space == "[-1,1]" else 1), rel=1e-5)  # float32
        assert den.info()["timestep"] == t and den.info()["sha256"] == den.sha256 and len(den.sha256) == 64
        chosen[space] = t
    assert chosen["[-1,1]"] > chosen["[0,1]"]  # the [-1, 1] model sees twice the noise: a later timestep


def test_one_step_denoising_follows_the_formula(tmp_path: Path) -> None:
    from hybridcert.audits.adapters.denoiser import Denoiser

    den = Denoiser.load(build_tiny_denoiser(tmp_path / "d", layout="pipeline"), 0.25, "[-1,1]")
    g = torch.Generator().manual_seed(0)
    noisy = torch.rand(3, 1, 8, 8, generator=g) + 0.25 * torch.randn(3, 1, 8, 8, generator=g)
    out = den(noisy)
    a = math.sqrt(den.abar)
    x_t = a * (2 * noisy - 1)
    with torch.no_grad():
        eps = den.unet(x_t, torch.full((3,), den.timestep)).sample
    expected = (((x_t - math.sqrt(1 - den.abar) * eps) / a).clamp(-1, 1) + 1) / 2
    assert out.shape == noisy.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.allclose(out, expected, atol=1e-5)


def test_bad_denoisers_are_one_line_errors(tmp_path: Path) -> None:
    from hybridcert.audits.adapters import PickleRefusedError
    from hybridcert.audits.adapters.denoiser import Denoiser

    pickled = build_tiny_denoiser(tmp_path / "p", pickled=True)
    with pytest.raises(PickleRefusedError, match="pickled"):
        Denoiser.load(pickled, 0.25)
    assert Denoiser.load(pickled, 0.25, allow_pickle=True).timestep > 0
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no UNet config.json"):
        Denoiser.load(empty, 0.25)
    with pytest.raises(ValueError, match="must be a local directory"):
        Denoiser.load(tmp_path / "google/ddpm-cifar10-32", 0.25)
    other = build_tiny_denoiser(tmp_path / "o")
    cfg = json.loads((other / "scheduler_config.json").read_text())
    (other / "scheduler_config.json").write_text(json.dumps({**cfg, "_class_name": "FlowMatchEulerDiscreteScheduler"}))
    with pytest.raises(ValueError, match="not a DDPM-family scheduler"):
        Denoiser.load(other, 0.25)


def test_an_audit_with_a_denoiser_records_it_and_verify_proves_it(make_spec, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from hybridcert.audits.checkpoint import RESULTS_NAME
    from hybridcert.audits.runner import prepare, run_audit
    from hybridcert.cli import app

    directory = build_tiny_denoiser(tmp_path / "den")
    spec = make_spec(denoiser={"path": str(directory)}, certify={"n": 64, "n0": 16})
    audit = prepare(spec)
    run_audit(audit, tmp_path / "out")
    res = json.loads((tmp_path / "out" / RESULTS_NAME).read_text())
    recorded = res["model"]["denoiser"]
    assert recorded["timestep"] == audit.filter.denoiser.timestep > 0
    assert recorded["sigma"] == spec.noise.sigma and recorded["pixel_space"] == "[-1,1]"
    assert recorded["matched_level"] == pytest.approx(spec.noise.sigma, rel=0.05)
    verified = CliRunner().invoke(app, ["verify", "--results", str(tmp_path / "out" / RESULTS_NAME)])
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    with pytest.raises(ValueError, match="a \\[denoiser\\] needs the noisy image as sampled"):
        make_spec(denoiser={"path": str(directory)}, noise={"clamp": True})
