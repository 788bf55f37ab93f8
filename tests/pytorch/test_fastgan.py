"""`--arch fastgan`: the FastGAN-style generator and its residual projection discriminator."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from conftest import one_error_line, run_cli, tiny_config
from gan_pack.pytorch.fastgan import FastGANDiscriminator, FastGANGenerator, excitations, generator_channels


@pytest.mark.parametrize("size, channels, classes", [(28, 1, 0), (28, 1, 10), (32, 3, 0), (64, 4, 9)])
def test_the_generator_makes_the_contract_shape_in_range(size, channels, classes):
    g = FastGANGenerator(16, classes, (channels, size, size), width=8).eval()
    labels = torch.arange(5) % classes if classes else None
    with torch.no_grad():
        images = g(torch.randn(5, 16), labels)
    assert images.shape == (5, channels, size, size) and images.abs().max() <= 1
    d = FastGANDiscriminator(classes, (channels, size, size), width=8, mbstd=0)
    assert d(images, labels).shape == (5,)


def test_28_px_starts_at_7_and_excites_the_last_map_from_the_first():
    g = FastGANGenerator(16, 0, (1, 28, 28), width=8)
    assert g.base == 7 and generator_channels(8, 28) == [32, 16, 8]
    assert excitations(3) == [(0, 2)] and excitations(5) == [(0, 3), (1, 4)]


def test_the_label_steers_every_scale():
    torch.manual_seed(0)
    g = FastGANGenerator(16, 3, (3, 32, 32), width=8)
    with torch.no_grad():                   # class gains that differ, as training makes them
        for module in g.modules():
            if hasattr(module, "gain") and isinstance(module.gain, torch.nn.Embedding):
                module.gain.weight.normal_(1, 0.3)
    noise = torch.randn(4, 16)
    with torch.no_grad():                   # batch statistics: the untrained running ones flatten all
        a, b = g(noise, torch.zeros(4, dtype=torch.long)), g(noise, torch.ones(4, dtype=torch.long))
    assert (a - b).abs().mean() > 1e-2
    with pytest.raises(ValueError, match="needs labels"):
        g(noise)


@pytest.mark.parametrize("label_planes", [False, True])
def test_real_and_fake_in_one_discriminator_call_are_two_calls(label_planes):
    """The fast step sends cat(real, fake) through D at once: no BatchNorm may mix them."""
    torch.manual_seed(0)
    d = FastGANDiscriminator(4, (4, 64, 64), width=8, mbstd=2, label_planes=label_planes).eval()
    real, fake = torch.randn(6, 4, 64, 64), torch.randn(6, 4, 64, 64)
    labels = torch.arange(12) % 4
    together = d(torch.cat([real, fake]), labels)
    apart = torch.cat([d(real, labels[:6]), d(fake, labels[6:])])
    assert torch.allclose(together, apart, atol=1e-5)


@pytest.mark.parametrize("label_planes", [False, True])
def test_label_planes_let_the_label_reach_d_before_its_head(label_planes):
    """With the projection head silenced, only label planes can make D's logit depend on the class."""
    torch.manual_seed(0)
    d = FastGANDiscriminator(3, (4, 32, 32), width=8, label_planes=label_planes).eval()
    with torch.no_grad():
        d.class_head.weight.zero_()
        images = torch.randn(2, 4, 32, 32)
        a, b = d(images, torch.zeros(2, dtype=torch.long)), d(images, torch.ones(2, dtype=torch.long))
    assert ((a - b).abs().max() > 1e-4) == label_planes
    assert d.from_image[0].in_channels == 4 + (3 if label_planes else 0)


@pytest.mark.slow                       # a training run and an export
def test_a_fastgan_run_trains_and_exports_with_parity(tmp_path, tiny_idx):
    from gan_pack.pytorch.export import ExportOptions, export_generator
    from gan_pack.pytorch.train import train
    from gan_pack.runtime.generator import OnnxGenerator

    run = tmp_path / "run"
    train(tiny_config(run, tiny_idx, arch="fastgan", width=8, d_width=8, loss="hinge", spectral_norm=True,
                      augment="color,translation", r1=0.1, mbstd=4, label_planes=True))
    reports = export_generator(run, tmp_path / "g.onnx", ExportOptions(batch_sizes=(1, 7, 64)))
    assert all(report.ok for report in reports)           # proven against PyTorch
    g = OnnxGenerator(tmp_path / "g.onnx")
    assert g.info.image_shape == (1, 28, 28) and g.info.num_classes == 10
    images = g.generate(g.noise(4, seed=0), np.arange(4))
    assert images.shape == (4, 1, 28, 28) and images.std() > 0


@pytest.mark.parametrize("args, words", [
    (["--arch", "fastgan", "--image-size", "48"], ["--arch fastgan", "28, 32, 64"]),
    (["--arch", "fastgan", "--late-label"], ["--late-label", "fastgan D projects"]),
    (["--arch", "mlp", "--mbstd", "4"], ["--mbstd", "dcgan or fastgan"]),
    (["--arch", "dcgan", "--model", "cgan", "--label-planes"], ["--label-planes", "--arch fastgan --model cgan"]),
    (["--arch", "fastgan", "--model", "gan", "--label-planes"], ["--label-planes", "fastgan cGAN"]),
    (["--augment", "colour"], ["--augment", "color, translation, cutout"]),
])
def test_fastgan_settings_are_checked_in_one_line(tmp_path, capsys, tiny_idx, args, words):
    code, _, err = run_cli(["train", "--data-dir", tiny_idx, "--out", tmp_path / "run", *args], capsys)
    one_error_line(code, err, *words)
    assert not (tmp_path / "run").exists()
