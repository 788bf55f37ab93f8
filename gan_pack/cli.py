"""The `ganpack` command: each command parses, calls one library function, prints.

The torch-side commands live in cli_train.py and import torch only when they run, so `sample`,
`info`, `interpolate`, `evaluate`, `report`, `runs`, `verify`, `quantize` and `pack` (of an .onnx)
work without torch installed."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

import gan_pack
from gan_pack import cli_sample, cli_train
from gan_pack.config import Device
from gan_pack.errors import GanPackError, Interrupted, in_chain

try:  # typer >= 0.20 vendors click and raises its own exceptions; older typer raises click's
    from typer import TyperException as UsageProblem
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException as UsageProblem

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="Train GAN/cGAN generators, export them to ONNX, sample them with onnxruntime.",
                  context_settings={"help_option_names": ["-h", "--help"]})
app.command()(cli_train.train)
app.command()(cli_train.export)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ganpack {gan_pack.__version__}")
        raise typer.Exit()


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                               help="Print the version and exit.")] = False) -> None:
    """gan_pack: train -> export -> sample."""


def main() -> None:
    """Console entry point: one line on stderr and exit 2 for any mistake of the user's."""
    try:
        code = app(standalone_mode=False, prog_name="ganpack")
        if code == 130:                      # typer turns Ctrl-C into exit code 130, silently
            typer.echo("interrupted", err=True)
    except (KeyboardInterrupt, typer.Abort):  # older typer: Ctrl-C as Abort
        typer.echo("interrupted", err=True)
        code = 130
    except Interrupted as e:
        typer.echo(f"interrupted: {_one_line(e)}", err=True)
        code = 130
    except UsageProblem as e:
        if not e.format_message():           # bare `ganpack`: the help was printed
            sys.exit(0)
        typer.echo(f"error: {e.format_message()} (see 'ganpack --help')", err=True)
        code = getattr(e, "exit_code", 2) or 2
    except GanPackError as e:
        typer.echo(f"error: {_one_line(e)}", err=True)
        code = 1 if type(e).__name__ == "VerifyError" else 2
    except OSError as e:
        from gan_pack.files import DISK_ERRNOS, write_failure

        if e.errno not in DISK_ERRNOS:
            raise
        typer.echo(f"error: {_one_line(write_failure(e.filename or 'a file', e))}", err=True)
        code = 2
    except Exception as e:
        if in_chain(e, KeyboardInterrupt) is None:      # a library (torch.onnx) wraps Ctrl-C in its own error
            raise
        typer.echo("interrupted", err=True)
        code = 130
    sys.exit(code or 0)


def printable(text: str, limit: int = 200) -> str:
    """Text from a file, safe on a terminal: control characters escaped, long values cut."""
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return safe if len(safe) <= limit else safe[:limit] + f"... ({len(safe)} characters)"


def _one_line(e: Exception) -> str:
    """A message as one line of printable text (it may quote a file's contents)."""
    return " ".join("".join(c if c.isprintable() else " " for c in part) for part in str(e).splitlines())


ModelPath = cli_sample.ModelPath
app.command()(cli_sample.sample)
app.command()(cli_sample.interpolate)


@app.command()
def info(model: ModelPath) -> None:
    """Print a model's metadata, inputs/outputs, parity report, size and available providers.

    Example: ganpack info exported/mnist-cgan.onnx
    """
    import json

    from gan_pack.contract import parity_summary, versus_summary
    from gan_pack.runtime import OnnxGenerator, available_providers

    generator = OnnxGenerator(model)
    meta = generator.info.raw
    typer.echo(f"{printable(str(model))}  ({model.stat().st_size / 1e6:.2f} MB)")
    for key in sorted(k for k in meta if k not in ("parity", "train_config", "parity_vs_fp32", "parity_vs_original")):
        typer.echo(f"  {printable(key, 40):<20} {printable(meta[key])}")
    for title, values in (("inputs:", generator.session.get_inputs()), ("outputs:", generator.session.get_outputs())):
        typer.echo(title)
        for value in values:
            typer.echo(f"  {printable(value.name, 40):<8} {value.type:<16} {printable(str(value.shape))}")
    if generator.info.parity:
        typer.echo(printable(parity_summary(generator.info.parity), 2000))
    if "parity_vs_fp32" in meta:
        typer.echo(printable(f"{generator.info.precision} vs the fp32 model: "
                             f"{versus_summary(json.loads(meta['parity_vs_fp32']))}", 2000))
    try:
        typer.echo(printable(parity_summary(json.loads(meta["parity_vs_original"])), 2000))
    except (KeyError, ValueError, TypeError, AttributeError):
        pass                                  # absent (not rewritten by optimize) or not a report
    typer.echo(f"providers available: {', '.join(available_providers())}")


