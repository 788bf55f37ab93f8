"""`ganpack train --model sr`: a super-resolution GAN trained on an image folder (RGBA included).

The generator is spandrel's `Compact` (the SRVGG architecture of Real-ESRGAN's compact models, MIT):
--convs 3x3 convolutions of --width features with PReLU at the low resolution, a pixel shuffle, and
the nearest-upsampled input added back. The discriminator is a small spectral-normalised patch
network. Each batch's low-resolution inputs are made on the fly from the high-resolution images:
premultiplied alpha, a mild Gaussian blur on half of them, antialiased bicubic down by --scale (as
Pillow's resize does), mild noise on a quarter, then 8-bit rounding. The loss is L1 (RGB composited
over white and over black, and alpha) plus --adv-weight of the non-saturating GAN loss after the first
quarter of the epochs. The run folder holds generator.pth ({"params_ema", "params"}: a state dict any
spandrel-based tool loads, and `ganpack export` detects), config.json, metrics.jsonl and samples/.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gan_pack.core.files import atomic_path, make_folder, write_text_atomic
from gan_pack.errors import ConfigError
from gan_pack.pytorch.config import TrainConfig

GENERATOR_FILE = "generator.pth"


def build_sr_generator(channels: int, width: int, convs: int, scale: int) -> nn.Module:
    from gan_pack.pytorch.image_models import require_spandrel

    require_spandrel()
    from spandrel.architectures.Compact import Compact

    return Compact(num_in_ch=channels, num_out_ch=channels, num_feat=width, num_conv=convs, upscale=scale,
                   act_type="prelu")


class PatchDiscriminator(nn.Module):
    """Real or made, per patch, of premultiplied images."""

    def __init__(self, channels: int, width: int = 64):
        super().__init__()
        sn = nn.utils.spectral_norm
        self.net = nn.Sequential(
            sn(nn.Conv2d(channels, width, 3, 1, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width, width * 2, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width * 2, width * 4, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width * 4, width * 4, 3, 1, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width * 4, 1, 3, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def premultiply(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x[:, :3] * x[:, 3:], x[:, 3:]], 1) if x.shape[1] == 4 else x


def unpremultiply(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] != 4:
        return x
    alpha = x[:, 3:]
    return torch.cat([torch.where(alpha > 0, x[:, :3] / alpha.clamp_min(1e-6), torch.zeros_like(x[:, :3])).clamp(0, 1),
                      alpha], 1)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur (5x5) of (B, C, H, W), sigma (B,)."""
    t = torch.arange(-2, 3, device=x.device, dtype=x.dtype)
    k = torch.exp(-(t[None] ** 2) / (2 * sigma[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)                                       # (B, 5)
    b, c, h, w = x.shape
    y = F.pad(x, (2, 2, 2, 2), mode="replicate").reshape(1, b * c, h + 4, w + 4)
    kx = k.repeat_interleave(c, 0)[:, None, None, :]                     # (B*C, 1, 1, 5)
    y = F.conv2d(y, kx, groups=b * c)
    y = F.conv2d(y, kx.transpose(2, 3), groups=b * c)
    return y.reshape(b, c, h, w)


def degrade(hr: torch.Tensor, scale: int, gen: torch.Generator) -> torch.Tensor:
    """Low-resolution inputs of (B, C, H, W) in [0, 1] images, as described above."""
    b, dev = hr.shape[0], hr.device
    x = premultiply(hr)
    blurred = torch.rand(b, device=dev, generator=gen) < 0.5
    if blurred.any():
        sigma = 0.2 + torch.rand(int(blurred.sum()), device=dev, generator=gen)
        x = x.clone()
        x[blurred] = _blur(x[blurred], sigma)
    x = F.interpolate(x, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)
    noisy = (torch.rand(b, 1, 1, 1, device=dev, generator=gen) < 0.25).float()
    level = torch.rand(b, 1, 1, 1, device=dev, generator=gen) * (3 / 255)
    x = x + noisy * level * torch.randn(x.shape, device=dev, generator=gen)
    x = (x.clamp(0, 1) * 255).round() / 255
    return unpremultiply(x)


def l1_loss(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """L1 of what is seen: RGB over white and over black, and alpha."""
    if sr.shape[1] != 4:
        return (sr - hr).abs().mean()
    def over(x, bg):
        return x[:, :3] * x[:, 3:] + bg * (1 - x[:, 3:])
    return ((over(sr, 1) - over(hr, 1)).abs().mean() + 0.5 * (over(sr, 0) - over(hr, 0)).abs().mean()
            + (sr[:, 3:] - hr[:, 3:]).abs().mean())


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 10 * math.log10(1 / max(mse, 1e-12))


def train_sr(config: TrainConfig, resume: bool = False, log=lambda line: print(line, file=sys.stderr)) -> Path:
    """Train; returns the run folder (see the module's doc)."""
    from gan_pack.pytorch.data import load_dataset
    from gan_pack.pytorch.distributed import resolve_device

    if resume:
        raise ConfigError("an sr run is not resumed; start it again (its epochs are minutes)")
    recipe, schedule = config.recipe, config.schedule
    run_dir = Path(config.run.out)
    make_folder(run_dir / "samples")
    device = resolve_device(config.run.device)
    torch.manual_seed(recipe.seed)
    images, _, info = load_dataset(recipe, config.run.data_dir)
    data = images.to(device)                                             # uint8 (N, C, H, W)
    channels, scale = info.image_shape[0], recipe.scale
    g = build_sr_generator(channels, recipe.width, recipe.convs, scale).to(device)
    ema = build_sr_generator(channels, recipe.width, recipe.convs, scale).to(device)
    ema.load_state_dict(g.state_dict())
    d = PatchDiscriminator(channels, recipe.d_width or 64).to(device)
    opt_g = torch.optim.Adam(g.parameters(), lr=recipe.lr, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), lr=recipe.discriminator_lr, betas=(0.9, 0.99))
    gen = torch.Generator(device=device).manual_seed(recipe.seed)
    steps_per_epoch = max(1, len(data) // recipe.batch_size)
    adv_from = schedule.epochs // 4
    write_text_atomic(run_dir / "config.json", json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    held = data[torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:16].to(device)].float() / 255
    held_lr = degrade(held, scale, torch.Generator(device=device).manual_seed(1))
    metrics = open(run_dir / "metrics.jsonl", "a")
    step, started = 0, time.perf_counter()
    for epoch in range(schedule.epochs):
        for opt, base in ((opt_g, recipe.lr), (opt_d, recipe.discriminator_lr)):
            for group in opt.param_groups:
                group["lr"] = base * schedule.lr_factor(epoch)
        adversarial = recipe.adv_weight > 0 and epoch >= adv_from
        for _ in range(steps_per_epoch):
            index = torch.randint(0, len(data), (recipe.batch_size,), device=device, generator=gen)
            hr = data[index].float() / 255
            if torch.rand(1, generator=gen, device=device).item() < 0.5:
                hr = hr.flip(3)
            lr = degrade(hr, scale, gen)
            sr = g(lr)
            loss = l1_loss(sr, hr)
            if adversarial:
                loss = loss + recipe.adv_weight * F.softplus(-d(premultiply(sr))).mean()
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            if adversarial:
                real, fake = d(premultiply(hr)), d(premultiply(sr.detach().clamp(0, 1)))
                loss_d = F.softplus(-real).mean() + F.softplus(fake).mean()
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
            with torch.no_grad():
                for pe, pg in zip(ema.parameters(), g.parameters()):
                    pe.lerp_(pg, 1 - recipe.ema_decay)
            step += 1
        with torch.no_grad():
            sr_held = ema(held_lr).clamp(0, 1)
            bicubic = F.interpolate(premultiply(held_lr), scale_factor=scale, mode="bicubic",
                                    align_corners=False).clamp(0, 1)
            record = {"epoch": epoch + 1, "step": step, "l1": float(loss), "adversarial": adversarial,
                      "psnr_ema": psnr(premultiply(sr_held), premultiply(held)),
                      "psnr_bicubic": psnr(bicubic, premultiply(held)), "seconds": time.perf_counter() - started}
        metrics.write(json.dumps(record) + "\n")
        metrics.flush()
        log(f"epoch {epoch + 1}/{schedule.epochs}: l1 {record['l1']:.4f}, held-out PSNR {record['psnr_ema']:.2f} dB "
            f"(bicubic {record['psnr_bicubic']:.2f}), {record['seconds']:.0f} s")
        if not config.writes(epoch + 1):
            continue
        with atomic_path(run_dir / GENERATOR_FILE) as tmp:
            torch.save({"params_ema": {k: v.cpu() for k, v in ema.state_dict().items()},
                        "params": {k: v.cpu() for k, v in g.state_dict().items()}}, tmp)
    metrics.close()
    _sample_grid(run_dir / "samples" / "final.png", held_lr, ema, held, scale)
    return run_dir


@torch.no_grad()
def _sample_grid(path: Path, lr: torch.Tensor, model: nn.Module, hr: torch.Tensor, scale: int) -> None:
    """Rows of: the input (nearest), bicubic, the model, the original; over a checkerboard where RGBA."""
    import numpy as np

    from gan_pack.core.images import flatten, make_grid, save_png

    rows = [F.interpolate(lr, scale_factor=scale, mode="nearest"),
            unpremultiply(F.interpolate(premultiply(lr), scale_factor=scale, mode="bicubic",
                                        align_corners=False).clamp(0, 1)),
            model(lr).clamp(0, 1), hr]
    n = min(8, len(lr))
    grid = make_grid(torch.cat([r[:n] for r in rows]).cpu().numpy() * 2 - 1, nrow=n)
    save_png(path, flatten(grid) if grid.shape[2] == 4 else np.asarray(grid))


def sr_run_dataset(path: Path) -> str:
    """The data set of a `ganpack train --model sr` run whose generator.pth this is ("unknown" otherwise)."""
    from gan_pack.core.files import read_json
    from gan_pack.core.folder import folder_dataset_name

    try:
        config = read_json(path.parent / "config.json", 1 << 20)       # a file of someone else's: bounded
    except (OSError, ValueError):
        return "unknown"
    if not isinstance(config, dict) or config.get("model") != "sr":
        return "unknown"
    return folder_dataset_name(config.get("data_dir"))

