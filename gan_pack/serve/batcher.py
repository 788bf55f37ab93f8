"""The dynamic batcher: one model's queue and the tasks that run it. Requests waiting for a model
merge into one onnxruntime call (up to max_batch images; while requests keep arriving together it
also waits max_delay_ms for more, but a lone request is never delayed), then the images are split
back. The graph has no cross-row operation (export proves row independence), so each request gets
what it would get alone."""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from gan_pack.runtime.generator import OnnxGenerator
from gan_pack.serve.layout import CPU_MAX_BATCH, ServeOptions
from gan_pack.serve.protocol import HTTPError


@dataclass
class Job:
    feeds: dict
    count: int
    done: asyncio.Future


@dataclass
class Batcher:
    """One model's queue and the tasks that run it (`workers` of them, each one onnxruntime call at
    a time, so that several calls can be in flight). The calls in flight together hold at most
    max_batch images: each takes at most its share, max_batch / workers (rounded up), and no more
    than the generator's batch (what fits its memory budget). A larger request waits as several
    jobs, so no request makes a call larger than that."""

    generator: OnnxGenerator
    options: ServeOptions
    executor: ThreadPoolExecutor
    workers: int = 1
    pending: deque = field(default_factory=deque)          # the requests waiting, oldest first
    pending_images: int = 0
    idle: deque = field(default_factory=deque)             # a future per worker waiting for requests
    free: int = 0                   # workers not in a call (set from workers)
    requests: int = 0               # requests waiting for their images, in calls or not
    busy: bool = False              # the last batch merged several requests: others are likely to come

    def __post_init__(self) -> None:
        self.free = self.workers

    @property
    def call_limit(self) -> int:
        gpu = self.generator.binding_device is not None
        most = self.options.max_batch or (self.generator.batch_size if gpu else CPU_MAX_BATCH)
        return min(-(-most // self.workers), self.generator.batch_size)

    async def submit(self, feeds: dict, count: int) -> np.ndarray:
        """The images of one request, run as jobs of at most call_limit images, in one array."""
        parts = await self.submit_parts(feeds, count)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    async def submit_parts(self, feeds: dict, count: int) -> list[np.ndarray]:
        """The images of one request as its jobs' outputs, in order (a reply sends them one by one)."""
        if self.requests >= self.options.max_queue:
            raise HTTPError(503, f"the queue is full ({self.options.max_queue} requests waiting); retry later")
        loop, step = asyncio.get_running_loop(), self.call_limit
        jobs = [Job({name: value[start:start + step] for name, value in feeds.items()}, min(step, count - start),
                    loop.create_future()) for start in range(0, count, step)]
        self.pending.extend(jobs)
        self.pending_images += count
        self.requests += 1
        self.wake_one()
        try:
            return list(await asyncio.gather(*(job.done for job in jobs)))
        finally:
            self.requests -= 1

    def wake_one(self) -> None:
        while self.idle:
            bell = self.idle.popleft()
            if not bell.done():
                bell.set_result(None)
                return

    def take(self, limit: int, taken: int = 0) -> list[Job]:
        """Waiting requests, oldest first, while they fit `limit` images beside `taken` ones
        (without `taken`, the oldest one at least, whatever its size)."""
        jobs: list[Job] = []
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
