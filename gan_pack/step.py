"""One training step (D, then G) and the two ways to run it: eagerly, or replayed from a CUDA graph.

Both ways run the same `train_step` function, so the fast path cannot drift from the plain one:
the graph is `train_step` recorded once and replayed, with the batch's index as its only input.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F

from gan_pack.augment import augment

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


def autocast(t):
    """bf16 autocast for the forward passes when --bf16; losses stay in float32.
    The cast cache is off: a CUDA graph must not keep casts made while it was recorded."""
    return torch.autocast(t.device.type, dtype=torch.bfloat16, enabled=t.config.bf16, cache_enabled=False)


def train_step(t, real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One D step on real and (detached) fake, then one G step. Returns the stats, on device.

    Works on the Trainer `t`: `t.g_train`/`t.d_train` are the modules to call (DDP-wrapped
    when distributed), `t.generator`/`t.discriminator` the bare ones.
    """
    cfg, batch, k = t.config, real.shape[0], t.info.num_classes
    seen = partial(augment, names=cfg.augmentations)                            # what D sees
    noise = torch.randn(batch, cfg.noise_dim, device=t.device)                 # (B, noise_dim)
    fake_labels = torch.randint(0, k, (batch,), device=t.device) if k else None
    if cfg.r1:
        real = real.detach().requires_grad_(True)
    with autocast(t):
        fake = t.g_train(noise, fake_labels)                                    # (B, C, H, W)
        # Real and fake in one D call: D has no BatchNorm, so this is two calls' math in one
        # (a --mbstd group never spans the two halves: build_trainer checks each process's batch).
        both_labels = torch.cat([labels, fake_labels]) if k else None
        logits = t.d_train(seen(torch.cat([real, fake.detach().to(real.dtype)])), both_labels)
    real_logits, fake_logits = logits.float().chunk(2)                           # (B,), (B,)
    d_loss = discriminator_loss(cfg.loss, real_logits, fake_logits)
    if cfg.r1:
        d_loss = d_loss + cfg.r1 / 2 * r1_penalty(real_logits, real)
    t.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    t.opt_d.step()

    # The G step needs gradients through D, not of D's weights (the next D step would drop them).
    t.discriminator.requires_grad_(False)
    with autocast(t):
        g_logits = t.discriminator(seen(fake), fake_labels).float()
    g_loss = generator_loss(cfg.loss, g_logits)
    t.opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    t.opt_g.step()
    t.discriminator.requires_grad_(True)
    if t.ema is not None:
        t.ema.apply(t.generator)
    return torch.stack([d_loss.detach(), g_loss.detach(), torch.sigmoid(real_logits.detach()).mean(),
                        torch.sigmoid(fake_logits.detach()).mean()])


class EagerStep:
    """Run train_step as Python calls, one kernel launch at a time."""

    def __call__(self, t, index: torch.Tensor | None, real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if t.ema is not None:
            t.ema.advance()
        return train_step(t, real, labels)


class GraphedStep:
    """Record the whole D+G step (batch gather, both optimizer steps, EMA) as one CUDA graph.

    A step is then four launches: copy the batch's index in, set the EMA weight, replay, and
    add the stats. Needs fixed shapes (DeviceBatches drops the partial batch), optimizers built
    with capturable=True, and no host syncs inside train_step.
    """

    def __init__(self):
        self.graph = None
        self.eager_steps = 0

    def __call__(self, t, index: torch.Tensor | None, real: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if t.ema is not None:
            t.ema.advance()
        if self.graph is None and self.eager_steps < GRAPH_WARMUP_STEPS:
            self.eager_steps += 1
            return self._side_stream(lambda: train_step(t, real, labels))
        if self.graph is None:
            self._capture(t, index)
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

    def _capture(self, t, index: torch.Tensor) -> None:
        self.index = index.clone()                                                # (B,) static input
        self.graph = torch.cuda.CUDAGraph()
        # The replay is what executes this step: capture records kernels without running them.
        with torch.cuda.graph(self.graph):
            real, labels = t.batches.gather(self.index)
            self.stats = train_step(t, real, labels)


def make_step(t):
    """The CUDA graph where it applies (--fast, one CUDA process, data on the GPU), else eager."""
    from gan_pack.data import DeviceBatches

    if (t.config.fast and t.device.type == "cuda" and t.world.size == 1
            and isinstance(t.batches, DeviceBatches)):
        return GraphedStep()
    return EagerStep()
