"""docs/reproduce.md's recipe end to end, offline, on the demo filter and a few synthetic memes in the Hateful
Memes layout: import -> curate --interaction-only -> audit with baselines -> attack -> verify -> signed report.
(The same commands run the paper's experiment with the LlavaGuard config of docs/reproduce.md.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from hybridcert.audits.demo.data import WORDS, generate
from hybridcert.audits.demo.run import write_demo
from hybridcert.cli import app


def synthetic_memes(root: Path, n: int = 16) -> Path:
    """Hateful Memes layout (dev_seen.jsonl + img/*.png) from the demo's digits x digit names."""
    demo = generate(root / "demo-src", n)
    (root / "memes" / "img").mkdir(parents=True)
    lines = []
    for number, line in enumerate(demo.read_text().splitlines()):
        rec = json.loads(line)
        pixels = np.load(demo.parent / rec["image"])[0]
        name = f"img/{10000 + number}.png"
        Image.fromarray(np.round(pixels * 255).astype(np.uint8), mode="L").save(root / "memes" / name)
        lines.append(json.dumps({"id": 10000 + number, "img": name, "label": rec["label"], "text": rec["text"]}))
    (root / "memes" / "dev_seen.jsonl").write_text("\n".join(lines) + "\n")
    return root / "memes" / "dev_seen.jsonl"


def _config(root: Path, manifest: str) -> Path:
    """The demo's audit.toml with the recipe's changes: baselines, this manifest, small n for a test."""
    base = write_demo(root / "cfg", n_inputs=2, n=300)
    text = base.read_text()
    text = text.replace("[certify]\n", '[certify]\nbaselines = ["image-only", "text-only"]\n', 1)
    text = text.replace('manifest = "data/manifest.jsonl"', f'manifest = "{manifest}"')
    text = text.replace("n0 = 64", "n0 = 32")
    path = root / "cfg" / f"audit-{Path(manifest).stem}.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_recipe_offline(tmp_path: Path) -> None:
    cli = CliRunner()
    src = synthetic_memes(tmp_path)
    imported = _config(tmp_path, "memes/manifest.jsonl")
    res = cli.invoke(app, ["dataset", "import", "hateful-memes", str(src), "--config", str(imported),
                           "--out", str(tmp_path / "cfg" / "memes" / "manifest.jsonl")])
    assert res.exit_code == 0, res.output
    curated = _config(tmp_path, "memes/curated.jsonl")
    res = cli.invoke(app, ["dataset", "curate", "--interaction-only", "--config", str(imported),
                           "--out", str(tmp_path / "cfg" / "memes" / "curated.jsonl")])
    assert res.exit_code == 0, res.output
    kept = (tmp_path / "cfg" / "memes" / "curated.jsonl").read_text().splitlines()
    assert 0 < len(kept) < 16 and all(json.loads(x)["label"] == 1 for x in kept)
    out = tmp_path / "run"
    res = cli.invoke(app, ["attack", "--config", str(curated), "--out", str(out), "--points", "0:0.25",
                           "--points", "1:0.25", "--steps", "3", "--samples", "16", "--candidates", "6"])
    assert res.exit_code == 0, res.output
    results = json.loads((out / "audit" / "results.json").read_text())
    assert all(set(x["baselines"]) == {"image-only", "text-only"} for x in results["inputs"])
    attack = json.loads((out / "attack.json").read_text())
    assert attack["alarms"] == [] and len(attack["records"]) == 2 * len(kept)
    res = cli.invoke(app, ["verify", "--results", str(out / "audit" / "results.json")])
    assert res.exit_code == 0, res.output
    ident = tmp_path / "identity"
    res = cli.invoke(app, ["keys", "init", "--out", str(ident), "--name", "Recipe Test", "--role", "test",
                           "--org", "hybridcert", "--demo"])
    assert res.exit_code == 0, res.output
    res = cli.invoke(app, ["report", str(out / "audit"), "--identity", str(ident)])
    assert res.exit_code == 0, res.output
    html = (out / "audit" / "report.html").read_text()
    assert 'id="baselines"' in html and 'id="attack"' in html
    assert WORDS[0] == "zero"  # the memes' words are the demo vocabulary: the audit's tokenizer reads them


def test_reproduce_doc_config_is_valid(tmp_path: Path) -> None:
    """The paper's config printed in docs/reproduce.md parses and carries the paper's settings."""
    from hybridcert.audits.config import load_spec

    doc = (Path(__file__).resolve().parents[2] / "docs" / "reproduce.md").read_text(encoding="utf-8")
    block = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "paper.toml").write_text(block)
    spec = load_spec(tmp_path / "paper.toml")
    assert (spec.noise.kernel, spec.noise.beta, spec.noise.sigma) == ("uniform-other", 0.25, 1.0)
    c = spec.certify
    assert (c.tau, c.n, c.alpha, c.max_budget) == (4.6e-5, 10_000, 0.01, 8)
    assert c.baselines == ["image-only", "text-only"]
    assert spec.filter.type == "guard"
