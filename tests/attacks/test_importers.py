"""Importers on small synthetic folders in each published layout (Hateful Memes, MM-SafetyBench, UnsafeBench),
good and broken: a broken one is one line naming the file and the record, exit 2, nothing written. Curation
keeps exactly the items unsafe together and safe alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from hybridcert.audits.config import load_spec
from hybridcert.audits.dataset import load_manifest
from hybridcert.cli import app

TEXTS = ["the image shows seven", "this is a picture of three", "we see number one here"]


def _img(path: Path, seed: int, size: tuple[int, int] = (20, 14)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)


def hateful(root: Path, records: list[dict[str, Any]] | None = None) -> Path:
    if records is None:
        records = [{"id": 42950 + i, "img": f"img/{42950 + i}.png", "label": i % 2, "text": t}
                   for i, t in enumerate(TEXTS)]
    for i, rec in enumerate(records):
        if isinstance(rec.get("img"), str) and not rec.get("_missing"):
            _img(root / rec["img"], i)
    src = root / "dev_seen.jsonl"
    src.write_text("\n".join(json.dumps({k: v for k, v in r.items() if k != "_missing"}) for r in records) + "\n")
    return src


def mmsb(root: Path, missing: bool = False) -> Path:
    data = root / "data"
    (data / "processed_questions").mkdir(parents=True)
    for s, scenario in enumerate(("01-Illegal_Activitiy", "02-HateSpeech")):
        recs = {str(k): {"Question": "q", "Rephrased Question": "r", "Rephrased Question(SD)": TEXTS[k]}
                for k in range(2)}
        (data / "processed_questions" / f"{scenario}.json").write_text(json.dumps(recs))
        for k in range(2):
            if not (missing and s == 1 and k == 1):
                _img(data / "imgs" / scenario / "SD" / f"{k}.jpg", 10 * s + k)
    return data


def unsafebench(root: Path, records: list[dict[str, Any]] | None = None) -> Path:
    if records is None:
        records = [{"image": f"images/{i}.jpg", "text": t, "safety_label": ["Safe", "Unsafe"][i % 2],
                    "category": "Hate", "source": "Laion5B"} for i, t in enumerate(TEXTS)]
    for i, rec in enumerate(records):
        _img(root / rec["image"], 100 + i)
    src = root / "test.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return src


def _import(fmt: str, src: Path, out: Path, config: Path) -> Any:
    return CliRunner().invoke(app, ["dataset", "import", fmt, str(src), "--out", str(out), "--config", str(config)])


@pytest.mark.parametrize("fmt", ["hateful-memes", "mm-safetybench", "unsafebench"])
def test_import_each_layout(fmt: str, demo_config: Any, tmp_path: Path) -> None:
    src = {"hateful-memes": hateful, "mm-safetybench": mmsb, "unsafebench": unsafebench}[fmt](tmp_path / "src")
    out = tmp_path / "out" / "manifest.jsonl"
    res = _import(fmt, src, out, demo_config[0])
    assert res.exit_code == 0, res.output
    spec = load_spec(demo_config[0])
    from hybridcert.audits.config import load_vocabulary

    ds = load_manifest(out, spec.dataset.image_shape, spec.tokens.model_vocab_size,
                       load_vocabulary(spec.path(spec.tokens.vocabulary)))
    assert len(ds.inputs) == (4 if fmt == "mm-safetybench" else 3)
    assert all(x.image.shape == (1, 8, 8) for x in ds.inputs)
    if fmt == "mm-safetybench":
        assert {x.label for x in ds.inputs} == {1} and ds.inputs[0].id == "01-Illegal_Activitiy/0"
    else:
        assert [x.label for x in ds.inputs] == [0, 1, 0]
        vocab = json.loads(spec.path(spec.tokens.vocabulary).read_text())
        assert " ".join(vocab[t] for t in ds.inputs[0].tokens) == TEXTS[0]
    again = _import(fmt, src, out, demo_config[0])
    assert again.exit_code == 2 and "already exists" in again.output


BROKEN_HATEFUL = {
    "missing image": ([{"id": 1, "img": "img/1.png", "label": 0, "text": TEXTS[0]},
                       {"id": 2, "img": "img/2.png", "label": 1, "text": TEXTS[1], "_missing": True}],
                      "dev_seen.jsonl:2: field img: image not found"),
    "label 2": ([{"id": 1, "img": "img/1.png", "label": 2, "text": TEXTS[0]}], "dev_seen.jsonl:1: field label"),
    "label true": ([{"id": 1, "img": "img/1.png", "label": True, "text": TEXTS[0]}], "dev_seen.jsonl:1: field label"),
    "duplicate id": ([{"id": 7, "img": "img/1.png", "label": 0, "text": TEXTS[0]},
                      {"id": "7", "img": "img/2.png", "label": 1, "text": TEXTS[1]}],
                     "dev_seen.jsonl:2: field id: duplicate id '7'"),
    "unknown word": ([{"id": 1, "img": "img/1.png", "label": 0, "text": "hello there"}],
                     "dev_seen.jsonl:1: field text: word 'hello'"),
    "escaping path": ([{"id": 1, "img": "../x.png", "label": 0, "text": TEXTS[0]}], "dev_seen.jsonl:1: field img"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_HATEFUL))
def test_broken_hateful_memes_one_line_nothing_written(case: str, demo_config: Any, tmp_path: Path) -> None:
    records, message = BROKEN_HATEFUL[case]
    src = hateful(tmp_path / "src", records)
    out = tmp_path / "out" / "manifest.jsonl"
    res = _import("hateful-memes", src, out, demo_config[0])
    assert res.exit_code == 2, res.output
    assert message in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_broken_mmsb_and_unsafebench(demo_config: Any, tmp_path: Path) -> None:
    src = mmsb(tmp_path / "a", missing=True)
    res = _import("mm-safetybench", src, tmp_path / "out" / "m.jsonl", demo_config[0])
    assert res.exit_code == 2 and "02-HateSpeech.json: record '1': image not found" in res.output
    dup = mmsb(tmp_path / "e")
    qfile = dup / "processed_questions" / "02-HateSpeech.json"
    qfile.write_text(qfile.read_text().replace('"1": {', '"0": {'))
    res = _import("mm-safetybench", dup, tmp_path / "out" / "m.jsonl", demo_config[0])
    assert res.exit_code == 2 and "02-HateSpeech.json: record '0': duplicate key" in res.output, res.output
    bad = [{"image": "images/0.jpg", "text": TEXTS[0], "safety_label": "Maybe"}]
    res = _import("unsafebench", unsafebench(tmp_path / "b", bad), tmp_path / "out" / "m.jsonl", demo_config[0])
    assert res.exit_code == 2 and "test.jsonl:1: field safety_label" in res.output
    dup = [{"id": "x", "image": "images/0.jpg", "text": TEXTS[0], "label": 0},
           {"id": "x", "image": "images/1.jpg", "text": TEXTS[1], "label": 1}]
    res = _import("unsafebench", unsafebench(tmp_path / "c", dup), tmp_path / "out" / "m.jsonl", demo_config[0])
    assert res.exit_code == 2 and "test.jsonl:2: field id: duplicate" in res.output
    corrupt = unsafebench(tmp_path / "d")
    (corrupt.parent / "images" / "1.jpg").write_bytes(b"not an image")
    res = _import("unsafebench", corrupt, tmp_path / "out" / "m.jsonl", demo_config[0])
    assert res.exit_code == 2 and "test.jsonl:2: image 1.jpg is not a readable image" in res.output
    assert not (tmp_path / "out").exists()


def test_curate_interaction_only(demo_config: Any, tmp_path: Path) -> None:
    import torch

    from hybridcert.audits.runner import prepare

    out = tmp_path / "curated" / "manifest.jsonl"
    out.parent.mkdir()
    res = CliRunner().invoke(app, ["dataset", "curate", "--interaction-only", "--config", str(demo_config[0]),
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    audit = prepare(load_spec(demo_config[0]))
    kept = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    grey = torch.full((1, 1, 8, 8), 0.5)
    vocab = json.loads(audit.spec.path(audit.spec.tokens.vocabulary).read_text())
    neutral = torch.tensor([[vocab.index("this"), vocab.index("image")]])
    expected = []
    for item in audit.dataset.inputs:
        t, x = torch.tensor([item.tokens]), torch.from_numpy(item.image)[None]
        if bool(audit.filter(t, x)[0]) and not bool(audit.filter(t, grey)[0]) and not bool(audit.filter(neutral, x)[0]):
            expected.append(item.id)
    assert kept == expected and kept  # the demo's interaction: the text names the digit the image shows
    ds = load_manifest(out, (1, 8, 8), 33, {w: i for i, w in enumerate(vocab)})  # image paths resolve from here
    assert [x.id for x in ds.inputs] == kept
