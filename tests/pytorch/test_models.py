import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from gan_pack.pytorch.config import Recipe
from gan_pack.pytorch.ema import EMA, recalibrate_batchnorm
from gan_pack.pytorch.models import build_discriminator, build_generator


@pytest.mark.parametrize("arch,size,channels", [("mlp", 28, 1), ("dcgan", 28, 1), ("dcgan", 32, 3), ("dcgan", 64, 1)])
@pytest.mark.parametrize("num_classes", [0, 10])
def test_shapes(arch, size, channels, num_classes):
    config = Recipe(arch=arch, image_size=size, channels=channels, width=8, model="cgan" if num_classes else "gan")
    shape = (channels, size, size)
    g, d = build_generator(config, num_classes, shape), build_discriminator(config, num_classes, shape)
    labels = torch.arange(3) % num_classes if num_classes else None
    images = g(torch.randn(3, 100), labels)
    assert images.shape == (3, *shape) and images.abs().max() <= 1
    assert d(images, labels).shape == (3,)


def test_min_width_floors_the_generators_channels_and_leaves_d_alone():
    """--min-width 16 with --width 4 at 64 px: G's channels 64, 32, 16, 16, 16 instead of 64, 32, 16, 8, 4."""
    shape = (4, 64, 64)
    plain, floored = (Recipe(arch="dcgan", model="cgan", image_size=64, channels=4, width=4, min_width=m)
                      for m in (0, 16))

    def g_channels(recipe):
        g = build_generator(recipe, 9, shape)
        return [m.out_channels for m in g.modules() if isinstance(m, (torch.nn.ConvTranspose2d, torch.nn.Conv2d))]

    def d_channels(recipe):
        d = build_discriminator(recipe, 9, shape)
        return [m.out_channels for m in d.modules() if isinstance(m, torch.nn.Conv2d)]

    assert g_channels(plain) == [32, 16, 8, 4, 4]
    assert g_channels(floored) == [32, 16, 16, 16, 4]
    assert d_channels(floored) == d_channels(plain)
    images = build_generator(floored, 9, shape)(torch.randn(3, 100), torch.arange(3))
    assert images.shape == (3, *shape)


def test_refine_from_adds_a_same_width_convolution_from_that_side_up():
    """--refine-from 16 at 64 px (4, 8, 16, 32, 64 px): a 3x3 convolution after the upsamplings to
    16, 32 and 64 px, none after 8; off, G is the plain DCGAN, layer for layer."""
    shape = (4, 64, 64)
    plain, refined = (Recipe(arch="dcgan", model="cgan", image_size=64, channels=4, width=4, refine_from=r)
                      for r in (0, 16))
    g_plain, g = build_generator(plain, 9, shape), build_generator(refined, 9, shape)
    convs = [(type(m).__name__, m.out_channels, m.kernel_size) for m in g.modules()
             if isinstance(m, (torch.nn.ConvTranspose2d, torch.nn.Conv2d))]
    assert convs == [("ConvTranspose2d", 32, (4, 4)), ("ConvTranspose2d", 16, (4, 4)), ("Conv2d", 16, (3, 3)),
                     ("ConvTranspose2d", 8, (4, 4)), ("Conv2d", 8, (3, 3)),
                     ("ConvTranspose2d", 4, (4, 4)), ("Conv2d", 4, (3, 3)), ("Conv2d", 4, (3, 3))]
    assert len(g_plain.state_dict()) + 3 * (1 + 5) == len(g.state_dict())    # a conv weight, a BatchNorm
    images = g(torch.randn(3, 100), torch.arange(3))
    assert images.shape == (3, *shape) and images.abs().max() <= 1


def test_mlp_is_the_tutorial_pair():
    g = build_generator(Recipe(), 10, (1, 28, 28))
    linears = [m for m in g.net if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(110, 256), (256, 512), (512, 1024), (1024, 784)]
    assert g.label_embedding.weight.shape == (10, 10)
    d = build_discriminator(Recipe(), 10, (1, 28, 28))
    assert [(m.in_features, m.out_features) for m in d.net if isinstance(m, torch.nn.Linear)] == \
        [(794, 512), (512, 256), (256, 1)]


