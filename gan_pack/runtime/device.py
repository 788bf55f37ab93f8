"""Images that stay on the GPU: a generator's inputs taken from GPU memory (anything with
`__dlpack__`, such as a torch or CuPy tensor) and its output left where onnxruntime wrote it,
handed on through DLPack without a copy. numpy + onnxruntime."""

from __future__ import annotations

import numpy as np

from gan_pack.contract.names import IMAGES, LABELS, NOISE, PSI
from gan_pack.errors import ModelError

OUTPUTS = ("numpy", "device")


class DeviceImages:
    """Images (B, C, H, W) float32 in [-1, 1] left on the device that made them.

    torch.from_dlpack(images) and cupy.from_dlpack(images) take them without a copy; numpy()
    copies them to the host. They are the graph's output as it is: ready when generate returns
    (onnxruntime waits for its stream), and for models exported before the graph clamped its output,
    up to an ulp outside [-1, 1] (numpy outputs are clipped on the host)."""

    def __init__(self, value):
        self.value = value                  # an onnxruntime OrtValue

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape())

    def numpy(self) -> np.ndarray:
        return self.value.numpy()

    def __len__(self) -> int:
        return self.shape[0]

    def __dlpack__(self, *args, **kwargs):
        return self.value._ortvalue.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self.value._ortvalue.__dlpack_device__()


DLPACK_CPU = 1                          # DLDeviceType kDLCPU


def on_device(value) -> bool:
    """A tensor in a device's memory that speaks DLPack (a CUDA torch or CuPy tensor, ...)."""
    if isinstance(value, np.ndarray) or not hasattr(value, "__dlpack_device__"):
        return False
    try:
        return value.__dlpack_device__()[0] != DLPACK_CPU
    except (TypeError, ValueError, RuntimeError, IndexError):
        return False


def host_array(value):
    """numpy's view of a host tensor that speaks DLPack (a CPU torch tensor); anything else as it is."""
    if isinstance(value, np.ndarray) or not hasattr(value, "__dlpack__") or on_device(value):
        return value
    try:
        return np.from_dlpack(value)
    except (TypeError, ValueError, RuntimeError, BufferError) as e:
        raise ModelError(f"numpy cannot read this tensor through DLPack ({str(e)[:120]})") from e


def device_value(value, name: str, dtype, shape_tail: tuple[int, ...]):
    """An OrtValue over a DLPack tensor's memory (no copy), its dtype and shape checked."""
    import onnxruntime as ort

    if not hasattr(ort.OrtValue, "from_dlpack"):
        raise ModelError(f"{name} on a GPU needs an onnxruntime whose OrtValue reads DLPack, which "
                         f"{ort.__version__} lacks: pass numpy arrays, or upgrade onnxruntime-gpu")
    try:
        ort_value = ort.OrtValue.from_dlpack(value)
    except (TypeError, RuntimeError, ValueError) as e:
        raise ModelError(f"{name} speaks DLPack but onnxruntime cannot take it ({str(e)[:120]})") from e
    element = {np.float32: "tensor(float)", np.int64: "tensor(int64)"}[dtype]
    shape = tuple(ort_value.shape())
    if ort_value.data_type() != element or len(shape) != 1 + len(shape_tail) or shape[1:] != shape_tail:
        raise ModelError(f"{name} must be {element} of shape (batch{''.join(f', {d}' for d in shape_tail)}), "
                         f"not {ort_value.data_type()} {shape}")
    return ort_value


def bound_inputs(noise, labels, noise_dim: int, conditional: bool) -> dict:
    """The feeds of a run whose noise (and labels) may live on the GPU."""
    feeds = {NOISE: device_value(noise, "noise", np.float32, (noise_dim,))}
    if conditional != (labels is not None):
        raise ModelError("give labels (one per noise row) exactly when the model is conditional")
    if labels is not None:
        feeds[LABELS] = (device_value(labels, "labels", np.int64, ()) if on_device(labels)
                         else np.ascontiguousarray(labels, dtype=np.int64))
    return feeds


def bound_run(session, feeds: dict, device: str, output: str, shape: tuple[int, ...] | None = None):
    """One run through I/O binding: numpy inputs are copied to `device` once, OrtValue inputs used
    where they are. The output is left in the device's arena (output="device"), or, for numpy, copied
    once from the device straight into the array returned (its `shape` given: onnxruntime's own
    OrtValue.numpy() copies twice, to its host buffer and then to numpy). A binding per call keeps
    this thread-safe. A feed that overrides an initializer (a StyleGAN's psi) is one I/O binding does
    not take: then the run goes through run_with_ort_values, and a "device" output is copied back."""
    if not OVERRIDABLE.isdisjoint(feeds) and OVERRIDABLE & overridable(session):
        return _run_with_values(session, feeds, device, output)
    binding = session.io_binding()
    for name, value in feeds.items():
        if isinstance(value, np.ndarray):
            binding.bind_cpu_input(name, value)
        else:
            binding.bind_ortvalue_input(name, value)
    if output == "numpy" and shape is not None:
        images = np.empty(shape, dtype=np.float32)
        binding.bind_output(IMAGES, "cpu", 0, np.float32, list(shape), images.ctypes.data)
        session.run_with_iobinding(binding)
        return images
    binding.bind_output(IMAGES, device)
    session.run_with_iobinding(binding)
    result = binding.get_outputs()[0]
    return DeviceImages(result) if output == "device" else result.numpy()


OVERRIDABLE = frozenset({PSI})


def overridable(session) -> frozenset:
    return frozenset(i.name for i in session.get_overridable_initializers())


def _run_with_values(session, feeds: dict, device: str, output: str):
    """One run of feeds that override initializers, which I/O binding cannot bind: numpy feeds go as
    they are, device feeds as OrtValues; the images come back to the host, and to `device` again for
    output="device"."""
    import onnxruntime as ort

    values = {name: value if isinstance(value, ort.OrtValue) else ort.OrtValue.ortvalue_from_numpy(value)
              for name, value in feeds.items()}
    result = session.run_with_ort_values([IMAGES], values)[0]
    if output != "device":
        return result.numpy()
    if result.device_name().lower() != device:
        result = ort.OrtValue.ortvalue_from_numpy(result.numpy(), device, 0)
    return DeviceImages(result)
