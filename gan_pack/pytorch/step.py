"""One training step (D, then G) and the two ways to run it: eagerly, or replayed from a CUDA graph.

Both ways run the same `train_step` function, so the fast path cannot drift from the plain one:
the graph is `train_step` recorded once and replayed, with the batch's index as its only input.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from gan_pack.pytorch.augment import augment
from gan_pack.pytorch.config import DIVERSITY_SIDE, Recipe
from gan_pack.pytorch.data import Batches, DeviceBatches
from gan_pack.pytorch.ema import EMA

GRAPH_WARMUP_STEPS = 3      # eager steps before capture: they allocate optimizer state and workspaces


def discriminator_loss(loss: str, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    if loss == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    ones, zeros = torch.ones_like(real_logits), torch.zeros_like(fake_logits)
    if loss == "bce-prob":  # the tutorial: Sigmoid in D, then BCELoss on probabilities
        return F.binary_cross_entropy(torch.sigmoid(real_logits), ones) + \
            F.binary_cross_entropy(torch.sigmoid(fake_logits), zeros)
    return F.binary_cross_entropy_with_logits(real_logits, ones) + \
        F.binary_cross_entropy_with_logits(fake_logits, zeros)


def generator_loss(loss: str, fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating: G wants D to call its fakes real."""
    if loss == "hinge":
        return -fake_logits.mean()
    ones = torch.ones_like(fake_logits)
    if loss == "bce-prob":
        return F.binary_cross_entropy(torch.sigmoid(fake_logits), ones)
    return F.binary_cross_entropy_with_logits(fake_logits, ones)


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): the mean over real images of |d D(x) / d x|^2, kept in the
    graph so D's step also descends on it. `real` must have been made to require grad."""
    grad, = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.float().square().flatten(1).sum(1).mean()


