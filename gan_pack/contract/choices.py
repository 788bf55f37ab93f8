"""Every choice a user makes by name, as one Enum each. The CLI offers the members, the settings
dataclasses check values against them, and nothing else spells the values out again."""

from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A str Enum whose members are what a user types."""

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(member.value for member in cls)

    @classmethod
    def problem(cls, flag: str, value) -> list[str]:
        """[] when `value` is one of the members, else the one line that says what is allowed."""
        allowed = cls.values()
        return [] if value in allowed else [f"{flag} must be one of {', '.join(allowed)}, not {value!r}"]


class Model(Choice):
    gan = "gan"
    cgan = "cgan"
    sr = "sr"              # image-conditioned: a super-resolution GAN (pytorch/sr_train.py)


class Arch(Choice):
    mlp = "mlp"
    dcgan = "dcgan"
    fastgan = "fastgan"


class Dataset(Choice):
    mnist = "mnist"
    fashion_mnist = "fashion-mnist"
    folder = "folder"


class Loss(Choice):
    bce = "bce"
    bce_prob = "bce-prob"
    hinge = "hinge"


class Augment(Choice):
    color = "color"
    translation = "translation"
    cutout = "cutout"


class Device(Choice):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(Choice):
    fp32 = "fp32"
    fp16 = "fp16"          # half weights and compute, float32 inputs and output
    int8 = "int8"          # onnxruntime quantization of the fp32 export


class Weights(Choice):
    ema = "ema"            # the EMA generator (smoother samples)
    raw = "raw"            # the last trained generator


class Rewrite(Choice):
    auto = "auto"          # kept where it measures faster on this CPU
    on = "on"
    off = "off"


class OptimizeMode(Choice):
    auto = "auto"          # write only if faster on this CPU
    on = "on"


class QuantizeMode(Choice):
    auto = "auto"          # dynamic for MLPs, static for convolutional generators
    static = "static"
    dynamic = "dynamic"


class Variant(Choice):
    cuda = "cuda"          # fp16 with the CPU rewrites undone, made and proven on onnxruntime's CUDA provider
    fp16 = "fp16"          # half precision exported from PyTorch (a run)
    int8 = "int8"          # onnxruntime quantization, for CPUs


class FamilyId(Choice):
    """What `export --from` takes: the generator families gan_pack knows (pytorch/families.py)."""
    gan_pack = "gan-pack"                   # a gan_pack run or checkpoint
    tutorial_gan = "tutorial-gan"           # the classic MNIST GAN tutorial's generator.pth
    tutorial_cgan = "tutorial-cgan"
    stylegan2_torch = "stylegan2-torch"     # PyPI stylegan2-torch's Generator
    nvlabs_stylegan2 = "nvlabs-stylegan2"   # NVlabs StyleGAN2-ADA network pickles
    nvlabs_stylegan3 = "nvlabs-stylegan3"   # NVlabs StyleGAN3 network pickles
    spandrel = "spandrel"                   # image-to-image models spandrel recognises (upscalers, restorers)


class NoiseMode(Choice):
    none = "none"          # no per-pixel noise (NVlabs' noise_mode='none')
    const = "const"        # fixed noise stored in the model


class LabelInput(Choice):
    class_index = "index"     # (a member named index would hide str.index)
    onehot = "onehot"


class Format(Choice):
    png = "png"
    npy = "npy"
