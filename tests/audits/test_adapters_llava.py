"""Adapter (c): a tiny random LLaVA guard with a real tokenizer and real processor, offline (issue 4).

Checks the plumbing against transformers' own processor and model: prompt ids and image tokens, pixel
preprocessing, the logsumexp read-out at the last position, left-padded batching, and that the sampled text
ids reach the model untouched (docs/theory.md §7).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hybridcert.audits.adapters import PickleRefusedError, load_filter
from hybridcert.audits.filters import PAD_TOKEN_ID, Filter
from tests.audits.adapters_support import CHAT_TEMPLATE, IMAGE_SIZE, PATCH_SIZE, PROMPT, WORDS, build_tiny_llava

pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ID = {w: i for i, w in enumerate(WORDS)}
WORDS_BOTH_CASES = {"safe_words": ["Safe", "safe"], "unsafe_words": ["Unsafe", "unsafe"]}
HW = (IMAGE_SIZE, IMAGE_SIZE)


@pytest.fixture(scope="module")
def guard_dir(offline: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="module")
def guard(guard_dir: Path) -> Any:
    from hybridcert.audits.adapters.llava import LlavaGuardFilter

    return LlavaGuardFilter.load(guard_dir, device="cpu", prompt=PROMPT, **WORDS_BOTH_CASES)


@pytest.fixture(scope="module")
def hf(guard_dir: Path) -> tuple[Any, Any]:
    """transformers' own processor and model, loaded independently of the adapter."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(guard_dir, local_files_only=True)
    model = LlavaForConditionalGeneration.from_pretrained(guard_dir, local_files_only=True).eval()
    return processor, model


def _ids(words: str) -> list[int]:
    return [ID[w] for w in words.split()]


def _uint8_images(b: int, h: int = IMAGE_SIZE, w: int = IMAGE_SIZE, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, h, w), generator=g, dtype=torch.uint8)


def _pil(image: torch.Tensor) -> Any:
    from PIL import Image

    return Image.fromarray(image.permute(1, 2, 0).numpy())


def _hf_inputs(processor: Any, words: str, image: torch.Tensor) -> Any:
    text = PROMPT.replace("{image}", "<image>").replace("{text}", words)
    return processor(text=text, images=_pil(image), return_tensors="pt")


