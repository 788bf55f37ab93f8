"""Checkpoints: the format, saving and loading (weights_only), restoring a Trainer, and which
settings a resumed run may change.

A checkpoint carries the run's settings and data facts next to the weights, so loading it needs
no flags: `ganpack export RUN` and `ganpack train --resume` read everything from it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from gan_pack.core.checkpoint_file import check_checkpoint_file
from gan_pack.core.files import atomic_path
from gan_pack.errors import CheckpointError, ConfigError
from gan_pack.pytorch.config import TrainConfig, setting_names
from gan_pack.pytorch.data_facts import DatasetInfo
from gan_pack.pytorch.step import lr_for_graphs, portable_state

if TYPE_CHECKING:
    from gan_pack.pytorch.train import Trainer

CHECKPOINT_NAME = "checkpoint.pt"
BEST_CHECKPOINT_NAME = "checkpoint-best.pt"
CHECKPOINT_FORMAT = 1


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def checkpoint_dict(trainer: Trainer) -> dict:
    nets = trainer.nets
    return {
        "format": CHECKPOINT_FORMAT,
        "config": trainer.config.to_dict(),
        "dataset": trainer.info.to_dict(),
        "generator": nets.generator.state_dict(),
        "generator_ema": nets.ema.model.state_dict() if nets.ema is not None else None,
        "discriminator": nets.discriminator.state_dict(),
        "opt_g": portable_state(nets.g_optimizer),
        "opt_d": portable_state(nets.d_optimizer),
        "epoch": trainer.epoch,
        "step": trainer.step,
        "rng": rng_state(trainer.device),
    }


def save_checkpoint(trainer: Trainer, run_dir: Path, name: str = CHECKPOINT_NAME) -> Path:
    """Serialize in memory, then write the bytes atomically: a full disk is then an OSError (one line
    through atomic_path) instead of torch's RuntimeError, and the old checkpoint stays whole."""
    buffer = io.BytesIO()
    torch.save(checkpoint_dict(trainer), buffer)
    path = run_dir / name
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return path


def load_untrusted(path: Path, fix: str, safe_globals: tuple = ()):
    """torch.load of a file someone else made: checked first (check_checkpoint_file: a regular file
    whose declared contents fit MAX_CHECKPOINT_BYTES), then loaded with weights_only, so no code in
    it runs; torch's own warnings stay quiet (the refusal says it all). A CheckpointError ends in `fix`."""
    import warnings

    try:
        check_checkpoint_file(path)
    except ValueError as e:
        raise CheckpointError(f"{path} {e}; {fix}") from None
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(list(safe_globals)):
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if "Unsupported global" in str(e) or "This file can still be loaded" in str(e):
            raise CheckpointError(f"{path} holds pickled objects (a module, a class) besides tensors, and loading "
                                  f"it would run their code; {fix}") from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({type(e).__name__}); {fix}") from None


# key: the types it may hold (None allowed only where listed)
CHECKPOINT_KEYS = {"format": (int,), "config": (dict,), "dataset": (dict,), "generator": (dict,),
                   "generator_ema": (dict, type(None)), "discriminator": (dict,), "opt_g": (dict,),
                   "opt_d": (dict,), "epoch": (int,), "step": (int,), "rng": (dict,)}


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint file or the one in a run folder, safely (weights_only=True)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    ckpt = load_untrusted(path, f"give a run folder (holding {CHECKPOINT_NAME}) or the {CHECKPOINT_NAME} inside one")
    if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        raise CheckpointError(f"{path} is a bare state dict, not a gan_pack run: export it with --from "
                              f"tutorial-gan|tutorial-cgan or --module FILE.py:Class (see ganpack export --help)")
    if not isinstance(ckpt, dict) or "format" not in ckpt or "config" not in ckpt:
        raise CheckpointError(f"{path} is not a gan_pack checkpoint; give a run folder or "
                              f"the {CHECKPOINT_NAME} inside one")
    if isinstance(ckpt["format"], int) and ckpt["format"] > CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {ckpt['format']}, newer than this "
                              f"gan_pack reads ({CHECKPOINT_FORMAT}); upgrade gan_pack")
    problems = check_structure(ckpt)
    if problems:
        raise CheckpointError(f"{path} is a damaged or hand-made checkpoint ({'; '.join(problems[:3])}); "
                              f"use the {CHECKPOINT_NAME} that `ganpack train` wrote")
    return ckpt


def check_structure(ckpt: dict) -> list[str]:
    """What is missing or of the wrong type in a loaded checkpoint (weights are tensors)."""
    problems = [f"{key} is missing" for key in CHECKPOINT_KEYS if key not in ckpt]
    problems += [f"{key} is a {type(ckpt[key]).__name__}" for key, kinds in CHECKPOINT_KEYS.items()
                 if key in ckpt and (not isinstance(ckpt[key], kinds) or isinstance(ckpt[key], bool))]
    for key in ("generator", "generator_ema", "discriminator"):
        state = ckpt.get(key)
        if isinstance(state, dict) and not all(isinstance(v, torch.Tensor) for v in state.values()):
            problems.append(f"{key} holds values that are not tensors")
    rng = ckpt.get("rng")
    if isinstance(rng, dict) and not isinstance(rng.get("torch"), torch.Tensor):
        problems.append("rng lacks the torch generator state")
    return problems


