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


def test_real_and_fake_in_one_discriminator_call_are_two_calls():
    """The fast step sends cat(real, fake) through D at once: no BatchNorm may mix them."""
    torch.manual_seed(0)
    d = FastGANDiscriminator(4, (4, 64, 64), width=8, mbstd=2).eval()
    real, fake = torch.randn(6, 4, 64, 64), torch.randn(6, 4, 64, 64)
    labels = torch.arange(12) % 4
    together = d(torch.cat([real, fake]), labels)
    apart = torch.cat([d(real, labels[:6]), d(fake, labels[6:])])
    assert torch.allclose(together, apart, atol=1e-5)


@pytest.mark.slow                       # a training run and an export
def test_a_fastgan_run_trains_and_exports_with_parity(tmp_path, tiny_idx):
    from gan_pack.pytorch.export import ExportOptions, export_generator
    from gan_pack.pytorch.train import train
    from gan_pack.runtime.generator import OnnxGenerator

    run = tmp_path / "run"
    train(tiny_config(run, tiny_idx, arch="fastgan", width=8, d_width=8, loss="hinge", spectral_norm=True,
                      augment="color,translation", r1=0.1, mbstd=4))
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
    (["--augment", "colour"], ["--augment", "color, translation, cutout"]),
])
def test_fastgan_settings_are_checked_in_one_line(tmp_path, capsys, tiny_idx, args, words):
    code, _, err = run_cli(["train", "--data-dir", tiny_idx, "--out", tmp_path / "run", *args], capsys)
    one_error_line(code, err, *words)
    assert not (tmp_path / "run").exists()
