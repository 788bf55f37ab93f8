"""OnnxGenerator: load an exported generator, check it against its metadata, and sample it.
numpy + onnxruntime only."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np

from gan_pack.contract.metadata import ModelInfo
from gan_pack.contract.names import IMAGES, LABELS, NOISE, PSI
from gan_pack.core.noise import effective_truncation, portable_noise
from gan_pack.errors import ModelError
from gan_pack.runtime.device import OUTPUTS, bound_inputs, bound_run, host_array, on_device
from gan_pack.runtime.labels import MAX_IMAGES, Labels, check_labels, label_source, seed_or_random, whole
from gan_pack.runtime.session import open_planned, plan_run, usable_cores
from gan_pack.runtime.signature import check_signature

DEFAULT_BATCH_SIZE = 1024       # the largest batch chosen by itself on a CPU
GPU_BATCH_SIZE = 8192           # ... and on a GPU, where the activations may take GPU_MEMORY_BUDGET
GPU_MEMORY_BUDGET = 1 << 30
MEMORY_BUDGET = 8 << 20         # what one CPU call's activations may take when the batch is chosen
ARENA_FACTOR = 2                # onnxruntime's arena grows by doubling, and adds buffers of its own
FALLBACK_BATCH_SIZE = 256       # models whose metadata lacks activation_bytes (older exports)
MAX_BATCH_SIZE = 1 << 20
MAX_BATCH_BYTES = 1 << 28       # images of one onnxruntime call (256 MiB of float32)
MAX_CALL_MEMORY = 1 << 30       # what an asked-for batch size may take in activations (CPU)
MAX_SAMPLE_VALUES = 1 << 28     # sample() returns one array: at most 1 GiB of float32
IO_BINDING_MIN_BATCH = 256     # on CUDA, batches from this size run through I/O binding
NOISE_THREADS = 4               # on CUDA, threads that make the noise of the batches to come ...
NOISE_AHEAD = 2                 # ... this many batches ahead
MAX_PSI = 2.0                   # |psi| beyond this extrapolates w far past anything trained


def psi_values(psi) -> np.ndarray:
    """psi as float64 values (one, or one per row), checked before anything converts it: numbers only
    (not booleans, strings, objects or integers past float's range), finite, within +-MAX_PSI."""
    wrong = ModelError(f"psi must be a number in -{MAX_PSI:g}..{MAX_PSI:g} (1: no truncation, 0: the average "
                       f"image), or a flat list of such numbers, one per image; not {str(psi)[:40]!r}")
    if isinstance(psi, (str, bytes, dict)):
        raise wrong
    try:
        values = np.asarray(psi)
    except (TypeError, ValueError, OverflowError):          # ragged lists, objects that refuse
        raise wrong from None
    if values.dtype.kind not in "iuf" or values.ndim > 1 or values.size == 0:
        raise wrong                                         # bools, strings, objects (10**400), nesting
    values = values.astype(np.float64).reshape(-1)
    if not (np.isfinite(values) & (np.abs(values) <= MAX_PSI)).all():
        raise wrong
    return values


class OnnxGenerator:
    """An exported gan_pack generator, ready to sample.

    >>> g = OnnxGenerator("exported/mnist-cgan/")
    >>> images = g.sample(16, labels=3, seed=0)      # (16, 1, 28, 28) float32 in [-1, 1]

    A package folder runs the variant made for the device's provider (its CUDA variant on a GPU),
    else its main model; `variant` chooses one ("main", "cuda", "int8", ...). tf32=False: an fp32
    model on CUDA computes in full fp32 instead of on TF32 tensor cores (slower, exact to 1e-5).
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu", threads: int | None = None,
                 batch_size: int | None = None, memory_budget: int = MEMORY_BUDGET, variant: str | None = None,
                 tf32: bool = True, psi: float | None = None):
        if not isinstance(path, (str, os.PathLike)):
            raise ModelError(f"path must be a package folder or an .onnx file's path, not {type(path).__name__}")
        if not isinstance(device, str) or not (variant is None or isinstance(variant, str)):
            raise ModelError(f"device and variant are names (device 'cpu', 'cuda' or 'auto'; variant 'main', 'cuda', "
                             f"...), not {str(device)[:20]!r} and {str(variant)[:20]!r}")
        if threads is not None and (not isinstance(threads, (int, np.integer)) or isinstance(threads, bool)):
            raise ModelError(f"threads must be an integer (1 up to the cores this process may use), "
                             f"not {str(threads)[:40]!r}")
        memory_budget = whole(memory_budget, "memory_budget", 1 << 20, 1 << 40)
        self.source = Path(path)
        self.session, self.plan = open_planned(path, plan_run(path, device, variant, tf32), threads, variant)
        self.path, self.variant, self.chosen = self.plan.path, self.plan.variant, self.plan.why
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info = ModelInfo.from_metadata(meta, self.path)
        check_signature(self.session, self.path, self.info)
        self.providers = self.session.get_providers()
        # Where large batches are bound (inputs and output placed by onnxruntime on that device).
        self.binding_device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else None
        if not 1 << 20 <= memory_budget <= 1 << 40:
            raise ModelError(f"memory_budget must be 1 MiB..1 TiB, not {memory_budget} bytes")
        self.batch_size = self._bounded(self._fitted_batch(memory_budget) if batch_size is None else batch_size)
        # a StyleGAN's truncation in w space for every image (None: the graph's default, 1)
        self.psi = None if psi is None else float(self._psi_rows(psi, 1)[0])

    def describe(self) -> str:
        """Which file runs and where: 'mnist-cgan.cuda.onnx (variant cuda, made for CUDA) on CUDAExecutionProvider'."""
        why = f" (variant {self.variant}, {self.chosen})" if self.variant is not None else ""
        return f"{self.path.name}{why} on {self.providers[0]}"

    def _fitted_batch(self, budget: int) -> int:
        """The batch whose activations fit `budget` on the CPU: a power of two up to
        DEFAULT_BATCH_SIZE, from the metadata's activation_bytes (per image). On a GPU (its memory
        is another budget) and for models without the figure: the fixed defaults."""
        per_image = self.info.activation_bytes
        if self.binding_device is not None:                 # a GPU: up to GPU_BATCH_SIZE within 1 GiB
            fits = GPU_MEMORY_BUDGET // (ARENA_FACTOR * per_image) if per_image else DEFAULT_BATCH_SIZE
            return 1 << (max(1, min(fits, GPU_BATCH_SIZE)).bit_length() - 1)
        if per_image is None:
            return FALLBACK_BATCH_SIZE
        fits = max(1, min(budget // (ARENA_FACTOR * per_image), DEFAULT_BATCH_SIZE))
        return 1 << (fits.bit_length() - 1)

    @property
    def image_values(self) -> int:
        return int(np.prod(self.info.image_shape))

    def _bounded(self, batch_size: int) -> int:
        """A batch size in range, lowered to at most MAX_BATCH_BYTES of images per onnxruntime call;
        on a CPU, one whose activations would pass MAX_CALL_MEMORY is refused with its cost."""
        whole(batch_size, "batch_size", 1, MAX_BATCH_SIZE)
        per_image = ARENA_FACTOR * (self.info.activation_bytes or 0)
        if self.binding_device is None and per_image * batch_size > MAX_CALL_MEMORY:
            raise ModelError(f"--batch-size {batch_size} would take about {per_image * batch_size / 2**30:.1f} GiB of "
                             f"activations with this model; at most {MAX_CALL_MEMORY // per_image} fit in "
                             f"{MAX_CALL_MEMORY >> 30} GiB (without --batch-size, the batch fits "
                             f"{MEMORY_BUDGET >> 20} MiB)")
        return max(1, min(batch_size, MAX_BATCH_BYTES // (4 * self.image_values)))

    def check_inputs(self, noise: np.ndarray, labels: np.ndarray | None = None, psi=None) -> dict[str, np.ndarray]:
        """The feeds for (noise, labels[, psi]), checked as the contract says; a ModelError names what is
        wrong. A StyleGAN-family model is fed psi (a number or one per row; default self.psi, else 1)."""
        try:
            noise = np.ascontiguousarray(noise, dtype=np.float32)
        except (TypeError, ValueError, OverflowError):
            raise ModelError(f"noise must be an array of numbers of shape (batch, {self.info.noise_dim}), not "
                             f"{type(noise).__name__}") from None
        if noise.ndim != 2 or noise.shape[1] != self.info.noise_dim:
            raise ModelError(f"noise must have shape (batch, {self.info.noise_dim}), not {noise.shape}")
        if not np.isfinite(noise).all():
            raise ModelError("noise holds NaN or infinite values; give finite numbers (standard normal)")
        feeds = {NOISE: noise}
        if self.info.conditional:
            if labels is None:
                raise ModelError("this model is conditional: give labels (one per noise row)")
            try:
                labels = check_labels(self.info.num_classes, np.asarray(labels))
            except (TypeError, ValueError, OverflowError):
                raise ModelError(f"labels must be integers, one per noise row, not {str(labels)[:40]}") from None
            if labels.shape != (len(noise),):
                raise ModelError(f"labels must have shape ({len(noise)},), not {labels.shape}")
            feeds[LABELS] = labels
        elif labels is not None:
            raise ModelError("this model is unconditional (num_classes 0): drop the labels")
        if self.info.psi_input or psi is not None:
            feeds[PSI] = self._psi_feed(psi, len(noise))
        return feeds

    def _psi_feed(self, psi, rows: int) -> np.ndarray:
        """Always fed to a psi model, one per row (so a server can merge requests): psi, else self.psi, else 1."""
        return self._psi_rows(psi if psi is not None else 1.0 if self.psi is None else self.psi, rows)

    def _psi_rows(self, psi, rows: int) -> np.ndarray:
        """psi (a number, or one per row) as the graph's (rows,) float32 input, checked."""
        if not self.info.psi_input:
            raise ModelError("psi is the truncation of StyleGAN-family models; this one has no psi input (use "
                             "truncation, which redraws large noise components)")
        values = psi_values(psi)
        if len(values) not in (1, rows):
            raise ModelError(f"psi must be one number or one per row ({rows}), not {len(values)} values")
        return np.ascontiguousarray(np.broadcast_to(values.astype(np.float32), (rows,)))

    def generate(self, noise, labels=None, output: str = "numpy", psi=None):
        """Images (B, C, H, W) float32 in [-1, 1] for the caller's own noise (B, noise_dim); psi: a
        StyleGAN's truncation (a number or one per row; default self.psi).

        output="device": on a GPU, the images stay there (a DeviceImages: torch.from_dlpack or
        cupy.from_dlpack take it without a copy), and noise and labels may be GPU tensors too."""
        if output not in OUTPUTS:
            raise ModelError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
        noise, labels = host_array(noise), host_array(labels)
        if self.binding_device is None or (output == "numpy" and not on_device(noise)):
            if on_device(noise):
                raise ModelError("noise on a GPU needs a model on the GPU (device='cuda')")
            return self.run_checked(self.check_inputs(noise, labels, psi))
        if on_device(noise):
            feeds = bound_inputs(noise, labels, self.info.noise_dim, self.info.conditional)
            if self.info.psi_input or psi is not None:
                feeds[PSI] = self._psi_feed(psi, self._output_shape(feeds)[0])
        else:
            feeds = self.check_inputs(noise, labels, psi)
        return bound_run(self.session, feeds, self.binding_device, output, self._output_shape(feeds))

    def generate_in_batches(self, noise: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """generate, one batch of batch_size rows at a time: the activations stay within the
        memory budget however many rows (the result is still one array)."""
        step = self.batch_size
        return np.concatenate([self.generate(noise[i:i + step], None if labels is None else labels[i:i + step])
                               for i in range(0, len(noise), step)])

    def run_checked(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Images for feeds that check_inputs made (a server batches several requests' feeds)."""
        images = self._run(feeds)
        if self.info.raw.get("clamped") == "true":      # the graph ends in Clip(-1, 1) (CUDA variants)
            return images
        # models exported before the graph clamped its output can overshoot +-1 by an ulp
        return np.clip(images, -1.0, 1.0, out=images)

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """On CUDA, large batches run with I/O binding (device.bound_run): the inputs are copied to
        the GPU once and the output is copied back once, instead of staged through the default run."""
        if self.binding_device is None or len(feeds[NOISE]) < IO_BINDING_MIN_BATCH:
            return self.session.run([IMAGES], feeds)[0]
        return bound_run(self.session, feeds, self.binding_device, "numpy", self._output_shape(feeds))

    def _output_shape(self, feeds: dict) -> tuple[int, ...]:
        """The images' shape for these feeds: numpy outputs are copied straight into an array of it."""
        noise = feeds[NOISE]
        rows = len(noise) if isinstance(noise, np.ndarray) else noise.shape()[0]
        return (rows, *self.info.image_shape)

    def resolve_labels(self, n: int, labels: Labels) -> np.ndarray | None:
        """n labels from: None (cGAN: each class in turn), "cycle", one int, a LabelCycle, or a
        sequence of n."""
        return label_source(self.info.num_classes, n, labels)(0, n)

    def iter_batches(self, n: int, labels: Labels = None, seed: int | None = None, batch_size: int | None = None,
                     truncation: float | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (start index, images) batch by batch, so memory stays bounded for any n.

        Image k's noise is the portable noise of (seed, k) (gan_pack.noise): the same whatever n and
        the batch size, and the same in the Node and browser examples. truncation: redraw noise
        components beyond +-truncation (the truncation trick); None: the model's default
        (self.truncation), 0: none.
        """
        whole(n, "n", 1, MAX_IMAGES)
        batch_size = self._bounded(self.batch_size if batch_size is None else batch_size)
        labels_for = label_source(self.info.num_classes, n, labels)
        seed = seed_or_random(seed)
        batches = self._noise_batches(seed, n, batch_size, self.effective_truncation(truncation))
        if self.binding_device is None:
            for start, noise in batches:
                yield start, self.generate(noise, labels_for(start, len(noise)))
            return
        # On a GPU, the next batch runs while the caller handles this one (writes it, say).
        with ThreadPoolExecutor(1, thread_name_prefix="gpu") as runner:
            pending = None
            for start, noise in batches:
                running = (start, runner.submit(self.generate, noise, labels_for(start, len(noise))))
                if pending is not None:
                    yield pending[0], pending[1].result()
                pending = running
            if pending is not None:
                yield pending[0], pending[1].result()

    def _noise_batches(self, seed: int, n: int, batch_size: int, truncation: float | None):
        """(start, noise) of each batch. On a GPU, NOISE_THREADS threads make the next batches' noise
        while the current one runs: made on one thread, the noise would be the limit, not the GPU.
        More threads do not help: the noise holds Python's lock for a good part of its time, and
        many threads holding it would keep the thread that feeds the GPU waiting."""
        dim = self.info.noise_dim
        workers = min(NOISE_THREADS, usable_cores() - 1) if self.binding_device is not None else 0
        if workers < 1:
            for start in range(0, n, batch_size):
                yield start, portable_noise(seed, start, min(batch_size, n - start), dim, truncation)
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="noise") as pool:
            def submit(start: int):
                end = min(start + batch_size, n)
                step = -(-(end - start) // workers)
                return start, [pool.submit(portable_noise, seed, s, min(step, end - s), dim, truncation)
                               for s in range(start, end, step)]
            pending = deque(submit(s) for s in range(0, min(n, NOISE_AHEAD * batch_size), batch_size))
            following = NOISE_AHEAD * batch_size
            while pending:
                start, parts = pending.popleft()
                if following < n:
                    pending.append(submit(following))
                    following += batch_size
                yield start, np.concatenate([part.result() for part in parts])

    def sample(self, n: int, labels: Labels = None, seed: int | None = None,
               batch_size: int | None = None, truncation: float | None = None) -> np.ndarray:
        """n images (n, C, H, W) float32 in [-1, 1]; image k from the portable noise of (seed, k)."""
        self.check_one_array(whole(n, "n", 1, MAX_IMAGES))
        out = np.empty((n, *self.info.image_shape), dtype=np.float32)
        for start, images in self.iter_batches(n, labels, seed, batch_size, truncation):
            out[start:start + len(images)] = images
        return out

    def check_one_array(self, n: int) -> None:
        """n images in one array (or one .npy file) are at most 1 GiB of float32."""
        if n > 0 and n * self.image_values > MAX_SAMPLE_VALUES:
            raise ModelError(f"{n} images of {'x'.join(map(str, self.info.image_shape))} need "
                             f"{n * self.image_values * 4 / 2**30:.1f} GiB in one array (at most "
                             f"{MAX_SAMPLE_VALUES * 4 / 2**30:.0f} GiB); stream them with iter_batches "
                             f"(ganpack sample --out-dir)")

    def noise(self, n: int, seed: int | None = None, start: int = 0, truncation: float | None = None) -> np.ndarray:
        """The noise of images start .. start + n - 1 of `seed`: what `sample` uses, to reuse or edit."""
        threshold = self.effective_truncation(truncation)
        n = whole(n, "n", 1, MAX_SAMPLE_VALUES // self.info.noise_dim)      # one array of at most 1 GiB
        start = whole(start, "start", 0, MAX_IMAGES)
        return portable_noise(seed_or_random(seed), start, n, self.info.noise_dim, threshold)

    def effective_truncation(self, truncation: float | None) -> float | None:
        """The threshold sampling uses for `truncation`: None gives the model's default (its packager's
        choice, metadata `truncation`; None if it has none), 0 gives none."""
        return effective_truncation(truncation, self.info.truncation)