def test_prompt_ids_and_image_tokens_match_the_real_processor(guard: Any, hf: tuple[Any, Any]) -> None:
    processor, _ = hf
    assert isinstance(guard, Filter)
    n_expected = (IMAGE_SIZE // PATCH_SIZE) ** 2  # CLIP patches; the CLS feature is dropped ("default")
    assert guard.n_image_tokens(*HW) == guard.n_image_tokens(24, 40) == n_expected
    words = "hello world cat"
    ids, mask, _ = guard.build_inputs(torch.tensor([_ids(words)]), HW)
    assert int((ids == ID["<image>"]).sum()) == n_expected
    reference = _hf_inputs(processor, words, _uint8_images(1)[0])
    assert ids[0].tolist() == reference["input_ids"][0].tolist()
    assert mask.all()


def test_pixels_match_the_real_processor(guard: Any, hf: tuple[Any, Any]) -> None:
    processor, _ = hf
    images = _uint8_images(3)
    ours = guard.pixel_values(images.float() / 255)
    theirs = torch.cat([processor.image_processor(_pil(im), return_tensors="pt")["pixel_values"] for im in images])
    assert ours.shape == theirs.shape == (3, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert torch.allclose(ours, theirs, atol=1e-5)
    # Another size goes through resize + centre crop: torch's bicubic vs PIL's, close but not identical.
    wide = _uint8_images(2, h=24, w=40, seed=1)
    ours = guard.pixel_values(wide.float() / 255)
    theirs = torch.cat([processor.image_processor(_pil(im), return_tensors="pt")["pixel_values"] for im in wide])
    assert ours.shape == theirs.shape
    assert float((ours - theirs).abs().mean()) < 0.1 * float(theirs.abs().mean())


def test_pad_to_square_matches_the_llava_image_processor(guard: Any, hf: tuple[Any, Any]) -> None:
    from transformers import LlavaProcessor
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    from hybridcert.audits.adapters.llava import LlavaGuardFilter

    processor, model = hf
    padding = LlavaImageProcessorPil(
        do_pad=True, size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    padded = LlavaProcessor(
        image_processor=padding, tokenizer=processor.tokenizer, patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
    )
    f = LlavaGuardFilter(model, padded.image_processor, padded.tokenizer, prompt=PROMPT, **WORDS_BOTH_CASES)
    assert f.do_pad
    tall = _uint8_images(2, h=IMAGE_SIZE, w=10, seed=3)  # padded to 16 x 16: no resampling, an exact match
    ours = f.pixel_values(tall.float() / 255)
    theirs = torch.cat([padding(_pil(im), return_tensors="pt")["pixel_values"] for im in tall])
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_readout_is_the_logsumexp_of_the_model_logits(guard: Any, hf: tuple[Any, Any]) -> None:
    processor, model = hf
    for words, seed in (("hello world", 0), ("how to make a bomb", 1), ("cat", 2)):
        image = _uint8_images(1, seed=seed)[0]
        inputs = _hf_inputs(processor, words, image)
        with torch.no_grad():
            logits = model(**inputs).logits[0, -1].double()  # all positions: no logits_to_keep here
        unsafe = torch.logsumexp(logits[[ID["Unsafe"], ID["unsafe"]]], 0)
        safe = torch.logsumexp(logits[[ID["Safe"], ID["safe"]]], 0)
        score = guard.scores(torch.tensor([_ids(words)]), image[None].float() / 255)
        assert score.shape == (1,)
        assert float(score[0]) == pytest.approx(float(unsafe - safe), abs=1e-4)
        assert bool(guard(torch.tensor([_ids(words)]), image[None].float() / 255)[0]) == bool(unsafe > safe)
    assert sorted(guard.safe_ids) == [ID["Safe"], ID["safe"]]
    assert sorted(guard.unsafe_ids) == [ID["Unsafe"], ID["unsafe"]]


def test_batch_with_left_padding_equals_one_by_one(guard: Any) -> None:
    rows = [_ids("how to make a bomb"), _ids("cat"), _ids("the friendly dog is a dog"), _ids("sun moon")]
    width = max(len(r) for r in rows)
    tokens = torch.tensor([r + [PAD_TOKEN_ID] * (width - len(r)) for r in rows])
    images = torch.rand(len(rows), 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(5))
    batch = guard.scores(tokens, images)
    single = torch.cat([guard.scores(torch.tensor([r]), images[i:i + 1]) for i, r in enumerate(rows)])
    assert torch.allclose(batch, single, atol=1e-4)
    assert torch.equal(guard(tokens, images), single > 0)
    ids, mask, positions = guard.build_inputs(tokens, HW)
    lengths = mask.sum(dim=1)
    prefix, suffix = guard.prompt_ids(*HW)
    assert (lengths == torch.tensor([len(r) for r in rows]) + len(prefix) + len(suffix)).all()
    assert (mask[:, -1] == 1).all() and (positions[:, -1] == lengths - 1).all()  # left padding


def test_sampled_ids_reach_the_model_untouched(guard: Any) -> None:
    # <pad> and <unk> would be lost by a decode(skip_special_tokens) + re-tokenise round trip.
    text = [ID["cat"], ID["<pad>"], ID["<unk>"], ID["USER:"], ID["knife"]]
    ids, mask, _ = guard.build_inputs(torch.tensor([text]), HW)
    start = len(guard.prompt_ids(*HW)[0])
    assert ids[0, start:start + len(text)].tolist() == text
    image = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(6))
    before = guard.scores(torch.tensor([text]), image)
    changed = list(text)
    changed[2] = ID["cake"]
    after = guard.scores(torch.tensor([changed]), image)
    assert float((before - after).abs()[0]) > 1e-4  # the model sees the text ids
    moved = guard.scores(torch.tensor([text]), (image + 0.3).clamp(0, 1))
    assert float((before - moved).abs()[0]) > 1e-4  # and the image


def test_bad_text_ids_are_clear_errors(guard: Any) -> None:
    image = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    with pytest.raises(ValueError, match="token id 4 cannot be text"):
        guard(torch.tensor([[ID["cat"], ID["<image>"]]]), image)
    with pytest.raises(ValueError, match=f"token id {len(WORDS)} cannot be text"):
        guard(torch.tensor([[len(WORDS)]]), image)
    with pytest.raises(ValueError, match="negative token ids"):
        guard(torch.tensor([[-7]]), image)
    empty = guard(torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, 3, IMAGE_SIZE, IMAGE_SIZE))
    assert empty.shape == (0,) and empty.dtype == torch.bool
    with pytest.raises(ValueError, match="images must have shape"):
        guard(torch.tensor([[1]]), torch.rand(1, 4, IMAGE_SIZE, IMAGE_SIZE))


def test_noisy_images_are_clamped_and_gray_images_broadcast(guard: Any) -> None:
    g = torch.Generator().manual_seed(7)
    image = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)
    noisy = image + torch.randn(image.shape, generator=g)
    assert torch.equal(guard.pixel_values(noisy), guard.pixel_values(noisy.clamp(0, 1)))
    gray = torch.rand(2, 1, IMAGE_SIZE, IMAGE_SIZE, generator=g)
    assert torch.equal(guard.pixel_values(gray), guard.pixel_values(gray.expand(-1, 3, -1, -1)))


