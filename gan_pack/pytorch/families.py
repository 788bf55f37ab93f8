"""The generator families `ganpack export` and `ganpack inspect` recognise, in one ordered registry.

Each family has an id (what `--from` takes), a `detect` that reads a loaded checkpoint's keys, shapes
and records (nothing in it runs) and says None (it is one) or why not, what it reads off the
checkpoint (`facts`), what export rewrites, the flags it takes, and a loader that returns an
Exportable. `open_source` loads a checkpoint once, safely (torch's weights-only loader, or the data-only
unpickler of network_pickle.py), and every family looks at that.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from gan_pack.contract.parity import PARITY_BATCHES
from gan_pack.core import runlog
from gan_pack.errors import CheckpointError, ConfigError
from gan_pack.pytorch import family_facts as facts
from gan_pack.pytorch.export import Exportable

PICKLE_MARK = b"_reconstruct_persistent_obj"


@dataclass
class Source:
    """A checkpoint, loaded once: a run folder (content None), a torch file's object, or an NVlabs snapshot."""

    path: Path
    kind: str                    # run | torch | pickle
    content: Any = None


@dataclass
class ExportRequest:
    """What export was asked beyond the file: the family (--from), and the flags a family may take."""

    family: str | None = None
    weights: str = "ema"
    network: str | None = None
    noise_mode: str | None = None
    seed: int | None = None
    init: dict | None = None
    module: str | None = None
    subclass_blend: float = 0.0                      # a --subclasses run's sampling blend
    own: dict = field(default_factory=dict)          # --module's flags that were given: name -> value
    settings: dict = field(default_factory=dict)     # ImportSpec's fields (own_settings)

    def given(self) -> dict[str, Any]:
        flags = {"--weights": None if self.weights == "ema" else self.weights, "--network": self.network,
                 "--noise-mode": self.noise_mode, "--seed": self.seed, "--init": self.init, "--module": self.module,
                 "--subclass-blend": self.subclass_blend or None,
                 **self.own}
        return {flag: value for flag, value in flags.items() if value is not None}


@dataclass(frozen=True)
class Family:
    id: str
    title: str
    detect: Callable[[Source], str | None]
    load: Callable[[Source, ExportRequest], Exportable]
    facts: Callable[[Source], dict]
    rewrites: tuple[str, ...] = ()
    takes: frozenset[str] = frozenset()
    batches: tuple[int, ...] = PARITY_BATCHES
    image: bool = False           # an image-to-image model (load returns an ImageExportable)


def open_source(path: Path) -> Source:
    """The checkpoint at `path`, loaded once without running anything in it."""
    from gan_pack.core.checkpoint_file import check_checkpoint_file
    from gan_pack.pytorch.checkpoint import CHECKPOINT_NAME, load_untrusted
    from gan_pack.pytorch.network_pickle import read_network_pickle

    if path.is_dir() and (path / "generator.pth").is_file() and not (path / CHECKPOINT_NAME).is_file():
        path = path / "generator.pth"                                    # a `ganpack train --model sr` run
    if path.is_dir():
        if not (runlog.is_run(path) or (path / CHECKPOINT_NAME).is_file()):
            raise CheckpointError(f"{path} is a folder but not a gan_pack run (no {CHECKPOINT_NAME}); give a run "
                                  f"folder or a checkpoint file")
        return Source(path, "run")
    if path.suffix == ".py":
        raise CheckpointError(f"{path} is Python source: give the weights as the first argument and the file that "
                              f"defines the class as --module FILE.py:Class")
    fix = ("give a PyTorch checkpoint (torch.save of a state dict), a .safetensors file, a gan_pack run or an "
           "NVlabs network pickle")
    if path.suffix == ".safetensors":
        from gan_pack.pytorch.image_models import read_safetensors

        return Source(path, "torch", read_safetensors(path, fix))
    try:
        check_checkpoint_file(path)
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except ValueError as e:
        raise CheckpointError(f"{path} {e}; {fix}") from None
    except OSError as e:
        raise CheckpointError(f"{path} cannot be read ({e.strerror})") from None
    if head[:1] == b"\x80" and PICKLE_MARK in head:
        return Source(path, "pickle", read_network_pickle(path))
    return Source(path, "torch", load_untrusted(path, fix, (argparse.Namespace,)))