def diversity_penalty(first: torch.Tensor, second: torch.Tensor, target: float) -> torch.Tensor:
    """Mode seeking with a hinge (after MSGAN, Mao et al. 2019, and DSGAN, Yang et al. 2019): pairs
    of samples drawn with one label and two noises pay max(0, target - their mean absolute
    difference), averaged over the pairs. A G that ignores its noise pays `target`; pairs that
    differ by `target` or more pay nothing, so the push cannot grow without bound. The difference
    is taken on the images average-pooled to DIVERSITY_SIDE: per pixel, G can pay it in speckle."""
    def coarse(x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        return F.adaptive_avg_pool2d(x, DIVERSITY_SIDE) if x.shape[-1] > DIVERSITY_SIDE else x
    difference = (coarse(first) - coarse(second)).abs().flatten(1).mean(1)       # (pairs,)
    return F.relu(target - difference).mean()


@dataclass
class Networks:
    """The models and optimizers one step updates."""

    generator: nn.Module
    discriminator: nn.Module
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    ema: EMA | None
    generator_call: nn.Module        # what the step calls: the DDP wrapper when distributed
    discriminator_call: nn.Module


@dataclass(frozen=True)
class StepSettings:
    """The few settings a step reads."""

    noise_dim: int
    num_classes: int
    loss: str
    r1: float
    augmentations: tuple[str, ...]
    bf16: bool
    device: torch.device
    subclasses: bool = False        # the labels are subclasses; fakes take the real batch's
    diversity: float = 0.0          # --diversity: the hinge of diversity_penalty (0: no pairs drawn)
    subclass_mix: float = 0.0       # --subclass-mix: the largest weight of a fake's blend (0: none)

    @classmethod
    def of(cls, recipe: Recipe, num_classes: int, device: torch.device) -> "StepSettings":
        return cls(recipe.noise_dim, num_classes, recipe.loss, recipe.r1, tuple(recipe.augmentations),
                   recipe.bf16, device, recipe.subclasses, recipe.diversity, recipe.subclass_mix)


def autocast(settings: StepSettings):
    """bf16 autocast for the forward passes when --bf16; losses stay in float32.
    The cast cache is off: a CUDA graph must not keep casts made while it was recorded."""
    return torch.autocast(settings.device.type, dtype=torch.bfloat16, enabled=settings.bf16,
                          cache_enabled=False)


def train_step(nets: Networks, settings: StepSettings, real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One D step on real and (detached) fake, then one G step. Returns the stats, on device:
    (d_loss, g_loss, mean D(real), mean D(fake))."""
    batch, k, device = real.shape[0], settings.num_classes, settings.device
    seen = partial(augment, names=list(settings.augmentations))               # what D sees
    noise = torch.randn(batch, settings.noise_dim, device=device)             # (B, noise_dim)
    if settings.subclasses:          # the real batch's subclasses, so fakes are drawn as reals are
        fake_labels = labels
    else:
        fake_labels = torch.randint(0, k, (batch,), device=device) if k else None
    pairs, drawn_labels = (batch // 2 if settings.diversity else 0), fake_labels
    if pairs:      # the first `pairs` labels again with new noise, in the same G call (one norm batch)
        noise = torch.cat([noise, torch.randn(pairs, settings.noise_dim, device=device)])
        drawn_labels = torch.cat([fake_labels, fake_labels[:pairs]]) if k else None
    g_mix, d_mix, both_mix = {}, {}, {}
    if settings.subclass_mix:        # each fake's subclass blended with a partner: G's vector, D's head
        others, weights = nets.generator.subclasses.partners(fake_labels, settings.subclass_mix)
        g_mix = {"mix": (torch.cat([others, others[:pairs]]), torch.cat([weights, weights[:pairs]]))}
        d_mix = {"mix": (others, weights)}
        both_mix = {"mix": (torch.cat([labels, others]), torch.cat([torch.zeros_like(weights), weights]))}
    if settings.r1:
        real = real.detach().requires_grad_(True)
    with autocast(settings):
        drawn = (nets.generator_call(noise, subclasses=drawn_labels, **g_mix) if settings.subclasses
                 else nets.generator_call(noise, drawn_labels))                # (B + pairs, C, H, W)
        fake, again = drawn[:batch], drawn[batch:]
        # Real and fake in one D call: D has no BatchNorm, so this is two calls' math in one
        # (a --mbstd group never spans the two halves: check_process_batch sees to it).
        both_labels = torch.cat([labels, fake_labels]) if k else None
        logits = nets.discriminator_call(seen(torch.cat([real, fake.detach().to(real.dtype)])), both_labels,
                                         **both_mix)
    real_logits, fake_logits = logits.float().chunk(2)                          # (B,), (B,)
    d_loss = discriminator_loss(settings.loss, real_logits, fake_logits)
    if settings.r1:
        d_loss = d_loss + settings.r1 / 2 * r1_penalty(real_logits, real)
    nets.d_optimizer.zero_grad(set_to_none=True)
    d_loss.backward()
    nets.d_optimizer.step()

    # The G step needs gradients through D, not of D's weights (the next D step would drop them).
    nets.discriminator.requires_grad_(False)
    with autocast(settings):
        g_logits = nets.discriminator(seen(fake), fake_labels, **d_mix).float()
    g_loss = generator_loss(settings.loss, g_logits)
    if pairs:
        g_loss = g_loss + diversity_penalty(fake[:pairs], again, settings.diversity)
    nets.g_optimizer.zero_grad(set_to_none=True)
    g_loss.backward()
    nets.g_optimizer.step()
    nets.discriminator.requires_grad_(True)
    if nets.ema is not None:
        nets.ema.apply(nets.generator)
    return torch.stack([d_loss.detach(), g_loss.detach(), torch.sigmoid(real_logits.detach()).mean(),
                        torch.sigmoid(fake_logits.detach()).mean()])


class EagerStep:
    """Run train_step as Python calls, one kernel launch at a time."""

    def __init__(self, nets: Networks, settings: StepSettings):
        self.nets, self.settings = nets, settings

    def __call__(self, index: torch.Tensor | None, real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.nets.ema is not None:
            self.nets.ema.advance()
        return train_step(self.nets, self.settings, real, labels)


class GraphedStep:
    """Record the whole D+G step (batch gather, both optimizer steps, EMA) as one CUDA graph.

    A step is then four launches: copy the batch's index in, set the EMA weight, replay, and
    add the stats. Needs fixed shapes (DeviceBatches drops the partial batch), optimizers built
    with capturable=True, and no host syncs inside train_step.
    """

    def __init__(self, nets: Networks, settings: StepSettings, batches: DeviceBatches):
        self.nets, self.settings, self.batches = nets, settings, batches
        self.graph = None
        self.eager_steps = 0

    def __call__(self, index: torch.Tensor | None, real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.nets.ema is not None:
            self.nets.ema.advance()
        if self.graph is None and self.eager_steps < GRAPH_WARMUP_STEPS:
            self.eager_steps += 1
            return self._side_stream(lambda: train_step(self.nets, self.settings, real, labels))
        if self.graph is None:
            self._capture(index)
        self.index.copy_(index)
        self.graph.replay()
        return self.stats

    @staticmethod
    def _side_stream(fn):
        """Warm-up and capture must not run on the default stream (PyTorch's CUDA-graph recipe)."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            out = fn()
        torch.cuda.current_stream().wait_stream(stream)
        return out

    def _capture(self, index: torch.Tensor) -> None:
        self.index = index.clone()                                                # (B,) static input
        self.graph = torch.cuda.CUDAGraph()
        # The replay is what executes this step: capture records kernels without running them.
        with torch.cuda.graph(self.graph):
            real, labels = self.batches.gather(self.index)
            self.stats = train_step(self.nets, self.settings, real, labels)


def lr_for_graphs(optimizer: torch.optim.Optimizer) -> None:
    """A CUDA graph replays its kernels with the arguments they were recorded with: a float learning
    rate is baked in, a tensor's is read from its memory at every replay. A capturable optimizer
    (the graph's) gets its rates as one-element tensors on its parameters' device, which
    set_learning_rates fills in place, so a decaying rate needs no new recording. Others keep floats."""
    for group in optimizer.param_groups:
        device = group["params"][0].device
        if group.get("capturable") and device.type == "cuda":
            group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)
        else:
            group["lr"] = float(group["lr"])


def portable_state(optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's state_dict with float learning rates, as on disk (any run resumes it)."""
    state = optimizer.state_dict()
    state["param_groups"] = [{**group, "lr": float(group["lr"])} for group in state["param_groups"]]
    return state


def make_step(nets: Networks, settings: StepSettings, batches: Batches, fast: bool,
              world_size: int = 1) -> EagerStep | GraphedStep:
    """The CUDA graph where it applies (--fast, one CUDA process, data on the GPU), else eager."""
    if fast and settings.device.type == "cuda" and world_size == 1 and isinstance(batches, DeviceBatches):
        return GraphedStep(nets, settings, batches)
    return EagerStep(nets, settings)
