"""`ganpack serve`: generators over HTTP, in the Open Inference Protocol (KServe v2 REST, Triton's
HTTP API), with a dynamic batcher. Torch-free: Starlette + uvicorn (the [serve] extra).

- GET /v2/health/live, /v2/health/ready, /v2, /v2/models/NAME, /v2/models/NAME/ready
- POST /v2/models/NAME/infer: JSON tensors, or the binary tensor data extension (what tritonclient
  sends by default); errors as {"error": "..."} with 400, 404, 413 or 503
- GET /v1/models/NAME/sample.png?n=16&label=3&seed=1 (and sample.npy): seeded like `ganpack sample`

The batcher merges the requests that wait for a model into one onnxruntime call (up to max_batch
images; while requests keep arriving together it also waits max_delay_ms for more, but a lone
request is never delayed), then splits the images back.
The graph has no cross-row operation (export proves row independence), so each request gets what
it would get alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import gan_pack
from gan_pack.contract import IMAGES, LABELS, NOISE
from gan_pack.errors import ConfigError, GanPackError, ModelError
from gan_pack.runtime import OnnxGenerator, providers_for

DTYPES = {"FP32": np.float32, "INT64": np.int64}
HEADER = "Inference-Header-Content-Length"


MAX_WORKERS = 64
COMPUTE_NICENESS = 10           # how much lower the onnxruntime workers' CPU priority is than the event loop's
FEED_RATE = 100_000             # images/s that one event loop takes in and sends out, about (16-image requests)


@dataclass
class ServeOptions:
    max_batch: int = 1024
    max_delay_ms: float = 2.0
    max_queue: int = 256
    max_images_per_request: int = 4096
    batching: bool = True
    workers: int = 1                # onnxruntime calls in flight per model (the CLI's default: worker_layout)

    def __post_init__(self) -> None:
        problems = [f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}"
                    for name in ("max_batch", "max_queue", "max_images_per_request", "workers")
                    if getattr(self, name) < 1]
        if self.workers > MAX_WORKERS:
            problems.append(f"--workers must be at most {MAX_WORKERS}, not {self.workers}")
        if not 0 <= self.max_delay_ms <= 1000:
            problems.append(f"--max-delay-ms must be in 0..1000, not {self.max_delay_ms}")
        if problems:
            raise ConfigError("; ".join(problems))


def worker_layout(gpu: bool, cores: int, workers: int | None, threads: int | None,
                  rate: float | None = None, feed_rate: float = FEED_RATE) -> tuple[int, int]:
    """(workers, onnxruntime threads per call) of one model in `ganpack serve`.

    rate: the model's images/s on one thread (probe_rate). The CPU defaults, by what limits it:
    - the cores (all of them, at `rate`, compute fewer than feed_rate images/s, which one event
      loop can take in and send out): one single-threaded worker per core and one more (at most
      MAX_WORKERS). While some workers' requests are in HTTP, the others keep every core computing.
    - the event loop (a light model on many cores): 2 workers sharing the cores, so that one
      computes while the loop does the other's HTTP, in as few calls as can keep up.
    An explicit --workers shares the cores among its workers. On a GPU, one worker (more are not
    measured there)."""
    if workers is None:
        if gpu:
            workers = 1
        elif rate is not None and cores * rate > feed_rate:
            workers = 2
        else:
            workers = min(cores + 1, MAX_WORKERS)
    if threads is None:
        threads = max(1, cores - 1 if workers == 1 else cores // max(1, workers))     # ServeOptions checks workers
    return workers, threads


def probe_rate(g: OnnxGenerator, n: int = 8) -> float:
    """The images/s of g's calls of n images: the best of two, after one that warms the session up
    (onnxruntime allocates on its first call)."""
    labels = g.resolve_labels(n, None) if g.info.conditional else None
    feeds = g.check_inputs(g.noise(n, seed=0), labels)
    g.run_checked(feeds)
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        g.run_checked(feeds)
        best = min(best, time.perf_counter() - started)
    return n / best


def load_served(paths: list[Path], device: str, cores: int, workers: int | None = None, threads: int | None = None,
                feed_rate: float = FEED_RATE) -> tuple[dict[str, OnnxGenerator], dict[str, int]]:
    """The generators to serve (load_models) and each one's worker count (worker_layout). Without
    --workers and --threads, each CPU model is loaded single-threaded and timed; one that the event
    loop cannot keep up with is loaded again with its share of the cores."""
    gpu = providers_for(device)[0] != "CPUExecutionProvider"
    if gpu or workers is not None or threads is not None:
        count, per_call = worker_layout(gpu, cores, workers, threads)
        generators = load_models(paths, device, per_call)
        return generators, dict.fromkeys(generators, count)
    generators, counts = load_models(paths, device, 1), {}
    for name, g in generators.items():
        counts[name], per_call = worker_layout(False, cores, None, None, probe_rate(g), feed_rate)
        if per_call != 1:
            generators[name] = OnnxGenerator(g.path, device=device, threads=per_call)
    return generators, counts


def lower_priority() -> None:
    """Each onnxruntime worker thread runs at COMPUTE_NICENESS below the event loop (Linux nice
    values are per thread), so the loop that reads requests and sends replies never waits for a
    core behind the compute it feeds; the compute takes every cycle the loop leaves."""
    if hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):
            current = os.getpriority(os.PRIO_PROCESS, 0)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, current + COMPUTE_NICENESS))


class AsgiEndpoint:
    """A Starlette route endpoint that is a bare ASGI callable rather than a request handler."""

    def __init__(self, handler):
        self.handler = handler

    async def __call__(self, scope, receive, send) -> None:
        await self.handler(scope, receive, send)


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Job:
    feeds: dict
    count: int
    done: asyncio.Future


@dataclass
class Batcher:
    """One model's queue and the tasks that run it (`workers` of them, each one onnxruntime call at
    a time, so that several calls can be in flight). The calls in flight together hold at most
    max_batch images: each takes at most its share, max_batch / workers (rounded up), unless a
    single request is larger."""

    generator: OnnxGenerator
    options: ServeOptions
    executor: ThreadPoolExecutor
    workers: int = 1
    pending: deque = field(default_factory=deque)          # the requests waiting, oldest first
    pending_images: int = 0
    idle: deque = field(default_factory=deque)             # a future per worker waiting for requests
    free: int = 0                   # workers not in a call (set from workers)
    busy: bool = False              # the last batch merged several requests: others are likely to come

    def __post_init__(self) -> None:
        self.free = self.workers

    @property
    def call_limit(self) -> int:
        return -(-self.options.max_batch // self.workers)

    async def submit(self, feeds: dict, count: int) -> np.ndarray:
        if len(self.pending) >= self.options.max_queue:
            raise HTTPError(503, f"the queue is full ({self.options.max_queue} requests waiting); retry later")
        job = Job(feeds, count, asyncio.get_running_loop().create_future())
        self.pending.append(job)
        self.pending_images += count
        self.wake_one()
        return await job.done

    def wake_one(self) -> None:
        while self.idle:
            bell = self.idle.popleft()
            if not bell.done():
                bell.set_result(None)
                return

    def take(self, limit: int, taken: int = 0) -> list[Job]:
        """Waiting requests, oldest first, while they fit `limit` images beside `taken` ones
        (without `taken`, the oldest one at least, whatever its size)."""
        jobs = []
        while self.pending and ((not jobs and not taken) or taken + self.pending[0].count <= limit):
            jobs.append(self.pending.popleft())
            taken += jobs[-1].count
            self.pending_images -= jobs[-1].count
        return jobs

    def share(self, free: int, taken: int = 0) -> int:
        """The images of one call: the waiting ones (and `taken`) shared among `free` workers, so
        that no core idles beside a long call; at most call_limit."""
        return min(self.call_limit, -(-(taken + self.pending_images) // max(1, free)))

    async def next_call(self) -> list[Job]:
        """The requests of this worker's next call."""
        loop = asyncio.get_running_loop()
        while not self.pending:
            bell = loop.create_future()
            self.idle.append(bell)
            await bell
        if not self.options.batching:
            jobs = self.take(0)
            self.free -= 1
        elif len(self.pending) == 1 and self.options.max_delay_ms and self.busy:
            jobs = self.take(0)
            self.free -= 1
            await asyncio.sleep(self.options.max_delay_ms / 1000)       # wait a moment for company
            jobs += self.take(self.share(self.free + 1, jobs[0].count), jobs[0].count)
        else:
            jobs = self.take(self.share(self.free))
            self.free -= 1
        if self.pending:
            self.wake_one()             # what this call left is another worker's
        return jobs

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self.next_call()
            self.busy = len(jobs) > 1
            try:
                feeds = {name: np.concatenate([job.feeds[name] for job in jobs]) for name in jobs[0].feeds}
                result = await loop.run_in_executor(self.executor, self.generator.run_checked, feeds)
            except Exception as e:  # onnxruntime's own errors reach every waiting request
                for job in jobs:
                    if not job.done.done():
                        job.done.set_exception(e)
                continue
            finally:
                self.free += 1
            start = 0
            for job in jobs:
                if not job.done.done():
                    job.done.set_result(result[start:start + job.count])
                start += job.count


