"""``hybridcert demo``: write the benchmark and an ``audit.toml`` into the output folder, then audit."""

from __future__ import annotations

import json
from pathlib import Path

from hybridcert.audits.demo import BETA, KERNEL, SIGMA, WEIGHTS
from hybridcert.audits.demo.data import MASK_ID, MODEL_VOCAB, WORDS, generate
from hybridcert.results.atomic import write_bytes_atomic, write_text_atomic

DEMO_SEED = 20261125
DEMO_INPUTS = 100
DEMO_N0 = 64
DEMO_N = 1000
DEMO_ALPHA = 0.001
DEMO_MAX_BUDGET = 4
DEMO_RADII = [0.0, 0.1, 0.25, 0.5]


def _toml_value(value: object) -> str:
    return json.dumps(value)  # strings, numbers, booleans and flat lists are valid TOML in JSON spelling


def write_demo(out_dir: Path, n_inputs: int = DEMO_INPUTS, n: int = DEMO_N, device: str = "cpu",
               batch_size: int = 1024, threads: int = 1) -> Path:
    """Write ``out_dir/data`` (manifest, images, vocabulary) and ``out_dir/audit.toml``; return the config path.

    The bundled weights are copied to ``out_dir/model`` and every path in the config is relative to the
    config's folder (``hybridcert audit`` resolves them against it), so the folder can be moved or copied and
    ``hybridcert audit --config out_dir/audit.toml`` still reruns the same audit. One torch thread by default:
    the demo filter is small, and on a shared CPU multi-threaded kernels on small tensors are slower than one
    thread.
    """
    out_dir = Path(out_dir)
    data = out_dir / "data"
    generate(data, n_inputs)
    weights = Path("model") / WEIGHTS.name
    (out_dir / weights).parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out_dir / weights, WEIGHTS.read_bytes())
    sections: dict[str, dict[str, object]] = {
        "noise": {"kernel": KERNEL, "beta": BETA, "sigma": SIGMA, "clamp": False, "pixel_space": "[0,1]"},
        "threat_model": {"kind": "l0"},
        "tokens": {"alphabet_range": [0, len(WORDS)], "model_vocab_size": MODEL_VOCAB, "mask_id": MASK_ID,
                   "vocabulary": "data/vocab.json"},
        "certify": {"tau": 0.5, "alpha": DEMO_ALPHA, "n0": DEMO_N0, "n": n, "sampling": "one-pass",
                    "max_budget": DEMO_MAX_BUDGET, "radii": DEMO_RADII},
        "dataset": {"manifest": "data/manifest.jsonl", "name": "demo-digits", "version": "1",
                    "image_shape": [1, 8, 8]},
        "filter": {"type": "module", "class_path": "hybridcert.audits.demo.model:DemoFilterNet",
                   "weights": weights.as_posix(), "name": "demo-digit-filter", "version": "1"},
        "run": {"device": device, "batch_size": batch_size, "wave": 50, "threads": threads},
        "report": {
            "intended_purpose": "demonstration only: a small filter that flags a (text, image) pair when the text "
                                "names the digit shown in the 8x8 image, standing in for a multimodal safety "
                                "filter; not for deployment",
            "input_selection": f"the first {n_inputs} held-out images of scikit-learn's 8x8 digits (never used "
                               "to train the filter), each paired with a text naming its digit (label 1) or "
                               "another digit (label 0), half and half, from a fixed seed",
            "preprocessing": "pixels scaled to [0, 1] (1 x 8 x 8); texts as token ids of the demo vocabulary "
                             "(data/vocab.json)",
            "out_of_scope": "real photographs, other image sizes, other vocabularies or languages, and any use "
                            "beyond demonstrating the tool",
        },
    }
    lines = ["# hybridcert demo audit: rerun with `hybridcert audit --config audit.toml --out DIR`",
             f"seed = {DEMO_SEED}", ""]
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
        lines.append("")
    config = out_dir / "audit.toml"
    write_text_atomic(config, "\n".join(lines))
    return config
