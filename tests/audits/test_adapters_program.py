"""Adapter (b): TorchScript and torch.export programs; both refused unless the user trusts the file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from hybridcert.audits.adapters import PickleRefusedError, ProgramFilter
from tests.audits.adapters_support import ScriptableNet

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _inputs(b: int, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 50, (b, 5), generator=g), torch.rand(b, 3, 8, 8, generator=g)


@pytest.fixture
def net() -> ScriptableNet:
    torch.manual_seed(3)
    return ScriptableNet().eval()


def _expected(net: ScriptableNet, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(tokens, images).argmax(dim=1) == 1


def test_torchscript_matches_eager(net: ScriptableNet, tmp_path: Path) -> None:
    path = tmp_path / "net.pt"
    torch.jit.script(net).save(str(path))
    with pytest.raises(PickleRefusedError, match="TorchScript archive carries code.*allow_pickle"):
        ProgramFilter.load("torchscript", path)
    f = ProgramFilter.load("torchscript", path, allow_pickle=True)
    for b in (1, 7):
        tokens, images = _inputs(b)
        assert torch.equal(f(tokens, images), _expected(net, tokens, images))
    assert f.name == "torchscript:net.pt" and f.weights_sha256 is not None


def test_export_matches_eager_with_a_dynamic_batch(net: ScriptableNet, tmp_path: Path) -> None:
    path = tmp_path / "net.pt2"
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(net, _inputs(4), dynamic_shapes=({0: batch}, {0: batch}))
    torch.export.save(program, str(path))
    with pytest.raises(PickleRefusedError, match="pickle.loads"):
        ProgramFilter.load("export", path)
    f = ProgramFilter.load("export", path, allow_pickle=True)
    for b in (3, 9):
        tokens, images = _inputs(b)
        assert torch.equal(f(tokens, images), _expected(net, tokens, images))


def test_fixed_batch_export_gives_a_clear_error(net: ScriptableNet, tmp_path: Path) -> None:
    path = tmp_path / "fixed.pt2"
    torch.export.save(torch.export.export(net, _inputs(4)), str(path))
    f = ProgramFilter.load("export", path, allow_pickle=True)
    assert torch.equal(f(*_inputs(4)), _expected(net, *_inputs(4)))
    with pytest.raises(ValueError, match="running export:fixed.pt2 failed.*dynamic batch dimension"):
        f(*_inputs(5))


class _ReadsAFile(torch.nn.Module):
    """A TorchScript program that reads a file when called: why TorchScript files need the opt-in."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def forward(self, tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        data = torch.from_file(self.path, shared=False, size=4, dtype=torch.uint8)
        return data.float().sum().expand(tokens.shape[0]) - 300.0


def test_torchscript_code_can_read_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    path = tmp_path / "reader.pt"
    torch.jit.script(_ReadsAFile(str(secret))).save(str(path))
    f = ProgramFilter.load("torchscript", path, allow_pickle=True)
    tokens, images = _inputs(2)
    secret.write_bytes(bytes([200, 200, 0, 0]))  # sum 400 > 300: the program's output depends on the file
    assert f(tokens, images).tolist() == [True, True]
    secret.write_bytes(bytes([1, 2, 3, 4]))
    assert f(tokens, images).tolist() == [False, False]


def test_bad_program_files(tmp_path: Path) -> None:
    not_zip = tmp_path / "model.pt"
    not_zip.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="is not a torchscript archive"):
        ProgramFilter.load("torchscript", not_zip, allow_pickle=True)
    with pytest.raises(ValueError, match="file not found"):
        ProgramFilter.load("export", tmp_path / "missing.pt2", allow_pickle=True)
    with pytest.raises(ValueError, match="program kind must be"):
        ProgramFilter.load("onnx", not_zip)
    junk_zip = tmp_path / "junk.pt"
    with zipfile.ZipFile(junk_zip, "w") as zf:
        zf.writestr("hello.txt", "not a program")
    with pytest.raises(ValueError, match=r"torch.jit.load\(junk.pt\) failed"):
        ProgramFilter.load("torchscript", junk_zip, allow_pickle=True)
