"""``hybridcert demo --tabular``: a generated table with Adult-like arities, a small scikit-learn model trained
with the audit's own noise as augmentation and saved with skops, then a tabular audit (docs/tabular.md).

Everything is generated here from a fixed seed, offline: 8 categorical fields with the arities of the UCI Adult
data set's categorical columns (2, 5, 6, 7, 9, 15, 16, 42), 3 numeric features, and a binary label that
depends on both (a logistic model with per-category effects and numeric slopes).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from hybridcert.audits.tabular import Schema, TabularAudit, TabularNoise, decode
from hybridcert.results.atomic import write_bytes_atomic, write_text_atomic

SEED = 20261129
ARITIES = (2, 5, 6, 7, 9, 15, 16, 42)
FIELDS = ("sex", "race", "relationship", "workclass", "marital", "occupation", "education", "country")
NUMERIC = (("age", 40.0, 12.0), ("hours", 40.0, 10.0), ("capital", 1000.0, 2500.0))
KERNEL, BETA, SIGMA = "uniform-other", 0.7, 0.5
N_TRAIN = 3000
AUGMENT = 4  # noisy copies per training row, drawn with the audit's noise


def schema() -> Schema:
    cats = tuple((name, tuple(f"{name}-{i}" for i in range(v))) for name, v in zip(FIELDS, ARITIES, strict=True))
    return Schema(cats, NUMERIC, "label")


def generate(n_rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes (n, 8), standardised numeric features (n, 3), labels (n,), from a fixed ground-truth model."""
    truth = np.random.default_rng(SEED)  # the same effects whatever rows are drawn
    effects = [truth.normal(0.0, 1.2, v) for v in ARITIES]
    slopes = np.array([1.0, 0.8, 1.5])
    codes = np.stack([rng.integers(0, v, n_rows) for v in ARITIES], axis=1)
    z = rng.standard_normal((n_rows, len(NUMERIC)))
    logit = sum(effects[j][codes[:, j]] for j in range(len(ARITIES))) + z @ slopes - 0.2
    labels = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-2.0 * logit))).astype(np.int64)
    return codes, z, labels


def _csv(sch: Schema, codes: np.ndarray, z: np.ndarray, labels: np.ndarray) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*sch.columns, "label"])
    raw = decode(sch, codes, z)
    for row, y in zip(raw, labels, strict=True):
        cells = [str(v) for v in row[: len(ARITIES)]] + [f"{float(v):.6f}" for v in row[len(ARITIES):]]
        writer.writerow([*cells, str(int(y))])
    return buf.getvalue()


def train(sch: Schema, codes: np.ndarray, z: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> object:
    """One-hot + standardised numeric + logistic regression, trained on clean rows and AUGMENT noisy copies
    of each (the audit's kernel, beta and sigma): the model meets the noise it will be smoothed with."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    noise = TabularNoise(KERNEL, BETA, SIGMA, ARITIES)
    xs, ys = [decode(sch, codes, z)], [labels]
    for i in range(codes.shape[0]):
        c, zz = noise.sample(codes[i], z[i], AUGMENT, rng)
        xs.append(decode(sch, c, zz))
        ys.append(np.full(AUGMENT, labels[i]))
    x, y = np.concatenate(xs), np.concatenate(ys)
    m = len(ARITIES)
    pipe = Pipeline([
        ("encode", ColumnTransformer([
            ("categories", OneHotEncoder(categories=[list(c) for _, c in sch.categorical], handle_unknown="ignore"),
             list(range(m))),
            ("numeric", StandardScaler(), list(range(m, m + len(NUMERIC)))),
        ])),
        ("classify", LogisticRegression(C=1.0, max_iter=500)),
    ])
    pipe.fit(x, y)
    return pipe


def write_tabular_demo(out_dir: Path, n_inputs: int = 100, n: int = 1000) -> TabularAudit:
    """Write data.csv, schema.json, model.skops and audit.json into ``out_dir``; return the audit."""
    import skops.io as sio

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED + 1)
    sch = schema()
    codes, z, labels = generate(N_TRAIN + n_inputs, rng)
    model = train(sch, codes[:N_TRAIN], z[:N_TRAIN], labels[:N_TRAIN], rng)
    write_text_atomic(out_dir / "schema.json", json.dumps(sch.to_json(), indent=1) + "\n")
    write_text_atomic(out_dir / "data.csv", _csv(sch, codes[N_TRAIN:], z[N_TRAIN:], labels[N_TRAIN:]))
    write_bytes_atomic(out_dir / "model.skops", sio.dumps(model))
    audit = TabularAudit(data=out_dir / "data.csv", schema=out_dir / "schema.json", model=out_dir / "model.skops",
                         kernel=KERNEL, beta=BETA, sigma=SIGMA, n=n, seed=SEED, radii=(0.0, 0.25, 0.5, 1.0),
                         name="demo-tabular", model_name="demo-tabular-logistic")
    write_text_atomic(out_dir / "audit.json", json.dumps({
        "data": "data.csv", "schema": "schema.json", "model": "model.skops", "model_type": "skops",
        "kernel": KERNEL, "beta": BETA, "sigma": SIGMA, "tau": audit.tau, "alpha": audit.alpha, "n0": audit.n0,
        "n": n, "seed": SEED, "radii": list(audit.radii)}, indent=1) + "\n")
    return audit
