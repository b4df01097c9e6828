"""Tiny vision-language guards of every supported family, built offline (issue 12).

Real transformers model classes with tiny random configs, the families' real PIL image processor classes, a
WordLevel tokenizer made with the ``tokenizers`` library (no download) holding the family's special tokens,
and a chat template in the family's layout. ``reference_processor`` gives transformers' own processor class
for the family, the reference the adapter must equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

WORDS = [
    "<pad>", "<unk>", "<s>", "</s>", "<image>", "<video>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|image_pad|>", "<|video_pad|>", "user", "assistant", "USER:", "ASSISTANT:", "Safe",
    "Unsafe", "safe", "unsafe", "Rate", "the", "image", "and", "text:", "rating:", "hello", "world", "cat", "dog",
    "knife", "cake", "bomb", "a", "is", "how", "to", "make", "friendly", "tree", "house", "sun", "moon", "Un",
    "<|image|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
]
ID = {w: i for i, w in enumerate(WORDS)}
SPECIAL = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>",
           "<image>", "<video>", "<|image|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
POLICY = "Rate the image and text: {text}"
ANSWER = " rating: "
TILE = 16  # the vision tower's image size
PATCH = 4
PINPOINTS = [[16, 16], [16, 32], [32, 16], [32, 32]]
MEAN, STD = [0.48, 0.45, 0.40], [0.27, 0.26, 0.28]

QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
OV_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}{% if c['type'] == 'image' %}"
    "<image>\n{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
VICUNA_TEMPLATE = (
    "{% for m in messages %}USER: {% for c in m['content'] %}{% if c['type'] == 'image' %}<image>\n"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endfor %}{% if add_generation_prompt %} ASSISTANT:{% endif %}"
)

LLAMA3_TEMPLATE = (
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|image|>{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def tokenizer(chat_template: str | None, image_token: str = "<image>") -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(ID, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        extra_special_tokens={"image_token": image_token},
    )
    tok.add_tokens(SPECIAL, special_tokens=True)  # already in the vocabulary: split out, no new ids
    tok.chat_template = chat_template
    return tok


def _text_config(kind: str, hidden: int = 32, layers: int = 2) -> Any:
    from transformers import LlamaConfig, Qwen2Config

    cls = Qwen2Config if kind == "qwen2" else LlamaConfig
    return cls(
        vocab_size=len(WORDS), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, pad_token_id=0, bos_token_id=2, eos_token_id=3,
    )


def _save(model: Any, parts: list[Any], directory: Path, pickled: bool) -> Path:
    # Random init gives near-uniform next-token logits; scale the output head so decisions are not ties.
    with torch.no_grad():
        model.lm_head.weight.mul_(20.0)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    for part in parts:
        part.save_pretrained(directory)
    if pickled:
        from safetensors.torch import load_file

        state = load_file(str(directory / "model.safetensors"))
        (directory / "model.safetensors").unlink()
        torch.save(state, directory / "pytorch_model.bin")
    return directory


def build_tiny_onevision(directory: Path, seed: int = 0, pickled: bool = False, hidden: int = 32,
                         layers: int = 2) -> Path:
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, SiglipVisionConfig
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    ip = LlavaOnevisionImageProcessorPil(
        size={"height": TILE, "width": TILE}, image_grid_pinpoints=PINPOINTS, image_mean=MEAN, image_std=STD
    )
    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                image_size=TILE, patch_size=PATCH)
    config = LlavaOnevisionConfig(
        vision_config=vision, text_config=_text_config("qwen2", hidden, layers), image_token_index=ID["<image>"],
        video_token_index=ID["<video>"], image_grid_pinpoints=PINPOINTS, vision_aspect_ratio="anyres_max_9",
    )
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    return _save(model, [ip, tokenizer(OV_TEMPLATE)], directory, pickled)


def build_tiny_next(directory: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    from transformers import CLIPVisionConfig, LlavaNextConfig, LlavaNextForConditionalGeneration
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

    ip = LlavaNextImageProcessorPil(
        size={"shortest_edge": TILE}, crop_size={"height": TILE, "width": TILE}, image_grid_pinpoints=PINPOINTS,
        image_mean=MEAN, image_std=STD,
    )
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                              image_size=TILE, patch_size=PATCH, projection_dim=16)
    config = LlavaNextConfig(
        vision_config=vision, text_config=_text_config("llama", hidden, layers), image_token_index=ID["<image>"],
        image_grid_pinpoints=PINPOINTS, vision_feature_layer=-1, vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config).eval()
    return _save(model, [ip, tokenizer(VICUNA_TEMPLATE)], directory, False)


def _mrope(head_dim: int) -> list[int]:
    """M-RoPE sections (temporal, height, width) summing to head_dim / 2, as Qwen's configs do."""
    quarter = head_dim // 8
    return [head_dim // 2 - 2 * quarter, quarter, quarter]


def build_tiny_qwen(directory: Path, version: str = "2", seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    ip = Qwen2VLImageProcessorPil(
        size={"shortest_edge": 16 * 16, "longest_edge": 48 * 48}, patch_size=PATCH, merge_size=2,
        temporal_patch_size=2, image_mean=MEAN, image_std=STD,
    )
    text = dict(vocab_size=len(WORDS), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                rope_parameters={"rope_type": "default", "mrope_section": _mrope(hidden // 4), "rope_theta": 10000.0})
    if version == "2":
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

        vision = dict(depth=1, embed_dim=16, hidden_size=hidden, num_heads=2, mlp_ratio=2, patch_size=PATCH,
                      spatial_merge_size=2, temporal_patch_size=2, in_channels=3)
        config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=ID["<|image_pad|>"],
                               video_token_id=ID["<|video_pad|>"], vision_start_token_id=ID["<|vision_start|>"],
                               vision_end_token_id=ID["<|vision_end|>"])
        cls: Any = Qwen2VLForConditionalGeneration
    else:
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        vision = dict(depth=1, hidden_size=16, intermediate_size=32, out_hidden_size=hidden, num_heads=2,
                      patch_size=PATCH, spatial_merge_size=2, temporal_patch_size=2, in_channels=3, window_size=16,
                      fullatt_block_indexes=[0])
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=ID["<|image_pad|>"],
                                  video_token_id=ID["<|video_pad|>"], vision_start_token_id=ID["<|vision_start|>"],
                                  vision_end_token_id=ID["<|vision_end|>"])
        cls = Qwen2_5_VLForConditionalGeneration
    torch.manual_seed(seed)
    model = cls(config).eval()
    return _save(model, [ip, tokenizer(QWEN_TEMPLATE, "<|image_pad|>")], directory, False)


def build_tiny_mllama(directory: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    from transformers import MllamaConfig, MllamaForConditionalGeneration, MllamaTextConfig, MllamaVisionConfig
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    ip = MllamaImageProcessorPil(size={"height": TILE, "width": TILE}, max_image_tiles=4, image_mean=MEAN,
                                 image_std=STD)
    vision = MllamaVisionConfig(
        hidden_size=16, num_hidden_layers=1, num_global_layers=1, attention_heads=2, intermediate_size=32,
        vision_output_dim=32, image_size=TILE, patch_size=PATCH, max_num_tiles=4, intermediate_layers_indices=[0],
    )
    text = MllamaTextConfig(
        vocab_size=len(WORDS), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, cross_attention_layers=[layers - 1],
        max_position_embeddings=1024, pad_token_id=0, bos_token_id=2, eos_token_id=3,
    )
    config = MllamaConfig(vision_config=vision, text_config=text, image_token_index=ID["<|image|>"])
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(config).eval()
    with torch.no_grad():  # the tanh gates start at 0: the text would not see the image
        for name, param in model.named_parameters():
            if "gate" in name and param.numel() <= 1:
                param.fill_(1.0)
    return _save(model, [ip, tokenizer(LLAMA3_TEMPLATE, "<|image|>")], directory, False)


def reference_processor(directory: Path, model_type: str) -> Any:
    """transformers' own processor class for the family, around the directory's image processor and tokenizer.

    The OneVision and Qwen2-VL processor classes insist on a video processor, which needs torchvision (not
    installed here); the subclass only skips that argument check, everything else is the real class.
    """
    import transformers
    from transformers import AutoImageProcessor, AutoTokenizer

    names = {"llava_onevision": "LlavaOnevisionProcessor", "llava_next": "LlavaNextProcessor",
             "qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor", "llava": "LlavaProcessor",
             "mllama": "MllamaProcessor"}
    base = getattr(transformers, names[model_type])

    class NoVideo(base):  # type: ignore[misc, valid-type]
        def check_argument_for_proper_class(self, name: str, arg: Any) -> Any:
            if arg is None:
                return None
            return super().check_argument_for_proper_class(name, arg)

    ip = AutoImageProcessor.from_pretrained(directory, local_files_only=True, backend="pil")
    tok = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    kwargs: dict[str, Any] = {}
    if model_type == "llava_onevision":
        kwargs = {"num_image_tokens": (TILE // PATCH) ** 2, "vision_feature_select_strategy": "full"}
    elif model_type == "llava_next":
        kwargs = {"patch_size": PATCH, "vision_feature_select_strategy": "default", "num_additional_image_tokens": 1}
    return NoVideo(image_processor=ip, tokenizer=tok, chat_template=tok.chat_template, **kwargs)