def _tensor_dict(value) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def _is_gan_pack(source: Source) -> str | None:
    if source.kind == "run":
        return None
    content = source.content
    if isinstance(content, dict) and {"format", "config", "generator"} <= set(content):
        return None
    return "no run folder, nor a checkpoint with format, config and generator"


def _tutorial(kind: str) -> Callable[[Source], str | None]:
    def detect(source: Source) -> str | None:
        if source.kind != "torch" or not _tensor_dict(source.content):
            return "not a bare state dict of tensors"
        why = facts.tutorial_layout(source.content)
        if why:
            return why
        conditional = "label_emb.weight" in source.content
        if conditional != (kind == "tutorial-cgan"):
            return "it has a label embedding (label_emb.weight)" if conditional else "no label embedding"
        return None
    return detect


def _is_stylegan2_torch(source: Source) -> str | None:
    state = facts.stylegan2_torch_state(source.content) if source.kind == "torch" else None
    if state is None:
        return "no g_ema or state dict with mapping, input.input, convs and to_rgbs"
    return None


def _is_nvlabs(configs: tuple[str, ...]) -> Callable[[Source], str | None]:
    def detect(source: Source) -> str | None:
        if source.kind != "pickle":
            return "not an NVlabs network pickle"
        config = facts.nvlabs_facts(source).get("config")
        return None if config in configs else f"its generator is {config}"
    return detect


def _is_spandrel(source: Source) -> str | None:
    from gan_pack.pytorch.image_models import detect_architecture

    if source.kind != "torch":
        return "not a state dict"
    try:
        arch, why = detect_architecture(source.content)
    except ConfigError as e:          # spandrel is not installed: say so, as why this family said no
        return str(e)
    return None if arch else why


def _load_spandrel(source: Source, request: ExportRequest):
    from gan_pack.pytorch.image_models import exportable_spandrel
    from gan_pack.pytorch.sr_train import sr_run_dataset

    return exportable_spandrel(source.content, str(source.path), dataset=sr_run_dataset(source.path))


def _load_run(source: Source, request: ExportRequest) -> Exportable:
    from gan_pack.pytorch.export import exportable_run

    return exportable_run(source.path, request.weights, request.subclass_blend)


def _load_tutorial(source: Source, request: ExportRequest) -> Exportable:
    from gan_pack.pytorch.importer import exportable_file

    settings = {**request.settings, "source": request.family, "arch": request.family}
    return exportable_file(source.path, settings, tutorial=request.family,
                           state=source.content if _tensor_dict(source.content) else None)


def _load_stylegan2_torch(source: Source, request: ExportRequest) -> Exportable:
    from gan_pack.pytorch.stylegan2 import exportable_stylegan2_torch

    state = facts.stylegan2_torch_state(source.content) if source.kind == "torch" else None
    init = {**(facts.stylegan2_torch_init(state) if state else {}), **(request.init or {})}
    if not init:
        raise ConfigError(f"{source.path} holds no stylegan2-torch generator whose shapes say its --init; give "
                          f"--init '{{\"resolution\": 32, \"latent_dim\": 64, \"n_mlp\": 2}}'")
    return exportable_stylegan2_torch(source.path, init, request.noise_mode or "none", request.seed,
                                      request.settings.get("dataset", "unknown"))


def _load_nvlabs(source: Source, request: ExportRequest) -> Exportable:
    from gan_pack.pytorch.nvlabs import exportable_network_pickle

    if source.kind != "pickle":
        raise CheckpointError(f"{source.path} is not an NVlabs network pickle (network-snapshot-*.pkl)")
    why = family(request.family).detect(source) if request.family else None
    if why:                                           # --from nvlabs-stylegan3 given a StyleGAN2, or the reverse
        raise CheckpointError(f"{source.path} is not {request.family}: {why}; drop --from to export what it is")
    return exportable_network_pickle(source.path, request.network or "G_ema", request.noise_mode or "const",
                                     request.settings.get("dataset", "unknown"), snapshot=source.content)


def _load_module(source: Source, request: ExportRequest) -> Exportable:
    from gan_pack.pytorch.importer import exportable_file

    return exportable_file(source.path, request.settings, request.module, request.init or {})


OWN_FLAGS = frozenset({"--noise-dim", "--num-classes", "--class-names", "--image-shape", "--noise-shape",
                       "--label-input", "--output-range"})
