"""The ``hybridcert`` command: a thin Typer layer over the package (no logic of its own).

Exit codes: 0 pass, 1 a check or gate failed, 2 usage or input error, >= 3 internal error.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from hybridcert import __version__
from hybridcert.results.atomic import write_text_atomic


class _Group(TyperGroup):
    """Help without a ``<bool>`` type column for flags (typer shows one for every boolean option, --help too)."""

    def get_params(self, ctx: Any) -> Any:
        return _plain_flags(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if isinstance(cmd, TyperGroup) and not isinstance(cmd, _Group):
            cmd.__class__ = _Group  # a sub-app declared without cls=_Group (same state, only these overrides)
        elif cmd is not None and not isinstance(cmd, _Group):
            _plain_flags(cmd.get_params(ctx))
        return cmd


def _plain_flags(params: Any) -> Any:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


app = typer.Typer(
    cls=_Group,
    name="hybridcert",
    help="Certificates for hybrid (token + image) randomized smoothing: compute, verify, audit, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


@contextmanager
def _progress_bar(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr when it is a terminal (None otherwise): ``update(done, total)``."""
    if not err.is_terminal:
        yield None
        return
    from rich.progress import Progress

    with Progress(console=err, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


#: An error line longer than this is cut: a message that quotes a hostile value (a 10 MB id) stays one short line.
MAX_ERROR_CHARS = 1000


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one line on stderr (its first line, cut at ``MAX_ERROR_CHARS``) and exit with ``code``."""
    line = next((ln for ln in message.splitlines() if ln.strip()), message)
    if len(line) > MAX_ERROR_CHARS:
        line = f"{line[:MAX_ERROR_CHARS]}... ({len(line) - MAX_ERROR_CHARS} more characters cut)"
    err.print(f"error: {line}", markup=False)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn ValueError (bad input) into one line and exit code 2; anything unexpected into exit code 3."""
    try:
        yield
    except typer.Exit:
        raise
    except (ValueError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERNAL)
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        fail(f"internal error: {type(exc).__name__}: {exc}", EXIT_INTERNAL)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, allow_nan=False) + "\n")


def json_number(x: float) -> float | str:
    """Finite floats as numbers; infinities as the strings "inf" / "-inf" (JSON has no infinity)."""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


@app.callback(invoke_without_command=True)
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(f"hybridcert {__version__}")
        raise typer.Exit(0)


# ------------------------------------------------------------------------------------------------------
# certify (theory)
# ------------------------------------------------------------------------------------------------------