def load_weights(module: torch.nn.Module, state: dict, what: str, source: str | Path) -> None:
    """load_state_dict, with missing, extra or mis-shaped tensors as a CheckpointError."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as e:
        first = str(e).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])[:300]
        raise CheckpointError(f"{source}: the {what} weights do not fit the network its settings build "
                              f"({detail}); the checkpoint is damaged or from another model") from e


def checkpoint_config(ckpt: dict, source: str | Path) -> TrainConfig:
    try:
        return TrainConfig.from_dict(ckpt["config"])
    except ConfigError as e:
        raise CheckpointError(f"{source}: the checkpoint's settings cannot be used ({e})") from e


def checkpoint_data(ckpt: dict, source: str | Path) -> DatasetInfo:
    try:
        return DatasetInfo.from_dict(ckpt["dataset"])
    except ConfigError as e:
        raise CheckpointError(f"{source}: {e}; the checkpoint is damaged") from e


def check_same_data(saved: DatasetInfo, loaded: DatasetInfo, data_dir: str | None) -> None:
    """A resumed run must train on the data it started with (its fingerprint, or for a run older
    than fingerprints its name, size and image shape)."""
    same = (saved.fingerprint == loaded.fingerprint if saved.fingerprint else
            (saved.name, saved.size, tuple(saved.image_shape)) == (loaded.name, loaded.size, tuple(loaded.image_shape)))
    if not same:
        shape = "x".join(map(str, loaded.image_shape))
        raise CheckpointError(f"--data-dir {data_dir} holds other data than the run was trained on: "
                              f"{loaded.size} images of {shape}, fingerprint {loaded.fingerprint[:12]}, against "
                              f"the run's {saved.describe()}, fingerprint {saved.fingerprint[:12] or 'not recorded'}; "
                              f"give the run's data or start a new --out")


def restore(trainer: Trainer, ckpt: dict, source: str | Path = "checkpoint") -> None:
    """Put a checkpoint's weights, optimizer state, counters and RNG state into a fresh Trainer."""
    nets = trainer.nets
    load_weights(nets.generator, ckpt["generator"], "generator", source)
    load_weights(nets.discriminator, ckpt["discriminator"], "discriminator", source)
    if nets.ema is not None:
        if ckpt["generator_ema"] is None:
            raise CheckpointError(f"{source} holds no EMA generator but its settings keep one; the "
                                  f"checkpoint is damaged")
        load_weights(nets.ema.model, ckpt["generator_ema"], "EMA generator", source)
        nets.ema.updates = int(ckpt["step"])
    for optimizer, key in ((nets.g_optimizer, "opt_g"), (nets.d_optimizer, "opt_d")):
        flags = {k: optimizer.param_groups[0][k] for k in ("fused", "capturable", "foreach")}
        try:
            optimizer.load_state_dict(ckpt[key])
            keep_optimizer_flags(optimizer, flags)             # also reads its learning rates as numbers
        except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as e:
            raise CheckpointError(f"{source}: the {key} optimizer state does not fit the networks "
                                  f"({type(e).__name__}); the checkpoint is damaged") from e
    trainer.epoch, trainer.step = ckpt["epoch"], ckpt["step"]
    if trainer.epoch < 0 or trainer.step < 0:
        raise CheckpointError(f"{source} has a negative epoch or step; the checkpoint is damaged")
    try:
        torch.set_rng_state(ckpt["rng"]["torch"])
    except (RuntimeError, TypeError) as e:
        raise CheckpointError(f"{source}: its random-number state is malformed; the checkpoint is damaged") from e
    if trainer.device.type == "cuda" and "cuda" in ckpt["rng"]:
        torch.cuda.set_rng_state(ckpt["rng"]["cuda"], trainer.device)
    world = trainer.world
    if world.rank:                 # the saved state is rank 0's; the others draw their own noise
        torch.manual_seed(trainer.config.recipe.seed + 7919 * world.rank + trainer.step)


def keep_optimizer_flags(optimizer: torch.optim.Optimizer, flags: dict) -> None:
    """A checkpoint's optimizer state carries the implementation flags of the run that saved it
    (fused, capturable): keep this run's instead, so a checkpoint from 2 GPUs (no CUDA graph)
    resumes on one (graph), or a --fast one with --no-fast. Adam's step counters must sit on the
    device for fused/capturable and on the CPU otherwise."""
    on_device = bool(flags["fused"] or flags["capturable"])
    for group in optimizer.param_groups:
        group.update(flags)
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if "step" in state:
                state["step"] = state["step"].to(param.device if on_device else "cpu", torch.float32)
    lr_for_graphs(optimizer)


def check_resume_config(saved: dict, config: TrainConfig) -> None:
    """A resumed run may change its schedule, where it runs and its evaluation, not its recipe."""
    given, default = config.to_dict(), TrainConfig().to_dict()   # a setting newer than the run: its default
    differ = [f"{k}: run has {saved.get(k, default[k])!r}, flags give {given[k]!r}"
              for k in setting_names(("recipe",)) if saved.get(k, default[k]) != given[k]]
    if differ:
        raise CheckpointError("--resume with settings that differ from the run's ("
                              + "; ".join(differ) + "); drop those flags or start a new --out")


def resume_settings(out: str | Path, flags: dict, given: set[str]) -> dict:
    """The settings of a resumed run: the flags the user gave win, the rest come from the run."""
    saved = load_checkpoint(out)["config"]
    return {k: (v if k in given or k not in saved else saved[k]) for k, v in flags.items()}
