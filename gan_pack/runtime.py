"""OnnxGenerator: load an exported generator, check it, and sample it. numpy + onnxruntime only."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence, Union

import numpy as np

from gan_pack.contract import IMAGES, LABELS, NOISE, ModelInfo
from gan_pack.errors import DeviceError, ModelError
from gan_pack.noise import SEED_MAX, check_truncation, portable_noise, random_seed

DEVICES = ("cpu", "cuda", "auto")
DEFAULT_BATCH_SIZE = 1024       # the largest batch chosen by itself (and the batch on a GPU)
MEMORY_BUDGET = 8 << 20         # what one CPU call's activations may take when the batch is chosen
ARENA_FACTOR = 2                # onnxruntime's arena grows by doubling, and adds buffers of its own
FALLBACK_BATCH_SIZE = 256       # models whose metadata lacks activation_bytes (older exports)
MAX_BATCH_SIZE = 1 << 20
MAX_BATCH_BYTES = 1 << 28       # images of one onnxruntime call (256 MiB of float32)
MAX_SAMPLE_VALUES = 1 << 28     # sample() returns one array: at most 1 GiB of float32
MAX_IMAGES = 10**12             # -n / --per-class: streamed, so only the count itself is bounded
IO_BINDING_MIN_BATCH = 256     # on CUDA, batches from this size run through I/O binding
# cuDNN's heuristics pick the transposed convolutions' algorithms; onnxruntime's default, an
# exhaustive search, picked one 1.8x slower on an H100 (benchmarks/sampling_cuda.py --arch dcgan)
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC"}
Labels = Union[None, int, Sequence[int], np.ndarray, str, "LabelCycle"]


def providers_for(device: str) -> list[str]:
    import onnxruntime as ort

    if device not in DEVICES:
        raise DeviceError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise DeviceError("--device cuda needs onnxruntime's CUDAExecutionProvider, which this "
                          "onnxruntime lacks; pip install onnxruntime-gpu (or use --device cpu)")
    if device == "cpu" or (device == "auto" and not has_cuda):
        return ["CPUExecutionProvider"]
    return [("CUDAExecutionProvider", CUDA_OPTIONS), "CPUExecutionProvider"]


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS, Windows)
        return os.cpu_count() or 1


def check_threads(threads: int | None) -> None:
    """--threads: 1 up to the cores this process may use (more only slows onnxruntime down)."""
    cores = usable_cores()
    if threads is not None and not 1 <= threads <= cores:
        raise DeviceError(f"--threads must be in 1..{cores} (the cores this process may use), not {threads}")


def check_model_file(path: Path, what: str = "an exported .onnx model") -> None:
    """Before onnxruntime opens a file: it exists, is not a training run or checkpoint, and keeps any
    external data beside itself."""
    from gan_pack.onnxscan import check_external_data

    if path.is_dir():
        from gan_pack.runlog import is_run

        if is_run(path) or (path / "checkpoint.pt").is_file():
            raise ModelError(f"{path} is a training run: export it first with "
                             f"ganpack export {path} -o NAME.onnx")
        raise ModelError(f"{path} is a folder; give the path of {what}")
    if not path.is_file():
        raise ModelError(f"{path} does not exist; give the path of {what}")
    with open(path, "rb") as f:
        head = f.read(4)
    if path.suffix in (".pt", ".pth", ".ckpt") or head == b"PK\x03\x04":
        raise ModelError(f"{path} is a PyTorch checkpoint, not an ONNX model: export it first with "
                         f"ganpack export RUN -o NAME.onnx")
    check_external_data(path)


def create_session(path: Path, device: str, threads: int | None):
    """An InferenceSession on the asked device; fails if CUDA was asked for and silently dropped."""
    import onnxruntime as ort

    check_threads(threads)
    providers = providers_for(device)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as e:  # onnxruntime raises its own (C++) exception types
        raise ModelError(f"{path} is not a loadable ONNX model ({str(e).splitlines()[0][:200]})") from e
    active = session.get_providers()
    if len(providers) > 1 and "CUDAExecutionProvider" not in active:
        if device == "cuda":
            raise DeviceError("the CUDA provider could not start (no GPU or CUDA libraries?); "
                              "install onnxruntime-gpu with a matching CUDA, or use --device cpu")
        print("gan_pack: CUDA unavailable, sampling on CPU", file=sys.stderr)
    return session


def _check_signature(session, path: Path, info: ModelInfo) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    expected = [NOISE] + ([LABELS] if info.conditional else [])
    missing = [n for n in expected if n not in inputs] + [n for n in [IMAGES] if n not in outputs]
    extra = [n for n in inputs if n not in expected]
    if missing or extra:
        raise ModelError(f"{path} does not follow the gan_pack contract: "
                         + (f"missing {', '.join(missing)}" if missing else "")
                         + ("; " if missing and extra else "")
                         + (f"unexpected inputs {', '.join(extra)}" if extra else ""))
    for value in list(inputs.values()) + list(outputs.values()):
        if not value.shape or not isinstance(value.shape[0], str):
            raise ModelError(f"{path}: {value.name!r} has a fixed batch axis {value.shape}; "
                             f"re-export it with `ganpack export`")
    noise, images = inputs[NOISE], outputs[IMAGES]
    if len(noise.shape) != 2 or noise.shape[1] != info.noise_dim or noise.type != "tensor(float)":
        raise ModelError(f"{path}: the noise input is {noise.type} {noise.shape} but the metadata says "
                         f"float (batch, {info.noise_dim}); the metadata does not describe this graph")
    if info.conditional and (len(inputs[LABELS].shape) != 1 or inputs[LABELS].type != "tensor(int64)"):
        raise ModelError(f"{path}: the labels input is {inputs[LABELS].type} {inputs[LABELS].shape}, "
                         f"not int64 (batch,)")
    fixed = [d if isinstance(d, int) else None for d in images.shape[1:]]
    if len(images.shape) != 4 or any(d is not None and d != want for d, want in zip(fixed, info.image_shape)):
        raise ModelError(f"{path}: the images output is {images.shape} but the metadata says image_shape "
                         f"{list(info.image_shape)}; the metadata does not describe this graph")


class OnnxGenerator:
    """An exported gan_pack generator, ready to sample.

    >>> g = OnnxGenerator("exported/mnist-cgan.onnx")
    >>> images = g.sample(16, labels=3, seed=0)      # (16, 1, 28, 28) float32 in [-1, 1]
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu", threads: int | None = None,
                 batch_size: int | None = None, memory_budget: int = MEMORY_BUDGET):
        self.path = Path(path)
        check_model_file(self.path)
        self.session = create_session(self.path, device, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.info = ModelInfo.from_metadata(meta, self.path)
        _check_signature(self.session, self.path, self.info)
        self.providers = self.session.get_providers()
        # Where large batches are bound (inputs and output placed by onnxruntime on that device).
        self.binding_device = "cuda" if self.providers[0] == "CUDAExecutionProvider" else None
        if not 1 << 20 <= memory_budget <= 1 << 40:
            raise ModelError(f"memory_budget must be 1 MiB..1 TiB, not {memory_budget} bytes")
        self.batch_size = self._bounded(self._fitted_batch(memory_budget) if batch_size is None else batch_size)

    def _fitted_batch(self, budget: int) -> int:
        """The batch whose activations fit `budget` on the CPU: a power of two up to
        DEFAULT_BATCH_SIZE, from the metadata's activation_bytes (per image). On a GPU (its memory
        is another budget) and for models without the figure: the fixed defaults."""
        per_image = self.info.activation_bytes
        if self.binding_device is not None:
            return DEFAULT_BATCH_SIZE
        if per_image is None:
            return FALLBACK_BATCH_SIZE
        fits = max(1, min(budget // (ARENA_FACTOR * per_image), DEFAULT_BATCH_SIZE))
        return 1 << (fits.bit_length() - 1)

    @property
    def image_values(self) -> int:
        return int(np.prod(self.info.image_shape))

    def _bounded(self, batch_size: int) -> int:
        """A batch size in range, lowered to at most MAX_BATCH_BYTES of images per onnxruntime call."""
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ModelError(f"batch_size must be in 1..{MAX_BATCH_SIZE}, not {batch_size}")
        return max(1, min(batch_size, MAX_BATCH_BYTES // (4 * self.image_values)))

    def check_inputs(self, noise: np.ndarray, labels: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The feeds for (noise, labels), checked as the contract says; a ModelError names what is wrong."""
        noise = np.ascontiguousarray(noise, dtype=np.float32)
        if noise.ndim != 2 or noise.shape[1] != self.info.noise_dim:
            raise ModelError(f"noise must have shape (batch, {self.info.noise_dim}), not {noise.shape}")
        if not np.isfinite(noise).all():
            raise ModelError("noise holds NaN or infinite values; give finite numbers (standard normal)")
        feeds = {NOISE: noise}
        if self.info.conditional:
            if labels is None:
                raise ModelError("this model is conditional: give labels (one per noise row)")
            labels = self._check_labels(np.asarray(labels))
            if labels.shape != (len(noise),):
                raise ModelError(f"labels must have shape ({len(noise)},), not {labels.shape}")
            feeds[LABELS] = labels
        elif labels is not None:
            raise ModelError("this model is unconditional (num_classes 0): drop the labels")
        return feeds

    def generate(self, noise: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """Images (B, C, H, W) float32 in [-1, 1] for the caller's own noise (B, noise_dim)."""
        return self.run_checked(self.check_inputs(noise, labels))

    def run_checked(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Images for feeds that check_inputs made (a server batches several requests' feeds)."""
        images = self._run(feeds)
        # models exported before the graph clamped its output can overshoot +-1 by an ulp
        return np.clip(images, -1.0, 1.0, out=images)

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """On CUDA, large batches run with I/O binding: onnxruntime copies the inputs to the GPU,
        writes the output into a GPU buffer of its arena and copies it back once, instead of
        staging both through its default run path. A binding per call keeps this thread-safe."""
        if self.binding_device is None or len(feeds[NOISE]) < IO_BINDING_MIN_BATCH:
            return self.session.run([IMAGES], feeds)[0]
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        binding.bind_output(IMAGES, self.binding_device)
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def resolve_labels(self, n: int, labels: Labels) -> np.ndarray | None:
        """n labels from: None (cGAN: each class in turn), "cycle", one int, a LabelCycle, or a
        sequence of n."""
        return self._label_source(n, labels)(0, n)

    def _label_source(self, n: int, labels: Labels):
        """labels_for(start, count): the labels of images start..start+count, computed per batch, so
        a pattern (cycle, one label, --per-class) costs no memory for any n."""
        k = self.info.num_classes
        if not self.info.conditional:
            if labels is not None:
                raise ModelError("this model is unconditional (num_classes 0): labels cannot be used")
            return lambda start, count: None
        if labels is None or (isinstance(labels, str) and labels == "cycle"):
            labels = LabelCycle(np.arange(k))
        if isinstance(labels, str):
            raise ModelError(f"labels must be an int, a sequence of ints or 'cycle', not {labels!r}")
        if not isinstance(labels, LabelCycle):
            array = np.asarray(labels)
            if array.ndim == 0:
                labels = LabelCycle(array.reshape(1))
            elif array.shape != (n,):
                raise ModelError(f"got {len(array)} labels for {n} images; give one label or exactly {n}")
            else:
                checked = self._check_labels(array)
                return lambda start, count: checked[start:start + count]
        if not len(labels.pattern) or labels.repeat < 1:
            raise ModelError("a LabelCycle needs at least one label and a repeat of at least 1")
        pattern = self._check_labels(np.asarray(labels.pattern))
        return lambda start, count: labels.take(pattern, start, count)

    def _check_labels(self, labels: np.ndarray) -> np.ndarray:
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise ModelError(f"labels must be integers, not {labels.dtype}")
        k = self.info.num_classes
        bad = labels[(labels < 0) | (labels >= k)] if labels.size else labels
        if bad.size:
            raise ModelError(f"label {int(bad[0])} is out of range: this model has classes 0..{k - 1}")
        return labels.astype(np.int64)

    def iter_batches(self, n: int, labels: Labels = None, seed: int | None = None, batch_size: int | None = None,
                     truncation: float | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (start index, images) batch by batch, so memory stays bounded for any n.

        Image k's noise is the portable noise of (seed, k) (gan_pack.noise): the same whatever n and
        the batch size, and the same in the Node and browser examples. truncation: redraw noise
        components beyond +-truncation (the truncation trick).
        """
        if n < 1:
            raise ModelError(f"n must be at least 1, not {n}")
        batch_size = self._bounded(self.batch_size if batch_size is None else batch_size)
        labels_for = self._label_source(n, labels)
        seed = seed_or_random(seed)
        check_truncation(truncation)
        for start in range(0, n, batch_size):
            count = min(batch_size, n - start)
            noise = portable_noise(seed, start, count, self.info.noise_dim, truncation)
            yield start, self.generate(noise, labels_for(start, count))

    def sample(self, n: int, labels: Labels = None, seed: int | None = None,
               batch_size: int | None = None, truncation: float | None = None) -> np.ndarray:
        """n images (n, C, H, W) float32 in [-1, 1]; image k from the portable noise of (seed, k)."""
        self.check_one_array(n)
        out = np.empty((n, *self.info.image_shape), dtype=np.float32) if n > 0 else None
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
        return portable_noise(seed_or_random(seed), start, n, self.info.noise_dim, truncation)


def check_seed(seed: int | None) -> int | None:
    """Seeds are 0..2**32-1 everywhere (train takes the same range)."""
    if seed is not None and not (isinstance(seed, (int, np.integer)) and 0 <= seed <= SEED_MAX):
        raise ModelError(f"--seed must be in 0..{SEED_MAX}, not {seed}")
    return seed


def seed_or_random(seed: int | None) -> int:
    """The seed, checked; a random one for a request that gave none."""
    return random_seed() if seed is None else check_seed(seed)


@dataclass(frozen=True)
class LabelCycle:
    """Labels by pattern, never stored whole: image i gets pattern[(i // repeat) % len(pattern)].
    LabelCycle(arange(k)) cycles the classes; LabelCycle(arange(k), repeat=K) is --per-class K."""

    pattern: np.ndarray
    repeat: int = 1

    def take(self, pattern: np.ndarray, start: int, count: int) -> np.ndarray:
        index = np.arange(start, start + count, dtype=np.int64) // self.repeat
        return pattern[index % len(pattern)]


@dataclass(frozen=True)
class LabelRequest:
    """What `--label`, `--labels` and `--per-class` ask for, turned into what `sample` takes."""

    n: int
    labels: Labels
    columns: int | None             # images per grid row (one row per class with --per-class)

    @classmethod
    def parse(cls, num_classes: int, n: int, label: int | None = None, labels: str | None = None,
              per_class: int | None = None) -> "LabelRequest":
        given = [x is not None for x in (label, labels, per_class)]
        if sum(given) > 1:
            raise ModelError("give only one of --label, --labels and --per-class")
        if any(given) and num_classes == 0:
            raise ModelError("this model is unconditional (num_classes 0): drop --label/--labels/--per-class")
        if per_class is not None:
            if not 1 <= per_class <= MAX_IMAGES // num_classes:
                raise ModelError(f"--per-class must be in 1..{MAX_IMAGES // num_classes}, not {per_class}")
            return cls(per_class * num_classes, LabelCycle(np.arange(num_classes), per_class), per_class)
        if labels is not None:
            try:
                items = [int(x) for x in labels.split(",") if x.strip()]
            except ValueError:
                raise ModelError(f"--labels must be comma-separated integers like 0,1,2, not {labels!r}") from None
            if not items:
                raise ModelError("--labels is empty; give e.g. --labels 0,1,2")
            return cls(n, LabelCycle(np.asarray(items, dtype=np.int64)), None)
        return cls(n, label, None)


def slerp_at(a: np.ndarray, b: np.ndarray, t) -> np.ndarray:
    """The point(s) a fraction t (a number or an array of them) of the way from a to b along the
    great circle; float64 math, float32 out."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = np.dot(a64, b64) / (np.linalg.norm(a64) * np.linalg.norm(b64))
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    t = np.asarray(t, dtype=np.float64)[..., None]
    if omega < 1e-6:
        return ((1 - t) * a64 + t * b64).astype(np.float32)
    return ((np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)).astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """Spherical interpolation from a to b (each (noise_dim,)) in `steps` points, ends included."""
    return slerp_at(a, b, np.linspace(0.0, 1.0, steps))


def latent_walk(generator: OnnxGenerator, steps: int, label: int | None, seed: int | None,
                truncation: float | None = None):
    """(noise, labels, rows) of a slerp walk between two noise vectors of `seed`: one row in class
    `label`, or one row per class of a cGAN (the same walk in each), or one row for a GAN."""
    k = generator.info.num_classes
    if label is not None and k == 0:
        raise ModelError("this model is unconditional (num_classes 0): drop --label")
    ends = generator.noise(2, seed, truncation=truncation)
    walk = slerp(ends[0], ends[1], steps)                        # (steps, noise_dim)
    rows = [label] if label is not None else (list(range(k)) if k else [None])
    noise = np.concatenate([walk] * len(rows))
    labels = None if k == 0 else generator.resolve_labels(len(noise), np.repeat(np.asarray(rows), steps))
    return noise, labels, len(rows)


def available_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()
