"""The memory and latency bounds under hostile load (not a test): prints each figure beside its target.

1. `ganpack sample --seeds 0-4999 -o x.npy` against `-n 5000 -o x.npy`: peak resident memory of the
   whole process (the seeds run in the same bounded batches as -n).
2. `ganpack serve` with the four shipped packages while 8 clients each ask every model for
   `sample.npy?n=4096` at once (32 requests of 4096 images): the server's peak resident memory.
3. `/v2/health/live` from another client while a 100 MB body is being sent (and refused): its
   latency, median and worst of 20.
4. One JSON infer of 4,096 64 px RGBA emoji (an 8 MB body) against `ganpack serve exported/emoji-cgan/`,
   while another client polls `/v2/health/live` every 50 ms: the reply's status and size, the server's
   peak resident memory over idle, and the worst health latency.

Usage: .venv/bin/python benchmarks/hostile.py [--part seeds|serve|latency|json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["mnist-cgan", "mnist-gan", "mnist-cgan-mlp", "fashion-mnist-cgan"]


def peak_mib(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one whole process."""
    probe = ("import resource, subprocess, sys, time\n"
             "t = time.perf_counter(); r = subprocess.run(sys.argv[1:], capture_output=True)\n"
             "assert r.returncode == 0, r.stderr\n"
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True)
    wall, rss_kib = out.stdout.split()
    return float(wall), float(rss_kib) / 1024


def seeds_part(rounds: int = 3) -> None:
    ganpack = [sys.executable, "-m", "gan_pack", "sample", "exported/mnist-cgan/"]
    with tempfile.TemporaryDirectory() as scratch:
        runs = {"-n 5000": [*ganpack, "-n", "5000", "-o", f"{scratch}/n.npy"],
                "--seeds 0-4999": [*ganpack, "--seeds", "0-4999", "-o", f"{scratch}/s.npy"]}
        peaks = {name: [] for name in runs}
        for _ in range(rounds):                                 # interleaved: A, B, A, B, ...
            for name, argv in runs.items():
                peaks[name].append(peak_mib(argv)[1])
        shapes = np.load(f"{scratch}/n.npy", mmap_mode="r").shape, np.load(f"{scratch}/s.npy", mmap_mode="r").shape
    n, seeds = max(peaks["-n 5000"]), max(peaks["--seeds 0-4999"])
    print(f"sample -o x.npy, mnist-cgan, worst peak of {rounds} runs each (whole process)")
    print(f"  -n 5000          {n:7.1f} MiB")
    print(f"  --seeds 0-4999   {seeds:7.1f} MiB   difference {seeds - n:+.1f} MiB (target: at most +50)")
    assert shapes[0] == shapes[1] == (5000, 1, 28, 28), shapes


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v2/health/ready")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError("the server did not start")


def start_server(port: int, models: list[str] = MODELS) -> subprocess.Popen:
    argv = [sys.executable, "-m", "gan_pack", "serve", *(f"exported/{m}/" for m in models), "--port", str(port)]
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_ready(port, process)
    return process


def rss_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return float("nan")


