"""Packaging generators people already have. The zoo below is user code: a file the test writes and
imports by path, as `ganpack export --module` does, not gan_pack classes."""

import importlib.util
import json
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from conftest import one_error_line, run_cli
from gan_pack.contract.parity import PARITY_BATCHES
from gan_pack.runtime.generator import OnnxGenerator

ZOO = textwrap.dedent('''
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class TutorialGAN(nn.Module):
        """The classic MNIST GAN tutorial."""
        def __init__(self):
            super().__init__()
            def block(i, o):
                return [nn.Linear(i, o), nn.LeakyReLU(0.2, inplace=True), nn.BatchNorm1d(o)]
            self.model = nn.Sequential(*block(100, 256), *block(256, 512), *block(512, 1024), nn.Linear(1024, 784),
                                       nn.Tanh())

        def forward(self, z):
            return self.model(z).view(z.size(0), 1, 28, 28)


    class TutorialCGAN(nn.Module):
        """The classic MNIST cGAN tutorial: the label embedding after the noise."""
        def __init__(self):
            super().__init__()
            self.label_emb = nn.Embedding(10, 10)
            def block(i, o):
                return [nn.Linear(i, o), nn.LeakyReLU(0.2, inplace=True), nn.BatchNorm1d(o)]
            self.model = nn.Sequential(*block(110, 256), *block(256, 512), *block(512, 1024), nn.Linear(1024, 784),
                                       nn.Tanh())

        def forward(self, z, labels):
            return self.model(torch.cat((z, self.label_emb(labels)), -1))


    class PyTorchGANcGAN(nn.Module):
        """eriklindernoren/PyTorch-GAN's cgan.py: label first, BatchNorm1d(n, 0.8) (eps = 0.8)."""
        def __init__(self, n_classes=10, latent_dim=100, img_shape=(1, 28, 28)):
            super().__init__()
            self.img_shape = img_shape
            self.label_emb = nn.Embedding(n_classes, n_classes)
            def block(in_feat, out_feat, normalize=True):
                layers = [nn.Linear(in_feat, out_feat)]
                if normalize:
                    layers.append(nn.BatchNorm1d(out_feat, 0.8))
                layers.append(nn.LeakyReLU(0.2, inplace=True))
                return layers
            self.model = nn.Sequential(*block(latent_dim + n_classes, 128, normalize=False), *block(128, 256),
                                       *block(256, 512), nn.Linear(512, 784), nn.Tanh())

        def forward(self, noise, labels):
            gen_input = torch.cat((self.label_emb(labels), noise), -1)
            img = self.model(gen_input)
            return img.view(img.size(0), *self.img_shape)


    nz, ngf, nc = 100, 16, 3


    class DCGAN(nn.Module):
        """pytorch/examples dcgan/main.py's Generator (ngf 16 here): noise (B, nz, 1, 1) -> 3 x 64 x 64."""
        def __init__(self, ngpu):
            super().__init__()
            self.ngpu = ngpu
            self.main = nn.Sequential(
                nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
                nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())

        def forward(self, input):
            return self.main(input)


    class OneHot(nn.Module):
        """Labels as one-hot vectors."""
        def __init__(self, classes=4):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(16 + classes, 64), nn.ReLU(), nn.Linear(64, 144), nn.Tanh())

        def forward(self, z, onehot):
            return self.net(torch.cat([z, onehot], 1))


    class SigmoidGAN(nn.Module):
        """Images in [0, 1]."""
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(16, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 3 * 8 * 8),
                                     nn.Sigmoid())

        def forward(self, z):
            return self.net(z).view(-1, 3, 8, 8)


    # ---------------------------------------------------------------- the traps

    class RandomInside(SigmoidGAN):
        def forward(self, z):
            return super().forward(z + torch.randn_like(z))


    class DropoutActive(SigmoidGAN):
        def forward(self, z):
            return super().forward(F.dropout(z, 0.5, training=True))


    class FixedBatch(SigmoidGAN):
        def forward(self, z):
            return self.net(z).view(64, 3, 8, 8)


    class TrainModeInside(SigmoidGAN):
        def forward(self, z):
            self.train()
            return super().forward(z)


    class Unbounded(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(16, 64)

        def forward(self, z):
            return 5 * self.net(z)


    class IgnoresNoise(nn.Module):
        def __init__(self):
            super().__init__()
            self.image = nn.Parameter(torch.zeros(1, 1, 8, 8))

        def forward(self, z):
            return torch.tanh(self.image).expand(z.shape[0], 1, 8, 8)
''')


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """The zoo's file, imported, and one 'trained' state dict per class (BatchNorm statistics moved by
    forward passes in train mode, as any training does)."""
    folder = tmp_path_factory.mktemp("zoo")
    path = folder / "zoo.py"
    path.write_text(ZOO)
    spec = importlib.util.spec_from_file_location("user_zoo", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["user_zoo"] = module               # as an imported module of the user's would be
    spec.loader.exec_module(module)
    yield folder, module
    del sys.modules["user_zoo"]


def trained(zoo, name, *args, noise=(100,), classes=0, onehot=False, steps=3, **kwargs):
    folder, module = zoo
    torch.manual_seed(0)
    generator = getattr(module, name)(*args, **kwargs)
    generator.train()
    with torch.no_grad():
        for _ in range(steps):
            z = torch.randn(64, *noise)
            if classes:
                labels = torch.randint(0, classes, (64,))
                generator(z, torch.nn.functional.one_hot(labels, classes).float() if onehot else labels)
            else:
                generator(z)
    path = folder / f"{name}.pth"
    torch.save(generator.state_dict(), path)
    return path, generator.eval()


GOOD = {
    "tutorial-gan": ("TutorialGAN", {}, {}, []),                                    # found without --from
    "tutorial-cgan": ("TutorialCGAN", {}, {"classes": 10}, ["--from", "tutorial-cgan", "--dataset", "mnist"]),
    "pytorch-gan-cgan": ("PyTorchGANcGAN", {}, {"classes": 10},
                         ["--module", "{zoo}:PyTorchGANcGAN", "--noise-dim", "100", "--num-classes", "10"]),
    "dcgan": ("DCGAN", {"ngpu": 1}, {"noise": (100, 1, 1)},
              ["--module", "{zoo}:DCGAN", "--init", '{"ngpu": 1}', "--noise-dim", "100", "--noise-shape", "100,1,1"]),
    "onehot": ("OneHot", {}, {"noise": (16,), "classes": 4, "onehot": True},
               ["--module", "{zoo}:OneHot", "--noise-dim", "16", "--num-classes", "4", "--label-input", "onehot",
                "--class-names", "a,b,c,d", "--image-shape", "1,12,12"]),
    "sigmoid": ("SigmoidGAN", {}, {"noise": (16,)},
                ["--module", "{zoo}:SigmoidGAN", "--noise-dim", "16", "--output-range", "0,1"]),
}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c == "dcgan" else c for c in GOOD])
def test_good_generators_export_with_parity_and_sample(zoo, tmp_path, capsys, case):
    name, init, shape, flags = GOOD[case]
    weights, module = trained(zoo, name, **init, **shape)
    output = tmp_path / f"{case}.onnx"
    flags = [f.replace("{zoo}", str(zoo[0] / "zoo.py")) for f in flags]
    code, out, err = run_cli(["export", weights, "-o", output, *flags], capsys)
    assert code == 0, err
    if case.startswith("tutorial-"):                                   # the family export read it as
        assert f"{case})" in out
    parity = json.loads((tmp_path / f"{case}.parity.json").read_text())
    assert [b["batch"] for b in parity["batches"]] == list(PARITY_BATCHES) and parity["ok"]

    g = OnnxGenerator(output)
    classes = shape.get("classes", 0)
    assert g.info.num_classes == classes and g.info.noise_dim == int(np.prod(shape.get("noise", (100,))))
    assert g.info.raw["imported_from"] and g.info.parity["ok"] and len(g.info.class_names) == classes
    noise = g.noise(5, seed=3)
    labels = np.array([0, 1, 2, 3, 1]) if classes else None
    images = g.generate(noise, labels)
    with torch.no_grad():
        z = torch.from_numpy(noise).reshape(5, *shape.get("noise", (100,)))
        given = None if labels is None else torch.from_numpy(labels)
        if shape.get("onehot"):
            given = torch.nn.functional.one_hot(given, classes).float()
        reference = (module(z, given) if classes else module(z)).reshape(images.shape).numpy()
    if case == "sigmoid":
        reference = reference * 2 - 1
    np.testing.assert_allclose(images, np.clip(reference, -1, 1), atol=1e-4)
    assert images.std(axis=0).mean() > 1e-5                            # the images follow the noise


