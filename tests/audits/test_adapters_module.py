"""Adapter (a): class path + safetensors weights; pickles refused unless opted in (issue 4, docs/theory.md §7)."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hybridcert.audits.adapters import PickleRefusedError, load_module, resolve_device
from hybridcert.audits.adapters.module import ModuleFilter, import_class, load_state_dict_file
from hybridcert.audits.filters import Filter
from tests.audits.adapters_support import TinyFilterNet

NET = "tests.audits.adapters_support:TinyFilterNet"
SCORE = "tests.audits.adapters_support:TinyScoreNet"


class _Payload:
    """Unpickling this object writes a marker file: a stand-in for a hostile checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path, str]]:
        return (Path.write_text, (self.marker, "ran"))


def _inputs(b: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 50, (b, 7), generator=g), torch.rand(b, 3, 8, 8, generator=g)


@pytest.fixture
def net_and_file(tmp_path: Path) -> tuple[TinyFilterNet, Path]:
    torch.manual_seed(0)
    net = TinyFilterNet().eval()
    path = tmp_path / "net.safetensors"
    save_file(net.state_dict(), str(path))
    return net, path


def test_safetensors_module_matches_eager_and_sees_the_sampled_ids(net_and_file: tuple[TinyFilterNet, Path]) -> None:
    net, path = net_and_file
    f = ModuleFilter.load(NET, path, device="cpu")
    assert isinstance(f, Filter)
    tokens, images = _inputs()
    with torch.no_grad():
        expected = net(tokens, images).argmax(dim=1) == 1
    got = f(tokens, images)
    assert got.dtype == torch.bool and torch.equal(got, expected)
    assert torch.equal(f.module.last_tokens, tokens)  # the ids themselves, no decode/re-tokenise (docs/theory.md §7)
    assert f.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert f.name == NET


def test_target_index_zero_is_the_complement(net_and_file: tuple[TinyFilterNet, Path]) -> None:
    _, path = net_and_file
    tokens, images = _inputs()
    one = ModuleFilter.load(NET, path, target_index=1)(tokens, images)
    zero = ModuleFilter.load(NET, path, target_index=0)(tokens, images)
    assert torch.equal(one, ~zero)
    with pytest.raises(ValueError, match="target_index 2 is out of range"):
        ModuleFilter.load(NET, path, target_index=2)(tokens, images)


def test_score_module_decides_by_sign(tmp_path: Path) -> None:
    net = import_class(SCORE)()
    path = tmp_path / "score.safetensors"
    save_file(net.state_dict(), str(path))
    tokens, images = _inputs(8)
    with torch.no_grad():
        expected = net(tokens, images) > 0
    assert torch.equal(ModuleFilter.load(SCORE, path)(tokens, images), expected)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("zip_format", [True, False])
def test_pickled_weights_are_refused_by_content(
    net_and_file: tuple[TinyFilterNet, Path], tmp_path: Path, suffix: str, zip_format: bool
) -> None:
    net, _ = net_and_file
    path = tmp_path / f"weights{suffix}"
    torch.save(net.state_dict(), path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(PickleRefusedError, match="pickle.*arbitrary code.*allow_pickle") as err:
        ModuleFilter.load(NET, path)
    assert path.name in str(err.value)
    assert isinstance(err.value, ValueError)


def test_allow_pickle_loads_weights_only(net_and_file: tuple[TinyFilterNet, Path], tmp_path: Path) -> None:
    net, _ = net_and_file
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, path)
    f = ModuleFilter.load(NET, path, allow_pickle=True)
    tokens, images = _inputs()
    with torch.no_grad():
        assert torch.equal(f(tokens, images), net(tokens, images).argmax(dim=1) == 1)