@app.command()
def evaluate(
    model: ModelPath,
    classifier: Annotated[Path, typer.Option(help="An exported classifier of the same data.")],
    data_dir: Annotated[Path, typer.Option(help="Folder with the real data's IDX files.")],
    n: Annotated[int, typer.Option("-n", "--num", help="Generated (and real) images to compare.")] = 10000,
    seed: Annotated[int, typer.Option(help="Noise seed.")] = 0,
    k: Annotated[int, typer.Option(help="Neighbours for precision/recall/density/coverage.")] = 5,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write every figure here.")] = None,
    truncation: Annotated[Optional[float], typer.Option(help=cli_sample.TRUNCATION_HELP)] = None,
) -> None:
    """Measure a generator offline, through onnxruntime: FCD, accuracy, coverage, PRDC.

    Example: ganpack evaluate exported/mnist-cgan.onnx --classifier exported/mnist-classifier.onnx
    --data-dir ../shared/data/mnist --json runs/mnist-cgan.eval.json
    """
    import json

    from gan_pack.evaluate import evaluate_generator, format_report
    from gan_pack.files import check_output_path, write_text_atomic

    if json_out is not None:
        check_output_path(json_out, ".json")
    result = evaluate_generator(model, classifier, data_dir, n=n, seed=seed, k=k, truncation=truncation)
    typer.echo(format_report(result))
    if json_out is not None:
        write_text_atomic(json_out, json.dumps(result, indent=2) + "\n")
        typer.echo(f"wrote {json_out}")


app.command("train-classifier")(cli_train.train_classifier)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (the --out of `ganpack train`).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="HTML file (default RUN/report.html).")] \
        = None,
    png: Annotated[Optional[Path], typer.Option(help="Also write a one-image summary PNG here.")] = None,
) -> None:
    """One self-contained HTML page of a run: settings, curves, grids, parity and metadata.

    Example: ganpack report runs/demo -o report.html --png summary.png
    """
    from gan_pack.files import check_output_path
    from gan_pack.report import load_run, write_report, write_summary_png

    for path, suffix in ((output, ".html"), (png, ".png")):
        if path is not None:
            check_output_path(path, suffix)
    warn = lambda message: typer.echo(printable(message, 500), err=True)  # noqa: E731
    run = load_run(run_dir, warn=warn)
    typer.echo(f"wrote {write_report(run, output, warn)}")
    if png is not None:
        typer.echo(f"wrote {write_summary_png(run, png)}")


@app.command()
def runs(folder: Annotated[Path, typer.Argument(help="The folder that holds your runs.")] = Path("runs")) -> None:
    """A table of the runs in a folder, newest first.

    Example: ganpack runs runs/
    """
    from gan_pack.report import format_runs, list_runs

    rows = list_runs(folder, warn=lambda message: typer.echo(printable(message, 500), err=True))
    table = "\n".join(printable(line, 1000) for line in format_runs(rows).splitlines())
    typer.echo(table if rows else f"no runs in {folder}")


