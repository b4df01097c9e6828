"""``load_filter``: the ``[filter]`` table of audit.toml -> a Filter; bad specs are errors naming the key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hybridcert.audits.adapters import FilterSpec, ModuleFilter, PickleRefusedError, ProgramFilter, load_filter
from hybridcert.audits.filters import Filter
from tests.audits.adapters_support import ScriptableNet

NET = "tests.audits.adapters_support:ScriptableNet"

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    torch.manual_seed(4)
    path = tmp_path / "models" / "net.safetensors"
    path.parent.mkdir()
    save_file(ScriptableNet().state_dict(), str(path))
    return path


def test_toml_table_builds_a_module_filter_with_relative_paths(weights: Path, tmp_path: Path) -> None:
    table = tomllib.loads(
        f"""
        [filter]
        type = "module"
        class_path = "{NET}"
        weights = "models/net.safetensors"
        init_kwargs = {{ hidden = 8 }}
        device = "auto"
        target_index = 1
        """
    )["filter"]
    f = load_filter(table, base_dir=tmp_path)
    assert isinstance(f, ModuleFilter) and isinstance(f, Filter)
    assert f.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    tokens, images = torch.randint(0, 50, (4, 6)), torch.rand(4, 3, 8, 8)
    module = ScriptableNet()
    module.load_state_dict(dict(f.module.state_dict()))
    with torch.no_grad():
        assert torch.equal(f(tokens, images).cpu(), module(tokens, images).argmax(dim=1) == 1)


def test_program_spec_needs_the_opt_in(weights: Path, tmp_path: Path) -> None:
    path = tmp_path / "net.pt"
    net = ScriptableNet().eval()
    torch.jit.script(net).save(str(path))
    with pytest.raises(PickleRefusedError, match="allow_pickle"):
        load_filter({"type": "torchscript", "path": str(path)})
    f = load_filter({"type": "torchscript", "path": "net.pt", "allow_pickle": True, "device": "cpu"}, tmp_path)
    assert isinstance(f, ProgramFilter)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "onnx", "path": "x"}, r"filter.type: Input should be 'module', 'torchscript', 'export', 'guard' or"),
        ({"type": "module", "weights": "w.safetensors"}, "filter.class_path is required for type 'module'"),
        ({"type": "module", "class_path": NET}, "filter.weights is required"),
        ({"type": "module", "class_path": NET, "weights": "w", "path": "p"}, "filter.path does not apply"),
        ({"type": "torchscript"}, "filter.path is required for type 'torchscript'"),
        ({"type": "export", "path": "p", "class_path": NET}, "filter.class_path applies only to type 'module'"),
        ({"type": "module", "class_path": NET, "weights": "w", "prompt": "x"}, "filter.prompt applies only to"),
        ({"type": "llava", "path": "p", "target_index": 0}, "filter.target_index does not apply to type 'llava'"),
        ({"type": "module", "class_path": NET, "weights": "w", "devise": "cpu"}, "filter.devise: Extra inputs"),
        ({"type": "module", "class_path": NET, "weights": "w", "amp": "maybe"}, "filter.amp: Input should be"),
    ],
)
def test_bad_specs_name_the_key(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_filter(spec)


def test_pickled_module_weights_through_the_spec(tmp_path: Path) -> None:
    path = tmp_path / "net.safetensors"  # a pickle wearing a safetensors name
    torch.save(ScriptableNet().state_dict(), path)
    spec = FilterSpec(type="module", class_path=NET, weights=path)
    with pytest.raises(PickleRefusedError, match="torch.save zip archive holding a pickle"):
        load_filter(spec)
    assert isinstance(load_filter(spec.model_copy(update={"allow_pickle": True})), ModuleFilter)


def test_run_table_overrides_and_result_names(weights: Path) -> None:
    spec = {"type": "module", "class_path": NET, "weights": str(weights), "device": "cuda:7", "name": "guard-v2",
            "version": "2"}
    f = load_filter(spec, device=torch.device("cpu"), amp=True)  # the [run] table wins over the spec
    assert f.device == torch.device("cpu") and f.amp is True
    assert f.name == "guard-v2"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda:7' requested but CUDA is not available"):
            load_filter(spec)