@app.command()
def certify(
    p_a: Annotated[float | None, typer.Option("--p-a", help="Lower bound on the clean smoothed probability.")] = None,
    kernel: Annotated[str, typer.Option(help="uniform-other | uniform-all | absorb")] = "uniform-other",
    vocab: Annotated[int, typer.Option(help="Alphabet size V.")] = 30000,
    beta: Annotated[float, typer.Option(help="Token noise level in (0, 1].")] = 0.25,
    sigma: Annotated[float, typer.Option(help="Image noise standard deviation (> 0).")] = 1.0,
    tau: Annotated[float, typer.Option(help="Decision threshold in (0, 1).")] = 0.5,
    budget: Annotated[int | None, typer.Option(help="Token budget d: report r*(d).")] = None,
    radius: Annotated[float | None, typer.Option(help="Image l2 radius: report the certified budget.")] = None,
    max_budget: Annotated[int | None, typer.Option(help="Largest budget in the frontier.")] = None,
    jsonl: Annotated[
        Path | None, typer.Option("--jsonl", help="Many configurations, one JSON object per line.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Compute the joint certificate (docs/theory.md §4) for one configuration from flags, or many from a JSONL file."""
    from hybridcert.theory.batch import certify_config

    with user_errors():
        if jsonl is not None:
            if p_a is not None:
                fail("give either --jsonl or --p-a, not both")
            configs = list(_read_jsonl(jsonl))
        else:
            if p_a is None:
                fail("missing --p-a (or give --jsonl FILE)")
            flags = {"p_a": p_a, "kernel": kernel, "vocab": vocab, "beta": beta, "sigma": sigma, "tau": tau,
                     "budget": budget, "radius": radius, "max_budget": max_budget}
            configs = [("", flags)]
        results = []
        for where, cfg in configs:
            try:
                results.append(certify_config(cfg))
            except ValueError as exc:
                raise ValueError(f"{where}{exc}") from exc
    results = [_jsonable(r) for r in results]
    if as_json:
        print_json(results if jsonl is not None else results[0])
        return
    for res in results:
        _print_certificate(res)


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    from hybridcert.jsonl import decode_utf8, json_objects

    for number, obj in json_objects(decode_utf8(path.read_bytes(), str(path)), str(path)):
        yield f"{path}:{number}: ", obj


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float):
        return json_number(obj)
    return obj


def _print_certificate(res: dict[str, Any]) -> None:
    cfg = res["config"]
    out.print(
        f"[bold]{cfg['kernel']}[/] V={cfg['vocab']} beta={cfg['beta']} sigma={cfg['sigma']} "
        f"tau={cfg['tau']} p_a={cfg['p_a']}"
    )
    d, eps, tau = cfg["budget"], cfg["radius"], cfg["tau"]
    if "worst_case" in res:
        verdict = "certified" if res["certified"] else f"not certified at tau = {tau}"
        out.print(f"  worst case at d={d}, eps={eps}: {res['worst_case']:.12g}: {verdict}")
    if "certified_radius" in res:
        if res["certified_radius"] is None:
            wc = res["worst_case_at_zero_radius"]
            why = f"the worst case at eps = 0 is {wc:.3g} < tau = {tau}" if wc < tau else f"some d' < {d} fails"
            out.print(f"  certified radius at d={d}: not certified ({why})")
        else:
            out.print(f"  certified radius at d={d}: {res['certified_radius']}")
    if "certified_budget" in res:
        if res["certified_budget"] is None:
            out.print(f"  certified budget at eps={eps}: not certified (not even d = 0)")
        else:
            out.print(f"  certified budget at eps={eps}: {res['certified_budget']}")
    table = Table("budget d", "certified radius r*(d)", box=None, pad_edge=False)
    for row in res["frontier"]:
        table.add_row(str(row["budget"]), f"{row['radius']}")
    if not res["frontier"]:
        out.print("  not certified at d = 0, eps = 0")
    else:
        out.print(table)


# ------------------------------------------------------------------------------------------------------
# verify (verifier)
# ------------------------------------------------------------------------------------------------------


@app.command()
def verify(
    quick: Annotated[bool, typer.Option("--quick", help="Small grid for CI (the default, under a minute).")] = False,
    full: Annotated[bool, typer.Option("--full", help="Large grid for audits (minutes).")] = False,
    results: Annotated[
        Path | None, typer.Option("--results", help="Prove every certificate of an audit instead: its folder or "
                                                  "results.json.")
    ] = None,
    check: Annotated[
        list[str] | None, typer.Option("--check", help="Run only this check (repeatable): symbolic, highprec, "
                                       "properties, interval.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random grid.")] = 20261125,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    html: Annotated[Path | None, typer.Option("--html", help="Also write an HTML verification report here.")] = None,
) -> None:
    """Cross-check the certificate engine (SymPy, 50-digit NP integration, Hypothesis, interval proofs), or
    prove every certificate of a results file. Exit 0 only when everything agrees / is proven."""
    from hybridcert.verifier import html as vhtml
    from hybridcert.verifier.results import load_results, verify_results
    from hybridcert.verifier.runner import CHECKS, Grid, run_verification

    def progress(msg: str) -> None:
        if err.is_terminal:
            err.print(msg, markup=False)

    with user_errors():
        if quick and full:
            fail("give --quick or --full, not both")
        if results is not None:
            if quick or full or check:
                fail("--results proves a results file; --quick, --full and --check apply to the checks")
            if results.is_dir():  # an audit folder, as compare and report accept
                results = results / "results.json"
            loaded = load_results(results)
            with _progress_bar("proving distinct certificate rows") as bar:
                verification = verify_results(loaded, str(results), progress=bar)
            data = verification.to_dict()
        else:
            unknown = [c for c in (check or []) if c not in CHECKS]
            if unknown:
                fail(f"unknown check {unknown[0]!r}; expected one of {', '.join(CHECKS)}")
            grid = Grid.full(seed) if full else Grid.quick(seed)
            report = run_verification(grid, checks=tuple(check or CHECKS), progress=progress)
            data = report.to_dict()
        if html is not None:
            page = vhtml.render_html(results=data) if results is not None else vhtml.render_html(report=data)
            write_text_atomic(html, page)
    if as_json:
        print_json(data)
    elif results is not None:
        _print_results_verification(data)
    else:
        _print_verification(data)
    if not data["passed"]:
        raise typer.Exit(EXIT_FAILED)


def _print_verification(data: dict[str, Any]) -> None:
    table = Table("check", "cases", "max abs error", "max rel error", "seconds", "verdict", box=None, pad_edge=False)
    for c in data["checks"]:
        table.add_row(c["name"], str(c["cases"]), _fmt_err(c["max_abs_error"]), _fmt_err(c["max_rel_error"]),
                      f"{c['seconds']:.1f}", c["verdict"])
    out.print(f"hybridcert verify ({data['grid']['name']} grid, seed {data['grid']['seed']}): "
              f"{'PASS' if data['passed'] else 'FAIL'} in {data['seconds']:.1f} s")
    out.print(table)
    for c in data["checks"]:
        for line in c["failures"]:
            out.print(f"FAILED {c['name']}: {line}", markup=False)
        if c["n_failures"] > len(c["failures"]):
            out.print(f"... and {c['n_failures'] - len(c['failures'])} more {c['name']} failures", markup=False)


def _fmt_err(x: Any) -> str:
    return "-" if x is None else (x if isinstance(x, str) else f"{x:.2e}")


def _print_results_verification(data: dict[str, Any]) -> None:
    n = data["noise"]
    out.print(f"{data['source']}: {data['n_certificates']} certificates ({n['kernel']} V={n['vocab_size']} "
              f"beta={n['beta']} sigma={n['sigma']}): {data['n_certificates'] - data['n_failed']} proved, "
              f"{data['n_failed']} not proved", markup=False)
    for c in data["certificates"]:
        if not c["proved"]:
            radius = "infinite" if c["radius_infinite"] else repr(c["radius"])
            out.print(f"NOT PROVED: input {c['id']} (index {c['index']}) budget {c['budget']} radius {radius}: "
                      f"{c['reason']}", markup=False)


# ------------------------------------------------------------------------------------------------------
# demo, audit (audits)
# ------------------------------------------------------------------------------------------------------


def _progress_callback() -> tuple[Any, Any]:
    """A rich progress bar on stderr (off when stderr is not a terminal) and its update callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("certifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=err, disable=not sys.stderr.isatty(), transient=True)
    task = bar.add_task("audit", total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


@contextmanager
def _step(message: str) -> Iterator[None]:
    """A spinner on stderr while a long step runs (only on a terminal; nothing when output is redirected)."""
    if not err.is_terminal:
        yield
        return
    with err.status(message):
        yield


def _print_audit_summary(results: Any, seconds: float, out_dir: Path) -> None:
    from hybridcert.audits.runner import summary_rows

    agg = results.aggregates
    cfg = results.config
    out.print(
        f"{results.dataset.name}: {agg.n_inputs} inputs, {cfg.noise.kernel} V={cfg.noise.vocab_size} "
        f"beta={cfg.noise.beta} sigma={cfg.noise.sigma}, tau={cfg.tau}, alpha={cfg.alpha}, n={cfg.n}, "
        f"{cfg.threat_model.kind}; clean (smoothed) accuracy {agg.clean_rate:.1%}, abstain {agg.abstain}, "
        f"{seconds:.1f} s"
    )
    radii, rows = summary_rows(results)
    table = Table("certified rate", *[f"eps={r:g}" for r in radii], box=None, pad_edge=False)
    for budget, rates in rows:
        table.add_row(f"d={budget}", *[f"{rate:.0%}" for rate in rates])
    out.print(table)
    out.print(f"wrote {out_dir / 'results.json'}")


@app.command()
def audit(
    config: Annotated[Path, typer.Option("--config", help="The audit.toml to run (or a tabular audit's .json).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (results.json and the audit log).")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted audit in --out.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Discard an earlier audit in --out.")] = False,
    device: Annotated[str | None, typer.Option(help="Override run.device (auto, cpu, cuda, ...).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override run.batch_size (samples per forward).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json's aggregates as JSON.")] = False,
    executor: Annotated[
        str | None, typer.Option(help="Override run.executor: in-process, or ray (needs hybridcert\\[ray]).")
    ] = None,
) -> None:
    """Certify a filter on a dataset (docs/theory.md §4, §5): results.json plus a resumable log in --out. A .json config
    is a tabular audit (docs/tabular.md), as with tabular-audit."""
    import time

    from hybridcert.audits.runner import audit_from_file

    with user_errors():
        if batch_size is not None and batch_size < 1:
            fail(f"--batch-size must be >= 1, got {batch_size}")
        start = time.perf_counter()
        bar, update = _progress_callback()
        with bar:
            results = audit_from_file(config, out_dir, resume=resume, overwrite=overwrite, device=device,
                                      batch_size=batch_size, progress=update, executor=executor,
                                      warn=lambda line: err.print(f"warning: {line}", markup=False))
    if as_json:
        print_json(results.aggregates.model_dump(mode="json"))
        return
    _print_audit_summary(results, time.perf_counter() - start, out_dir)


@app.command()
def probe(
    config: Annotated[Path, typer.Option("--config", help="The audit.toml whose filter and dataset to probe.")],
    inputs: Annotated[int, typer.Option("--inputs", help="How many of the first inputs to probe.")] = 4,
    samples: Annotated[int, typer.Option("--samples", help="Noisy samples per input for the decision rate.")] = 8,
    device: Annotated[str | None, typer.Option(help="Override run.device (auto, cpu, cuda, ...).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override run.batch_size (samples per forward).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the probe as JSON.")] = False,
) -> None:
    """Check a filter before an audit: prompt length, clean score, noisy decision rate, speed, memory."""
    from hybridcert.audits.config import load_spec
    from hybridcert.audits.probe import probe as run_probe

    with user_errors():
        if batch_size is not None and batch_size < 1:
            fail(f"--batch-size must be >= 1, got {batch_size}")
        report = run_probe(load_spec(config), inputs=inputs, samples=samples, device=device, batch_size=batch_size)
    if as_json:
        print_json(report.as_dict())
        return
    out.print(f"filter {report.filter} on {report.device}", markup=False)
    table = Table("input", "prompt tokens", "clean score", "clean decision", "noisy flag rate")
    for p in report.inputs:
        score = "-" if p.clean_score is None else f"{p.clean_score:+.4f}"
        table.add_row(p.id, str(p.prompt_tokens), score, "flag" if p.clean_decision else "no flag",
                      f"{p.noisy_rate:.2f} ({p.noisy_samples} samples)")
    out.print(table)
    out.print(f"{report.samples_per_second:.1f} samples/s at batch size {report.batch_size}; "
              f"peak memory {report.peak_memory_mib:.0f} MiB ({report.memory_kind})", markup=False)
    if report.largest_batch is not None:
        out.print("(CUDA search: halving from run.batch_size on out-of-memory, else doubling up to 16 times it)",
                  markup=False)
        if report.largest_batch == 0:
            out.print("even a batch of 1 runs out of GPU memory: use a smaller dtype or another device", markup=False)
        else:
            out.print(f"largest batch that fits: {report.largest_batch}; put batch_size = {report.largest_batch} "
                      "in [run]", markup=False)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder: data, model, audit.toml, results.json, "
                                                        "the signed report.")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue the demo already in --out (its audit.toml), "
                                                          "then sign and verify the report.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace the demo already in --out.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", hidden=True, help="Same as --force.")] = False,
    device: Annotated[str, typer.Option(help="cpu (default), cuda or auto.")] = "cpu",
    inputs: Annotated[int, typer.Option("--inputs", help="Number of demo inputs (1..300).")] = 100,
    n: Annotated[int, typer.Option("--n", help="Estimation samples per input.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the aggregates as JSON.")] = False,
    identity: Annotated[
        Path | None,
        typer.Option(help="Demo signing identity folder (default: OUT-demo-identity, created if absent)."),
    ] = None,
    report: Annotated[bool, typer.Option(help="End with a signed, verified report (--no-report: audit only).")] = True,
    tabular: Annotated[bool, typer.Option("--tabular", help="The tabular demo instead: a generated table with "
                                          "Adult-like arities, a skops scikit-learn model (docs/tabular.md).")] = False,
) -> None:
    """The bundled offline demo: digits x digit names, a small noise-trained filter, a full audit, and a report
    signed with a clearly labelled demo identity, then verified. A non-empty --out needs --resume or --force.
    --tabular runs the tabular demo (budgets count fields changed; radii are in standardised units)."""
    import time

    if tabular:
        _tabular_demo(out_dir, force or overwrite, resume, inputs, n, as_json, identity, report)
        return

    from hybridcert.audits.checkpoint import LOG_NAME
    from hybridcert.audits.demo.run import write_demo
    from hybridcert.audits.runner import audit_from_file

    force = force or overwrite
    with user_errors():
        start = time.perf_counter()
        if resume and force:
            fail("give --resume or --force, not both")
        if out_dir.exists() and not out_dir.is_dir():
            fail(f"--out {out_dir} exists and is not a folder")
        earlier = out_dir.is_dir() and any(out_dir.iterdir())
        if earlier and not (resume or force):
            fail(f"{out_dir} is not empty (an earlier demo?); pass --resume to continue it, --force to replace it, "
                 "or choose another --out")
        config = out_dir / "audit.toml"
        continuing = resume and config.is_file() and (out_dir / LOG_NAME).is_file()
        if continuing:
            err.print(f"resuming the demo in {out_dir} with its audit.toml (--inputs, --n and --device are not "
                      "used)", markup=False)
        else:
            if force and earlier:
                err.print(f"--force: replacing the demo in {out_dir}", markup=False)
            with _step("writing the demo data"):
                config = write_demo(out_dir, n_inputs=inputs, n=n, device=device)
        bar, update = _progress_callback()
        with bar:
            results = audit_from_file(config, out_dir, resume=continuing, overwrite=not continuing,
                                      progress=update)
        ident_dir, signed, checks = _sign_demo(out_dir, identity, report)
    verified = all(c.ok for c in checks)
    if as_json:
        print_json(_demo_json(results, report, verified, checks))
    else:
        _print_audit_summary(results, time.perf_counter() - start, out_dir)
        if report:
            _print_demo_report(signed, ident_dir, checks)
        _print_demo_next_steps(out_dir, ident_dir, report)
    if report and not verified:
        raise typer.Exit(EXIT_FAILED)


@app.command("tabular-audit")
def tabular_audit(
    config: Annotated[Path, typer.Option("--config", help="The tabular audit configuration (JSON, docs/tabular.md).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (results.json, results.log.jsonl).")],
    resume: Annotated[bool, typer.Option("--resume",
                                         help="Continue a killed audit from OUT/results.log.jsonl.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite",
                                            help="Start again in a folder that holds an audit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the aggregates as JSON.")] = False,
) -> None:
    """Audit a scikit-learn (skops) or ONNX model on a CSV or Parquet table with a schema: budgets count
    categorical fields changed, radii are l2 in standardised units. Bad input is one line naming file, row and
    column, and nothing is written. Each finished record is logged (fsynced) to OUT/results.log.jsonl; --resume
    continues a killed run; one audit at a time per folder (docs/tabular.md)."""
    import time

    from hybridcert.audits.tabular import tabular_audit_from_file

    with user_errors():
        start = time.perf_counter()
        bar, update = _progress_callback()
        with bar:
            results = tabular_audit_from_file(config, out_dir, resume=resume, overwrite=overwrite, progress=update)
    if as_json:
        print_json(results.aggregates.model_dump(mode="json"))
    else:
        _print_audit_summary(results, time.perf_counter() - start, out_dir)


def _tabular_demo(out_dir: Path, force: bool, resume: bool, inputs: int, n: int, as_json: bool,
                  identity: Path | None, report: bool) -> None:
    import shutil
    import time

    from hybridcert.audits.demo.tabular import write_tabular_demo
    from hybridcert.audits.tabular import run_tabular_audit

    with user_errors():
        start = time.perf_counter()
        if resume:
            fail("--resume is not available for the tabular demo (it takes seconds): use --force")
        if not 1 <= inputs <= 1000:
            fail(f"--inputs must lie in 1..1000 for the tabular demo, got {inputs}")
        if out_dir.exists() and not out_dir.is_dir():
            fail(f"--out {out_dir} exists and is not a folder")
        if out_dir.is_dir() and any(out_dir.iterdir()):
            if not force:
                fail(f"{out_dir} is not empty (an earlier demo?); pass --force to replace it or choose another --out")
            if not all((out_dir / name).is_file() for name in ("audit.json", "schema.json", "model.skops")):
                fail(f"--force deletes only an earlier tabular demo, and {out_dir} does not hold one "
                     "(audit.json, schema.json, model.skops): choose another --out")
            err.print(f"--force: replacing the demo in {out_dir}", markup=False)
            shutil.rmtree(out_dir)
        with _step("generating the table and training the model"):
            audit = write_tabular_demo(out_dir, n_inputs=inputs, n=n)
        bar, update = _progress_callback()
        with bar:
            results = run_tabular_audit(audit, out_dir, progress=update)
        ident_dir, signed, checks = _sign_demo(out_dir, identity, report)
    verified = all(c.ok for c in checks)
    if as_json:
        print_json(_demo_json(results, report, verified, checks))
    else:
        _print_audit_summary(results, time.perf_counter() - start, out_dir)
        out.print("budgets d count categorical fields changed; radii eps are l2 in standardised units",
                  markup=False)
        if report:
            _print_demo_report(signed, ident_dir, checks)
        q = __import__("shlex").quote
        out.print(f"next:\n  prove its radii:    hybridcert verify --results {q(str(out_dir))}", markup=False)
    if report and not verified:
        raise typer.Exit(EXIT_FAILED)


def _sign_demo(out_dir: Path, identity: Path | None, report: bool) -> tuple[Path, Any, list[Any]]:
    """The demo identity's folder and, with --report, the demo's signed report and its verification checks
    (none without)."""
    ident_dir = identity if identity is not None else out_dir.parent / f"{out_dir.name}-demo-identity"
    if not report:
        return ident_dir, None, []
    from hybridcert.reports.publish import demo_report

    with _step("rendering, signing and verifying the report"):
        signed, checks = demo_report(out_dir, ident_dir)
    return ident_dir, signed, checks


def _demo_json(results: Any, report: bool, verified: bool, checks: list[Any]) -> dict[str, Any]:
    return {**results.aggregates.model_dump(mode="json"),
            "report": {"signed": report, "verified": verified if report else None,
                       "checks": [c.as_json() for c in checks]}}


def _print_demo_report(signed: Any, ident_dir: Path, checks: list[Any]) -> None:
    out.print(f"signed report {signed.report_id} with the DEMO identity in {ident_dir} "
              "(not for compliance use); verification:", markup=False)
    for c in checks:
        out.print("  " + c.line(), markup=False)


def _print_demo_next_steps(out_dir: Path, ident_dir: Path, report: bool) -> None:
    import shlex

    q = shlex.quote
    out.print("next:", markup=False)
    if report:
        out.print(f"  open the report:    xdg-open {q(str(out_dir / 'report.html'))}   (or report.pdf; "
                  "`open` on macOS)", markup=False)
        out.print(f"  verify it:          hybridcert verify-report {q(str(out_dir))} "
                  f"--trust {q(str(ident_dir / 'trust-anchor.crt'))}", markup=False)
    else:
        out.print(f"  sign a report:      hybridcert report {q(str(out_dir))} --identity DIR   "
                  "(DIR from `hybridcert keys init`)", markup=False)
    out.print(f"  prove its radii:    hybridcert verify --results {q(str(out_dir))}", markup=False)
    out.print(f"  rerun the audit:    hybridcert audit --config {q(str(out_dir / 'audit.toml'))} --out OTHER_DIR",
              markup=False)


# ------------------------------------------------------------------------------------------------------
# attack (attacks)
# ------------------------------------------------------------------------------------------------------


@app.command()
def attack(
    config: Annotated[Path, typer.Option("--config", help="The audit.toml whose filter and dataset are attacked.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder (attack.json, images/, the attack log).")],
    points: Annotated[
        list[str] | None, typer.Option("--points", help="A budget d:eps to attack (repeatable; default: three "
                                       "corners of the audit's grid).")
    ] = None,
    results: Annotated[
        Path | None, typer.Option("--results", help="The audit's results.json (default: run the audit into "
                                  "OUT/audit).")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted attack in --out.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Discard an earlier attack in --out.")] = False,
    method: Annotated[str, typer.Option(help="gradient (GCG-style tokens + l2 PGD) or random (same queries).")] = (
        "gradient"),
    steps: Annotated[int, typer.Option(help="Search rounds per input and point.")] = 12,
    samples: Annotated[int, typer.Option(help="m: noise samples per objective evaluation.")] = 32,
    candidates: Annotated[int, typer.Option(help="Token swaps evaluated per round.")] = 12,
    n: Annotated[int | None, typer.Option(help="Fresh samples for the re-estimate (default: the audit's n).")] = None,
    device: Annotated[str | None, typer.Option(help="Override run.device.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override run.batch_size.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the per-point summary as JSON.")] = False,
) -> None:
    """Attack every input at each point (d, eps) within the threat model and put the attacked robust rate (an
    upper bound) next to the certified rate (a lower bound). Exit 1 on a soundness alarm."""
    from hybridcert.attacks.engine import AttackSettings
    from hybridcert.attacks.run import attack_from_file, parse_point

    with user_errors():
        if n is not None and not 1 <= n <= 10**9:
            fail(f"--n must lie in [1, 1e9], got {n}")
        if batch_size is not None and batch_size < 1:
            fail(f"--batch-size must be >= 1, got {batch_size}")
        parsed = [parse_point(p) for p in points] if points else None
        settings = AttackSettings(steps=steps, samples=samples, candidates=candidates, method=method)  # type: ignore[arg-type]
        bar, update = _progress_callback()
        with bar:
            report = attack_from_file(config, out_dir, parsed, settings, results_path=results, n=n, resume=resume,
                                      overwrite=overwrite, device=device, batch_size=batch_size, progress=update)
    if as_json:
        print_json({"summary": report["summary"], "alarms": report["alarms"]})
    else:
        table = Table("d", "eps", "certified (lower bound) [95% CI]", "attacked robust (upper bound) [95% CI]",
                      "flipped", "alarms", box=None, pad_edge=False)
        for row in report["summary"]:
            c, a = row["certified"], row["attacked_robust"]
            table.add_row(str(row["budget"]), f"{row['radius']:g}",
                          f"{c['rate']:.3f} [{c['interval'][0]:.3f}, {c['interval'][1]:.3f}]",
                          f"{a['rate']:.3f} [{a['interval'][0]:.3f}, {a['interval'][1]:.3f}]",
                          f"{row['successes']}/{row['attacked']}", str(len(row["alarms"])))
        out.print(table)
        for alarm in report["alarms"]:
            out.print(f"SOUNDNESS ALARM: input {alarm['id']} certified at d={alarm['budget']}, eps={alarm['radius']}"
                      " but the attacked point flips the decision significantly (a bug, or the alpha event)",
                      markup=False)
        out.print(f"wrote {out_dir / 'attack.json'}", markup=False)
    if report["alarms"]:
        raise typer.Exit(EXIT_FAILED)


# ------------------------------------------------------------------------------------------------------
# dataset import / curate (audits.importers)
# ------------------------------------------------------------------------------------------------------

dataset_app = typer.Typer(help="Import public datasets into an audit manifest; curate the interaction-only subset.",
                          no_args_is_help=True)
app.add_typer(dataset_app, name="dataset")


def _tokenizer_for(spec: Any) -> Any:
    from hybridcert.audits.importers import make_tokenizer

    if spec.tokens.vocabulary:
        return make_tokenizer(spec)
    from hybridcert.audits.preparation import build_filter, run_device

    filt, _ = build_filter(spec.filter, spec, run_device("cpu"), False)
    return make_tokenizer(spec, filt)


@dataset_app.command("import")
def dataset_import(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="hateful-memes | mm-safetybench | unsafebench")],
    src: Annotated[Path, typer.Argument(help="The dataset as published (a split .jsonl, or MM-SafetyBench's data "
                                        "folder).")],
    out_manifest: Annotated[Path, typer.Option("--out", help="The manifest to write (images/ goes next to it).")],
    config: Annotated[Path, typer.Option("--config", help="The audit.toml: image shape and tokenizer.")],
) -> None:
    """Convert a published dataset into a manifest: images to the audit's shape, text to the audit's tokens."""
    from hybridcert.audits.config import load_spec
    from hybridcert.audits.importers import import_dataset

    with user_errors():
        spec = load_spec(config)
        count = import_dataset(fmt, src, out_manifest, spec, _tokenizer_for(spec))
    out.print(f"wrote {out_manifest} ({count} items)", markup=False)


@dataset_app.command("curate")
def dataset_curate(
    config: Annotated[Path, typer.Option("--config", help="The audit.toml (its filter and its dataset).")],
    out_manifest: Annotated[Path, typer.Option("--out", help="The curated manifest to write.")],
    interaction_only: Annotated[bool, typer.Option("--interaction-only", help="Keep the items unsafe together "
                                                   "but safe with the text alone and with the image alone.")] = False,
    neutral_text: Annotated[str, typer.Option(help="The prompt that replaces the text for 'image alone'.")] = (
        "this image"),
    device: Annotated[str | None, typer.Option(help="Override run.device.")] = None,
) -> None:
    """Curate the interaction-only subset (image alone: text replaced by --neutral-text; text alone: image
    replaced by a constant mid-grey image; decisions of the base filter on clean inputs)."""
    from hybridcert.audits.config import load_spec
    from hybridcert.audits.importers import curate_interaction_only, make_tokenizer
    from hybridcert.audits.runner import prepare

    with user_errors():
        if not interaction_only:
            fail("give --interaction-only (the one curation implemented)")
        audit = prepare(load_spec(config), device=device)
        neutral = make_tokenizer(audit.spec, audit.filter)(neutral_text)
        if not neutral:
            fail("--neutral-text tokenises to no tokens")
        kept, total = curate_interaction_only(audit, out_manifest, neutral)
    out.print(f"wrote {out_manifest}: {kept} of {total} items are unsafe together and safe alone", markup=False)


# ------------------------------------------------------------------------------------------------------
# keys, report, verify-report (reports)
# ------------------------------------------------------------------------------------------------------

keys_app = typer.Typer(cls=_Group, help="Signing identities for reports (Ed25519 for DSSE, P-256 X.509 for PAdES).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("init")
def keys_init(
    out_dir: Annotated[Path, typer.Option("--out", help="New folder for the identity (must be empty or absent).")],
    name: Annotated[str, typer.Option(help="Signer's name (certificate CN).")],
    role: Annotated[str, typer.Option(help="Signer's role (certificate title).")],
    org: Annotated[str, typer.Option(help="Signer's organisation (certificate O).")],
    ca_cert: Annotated[Path | None, typer.Option("--ca-cert", help="Issue both certificates from this CA.")] = None,
    ca_key: Annotated[Path | None, typer.Option("--ca-key", help="The CA's private key (PEM, unencrypted).")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Label it DEMO IDENTITY - NOT FOR COMPLIANCE USE.")] = False,
    days: Annotated[int, typer.Option(help="Certificate validity in days.")] = 365,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Create a signing identity: private keys (0600) and certificates; give trust-anchor.crt to verifiers."""
    from hybridcert.reports.keys import ANCHOR, fingerprint, init_identity

    with user_errors():
        ident = init_identity(out_dir, name, role, org, ca_cert=ca_cert, ca_key=ca_key, demo=demo, days=days)
        info = {
            "folder": str(out_dir), "name": ident.name, "role": ident.role, "organisation": ident.organisation,
            "demo": ident.demo, "trust_anchor": str(out_dir / ANCHOR),
            "trust_anchor_sha256": fingerprint(ident.trust_anchor()),
            "dsse_keyid": "sha256:" + fingerprint(ident.dsse_certificate()),
        }
    if as_json:
        print_json(info)
        return
    out.print(f"identity written to {out_dir} (private keys 0600: keep them out of audit folders)", markup=False)
    out.print(f"  signer: {ident.name}, {ident.role}, {ident.organisation}", markup=False)
    out.print(f"  trust anchor for verifiers: {info['trust_anchor']} (sha256 {info['trust_anchor_sha256']})",
              markup=False)


@app.command()
def report(
    audit_dir: Annotated[Path, typer.Argument(help="Audit folder holding results.json.")],
    identity: Annotated[Path | None, typer.Option("--identity", help="Identity folder from `keys init`.")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Ed25519 private key (DSSE), PEM.")] = None,
    cert: Annotated[Path | None, typer.Option("--cert", help="Certificate of --key.")] = None,
    pades_key: Annotated[Path | None, typer.Option("--pades-key", help="PDF signing key (P-256/RSA), PEM.")] = None,
    pades_cert: Annotated[Path | None, typer.Option("--pades-cert", help="Certificate of --pades-key.")] = None,
    chain: Annotated[Path | None, typer.Option("--chain", help="Issuing CA certificate(s), PEM.")] = None,
    criteria: Annotated[
        Path | None, typer.Option("--criteria", help="Acceptance criteria JSON (default: results.json's).")
    ] = None,
    tsa_url: Annotated[str | None, typer.Option("--tsa-url", help="RFC 3161 time-stamping authority URL.")] = None,
    gate: Annotated[bool, typer.Option("--gate", help="Exit 1 when an acceptance criterion fails.")] = False,
    sign_html: Annotated[
        str | None, typer.Option("--sign-html", help="Instead: sign this HTML report of DIR (e.g. verification.html).")
    ] = None,
    attach: Annotated[
        list[str] | None, typer.Option("--attach", help="With --sign-html: files of DIR to sign along (first is "
                                                         "embedded in the PDF).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Render report.html and report.pdf from results.json and sign them (PAdES and a DSSE envelope)."""
    from hybridcert.reports.keys import identity_from_files, load_identity
    from hybridcert.reports.publish import render_and_sign, sign_html_report

    with user_errors():
        explicit = [key, cert, pades_key, pades_cert]
        if identity is not None:
            if any(p is not None for p in explicit):
                fail("give either --identity or --key/--cert/--pades-key/--pades-cert, not both")
            ident = load_identity(identity)
        elif all(p is not None for p in explicit):
            assert key and cert and pades_key and pades_cert
            ident = identity_from_files(key, cert, pades_key, pades_cert, chain)
        else:
            fail("missing signing identity: give --identity DIR, or --key, --cert, --pades-key and --pades-cert")
        if ident.demo:
            err.print("warning: signing with a DEMO identity (not for compliance use)", markup=False)
        if sign_html is not None:
            extra = list(attach or [])
            if Path(sign_html).name != sign_html or not (audit_dir / sign_html).is_file():
                raise ValueError(f"{sign_html!r} is not a file name inside {audit_dir}")
            with _step(f"rendering and signing {sign_html}"):
                env_path = sign_html_report(audit_dir, sign_html, ident, tsa_url=tsa_url, extra_subjects=extra,
                                            attach=extra[0] if extra else None)
            if as_json:
                print_json({"envelope": str(env_path), "pdf": str(audit_dir / Path(sign_html).with_suffix(".pdf"))})
            else:
                out.print(f"signed {sign_html}: {env_path}; check it with `hybridcert verify-report {audit_dir} "
                          f"--trust TRUST_ANCHOR --expect verification-report --html {sign_html}`", markup=False)
            return
        with _step(f"rendering and signing {audit_dir}"):
            signed = render_and_sign(audit_dir, ident, criteria=criteria, tsa_url=tsa_url)
    verdict = signed.acceptance.overall
    if as_json:
        print_json({"report_id": signed.report_id, "acceptance": signed.acceptance.as_json(),
                    "files": {k: str(v) for k, v in signed.files.items()}})
    else:
        out.print(f"report {signed.report_id}: acceptance {verdict}", markup=False)
        for name, path in signed.files.items():
            out.print(f"  {name}: {path}", markup=False)
    if gate and verdict == "FAIL":
        raise typer.Exit(EXIT_FAILED)


@app.command("verify-report")
def verify_report_cmd(
    audit_dir: Annotated[Path, typer.Argument(help="Signed audit folder.")],
    trust: Annotated[Path, typer.Option("--trust", help="Trust anchor: the signer's self-signed or CA certificate.")],
    expect: Annotated[
        str, typer.Option("--expect", help="Report type to verify: 'report' (the compliance report, default) or "
                                           "'verification-report' (an HTML report signed with --sign-html).")
    ] = "report",
    html_name: Annotated[
        str, typer.Option("--html", help="With --expect verification-report: the signed HTML report's name.")
    ] = "verification.html",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Check a signed folder as the expected report type: the DSSE and PAdES signatures, exactly the files that
    type signs, every hash and the embedded results. Exit 0 only when every check holds; 1 when a check fails
    or the folder is not signed; 2 when the folder or the trust anchor cannot be read (docs/report.md)."""
    from hybridcert.reports.verify import report_type, verify_folder

    with user_errors():
        with _step(f"verifying {audit_dir}"):
            result = verify_folder(audit_dir, trust, report_type(expect, html_name))
    if as_json:
        print_json({"ok": result.ok, "report_type": result.report_type.key, "not_signed": result.not_signed,
                    "checks": [c.as_json() for c in result.checks]})
    elif result.not_signed is not None:
        out.print(f"NOT SIGNED: {result.not_signed}", markup=False)
    else:
        for c in result.checks:
            out.print(c.line(), markup=False)
        out.print("all checks passed" if result.ok else f"FAILED: {', '.join(result.failed)}", markup=False)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FAILED)


# ------------------------------------------------------------------------------------------------------
# compare (regression gate)
# ------------------------------------------------------------------------------------------------------


@app.command()
def compare(
    baseline: Annotated[Path, typer.Argument(help="Baseline audit: a folder holding results.json, or the file.")],
    candidate: Annotated[Path, typer.Argument(help="Candidate audit (after the model change), same forms.")],
    max_drop: Annotated[
        str | None, typer.Option("--max-drop", help="Largest allowed drop in certified rate at a gate point (0..1).")
    ] = None,
    alpha_gate: Annotated[
        float | None, typer.Option("--alpha-gate", help="Fail only drops whose exact McNemar p-value is below this.")
    ] = None,
    at: Annotated[
        list[str] | None, typer.Option("--at", help="Gate point d:eps, repeatable (default: every grid point).")
    ] = None,
    budgets: Annotated[str | None, typer.Option(help="Grid budgets, comma separated (default 0..max).")] = None,
    radii: Annotated[str | None, typer.Option(help="Grid radii, comma separated (default: round steps).")] = None,
    ci_level: Annotated[float, typer.Option("--ci-level", help="Confidence level of the rate intervals.")] = 0.95,
    allow_config_change: Annotated[
        bool, typer.Option("--allow-config-change", help="Compare even if certificate fields differ.")
    ] = False,
    trust: Annotated[
        Path | None, typer.Option(help="Trust anchor: verify both audits' signatures with it first.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    out_json: Annotated[
        Path | None, typer.Option("--out-json", help="Write the comparison (change-history section) to a file.")
    ] = None,
    show: Annotated[int, typer.Option(help="List at most this many lost / gained inputs in the table output.")] = 20,
) -> None:
    """Regression gate: compare two audits of a filter; exit 0 pass, 1 regression, 2 usage / incomparable /
    tampered. Fails when, at some gate point, the certified rate drops by more than --max-drop (default 0) and,
    with --alpha-gate, the exact McNemar p-value is below it."""
    from hybridcert.regression import gate as cmp

    with user_errors():
        if show < 0:
            fail(f"--show must be >= 0, got {show}")
        gate = cmp.Gate(
            max_drop=cmp.as_fraction("--max-drop", max_drop if max_drop is not None else "0"),
            alpha=alpha_gate,
            points=tuple(cmp.Point.parse(a) for a in at) if at else None,
        )
        comparison = cmp.compare_paths(
            baseline, candidate, gate, trust=trust, budgets=_int_list("--budgets", budgets),
            radii=_float_list("--radii", radii), ci_level=ci_level, allow_config_change=allow_config_change,
        )
        result = comparison.to_dict()
        if out_json is not None:
            write_text_atomic(out_json, json.dumps(result, indent=2, allow_nan=False) + "\n")
    if as_json:
        print_json(result)
    else:
        _print_comparison(result, show)
    raise typer.Exit(EXIT_OK if comparison.passed else EXIT_FAILED)


def _int_list(name: str, text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"{name}: expected comma-separated integers, got {text!r}") from exc
    if not values or min(values) < 0:
        raise ValueError(f"{name}: expected integers >= 0, got {text!r}")
    return values


def _float_list(name: str, text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"{name}: expected comma-separated numbers, got {text!r}") from exc
    if not values or not all(math.isfinite(v) and v >= 0 for v in values):
        raise ValueError(f"{name}: expected finite numbers >= 0, got {text!r}")
    return values


def _print_comparison(res: dict[str, Any], show: int) -> None:
    base, cand = res["baseline"], res["candidate"]
    for role, a in (("baseline", base), ("candidate", cand)):
        model = a.get("model") or {}
        out.print(
            f"{role}: {a['path']} ({model.get('name')} {model.get('version')}, {a['n_inputs']} inputs, "
            f"{a['signature']})", markup=False,
        )
    for change in res["config_changes"]:
        out.print(f"config change allowed: {change['field']} {change['baseline']} -> {change['candidate']}",
                  markup=False)
    level = f"{100 * res['gate']['ci_level']:g}% CI"
    table = Table("d", "eps", f"before [{level}]", f"after [{level}]", "delta", "lost", "gained", "McNemar p",
                  "gate", box=None, pad_edge=False)
    for row in res["grid"]:
        verdict = ("FAIL" if row["failed"] else "ok") if row["gated"] else "-"
        table.add_row(
            str(row["budget"]), f"{row['radius']:g}",
            f"{row['before']:.3f} [{row['before_ci'][0]:.3f}, {row['before_ci'][1]:.3f}]",
            f"{row['after']:.3f} [{row['after_ci'][0]:.3f}, {row['after_ci'][1]:.3f}]",
            f"{row['delta']:+.3f}", str(row["lost"]), str(row["gained"]), f"{row['p_value']:.3g}", verdict,
        )
    Console(highlight=False, width=max(out.width, 160)).print(table)  # natural width: rows never wrap
    for key, title in (("lost", "lost a certificate"), ("gained", "gained a certificate")):
        entries = res[key]
        if not entries:
            continue
        out.print(f"{len(entries)} input(s) {title} at a gate point (certified radius r*(d) before -> after):")
        for e in entries[:show]:
            radii = ", ".join(
                f"d={b['budget']}: {_radius_text(b)} -> {_radius_text(a)}"
                for b, a in zip(e["radii_before"], e["radii_after"], strict=True)
            )
            out.print(f"  {e['id']} (label {e['label']}, {e['decision_before']} -> {e['decision_after']}): {radii}",
                      markup=False)
        if len(entries) > show:
            out.print(f"  ... and {len(entries) - show} more (--json lists all)")
    for key, title in (("only_in_baseline", "only in the baseline"), ("only_in_candidate", "only in the candidate")):
        if res[key]:
            out.print(f"{len(res[key])} input(s) {title}: {', '.join(res[key][:show])}", markup=False)
    g = res["gate"]
    alpha = f", alpha {g['alpha']:g}" if g["alpha"] is not None else ""
    out.print(f"gate ({len(g['points'])} point(s), max_drop {g['max_drop']:g}{alpha}): {g['rule']}", markup=False)
    if res["verdict"] == "pass":
        out.print("PASS: no gate point regressed", markup=False)
    else:
        out.print(f"FAIL: {len(res['reasons'])} gate point(s) regressed", markup=False)
        for reason in res["reasons"]:
            out.print(f"  {reason}", markup=False)


def _radius_text(entry: dict[str, Any]) -> str:
    if entry.get("radius_infinite"):
        return "inf"
    return "-" if entry["radius"] is None else f"{entry['radius']:.3f}"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; usage errors exit with 2."""
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        raise SystemExit(exc.code) from None
