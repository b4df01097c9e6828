"""Image preprocessing of the vision-language guards, in torch and in floating point (issue 12).

The noisy image in [0, 1] goes through the same steps as the model's image processor (resize, pad, tiling,
rescale, normalise), but never through 8-bit quantisation, which would round the Gaussian noise away. The
whole preprocessing is a fixed, deterministic function of the noisy sample, so it is part of the base
filter and the certificate is about exactly this filter (docs/theory.md §1: post-processing of a noisy
sample does not change the certificate).

Agreement with the processors (checked in tests/audits/test_adapters_guard.py): on a clean image given as
``uint8 / 255`` every step that does not resample is exact (within float rounding, 1e-5); a resampling step
(torch's antialiased bicubic, which uses PIL's kernel a = -0.5) differs from the processor's PIL resampling
only by PIL's rounding of its intermediate and result to 8 bits (about 1/255 per pixel at most before
normalisation). Bicubic overshoot is clipped to [0, 1] after each pass, as PIL's 8-bit passes are.

Sizes follow transformers' own helpers where they are pure functions (``select_best_resolution``,
``smart_resize``), so the layout of tiles and patches is the processor's by construction.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

RESAMPLE_MODES = {2: "bilinear", 3: "bicubic"}  # PIL's filter numbers -> torch's antialiased modes


def resample_mode(image_processor: Any) -> str:
    """The torch mode matching the processor's PIL ``resample`` (bilinear or bicubic; ValueError otherwise)."""
    value = getattr(image_processor, "resample", 3)
    value = 3 if value is None else int(value)
    if value not in RESAMPLE_MODES:
        raise ValueError(f"the image processor's resample filter {value} is not supported (bilinear 2, bicubic 3)")
    return RESAMPLE_MODES[value]


def resize(x: torch.Tensor, hw: tuple[int, int], mode: str = "bicubic") -> torch.Tensor:
    """PIL's bicubic (or bilinear) resize of [B, C, H, W] in [0, 1], in floating point (same size: identity).

    Like PIL: antialiased filters (torch's ``antialias=True`` kernels: PIL's bicubic a = -0.5 and its
    triangle filter), separable, each pass
    clipped to [0, 1] (PIL clips its 8-bit intermediate and result; it also rounds them, which we do not:
    that is the processor's own 8-bit rounding, about 1/255 in all). The pass order matters where an
    intermediate overshoot is clipped. Pillow 13 (installed here) runs the vertical pass first when the
    height shrinks and the width grows, the horizontal pass first when the height grows; when both sides
    shrink its order follows a rule we have not pinned down (horizontal first in ~3/4 of random size pairs),
    and we use horizontal first: a few pixels next to a clipped overshoot can then differ from the
    processor's by more than 1/255. The function is fixed either way, so certificates hold for it
    (docs/theory.md §1); only the agreement with the processor is approximate in that case.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    oh, ow = int(hw[0]), int(hw[1])
    passes = [(oh, w), (oh, ow)] if oh < h and ow > w else [(h, ow), (oh, ow)]
    for size in passes:
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True).clamp(0.0, 1.0)
    return x


def shortest_edge_hw(h: int, w: int, short_side: int) -> tuple[int, int]:
    """transformers' ``get_resize_output_image_size(default_to_square=False)``: short side -> s, aspect kept."""
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(short_side * long / short)
    return (new_long, short_side) if w <= h else (short_side, new_long)


def size_hw(size: Mapping[str, Any], h: int, w: int) -> tuple[int, int]:
    """The output size of the PIL backend's ``resize`` for a ``size`` dict (height/width or shortest_edge)."""
    if size.get("height") and size.get("width"):
        return int(size["height"]), int(size["width"])
    if size.get("shortest_edge") and not size.get("longest_edge"):
        return shortest_edge_hw(h, w, int(size["shortest_edge"]))
    raise ValueError(f"unsupported image processor size {dict(size)!r}")


def center_crop(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Centre crop [B, C, H, W] to ``hw`` (ValueError when the image is smaller than the crop)."""
    ch, cw = hw
    h, w = x.shape[-2:]
    if ch > h or cw > w:
        raise ValueError(f"image of size {h}x{w} is smaller than the processor's crop size {ch}x{cw}")
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top:top + ch, left:left + cw]


def pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int, fill: torch.Tensor | float) -> torch.Tensor:
    """Pad [B, C, H, W] with a constant (a number or a per-channel [1, C, 1, 1] tensor)."""
    if top == bottom == left == right == 0:
        return x
    b, c, h, w = x.shape
    size = (b, c, h + top + bottom, w + left + right)
    if isinstance(fill, torch.Tensor):  # per channel: the caller keeps it on x's device (no copy per call)
        canvas = fill.to(x.device, x.dtype).reshape(1, -1, 1, 1).expand(size).clone()
    else:
        canvas = x.new_full(size, float(fill))
    canvas[:, :, top:top + h, left:left + w] = x
    return canvas


class Normalizer:
    """The processor's rescale + normalise of an 8-bit image, applied to x in [0, 1] (x * 255 is the 8-bit value)."""

    def __init__(self, image_processor: Any) -> None:
        ip = image_processor
        self.do_rescale = bool(getattr(ip, "do_rescale", True))
        self.rescale_factor = float(getattr(ip, "rescale_factor", None) or 1 / 255)
        self.do_normalize = bool(getattr(ip, "do_normalize", True))
        mean = getattr(ip, "image_mean", None)
        std = getattr(ip, "image_std", None)
        mean = [float(mean)] * 3 if isinstance(mean, (int, float)) else list(mean or [0.0] * 3)
        std = [float(std)] * 3 if isinstance(std, (int, float)) else list(std or [1.0] * 3)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) [1, C, 1, 1] on ``device``, copied there once (a host-to-device copy per call would stall)."""
        if device not in self._on:
            self._on[device] = (self.mean.to(device), self.std.to(device))
        return self._on[device]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x * (255.0 * self.rescale_factor if self.do_rescale else 255.0)
        if self.do_normalize:
            shape = (1,) * (x.ndim - 3) + (-1, 1, 1)
            mean, std = self.stats(x.device)
            x = (x - mean.view(shape)) / std.view(shape)
        return x


def patch_output_size(h: int, w: int, target: tuple[int, int]) -> tuple[int, int]:
    """transformers' ``get_patch_output_size``: fit (h, w) into ``target`` keeping the aspect ratio."""
    th, tw = target
    scale_w, scale_h = tw / w, th / h
    if scale_w < scale_h:
        return min(math.ceil(h * scale_w), th), tw
    return th, min(math.ceil(w * scale_h), tw)


