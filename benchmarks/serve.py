"""A bounded load test of `ganpack serve` on 127.0.0.1 (not a test): a fixed number of requests at
1, 8 and 64 concurrent clients, of 1 and of 16 images, with dynamic batching on and off, side by
side in one run. Prints requests/s, images/s, p50 and p99 latency, and the CPU share the load
generator itself took (it shares the machine's cores with the server). Also: the in-process
throughput of OnnxGenerator at batch 1024, cold start to the first ready answer, and the server's
resident memory.

Usage: .venv/bin/python benchmarks/serve.py [--model exported/mnist-cgan-mlp.onnx] [--requests 2000]
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


def start_server(models: list[str], batching: bool, delay_ms: float = 2.0,
                 threads: int | None = None, workers: int = 1) -> tuple[subprocess.Popen, int, float]:
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "gan_pack", "serve", *models, "--port", str(port),
                                "--max-delay-ms", str(delay_ms), *([] if batching else ["--no-batching"]),
                                *(["--threads", str(threads)] if threads else []),
                                "--workers", str(workers)], cwd=ROOT,
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
    """`total` requests of `images` images from `clients` keep-alive connections, driven by one asyncio
    loop (raw HTTP/1.1, so the load generator takes as little of the shared CPU as it can)."""
    import asyncio

    rng = np.random.default_rng(0)
    noise = rng.standard_normal((images, noise_dim), dtype=np.float32)
    labels = np.arange(images, dtype=np.int64) % 10 if conditional else None
    body, headers = binary_request(noise, labels)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    message = (f"POST /v2/models/{name}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    latencies, errors, remaining = [], [], [total]

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while remaining[0] > 0:
            remaining[0] -= 1
            sent = time.perf_counter()
            writer.write(message)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - sent)
            if status != 200:
                errors.append(status)
        writer.close()

    async def run():
        await asyncio.gather(*(client() for _ in range(clients)))

    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    asyncio.run(run())
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    return {"requests/s": total / wall, "images/s": total * images / wall,
            "p50 ms": 1000 * np.percentile(latencies, 50), "p99 ms": 1000 * np.percentile(latencies, 99),
            "client cpu": used / (wall * os.cpu_count()), "errors": len(errors)}


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="exported/mnist-cgan-mlp.onnx")
    parser.add_argument("--requests", type=int, default=2000, help="requests per cell of single images")
    parser.add_argument("--max-delay-ms", type=float, default=2.0, help="the server's batching window")
    parser.add_argument("--threads", type=int, default=None, help="the server's onnxruntime threads")
    args = parser.parse_args()
    from gan_pack.runtime import OnnxGenerator

    g = OnnxGenerator(ROOT / args.model)
    name, k, dim = Path(args.model).stem, g.info.num_classes, g.info.noise_dim
    noise = g.noise(1024, seed=0)
    labels = np.arange(1024) % k if k else None
    g.generate(noise, labels)
    started, rounds = time.perf_counter(), 0
    while time.perf_counter() - started < 3:
        g.generate(noise, labels)
        rounds += 1
    in_process = rounds * 1024 / (time.perf_counter() - started)
    print(f"{args.model} on {os.cpu_count()} cores; OnnxGenerator in-process at batch 1024: {in_process:,.0f} images/s")
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
                          f"{100 * r['client cpu']:>9.0f}% {r['errors']:>6}")
        finally:
            process.terminate()
            process.wait(timeout=30)
    single = results[(True, 64, 1)]["images/s"] / results[(False, 64, 1)]["images/s"]
    print(f"64 single-image clients: batching gives {single:.2f}x the images/s of one call per request "
          f"(p99 {results[(True, 64, 1)]['p99 ms']:.1f} ms)")
    print(f"64 clients of 16 images: {results[(True, 64, 16)]['images/s'] / in_process:.0%} of the in-process "
          f"throughput at batch 1024")
    process, port, _ = start_server([args.model], True, args.max_delay_ms, None, workers=2)
    try:
        for images in (1, 16):
            total = args.requests if images == 1 else max(args.requests // 4, 64)
            load(port, name, bool(k), dim, 64, images, min(total, 200))
            r = load(port, name, bool(k), dim, 64, images, total)
            print(f"--workers 2, 64 clients of {images:>2} image(s): {r['images/s']:>7,.0f} images/s, "
                  f"{r['images/s'] / in_process:.0%} of in-process, p99 {r['p99 ms']:.1f} ms")
    finally:
        process.terminate()
        process.wait(timeout=30)
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
