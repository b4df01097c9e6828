"""Tabular audits (docs/tabular.md): schema and table checks, the per-field samplers, skops and ONNX adapters,
the audit end to end with its certificates proven by the verifier."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hybridcert.audits.tabular import (
    MISSING,
    Schema,
    SkopsModel,
    TabularAudit,
    TabularNoise,
    decode,
    load_model,
    load_schema,
    load_table,
    load_tabular_config,
    onehot,
    run_tabular_audit,
)

SCHEMA = {
    "label": "y",
    "categorical": [{"name": "color", "categories": ["red", "green", "blue"]},
                    {"name": "size", "categories": ["s", "m"]}],
    "numeric": [{"name": "w", "mean": 10.0, "std": 2.0}],
}
ROWS = "color,size,w,y\nred,s,10.5,1\nblue,m,7.0,0\ngreen,s,12.0,1\n"


def _write(tmp: Path, schema: dict | None = None, rows: str = ROWS) -> tuple[Path, Path]:
    (tmp / "schema.json").write_text(json.dumps(schema or SCHEMA))
    (tmp / "data.csv").write_text(rows)
    return tmp / "schema.json", tmp / "data.csv"


def _model(tmp: Path, sch: Schema) -> Path:
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    codes = np.stack([rng.integers(0, 3, 200), rng.integers(0, 2, 200)], axis=1)
    z = rng.standard_normal((200, 1))
    y = (codes[:, 0] == 0) | (z[:, 0] > 0.5)
    pipe = Pipeline([("enc", ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), [0, 1])],
                                               remainder="passthrough")), ("clf", LogisticRegression())])
    pipe.fit(decode(sch, codes, z), y.astype(int))
    path = tmp / "model.skops"
    sio.dump(pipe, path)
    return path


def test_schema_and_table_are_encoded(tmp_path: Path) -> None:
    schema_path, data_path = _write(tmp_path)
    sch = load_schema(schema_path)
    assert sch.arities == [3, 2] and sch.columns == ["color", "size", "w"]
    table = load_table(data_path, sch)
    np.testing.assert_array_equal(table.codes, [[0, 0], [2, 1], [1, 0]])
    np.testing.assert_allclose(table.z[:, 0], [0.25, -1.5, 1.0])
    assert table.labels is not None and table.labels.tolist() == [1, 0, 1]
    raw = decode(sch, np.array([[3, 1]]), np.array([[0.5]]))
    assert raw[0, 0] == MISSING and raw[0, 1] == "m" and raw[0, 2] == 11.0


@pytest.mark.parametrize(
    ("schema", "rows", "needle"),
    [
        (None, "color,size,w,y\nred,s,1,1\npurple,s,1,0\n",
         "data.csv: row 2: column 'color': 'purple' is not one of the schema's categories"),
        (None, "color,size,w,y\nred,s,nan,1\n", "data.csv: row 1: column 'w': 'nan' is not allowed"),
        (None, "color,size,w,y\nred,s,,1\n", "data.csv: row 1: column 'w': '' is not a number"),
        ({**SCHEMA, "categorical": [{"name": "color", "categories": ["red"]}]}, ROWS,
         "schema.json: column 'color': arity 1; a categorical field needs at least 2 categories"),
        (None, "color,w,y\nred,1,1\n", "data.csv: column 'size' of the schema is missing from the header"),
    ],
)
def test_bad_input_names_file_row_and_column(tmp_path: Path, schema: dict | None, rows: str, needle: str) -> None:
    schema_path, data_path = _write(tmp_path, schema, rows)
    with pytest.raises(ValueError) as info:
        load_table(data_path, load_schema(schema_path))
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_parquet_is_read_like_csv(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    schema_path, data_path = _write(tmp_path)
    sch = load_schema(schema_path)
    pq.write_table(pa.table({"color": ["red", "blue", "green"], "size": ["s", "m", "s"], "w": [10.5, 7.0, 12.0],
                             "y": [1, 0, 1]}), tmp_path / "data.parquet")
    a, b = load_table(data_path, sch), load_table(tmp_path / "data.parquet", sch)
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(a.z, b.z)
    pq.write_table(pa.table({"color": ["red"], "size": ["s"], "w": [float("nan")], "y": [1]}), tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="bad.parquet: row 1: column 'w': nan is not allowed"):
        load_table(tmp_path / "bad.parquet", sch)


@pytest.mark.parametrize("kernel", ["uniform-other", "uniform-all", "absorb"])
def test_sampler_matches_the_kernel_per_field(kernel: str) -> None:
    """Each field follows its kernel at its own arity (docs/theory.md §1): keep rate, uniform others, mask."""
    arities = (2, 5, 16)
    noise = TabularNoise(kernel, 0.4, 0.7, arities)
    rng = np.random.default_rng(1)
    n = 60000
    codes, z = noise.sample(np.array([1, 0, 3]), np.array([0.5, -1.0]), n, rng)
    assert abs(z.mean(axis=0) - [0.5, -1.0]).max() < 0.02 and abs(z.std(axis=0) - 0.7).max() < 0.02
    for j, (v, x) in enumerate(zip(arities, (1, 0, 3), strict=True)):
        freq = np.bincount(codes[:, j], minlength=v + 1) / n
        if kernel == "uniform-other":
            expect = np.full(v + 1, 0.4 / (v - 1))
            expect[x] = 0.6
            expect[v] = 0.0
        elif kernel == "uniform-all":
            expect = np.full(v + 1, 0.4 / v)
            expect[x] += 0.6
            expect[v] = 0.0
        else:
            expect = np.zeros(v + 1)
            expect[x], expect[v] = 0.6, 0.4
        assert np.abs(freq - expect).max() < 0.012, (kernel, v, freq, expect)


def test_skops_untrusted_type_is_refused(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    sio.dump(FunctionTransformer(onehot), tmp_path / "f.skops")  # a function outside skops' trusted set
    untrusted = sio.get_untrusted_types(file=str(tmp_path / "f.skops"))
    assert untrusted
    with pytest.raises(ValueError) as info:
        SkopsModel(tmp_path / "f.skops")
    assert f"f.skops: untrusted type {untrusted[0]!r}" in str(info.value)
    assert SkopsModel(tmp_path / "f.skops", trusted=untrusted).model is not None


def test_onnx_adapter_agrees_with_scikit_learn(tmp_path: Path) -> None:
    """An ONNX model on the encoded input (one-hot + standardised) predicts like its scikit-learn source."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    schema_path, _ = _write(tmp_path)
    sch = load_schema(schema_path)
    rng = np.random.default_rng(2)
    codes = np.stack([rng.integers(0, 4, 300), rng.integers(0, 3, 300)], axis=1)  # code V_j = missing
    codes[:, 0] = np.minimum(codes[:, 0], 3)
    codes[:, 1] = np.minimum(codes[:, 1], 2)
    raw = decode(sch, codes, rng.standard_normal((300, 1)))
    x = onehot(sch, raw)
    y = (x[:, 0] + x[:, 5] > 0.5).astype(int)
    clf = LogisticRegression().fit(x, y)
    (tmp_path / "m.onnx").write_bytes(to_onnx(clf, x[:1], options={"zipmap": False}).SerializeToString())
    model = load_model("onnx", tmp_path / "m.onnx", sch)
    np.testing.assert_array_equal(model.predict(raw), clf.predict(x))