@pytest.mark.parametrize("as_torch_save", [True, False])
def test_hostile_pickle_does_not_run_even_when_allowed(tmp_path: Path, as_torch_save: bool) -> None:
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.bin"
    if as_torch_save:
        torch.save({"w": _Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps({"w": _Payload(marker)}, protocol=2))
    pickle.loads(pickle.dumps(_Payload(marker)))  # the payload is real: plain unpickling runs it
    assert marker.exists()
    marker.unlink()
    with pytest.raises(PickleRefusedError):
        load_state_dict_file(path)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_state_dict_file(path, allow_pickle=True)
    assert not marker.exists()


def test_corrupted_safetensors_is_a_clear_error(net_and_file: tuple[TinyFilterNet, Path]) -> None:
    _, path = net_and_file
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        ModuleFilter.load(NET, path)
    path.write_bytes(b"hello, not weights at all")
    with pytest.raises(ValueError, match="neither a safetensors file nor a torch.save"):
        ModuleFilter.load(NET, path)
    with pytest.raises(ValueError, match="weights file not found"):
        ModuleFilter.load(NET, path.with_name("missing.safetensors"))


def test_mismatched_weights_name_keys_and_shapes(net_and_file: tuple[TinyFilterNet, Path], tmp_path: Path) -> None:
    net, path = net_and_file
    with pytest.raises(ValueError, match=r"shape mismatches \['conv.bias: file \(8,\) vs model \(4,\)"):
        load_module(NET, path, {"hidden": 4})
    state = dict(net.state_dict())
    state["extra.weight"] = torch.zeros(2)
    del state["head.bias"]
    other = tmp_path / "other.safetensors"
    save_file(state, str(other))
    with pytest.raises(ValueError, match=r"missing keys \['head.bias'\]; unexpected keys \['extra.weight'\]"):
        load_module(NET, other)
    with pytest.raises(ValueError, match="cannot build .* with init_kwargs"):
        load_module(NET, path, {"no_such_argument": 1})


@pytest.mark.parametrize(
    ("class_path", "message"),
    [
        ("collections:OrderedDict", "is not a torch.nn.Module class"),
        ("tests.audits.no_such_module:Net", "cannot import module"),
        ("tests.audits.adapters_support:Missing", "has no attribute 'Missing'"),
        ("JustAName", "class path must look like"),
    ],
)
def test_bad_class_paths(net_and_file: tuple[TinyFilterNet, Path], class_path: str, message: str) -> None:
    _, path = net_and_file
    with pytest.raises(ValueError, match=message):
        ModuleFilter.load(class_path, path)


def test_bad_inputs_are_clear_errors(net_and_file: tuple[TinyFilterNet, Path]) -> None:
    _, path = net_and_file
    f = ModuleFilter.load(NET, path)
    tokens, images = _inputs()
    with pytest.raises(ValueError, match="tokens must be an integer tensor"):
        f(tokens.float(), images)
    with pytest.raises(ValueError, match="batch sizes differ"):
        f(tokens[:2], images)
    with pytest.raises(ValueError, match="images must be a float tensor"):
        f(tokens, images[:, 0])


def test_amp_runs_the_forward_in_bfloat16(net_and_file: tuple[TinyFilterNet, Path]) -> None:
    net, path = net_and_file
    f = ModuleFilter.load(NET, path, amp=True)
    tokens, images = _inputs(32)
    got = f(tokens, images)
    assert f.module.last_dtype == torch.bfloat16
    with torch.no_grad():
        logits = net(tokens, images)
    clear = (logits[:, 1] - logits[:, 0]).abs() > 0.05  # bfloat16 may flip only near-ties
    assert torch.equal(got[clear], (logits.argmax(dim=1) == 1)[clear])
    full = ModuleFilter.load(NET, path, amp=False)
    full(tokens, images)
    assert full.module.last_dtype == torch.float32


def test_device_auto_picks_cuda_only_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("auto") == (torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda:0")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("gpu please")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(net_and_file: tuple[TinyFilterNet, Path]) -> None:
    _, path = net_and_file
    tokens, images = _inputs(16)
    gpu = ModuleFilter.load(NET, path, device="auto")
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu(tokens, images).cpu(), ModuleFilter.load(NET, path, device="cpu")(tokens, images))


def test_nan_outputs_are_errors_not_decisions(net_and_file: tuple[TinyFilterNet, Path]) -> None:
    _, path = net_and_file
    f = ModuleFilter.load(NET, path)
    with torch.no_grad():
        f.module.head.bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="contains NaN"):
        f(*_inputs())
