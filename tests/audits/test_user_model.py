"""A user's own model next to audit.toml (class_path resolved against the config's folder), and a model directory
plus a small head file, both identified in the results (issue 10)."""

from __future__ import annotations

import hashlib
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from hybridcert.audits.adapters import load_filter
from hybridcert.audits.adapters.common import directory_sha256, sha256_file
from hybridcert.cli import app

HEAD_NET = """
    import torch
    from helpers import WIDTH  # a sibling module, imported by absolute name


    class Net(torch.nn.Module):
        def __init__(self, model_dir=None, bias=0.0):
            super().__init__()
            self.backbone = torch.nn.Linear(WIDTH, WIDTH)
            if model_dir is not None:
                from safetensors.torch import load_file
                import os
                self.backbone.load_state_dict(load_file(os.path.join(model_dir, "backbone.safetensors")))
            self.head = torch.nn.Linear(WIDTH, 2)
            self.bias = bias

        def forward(self, tokens, images):
            x = images.flatten(1)[:, :WIDTH]
            return self.head(self.backbone(x)) + self.bias
"""


def write_model(folder: Path, name: str = "mynet", width: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(HEAD_NET), encoding="utf-8")
    (folder / "helpers.py").write_text(f"WIDTH = {width}\n", encoding="utf-8")


def module_table(**extra: Any) -> dict[str, Any]:
    return {"type": "module", "class_path": "mynet:Net", "weights": "w.safetensors", "device": "cpu", **extra}


def test_a_module_next_to_the_config_is_imported_without_polluting_imports(tmp_path: Path) -> None:
    torch.manual_seed(0)
    for folder, width in ((tmp_path / "a", 4), (tmp_path / "b", 6)):  # two different "mynet" in one process
        write_model(folder, width=width)
        from safetensors.torch import save_file as save

        net_state = {"backbone.weight": torch.randn(width, width), "backbone.bias": torch.zeros(width),
                     "head.weight": torch.randn(2, width), "head.bias": torch.zeros(2)}
        save(net_state, str(folder / "w.safetensors"))
    path_before = list(sys.path)
    fa = load_filter(module_table(), tmp_path / "a")
    fb = load_filter(module_table(), tmp_path / "b")
    assert sys.path == path_before
    assert "mynet" not in sys.modules and "mynet" not in {m.split(".")[0] for m in sys.modules}
    assert fa.module.backbone.in_features == 4 and fb.module.backbone.in_features == 6  # type: ignore[attr-defined]
    out = fa(torch.zeros(3, 2, dtype=torch.long), torch.rand(3, 1, 8, 8))
    assert out.shape == (3,) and out.dtype == torch.bool


def test_a_package_next_to_the_config_with_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "guard"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "layers.py").write_text("import torch\nWIDTH = 3\n", encoding="utf-8")
    (pkg / "model.py").write_text(textwrap.dedent("""
        import torch
        from .layers import WIDTH

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(WIDTH, 2)

            def forward(self, tokens, images):
                return self.fc(images.flatten(1)[:, :WIDTH])
    """), encoding="utf-8")
    save_file({"fc.weight": torch.ones(2, 3), "fc.bias": torch.zeros(2)}, str(tmp_path / "w.safetensors"))
    filt = load_filter(module_table(class_path="guard.model:Net"), tmp_path)
    assert filt.module.fc.in_features == 3  # type: ignore[attr-defined]


def test_an_error_inside_the_users_module_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "mynet.py").write_text("raise RuntimeError('no GPU driver here')\n", encoding="utf-8")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match=r"cannot import module 'mynet' from .*mynet.py: RuntimeError: no GPU driver"):
        load_filter(module_table(), tmp_path)
    assert "mynet" not in sys.modules
    with pytest.raises(ValueError, match="RuntimeError: no GPU driver"):  # not cached half-imported
        load_filter(module_table(), tmp_path)


