"""The vision-language guard adapter, family by family, against transformers' own processors and models.

Per family (tiny random model, real model class, real PIL image processor class, offline): the prompt ids
and the image tensors equal the processor's output (exactly where nothing is resampled, within the
processor's own 8-bit resampling rounding where it is); the score equals a reference forward of the
processor's full output within 1e-4; a batch equals one-by-one; the text ids reach the model. One family
(llava_onevision, the paper's guard) runs a whole audit and ``verify --results`` proves it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from hybridcert.audits.adapters import PickleRefusedError, load_filter
from hybridcert.audits.filters import PAD_TOKEN_ID, Filter
from tests.audits import guards_support as gs

pytest.importorskip("transformers")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

OPTIONS = {"policy": gs.POLICY, "answer_prefix": gs.ANSWER, "safe_words": ["Safe", "safe"],
           "unsafe_words": ["Unsafe", "unsafe"]}
BUILDERS: dict[str, Callable[[Path], Path]] = {
    "llava_onevision": gs.build_tiny_onevision,
    "llava_next": gs.build_tiny_next,
    "qwen2_vl": lambda d: gs.build_tiny_qwen(d, "2"),
    "qwen2_5_vl": lambda d: gs.build_tiny_qwen(d, "2.5"),
    "mllama": gs.build_tiny_mllama,
}
# Image sizes (H, W) that the processor does not resample anywhere, per family
EXACT = {"llava_onevision": [(16, 16)], "llava_next": [(16, 16)], "qwen2_vl": [(16, 16), (32, 24)],
         "qwen2_5_vl": [(16, 24)], "mllama": [(16, 16), (32, 32), (16, 48)]}
FAMILIES = list(BUILDERS)


_CACHE: dict[str, tuple[Path, Any, Any]] = {}


@pytest.fixture(scope="module")
def family(request: pytest.FixtureRequest, offline: None, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(model_type, directory, adapter, reference processor), built once per family."""
    name = request.param
    if name not in _CACHE:
        directory = BUILDERS[name](tmp_path_factory.mktemp(name))
        f = load_filter({"type": "guard", "path": str(directory), "device": "cpu", **OPTIONS})
        _CACHE[name] = (directory, f, gs.reference_processor(directory, name))
    return (name, *_CACHE[name])


def _uint8(h: int, w: int, seed: int = 0, b: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (b, 3, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def _pil(image: torch.Tensor) -> Any:
    from PIL import Image

    return Image.fromarray(image.permute(1, 2, 0).numpy())


def _ids(words: str) -> list[int]:
    return [gs.ID[w] for w in words.split()]


def _reference(processor: Any, words: str, image: torch.Tensor) -> Any:
    conversation = [{"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": gs.POLICY.replace("{text}", words)},
    ]}]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False) + gs.ANSWER
    return processor(text=text, images=_pil(image), return_tensors="pt")


def _margin(logits: torch.Tensor) -> float:
    lg = logits.double()
    return float(torch.logsumexp(lg[[gs.ID["Unsafe"], gs.ID["unsafe"]]], 0) - torch.logsumexp(
        lg[[gs.ID["Safe"], gs.ID["safe"]]], 0))


def _rounding(f: Any) -> float:
    """The processor's 8-bit resampling rounding in normalised units (about 1/255 per pixel, / the std)."""
    return 1.1 / 255 / float(f.normalize.std.min())


