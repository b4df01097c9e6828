"""Denoised smoothing: a one-step diffusion denoiser between the noisy image and the filter (issue 12).

``[denoiser] path = DIR``: a diffusers ``UNet2DModel`` and its DDPM-family scheduler config, from a local
directory (either ``config.json`` + weights + ``scheduler_config.json`` side by side, or the pipeline layout
with ``unet/`` and ``scheduler/``). The stage is part of the base filter, so the certificate is unchanged
(docs/theory.md §1 and §10): it is a fixed function of the noisy sample.

The noise level must be the one the denoiser was trained for, in the denoiser's pixel space
(docs/theory.md §10; Carlini et al. 2023). The audit adds noise of std ``sigma`` in [0, 1] pixel space; a
model of ``pixel_space = "[-1,1]"`` sees y = 2x - 1, whose noise has std 2 sigma. The timestep t is the one
whose level sqrt(1 - abar_t) / sqrt(abar_t) is closest to that std (2 sigma, or sigma for a [0, 1] model),
and the model's input is sqrt(abar_t) * y, which is distributed as the forward process x_t at t up to the
gap between the level and the std (recorded as ``matched_level``). The authors' release picks t for sigma
itself and so denoises the wrong level for a [-1, 1] model (docs/theory.md §7).

One step: x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) for an epsilon-prediction model (``sample`` and
``v_prediction`` are handled too), clamped to the model's range and mapped back to [0, 1].
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hybridcert.audits.adapters.common import clear_errors, directory_sha256, resolve_device

__all__ = ["DenoisedFilter", "Denoiser", "choose_timestep"]

SCHEDULERS = (
    "DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "DDPMParallelScheduler", "DDIMParallelScheduler",
    "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler", "EulerDiscreteScheduler",
    "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler", "LMSDiscreteScheduler", "UniPCMultistepScheduler",
)
PIXEL_SPACES = ("[-1,1]", "[0,1]")


def choose_timestep(alphas_cumprod: torch.Tensor, sigma: float, pixel_space: str) -> tuple[int, float]:
    """(t, level): the timestep whose sqrt(1 - abar_t) / sqrt(abar_t) is closest to the noise std in the model's
    pixel space (2 sigma for [-1, 1], sigma for [0, 1]; sigma is the certificate's, in [0, 1]); level is that
    timestep's noise std expressed in [0, 1] pixel space (docs/theory.md §10)."""
    if pixel_space not in PIXEL_SPACES:
        raise ValueError(f"denoiser.pixel_space must be one of {PIXEL_SPACES}, got {pixel_space!r}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    scale = 2.0 if pixel_space == "[-1,1]" else 1.0
    abar = alphas_cumprod.double()
    levels = torch.sqrt(1.0 - abar) / torch.sqrt(abar)
    t = int(torch.argmin((levels - scale * sigma).abs()))
    return t, float(levels[t]) / scale


def _subdir(path: Path, name: str, marker: str) -> Path:
    return path / name if (path / name / marker).is_file() else path


@dataclass
class Denoiser:
    """A one-step denoiser for noise of std ``sigma`` in [0, 1] pixel space (see the module docstring)."""

    unet: Any
    alphas_cumprod: torch.Tensor
    sigma: float
    pixel_space: str = "[-1,1]"
    prediction_type: str = "epsilon"
    sha256: str = ""
    device: torch.device = torch.device("cpu")

    def __post_init__(self) -> None:
        if self.prediction_type not in ("epsilon", "sample", "v_prediction"):
            raise ValueError(f"unsupported denoiser prediction_type {self.prediction_type!r}")
        self.timestep, self.matched_level = choose_timestep(self.alphas_cumprod, self.sigma, self.pixel_space)
        self.abar = float(self.alphas_cumprod[self.timestep])
        self.unet = self.unet.to(self.device).eval()

    @classmethod
    def load(cls, path: Path, sigma: float, pixel_space: str = "[-1,1]", device: str | torch.device = "cpu",
             allow_pickle: bool = False) -> Denoiser:
        """Load the UNet and the scheduler config from a local directory (local files only, no remote code)."""
        from hybridcert.audits.adapters.guard import check_weights

        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"denoiser path must be a local directory (nothing is downloaded): {path}")
        unet_dir = _subdir(path, "unet", "config.json")
        sched_dir = _subdir(path, "scheduler", "scheduler_config.json")
        if not (unet_dir / "config.json").is_file():
            raise ValueError(f"no UNet config.json in {path} (or {path / 'unet'})")
        if not (sched_dir / "scheduler_config.json").is_file():
            raise ValueError(f"no scheduler_config.json in {path} (or {path / 'scheduler'})")
        safetensors = check_weights(unet_dir, allow_pickle)
        try:
            sched_config = json.loads((sched_dir / "scheduler_config.json").read_text(encoding="utf-8"))
            unet_class = json.loads((unet_dir / "config.json").read_text(encoding="utf-8")).get("_class_name")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read the denoiser's configs in {path}: {exc}") from None
        if unet_class not in (None, "UNet2DModel"):
            raise ValueError(f"the denoiser must be a diffusers UNet2DModel, got {unet_class!r}")
        name = sched_config.get("_class_name", "DDPMScheduler")
        if name not in SCHEDULERS:
            raise ValueError(f"scheduler {name!r} is not a DDPM-family scheduler (supported: {', '.join(SCHEDULERS)})")
        import diffusers

        with clear_errors(f"loading the denoiser from {path}"):
            try:
                scheduler = getattr(diffusers, name).from_config(sched_config)
                unet = diffusers.UNet2DModel.from_pretrained(  # type: ignore[no-untyped-call]
                    unet_dir, local_files_only=True, use_safetensors=safetensors
                )
            except (OSError, ValueError, KeyError, TypeError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ValueError(f"cannot load the denoiser from {path}: {first}") from None
        alphas = getattr(scheduler, "alphas_cumprod", None)
        if alphas is None:
            raise ValueError(f"scheduler {name!r} has no alphas_cumprod")
        return cls(unet, torch.as_tensor(alphas, dtype=torch.float64), sigma, pixel_space,
                   str(sched_config.get("prediction_type", "epsilon")), directory_sha256(path), resolve_device(device))

    def info(self) -> dict[str, Any]:
        """What results record about the stage: the directory's sha256, the timestep and the matched level."""
        return {"sha256": self.sha256, "timestep": self.timestep, "matched_level": self.matched_level,
                "sigma": self.sigma, "pixel_space": self.pixel_space, "prediction_type": self.prediction_type}

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Noisy images [B, C, H, W] in [0, 1] pixel space (not clamped) -> denoised images in [0, 1]."""
        x = images.to(self.device, torch.float32)
        y = 2.0 * x - 1.0 if self.pixel_space == "[-1,1]" else x
        a = math.sqrt(self.abar)
        x_t = a * y
        t = torch.full((x.shape[0],), self.timestep, device=self.device, dtype=torch.long)
        with torch.inference_mode(), clear_errors("running the denoiser"):
            out: torch.Tensor = self.unet(x_t.to(self.unet.dtype), t).sample.float()
        if self.prediction_type == "epsilon":
            x0 = (x_t - math.sqrt(1.0 - self.abar) * out) / a
        elif self.prediction_type == "sample":
            x0 = out
        else:  # v_prediction
            x0 = a * x_t - math.sqrt(1.0 - self.abar) * out
        if self.pixel_space == "[-1,1]":
            return ((x0.clamp(-1.0, 1.0) + 1.0) / 2.0).to(images.dtype)
        return x0.clamp(0.0, 1.0).to(images.dtype)


class DenoisedFilter:
    """filter(tokens, denoiser(images)): the denoiser is part of the base classifier (docs/theory.md §10)."""

    def __init__(self, filt: Any, denoiser: Denoiser) -> None:
        self.filter = filt
        self.denoiser = denoiser
        self.device = filt.device
        self.name = getattr(filt, "name", "filter")
        self.weights_sha256 = getattr(filt, "weights_sha256", None)

    def __getattr__(self, name: str) -> Any:
        """The inner filter's other attributes (``prompt_ids``, ...); ``scores`` sees the denoised images."""
        if name in ("filter", "denoiser"):
            raise AttributeError(name)
        inner = getattr(self.filter, name)
        if name == "scores":
            return lambda tokens, images: inner(tokens, self.denoiser(images))
        return inner

    def __call__(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        decision: torch.Tensor = self.filter(tokens, self.denoiser(images))
        return decision
