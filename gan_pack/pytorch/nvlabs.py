"""NVlabs network pickles (stylegan2-ada-pytorch, stylegan3) to an Exportable, read as data (see
network_pickle.py) and rebuilt by clean-room code: StyleGAN2-ADA in nvlabs_stylegan2.py.

    ganpack export network-snapshot-000200.pkl -o ffhq.onnx          # G_ema, const noise
    ganpack export network-snapshot-000200.pkl --network G --noise-mode none -o ffhq-raw.onnx
"""

from __future__ import annotations

from pathlib import Path

from gan_pack.errors import CheckpointError, ConfigError
from gan_pack.pytorch.export import Exportable
from gan_pack.pytorch.network_pickle import PersistentObject, choose_network, read_network_pickle
from gan_pack.pytorch.nvlabs_stylegan2 import rebuild_stylegan2
from gan_pack.pytorch.stylegan2 import stylegan2_metadata

NVLABS_NOISE_MODES = ("const", "none")
NVLABS_PARITY_BATCHES = (1, 7, 64)


def nvlabs_config(g: PersistentObject) -> str:
    """Which NVlabs generator a record is: stylegan2, stylegan3-t or stylegan3-r (from its records:
    a synthesis of b4..bR blocks, or of an input and L0..LN layers, radial filters or not)."""
    synthesis = g.modules.get("synthesis")
    if g.class_name != "Generator" or not isinstance(synthesis, PersistentObject):
        raise CheckpointError(f"the network is a {g.class_name}, not an NVlabs Generator with a synthesis network")
    if "b4" in synthesis.modules:
        return "stylegan2"
    if "input" in synthesis.modules:
        layers = [m for name, m in synthesis.modules.items() if name.startswith("L")]
        radial = any(isinstance(m, PersistentObject) and m.attribute("down_radial") for m in layers)
        return "stylegan3-r" if radial else "stylegan3-t"
    raise CheckpointError("its synthesis network is neither StyleGAN2's (blocks b4 ...) nor StyleGAN3's (an input "
                          "and layers L0 ...)")


def exportable_network_pickle(path: str | Path, network: str = "G_ema", noise_mode: str = "const",
                              dataset: str = "unknown", snapshot: dict | None = None) -> Exportable:
    """The chosen network of an NVlabs snapshot, rebuilt, with its metadata: noise (B, z_dim)
    [+ labels (B,)] [+ psi] -> images (B, C, R, R)."""
    if noise_mode not in NVLABS_NOISE_MODES:
        raise ConfigError(f"--noise-mode must be one of {', '.join(NVLABS_NOISE_MODES)} for an NVlabs pickle, not "
                          f"{noise_mode!r}")
    path = Path(path)
    snapshot = read_network_pickle(path) if snapshot is None else snapshot
    choice = choose_network(snapshot, path, network)
    config = nvlabs_config(choice.network)
    if config != "stylegan2":
        from gan_pack.pytorch.nvlabs_stylegan3 import rebuild_stylegan3

        graph, facts = rebuild_stylegan3(choice.network, f"{path} ({network})")
    else:
        graph, facts = rebuild_stylegan2(choice.network, noise_mode, f"{path} ({network})")
        facts["noise_mode"] = noise_mode
    side, channels, classes = facts["img_resolution"], facts["img_channels"], facts["c_dim"]
    metadata = stylegan2_metadata({**facts, "resolution": side, "config": config}, facts["z_dim"],
                                  facts.get("noise_mode", "none"), network, "checkpoint (w_avg)", dataset,
                                  imported_from=f"nvlabs-{config}", arch=config,
                                  image_shape=(channels, side, side), num_classes=classes)
    return Exportable(graph, facts["z_dim"], classes, metadata, psi=True,
                      reference_name=f"clean-room rebuild of NVlabs {config} ({network}), PyTorch fp32")
