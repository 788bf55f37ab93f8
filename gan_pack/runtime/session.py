"""The one place onnxruntime sessions are made: the model file checked before onnxruntime opens it,
the providers for a device (asking for CUDA and getting CPU is an error), the thread count.
numpy + onnxruntime only."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gan_pack.contract.choices import Device
from gan_pack.contract.package_format import PACKAGE_FORMAT
from gan_pack.errors import DeviceError, ModelError

# cuDNN's heuristics pick the transposed convolutions' algorithms; onnxruntime's default, an
# exhaustive search, picked one 1.8x slower on an H100 (benchmarks/sampling_cuda.py --arch dcgan)
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC"}
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def providers_for(device: str) -> list:
    """onnxruntime's providers for a device: names, or (name, options) pairs."""
    import onnxruntime as ort

    if device not in Device.values():
        raise DeviceError(f"device must be one of {', '.join(Device.values())}, not {device!r}")
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



def package_model(folder: Path) -> Path | None:
    """The generator of a package folder (`ganpack pack`): NAME/NAME.onnx, or the model its manifest
    names; None for a folder that is no package."""
    import json

    main = folder / f"{folder.name}.onnx"
    if main.is_file():
        return main
    for manifest in sorted(folder.glob("*.json"))[:16]:
        try:
            if manifest.stat().st_size > 1 << 20:
                continue
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        name = data.get("name") if isinstance(data, dict) and data.get("format") == PACKAGE_FORMAT else None
        if isinstance(name, str) and name and "/" not in name and "\\" not in name and name not in (".", ".."):
            return folder / f"{name}.onnx" if (folder / f"{name}.onnx").is_file() else None
    return None


def _not_a_model(path: Path, what: str) -> ModelError:
    """Why a folder or a PyTorch file cannot be sampled, and the command that makes a model of it."""
    from gan_pack.core.runlog import is_run

    if path.is_dir():
        if is_run(path) or (path / "checkpoint.pt").is_file():
            return ModelError(f"{path} is a training run: export it first with ganpack export {path} -o NAME.onnx")
        return ModelError(f"{path} is a folder that holds no package; give the path of {what}")
    if is_run(path.parent):
        return ModelError(f"{path} is a checkpoint of the training run {path.parent}: export it first with "
                          f"ganpack export {path.parent} -o NAME.onnx")
    return ModelError(f"{path} is a PyTorch file, not an ONNX model: export it first, with "
                      f"ganpack export {path} --module FILE.py:Class --noise-dim N -o NAME.onnx for your own "
                      f"generator's state dict (or --from tutorial-cgan for the classic tutorial's)")


def resolve_model_file(path: str | os.PathLike, what: str = "an exported .onnx model") -> Path:
    """The .onnx file to open for `path` (a package folder gives its generator), checked before
    onnxruntime reads it: it exists, is not a training run or checkpoint, and keeps any external
    data beside itself."""
    from gan_pack.runtime.onnxscan import check_external_data

    path = Path(path)
    if path.is_dir():
        main = package_model(path)
        if main is None:
            raise _not_a_model(path, what)
        path = main
    if not path.is_file():
        raise ModelError(f"{path} does not exist; give the path of {what}")
    with open(path, "rb") as f:
        head = f.read(4)
    if path.suffix in CHECKPOINT_SUFFIXES or head == b"PK\x03\x04":
        raise _not_a_model(path, what)
    check_external_data(path)
    return path


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



def available_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()