TUTORIAL_FLAGS = frozenset({"--noise-dim", "--num-classes", "--class-names", "--image-shape", "--output-range"})
CUSTOM_OPS = {"stylegan2-torch": "upfirdn2d, fused_leaky_relu", "nvlabs-stylegan2": "bias_act, upfirdn2d",
              "nvlabs-stylegan3": "bias_act, filtered_lrelu"}
NVLABS_REWRITES = ("custom ops bias_act and upfirdn2d: standard Conv, ConvTranspose, LeakyRelu and Clip",
                   "modulated convolutions (grouped, per-sample weights): one shared weight, input scaled by the "
                   "style, output by the demodulation coefficients",
                   "in-forward random noise: const (stored noise_const x noise_strength) or none",
                   "fp16 layers: fp32 (pack --variants cuda makes the fp16 file)",
                   "truncation: psi an input of the graph, around the stored w_avg")
FAMILIES: tuple[Family, ...] = (
    Family("gan-pack", "a gan_pack run folder or checkpoint.pt", _is_gan_pack, _load_run, facts.run_facts,
           ("transposed convolutions as phase convolutions where faster on this CPU (--rewrite)",),
           frozenset({"--weights", "--subclass-blend"})),
    Family("tutorial-gan", "the classic MNIST GAN tutorial's generator.pth", _tutorial("tutorial-gan"),
           _load_tutorial, facts.tutorial_facts, ("BatchNorm folded into the next Gemm",),
           TUTORIAL_FLAGS),
    Family("tutorial-cgan", "the classic MNIST cGAN tutorial's generator.pth", _tutorial("tutorial-cgan"),
           _load_tutorial, facts.tutorial_facts, ("BatchNorm folded into the next Gemm",),
           TUTORIAL_FLAGS),
    Family("stylegan2-torch", "PyPI stylegan2-torch (rosinality lineage): G.pt with g_ema", _is_stylegan2_torch,
           _load_stylegan2_torch, facts.stylegan2_torch_facts,
           ("custom ops upfirdn2d and fused_leaky_relu: standard Conv, ConvTranspose and LeakyRelu",
            "modulated convolutions: one shared weight with demodulation coefficients",
            "in-forward random noise: none or const (--noise-mode, --seed)",
            "truncation: psi an input of the graph"),
           frozenset({"--noise-mode", "--seed", "--init"}), (1, 7, 64)),
    Family("nvlabs-stylegan2", "NVlabs StyleGAN2-ADA network pickle (stylegan2-ada-pytorch, stylegan3 --cfg "
           "stylegan2)", _is_nvlabs(("stylegan2",)), _load_nvlabs, facts.nvlabs_facts, NVLABS_REWRITES,
           frozenset({"--network", "--noise-mode"}), (1, 7, 64)),
    Family("nvlabs-stylegan3", "NVlabs StyleGAN3 network pickle (--cfg stylegan3-t or stylegan3-r)",
           _is_nvlabs(("stylegan3-t", "stylegan3-r")), _load_nvlabs, facts.nvlabs_facts,
           ("custom op filtered_lrelu: upsampling ConvTranspose, LeakyRelu, Clip and a strided Conv",
            "Fourier-feature input: Sin of a MatMul with the transformed frequencies",
            "modulated convolutions: one shared weight with demodulation coefficients",
            "fp16 layers: fp32", "truncation: psi an input of the graph, around the stored w_avg"),
           frozenset({"--network"}), (1, 7, 64)),
    Family("spandrel", "an image-to-image model spandrel recognises (ESRGAN, Real-ESRGAN, SwinIR, GFPGAN, ...): "
           ".pth or .safetensors", _is_spandrel, _load_spandrel, facts.spandrel_facts,
           ("spandrel's forward with in-forward random noise off (the stored noise)",
            "dynamic batch, height and width; padding to the size rules is the runtime's"),
           frozenset(), image=True),
    Family("module", "your own nn.Module class (--module FILE.py:Class), never detected", lambda s: "only with "
           "--module", _load_module, lambda s: {}, (), OWN_FLAGS | {"--module", "--init", "--noise-mode"}),
)
FAMILY_IDS = tuple(f.id for f in FAMILIES)
assert len(set(FAMILY_IDS)) == len(FAMILY_IDS)


def family(family_id: str) -> Family:
    found = next((f for f in FAMILIES if f.id == family_id), None)
    if found is None:
        raise ConfigError(f"--from {family_id!r} is not a family gan_pack knows; use one of {', '.join(FAMILY_IDS)}")
    return found


