"""Which generators `ganpack serve` loads and how it runs each: the options, model discovery (.onnx
files, packages, folders of them), and the worker layout, which follows what limits the model
(the cores, or the event loop that feeds them). numpy + onnxruntime."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gan_pack.contract.package_format import VARIANT_SUFFIXES
from gan_pack.errors import ConfigError, ModelError
from gan_pack.runtime.generator import OnnxGenerator
from gan_pack.runtime.image_model import ImageModel
from gan_pack.runtime.package import package_model
from gan_pack.runtime.session import providers_for

MAX_WORKERS = 64
COMPUTE_NICENESS = 10           # how much lower the onnxruntime workers' CPU priority is than the event loop's
FEED_RATE = 100_000             # images/s that one event loop takes in and sends out, about (16-image requests)
# What one onnxruntime call's activations may take: with every worker of every model in a call at
# once, a server's compute memory stays bounded whatever the requests (a DCGAN call: 32 images).
CALL_MEMORY = 32 << 20
CPU_MAX_BATCH = 1024


@dataclass
class ServeOptions:
    max_batch: int | None = None    # None: CPU_MAX_BATCH on a CPU; on a GPU, the batch the model fits (up to 8192)
    max_delay_ms: float = 2.0
    max_queue: int = 256
    max_images_per_request: int = 4096
    batching: bool = True
    workers: int = 1                # onnxruntime calls in flight per model (the CLI's default: worker_layout)
    max_body_bytes: int = 64 << 20  # a larger request body is refused (413) while it is read
    read_timeout_s: float = 30.0    # a request's headers, and its body, must arrive within this

    def __post_init__(self) -> None:
        problems = [f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}"
                    for name in ("max_batch", "max_queue", "max_images_per_request", "workers", "max_body_bytes")
                    if getattr(self, name) is not None and getattr(self, name) < 1]
        if not 0 < self.read_timeout_s <= 3600:
            problems.append(f"--read-timeout-s must be in (0, 3600], not {self.read_timeout_s}")
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
                feed_rate: float = FEED_RATE) -> tuple[dict[str, OnnxGenerator | ImageModel], dict[str, int]]:
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
        if isinstance(g, ImageModel):          # one call at a time, on every core (tiles are large calls)
            counts[name] = 1
            generators[name] = ImageModel(g.source, device, None, g.variant)
            continue
        counts[name], per_call = worker_layout(False, cores, None, None, probe_rate(g), feed_rate)
        if per_call != 1:
            generators[name] = OnnxGenerator(g.source, device=device, threads=per_call, memory_budget=CALL_MEMORY,
                                             variant=g.variant)
    return generators, counts


def lower_priority() -> None:
    """Each onnxruntime worker thread runs at COMPUTE_NICENESS below the event loop (Linux nice
    values are per thread), so the loop that reads requests and sends replies never waits for a
    core behind the compute it feeds; the compute takes every cycle the loop leaves."""
    if hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):
            current = os.getpriority(os.PRIO_PROCESS, 0)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, current + COMPUTE_NICENESS))


def _is_image_model(path: Path) -> bool:
    from gan_pack.contract.image_model import is_image_model
    from gan_pack.runtime.onnxscan import model_metadata
    from gan_pack.runtime.session import resolve_model_file

    try:
        return is_image_model(model_metadata(resolve_model_file(path)))
    except (ModelError, OSError, ValueError):
        return False


def load_models(paths: list[Path], device: str, threads: int | None = None) -> dict[str, OnnxGenerator | ImageModel]:
    """name -> generator, from .onnx files, package folders, or folders of either."""
    found: dict[str, Path] = {}         # name -> what to open: a package folder (its variants) or an .onnx
    named: set[Path] = set()            # given by name: must load (a folder's other .onnx files may be skipped)
    for path in paths:
        if not path.exists():
            raise ConfigError(f"{path} does not exist; give .onnx files, packages, or folders of them")
        main = package_model(path) if path.is_dir() else None
        if main is not None:
            candidates = [(main.stem, path)]                               # a package
            named.add(path)
        elif path.is_dir():
            candidates = [(p.stem, p) for p in sorted(path.glob("*.onnx")) if not p.name.endswith(VARIANT_SUFFIXES)]
            candidates += [(m.stem, p) for p in sorted(path.iterdir()) if p.is_dir() and (m := package_model(p))]
        else:
            candidates = [(path.stem, path)]
            named.add(path)
        for name, source in candidates:
            if name in found and found[name] != source:
                raise ConfigError(f"two models are named {name} ({found[name]} and {source}); serve one of them")
            found[name] = source
    models: dict[str, OnnxGenerator | ImageModel] = {}
    for name, path in found.items():
        try:
            models[name] = OnnxGenerator(path, device=device, threads=threads, memory_budget=CALL_MEMORY)
        except ModelError:
            if _is_image_model(path):                  # an upscaler or restorer: it takes an image
                models[name] = ImageModel(path, device, threads)
            elif len(found) == 1 or path in named:
                raise
    if not models:
        raise ConfigError(f"no gan_pack generator in {', '.join(map(str, paths))}; give .onnx files or packages")
    return models