def test_audit_end_to_end_is_proven(tmp_path: Path) -> None:
    """A small audit: results.json with per-field arities, every certificate proven by the verifier."""
    from hybridcert.results.reader import read_results
    from hybridcert.verifier.results import load_results as load_results_file
    from hybridcert.verifier.results import verify_results

    schema_path, data_path = _write(tmp_path)
    sch = load_schema(schema_path)
    model = _model(tmp_path, sch)
    audit = TabularAudit(data=data_path, schema=schema_path, model=model, beta=0.3, sigma=0.5, n0=32, n=300,
                         radii=(0.0, 0.2))
    res = run_tabular_audit(audit, tmp_path / "out")
    assert res.config.noise.vocab_size == [3, 2] and res.config.threat_model.kind == "fields"
    assert read_results(tmp_path / "out" / "results.json").results.aggregates.n_inputs == 3
    proof = verify_results(load_results_file(tmp_path / "out" / "results.json"))
    assert proof.passed and len(proof.certificates) >= 1
    with pytest.raises(ValueError, match="already holds an audit; pass --resume"):
        run_tabular_audit(audit, tmp_path / "out")


def test_cli_bad_table_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    schema_path, _ = _write(tmp_path, rows="color,size,w,y\nred,s,1,1\nred,xl,1,0\n")
    model = _model(tmp_path, load_schema(schema_path))
    (tmp_path / "audit.json").write_text(json.dumps({"data": "data.csv", "schema": "schema.json",
                                                      "model": model.name, "n": 10, "n0": 5}))
    res = subprocess.run([sys.executable, "-m", "hybridcert", "tabular-audit", "--config", str(tmp_path / "audit.json"),
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "data.csv: row 2: column 'size': 'xl' is not one of the schema's categories" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_tabular_demo_cli_signs_verifies_and_its_certificates_are_proven(tmp_path: Path) -> None:
    """hybridcert demo --tabular: generated data, skops model, audit, signed and verified report; then
    hybridcert verify --results proves every certificate; the report says "fields changed" and "standardised"."""
    out = tmp_path / "demo"
    res = subprocess.run([sys.executable, "-m", "hybridcert", "demo", "--tabular", "--out", str(out), "--inputs", "30",
                          "--n", "500"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr + res.stdout
    assert "FAIL" not in res.stdout and "fields changed" in res.stdout
    html = (out / "report.html").read_text()
    assert "fields changed" in html and "standardised units" in html
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["noise"]["vocab_size"] == [2, 5, 6, 7, 9, 15, 16, 42]
    ver = subprocess.run([sys.executable, "-m", "hybridcert", "verify", "--results", str(out)], capture_output=True,
                         text=True, timeout=600)
    assert ver.returncode == 0 and "0 not proved" in ver.stdout + ver.stderr, ver.stdout + ver.stderr


@pytest.mark.slow
def test_cli_untrusted_skops_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    _write(tmp_path)
    sio.dump(FunctionTransformer(onehot), tmp_path / "model.skops")
    (tmp_path / "audit.json").write_text(json.dumps({"data": "data.csv", "schema": "schema.json",
                                                      "model": "model.skops", "n": 10, "n0": 5}))
    res = subprocess.run([sys.executable, "-m", "hybridcert", "tabular-audit", "--config", str(tmp_path / "audit.json"),
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "model.skops: untrusted type 'hybridcert.audits.tabular.onehot'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------------------
# Checkpoint and resume (issue 14): the image/token runner's log, lock and --resume, per record
# ----------------------------------------------------------------------------------------------------------


def _rows(count: int) -> str:
    rng = np.random.default_rng(5)
    colors, sizes = ["red", "green", "blue"], ["s", "m"]
    return "color,size,w,y\n" + "".join(
        f"{colors[rng.integers(3)]},{sizes[rng.integers(2)]},{rng.normal(10, 2):.3f},{rng.integers(2)}\n"
        for _ in range(count))


def _small_audit(tmp: Path, rows: int = 6, **kw: object) -> TabularAudit:
    schema_path, data_path = _write(tmp, rows=_rows(rows))
    if not (tmp / "model.skops").exists():
        _model(tmp, load_schema(schema_path))
    args: dict = {"beta": 0.3, "sigma": 0.5, "n0": 32, "n": 300, "radii": (0.0, 0.2), **kw}
    return TabularAudit(data=data_path, schema=schema_path, model=tmp / "model.skops", **args)


def _det(out: Path) -> str:
    from hybridcert.results.canonical import canonical_dumps
    from hybridcert.results.schema import deterministic_view

    return canonical_dumps(deterministic_view(json.loads((out / "results.json").read_text(encoding="utf-8"))))


def test_counts_do_not_depend_on_batch_size(tmp_path: Path) -> None:
    """batch_size only cuts the copies into model calls; the copies are drawn in chunk_size blocks from one
    generator per (seed, record, stream), whatever the batches and waves."""
    from dataclasses import replace

    audit = _small_audit(tmp_path, chunk_size=64)
    views = set()
    for b, w in ((7, 1), (64, 4), (1000, 16)):  # the wave does not matter either
        run_tabular_audit(replace(audit, batch_size=b, wave=w), tmp_path / f"b{b}")
        views.add(_det(tmp_path / f"b{b}"))
    assert len(views) == 1
    # the seeding scheme, pinned: with one block (chunk_size >= n, the default 4096 here) the copies are one
    # TabularNoise.sample call on SeedSequence(seed, spawn_key=(row index, stream)), as before batch_size and
    # chunk_size were separate settings, so earlier results are kept bit for bit
    from hybridcert.audits.tabular import count_class_one

    sch = load_schema(audit.schema)
    table, model = load_table(audit.data, sch), load_model("skops", audit.model, sch)
    noise = TabularNoise(audit.kernel, audit.beta, audit.sigma, tuple(sch.arities))
    rng = np.random.default_rng(np.random.SeedSequence(audit.seed, spawn_key=(2, 1)))
    c, z = noise.sample(table.codes[2], table.z[2], 300, rng)
    direct = int((model.predict(decode(sch, c, z)) == 1).sum())
    assert count_class_one(model, sch, noise, table.codes[2], table.z[2], audit.seed, 2, 1, 300, 4096, 7) == direct


def test_resume_keeps_logged_records_and_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    from hybridcert.audits.checkpoint import LOG_NAME

    audit = _small_audit(tmp_path)
    run_tabular_audit(audit, tmp_path / "full")
    lines = (tmp_path / "full" / LOG_NAME).read_bytes().split(b"\n")
    assert len([x for x in lines if x]) == 1 + 6  # header + one line per record
    part = tmp_path / "part"
    part.mkdir()
    # a run killed after two records, in the middle of writing the third line
    (part / LOG_NAME).write_bytes(b"\n".join(lines[:3]) + b"\n" + lines[3][:40])
    with pytest.raises(ValueError, match="already holds an audit"):
        run_tabular_audit(audit, part)
    run_tabular_audit(audit, part, resume=True)
    after = (part / LOG_NAME).read_bytes()
    assert after.startswith(b"\n".join(lines[:3]) + b"\n")  # the logged records were kept, not redone
    ids = [json.loads(x)["result"]["id"] for x in after.split(b"\n")[1:] if x]
    assert ids == [f"row-{i}" for i in range(1, 7)]  # nothing lost, nothing repeated
    assert _det(part) == _det(tmp_path / "full")
    # another configuration cannot continue this log
    from dataclasses import replace

    with pytest.raises(ValueError, match="different audit"):
        run_tabular_audit(replace(audit, n=301), part, resume=True)
    with pytest.raises(ValueError, match="different audit"):
        run_tabular_audit(replace(audit, chunk_size=100), part, resume=True)


def test_a_second_run_on_a_locked_folder_is_refused(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hybridcert.audits.checkpoint import LOCK_NAME, OutputLock
    from hybridcert.cli import app

    audit = _small_audit(tmp_path, rows=3)
    (tmp_path / "audit.json").write_text(json.dumps({"data": "data.csv", "schema": "schema.json",
                                                      "model": "model.skops", "n": 50, "n0": 8}))
    out = tmp_path / "out"
    with OutputLock(out):  # another audit holds the folder
        with pytest.raises(ValueError, match="in use by another audit"):
            run_tabular_audit(audit, out)
        res = CliRunner().invoke(app, ["tabular-audit", "--config", str(tmp_path / "audit.json"), "--out", str(out)])
        assert res.exit_code == 2 and "in use by another audit" in res.output
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    assert not out.exists()  # a refused start leaves nothing behind


def test_hybridcert_audit_runs_a_json_config_as_a_tabular_audit(tmp_path: Path) -> None:
    """``hybridcert audit --config audit.json`` is ``hybridcert tabular-audit`` (--batch-size changes nothing)."""
    from typer.testing import CliRunner

    from hybridcert.cli import app

    _small_audit(tmp_path, rows=3)
    config = tmp_path / "audit.json"
    config.write_text(json.dumps({"data": "data.csv", "schema": "schema.json", "model": "model.skops", "n": 60,
                                  "n0": 8, "chunk_size": 16}))
    runner = CliRunner()
    a = runner.invoke(app, ["audit", "--config", str(config), "--out", str(tmp_path / "a"), "--batch-size", "7"])
    b = runner.invoke(app, ["tabular-audit", "--config", str(config), "--out", str(tmp_path / "b")])
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert _det(tmp_path / "a") == _det(tmp_path / "b")
    for flags, needle in ((["--executor", "ray"], "runs in-process"), (["--device", "cuda"], "runs on the CPU")):
        res = runner.invoke(app, ["audit", "--config", str(config), "--out", str(tmp_path / "c"), *flags])
        assert res.exit_code == 2 and needle in res.output and not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('"n": true', "field n: Input should be a valid integer, got True"),
        ('"n": 100.0', "field n: Input should be a valid integer, got 100.0"),
        ('"beta": "0.5"', "field beta: Input should be a valid number"),
        ('"radii": [0.0, true]', "field radii: Input should be a valid number"),
        ('"n": 10, "n": 20', "appears twice"),
        ('"sigma": NaN', "NaN"),
    ],
)
def test_tabular_config_types_are_strict(tmp_path: Path, text: str, needle: str) -> None:
    config = tmp_path / "audit.json"
    config.write_text('{"data": "t.csv", "schema": "s.json", "model": "m.skops", ' + text + "}")
    with pytest.raises(ValueError, match=r"audit\.json") as info:
        load_tabular_config(config)
    assert needle in str(info.value)