@pytest.mark.parametrize("family", FAMILIES, indirect=True)
def test_prompt_ids_and_image_tensors_equal_the_processor(family: Any) -> None:
    name, _, f, processor = family
    assert isinstance(f, Filter)
    sizes = [*EXACT[name], (32, 32), (24, 40), (20, 28)]
    for k, (h, w) in enumerate(sizes):
        image = _uint8(h, w, seed=k)[0]
        words = "how to make a bomb"
        ref = _reference(processor, words, image)
        ours = f.model_inputs(torch.tensor([_ids(words)]), image[None].float() / 255)
        assert ours["input_ids"].tolist() == ref["input_ids"].tolist(), (name, h, w)
        assert ours["attention_mask"].tolist() == ref["attention_mask"].tolist()
        shared = set(ours) & set(ref)
        assert shared >= {"pixel_values"} and set(ref) - set(ours) <= {"token_type_ids"}, set(ref) - set(ours)
        for key in shared - {"input_ids", "attention_mask", "pixel_values"}:
            assert torch.equal(ours[key].cpu(), ref[key]), key  # image sizes, grid, batch_num_images, mm types
        pv, rv = ours["pixel_values"], ref["pixel_values"]
        assert pv.shape == rv.shape and pv.dtype == torch.float32
        if (h, w) in EXACT[name]:
            assert torch.allclose(pv, rv, atol=1e-5), (name, h, w)
        else:
            assert float((pv - rv).abs().max()) <= _rounding(f), (name, h, w)
        if name in ("llava_onevision", "llava_next") and (h, w) == (32, 32):
            # anyres: the tiles of a 32 x 32 image are cut without resampling; only the base tile is resized
            assert torch.allclose(pv[:, 1:], rv[:, 1:], atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES, indirect=True)
def test_scores_equal_a_reference_forward_of_the_processor_output(family: Any) -> None:
    name, _, f, processor = family
    for k, (h, w) in enumerate(EXACT[name] * 2):
        words = ["hello world cat", "how to make a bomb"][k % 2]
        image = _uint8(h, w, seed=10 + k)[0]
        ref = _reference(processor, words, image)
        with torch.no_grad():
            expected = _margin(f.model(**ref).logits[0, -1])  # all positions: no logits_to_keep here
        score = f.scores(torch.tensor([_ids(words)]), image[None].float() / 255)
        assert score.shape == (1,) and score.dtype == torch.float32
        assert float(score[0]) == pytest.approx(expected, abs=1e-4)
        assert bool(f(torch.tensor([_ids(words)]), image[None].float() / 255)[0]) == (expected > 0)
    # A size the processor resamples: the same forward on the processor's ids with our pixel values
    image = _uint8(24, 40, seed=3)[0]
    ref = dict(_reference(processor, "cat", image))
    ours = f.model_inputs(torch.tensor([_ids("cat")]), image[None].float() / 255)
    ref["pixel_values"] = ours["pixel_values"]
    with torch.no_grad():
        expected = _margin(f.model(**ref).logits[0, -1])
    score = f.scores(torch.tensor([_ids("cat")]), image[None].float() / 255)
    assert float(score[0]) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("family", FAMILIES, indirect=True)
def test_batch_with_left_padding_equals_one_by_one(family: Any) -> None:
    _, _, f, _ = family
    rows = [_ids("how to make a bomb"), _ids("cat"), _ids("the friendly dog is a dog"), _ids("sun moon")]
    width = max(len(r) for r in rows)
    tokens = torch.tensor([r + [PAD_TOKEN_ID] * (width - len(r)) for r in rows])
    images = torch.rand(len(rows), 3, 24, 40, generator=torch.Generator().manual_seed(5))
    batch = f.scores(tokens, images)
    single = torch.cat([f.scores(torch.tensor([r]), images[i:i + 1]) for i, r in enumerate(rows)])
    assert torch.allclose(batch, single, atol=1e-4)
    assert torch.equal(f(tokens, images), single > 0)
    ids, mask, positions = f.build_inputs(tokens, (24, 40))
    prefix, suffix = f.prompt_ids(24, 40)
    lengths = mask.sum(dim=1)
    assert (lengths == torch.tensor([len(r) for r in rows]) + len(prefix) + len(suffix)).all()
    assert (mask[:, -1] == 1).all() and (positions[:, -1] == lengths - 1).all()  # left padding


