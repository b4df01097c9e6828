"""The guard families: what each vision-language architecture adds to ``guard.GuardFilter`` (issue 12).

Each family gives the image's model inputs (``image_inputs``, computed with ``vision`` in floating point) and
the number of placeholder tokens an image of a given size becomes (``n_image_tokens``), exactly as the
model's processor expands it. Prompt splicing, read-out, batching and padding are shared (``guard``).
The preprocessing is part of the base filter, so the certificate covers it (docs/theory.md §1).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from hybridcert.audits.adapters import vision
from hybridcert.audits.adapters.guard import GuardFilter

__all__ = [
    "FAMILIES", "AnyresFamily", "LlavaFamily", "LlavaNextFamily", "LlavaOnevisionFamily", "MllamaFamily",
    "QwenVLFamily",
]


def _size(ip: Any, key: str) -> dict[str, Any]:
    value = getattr(ip, key, None)
    if value is None:
        return {}
    return {k: v for k, v in dict(value).items() if v is not None}


class _MeasuredTokens(GuardFilter):
    """Families whose placeholder count is read off the model: the features one image of that size yields."""

    def _measure(self, **pixel_inputs: torch.Tensor) -> int:
        with torch.inference_mode(), clear_model_errors(self):
            out = self.model.get_image_features(**pixel_inputs)
        feats = out.pooler_output if hasattr(out, "pooler_output") else out
        if isinstance(feats, (list, tuple)):
            return int(feats[0].shape[0])
        return int(feats.shape[0] if feats.ndim == 2 else feats.shape[1])


def clear_model_errors(f: GuardFilter) -> Any:
    from hybridcert.audits.adapters.common import clear_errors

    return clear_errors(f"measuring the image tokens of {f.name}")


class LlavaFamily(_MeasuredTokens):
    """LLaVA-1.5 (``llava``): CLIP-style preprocessing, optional pad-to-square, one fixed-size image."""

    model_types = ("llava",)
    model_class = "LlavaForConditionalGeneration"

    def _image_setup(self) -> None:
        ip = self.image_processor
        self.normalize = vision.Normalizer(ip)
        self.mode = vision.resample_mode(ip)
        self.do_pad = bool(getattr(ip, "do_pad", False))
        self.do_resize = bool(getattr(ip, "do_resize", True))
        self.do_center_crop = bool(getattr(ip, "do_center_crop", False))
        self.size = _size(ip, "size")
        crop = _size(ip, "crop_size")
        self.crop_hw = (int(crop["height"]), int(crop["width"])) if crop else None
        side = int(self.model.config.vision_config.image_size)
        self.image_hw = (side, side)
        probe = torch.zeros(1, 3, side, side, device=self.device, dtype=self.dtype)
        self._n_tokens = self._measure(pixel_values=probe)

    def n_image_tokens(self, h: int, w: int) -> int:
        return self._n_tokens

    def image_inputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = images
        if self.do_pad and x.shape[-1] != x.shape[-2]:
            h, w = int(x.shape[-2]), int(x.shape[-1])
            side = max(h, w)
            fill = torch.floor(self.normalize.stats(x.device)[0] * 255) / 255  # the processor fills int(mean * 255)
            top, left = (side - h) // 2, (side - w) // 2
            x = vision.pad(x, top, side - h - top, left, side - w - left, fill)
        if self.do_resize:
            x = vision.resize(x, vision.size_hw(self.size, int(x.shape[-2]), int(x.shape[-1])), self.mode)
        if self.do_center_crop and self.crop_hw is not None:
            x = vision.center_crop(x, self.crop_hw)
        if tuple(x.shape[-2:]) != self.image_hw:
            raise ValueError(f"preprocessed image is {tuple(x.shape[-2:])} but the vision tower takes {self.image_hw}")
        return {"pixel_values": self.normalize(x)}


class AnyresFamily(_MeasuredTokens):
    """LLaVA-NeXT and OneVision: a base image plus the tiles of the best grid resolution (``anyres``)."""

    def _image_setup(self) -> None:
        ip = self.image_processor
        self.normalize = vision.Normalizer(ip)
        self.mode = vision.resample_mode(ip)
        pinpoints = getattr(ip, "image_grid_pinpoints", None)
        model_pinpoints = getattr(self.model.config, "image_grid_pinpoints", None)
        if not pinpoints:
            raise ValueError("the image processor has no image_grid_pinpoints (anyres tiling)")
        if model_pinpoints is not None and [list(p) for p in pinpoints] != [list(p) for p in model_pinpoints]:
            raise ValueError("the image processor's image_grid_pinpoints differ from the model config's")
        self.pinpoints = [[int(a), int(b)] for a, b in pinpoints]
        self.size = _size(ip, "size")
        crop = _size(ip, "crop_size")
        self.do_resize = bool(getattr(ip, "do_resize", True))
        self.do_center_crop = bool(getattr(ip, "do_center_crop", False)) and bool(crop)
        self.crop_hw = (int(crop["height"]), int(crop["width"])) if crop else None
        if self.size.get("height") and self.size.get("width"):
            self.base_hw = (int(self.size["height"]), int(self.size["width"]))
        else:
            edge = int(self.size["shortest_edge"])
            self.base_hw = (edge, edge)
        self.tile = int(crop["height"]) if crop else (int(self.size.get("height") or self.size["shortest_edge"]))
        self._n_tokens: dict[tuple[int, int], int] = {}

    def _tiles(self, x: torch.Tensor) -> torch.Tensor:
        patches = []
        for patch in vision.anyres_tiles(x, self.pinpoints, self.tile, self.base_hw, self.mode):
            if self.do_resize:
                hw = vision.size_hw(self.size, int(patch.shape[-2]), int(patch.shape[-1]))
                patch = vision.resize(patch, hw, self.mode)
            if self.do_center_crop and self.crop_hw is not None:
                patch = vision.center_crop(patch, self.crop_hw)
            patches.append(self.normalize(patch))
        return torch.stack(patches, dim=1)

    def _extra(self, b: int, h: int, w: int) -> dict[str, torch.Tensor]:
        return {"image_sizes": self._const((h, w)).expand(b, 2)}

    def image_inputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = int(images.shape[-2]), int(images.shape[-1])
        return {"pixel_values": self._tiles(images), **self._extra(images.shape[0], h, w)}

    def n_image_tokens(self, h: int, w: int) -> int:
        if (h, w) not in self._n_tokens:
            (bh, bw), _ = vision.anyres_layout(h, w, self.pinpoints)
            n_tiles = 1 + (bh // self.tile) * (bw // self.tile)
            side = self.crop_hw[0] if self.do_center_crop and self.crop_hw else self.base_hw[0]
            probe = torch.zeros(1, n_tiles, 3, side, side, device=self.device, dtype=self.dtype)
            self._n_tokens[(h, w)] = self._measure(pixel_values=probe, **self._extra(1, h, w))
        return self._n_tokens[(h, w)]


class LlavaNextFamily(AnyresFamily):
    """LLaVA-NeXT (``llava_next``)."""

    model_types = ("llava_next",)
    model_class = "LlavaNextForConditionalGeneration"


class LlavaOnevisionFamily(AnyresFamily):
    """LLaVA-OneVision (``llava_onevision``; LlavaGuard v1.2 OV): anyres plus ``batch_num_images`` (one each)."""

    model_types = ("llava_onevision",)
    model_class = "LlavaOnevisionForConditionalGeneration"

    def _extra(self, b: int, h: int, w: int) -> dict[str, torch.Tensor]:
        return {**super()._extra(b, h, w), "batch_num_images": self._const((1,)).expand(b)}


class QwenVLFamily(GuardFilter):
    """Qwen2-VL and Qwen2.5-VL: dynamic resolution (``smart_resize``), flat patches and a (t, h, w) grid.

    Positions are M-RoPE (3-d): the model computes them from the attention mask and ``mm_token_type_ids``
    (1 on image tokens), which this family passes instead of 1-d position ids; left padding is masked out.
    """

    model_types: ClassVar[tuple[str, ...]] = ("qwen2_vl", "qwen2_5_vl")
    model_class = ""  # chosen per model type in ``FAMILIES``

    def _image_setup(self) -> None:
        ip = self.image_processor
        self.normalize = vision.Normalizer(ip)
        self.mode = vision.resample_mode(ip)
        self.patch = int(ip.patch_size)
        self.merge = int(ip.merge_size)
        self.temporal = int(ip.temporal_patch_size)
        size = _size(ip, "size")
        self.min_pixels = int(size.get("shortest_edge") or getattr(ip, "min_pixels", None) or 56 * 56)
        self.max_pixels = int(size.get("longest_edge") or getattr(ip, "max_pixels", None) or 28 * 28 * 1280)
        self.do_resize = bool(getattr(ip, "do_resize", True))
        vc = self.model.config.vision_config
        for key, ours in (("patch_size", self.patch), ("spatial_merge_size", self.merge),
                          ("temporal_patch_size", self.temporal)):
            if getattr(vc, key, ours) != ours:
                theirs = getattr(vc, key)
                raise ValueError(f"the image processor's {key} {ours} differs from the vision config's {theirs}")

    def _hw(self, h: int, w: int) -> tuple[int, int]:
        factor = self.patch * self.merge
        if not self.do_resize:
            if h % factor or w % factor:
                raise ValueError(f"image of size {h}x{w} is not a multiple of {factor} (the processor does not resize)")
            return h, w
        return vision.qwen_resized_hw(h, w, factor, self.min_pixels, self.max_pixels)

    def n_image_tokens(self, h: int, w: int) -> int:
        rh, rw = self._hw(h, w)
        return (rh // self.patch) * (rw // self.patch) // (self.merge * self.merge)

    def image_inputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = vision.resize(images, self._hw(int(images.shape[-2]), int(images.shape[-1])), self.mode)
        pixels, (gh, gw) = vision.qwen_patchify(self.normalize(x), self.patch, self.merge, self.temporal)
        grid = self._const((1, gh, gw)).expand(images.shape[0], 3)
        return {"pixel_values": pixels, "image_grid_thw": grid}

    def text_inputs(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"input_ids": ids, "attention_mask": mask, "mm_token_type_ids": (ids == self.image_token_id).int()}


class Qwen2VLFamily(QwenVLFamily):
    model_types = ("qwen2_vl",)
    model_class = "Qwen2VLForConditionalGeneration"


class Qwen25VLFamily(QwenVLFamily):
    model_types = ("qwen2_5_vl",)
    model_class = "Qwen2_5_VLForConditionalGeneration"


class MllamaFamily(GuardFilter):
    """Llama 3.2 Vision (``mllama``; Llama Guard 3 Vision): one ``<|image|>`` token, cross-attention to tiles.

    The image is resized to fit the best canvas of at most ``max_image_tiles`` tiles, padded with black at the
    bottom and right, normalised and cut into tiles; ``aspect_ratio_ids`` / ``aspect_ratio_mask`` name the
    arrangement and ``cross_attention_mask`` lets every token from the image token on see the image's tiles
    (left padding sees none), as the Mllama processor builds them.
    """

    model_types = ("mllama",)
    model_class = "MllamaForConditionalGeneration"

    def _image_setup(self) -> None:
        from transformers.models.mllama.image_processing_pil_mllama import get_all_supported_aspect_ratios

        ip = self.image_processor
        self.normalize = vision.Normalizer(ip)
        self.mode = vision.resample_mode(ip)
        size = _size(ip, "size")
        if size.get("height") != size.get("width") or not size.get("height"):
            raise ValueError(f"the Mllama image processor needs a square tile size, got {size}")
        self.tile = int(size["height"])
        self.max_tiles = int(getattr(ip, "max_image_tiles", 4))
        model_tiles = int(getattr(self.model.config.vision_config, "max_num_tiles", self.max_tiles))
        if model_tiles != self.max_tiles:
            raise ValueError(
                f"the image processor's max_image_tiles {self.max_tiles} differs from the model's {model_tiles}"
            )
        self.arrangements = [tuple(a) for a in get_all_supported_aspect_ratios(self.max_tiles)]

    def n_image_tokens(self, h: int, w: int) -> int:
        return 1  # cross-attention: the placeholder is not expanded

    def _prompt_text(self, prompt: str) -> str:
        from transformers.models.mllama.processing_mllama import build_string_from_input

        bos = getattr(self.tokenizer, "bos_token", None)
        return str(build_string_from_input(prompt, str(bos), self.image_token)) if bos else prompt

    def image_inputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        b = images.shape[0]
        (rows, cols), (nh, nw) = vision.mllama_layout(int(images.shape[-2]), int(images.shape[-1]), self.max_tiles,
                                                      self.tile)
        x = vision.resize(images, (nh, nw), self.mode)
        x = self.normalize(vision.pad(x, 0, rows * self.tile - nh, 0, cols * self.tile - nw, 0.0))
        tiles = vision.split_tiles(x, rows, cols)
        n = rows * cols
        pixels = torch.zeros(b, 1, self.max_tiles, *tiles.shape[2:], dtype=tiles.dtype, device=tiles.device)
        pixels[:, 0, :n] = tiles
        ids = torch.full((b, 1), self.arrangements.index((rows, cols)) + 1, dtype=torch.long, device=self.device)
        mask = torch.zeros(b, 1, self.max_tiles, dtype=torch.long, device=self.device)
        mask[:, :, :n] = 1
        return {"pixel_values": pixels, "aspect_ratio_ids": ids, "aspect_ratio_mask": mask}

    def model_inputs(self, tokens: torch.Tensor, images: torch.Tensor) -> dict[str, torch.Tensor]:
        inputs = super().model_inputs(tokens, images)
        ids = inputs["input_ids"]
        (rows, cols), _ = vision.mllama_layout(int(images.shape[-2]), int(images.shape[-1]), self.max_tiles, self.tile)
        n = rows * cols
        first = (ids == self.image_token_id).int().argmax(dim=1)
        sees = torch.arange(ids.shape[1], device=ids.device)[None, :] >= first[:, None]
        cross = torch.zeros(*ids.shape, 1, self.max_tiles, dtype=torch.long, device=ids.device)
        cross[:, :, 0, :n] = sees[:, :, None].long()
        inputs["cross_attention_mask"] = cross
        return inputs


FAMILIES: dict[str, type[GuardFilter]] = {
    "llava": LlavaFamily,
    "llava_next": LlavaNextFamily,
    "llava_onevision": LlavaOnevisionFamily,
    "mllama": MllamaFamily,
    "qwen2_vl": Qwen2VLFamily,
    "qwen2_5_vl": Qwen25VLFamily,
}