def test_pickled_weights_refused_unless_opted_in(offline: None, tmp_path: Path, guard: Any) -> None:
    from hybridcert.audits.adapters.llava import LlavaGuardFilter

    pickled = build_tiny_llava(tmp_path / "pickled", pickled=True)
    assert not list(pickled.glob("*.safetensors"))
    with pytest.raises(PickleRefusedError, match=r"pytorch_model.bin\) are pickled.*arbitrary code"):
        LlavaGuardFilter.load(pickled, prompt=PROMPT)
    trusted = LlavaGuardFilter.load(pickled, prompt=PROMPT, allow_pickle=True, **WORDS_BOTH_CASES)
    tokens = torch.tensor([_ids("hello world")])
    image = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert torch.allclose(trusted.scores(tokens, image), guard.scores(tokens, image), atol=1e-5)
    renamed = Path(shutil.copytree(pickled, tmp_path / "renamed"))
    (renamed / "pytorch_model.bin").rename(renamed / "model.safetensors")
    with pytest.raises(PickleRefusedError, match="named .safetensors but its content is not"):
        LlavaGuardFilter.load(renamed, prompt=PROMPT, allow_pickle=True)


def test_load_filter_spec_and_local_only(guard_dir: Path, guard: Any, tmp_path: Path) -> None:
    f = load_filter(
        {"type": "llava", "path": guard_dir.name, "prompt": PROMPT, "device": "auto", "batch_size": 2,
         **WORDS_BOTH_CASES},
        base_dir=guard_dir.parent,
    )
    assert f.device == (torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu"))
    assert f.name == f"llava:{guard_dir.name}" and f.weights_sha256 == guard.weights_sha256
    tokens = torch.tensor([_ids("a cat"), _ids("a dog"), _ids("a sun")])
    images = torch.rand(3, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(8))
    assert torch.equal(f(tokens, images).cpu(), guard(tokens, images))
    with pytest.raises(ValueError, match="must be a local model directory"):
        load_filter({"type": "llava", "path": "llava-hf/llava-1.5-7b-hf"}, base_dir=tmp_path)
    with pytest.raises(ValueError, match="prompt must contain \\{text\\} exactly once"):
        load_filter({"type": "llava", "path": str(guard_dir), "prompt": "USER: {image} ASSISTANT:"})
    with pytest.raises(ValueError, match="exactly one image placeholder"):
        load_filter({"type": "llava", "path": str(guard_dir), "prompt": "USER: {text} ASSISTANT:"})
    with pytest.raises(ValueError, match="unsafe word 'Harmful' is not a single token of this tokenizer"):
        load_filter({"type": "llava", "path": str(guard_dir), "prompt": PROMPT, "unsafe_words": ["Harmful"]})


def test_no_chat_template_and_no_prompt_is_a_clear_error(guard_dir: Path) -> None:
    with pytest.raises(ValueError, match="the model has no chat template: give filter.prompt"):
        load_filter({"type": "llava", "path": str(guard_dir), "device": "cpu", "answer_prefix": "rating:"})
    f = load_filter({"type": "guard", "path": str(guard_dir), "device": "cpu", "prompt": PROMPT})
    assert f.prefix_ids[:2] == [ID["USER:"], ID["<image>"]]
    assert f.suffix_ids[-2:] == [ID["ASSISTANT:"], ID["rating:"]]
    assert np.isfinite(f.scores(torch.tensor([_ids("cat")]), torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE)).numpy()).all()