def anyres_layout(h: int, w: int, pinpoints: Sequence[Sequence[int]]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(best resolution, resized size) of LLaVA-NeXT / OneVision's anyres tiling for an image of size h x w."""
    from transformers.image_processing_utils import select_best_resolution

    best = select_best_resolution((h, w), [list(p) for p in pinpoints])
    return (int(best[0]), int(best[1])), patch_output_size(h, w, (int(best[0]), int(best[1])))


def anyres_tiles(
    x: torch.Tensor, pinpoints: Sequence[Sequence[int]], tile: int, base_hw: tuple[int, int], mode: str = "bicubic"
) -> list[torch.Tensor]:
    """[base image resized to ``base_hw``] + the tiles of the anyres grid (each [B, C, tile, tile]), row-major.

    The image is resized to fit the best grid resolution (aspect ratio kept), centred on a black canvas (the
    processor pads with 0, before rescaling) and cut into ``tile`` x ``tile`` tiles, as the LLaVA-NeXT and
    OneVision image processors do.
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    (bh, bw), (nh, nw) = anyres_layout(h, w, pinpoints)
    resized = resize(x, (nh, nw), mode)
    py, ry = divmod(bh - nh, 2)
    px, rx = divmod(bw - nw, 2)
    canvas = pad(resized, py, py + ry, px, px + rx, 0.0)
    tiles = [canvas[:, :, i:i + tile, j:j + tile] for i in range(0, bh, tile) for j in range(0, bw, tile)]
    return [resize(x, base_hw, mode), *tiles]


def qwen_resized_hw(h: int, w: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen2-VL's ``smart_resize`` (its own function); ValueError when the image is too small or too thin."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    try:
        rh, rw = smart_resize(h, w, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    except ValueError as exc:
        raise ValueError(f"image of size {h}x{w} is not accepted by the Qwen2-VL processor: {exc}") from None
    if rh < factor or rw < factor:
        raise ValueError(f"image of size {h}x{w} is smaller than the Qwen2-VL processor accepts (factor {factor})")
    return int(rh), int(rw)


def qwen_patchify(x: torch.Tensor, patch: int, merge: int, temporal: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Qwen2-VL's ``patchify`` for a batch: [B, C, H, W] -> ([B * gh * gw, C * T * p * p], (gh, gw)).

    Rows are grouped by merge window (merge x merge neighbouring patches are consecutive), the image is
    repeated ``temporal`` times along the temporal patch axis, as the processor does for a still image.
    """
    b, c, h, w = x.shape
    gh, gw = h // patch, w // patch
    y = x.reshape(b, c, gh // merge, merge, patch, gw // merge, merge, patch)
    y = y.permute(0, 2, 5, 3, 6, 1, 4, 7)  # b, gh/m, gw/m, m_h, m_w, c, p_h, p_w
    y = y.unsqueeze(6).expand(*y.shape[:6], temporal, patch, patch)
    return y.reshape(b * gh * gw, c * temporal * patch * patch), (gh, gw)


@functools.lru_cache(maxsize=256)
def mllama_layout(h: int, w: int, max_tiles: int, tile: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """((tiles down, tiles across), resized size) of Mllama's tiled canvas, from its processor's own functions."""
    from transformers.models.mllama.image_processing_pil_mllama import (
        get_image_size_fit_to_canvas,
        get_optimal_tiled_canvas,
    )

    ch, cw = get_optimal_tiled_canvas(image_height=h, image_width=w, max_image_tiles=max_tiles, tile_size=tile)
    nh, nw = get_image_size_fit_to_canvas(
        image_height=h, image_width=w, canvas_height=int(ch), canvas_width=int(cw), tile_size=tile
    )
    return (int(ch) // tile, int(cw) // tile), (int(nh), int(nw))


def split_tiles(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """[B, C, rows * t, cols * t] -> [B, rows * cols, C, t, t], row-major (Mllama's ``split_to_tiles``)."""
    b, c, h, w = x.shape
    th, tw = h // rows, w // cols
    return x.reshape(b, c, rows, th, cols, tw).permute(0, 2, 4, 1, 3, 5).reshape(b, rows * cols, c, th, tw)
