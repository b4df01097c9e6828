"""Bad input is one clear line naming the problem (exit code 2), and nothing is written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from hybridcert.audits.dataset import load_image, load_manifest
from hybridcert.cli import app

ConfigWriter = Callable[..., Path]


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stderr


def manifest(tmp_path: Path, lines: list[dict], images: dict[str, np.ndarray] | None = None) -> Path:
    (tmp_path / "img").mkdir(exist_ok=True)
    for name, arr in (images or {"ok.npy": np.zeros((1, 8, 8), np.float32)}).items():
        np.save(tmp_path / "img" / name, arr)
    path = tmp_path / "manifest.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


GOOD = {"id": "a", "tokens": [1, 2, 3], "image": "img/ok.npy", "label": 1}


def expect_error(write_config: ConfigWriter, tmp_path: Path, fragments: list[str], **updates: object) -> str:
    config = write_config(**updates)
    out = tmp_path / "out"
    code, err = cli("audit", "--config", str(config), "--out", str(out))
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
    assert not out.exists()
    return err


@pytest.mark.parametrize(
    ("line", "fragments"),
    [
        ({**GOOD, "image": "img/missing.npy"}, [":2: field image: image file not found"]),
        ({**GOOD, "image": "img/wide.npy"}, [":2: field image:", "shape [1, 8, 9]", "expected [1, 8, 8]"]),
        ({**GOOD, "tokens": [1, 99]}, [":2: field tokens: token id 99 is outside the vocabulary [0, 33)"]),
        ({**GOOD, "tokens": [1, 32]}, [":2: field tokens: token id 32 at a noised position is not in the alphabet"]),
        ({"id": "b", "text": "   ", "image": "img/ok.npy", "label": 0}, [":2: field text: empty text"]),
        ({"id": "b", "text": "seven sevn", "image": "img/ok.npy", "label": 0}, ["word 'sevn' is not in"]),
        ({**GOOD, "tokens": []}, [":2: field tokens: empty token sequence"]),
        ({**GOOD, "id": "a"}, [":2: field id: duplicate id 'a' (first on line 1)"]),
        ({**GOOD, "id": "c", "label": 2}, [":2: field label: must be 0 or 1"]),
        ({**GOOD, "id": "c", "label": 1.0}, [":2: field label: must be 0 or 1, got 1.0"]),
        ({**GOOD, "id": "c", "label": True}, [":2: field label: must be 0 or 1, got True"]),
        ({**GOOD, "id": "c", "image": "img/pickled.npy"}, [":2: field image:", "not a plain .npy"]),
        ({**GOOD, "id": "c", "image": "img/big.npy"}, [":2: field image:", "outside [0, 1]"]),
        ({"id": "c", "image": "img/ok.npy", "label": 1}, [":2: field tokens: give exactly one of"]),
        ({**GOOD, "id": "c", "colour": 1}, [":2: field colour: unknown field"]),
        ({**GOOD, "id": "c", "tokens": [1] * 70_000}, [":2: field tokens: 70000 token ids, more than the maximum"]),
    ],
)
def test_bad_manifest_lines(write_config: ConfigWriter, tmp_path: Path, line: dict, fragments: list[str]) -> None:
    images = {"ok.npy": np.zeros((1, 8, 8), np.float32), "wide.npy": np.zeros((1, 8, 9), np.float32),
              "big.npy": np.full((8, 8), 2.0, np.float32)}
    path = manifest(tmp_path, [GOOD, line], images)
    np.save(tmp_path / "img" / "pickled.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    expect_error(write_config, tmp_path, [str(path), *fragments],
                 dataset={"manifest": str(path)})


@pytest.mark.parametrize(
    ("updates", "fragments"),
    [
        ({"certify": {"alpha": 1.5}}, ["field certify.alpha:", "less than 1"]),
        ({"certify": {"alpha": 0}}, ["field certify.alpha:", "greater than 0"]),
        ({"certify": {"n": 0}}, ["field certify.n:", "greater than or equal to 1"]),
        ({"certify": {"n": 10**12}}, ["field certify.n:", "less than or equal to"]),
        ({"certify": {"n0": -1}}, ["field certify.n0:"]),
        ({"certify": {"tau": 1.0}}, ["field certify.tau:"]),
        ({"certify": {"n0": 0}}, ["field certify:", "n0 = 0 needs a fixed target_class"]),
        ({"certify": {"alfa": 0.1}}, ["field certify.alfa:", "Extra inputs are not permitted"]),
        ({"noise": {"beta": 0}}, ["field noise.beta:"]),
        ({"noise": {"sigma": -1}}, ["field noise.sigma:"]),
        ({"noise": {"kernel": "gauss"}}, ["field noise.kernel:"]),
        ({"noise": {"kernel": "absorb"}, "tokens": {"mask_id": 3}}, ["mask_id 3 must lie outside the alphabet"]),
        ({"threat_model": {"kind": "suffix-inplace"}}, ["field threat_model:", "needs span"]),
        ({"threat_model": {"kind": "suffix-append", "span": 2}}, ["pad_id is required"]),
        ({"threat_model": {"kind": "suffix-inplace", "span": 99}}, ["field tokens:", "longer than the text"]),
        ({"tokens": {"model_vocab_size": 20}}, ["field tokens:", "alphabet token ids must lie in"]),
        ({"seed": -1}, ["field seed:"]),
        ({"dataset": {"image_shape": [1, 8]}}, ["field dataset.image_shape"]),
        ({"filter": {"weights": "/nonexistent/w.safetensors"}}, ["weights file not found"]),
        ({"filter": {"class_path": "hybridcert.nope:Net"}}, ["cannot import module 'hybridcert.nope'"]),
        ({"run": {"device": "cuda:0"}} if not torch.cuda.is_available() else {"run": {"device": "tpu"}},
         ["run.device"]),
        # issue 10: strict types (TOML true is not 1, "3" is not 3, 100.0 is not an integer, no arrays for scalars)
        ({"certify": {"n": True}}, ["field certify.n: Input should be a valid integer, got true"]),
        ({"certify": {"n": 100.0}}, ["field certify.n: Input should be a valid integer, got 100.0"]),
        ({"certify": {"n": "300"}}, ["field certify.n: Input should be a valid integer, got \"300\""]),
        ({"noise": {"beta": True}}, ["field noise.beta: Input should be a valid number, got true"]),
        ({"noise": {"beta": [0.5]}}, ["field noise.beta: Input should be a valid number, got [0.5]"]),
        ({"certify": {"tau": "0.5"}}, ["field certify.tau:"]),
        ({"certify": {"target_class": True}}, ["field certify.target_class:", "got true"]),
        ({"certify": {"max_budget": 2.0}}, ["field certify.max_budget:", "got 2.0"]),
        ({"seed": "7"}, ["field seed:", "got \"7\""]),
        ({"run": {"batch_size": True}}, ["field run.batch_size:"]),
        ({"run": {"amp": 1}}, ["field run.amp:", "valid boolean"]),
        ({"noise": {"clamp": "false"}}, ["field noise.clamp:"]),
        ({"dataset": {"image_shape": [1, 8, 8.0]}}, ["field dataset.image_shape.2:"]),
        ({"tokens": {"model_vocab_size": 33.0}}, ["field tokens.model_vocab_size:"]),
        ({"filter": {"version": 2}}, ["field filter.version:"]),
        ({"filter": {"target_index": True}}, ["filter.target_index:"]),
        # issue 10: values that crashed (exit 3) or left a log behind
        ({"certify": {"radii": [0.0, float("inf")]}}, ["field certify.radii:", "finite"]),
        ({"noise": {"sigma": 1e308}}, ["field noise.sigma:", "less than or equal to 100"]),
        ({"tokens": {"alphabet_range": [0, 10**9]}}, ["field tokens:", "alphabet_range [0, 1000000000)"]),
        ({"tokens": {"model_vocab_size": 10**9, "alphabet_range": [0, 10**9]}},
         ["field tokens.model_vocab_size:", "less than or equal to 2097152"]),
        ({"tokens": {"alphabet_exclude": [40]}}, ["alphabet_exclude: token id 40 is not in the alphabet"]),
        ({"tokens": {"alphabet_exclude": [3, 3]}}, ["alphabet_exclude lists a token id twice"]),
    ],
)
def test_bad_config_values(write_config: ConfigWriter, tmp_path: Path, updates: dict, fragments: list[str]) -> None:
    expect_error(write_config, tmp_path, fragments, **updates)


def test_a_10_mb_value_is_quoted_in_one_short_line(write_config: ConfigWriter, tmp_path: Path) -> None:
    """QA of issue 10: the error quoted a 10 MB id in full (one line of 10 MB on stderr)."""
    path = manifest(tmp_path, [GOOD, {**GOOD, "id": "x" * 10_000_000}])
    err = expect_error(write_config, tmp_path, [":2: field id: must be a non-empty string", "characters cut"],
                       dataset={"manifest": str(path)})
    assert len(err) < 1200


def test_pickled_weights_are_refused_without_being_opened(write_config: ConfigWriter, tmp_path: Path) -> None:
    marker = tmp_path / "was-unpickled"
    payload = tmp_path / "model.pt"

    class Boom:
        def __reduce__(self) -> tuple:
            return (open, (str(marker), "w"))

    torch.save({"x": Boom()}, payload)
    expect_error(write_config, tmp_path, ["refusing weights model.pt", "unpickling can run arbitrary code"],
                 filter={"weights": str(payload)})
    assert not marker.exists()


def test_bad_toml_and_missing_config(tmp_path: Path) -> None:
    bad = tmp_path / "audit.toml"
    bad.write_text("seed = [\n", encoding="utf-8")
    code, err = cli("audit", "--config", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2 and "not valid TOML" in err and not (tmp_path / "o").exists()
    code, err = cli("audit", "--config", str(tmp_path / "none.toml"), "--out", str(tmp_path / "o"))
    assert code == 2 and "config file not found" in err


def test_resume_and_overwrite_together_is_a_usage_error(write_config: ConfigWriter, tmp_path: Path) -> None:
    code, err = cli("audit", "--config", str(write_config()), "--out", str(tmp_path / "o"), "--resume", "--overwrite")
    assert code == 2 and "not both" in err


def test_png_images_load_like_npy(tmp_path: Path) -> None:
    pixels = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    Image.fromarray(pixels, mode="L").save(tmp_path / "g.png")
    arr = load_image(tmp_path / "g.png", (1, 8, 8))
    assert arr.dtype == np.float32 and np.array_equal(arr[0], pixels / np.float32(255.0))
    rgb = np.stack([pixels, pixels // 2, pixels // 4], axis=-1)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "c.png")
    arr = load_image(tmp_path / "c.png", (3, 8, 8))
    assert arr.shape == (3, 8, 8) and np.array_equal(arr[1], (pixels // 2) / np.float32(255.0))
    with pytest.raises(ValueError, match=r"shape \[3, 8, 8\], expected \[1, 8, 8\]"):
        load_image(tmp_path / "c.png", (1, 8, 8))
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="not a readable PNG"):
        load_image(tmp_path / "x.png", (1, 8, 8))


def test_manifest_hash_covers_the_images(tmp_path: Path) -> None:
    path = manifest(tmp_path, [GOOD])
    first = load_manifest(path, (1, 8, 8), 33)
    np.save(tmp_path / "img" / "ok.npy", np.full((1, 8, 8), 0.5, np.float32))
    second = load_manifest(path, (1, 8, 8), 33)
    assert first.manifest_sha256 == second.manifest_sha256
    assert first.content_sha256 != second.content_sha256
    assert float(second.inputs[0].image[0, 0, 0]) == 0.5


@pytest.mark.parametrize(
    ("updates", "fragment"),
    [
        ({"filter": {"type": "onnx"}}, "filter.type: Input should be 'module', 'torchscript'"),
        ({"filter": {"weigths": "x.safetensors"}}, "filter.weigths: Extra inputs are not permitted"),
        ({"filter": {"class_path": ""}}, "class path must look like 'package.module:ClassName'"),
    ],
)
def test_bad_filter_section(write_config: ConfigWriter, tmp_path: Path, updates: dict, fragment: str) -> None:
    expect_error(write_config, tmp_path, [fragment], **updates)


def test_config_errors_name_the_line(write_config: ConfigWriter, tmp_path: Path) -> None:
    config = write_config(noise={"beta": True})
    number = next(i for i, line in enumerate(config.read_text().splitlines(), 1) if line.startswith("beta ="))
    err = expect_error(write_config, tmp_path, [], noise={"beta": True})
    assert f".toml:{number}: field noise.beta:" in err, err


def test_alphabet_exclude_removes_special_ids(make_spec: Callable[..., object]) -> None:
    spec = make_spec(tokens={"alphabet_range": [0, 32], "alphabet_exclude": [0, 17]})
    ids = spec.tokens.alphabet_ids()  # type: ignore[attr-defined]
    assert len(ids) == 30 and 0 not in ids and 17 not in ids and ids == sorted(ids)


# ------------------------------------------------------------------------------------------------------
# untrusted images (issue 10): refused by their header, before any data is read or decoded
# ------------------------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    import struct
    import zlib

    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height 8-bit grey pixels, with a few rows of zeros (a real bomb's
    IDAT would inflate to the full size; the header alone must be enough to refuse it)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 4, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", rows)
                     + _png_chunk(b"IEND", b""))


def npy_with_header(path: Path, shape: tuple[int, ...], dtype: str = "<f4", data: bytes = b"") -> None:
    from numpy.lib import format as npy

    with path.open("wb") as fh:
        npy.write_array_header_1_0(fh, {"descr": dtype, "fortran_order": False, "shape": shape})
        fh.write(data)


def sparse_size(path: Path, size: int) -> None:
    """Extend a file to ``size`` bytes without writing them (a sparse file: no disk used)."""
    with path.open("r+b") as fh:
        fh.truncate(size)


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("bomb.png", ["bomb.png has size 100000x100000 (W x H) in its header, expected 8x8"]),
        ("medium.png", ["medium.png has size 9000x9000"]),
        ("padded.png", ["padded.png holds 17000000 bytes, more than a [1, 8, 8] PNG needs"]),
        ("peta.npy", ["peta.npy has shape [1, 100000000, 100000000], expected [1, 8, 8]"]),
        ("sparse.npy", ["sparse.npy: the file holds 12000000000 bytes, its header promises 384"]),
        ("short.npy", ["short.npy: the file holds 130 bytes, its header promises 384"]),
    ],
)
def test_hostile_images_are_refused_by_their_header(write_config: ConfigWriter, tmp_path: Path, name: str,
                                                    fragments: list[str]) -> None:
    img = tmp_path / "img"
    img.mkdir()
    png_bomb(img / "bomb.png", 100_000, 100_000)
    png_bomb(img / "medium.png", 9000, 9000)  # 81 Mpx: under Pillow's own bomb limit, still not 8x8
    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(img / "padded.png")
    sparse_size(img / "padded.png", 17_000_000)
    npy_with_header(img / "peta.npy", (1, 10**8, 10**8))
    npy_with_header(img / "sparse.npy", (1, 8, 8), data=np.zeros(64, np.float32).tobytes())
    sparse_size(img / "sparse.npy", 12_000_000_000)  # 12 GB on paper; reading it whole would exhaust memory
    npy_with_header(img / "short.npy", (1, 8, 8), data=b"\0\0")
    path = tmp_path / "manifest.jsonl"
    path.write_text(json.dumps({**GOOD, "image": f"img/{name}"}) + "\n", encoding="utf-8")
    expect_error(write_config, tmp_path, [f"{path}:1: field image:", *fragments], dataset={"manifest": str(path)})


def test_npy_versions_dtypes_and_fortran_order(tmp_path: Path) -> None:
    from numpy.lib import format as npy

    arr = np.linspace(0, 1, 64, dtype=np.float64).reshape(1, 8, 8)
    with (tmp_path / "v2.npy").open("wb") as fh:
        npy.write_array(fh, np.asfortranarray(arr), version=(2, 0))
    assert np.array_equal(load_image(tmp_path / "v2.npy", (1, 8, 8)), arr.astype(np.float32))
    np.save(tmp_path / "u8.npy", np.ones((8, 8), np.uint8))
    assert load_image(tmp_path / "u8.npy", (1, 8, 8)).shape == (1, 8, 8)
    np.save(tmp_path / "c.npy", np.zeros((1, 8, 8), np.complex64))
    with pytest.raises(ValueError, match="dtype complex64, expected real numbers"):
        load_image(tmp_path / "c.npy", (1, 8, 8))
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY\x09\x00" + b"\0" * 100)
    with pytest.raises(ValueError, match="not a plain .npy array"):
        load_image(tmp_path / "bad.npy", (1, 8, 8))


# ------------------------------------------------------------------------------------------------------
# a configuration that can certify no budget above 0 is flagged before the run (issue 10)
# ------------------------------------------------------------------------------------------------------


def test_budget_warnings_from_the_theory_engine() -> None:
    from hybridcert.audits.certification import budget_warnings
    from hybridcert.audits.config import CertifySpec
    from hybridcert.theory import HybridNoise

    demo = HybridNoise("uniform-other", 32, 0.75, 0.35)
    assert budget_warnings(demo, CertifySpec(tau=0.5, alpha=0.001, n=1000)) == []
    few = budget_warnings(demo, CertifySpec(tau=0.5, alpha=0.001, n=10))  # 10 samples: p_a_lower <= 0.51
    assert len(few) == 2 and "n = 10 samples at alpha = 0.001 give at best p_a_lower = 0.501187" in few[0]
    # absorb with beta < tau: r*(1) needs tau / beta < 1 (docs/theory.md §4), whatever n
    never = budget_warnings(HybridNoise("absorb", 32, 0.3, 0.35), CertifySpec(tau=0.5, n=10**6, target_class=1))
    assert never == ["no budget d >= 1 can be certified on the flag side at eps = 0: even p_a = 1 - 1e-12 does "
                     "not (beta = 0.3, tau = 0.5, V = 32)"]
    assert budget_warnings(demo, CertifySpec(tau=0.5, n=10, max_budget=0)) == []


def test_the_audit_command_warns_on_stderr_before_running(write_config: ConfigWriter, tmp_path: Path) -> None:
    config = write_config(certify={"n": 12})
    code, err = cli("audit", "--config", str(config), "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert err.startswith("warning: no budget d >= 1 can be certified on the flag side at eps = 0: n = 12 samples")


def test_a_huge_manifest_is_refused_before_it_is_read(write_config: ConfigWriter, tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    sparse_size(path, 300 << 20)  # 300 MiB on paper, no disk used
    expect_error(write_config, tmp_path, [f"{path}: the manifest is larger than 256 MiB"],
                 dataset={"manifest": str(path)})