def load_models(paths: list[Path], device: str, threads: int | None = None) -> dict[str, OnnxGenerator]:
    """name -> generator, from .onnx files, package folders, or folders of either."""
    found: dict[str, Path] = {}
    named: set[Path] = set()            # given by name: must load (a folder's other .onnx files may be skipped)
    for path in paths:
        if not path.exists():
            raise ConfigError(f"{path} does not exist; give .onnx files, packages, or folders of them")
        if path.is_dir() and (path / f"{path.name}.onnx").is_file():
            candidates = [path / f"{path.name}.onnx"]                       # a package
            named.add(candidates[0])
        elif path.is_dir():
            candidates = sorted(p for p in path.glob("*.onnx") if not p.name.endswith((".fp16.onnx", ".int8.onnx")))
            candidates += sorted(p / f"{p.name}.onnx" for p in path.iterdir() if (p / f"{p.name}.onnx").is_file())
        else:
            candidates = [path]
            named.add(path)
        for candidate in candidates:
            name = candidate.name.removesuffix(".onnx")
            if name in found and found[name] != candidate:
                raise ConfigError(f"two models are named {name} ({found[name]} and {candidate}); serve one of them")
            found[name] = candidate
    models = {}
    for name, path in found.items():
        try:
            models[name] = OnnxGenerator(path, device=device, threads=threads)
        except ModelError:
            if len(found) == 1 or path in named:
                raise
    if not models:
        raise ConfigError(f"no gan_pack generator in {', '.join(map(str, paths))}; give .onnx files or packages")
    return models