def fetch(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", path)
    reply = conn.getresponse()
    size = len(reply.read())
    assert reply.status == 200, reply.status
    return size


def serve_part(clients: int = 8, n: int = 4096) -> None:
    port = free_port()
    process = start_server(port)
    try:
        idle = rss_mib(process.pid, "VmRSS")
        started = time.perf_counter()
        with ThreadPoolExecutor(clients * len(MODELS)) as pool:
            sizes = list(pool.map(lambda job: fetch(port, f"/v1/models/{job[1]}/sample.npy?n={n}&seed={job[0]}"),
                                  [(c, m) for c in range(clients) for m in MODELS]))
        took = time.perf_counter() - started
        peak = rss_mib(process.pid, "VmHWM")
    finally:
        process.terminate()
        process.wait(timeout=60)
    print(f"ganpack serve, 4 shipped packages: {clients} clients x {len(MODELS)} models x sample.npy?n={n} at once")
    print(f"  {len(sizes)} replies of {sizes[0] / 2**20:.1f} MiB in {took:.1f} s; resident memory idle {idle:.0f} MiB, "
          f"peak {peak:.0f} MiB (target: under 1536 MiB; {peak / 24576:.1%} of this machine's 24 GiB)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send_large_body(port: int, size: int, done: threading.Event) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"POST /v2/models/mnist-gan/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * (1 << 20)
        try:
            for _ in range(size >> 20):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass                                            # refused: the server closed the connection
    done.set()


def latency_part(probes: int = 20) -> None:
    port = free_port()
    process = start_server(port)
    try:
        done = threading.Event()
        threading.Thread(target=send_large_body, args=(port, 100 << 20, done), daemon=True).start()
        times = []
        for _ in range(probes):
            started = time.perf_counter()
            fetch(port, "/v2/health/live")
            times.append(1000 * (time.perf_counter() - started))
            time.sleep(0.01)
    finally:
        process.terminate()
        process.wait(timeout=60)
    print(f"/v2/health/live while a 100 MB chunked body is sent to /infer (refused at 64 MiB): {probes} probes")
    print(f"  median {np.median(times):.1f} ms, worst {max(times):.1f} ms (target: under 100 ms)")


def poll_health(port: int, stop: threading.Event, times: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        fetch(port, "/v2/health/live")
        times.append(1000 * (time.perf_counter() - started))
        time.sleep(0.05)


def json_part() -> None:
    for rows in (4096, 1000, 64):       # refused; its JSON just under the 2 MiB parsed; its reply as JSON
        json_infer(rows, binary=rows != 64)
        print()


def json_infer(rows: int, binary: bool) -> None:
    rng = np.random.default_rng(0)
    body = json.dumps({"inputs": [
        {"name": "noise", "datatype": "FP32", "shape": [rows, 100], "data": rng.standard_normal(rows * 100).tolist()},
        {"name": "labels", "datatype": "INT64", "shape": [rows], "data": [i % 9 for i in range(rows)]}],
        "parameters": {"binary_data_output": binary}}).encode()
    port = free_port()
    process = start_server(port, ["emoji-cgan"])
    try:
        time.sleep(1.0)
        idle = rss_mib(process.pid, "VmRSS")
        stop, times = threading.Event(), []
        poller = threading.Thread(target=poll_health, args=(port, stop, times))
        poller.start()
        time.sleep(0.5)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        started = time.perf_counter()
        conn.request("POST", "/v2/models/emoji-cgan/infer", body, {"Content-Type": "application/json"})
        reply = conn.getresponse()
        content = reply.read()
        took = time.perf_counter() - started
        time.sleep(0.5)
        stop.set()
        poller.join()
        peak = rss_mib(process.pid, "VmHWM")
    finally:
        process.terminate()
        process.wait(timeout=60)
    print(f"one JSON infer of {rows} emoji ({len(body) / 2**20:.1f} MiB body, reply {'binary' if binary else 'JSON'}) "
          f"to ganpack serve exported/emoji-cgan/")
    print(f"  status {reply.status} in {took * 1000:.0f} ms, {len(content):,} bytes: "
          f"{content[:160].decode(errors='replace')}")
    print(f"  resident memory idle {idle:.0f} MiB, peak {peak:.0f} MiB: {peak - idle:+.0f} MiB over idle "
          f"(target: under 1024; {(peak - idle) / 24576:.1%} of this machine's 24 GiB)")
    print(f"  /v2/health/live every 50 ms meanwhile: {len(times)} probes, median {np.median(times):.1f} ms, "
          f"worst {max(times):.1f} ms (target: under 100 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["seeds", "serve", "latency", "json"], action="append")
    parts = parser.parse_args().part or ["seeds", "serve", "latency", "json"]
    for part in parts:
        {"seeds": seeds_part, "serve": serve_part, "latency": latency_part, "json": json_part}[part]()
        print()


if __name__ == "__main__":
    main()
