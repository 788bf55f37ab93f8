"""A bounded load test of `ganpack serve` on 127.0.0.1 (not a test): a fixed number of requests at
1, 8 and 64 concurrent clients, of 1 and of 16 images, with dynamic batching on and off, side by
side in one run. Prints requests/s, images/s, p50 and p99 latency, and the CPU share the load
generator itself took (it shares the machine's cores with the server). Then 64 clients of 16
images against OnnxGenerator's in-process throughput at batch 1024, in interleaved rounds, for the
default worker layout and for one worker. Also: cold start to the first ready answer, and the
server's resident memory.

Usage: .venv/bin/python benchmarks/serve.py [--model exported/mnist-cgan-mlp/] [--requests 2000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(models: list[str], batching: bool, delay_ms: float = 2.0, threads: int | None = None,
                 extra: list[str] = ()) -> tuple[subprocess.Popen, int, float]:
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "gan_pack", "serve", *models, "--port", str(port),
                                "--max-delay-ms", str(delay_ms), *([] if batching else ["--no-batching"]),
                                *(["--threads", str(threads)] if threads else []),
                                *extra], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/v2/health/ready")
            if connection.getresponse().status == 200:
                return process, port, time.perf_counter() - started
        except OSError:
            time.sleep(0.02)
        if process.poll() is not None:
            raise SystemExit("the server did not start")


def binary_request(noise: np.ndarray, labels: np.ndarray | None) -> tuple[bytes, dict]:
    """An infer request in the binary tensor data extension, as tritonclient sends it."""
    tensors = [("noise", "FP32", noise)] + ([("labels", "INT64", labels)] if labels is not None else [])
    header = {"inputs": [{"name": n, "datatype": t, "shape": list(a.shape),
                          "parameters": {"binary_data_size": a.nbytes}} for n, t, a in tensors],
              "outputs": [{"name": "images", "parameters": {"binary_data": True}}]}
    head = json.dumps(header).encode()
    return head + b"".join(a.tobytes() for _, _, a in tensors), {"Inference-Header-Content-Length": str(len(head)),
                                                                  "Content-Type": "application/octet-stream"}


def load(port: int, name: str, conditional: bool, noise_dim: int, clients: int, images: int, total: int) -> dict:
    """`total` requests of `images` images from `clients` keep-alive connections, driven by one event
    loop (uvloop when installed) of raw HTTP/1.1 protocols, so that the load generator takes as little
    of the shared CPU as it can: each reply is parsed only as far as its status and length."""
    import asyncio

    rng = np.random.default_rng(0)
    noise = rng.standard_normal((images, noise_dim), dtype=np.float32)
    labels = np.arange(images, dtype=np.int64) % 10 if conditional else None
    body, headers = binary_request(noise, labels)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    message = (f"POST /v2/models/{name}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    latencies, errors, remaining = [], [], [total]

    class Client(asyncio.Protocol):
        def __init__(self, finished: asyncio.Future):
            self.finished, self.buffer, self.need = finished, b"", None

        def connection_made(self, transport) -> None:
            self.transport = transport
            self.next()

        def next(self) -> None:
            if remaining[0] <= 0:
                self.transport.close()
                if not self.finished.done():
                    self.finished.set_result(None)
                return
            remaining[0] -= 1
            self.sent = time.perf_counter()
            self.transport.write(message)

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            if self.need is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                lines = self.buffer[:end].split(b"\r\n")
                self.status = int(lines[0].split()[1])
                length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:"))
                self.need, self.buffer = length, self.buffer[end + 4:]
            if len(self.buffer) >= self.need:
                latencies.append(time.perf_counter() - self.sent)
                if self.status != 200:
                    errors.append(self.status)
                self.buffer, self.need = self.buffer[self.need:], None
                self.next()

        def connection_lost(self, exc) -> None:
            if not self.finished.done():
                self.finished.set_exception(ConnectionError(f"the server closed a connection ({exc})"))

    async def run():
        loop = asyncio.get_running_loop()
        finished = [loop.create_future() for _ in range(clients)]
        for f in finished:
            await loop.create_connection(lambda f=f: Client(f), "127.0.0.1", port)
        await asyncio.gather(*finished)

    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    runner(run())
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    return {"requests/s": total / wall, "images/s": total * images / wall,
            "p50 ms": 1000 * np.percentile(latencies, 50), "p99 ms": 1000 * np.percentile(latencies, 99),
            "client cpu": used / (wall * os.cpu_count()), "errors": len(errors)}


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


class InProcess:
    """OnnxGenerator's own throughput at batch 1024 (the yardstick for served images/s)."""

    def __init__(self, model: Path):
        from gan_pack.runtime.generator import OnnxGenerator

        self.g = OnnxGenerator(model)
        k = self.g.info.num_classes
        self.noise = self.g.noise(1024, seed=0)
        self.labels = np.arange(1024) % k if k else None
        self.g.generate(self.noise, self.labels)

    def rate(self, seconds: float) -> float:
        started, rounds = time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            self.g.generate(self.noise, self.labels)
            rounds += 1
        rate = rounds * 1024 / (time.perf_counter() - started)
        time.sleep(0.2)     # onnxruntime's threads spin for about 40 ms after a call: not into the next cell
        return rate


