"""`ganpack serve` (torch-free; needs the [serve] extra): generators over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gan_pack.contract.choices import Device
from gan_pack.errors import GanPackError


def serve(
    models: Annotated[list[Path], typer.Argument(help="Generators: .onnx files, packages, or folders of them.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    device: Annotated[Device, typer.Option(help="cpu, cuda or auto: a package's variant for it is served.")] \
        = Device.cpu,
    max_batch: Annotated[Optional[int], typer.Option(
        help="Dynamic batching: most images in one onnxruntime call (default: 1024 on a CPU; on a GPU, the "
             "batch the model fits in 1 GiB, up to 8192).")] = None,
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
    max_body_mb: Annotated[int, typer.Option(help="Larger request bodies get 413, refused while read.")] = 64,
    read_timeout_s: Annotated[float, typer.Option(
        help="A request's headers, and then its body, must arrive within this many seconds.")] = 30.0,
) -> None:
    """Serve generators over HTTP in the Open Inference Protocol (KServe v2, Triton's HTTP API).

    Example: ganpack serve exported/mnist-cgan/ exported/mnist-gan/ --port 8000;
    then curl 'http://127.0.0.1:8000/v1/models/mnist-cgan/sample.png?n=16&label=3' -o threes.png
    """
    import importlib.util

    if importlib.util.find_spec("starlette") is None or importlib.util.find_spec("uvicorn") is None:
        from gan_pack.core.extras import install_hint

        raise GanPackError(f"serve needs starlette and uvicorn: {install_hint('serve')}")
    if not 1 <= port <= 65535:
        raise GanPackError(f"--port must be in 1..65535, not {port}")
    if not 1 <= max_body_mb <= 4096:
        raise GanPackError(f"--max-body-mb must be in 1..4096, not {max_body_mb}")
    from gan_pack.runtime.session import usable_cores
    from gan_pack.serve.app import create_app, listen, run
    from gan_pack.serve.layout import ServeOptions, load_served

    # checks the options and the address before any model loads; the worker counts come from load_served
    options = ServeOptions(max_batch, max_delay_ms, max_queue, max_images_per_request, batching,
                           1 if workers is None else workers, max_body_mb << 20, read_timeout_s)
    sock = listen(host, port)
    generators, counts = load_served(models, device.value, usable_cores(), workers, threads)
    layout = ", ".join(f"{name}{'' if g.variant in (None, 'main') else f' [{g.path.name}]'} "
                       f"({counts[name]} x {g.session.get_session_options().intra_op_num_threads or 'all'})"
                       for name, g in sorted(generators.items()))
    typer.echo(f"serving {layout} on http://{host}:{port}/v2 (workers x threads; Ctrl-C or SIGTERM to stop)", err=True)
    run(create_app(generators, options, counts), sock, read_timeout_s)