@pytest.mark.parametrize("family", FAMILIES, indirect=True)
def test_the_sampled_ids_reach_the_model_and_change_the_score(family: Any) -> None:
    _, _, f, _ = family
    # <pad> and <unk> would be lost by a decode(skip_special_tokens) + re-tokenise round trip
    text = [gs.ID["cat"], gs.ID["<pad>"], gs.ID["<unk>"], gs.ID["USER:"], gs.ID["knife"]]
    ids, _, _ = f.build_inputs(torch.tensor([text]), (16, 16))
    start = len(f.prompt_ids(16, 16)[0])
    assert ids[0, start:start + len(text)].tolist() == text
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    before = f.scores(torch.tensor([text]), image)
    changed = list(text)
    changed[2] = gs.ID["cake"]
    assert float((before - f.scores(torch.tensor([changed]), image)).abs()[0]) > 1e-4
    moved = f.scores(torch.tensor([text]), (image + 0.3).clamp(0, 1))
    assert float((before - moved).abs()[0]) > 1e-4
    # the Python API of the acceptance checks
    api = f.scores(f.encode_text("cat knife")[None], image)
    assert api.shape == (1,) and torch.isfinite(api).all()


@pytest.mark.parametrize("family", ["llava_onevision"], indirect=True)
def test_noisy_images_are_clamped_gray_images_broadcast_and_gradients_flow(family: Any) -> None:
    _, _, f, _ = family
    g = torch.Generator().manual_seed(7)
    image = torch.rand(2, 3, 24, 40, generator=g)
    noisy = image + torch.randn(image.shape, generator=g)
    assert torch.equal(f.pixel_values(noisy), f.pixel_values(noisy.clamp(0, 1)))
    gray = torch.rand(2, 1, 16, 16, generator=g)
    assert torch.equal(f.pixel_values(gray), f.pixel_values(gray.expand(-1, 3, -1, -1)))
    # attacks: run the model from input embeddings, with gradients to the image and the embeddings
    x = image[:1].clone().requires_grad_(True)
    inputs = f.model_inputs(torch.tensor([_ids("make a bomb")]), x)
    embeds = f.embed(inputs.pop("input_ids")).detach().requires_grad_(True)
    margin = f.margin(f.logits(**inputs, inputs_embeds=embeds))
    score = f.scores(torch.tensor([_ids("make a bomb")]), image[:1])
    assert float(margin[0]) == pytest.approx(float(score[0]), abs=1e-4)
    margin.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert embeds.grad is not None and float(embeds.grad.abs().sum()) > 0


@pytest.mark.parametrize("family", ["llava_onevision"], indirect=True)
def test_bad_inputs_are_one_line_errors(family: Any, tmp_path: Path) -> None:
    import shutil

    _, directory, f, _ = family
    image = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="cannot be text"):
        f(torch.tensor([[gs.ID["cat"], gs.ID["<image>"]]]), image)
    with pytest.raises(ValueError, match="negative token ids"):
        f(torch.tensor([[-7]]), image)
    empty = f(torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, 3, 16, 16))
    assert empty.shape == (0,) and empty.dtype == torch.bool

    def copy(name: str, drop: tuple[str, ...] = ()) -> Path:
        out = Path(shutil.copytree(directory, tmp_path / name))
        for d in drop:
            (out / d).unlink()
        return out

    cases: list[tuple[dict[str, Any], str]] = [
        ({"path": str(copy("no-weights", ("model.safetensors",)))}, "no model weights"),
        ({"path": str(copy("no-processor", ("preprocessor_config.json",)))}, "no image processor"),
        ({"path": str(copy("no-template", ("chat_template.jinja",)))}, "no chat template"),
        ({"path": str(directory), "unsafe_words": ["Harmful"]}, "unsafe word 'Harmful' is not a single token"),
        ({"path": str(directory), "safe_words": ["Safe cat"]}, "safe word 'Safe cat' is not a single token"),
        ({"path": str(directory), "safe_words": ["Safe"], "unsafe_words": ["Safe"]}, "both safe and unsafe"),
        ({"path": "llava-hf/llava-onevision-qwen2-7b-ov-hf"}, "must be a local model directory"),
        ({"path": str(directory), "prompt": "USER: {text}"}, "exactly one image placeholder"),
    ]
    text_only = copy("text-only")
    cfg = json.loads((text_only / "config.json").read_text())
    (text_only / "config.json").write_text(json.dumps({**cfg["text_config"], "model_type": "qwen2"}))
    cases.append(({"path": str(text_only)}, "'qwen2' .* is a text-only model; supported model types: llava, "))
    for spec, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            load_filter({"type": "guard", "device": "cpu", **OPTIONS, **spec}, base_dir=tmp_path)
        assert "\n" not in str(info.value)