def interleaved(model: str, layouts: dict[str, list[str]], images: int, rounds: int, requests: int,
                in_process: InProcess) -> dict[str, list[dict]]:
    """64 clients of `images` images against a server per layout (its flags), in interleaved rounds.
    Every cell also gets the in-process rate measured just before and just after it ("in-process"
    in its result), since this machine's speed drifts by 10% and more within minutes."""
    g = in_process.g
    name, conditional, dim = Path(model).stem, bool(g.info.num_classes), g.info.noise_dim
    servers, results = {}, {label: [] for label in layouts}
    try:
        for label, flags in layouts.items():
            process, port, _ = start_server([model], "--no-batching" not in flags, extra=[
                flag for flag in flags if flag != "--no-batching"])
            servers[label] = (process, port)
            load(port, name, conditional, dim, 64, images, 200)                              # warm up
        for round_ in range(rounds):
            for label, (_, port) in servers.items():
                before = in_process.rate(1)
                r = load(port, name, conditional, dim, 64, images, requests)
                r["in-process"] = (before + in_process.rate(1)) / 2
                results[label].append(r)
                print(f"round {round_ + 1}, 64 clients of {images:>2}, {label:<26} {r['images/s']:>7,.0f} images/s "
                      f"({r['images/s'] / r['in-process']:.0%} of in-process {r['in-process']:,.0f}), "
                      f"p99 {r['p99 ms']:.1f} ms, client cpu {r['client cpu']:.0%}", flush=True)
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=30)
    return results


def median(results: list[dict], key) -> float:
    return float(np.median([key(r) for r in results]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="exported/mnist-cgan-mlp/")
    parser.add_argument("--requests", type=int, default=2000, help="requests per cell of single images")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds against the in-process rate")
    parser.add_argument("--max-delay-ms", type=float, default=2.0, help="the server's batching window")
    parser.add_argument("--threads", type=int, default=None, help="the server's onnxruntime threads")
    parser.add_argument("--layouts", default="--workers 1",
                        help="comma-separated server flags to compare with the default layout in the 16-image rounds")
    args = parser.parse_args()

    in_process = InProcess(ROOT / args.model)
    g = in_process.g
    name, k, dim = Path(args.model).stem, g.info.num_classes, g.info.noise_dim
    reference = in_process.rate(3)
    print(f"{args.model} on {os.cpu_count()} cores; OnnxGenerator in-process at batch 1024: {reference:,.0f} images/s")
    print(f"{'batching':<9} {'clients':>7} {'images':>6} {'req/s':>8} {'images/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'client cpu':>10} {'errors':>6}")
    results = {}
    for batching in (False, True):
        process, port, _ = start_server([args.model], batching, args.max_delay_ms, args.threads)
        try:
            for clients in (1, 8, 64):
                for images in (1, 16):
                    total = args.requests if images == 1 else max(args.requests // 4, 64)
                    load(port, name, bool(k), dim, clients, images, min(total, 200))           # warm up
                    r = load(port, name, bool(k), dim, clients, images, total)
                    results[(batching, clients, images)] = r
                    print(f"{'on' if batching else 'off':<9} {clients:>7} {images:>6} {r['requests/s']:>8,.0f} "
                          f"{r['images/s']:>9,.0f} {r['p50 ms']:>7.1f} {r['p99 ms']:>7.1f} "
                          f"{100 * r['client cpu']:>9.0f}% {r['errors']:>6}", flush=True)
        finally:
            process.terminate()
            process.wait(timeout=30)
    single = results[(True, 64, 1)]["images/s"] / results[(False, 64, 1)]["images/s"]
    print(f"this table, one pass: 64 single-image clients get {single:.2f}x from batching; 64 clients of 16 images "
          f"{results[(True, 64, 16)]['images/s'] / reference:.0%} of the in-process throughput")
    print(f"\nInterleaved rounds ({args.rounds}), medians:")
    singles = interleaved(args.model, {"batching on": [], "batching off": ["--no-batching"]}, 1, args.rounds,
                          args.requests, in_process)
    on, off = singles["batching on"], singles["batching off"]
    gains = [a["images/s"] / b["images/s"] for a, b in zip(on, off)]
    print(f"64 single-image clients: batching gives {np.median(gains):.2f}x the images/s of one call per request "
          f"(rounds: {', '.join(f'{x:.2f}x' for x in gains)}), p99 {median(on, lambda r: r['p99 ms']):.1f} ms "
          f"(worst round {max(r['p99 ms'] for r in on):.1f} ms)")
    layouts = {"default layout": []}
    layouts.update({flags.strip(): flags.split() for flags in args.layouts.split(",") if flags.strip()})
    big = interleaved(args.model, layouts, 16, args.rounds, max(args.requests // 2, 64), in_process)
    for label, rs in big.items():
        shares = [r["images/s"] / r["in-process"] for r in rs]
        print(f"64 clients of 16 images, {label}: {np.median(shares):.0%} of the in-process throughput at batch 1024 "
              f"(rounds: {', '.join(f'{x:.0%}' for x in shares)}), p99 {median(rs, lambda r: r['p99 ms']):.1f} ms")
    shipped = [str(p) for p in sorted((ROOT / "exported").glob("*/")) if (p / f"{p.name}.onnx").is_file()]
    process, port, cold = start_server(shipped, True)
    try:
        print(f"serving the {len(shipped)} shipped packages: first ready answer after {cold:.2f} s, "
              f"resident memory {rss_mib(process.pid):.0f} MiB")
    finally:
        process.terminate()
        process.wait(timeout=30)


if __name__ == "__main__":
    main()
