"""The one place onnxruntime sessions are made: the model file checked before onnxruntime opens it,
the providers for a device (asking for CUDA and getting CPU is an error), the thread count.
numpy + onnxruntime only."""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from gan_pack.contract.choices import Device
from gan_pack.errors import DeviceError, ModelError
from gan_pack.runtime.package import package_model

# cuDNN's heuristics pick the transposed convolutions' algorithms; onnxruntime's default, an
# exhaustive search, picked one 1.8x slower on an H100 (benchmarks/sessions_cuda.py --arch dcgan)
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC"}
# What a model's metadata (`cuda_options`, written by the CUDA variant) may ask of the CUDA provider:
# a file cannot set memory limits, devices or anything else.
MODEL_CUDA_OPTIONS = {"prefer_nhwc": ("0", "1"), "cudnn_conv_algo_search": ("HEURISTIC", "EXHAUSTIVE", "DEFAULT")}
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


def cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def model_cuda_options(metadata: dict[str, str]) -> dict[str, str]:
    """The CUDA provider options a model's metadata asks for, of those MODEL_CUDA_OPTIONS allows."""
    import json

    try:
        asked = json.loads(metadata.get("cuda_options", "{}"))
    except (ValueError, RecursionError):
        return {}
    if not isinstance(asked, dict):
        return {}
    return {k: v for k, v in asked.items() if k in MODEL_CUDA_OPTIONS and v in MODEL_CUDA_OPTIONS[k]}


def cuda_options_for(metadata: dict[str, str], tf32: bool = True) -> dict[str, str]:
    """The CUDA provider options for a model: those its metadata asks for (model_cuda_options). An
    fp32 model may use TF32 tensor cores (onnxruntime's default, and PyTorch's for convolutions),
    which moves its images by about 2e-3; tf32=False computes in full fp32, as verify does to hold
    fp32 files to fp32's tolerance."""
    options = model_cuda_options(metadata)
    if not tf32 and metadata.get("precision", "fp32") == "fp32":
        options["use_tf32"] = "0"
    return options


def providers_for(device: str, cuda_options: dict[str, str] | None = None) -> list:
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
    return [("CUDAExecutionProvider", {**CUDA_OPTIONS, **(cuda_options or {})}), "CPUExecutionProvider"]


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


def pick_model_file(path: str | os.PathLike, device: str,
                    variant: str | None = None) -> tuple[Path, str | None, str]:
    """(the .onnx to open for `path` on `device`, its variant key, why): a package folder gives the
    variant made for the device's provider if it has one (or the `variant` asked for), else its main
    model; a lone file is itself (no variant key)."""
    from gan_pack.runtime.package import choose_model

    path = Path(path)
    if path.is_dir() and package_model(path) is not None:
        provider = "cuda" if device in ("cuda", "auto") and cuda_available() else "cpu"
        chosen, key, why = choose_model(path, provider, variant)
        return resolve_model_file(chosen), key, why
    if variant not in (None, "main"):
        raise ModelError(f"--variant chooses among a package's model files; {path} is not a package folder")
    return resolve_model_file(path), None, "the file given"


def create_session(path: Path, device: str, threads: int | None, cuda_options: dict[str, str] | None = None,
                   providers: list | None = None):
    """An InferenceSession on the asked device (with `providers`, a RuntimePlan's); fails if CUDA was
    asked for and silently dropped."""
    import onnxruntime as ort

    check_threads(threads)
    providers = providers if providers is not None else providers_for(device, cuda_options)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # errors only: onnxruntime warns on every load of a graph whose input has a default (a StyleGAN's
    # psi), which is how that input is meant to be; failures still raise
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    try:
        with warnings.catch_warnings():     # a provider that is listed but absent: said below, in one line
            warnings.simplefilter("ignore", UserWarning)
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



@dataclass(frozen=True)
class RuntimePlan:
    """Where a model runs, decided once: the file to open (a package's variant for the device, or its
    main model) and why, the device asked for, and onnxruntime's providers with their options (the
    file's own CUDA options, TF32 or not)."""

    path: Path
    variant: str | None
    why: str
    device: str
    providers: list
    made_for_cuda: bool = False         # the file is a variant made for the CUDA provider (fp16)


def plan_run(path: str | os.PathLike, device: str, variant: str | None = None, tf32: bool = True) -> RuntimePlan:
    """The plan for running `path` on `device`: every choice of file, provider and option, here."""
    from gan_pack.runtime.onnxscan import model_metadata

    file, key, why = pick_model_file(path, device, variant)
    metadata = None if device == "cpu" else model_metadata(file)   # only a CUDA run needs the file's options
    options = None if metadata is None else cuda_options_for(metadata, tf32)
    return RuntimePlan(file, key, why, device, providers_for(device, options),
                       metadata is not None and metadata.get("provider") == "cuda")


def open_planned(source: str | os.PathLike, plan: RuntimePlan, threads: int | None,
                 variant_asked: str | None = None):
    """(session, the plan it ran): the plan's session; where onnxruntime listed CUDA but could not
    start it, a variant made for CUDA (fp16) is no model for the CPU, so the package's fp32 main model
    is planned and opened on the CPU instead (unless that variant was asked for by name)."""
    session = create_session(plan.path, plan.device, threads, providers=plan.providers)
    if plan.made_for_cuda and variant_asked is None and "CUDAExecutionProvider" not in session.get_providers():
        fallback = plan_run(source, "cpu")
        plan = RuntimePlan(fallback.path, fallback.variant, "the package's model: CUDA did not start, and the CUDA "
                           "variant is not for the CPU", "cpu", fallback.providers)
        session = create_session(plan.path, "cpu", threads, providers=plan.providers)
    return session, plan


def available_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()