# ---------------------------------------------------------------- the protocol

def model_metadata(name: str, g: OnnxGenerator) -> dict:
    inputs = [{"name": NOISE, "datatype": "FP32", "shape": [-1, g.info.noise_dim]}]
    if g.info.conditional:
        inputs.append({"name": LABELS, "datatype": "INT64", "shape": [-1]})
    return {"name": name, "versions": ["1"], "platform": "onnxruntime_onnx", "inputs": inputs,
            "outputs": [{"name": IMAGES, "datatype": "FP32", "shape": [-1, *g.info.image_shape]}],
            "parameters": {"num_classes": g.info.num_classes, "class_names": g.info.class_names,
                           "dataset": g.info.dataset, "output_range": [-1, 1]}}


def parse_infer(body: bytes, header_length: str | None, g: OnnxGenerator, limit: int) -> tuple[dict, dict, int]:
    """(request JSON, checked feeds, image count) of an infer request; HTTPError 400/413 otherwise."""
    try:
        size = int(header_length) if header_length is not None else len(body)
        request = json.loads(body[:size])
        binary = memoryview(body)[size:]
        tensors, offset = {}, 0
        for entry in request["inputs"]:
            name, shape, datatype = entry["name"], [int(d) for d in entry["shape"]], entry["datatype"]
            expected = {NOISE: "FP32", LABELS: "INT64"}.get(name)
            if expected is None or (name == LABELS and not g.info.conditional):
                raise HTTPError(400, f"unexpected input {name!r}: this model takes "
                                     f"{', '.join(i['name'] for i in model_metadata('', g)['inputs'])}")
            if datatype != expected:
                raise HTTPError(400, f"input {name!r} must be {expected}, not {datatype}")
            count = math.prod(shape)
            if shape and shape[0] > limit:
                raise HTTPError(413, f"{shape[0]} images in one request; at most {limit} (--max-images-per-request)")
            parameters = entry.get("parameters") or {}
            if "binary_data_size" in parameters:
                nbytes = int(parameters["binary_data_size"])
                raw = binary[offset:offset + nbytes]
                offset += nbytes
                array = np.frombuffer(raw, dtype=DTYPES[datatype])
            else:
                array = np.asarray(entry["data"], dtype=DTYPES[datatype]).reshape(-1)
            if array.size != count:
                raise HTTPError(400, f"input {name!r} has {array.size} values for shape {shape}")
            tensors[name] = array.reshape(shape)
    except HTTPError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise HTTPError(400, f"malformed inference request ({type(e).__name__}: {str(e)[:160]})") from e
    if NOISE not in tensors:
        raise HTTPError(400, "the request lacks the input 'noise'")
    try:
        feeds = g.check_inputs(tensors[NOISE], tensors.get(LABELS))
    except ModelError as e:
        raise HTTPError(400, str(e)) from e
    return request, feeds, len(feeds[NOISE])