@pytest.mark.slow                   # seconds of export: the whole suite runs it
def test_pytorch_examples_dcgan_is_3x64x64(zoo, tmp_path, capsys):
    weights, _ = trained(zoo, "DCGAN", 1, noise=(100, 1, 1))
    code, _, err = run_cli(["export", weights, "-o", tmp_path / "d.onnx", "--module", f"{zoo[0] / 'zoo.py'}:DCGAN",
                            "--init", '{"ngpu": 1}', "--noise-dim", "100", "--noise-shape", "100,1,1"], capsys)
    assert code == 0, err
    assert OnnxGenerator(tmp_path / "d.onnx").sample(2, seed=0).shape == (2, 3, 64, 64)


def test_python_function_packages_a_module_in_memory(zoo, tmp_path):
    from gan_pack.pytorch.adapter import ImportSpec
    from gan_pack.pytorch.importer import export_module

    _, module = trained(zoo, "SigmoidGAN", noise=(16,))
    spec = ImportSpec(noise_dim=16, output_range=(0.0, 1.0), dataset="toy", source="in memory")
    reports = export_module(module, tmp_path / "m.onnx", spec)
    assert reports[0].ok and OnnxGenerator(tmp_path / "m.onnx").info.dataset == "toy"


TRAPS = {
    "RandomInside": (["--noise-dim", "16"], "draws random numbers"),
    "DropoutActive": (["--noise-dim", "16"], "draws random numbers"),
    "FixedBatch": (["--noise-dim", "16"], "batch size seems fixed"),
    "TrainModeInside": (["--noise-dim", "16"], "train mode"),
    "Unbounded": (["--noise-dim", "16"], "outside the declared --output-range -1,1"),
    "IgnoresNoise": (["--noise-dim", "16"], "does not depend on the noise"),
    "SigmoidGAN": (["--noise-dim", "16", "--image-shape", "1,28,28"], "--image-shape 1,28,28 has 784"),
}


