"""The generator's weights averaged over training (EMA), and the BatchNorm statistics recomputed
for the averaged weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """An exponential moving average of a generator's weights: smoother samples than the raw G.

    The decay warms up as (1 + n) / (10 + n) over the first updates, so early epochs are not
    dominated by the random initial weights. BatchNorm statistics are not averaged:
    `recalibrate_batchnorm` recomputes them for the averaged weights.
    """

    def __init__(self, generator: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(generator).eval().requires_grad_(False)
        device = next(generator.parameters()).device
        # The step's weight lives on the device, so a recorded CUDA graph reads this step's value.
        self.weight = torch.zeros((), device=device)

    def update(self, generator: nn.Module) -> None:
        self.advance()
        self.apply(generator)

    def advance(self) -> None:
        """Set this step's weight (host side; no sync: a fill launched on the device)."""
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        self.weight_value = 1.0 - decay
        self.weight.fill_(self.weight_value)

    @torch.no_grad()
    def apply(self, generator: nn.Module) -> None:
        """ema += weight * (params - ema). On CUDA it reads the weight from the device, so a
        recorded CUDA graph uses each step's value; on the CPU one lerp pass is cheaper."""
        ema_params, params = list(self.model.parameters()), list(generator.parameters())
        if self.weight.device.type == "cpu":
            torch._foreach_lerp_(ema_params, params, self.weight_value)
            return
        step = torch._foreach_sub(params, ema_params)
        torch._foreach_mul_(step, self.weight)
        torch._foreach_add_(ema_params, step)


@torch.no_grad()
def recalibrate_batchnorm(generator: nn.Module, noise_dim: int, num_classes: int,
                          device: torch.device, batches: int = 20, batch_size: int = 256,
                          seed: int = 1234) -> None:
    """Recompute BatchNorm running statistics as the exact average over fresh noise batches.

    Uses its own RNG so the training RNG stream is untouched.
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    rng = torch.Generator(device=device).manual_seed(seed)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None                                      # cumulative average
    generator.train()
    for _ in range(batches):
        noise = torch.randn(batch_size, noise_dim, device=device, generator=rng)
        labels = (torch.randint(0, num_classes, (batch_size,), device=device, generator=rng)
                  if num_classes else None)
        generator(noise, labels)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    generator.eval()