def infer_response(name: str, request: dict, images: np.ndarray) -> tuple[bytes, dict]:
    """(body, headers): JSON, or a JSON header then raw bytes when the client asked for binary data."""
    wanted = request.get("outputs") or [{"name": IMAGES}]
    binary = bool((request.get("parameters") or {}).get("binary_data_output")) or any(
        (o.get("parameters") or {}).get("binary_data") for o in wanted)
    output = {"name": IMAGES, "datatype": "FP32", "shape": list(images.shape)}
    reply = {"model_name": name, "model_version": "1", "outputs": [output]}
    if "id" in request:
        reply["id"] = request["id"]
    if not binary:
        output["data"] = images.reshape(-1).tolist()
        return json.dumps(reply).encode(), {"content-type": "application/json"}
    raw = np.ascontiguousarray(images, dtype="<f4").tobytes()
    output["parameters"] = {"binary_data_size": len(raw)}
    head = json.dumps(reply).encode()
    return head + raw, {"content-type": "application/octet-stream", HEADER: str(len(head))}


def create_app(models: dict[str, OnnxGenerator], options: ServeOptions | None = None,
               workers: dict[str, int] | None = None):
    """The Starlette app serving `models` (name -> OnnxGenerator), each with workers[name] workers
    (default: options.workers)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    options = options or ServeOptions()
    workers = {name: (workers or {}).get(name, options.workers) for name in models}
    executor = ThreadPoolExecutor(max_workers=max(1, sum(workers.values())),
                                  thread_name_prefix="onnxruntime", initializer=lower_priority)
    state: dict = {"batchers": {}, "tasks": []}

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def named(name: str) -> OnnxGenerator:
        if name not in models:
            raise HTTPError(404, f"unknown model {name!r}; this server has {', '.join(sorted(models))}")
        return models[name]

    def model(request) -> tuple[str, OnnxGenerator]:
        name = request.path_params["name"]
        return name, named(name)

    async def live(request):
        return JSONResponse({"live": True})

    async def ready(request):
        return JSONResponse({"ready": bool(state["batchers"])})

    async def server(request):
        return JSONResponse({"name": "gan_pack", "version": gan_pack.__version__,
                             "extensions": ["binary_tensor_data"]})

    async def metadata(request):
        name, g = model(request)
        return JSONResponse(model_metadata(name, g))

    async def model_ready(request):
        name, _ = model(request)
        return JSONResponse({"name": name, "ready": name in state["batchers"]})

    async def infer(scope, receive, send) -> None:
        """POST /v2/models/NAME/infer as a bare ASGI handler: requests skip Starlette's routing,
        middleware and Request objects on this hot path (the route below only answers 405 to other
        methods)."""
        name = scope["path"][len("/v2/models/"):-len("/infer")]
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        header = next((v.decode() for k, v in scope["headers"] if k == HEADER.lower().encode()), None)
        try:
            parsed, feeds, count = parse_infer(b"".join(chunks), header, named(name), options.max_images_per_request)
            content, headers = infer_response(name, parsed, await state["batchers"][name].submit(feeds, count))
            status = 200
        except (HTTPError, ModelError) as e:
            status = e.status if isinstance(e, HTTPError) else 400
            content, headers = json.dumps({"error": str(e)}).encode(), {"content-type": "application/json"}
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status,
                    "headers": raw + [(b"content-length", str(len(content)).encode())]})
        await send({"type": "http.response.body", "body": content})

    async def sample(request):
        name, g = model(request)
        fmt = request.path_params["fmt"]
        if fmt not in ("png", "npy"):
            raise HTTPError(404, f"sample.{fmt}: ask for sample.png (a grid) or sample.npy (an array)")
        query = request.query_params
        try:
            n = int(query.get("n", 16))
            seed = int(query.get("seed", 0))
            label = int(query["label"]) if "label" in query else None
            truncation = float(query["truncation"]) if "truncation" in query else None
        except ValueError as e:
            raise HTTPError(400, f"n, seed and label are integers and truncation a number ({e})") from e
        if not 1 <= n <= options.max_images_per_request:
            raise HTTPError(413 if n > 0 else 400, f"n must be in 1..{options.max_images_per_request}, not {n}")
        try:
            labels = g.resolve_labels(n, label) if g.info.conditional else None
            noise = g.noise(n, seed, truncation=truncation)
            feeds = g.check_inputs(noise, labels)
        except (ModelError, GanPackError) as e:
            raise HTTPError(400, str(e)) from e
        images = await state["batchers"][name].submit(feeds, n)
        buffer = io.BytesIO()
        if fmt == "npy":
            np.save(buffer, images)
            return Response(buffer.getvalue(), media_type="application/octet-stream")
        from gan_pack.images import make_grid, png_bytes

        k = g.info.num_classes
        return Response(png_bytes(make_grid(images, 10 if k and label is None else None)), media_type="image/png")

    def guarded(handler):
        async def wrapper(request):
            try:
                return await handler(request)
            except HTTPError as e:
                return error(e.status, str(e))
            except ModelError as e:
                return error(400, str(e))
        return wrapper

    @contextlib.asynccontextmanager
    async def lifespan(app):
        for name, g in models.items():
            batcher = Batcher(g, options, executor, workers[name])
            state["batchers"][name] = batcher
            state["tasks"] += [asyncio.create_task(batcher.run()) for _ in range(batcher.workers)]
        yield
        for task in state["tasks"]:
            task.cancel()
        executor.shutdown(wait=True)

    routes = [Route("/v2/health/live", guarded(live)), Route("/v2/health/ready", guarded(ready)),
              Route("/v2", guarded(server)), Route("/v2/models/{name}", guarded(metadata)),
              Route("/v2/models/{name}/ready", guarded(model_ready)),
              Route("/v2/models/{name}/infer", AsgiEndpoint(infer), methods=["POST"]),  # other methods: 405
              Route("/v1/models/{name}/sample.{fmt:str}", guarded(sample))]
    app = Starlette(routes=routes, lifespan=lifespan)

    async def asgi(scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and scope["method"] == "POST" and path.startswith("/v2/models/") \
                and path.endswith("/infer") and path.count("/") == 4:
            await infer(scope, receive, send)
        else:
            await app(scope, receive, send)

    return asgi