def detect(source: Source) -> Family:
    """The one family that says yes to `source`; else one error naming each family tried and why it said no."""
    verdicts = [(f, f.detect(source)) for f in FAMILIES if not f.image]
    found = [f for f, why in verdicts if why is None]
    if not found:        # spandrel (an import of ~40 architectures) only for what no generator family takes
        verdicts += [(f, f.detect(source)) for f in FAMILIES if f.image]
        found = [f for f, why in verdicts if why is None]
    if len(found) == 1:
        return found[0]
    if found:
        raise CheckpointError(f"{source.path} fits several families ({', '.join(f.id for f in found)}) and nothing "
                              f"in it tells them apart; choose one with --from")
    reasons = "; ".join(f"{f.id}: {why}" for f, why in verdicts if f.id != "module")
    raise CheckpointError(f"{source.path} is no generator family gan_pack knows ({reasons}); for your own class "
                          f"give --module FILE.py:Class")


def choose(source_path: Path, request: ExportRequest) -> tuple[Source | None, Family]:
    """The source, loaded (None for --module, which loads it itself), and its family: --from's, or detected.
    Flags the family does not take are refused in one line."""
    if request.module is not None:
        if request.family is not None:
            raise ConfigError("give either --module (your class) or --from (a family gan_pack knows), not both")
        chosen, source = family("module"), None
    else:
        source = open_source(source_path)
        chosen = family(request.family) if request.family else detect(source)
    request.family = chosen.id
    extra = [flag for flag in request.given() if flag not in chosen.takes]
    if extra:
        own = " (they describe your own generator: add --module FILE.py:Class)" if set(extra) <= OWN_FLAGS else ""
        raise ConfigError(f"{source_path} is {chosen.id} ({chosen.title}), which does not take {', '.join(extra)}; "
                          f"drop {', '.join(extra)}{own}")
    if chosen.id == "module" and request.settings.get("noise_dim") is None:
        raise ConfigError("--module needs --noise-dim (the length of the noise vector)")
    return source, chosen


def export_checkpoint(source_path: Path, output: Path, request: ExportRequest, options, log=None):
    """`ganpack export`: choose the family, load, export, prove parity at the family's batches, write
    `output` and its parity report (and note the export in a run folder). Returns (reports, family)."""
    from gan_pack.pytorch.export import check_outputs, write_generator

    source, chosen = choose(source_path, request)
    output = check_outputs(output)
    exportable = chosen.load(source or Source(source_path, "torch"), request)
    if chosen.image:
        from gan_pack.pytorch.image_export import write_image_model

        if options.precision == "int8":
            raise ConfigError("an image model's int8 file is made by pack --variants int8 (calibrated on images and "
                              "held to a PSNR floor); export fp32 or fp16")
        return [write_image_model(exportable, output, options.precision, options.opset, options.atol,
                                  options.allow_mismatch, log)], chosen
    if options.batch_sizes == PARITY_BATCHES:
        options.batch_sizes = chosen.batches
    reports = write_generator(exportable, output, options, log)
    run_dir = source_path if source_path.is_dir() else source_path.parent
    if chosen.id == "gan-pack" and runlog.is_run(run_dir):
        runlog.record_export(run_dir, output, reports[-1].precision, request.weights,
                             int(exportable.metadata["steps"]), int(exportable.metadata["epochs"]))
    return reports, chosen


def describe(source_path: Path, family_id: str | None = None) -> dict:
    """`ganpack inspect`: the family, what it reads off the checkpoint, what export rewrites, what
    onnxruntime's providers take, and why every other family said no. Nothing is exported or run."""
    source = open_source(source_path)
    verdicts = {f.id: f.detect(source) for f in FAMILIES if f.id != "module"}
    chosen = family(family_id) if family_id else detect(source)
    custom = CUSTOM_OPS.get(chosen.id)
    return {"source": str(source_path), "family": chosen.id, "title": chosen.title, "facts": chosen.facts(source),
            "export rewrites": list(chosen.rewrites),
            "providers": {"source": f"its custom ops ({custom}) are in no onnxruntime provider; export replaces them"
                          if custom else "no custom ops",
                          "export": "standard ONNX ops only (ai.onnx domain): onnxruntime's CPU and CUDA providers "
                                    "take every one; the fp16 cuda variant needs pack --variants cuda on a GPU"},
            "flags": sorted(chosen.takes), "parity batches": list(chosen.batches),
            "other families": {fid: why for fid, why in verdicts.items() if fid != chosen.id}}