def test_images_smaller_than_the_processor_accepts(offline: None, tmp_path: Path) -> None:
    directory = gs.build_tiny_qwen(tmp_path / "qwen", "2")
    f = load_filter({"type": "guard", "path": str(directory), "device": "cpu", **OPTIONS})
    with pytest.raises(ValueError, match="image of size 1x250 is not accepted by the Qwen2-VL processor: absolute"):
        f.scores(torch.tensor([_ids("cat")]), torch.rand(1, 3, 1, 250))
    assert torch.isfinite(f.scores(torch.tensor([_ids("cat")]), torch.rand(1, 3, 2, 40))).all()  # it upsamples


def test_pickled_weights_refused_unless_opted_in(offline: None, tmp_path: Path) -> None:
    directory = gs.build_tiny_onevision(tmp_path / "pickled", pickled=True)
    spec = {"type": "guard", "path": str(directory), "device": "cpu", **OPTIONS}
    with pytest.raises(PickleRefusedError, match=r"pytorch_model.bin\) are pickled.*arbitrary code"):
        load_filter(spec)
    trusted = load_filter({**spec, "allow_pickle": True})
    assert torch.isfinite(trusted.scores(torch.tensor([_ids("cat")]), torch.rand(1, 3, 16, 16))).all()


def test_presets_set_the_prompt_and_the_spellings(offline: None, tmp_path: Path) -> None:
    from hybridcert.audits.adapters.guard import LLAMAGUARD3_VISION_PROMPT, PRESETS

    directory = gs.build_tiny_onevision(tmp_path / "ov")
    f = load_filter({"type": "guard", "path": str(directory), "device": "cpu", "preset": "llavaguard",
                     "answer_prefix": gs.ANSWER})
    assert f.safe_ids == [gs.ID["Safe"]] and f.unsafe_ids == [gs.ID["Unsafe"]]
    assert f.prefix_ids[:3] == [gs.ID["<|im_start|>"], gs.ID["user"], gs.ID["<image>"]]
    g = load_filter({"type": "guard", "path": str(directory), "device": "cpu", "preset": "llamaguard3-vision"})
    assert g.safe_ids == [gs.ID["safe"]] and g.unsafe_ids == [gs.ID["unsafe"]]
    assert PRESETS["llamaguard3-vision"]["prompt"] == LLAMAGUARD3_VISION_PROMPT
    assert g.prefix_ids.count(gs.ID["<image>"]) == 1
    with pytest.raises(ValueError, match="preset"):
        load_filter({"type": "guard", "path": str(directory), "preset": "nope"})


AUDIT_WORDS = ["how to make a bomb", "the friendly dog", "a cat is a cat"]


