"""Generator and discriminator presets. One code path: num_classes = 0 is unconditional."""

from __future__ import annotations

import math

import torch
from torch import nn

from gan_pack.errors import ConfigError
from gan_pack.pytorch.config import Recipe
from gan_pack.pytorch.data import subclass_classes

MLP_HIDDEN = (256, 512, 1024)
DCGAN_UPSAMPLES = {28: 2, 32: 3, 64: 4}
SUBCLASS_DIM = 32          # --subclasses: the length of a subclass's learnt vector
CHOICE_SCALE = 256.0       # a power of two: noise * CHOICE_SCALE is exact in fp32
BLEND_STEPS = 64           # export --subclass-blend: a sample's weight is blend * k / BLEND_STEPS, k < BLEND_STEPS


class Conditioned(nn.Module):
    """Holds the optional label embedding (num_classes x num_classes)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.label_embedding = nn.Embedding(num_classes, num_classes) if num_classes else None

    def embed(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        if self.label_embedding is None:
            return None
        if labels is None:
            raise ValueError("a conditional model needs labels")
        return self.label_embedding(labels)                    # (B, num_classes)


class Subclasses(nn.Module):
    """--subclasses: a learnt vector per subclass, and a class's pick of one of its subclasses.

    Subclasses are numbered class by class, counts[c] of them for class c. A sample of class c takes
    subclass offsets[c] + floor(u * counts[c]), u the fraction of noise[:, 0] * CHOICE_SCALE: uniform
    over the class's subclasses whatever the noise's spread (truncation too), and the same in PyTorch
    and onnxruntime (an exact product, then floors). The tables derive from the counts alone, so a
    checkpoint's state cannot point them out of range."""

    def __init__(self, counts: list[int] | tuple[int, ...]):
        super().__init__()
        sizes = torch.tensor(list(counts), dtype=torch.int64)
        self.embedding = nn.Embedding(int(sizes.sum()), SUBCLASS_DIM)
        self.register_buffer("counts", sizes, persistent=False)      # int64: .half() leaves it exact
        self.register_buffer("offsets", sizes.cumsum(0) - sizes, persistent=False)
        self.register_buffer("classes", subclass_classes(list(counts)), persistent=False)
        self.blend = 0.0       # sampling: how far a sample may move towards a second subclass (export --subclass-blend)

    def choose(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.within(labels, noise_fraction(noise[:, 0]))

    def sample(self, noise: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, tuple | None]:
        """A sample's subclass (`choose`) and, with `blend` > 0, the `mix` that moves it towards a second
        subclass of its class: that one picked as the first is, from noise[:, 1], by a weight
        blend * k / BLEND_STEPS with k from noise[:, 2]. k is an int64, so the fp32 island of a CUDA
        variant, which keeps all that feeds an int64 in fp32, computes it from the fp32 noise too."""
        chosen = self.choose(noise, labels)
        if not self.blend:
            return chosen, None
        steps = torch.floor(noise_fraction(noise[:, 2]) * BLEND_STEPS).long()
        weights = steps[:, None].float() * (self.blend / BLEND_STEPS)
        return chosen, (self.within(labels, noise_fraction(noise[:, 1])), weights)

    def within(self, labels: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Subclass offsets[c] + floor(u * counts[c]) of each label c, u (B,) float32 in [0, 1)."""
        counts = self.counts[labels].float()
        pick = torch.minimum(torch.floor(u * counts), counts - 1)
        return self.offsets[labels] + pick.long()              # (B,) int64

    def vector(self, subclasses: torch.Tensor, mix: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Each subclass's vector; with `mix` (others, weights (B, 1)), moved towards the others' by the weights."""
        return blended_rows(self.embedding, subclasses, mix)   # (B, SUBCLASS_DIM)

    def partners(self, subclasses: torch.Tensor, most: float) -> tuple[torch.Tensor, torch.Tensor]:
        """--subclass-mix: for each subclass, a subclass of its class drawn uniformly (itself included),
        and a weight uniform in 0..most: the `mix` of `vector` and of a projection D's heads."""
        device = subclasses.device
        others = self.within(self.classes[subclasses], torch.rand(subclasses.shape, device=device))
        return others, torch.rand(subclasses.shape[0], 1, device=device) * most


def noise_fraction(column: torch.Tensor) -> torch.Tensor:
    """The fractional part of a noise column * CHOICE_SCALE, in fp32: uniform in [0, 1) however the
    noise is spread or truncated."""
    scaled = column.float() * CHOICE_SCALE
    return scaled - torch.floor(scaled)


def blended_rows(table: nn.Embedding, ids: torch.Tensor, mix=None) -> torch.Tensor:
    """table's rows for ids; with `mix` (others, weights (B, 1)), each moved towards the others' row by
    its weight (--subclass-mix: G's subclass vectors and a projection D's heads alike)."""
    rows = table(ids)
    return rows if mix is None else torch.lerp(rows, table(mix[0]), mix[1].to(rows.dtype))


def beside_image(images: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """A label's embedding as constant planes beside the image: (B, C, H, W) -> (B, C + E, H, W)."""
    planes = embedding[:, :, None, None].expand(-1, -1, images.shape[2], images.shape[3])
    return torch.cat([images, planes], dim=1)


class MLPGenerator(Conditioned):
    """The classic tutorial generator: noise(+label) -> 256 -> 512 -> 1024 -> C*H*W, Tanh."""

    def __init__(self, noise_dim: int, num_classes: int, image_shape: tuple[int, int, int]):
        super().__init__(num_classes)
        self.image_shape = tuple(image_shape)
        layers, width_in = [], noise_dim + num_classes
        for width in MLP_HIDDEN:
            layers += [nn.Linear(width_in, width), nn.LeakyReLU(0.2), nn.BatchNorm1d(width)]
            width_in = width
        layers += [nn.Linear(width_in, int(torch.tensor(image_shape).prod())), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        embedding = self.embed(labels)
        x = noise if embedding is None else torch.cat([noise, embedding], dim=1)
        return self.net(x).unflatten(1, self.image_shape)     # (B, C, H, W)


class MLPDiscriminator(Conditioned):
    """The classic tutorial discriminator: C*H*W(+label) -> 512 -> 256 -> 1 logit."""

    def __init__(self, num_classes: int, image_shape: tuple[int, int, int]):
        super().__init__(num_classes)
        pixels = int(torch.tensor(image_shape).prod())
        self.net = nn.Sequential(
            nn.Linear(pixels + num_classes, 512), nn.LeakyReLU(0.2),
            nn.Linear(512, 256), nn.LeakyReLU(0.2),
            nn.Linear(256, 1),
        )

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        embedding = self.embed(labels)
        x = images.flatten(1)
        if embedding is not None:
            x = torch.cat([x, embedding], dim=1)
        return self.net(x).squeeze(1)                          # (B,) logits


def _dcgan_channels(width: int, image_size: int, min_width: int = 0) -> list[int]:
    ups = DCGAN_UPSAMPLES[image_size]
    return [max(width * 2 ** (ups - i), min_width) for i in range(ups + 1)]   # e.g. 28px: [256, 128, 64]


class DCGANGenerator(Conditioned):
    """Project noise(+label) to a small feature map, then transposed convolutions with BatchNorm.
    The channels halve at each doubling of the side, down to `width`; with `min_width` no layer has
    fewer than that (capacity where the image is large, for few parameters: those sit at 4-8 px).
    With `refine_from`, each upsampling to that side or larger is followed by a 3x3 convolution at
    the same width (depth where the image is large: a transposed convolution alone draws each
    output pixel from 2x2 inputs)."""

    def __init__(self, noise_dim: int, num_classes: int, image_shape: tuple[int, int, int],
                 width: int = 64, min_width: int = 0, refine_from: int = 0, subclass_counts=()):
        super().__init__(num_classes)
        channels, size = image_shape[0], image_shape[1]
        feats = _dcgan_channels(width, size, min_width)
        self.base = size // 2 ** (len(feats) - 1)              # 7 for 28px, 4 for 32/64px
        self.subclasses = Subclasses(subclass_counts) if subclass_counts else None
        extra = SUBCLASS_DIM if subclass_counts else 0
        self.project = nn.Sequential(
            nn.Linear(noise_dim + num_classes + extra, feats[0] * self.base ** 2, bias=False),
            nn.BatchNorm1d(feats[0] * self.base ** 2), nn.ReLU(True))
        blocks = []
        for i, (c_in, c_out) in enumerate(zip(feats, feats[1:])):
            blocks += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(True)]
            if refine_from and self.base * 2 ** (i + 1) >= refine_from:
                blocks += [nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        blocks += [nn.Conv2d(feats[-1], channels, 3, 1, 1), nn.Tanh()]
        self.blocks = nn.Sequential(*blocks)
        self.feats0 = feats[0]
        dcgan_init(self)

    def forward(self, noise: torch.Tensor, labels: torch.Tensor | None = None,
                subclasses: torch.Tensor | None = None, mix=None) -> torch.Tensor:
        """With --subclasses, training passes each image's subclass (its class follows from it), and
        with --subclass-mix a blend (`Subclasses.vector`); a sample picks one of its class's subclasses
        from its noise, and a blend too where `Subclasses.blend` asks (`Subclasses.sample`)."""
        if self.subclasses is not None:
            if subclasses is None:
                subclasses, mix = self.subclasses.sample(noise, labels)
            labels = self.subclasses.classes[subclasses]
        embedding = self.embed(labels)
        x = noise if embedding is None else torch.cat([noise, embedding], dim=1)
        if self.subclasses is not None:
            x = torch.cat([x, self.subclasses.vector(subclasses, mix)], dim=1)   # + (B, SUBCLASS_DIM)
        x = self.project(x).unflatten(1, (self.feats0, self.base, self.base))
        return self.blocks(x)                                  # (B, C, H, W)


class MinibatchStd(nn.Module):
    """ProGAN's minibatch-variation feature: one more plane holding how much the images of a small
    group differ, so D can tell a generator that draws too few styles. The groups are runs of
    `group` consecutive images: D is called on cat(real, fake), and with each half a multiple of
    `group` long no group mixes real with fake."""

    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        group = math.gcd(n, self.group)
        y = x.float().view(n // group, group, c, h, w)
        std = (y.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))   # (n / group,)
        plane = std.repeat_interleave(group).to(x.dtype)[:, None, None, None].expand(n, 1, h, w)
        return torch.cat([x, plane], dim=1)                    # (n, c + 1, h, w)


class DCGANDiscriminator(Conditioned):
    """Strided convolutions with LeakyReLU; the label enters as constant planes beside the image
    (and, with late_label, once more beside the features that the last layer reads). With
    projection, the label instead picks a vector that the features are projected on and added to
    the logit (a class-specific head: Miyato and Koyama's projection discriminator). With
    mbstd > 0 the last layer also reads a minibatch-variation plane (MinibatchStd)."""

    def __init__(self, num_classes: int, image_shape: tuple[int, int, int], width: int = 64,
                 late_label: bool = False, mbstd: int = 0, projection: bool = False):
        projection = projection and num_classes > 0
        super().__init__(0 if projection else num_classes)
        channels, size = image_shape[0], image_shape[1]
        feats = _dcgan_channels(width, size)[::-1]            # e.g. 28px: [64, 128, 256]
        layers, c_in = [], channels + self.num_classes
        for c_out in feats[:-1]:
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            c_in = c_out
        base = size // 2 ** (len(feats) - 1)
        self.late_label = late_label and self.num_classes > 0
        self.features = nn.Sequential(*layers)
        self.mbstd = MinibatchStd(mbstd) if mbstd else None
        c_in += 1 if mbstd else 0
        self.head = nn.Linear(c_in * base * base + (num_classes if self.late_label else 0), 1)
        self.class_head = nn.Embedding(num_classes, c_in * base * base) if projection else None
        dcgan_init(self)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None, mix=None) -> torch.Tensor:
        """`mix` (others, weights (B, 1)): a projection head moved towards the others' as G's vectors were."""
        embedding = self.embed(labels)
        if embedding is not None:
            images = beside_image(images, embedding)           # (B, C + num_classes, H, W)
        features = self.features(images)                       # (B, F, h, w)
        if self.mbstd is not None:
            features = self.mbstd(features)                    # (B, F + 1, h, w)
        features = features.flatten(1)
        if self.late_label:
            features = torch.cat([features, embedding], dim=1)
        logits = self.head(features).squeeze(1)                # (B,)
        if self.class_head is not None:
            if labels is None:
                raise ValueError("a conditional model needs labels")
            logits = logits + (blended_rows(self.class_head, labels, mix) * features).sum(1)
        return logits


def dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's init: N(0, 0.02) weights, BatchNorm scale N(1, 0.02). A label embedding
    keeps torch's N(0, 1); a projection head is a layer's weight and starts as one."""
    for name, m in module.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) or name == "class_head":
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def build_generator(recipe: Recipe, num_classes: int, image_shape, subclass_counts=()) -> nn.Module:
    """`subclass_counts`: with --subclasses, how many subclasses each class has (the data's facts)."""
    if recipe.subclasses and len(subclass_counts) != num_classes:
        raise ConfigError(f"a --subclasses run needs a subclass count for each of its {num_classes} classes, "
                          f"and its data facts give {len(subclass_counts)}")
    if recipe.arch == "mlp":
        return MLPGenerator(recipe.noise_dim, num_classes, image_shape)
    if recipe.arch == "dcgan":
        return DCGANGenerator(recipe.noise_dim, num_classes, image_shape, recipe.width, recipe.min_width,
                              recipe.refine_from, subclass_counts if recipe.subclasses else ())
    if recipe.arch == "fastgan":
        from gan_pack.pytorch.fastgan import FastGANGenerator

        return FastGANGenerator(recipe.noise_dim, num_classes, image_shape, recipe.width)
    raise ConfigError(f"unknown arch {recipe.arch!r}")


def build_discriminator(recipe: Recipe, num_classes: int, image_shape) -> nn.Module:
    if recipe.arch == "mlp":
        model = MLPDiscriminator(num_classes, image_shape)
    elif recipe.arch == "dcgan":
        model = DCGANDiscriminator(num_classes, image_shape, recipe.d_width or recipe.width,
                                   recipe.late_label, recipe.mbstd, recipe.projection)
    elif recipe.arch == "fastgan":
        from gan_pack.pytorch.fastgan import FastGANDiscriminator

        model = FastGANDiscriminator(num_classes, image_shape, recipe.d_width or recipe.width, recipe.mbstd,
                                     recipe.label_planes)
    else:
        raise ConfigError(f"unknown arch {recipe.arch!r}")
    if recipe.spectral_norm:
        add_spectral_norm(model)
    return model


def add_spectral_norm(model: nn.Module) -> None:
    """Spectral normalisation on every convolution and linear layer and on a projection head (not
    on the label embedding that makes input planes)."""
    for name, child in list(model.named_children()):
        if isinstance(child, (nn.Conv2d, nn.Linear)) or name == "class_head":
            setattr(model, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            add_spectral_norm(child)
