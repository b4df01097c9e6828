"""Test support for the filter adapters: tiny real modules, and a tiny LLaVA guard built offline.

Nothing is downloaded: the LLaVA tokenizer is a WordLevel vocabulary made with the ``tokenizers`` library, the
image processor is transformers' CLIP image processor, the model a LLaVA (tiny CLIP vision tower + tiny Llama).
"""

from __future__ import annotations

from pathlib import Path

import torch


class TinyFilterNet(torch.nn.Module):
    """Token embedding + image pooling -> 2 logits. Records what it received (no re-tokenisation check)."""

    def __init__(self, vocab: int = 50, hidden: int = 8, channels: int = 3) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, hidden)
        self.conv = torch.nn.Conv2d(channels, hidden, kernel_size=3, padding=1)
        self.head = torch.nn.Linear(2 * hidden, 2)
        self.last_tokens: torch.Tensor | None = None
        self.last_dtype: torch.dtype | None = None

    def forward(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        self.last_tokens = tokens.clone()
        text = self.embed(tokens).mean(dim=1)
        image = self.conv(images).mean(dim=(2, 3))
        out = self.head(torch.cat([text, image.to(text.dtype)], dim=1))
        self.last_dtype = out.dtype
        return out


class TinyScoreNet(torch.nn.Module):
    """One score per sample (decision: score > 0)."""

    def __init__(self, vocab: int = 50) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, 1)
        self.scale = torch.nn.Parameter(torch.tensor(3.0))

    def forward(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return self.embed(tokens).sum(dim=(1, 2)) + self.scale * (images.mean(dim=(1, 2, 3)) - 0.5)


class ScriptableNet(torch.nn.Module):
    """TinyFilterNet without the recording attributes, so TorchScript and torch.export accept it."""

    def __init__(self, vocab: int = 50, hidden: int = 8) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, hidden)
        self.conv = torch.nn.Conv2d(3, hidden, kernel_size=3, padding=1)
        self.head = torch.nn.Linear(2 * hidden, 2)

    def forward(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        text = self.embed(tokens).mean(dim=1)
        image = self.conv(images).mean(dim=(2, 3))
        return self.head(torch.cat([text, image], dim=1))

WORDS = [
    "<pad>", "<unk>", "<s>", "</s>", "<image>", "USER:", "ASSISTANT:", "Safe", "Unsafe", "safe", "unsafe", "Rate",
    "the", "image", "and", "text:", "rating:", "hello", "world", "cat", "dog", "knife", "cake", "bomb", "a", "is",
    "how", "to", "make", "friendly", "tree", "house", "sun", "moon",
]
IMAGE_SIZE = 16
PATCH_SIZE = 4
CROP = IMAGE_SIZE
PROMPT = "USER: {image} Rate the image and text: {text} ASSISTANT: rating:"


CHAT_TEMPLATE = (
    "{% for m in messages %}USER: {% for c in m['content'] %}{% if c['type'] == 'image' %}<image> "
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endfor %}{% if add_generation_prompt %} ASSISTANT:{% endif %}"
)


def build_tiny_llava(directory: Path, seed: int = 0, pickled: bool = False, chat_template: str | None = None) -> Path:
    """Save a tiny LLaVA guard (model, tokenizer, processor) into ``directory`` and return it."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    vocab = {w: i for i, w in enumerate(WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
    )
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": CROP, "width": CROP},
        image_mean=[0.48, 0.45, 0.40], image_std=[0.27, 0.26, 0.28],
    )
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default", num_additional_image_tokens=1, chat_template=chat_template,
    )
    vision = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, projection_dim=16,
    )
    text = LlamaConfig(
        vocab_size=len(WORDS), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, pad_token_id=0, bos_token_id=2, eos_token_id=3,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=vocab["<image>"],
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2, vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    # Random init gives near-uniform next-token logits; scale the output head so decisions are not ties.
    with torch.no_grad():
        model.lm_head.weight.mul_(20.0)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    if pickled:  # the old transformers layout: a pickled state dict instead of safetensors
        from safetensors.torch import load_file

        state = load_file(str(directory / "model.safetensors"))
        (directory / "model.safetensors").unlink()
        torch.save(state, directory / "pytorch_model.bin")
    return directory