def test_a_sigmoid_output_without_its_range_is_refused(zoo, tmp_path, capsys):
    """Outputs in [0, 1] read as the contract's -1..1 would make every background mid-grey."""
    weights, _ = trained(zoo, "SigmoidGAN", noise=(16,))
    args = ["export", weights, "-o", tmp_path / "s.onnx", "--module", f"{zoo[0] / 'zoo.py'}:SigmoidGAN",
            "--noise-dim", "16"]
    code, _, err = run_cli(args, capsys)
    one_error_line(code, err, "a Sigmoid's [0, 1]", "--output-range 0,1")
    assert not list(tmp_path.iterdir())
    code, _, err = run_cli([*args, "--output-range", "-1,1"], capsys)         # said so: exported as asked
    assert code == 0, err


@pytest.mark.parametrize("name", list(TRAPS))
def test_traps_fail_with_their_cause_and_write_nothing(zoo, tmp_path, capsys, name):
    flags, words = TRAPS[name]
    weights, _ = trained(zoo, name, noise=(16,))
    code, _, err = run_cli(["export", weights, "-o", tmp_path / "t.onnx", "--module", f"{zoo[0] / 'zoo.py'}:{name}",
                            *flags], capsys)
    one_error_line(code, err, words)
    assert not list(tmp_path.iterdir())


def test_batchnorm_never_trained(zoo, tmp_path, capsys):
    weights, _ = trained(zoo, "SigmoidGAN", noise=(16,), steps=0)
    code, _, err = run_cli(["export", weights, "-o", tmp_path / "t.onnx", "--module",
                            f"{zoo[0] / 'zoo.py'}:SigmoidGAN", "--noise-dim", "16", "--output-range", "0,1"], capsys)
    one_error_line(code, err, "still has its initial statistics")


