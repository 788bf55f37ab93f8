"""Generators people already have, packaged: a class in the user's own file with its state dict,
or the classic MNIST GAN/cGAN tutorial's `generator.pth`.

    ganpack export generator.pth --from tutorial-cgan -o mnist-cgan.onnx
    ganpack export netG.pth --module models.py:Generator --init '{"ngpu": 1}' --noise-dim 100 \\
        --noise-shape 100,1,1 -o dcgan.onnx

`export_module(module, output, spec)` does the same for a module already in memory. Importing a file runs
its code: give only files you trust, as with any Python import.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import sys
from pathlib import Path

import torch
from torch import nn

import gan_pack
from gan_pack.contract.metadata import generator_metadata
from gan_pack.contract.parity import ParityReport
from gan_pack.errors import CheckpointError, ConfigError
from gan_pack.pytorch.adapter import ContractAdapter, ImportSpec, check_generator, probe
from gan_pack.pytorch.checkpoint import load_untrusted
from gan_pack.pytorch.export import Exportable, ExportOptions, check_outputs, write_generator
from gan_pack.pytorch.family_facts import tutorial_layout, tutorial_shapes

TUTORIALS = ("tutorial-gan", "tutorial-cgan")


# ---------------------------------------------------------------- the user's module

def load_class(spec: str) -> type:
    """The class named by "path/to/file.py:ClassName", imported from that file."""
    path_text, _, name = spec.rpartition(":")
    path = Path(path_text)
    if not path_text or not name or path.suffix != ".py":
        raise ConfigError(f"--module must be FILE.py:ClassName, not {spec!r}")
    if not path.is_file():
        raise ConfigError(f"--module: {path} does not exist")
    module_name = f"ganpack_user_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{abs(hash(str(path.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module          # dataclasses and pickling look modules up here
    try:
        loader_spec.loader.exec_module(module)
    except BaseException as e:  # the file may raise anything, even SystemExit from argparse
        sys.modules.pop(module_name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise ConfigError(f"--module: importing {path} failed ({type(e).__name__}: {' '.join(str(e).split())[:200]}); "
                          f"a file that parses arguments or trains at import time needs its class copied into a "
                          f"file of its own") from None
    found = getattr(module, name, None)
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        classes = sorted(k for k, v in vars(module).items()
                         if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module_name)
        raise ConfigError(f"--module: {path} has no nn.Module class {name!r} (it has: {', '.join(classes) or 'none'})")
    return found


def build(cls: type, init: dict) -> nn.Module:
    """cls(**init), with a constructor that does not take them explained."""
    try:
        inspect.signature(cls).bind(**init)
    except TypeError as e:
        raise ConfigError(f"--init does not fit {cls.__name__}{inspect.signature(cls)} ({e})") from None
    try:
        return cls(**init)
    except Exception as e:  # the user's constructor
        raise ConfigError(f"{cls.__name__}(**--init) failed ({type(e).__name__}: {str(e)[:200]})") from e


def parse_init(text: str | None) -> dict:
    if not text:
        return {}
    try:
        init = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--init must be a JSON object like '{{\"noise_dim\": 100}}' ({e.msg})") from None
    except RecursionError:
        raise ConfigError("--init is nested too deeply; give the class's keyword arguments as a flat JSON object") \
            from None
    if not isinstance(init, dict):
        raise ConfigError("--init must be a JSON object of keyword arguments")
    return init


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict saved with torch.save(generator.state_dict(), path), loaded with weights_only."""
    path = Path(path)
    fix = "save torch.save(generator.state_dict(), 'generator.pth') where the class is defined and export that"
    if path.is_file():
        with open(path, "rb") as f:
            head = f.read(4)
        if head[:4] != b"PK\x03\x04" and head[:1] != b"\x80":      # torch.save's zip, or a legacy pickle
            what = "Python source" if path.suffix == ".py" else "not a PyTorch weights file"
            raise CheckpointError(f"{path} is {what}: give the weights (torch.save(generator.state_dict(), "
                                  f"'generator.pth')) as the first argument, and the file that defines the class "
                                  f"as --module FILE.py:Class")
    state = load_untrusted(path, fix)
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        keys = ", ".join(map(str, list(state)[:5])) if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a state dict of tensors (it holds {keys}); save "
                              f"torch.save(generator.state_dict(), 'generator.pth')")
    return state


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Every key, no more, each of the right shape; otherwise the lists, in one error."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshaped = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                 if k in state and tuple(state[k].shape) != tuple(v.shape)]
    parts = [f"{label}: {', '.join(items[:6])}{' ...' if len(items) > 6 else ''}"
             for label, items in (("missing", missing), ("unexpected", unexpected), ("other shapes", misshaped))
             if items]
    if parts:
        raise CheckpointError(f"{source} does not fit {type(module).__name__} ({'; '.join(parts)}); check the "
                              f"class and --init")
    broken = next((k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if broken is not None:
        raise CheckpointError(f"{source}: {broken} holds NaN or infinite values; these weights cannot make images "
                              f"(export an earlier checkpoint)")
    module.load_state_dict(state, strict=True)


# ---------------------------------------------------------------- the classic tutorial

class TutorialGenerator(nn.Module):
    """The classic MNIST GAN/cGAN tutorial generator, as those scripts write it: noise (+ label_emb)
    -> [Linear, LeakyReLU(0.2), BatchNorm1d] x 3 -> Linear -> Tanh, flat (B, 784) output; state
    dict keys model.0.weight, ..., label_emb.weight."""

    def __init__(self, noise_dim: int = 100, num_classes: int = 0, embedding_dim: int = 10,
                 hidden: tuple[int, ...] = (256, 512, 1024), pixels: int = 784):
        super().__init__()
        self.label_emb = nn.Embedding(num_classes, embedding_dim) if num_classes else None
        layers, width_in = [], noise_dim + (embedding_dim if num_classes else 0)
        for width in hidden:
            layers += [nn.Linear(width_in, width), nn.LeakyReLU(0.2, inplace=True), nn.BatchNorm1d(width)]
            width_in = width
        layers += [nn.Linear(width_in, pixels), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = noise if self.label_emb is None else torch.cat((noise, self.label_emb(labels)), -1)
        return self.model(x)                                            # (B, pixels)


def tutorial_generator(kind: str, state: dict[str, torch.Tensor], source: str | Path) -> tuple[nn.Module, dict]:
    """The tutorial generator that `state` was saved from, and what its shapes say (noise_dim,
    num_classes, pixels), checked against the layout those scripts write."""
    if tutorial_layout(state) is not None:
        raise ConfigError(f"{source} is not the classic tutorial generator (it needs keys model.0.weight, "
                          f"model.2.running_mean, model.3.weight, ...); for another class use --module FILE.py:Class")
    embedding = state.get("label_emb.weight")
    if (kind == "tutorial-cgan") != (embedding is not None):
        other = "tutorial-gan" if embedding is None else "tutorial-cgan"
        raise ConfigError(f"{source} {'has no' if embedding is None else 'has a'} label embedding "
                          f"(label_emb.weight): it is the {other.split('-')[1].upper()}; use --from {other}")
    shapes = tutorial_shapes(state)
    facts = {key: shapes[key] for key in ("noise_dim", "num_classes", "pixels")}
    module = TutorialGenerator(shapes["noise_dim"], shapes["num_classes"], shapes["embedding_dim"] or 10,
                               tuple(shapes["hidden"]), shapes["pixels"])
    load_strict(module, state, source)
    return module, facts


# ---------------------------------------------------------------- packaging

def exportable_module(module: nn.Module, spec: ImportSpec) -> Exportable:
    """A loaded module, adapted to the contract, checked for the traps, with its metadata."""
    module = module.float().eval()
    image_shape = probe(module, spec)
    adapter = ContractAdapter(module, spec, image_shape).eval()
    check_generator(adapter, spec)
    config = {"model": "cgan" if spec.num_classes else "gan", "arch": spec.arch, "noise_dim": spec.noise_dim,
              "imported_from": spec.source, "noise_shape": list(spec.noise_shape or []),
              "label_input": spec.label_input, "output_range": list(spec.output_range)}
    dataset = {"name": spec.dataset, "num_classes": spec.num_classes, "image_shape": list(image_shape),
               "class_names": spec.class_names or [str(c) for c in range(spec.num_classes)]}
    metadata = generator_metadata(config, dataset, 0, 0, "as given", "fp32", 0, gan_pack.__version__)
    del metadata["epochs"], metadata["steps"]                # unknown for a module trained elsewhere
    metadata["imported_from"] = spec.source
    if "noise_mode" in adapter.keywords:
        metadata["noise_mode"] = adapter.keywords["noise_mode"]
    if adapter.psi:
        metadata["psi_input"] = "true"
    return Exportable(adapter, spec.noise_dim, spec.num_classes, metadata, psi=adapter.psi)


def export_module(module: nn.Module, output: str | Path, spec: ImportSpec,
                  options: ExportOptions | None = None) -> list[ParityReport]:
    """What `ganpack export --module` does, for a module already in memory: adapt, check the traps,
    export, prove parity, write `output` and NAME.parity.json."""
    output = check_outputs(output)
    return write_generator(exportable_module(module, spec), output, options or ExportOptions())


def exportable_file(weights: str | Path, settings: dict, module_spec: str | None = None, init: dict | None = None,
                    tutorial: str | None = None, state: dict[str, torch.Tensor] | None = None) -> Exportable:
    """A weights file, with the class that builds it: the user's (module_spec, init) or a tutorial's.

    `settings` are ImportSpec's fields; for a tutorial, noise_dim and num_classes may be None (then
    its weights say them) and are checked against the weights when given. `state`: the weights,
    already loaded."""
    state = load_state_dict(weights) if state is None else state
    if tutorial is not None:
        module, facts = tutorial_generator(tutorial, state, weights)
        for key in ("noise_dim", "num_classes"):
            given = settings.get(key)
            if given is not None and given != facts[key]:
                raise ConfigError(f"--{key.replace('_', '-')} {given} does not match {weights}, whose weights "
                                  f"say {facts[key]}")
        settings = {**settings, "noise_dim": facts["noise_dim"], "num_classes": facts["num_classes"]}
        spec = ImportSpec(**settings)
    else:
        if settings.get("noise_dim") is None:
            raise ConfigError("--module needs --noise-dim (the length of the noise vector)")
        spec = ImportSpec(**{**settings, "num_classes": settings.get("num_classes") or 0})
        module = build(load_class(module_spec), init or {})
        load_strict(module, state, weights)
    return exportable_module(module, spec)
