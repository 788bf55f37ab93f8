"""What each generator family reads off a loaded checkpoint without building anything: the layout that
tells a family apart, and the hyper-parameters its tensors' shapes (or records) say."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from gan_pack.pytorch.families import Source

STYLEGAN2_TORCH_BLUR = [1, 3, 3, 1]


def tutorial_layout(state: dict) -> str | None:
    """None if `state` is laid out as the classic tutorial's generator writes it (Linear, LeakyReLU,
    BatchNorm1d x 3, Linear: keys model.0.weight, model.2.running_mean, model.3.weight, ...), else why not."""
    linears = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"model\.(\d+)\.weight", str(k)))
                     and state[k].dim() == 2)
    norms = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"model\.(\d+)\.running_mean", str(k))))
    if not linears or linears != list(range(0, 3 * len(linears), 3)) or norms != [i + 2 for i in linears[:-1]]:
        return "not the tutorial's layout (model.0.weight, model.2.running_mean, model.3.weight, ...)"
    return None


def tutorial_shapes(state: dict) -> dict:
    """What a tutorial state dict's shapes say (its layout checked by tutorial_layout): noise_dim,
    num_classes, the label embedding's width, the hidden widths and the pixels of an image."""
    embedding = state.get("label_emb.weight")
    classes, embed = tuple(embedding.shape) if embedding is not None else (0, 0)
    linears = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"model\.(\d+)\.weight", str(k)))
                     and state[k].dim() == 2)
    return {"noise_dim": state["model.0.weight"].shape[1] - embed, "num_classes": classes, "embedding_dim": embed,
            "hidden": [state[f"model.{i}.weight"].shape[0] for i in linears[:-1]],
            "pixels": state[f"model.{linears[-1]}.weight"].shape[0]}


def tutorial_facts(source: Source) -> dict:
    return tutorial_shapes(source.content)


def stylegan2_torch_state(content) -> dict | None:
    """The generator state dict of a stylegan2-torch checkpoint (bare, or its g_ema), if it is one."""
    state = content.get("g_ema", content) if isinstance(content, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return None
    keys = set(map(str, state))
    needed = {"input.input", "convs.0.weight", "to_rgbs.0.weight"}
    if not needed <= keys or not any(k.startswith("mapping.") for k in keys):
        return None
    return state


def stylegan2_torch_init(state: dict) -> dict:
    """`stylegan2_torch.Generator`'s arguments that its tensors' shapes say (lr_mlp_mult cannot be
    read from them: its default, 0.01, unless --init gives it)."""
    mapping = sorted(int(m.group(1)) for k in state if (m := re.fullmatch(r"mapping\.(\d+)\.weight", str(k))))
    to_rgbs = sum(1 for k in state if re.fullmatch(r"to_rgbs\.\d+\.weight", str(k)))
    if not mapping or not to_rgbs:
        return {}
    resolution = 4 * 2 ** (to_rgbs - 1)
    channels = {"4": int(state["input.input"].shape[1])}
    for i in range(1, to_rgbs):
        key = f"convs.{i}.weight"
        if key in state and state[key].dim() == 5:
            channels[str(4 * 2 ** i)] = int(state[key].shape[1])
    return {"resolution": resolution, "latent_dim": int(state[f"mapping.{mapping[0]}.weight"].shape[1]),
            "n_mlp": len(mapping), "channels": channels}


def stylegan2_torch_facts(source: Source) -> dict:
    state = stylegan2_torch_state(source.content) or {}
    return {**stylegan2_torch_init(state), "lr_mlp_mult": "0.01 (not in the weights; --init to change)",
            "mean latent": "stored" if isinstance(source.content, dict) and any(
                k in source.content for k in ("mean_latent", "latent_avg", "w_avg")) else "computed at export",
            "noise buffers": "stored" if any(str(k).startswith("noises.") for k in state) else "none stored"}


def run_facts(source: Source) -> dict:
    from gan_pack.pytorch.checkpoint import load_checkpoint

    ckpt = load_checkpoint(source.path)
    config, data = ckpt["config"], ckpt["dataset"]
    return {"model": config.get("model"), "arch": config.get("arch"), "noise_dim": config.get("noise_dim"),
            "num_classes": data.get("num_classes"), "image_shape": data.get("image_shape"),
            "dataset": data.get("name"), "epoch": ckpt.get("epoch"), "step": ckpt.get("step"),
            "ema": ckpt.get("generator_ema") is not None}


def nvlabs_facts(source: Source) -> dict:
    """The networks of an NVlabs snapshot and its G_ema's sizes, from the records."""
    from gan_pack.pytorch.network_pickle import PersistentObject
    from gan_pack.pytorch.nvlabs import nvlabs_config

    snapshot = source.content
    networks = sorted(k for k, v in snapshot.items() if isinstance(v, PersistentObject))
    g = snapshot.get("G_ema") if isinstance(snapshot.get("G_ema"), PersistentObject) else snapshot.get("G")
    if not isinstance(g, PersistentObject):
        return {"networks": networks, "config": "no generator (G_ema or G)"}
    try:
        config = nvlabs_config(g)
    except Exception as e:  # a record that is no generator: say so as the family's reason
        return {"networks": networks, "config": str(e)}
    sizes = {name: g.attribute(name) for name in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels")}
    tensors = g.tensors()
    synthesis = g.modules.get("synthesis")
    layers = len([m for m in synthesis.modules if m.startswith(("b", "L"))]) if synthesis else 0
    return {"config": config, "networks": networks, **sizes,
            "mapping_layers": sum(1 for k in tensors if re.fullmatch(r"mapping\.fc\d+\.weight", k)),
            "synthesis blocks" if config == "stylegan2" else "synthesis layers": layers,
            "parameters": sum(t.numel() for t in tensors.values()),
            "carried source": f"{len({v.source_sha256 for v in _records(g)})} module source(s), never run",
            "megabytes": round(sum(t.numel() * t.element_size() for t in tensors.values()) / 1e6, 1),
            "architecture": _architecture(g)}


def _records(record) -> list:
    from gan_pack.pytorch.network_pickle import PersistentObject

    out = [record]
    for child in record.modules.values():
        if isinstance(child, PersistentObject):
            out += _records(child)
    return out


def _architecture(g) -> str | None:
    synthesis = g.modules.get("synthesis")
    last = sorted((m for n, m in synthesis.modules.items() if n.startswith("b")), key=lambda m: m.attribute(
        "resolution") or 0) if synthesis else []
    return last[-1].attribute("architecture") if last else None


def spandrel_facts(source) -> dict:
    """What spandrel's descriptor says of an image model: architecture, scale, channels, size rules, tiling."""
    from gan_pack.pytorch.image_models import load_descriptor, spec_of_descriptor

    spec = spec_of_descriptor(load_descriptor(source.content, str(source.path)))
    return {"architecture": spec.arch, "scale": spec.scale, "channels": f"{spec.in_channels} -> {spec.out_channels}",
            "size rule": spec.size_rule(), "tiling": spec.tiling}