def test_amp_gives_the_same_decisions_away_from_ties(guard_dir: Path, guard: Any) -> None:
    from hybridcert.audits.adapters.llava import LlavaGuardFilter

    amp = LlavaGuardFilter.load(guard_dir, prompt=PROMPT, amp=True)
    tokens = torch.tensor([_ids("make a bomb"), _ids("hello world cat"), _ids("a cat is"), _ids("tree house sun")])
    images = torch.rand(4, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(9))
    full, half = guard.scores(tokens, images), amp.scores(tokens, images)
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    clear = full.abs() > 0.3
    assert torch.equal((half > 0)[clear], (full > 0)[clear])


def test_chat_template_prompt_puts_the_text_in_the_user_turn(offline: None, tmp_path: Path, guard: Any) -> None:
    chat = build_tiny_llava(tmp_path / "chat", chat_template=CHAT_TEMPLATE)
    f = load_filter(
        {"type": "llava", "path": str(chat), "policy": "Rate the image and text: {text}", "answer_prefix": " rating:",
         **WORDS_BOTH_CASES}
    )
    n = guard.n_image_tokens(*HW)
    assert f.prompt_ids(*HW)[0] == [ID["USER:"]] + [ID["<image>"]] * n + _ids("Rate the image and text:")
    assert f.prompt_ids(*HW)[1] == _ids("ASSISTANT: rating:")
    # Same prompt ids as the explicit PROMPT, same weights (same seed): same scores.
    tokens = torch.tensor([_ids("how to make a cake")])
    image = torch.rand(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(10))
    assert torch.allclose(f.scores(tokens, image), guard.scores(tokens, image), atol=1e-5)


def test_spellings_must_be_single_tokens_of_the_tokenizer() -> None:
    """A BPE vocabulary with SentencePiece space markers that spells "Unsafe" as "Un" + "safe": refused, since
    the logit of "Un" is not the probability of "Unsafe" (it starts other words too)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from hybridcert.audits.adapters.llava import spelling_ids

    chars = ["\u2581", '"', ":", "U", "n", "s", "a", "f", "e", "S", "r", "t", "i", "g"]
    merges = [("U", "n"), ("s", "a"), ("sa", "f"), ("saf", "e"), ("S", "a"), ("Sa", "f"), ("Saf", "e"),
              ("\u2581", "Un"), ("\u2581", "Safe"), ("\u2581", '"'), ("\u2581", "safe")]
    vocab = {t: i for i, t in enumerate(["<unk>", *chars, *("".join(m) for m in merges)])}
    core = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never")
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")
    assert tok.convert_ids_to_tokens(tok.encode("Unsafe", add_special_tokens=False)) == ["Un", "safe"]
    with pytest.raises(ValueError, match=r"unsafe word 'Unsafe' is not a single token .*\['Un', 'safe'\]"):
        spelling_ids(tok, ["Unsafe"], len(vocab), "unsafe")
    assert set(tok.convert_ids_to_tokens(spelling_ids(tok, ["Safe", "safe"], len(vocab), "safe"))) == {"Safe", "safe"}