@app.command()
def pack(
    source: Annotated[Path, typer.Argument(help="A run folder, a checkpoint, or an exported .onnx.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The package folder to write (dist/NAME/).")],
    variants: Annotated[str, typer.Option(help="Also fp16 and/or int8, comma-separated (fp16 needs a run).")] = "",
    license: Annotated[str, typer.Option(help="The license in the model card.")] = "mit",
    evaluate: Annotated[bool, typer.Option("--eval", help="Evaluate it (needs --classifier, --data-dir).")] = False,
    classifier: Annotated[Optional[Path], typer.Option(help="--eval: an exported classifier of the same data.")] \
        = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="--eval: the real data's IDX files.")] = None,
    name: Annotated[Optional[str], typer.Option(help="The files' name (default: the folder's).")] = None,
    triton: Annotated[Optional[Path], typer.Option(
        help="Also write a Triton model repository entry here: TRITON/NAME/config.pbtxt, 1/model.onnx.")] = None,
) -> None:
    """A self-describing, checkable package: model(s), manifest, model card, grid, golden vectors, checksums.

    Example: ganpack pack runs/demo -o dist/demo/ --variants fp16,int8 --eval
    --classifier exported/mnist-classifier.onnx --data-dir ../shared/data/mnist
    """
    from gan_pack.files import check_output_path
    from gan_pack.package import PackOptions
    from gan_pack.package import pack as make_package

    if evaluate != (classifier is not None and data_dir is not None) or (not evaluate and (classifier or data_dir)):
        raise GanPackError("--eval goes with --classifier and --data-dir (all three, or none)")
    options = PackOptions(name=name, variants=tuple(v.strip() for v in variants.split(",") if v.strip()),
                          license=license, classifier=str(classifier) if classifier else None,
                          data_dir=str(data_dir) if data_dir else None)
    if not source.is_file() or source.suffix != ".onnx":
        cli_train._require_torch()
    if triton is not None:
        check_output_path(triton / (name or output.name), folder=True)
    out = make_package(source, output, options)
    for path in sorted(out.iterdir()):
        typer.echo(f"  {path.name:<32} {path.stat().st_size / 1e6:8.3f} MB")
    typer.echo(f"wrote {out}/ (check it anywhere with: ganpack verify {out})")
    if triton is not None:
        from gan_pack.package import write_triton

        stem = name or out.name
        entry = write_triton(out / f"{stem}.onnx", stem, triton)
        typer.echo(f"wrote {entry}/config.pbtxt and {entry}/1/model.onnx (tritonserver --model-repository {triton})")


@app.command()
def verify(
    path: Annotated[Path, typer.Argument(help="A package folder (ganpack pack) or an .onnx.")],
    device: Annotated[Device, typer.Option(help="cpu, cuda or auto: where to run the golden vectors.")] = Device.cpu,
) -> None:
    """Check a package on this machine: checksums, contract, metadata, then its golden vectors.

    Exit 0 when all hold, 1 when the package is wrong or tampered, 2 for a usage error.
    Example: ganpack verify exported/mnist-cgan/
    """
    from gan_pack.verify import VerifyError
    from gan_pack.verify import verify as check

    if not path.exists():
        raise GanPackError(f"{path} does not exist; give a package folder or an .onnx")
    report = check(path, device.value)
    for line in report.lines:
        typer.echo(printable(line, 400))
    if report.problems:
        more = f" (and {len(report.problems) - 1} more problem(s))" if len(report.problems) > 1 else ""
        raise VerifyError(f"{report.problems[0]}{more}")
    typer.echo("verified: every check holds")