def _write_audit(tmp_path: Path, family: str = "llava_onevision") -> Path:
    """An audit.toml over a tiny guard of ``family`` and 3 inputs (16 x 16 images) in ``tmp_path``."""
    BUILDERS[family](tmp_path / "guard")
    rng = np.random.default_rng(0)
    lines = []
    for i, words in enumerate(AUDIT_WORDS):
        np.save(tmp_path / f"img{i}.npy", rng.random((3, 16, 16), dtype=np.float32))
        lines.append(json.dumps({"id": f"x{i}", "tokens": _ids(words), "image": f"img{i}.npy", "label": i % 2}))
    (tmp_path / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    alphabet = [gs.ID[w] for w in ("hello", "world", "cat", "dog", "knife", "cake", "bomb", "a", "is", "how", "to",
                                   "make", "friendly", "tree", "house", "sun", "moon", "the")]
    config = f"""seed = 7
[noise]
kernel = "uniform-other"
beta = 0.25
sigma = 0.25
[tokens]
alphabet = {sorted(alphabet)}
model_vocab_size = {len(gs.WORDS)}
[certify]
tau = 0.5
alpha = 0.01
n0 = 8
n = 24
max_budget = 2
chunk_size = 12
[dataset]
manifest = "manifest.jsonl"
image_shape = [3, 16, 16]
[filter]
type = "guard"
path = "guard"
policy = "{gs.POLICY}"
answer_prefix = "{gs.ANSWER}"
safe_words = ["Safe", "safe"]
unsafe_words = ["Unsafe", "unsafe"]
[run]
device = "cpu"
batch_size = 12
"""
    (tmp_path / "audit.toml").write_text(config)
    return tmp_path / "audit.toml"


OTHERS = [pytest.param(f, marks=pytest.mark.slow) for f in BUILDERS if f != "llava_onevision"]


@pytest.mark.parametrize("family", ["llava_onevision", *OTHERS])
def test_an_audit_of_the_guard_runs_and_verify_proves_it(family: str, offline: None, tmp_path: Path) -> None:
    """The OneVision guard (the paper's) in the default suite, the other families in the slow one."""
    from typer.testing import CliRunner

    from hybridcert.audits.checkpoint import RESULTS_NAME
    from hybridcert.cli import app

    config = _write_audit(tmp_path, family)
    runner = CliRunner()
    result = runner.invoke(app, ["audit", "--config", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.stdout + result.stderr
    res = json.loads((tmp_path / "out" / RESULTS_NAME).read_text())
    assert res["model"]["type"] == "guard" and len(res["inputs"]) == 3
    verified = runner.invoke(app, ["verify", "--results", str(tmp_path / "out" / RESULTS_NAME)])
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    assert "0 not proved" in verified.stdout


def test_probe_reports_prompt_length_clean_score_noisy_rate_and_speed(offline: None, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hybridcert.cli import app

    config = _write_audit(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["probe", "--config", str(config), "--inputs", "2", "--json"])
    assert result.exit_code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    f = load_filter({"type": "guard", "path": str(tmp_path / "guard"), "device": "cpu", **OPTIONS})
    prefix, suffix = f.prompt_ids(16, 16)
    assert [p["id"] for p in report["inputs"]] == ["x0", "x1"]
    for p, words, i in zip(report["inputs"], AUDIT_WORDS, range(2), strict=False):
        assert p["prompt_tokens"] == len(prefix) + len(words.split()) + len(suffix)
        image = torch.from_numpy(np.load(tmp_path / f"img{i}.npy"))[None]
        score = float(f.scores(torch.tensor([_ids(words)]), image)[0])
        assert p["clean_score"] == pytest.approx(score, abs=1e-5) and p["clean_decision"] == int(score > 0)
        assert 0.0 <= p["noisy_rate"] <= 1.0 and p["noisy_samples"] == 8
    assert report["samples_per_second"] > 0 and report["peak_memory_mib"] > 0 and report["batch_size"] == 12
    assert report["largest_batch"] is None  # CPU: no out-of-memory search
    text = runner.invoke(app, ["probe", "--config", str(config), "--inputs", "1"])
    assert text.exit_code == 0 and "samples/s at batch size 12" in text.stdout
    bad = runner.invoke(app, ["probe", "--config", str(tmp_path / "missing.toml")])
    assert bad.exit_code == 2 and "config file not found" in bad.stderr


class _Limited:
    """A real filter that runs out of memory above ``limit`` samples per call (as a GPU would)."""

    device = torch.device("cpu")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.calls: list[int] = []

    def __call__(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        self.calls.append(tokens.shape[0])
        if tokens.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (test)")
        return torch.zeros(tokens.shape[0], dtype=torch.bool)


def test_the_largest_batch_search_halves_on_out_of_memory(offline: None, tmp_path: Path) -> None:
    from hybridcert.audits.config import load_spec
    from hybridcert.audits.probe import largest_batch
    from hybridcert.audits.runner import prepare
    from hybridcert.results.schema import ModelInfo

    spec = load_spec(_write_audit(tmp_path))
    for start, limit, expected in ((12, 100, 96), (1000, 100, 62), (12, 10_000, 192), (8, 0, 0)):
        filt = _Limited(limit)
        audit = prepare(spec, filt=(filt, ModelInfo(name="limited", sha256="0" * 64)))
        assert largest_batch(audit, audit.dataset.inputs[0], start) == expected
        assert all(c <= 16 * start for c in filt.calls)