@pytest.mark.parametrize("mistake, words", [
    ("pickled", "holds pickled objects"),
    ("source_as_weights", "is Python source: give the weights"),
    ("missing_class", "has no nn.Module class 'Nope' (it has: "),
    ("syntax", "importing"),
    ("init", "--init does not fit DCGAN(ngpu)"),
    ("init_json", "--init must be a JSON object"),
    ("init_deep", "--init is nested too deeply"),
    ("strict", "missing: model.2.running_var"),
    ("wrong_tutorial", "use --from tutorial-cgan"),
    ("tutorial_noise_dim", "--noise-dim 64 does not match"),
    ("not_tutorial", "not the classic tutorial generator"),
    ("no_noise_dim", "--module needs --noise-dim"),
    ("flags_without_module", "describe your own generator"),
    ("noise_shape", "--noise-shape 10,1,1 holds 10 values"),
])
def test_mistakes_are_one_line(zoo, tmp_path, capsys, mistake, words):
    folder, module = zoo
    cgan, _ = trained(zoo, "TutorialCGAN", classes=10)
    zoo_file = folder / "zoo.py"
    args = {
        "pickled": lambda: (torch.save(module.SigmoidGAN(), tmp_path / "whole.pth"),
                            [tmp_path / "whole.pth", "--module", f"{zoo_file}:SigmoidGAN", "--noise-dim", "16"])[1],
        "source_as_weights": lambda: [zoo_file, "--module", f"{zoo_file}:SigmoidGAN", "--noise-dim", "16"],
        "missing_class": lambda: [cgan, "--module", f"{zoo_file}:Nope", "--noise-dim", "100"],
        "syntax": lambda: ((tmp_path / "bad.py").write_text("def broken(:\n"),
                           [cgan, "--module", f"{tmp_path / 'bad.py'}:G", "--noise-dim", "100"])[1],
        "init": lambda: [cgan, "--module", f"{zoo_file}:DCGAN", "--init", '{"gpus": 1}', "--noise-dim", "100"],
        "init_json": lambda: [cgan, "--module", f"{zoo_file}:DCGAN", "--init", "ngpu=1", "--noise-dim", "100"],
        "init_deep": lambda: [cgan, "--module", f"{zoo_file}:DCGAN", "--init", "[" * 100_000, "--noise-dim", "100"],
        "strict": lambda: (torch.save({k: v for k, v in torch.load(cgan).items() if k != "model.2.running_var"},
                                      tmp_path / "cut.pth"), [tmp_path / "cut.pth", "--from", "tutorial-cgan"])[1],
        "wrong_tutorial": lambda: [cgan, "--from", "tutorial-gan"],
        "tutorial_noise_dim": lambda: [cgan, "--from", "tutorial-cgan", "--noise-dim", "64"],
        "not_tutorial": lambda: [trained(zoo, "SigmoidGAN", noise=(16,))[0], "--from", "tutorial-gan"],
        "no_noise_dim": lambda: [cgan, "--module", f"{zoo_file}:TutorialCGAN"],
        "flags_without_module": lambda: [cgan, "--noise-shape", "100,1,1"],
        "noise_shape": lambda: [cgan, "--module", f"{zoo_file}:DCGAN", "--noise-dim", "100", "--noise-shape", "10,1,1"],
    }[mistake]()
    code, _, err = run_cli(["export", *args, "-o", tmp_path / "x.onnx"], capsys)
    one_error_line(code, err, words)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow                   # seconds of export: the whole suite runs it
def test_the_tutorial_script_worked_example(tmp_path, tiny_idx, capsys):
    """examples/tutorial/cgan_tutorial.py (the tutorial as users have it) -> generator.pth -> export."""
    import subprocess

    from conftest import ROOT

    done = subprocess.run([sys.executable, ROOT / "examples" / "tutorial" / "cgan_tutorial.py", "--data-dir", tiny_idx,
                           "--epochs", "2", "--out", tmp_path / "generator.pth"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    code, _, err = run_cli(["export", tmp_path / "generator.pth", "--from", "tutorial-cgan", "--dataset", "mnist",
                            "-o", tmp_path / "tutorial.onnx"], capsys)
    assert code == 0, err
    g = OnnxGenerator(tmp_path / "tutorial.onnx")
    assert (g.info.noise_dim, g.info.num_classes, g.info.image_shape) == (100, 10, (1, 28, 28))
    assert g.sample(10, seed=0).shape == (10, 1, 28, 28)