@app.command()
def serve(
    models: Annotated[list[Path], typer.Argument(help="Generators: .onnx files, packages, or folders of them.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    device: Annotated[Device, typer.Option(help="cpu, cuda or auto.")] = Device.cpu,
    max_batch: Annotated[int, typer.Option(help="Dynamic batching: most images in one onnxruntime call.")] = 1024,
    max_delay_ms: Annotated[float, typer.Option(
        help="Dynamic batching: while requests come together, wait this long for more.")] = 2.0,
    max_queue: Annotated[int, typer.Option(help="Requests waiting per model before 503.")] = 256,
    max_images_per_request: Annotated[int, typer.Option(help="Larger requests get 413.")] = 4096,
    batching: Annotated[bool, typer.Option(help="--no-batching: one onnxruntime call per request.")] = True,
    workers: Annotated[Optional[int], typer.Option(
        help="onnxruntime calls in flight per model (default, on a CPU: one single-threaded worker per "
             "core and one more, so the cores keep computing while replies go out; 2 for a model so light "
             "that HTTP is its limit; on a GPU 1).")] = None,
    threads: Annotated[Optional[int], typer.Option(
        help="onnxruntime intra-op threads per call (default: the cores shared among the workers, at "
             "least 1; a single worker gets all cores but one, leaving one for HTTP).")] = None,
) -> None:
    """Serve generators over HTTP in the Open Inference Protocol (KServe v2, Triton's HTTP API).

    Example: ganpack serve exported/mnist-cgan/ exported/mnist-gan/ --port 8000;
    then curl 'http://127.0.0.1:8000/v1/models/mnist-cgan/sample.png?n=16&label=3' -o threes.png
    """
    import importlib.util

    if importlib.util.find_spec("starlette") is None or importlib.util.find_spec("uvicorn") is None:
        raise GanPackError("serve needs starlette and uvicorn: pip install 'gan-pack[serve]'")
    if not 1 <= port <= 65535:
        raise GanPackError(f"--port must be in 1..65535, not {port}")
    import uvicorn

    from gan_pack.runtime import usable_cores
    from gan_pack.serve import ServeOptions, create_app, load_served

    # checks the options before any model loads; the worker counts themselves come from load_served
    options = ServeOptions(max_batch, max_delay_ms, max_queue, max_images_per_request, batching,
                           1 if workers is None else workers)
    generators, counts = load_served(models, device.value, usable_cores(), workers, threads)
    layout = ", ".join(f"{name} ({counts[name]} x {g.session.get_session_options().intra_op_num_threads or 'all'})"
                       for name, g in sorted(generators.items()))
    typer.echo(f"serving {layout} on http://{host}:{port}/v2 (workers x threads; Ctrl-C or SIGTERM to stop)", err=True)
    uvicorn.run(create_app(generators, options, counts), host=host, port=port, log_level="warning",
                timeout_graceful_shutdown=30, access_log=False, proxy_headers=False)


class Mode(str, Enum):
    auto = "auto"
    static = "static"
    dynamic = "dynamic"


class OptimizeMode(str, Enum):
    auto = "auto"
    on = "on"


@app.command()
def optimize(
    model: Annotated[Path, typer.Argument(help="An exported fp32 generator (.onnx).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Default: the model itself, "
                                                                        "replaced atomically.")] = None,
    mode: Annotated[OptimizeMode, typer.Option(help="auto (write only if faster on this CPU) or on.")] \
        = OptimizeMode.auto,
    atol: Annotated[Optional[float], typer.Option(
        help="Parity bound: max abs difference from the original file (default 1e-4).")] = None,
    allow_mismatch: Annotated[bool, typer.Option(help="Write the model even if parity fails (loudly).")] = False,
) -> None:
    """Rewrite an exported generator onto faster CPU kernels, proven against the original (needs onnx).

    Transposed convolutions become phase convolutions and thin convolutions a matrix product; the
    math is the same. Example: ganpack optimize exported/mnist-cgan.onnx
    """
    from gan_pack.rewrite import optimize_generator

    path = output or model
    done = optimize_generator(model, path, mode.value, atol, allow_mismatch)
    rates = (done.record or {}).get("images_per_s")
    speed = (f": {rates['rewritten']:,.0f} against {rates['original']:,.0f} images/s at batch {done.record['batch']}"
             if rates else "")
    if done.report is not None:
        cli_train.show_parity([done.report])
    if done.record is None:
        what = "nothing to rewrite (no ConvTranspose 4/2/1, no thin Conv)"
    elif done.report is None:
        what = f"the rewritten graph was not faster on this CPU{speed}; the graph is unchanged"
    else:
        what = f"rewrote {', '.join(f'{n} {k}' for k, n in done.record['rewrites'].items())}{speed}"
    typer.echo(f"{model}: {what}; " + (f"wrote {path} with its activation size" if done.written else "nothing written"))


@app.command()
def quantize(
    model: Annotated[Path, typer.Argument(help="An exported fp32 generator (.onnx).")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Default: NAME.int8.onnx beside it.")] = None,
    mode: Annotated[Mode, typer.Option(help="auto (dynamic for MLPs, static for convolutional generators), "
                                            "static (calibrated, QDQ) or dynamic.")] = Mode.auto,
    calibration_n: Annotated[int, typer.Option(help="Noise samples for static calibration.")] = 512,
    seed: Annotated[int, typer.Option(help="Calibration noise seed.")] = 0,
    atol: Annotated[Optional[float], typer.Option(
        help="Parity bound: mean abs pixel difference from the fp32 model (default 0.15).")] = None,
    allow_mismatch: Annotated[bool, typer.Option(help="Write the model even if parity fails (loudly).")] = False,
) -> None:
    """Make an int8 variant of an exported generator (onnxruntime quantization; needs onnx).

    Example: ganpack quantize exported/mnist-cgan-mlp.onnx -o runs/mnist-cgan-mlp.int8.onnx
    """
    from gan_pack.quantize import default_output, quantize_generator

    path = output or default_output(model)
    cli_train.show_parity([quantize_generator(model, path, mode.value, calibration_n, seed, atol, allow_mismatch)])
    typer.echo(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, was {model.stat().st_size / 1e6:.2f} MB)")