def test_late_label_and_spectral_norm():
    config = Recipe(arch="dcgan", model="cgan", width=8, late_label=True, spectral_norm=True, d_width=16)
    d = build_discriminator(config, 10, (1, 28, 28))
    assert d.head.parametrizations.weight is not None
    assert d(torch.zeros(2, 1, 28, 28), torch.tensor([1, 2])).shape == (2,)


def test_ema_moves_towards_weights_and_warms_up():
    g = build_generator(Recipe(), 0, (1, 28, 28))
    ema = EMA(g, decay=0.999)
    with torch.no_grad():
        for p in g.parameters():
            p.add_(1.0)
    before = next(ema.model.parameters()).clone()
    ema.update(g)                                      # warm-up decay 1/10: moves 90% of the way
    after = next(ema.model.parameters())
    assert torch.allclose(after - before, torch.full_like(before, 0.9), atol=1e-5)


def test_recalibrated_statistics_match_fresh_batches():
    g = build_generator(Recipe(), 0, (1, 28, 28))
    bn = g.net[2]
    recalibrate_batchnorm(g, 100, 0, torch.device("cpu"), batches=4, batch_size=64, seed=0)
    assert not g.training and bn.momentum == 0.1
    rng = torch.Generator().manual_seed(0)
    acts = torch.cat([g.net[:2](torch.randn(64, 100, generator=rng)) for _ in range(4)])
    assert torch.allclose(bn.running_mean, acts.mean(0), atol=1e-4)


def test_minibatch_std_groups_never_mix_real_and_fake():
    """--mbstd: D's logit for a real image depends on the images of its group, and only on real
    ones when D is called on cat(real, fake) with each half a multiple of the group."""
    config = Recipe(arch="dcgan", model="cgan", width=8, mbstd=4, batch_size=8)
    d = build_discriminator(config, 10, (1, 28, 28))
    assert d.head.in_features == (16 + 1) * 7 * 7
    torch.nn.init.ones_(d.head.weight)                        # so the spread plane shows in the logit
    torch.manual_seed(0)
    real, fake, labels = torch.randn(8, 1, 28, 28), torch.randn(8, 1, 28, 28), torch.arange(16) % 10
    logits = d(torch.cat([real, fake]), labels)
    other_fake = d(torch.cat([real, fake * 3]), labels)
    # Equal up to float rounding: oneDNN may split a batch differently when other images change.
    assert torch.allclose(logits[:8], other_fake[:8], rtol=0, atol=1e-5)   # real logits: fakes don't reach them
    assert not torch.allclose(logits[8:], other_fake[8:])
    changed = real.clone()
    changed[1] = 0                                            # the first group of real images
    moved = d(torch.cat([changed, fake]), labels)
    assert not torch.allclose(moved[0], logits[0])            # image 0 is the same, its group is not
    assert torch.allclose(moved[4:], logits[4:], rtol=0, atol=1e-5)       # the other groups are untouched


def test_minibatch_std_plane_is_the_group_spread():
    from gan_pack.pytorch.models import MinibatchStd

    x = torch.zeros(4, 2, 3, 3)
    x[1] = 2.0                                                # group 0: values 0 and 2, std 1
    out = MinibatchStd(2)(x)
    assert out.shape == (4, 3, 3, 3)
    assert torch.allclose(out[:2, 2], torch.ones(2, 3, 3), atol=1e-3)
    assert torch.allclose(out[2:, 2], torch.zeros(2, 3, 3), atol=1e-3)   # group 1: identical images


def test_projection_discriminator_reads_the_label_through_its_class_head():
    """--projection: no label planes at the input; the label picks a head that the features are
    projected on, so the same image scores differently under two labels, and spectral norm reaches
    that head too."""
    config = Recipe(arch="dcgan", model="cgan", width=8, projection=True, spectral_norm=True)
    d = build_discriminator(config, 10, (4, 32, 32)).eval()     # eval: no power iteration between calls
    assert d.features[0].in_channels == 4                      # the image alone
    assert d.class_head.parametrizations.weight is not None
    images = torch.randn(2, 4, 32, 32)
    a, b = d(images, torch.tensor([1, 1])), d(images, torch.tensor([1, 2]))
    assert a[0] == b[0] and a[1] != b[1]
    b.sum().backward()
    assert d.class_head.parametrizations.weight.original.grad[2].abs().sum() > 0