def test_model_directory_plus_head_file_are_both_in_the_model_sha256(tmp_path: Path) -> None:
    write_model(tmp_path)
    backbone = tmp_path / "backbone"
    backbone.mkdir()
    torch.manual_seed(1)
    save_file({"weight": torch.randn(4, 4), "bias": torch.zeros(4)}, str(backbone / "backbone.safetensors"))
    save_file({"weight": torch.randn(2, 4), "bias": torch.zeros(2)}, str(tmp_path / "w.safetensors"))
    table = module_table(model_dir="backbone", head="head")
    filt = load_filter(table, tmp_path)
    expected = hashlib.sha256(f"model_dir {directory_sha256(backbone)}\nweights "
                              f"{sha256_file(tmp_path / 'w.safetensors')}\n".encode()).hexdigest()
    assert filt.weights_sha256 == expected  # type: ignore[attr-defined]
    loaded = load_filter(table, tmp_path).module.backbone.weight  # type: ignore[attr-defined]
    assert torch.equal(loaded, filt.module.backbone.weight)  # type: ignore[attr-defined]
    # a changed backbone file changes the identity, and so does a changed head
    save_file({"weight": torch.randn(4, 4), "bias": torch.zeros(4)}, str(backbone / "backbone.safetensors"))
    changed = load_filter(table, tmp_path).weights_sha256  # type: ignore[attr-defined]
    assert changed != expected
    save_file({"weight": torch.randn(2, 4), "bias": torch.ones(2)}, str(tmp_path / "w.safetensors"))
    assert load_filter(table, tmp_path).weights_sha256 not in (expected, changed)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="weights do not match mynet:Net.backbone"):
        load_filter(module_table(model_dir="backbone", head="backbone"), tmp_path)
    with pytest.raises(ValueError, match="filter.head 'neck'"):
        load_filter(module_table(model_dir="backbone", head="neck"), tmp_path)
    with pytest.raises(ValueError, match="model directory not found"):
        load_filter(module_table(model_dir="nowhere", head="head"), tmp_path)
    with pytest.raises(ValueError, match="filter.model_dir applies only to type 'module'"):
        load_filter({"type": "torchscript", "path": "x.pt", "model_dir": "backbone"}, tmp_path)


def test_an_audit_with_the_model_next_to_its_config(
    demo_base: tuple[Path, dict[str, Any]], tmp_path: Path, write_config: Callable[..., Path]
) -> None:
    """End to end: audit.toml in a folder of its own, class_path = "mynet:Net", relative weights."""
    import json

    from tests.audits.conftest import toml_value

    root, data = demo_base
    write_model(tmp_path)
    torch.manual_seed(2)
    save_file({"backbone.weight": torch.randn(4, 4), "backbone.bias": torch.zeros(4),
               "head.weight": torch.randn(2, 4), "head.bias": torch.zeros(2)}, str(tmp_path / "w.safetensors"))
    sections = {**data, "filter": {"type": "module", "class_path": "mynet:Net", "weights": "w.safetensors",
                                   "name": "mine"},
                "dataset": {**data["dataset"], "manifest": str(root / data["dataset"]["manifest"])},
                "tokens": {**data["tokens"], "vocabulary": str(root / data["tokens"]["vocabulary"])},
                "certify": {**data["certify"], "n": 50, "n0": 16}}
    lines = [f"seed = {sections.pop('seed')}"]
    for section, values in sections.items():
        lines += [f"[{section}]", *(f"{k} = {toml_value(v)}" for k, v in values.items())]
    config = tmp_path / "audit.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["audit", "--config", str(config), "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.stderr
    res = json.loads((tmp_path / "o" / "results.json").read_text(encoding="utf-8"))
    assert res["model"]["sha256"] == sha256_file(tmp_path / "w.safetensors") and res["model"]["name"] == "mine"
    # the user's source files (the module and the sibling it imported) identify the model too
    lines = [f"{sha256_file(tmp_path / f)}  {f}\n" for f in ("helpers.py", "mynet.py")]
    assert res["model"]["code_sha256"] == hashlib.sha256("".join(lines).encode()).hexdigest()


def test_the_code_hash_follows_the_source(tmp_path: Path) -> None:
    from hybridcert.audits.adapters.module import local_code_sha256

    hashes = []
    for width in (4, 5):  # same weights layout rule, different code: a different folder each (one process)
        folder = tmp_path / f"w{width}"
        write_model(folder, width=width)
        save_file({"backbone.weight": torch.zeros(width, width), "backbone.bias": torch.zeros(width),
                   "head.weight": torch.zeros(2, width), "head.bias": torch.zeros(2)}, str(folder / "w.safetensors"))
        filt = load_filter(module_table(), folder)
        hashes.append(filt.code_sha256)  # type: ignore[attr-defined]
        assert hashes[-1] == local_code_sha256(type(filt.module))  # type: ignore[attr-defined]
    assert hashes[0] != hashes[1] and all(h and len(h) == 64 for h in hashes)
    from tests.audits.adapters_support import TinyFilterNet

    save_file(TinyFilterNet().state_dict(), str(tmp_path / "tiny.safetensors"))
    installed = load_filter({"type": "module", "class_path": "tests.audits.adapters_support:TinyFilterNet",
                             "weights": "tiny.safetensors", "device": "cpu"}, tmp_path)
    assert installed.code_sha256 is None  # type: ignore[attr-defined]  # an installed module: weights only
