"""--subclasses: G learns a vector per subclass (files named alike after their first '-'), D a
projection head per subclass, and a class label picks one of its subclasses from the noise, in
PyTorch and in the exported graph alike."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
from PIL import Image

from conftest import one_error_line, run_cli, tiny_config
from gan_pack.errors import ConfigError
from gan_pack.pytorch.config import Recipe
from gan_pack.pytorch.data_facts import DatasetInfo
from gan_pack.pytorch.models import Subclasses, build_generator

COUNTS = [3, 1, 5]


def named_folder(root, per_subclass=2, side=32):
    """Three classes of RGBA PNGs named style-NAME.png, two styles of each subclass."""
    rng = np.random.default_rng(0)
    for c, count in enumerate(COUNTS):
        for s in range(count):
            colour = rng.integers(0, 255, 3).tolist()
            for style in ("google", "twitter")[:per_subclass]:
                pixels = np.zeros((side, side, 4), np.uint8)
                pixels[4 + 4 * c:20 + 2 * s, 6:24] = [*colour, 255]
                (root / f"class{c}").mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels, "RGBA").save(root / f"class{c}" / f"{style}-{c}{s:02d}.png")
    return root


def separated_generator():
    """An eval-mode 32 px subclass G whose subclass vectors are far apart (so another pick shows in
    the images), BatchNorm recalibrated to images of some size as a trained G's are; and the
    metadata an export of it takes."""
    import gan_pack
    from gan_pack.contract.metadata import generator_metadata
    from gan_pack.pytorch.ema import recalibrate_batchnorm

    recipe = Recipe(model="cgan", arch="dcgan", dataset="folder", image_size=32, channels=4, width=8,
                    projection=True, subclasses=True)
    torch.manual_seed(0)
    g = build_generator(recipe, 3, (4, 32, 32), COUNTS)
    with torch.no_grad():
        g.subclasses.embedding.weight.mul_(30)
    recalibrate_batchnorm(g, 100, 3, torch.device("cpu"))
    flat = {"model": "cgan", "arch": "dcgan", "noise_dim": 100, "width": 8, "subclasses": True}
    info = {"name": "t", "num_classes": 3, "image_shape": [4, 32, 32], "class_names": ["a", "b", "c"]}
    return g.eval(), generator_metadata(flat, info, 0, 0, "ema", "fp32", 0, gan_pack.__version__)


@pytest.mark.parametrize("spread", [1.0, 0.5])           # untruncated, and a narrow (truncated) noise
def test_a_class_picks_each_of_its_subclasses_about_equally(spread):
    choice = Subclasses(COUNTS)
    torch.manual_seed(0)
    noise = torch.randn(30000, 4) * spread
    labels = torch.randint(0, 3, (30000,))
    picked = choice.choose(noise, labels)
    offsets = [0, 3, 4]
    for c, count in enumerate(COUNTS):
        mine = picked[labels == c] - offsets[c]
        assert mine.min() >= 0 and mine.max() == count - 1                 # inside the class, all of it
        share = torch.bincount(mine, minlength=count).float() / len(mine)
        assert (share - 1 / count).abs().max() < 0.02, share


def test_the_tables_come_from_the_counts_and_not_from_a_checkpoints_state():
    recipe = Recipe(model="cgan", arch="dcgan", dataset="folder", image_size=32, channels=4, width=8,
                    projection=True, subclasses=True)
    g = build_generator(recipe, 3, (4, 32, 32), COUNTS)
    state = g.state_dict()
    assert "subclasses.embedding.weight" in state and not any(k.endswith(("offsets", "counts", "classes"))
                                                               for k in state)
    with pytest.raises(ConfigError, match="subclass count"):
        build_generator(recipe, 3, (4, 32, 32), [3, 1])


def test_sampling_a_class_is_training_on_the_subclass_it_picks():
    recipe = Recipe(model="cgan", arch="dcgan", dataset="folder", image_size=32, channels=4, width=8,
                    projection=True, subclasses=True)
    g = build_generator(recipe, 3, (4, 32, 32), COUNTS).eval()
    noise, labels = torch.randn(12, 100), torch.arange(12) % 3
    chosen = g.subclasses.choose(noise, labels)
    assert torch.equal(g.subclasses.classes[chosen], labels)
    with torch.no_grad():
        assert torch.equal(g(noise, labels), g(noise, subclasses=chosen))
        other = g(noise, subclasses=(chosen + 1) % sum(COUNTS))
    assert not torch.equal(g(noise, labels), other)                 # the subclass reaches the image


def test_a_blend_partner_is_of_the_same_class_and_its_weight_in_range():
    choice = Subclasses(COUNTS)
    torch.manual_seed(0)
    subclasses = torch.randint(0, sum(COUNTS), (20000,))
    others, weights = choice.partners(subclasses, 0.3)
    assert torch.equal(choice.classes[others], choice.classes[subclasses])
    assert weights.shape == (20000, 1) and weights.min() >= 0 and 0.29 < weights.max() <= 0.3
    for c, offset in ((0, 0), (2, 4)):                     # every subclass of a class is drawn, evenly
        share = torch.bincount(others[choice.classes[subclasses] == c] - offset).float()
        assert len(share) == COUNTS[c] and (share / share.sum() - 1 / COUNTS[c]).abs().max() < 0.02
    a, b = torch.tensor([0, 5]), torch.tensor([2, 8])
    for w in (0.0, 1.0, 0.25):                             # G's vector and D's head move alike
        blend = choice.vector(a, (b, torch.full((2, 1), w)))
        assert torch.allclose(blend, (1 - w) * choice.embedding(a) + w * choice.embedding(b))


def test_a_projection_d_judges_a_blend_by_its_heads_blended():
    """D's logit is linear in its head, so a blended head gives the blend of the two logits."""
    from gan_pack.pytorch.models import build_discriminator

    recipe = Recipe(model="cgan", arch="dcgan", dataset="folder", image_size=32, channels=4, width=8,
                    projection=True, subclasses=True, subclass_mix=0.5)
    d = build_discriminator(recipe, sum(COUNTS), (4, 32, 32))
    torch.nn.init.normal_(d.class_head.weight)             # heads that differ
    images, own, other = torch.randn(4, 4, 32, 32), torch.tensor([0, 1, 4, 8]), torch.tensor([2, 1, 7, 5])
    weights = torch.tensor([[0.0], [0.5], [0.3], [1.0]])
    with torch.no_grad():
        blended = d(images, own, mix=(other, weights))
        expected = (1 - weights[:, 0]) * d(images, own) + weights[:, 0] * d(images, other)
    assert torch.allclose(blended, expected, atol=1e-5)
    assert not torch.allclose(blended[2], d(images, own)[2].detach())


@pytest.mark.parametrize("mix", [0.0, 0.5])
def test_a_blended_step_trains_the_vectors_of_subclasses_outside_the_batch(mix):
    """One step on a batch of one subclass: only with --subclass-mix do other vectors of its class
    get a gradient (their first Adam step moves them); other classes' never do."""
    from gan_pack.pytorch.models import build_discriminator
    from gan_pack.pytorch.step import Networks, StepSettings, train_step

    recipe = Recipe(model="cgan", arch="dcgan", dataset="folder", image_size=32, channels=4, width=8,
                    projection=True, subclasses=True, subclass_mix=mix, loss="hinge")
    torch.manual_seed(0)
    g = build_generator(recipe, 3, (4, 32, 32), COUNTS)
    d = build_discriminator(recipe, sum(COUNTS), (4, 32, 32))
    nets = Networks(g, d, torch.optim.Adam(g.parameters()), torch.optim.Adam(d.parameters()), None, g, d)
    before = g.subclasses.embedding.weight.detach().clone()
    settings = StepSettings.of(recipe, 3, torch.device("cpu"))
    train_step(nets, settings, torch.rand(16, 4, 32, 32) * 2 - 1, torch.full((16,), 5))   # class 2: 4..8
    moved = (g.subclasses.embedding.weight.detach() != before).any(1)
    assert moved[5] and not moved[:4].any()
    assert bool(moved[[4, 6, 7, 8]].any()) == bool(mix)


def test_malformed_subclass_facts_are_refused():
    base = {"name": "x", "image_shape": [4, 32, 32], "num_classes": 3}
    assert DatasetInfo.from_dict({**base, "subclass_counts": COUNTS}).subclass_counts == COUNTS
    for counts in ([3, 1], [3, 0, 5], [100_000, 1, 1], "315", {"3": 1}, ["x", 1, 5]):
        with pytest.raises(ConfigError, match="malformed"):
            DatasetInfo.from_dict({**base, "subclass_counts": counts})



@pytest.mark.parametrize("change", [{"image_shape": "464"}, {"image_shape": {"4": 1, "6": 2, "5": 3}},
                                    {"class_names": "abc"}, {"class_names": 3}])
def test_data_facts_that_only_iterate_like_a_list_are_refused(change):
    base = {"name": "x", "image_shape": (3, 8, 8), "num_classes": 3, "class_names": ["a", "b", "c"]}
    assert DatasetInfo.from_dict(base).image_shape == (3, 8, 8)          # a pickle's tuple is fine
    with pytest.raises(ConfigError, match="malformed"):
        DatasetInfo.from_dict({**base, **change})


@pytest.mark.parametrize("change, flag", [({"projection": False}, "--projection"), ({"arch": "mlp"}, "--arch dcgan"),
                                          ({"model": "gan"}, "--model cgan")])
def test_subclasses_need_a_dcgan_cgan_with_a_projection_d(change, flag):
    recipe = Recipe(**{"model": "cgan", "arch": "dcgan", "dataset": "folder", "projection": True,
                       "subclasses": True, **change})
    assert any("--subclasses" in p and flag in p for p in recipe.problems())


def test_balance_weighs_the_classes_not_the_subclasses(tmp_path):
    from gan_pack.pytorch.config import TrainConfig
    from gan_pack.pytorch.data import Batches, load_dataset, subclass_classes

    data = named_folder(tmp_path / "data")
    config = TrainConfig.from_dict(dict(model="cgan", arch="dcgan", dataset="folder", data_dir=str(data),
                                        image_size=32, channels=4, projection=True, subclasses=True,
                                        out=str(tmp_path / "run")))
    images, labels, info = load_dataset(config.recipe, str(data))
    # sorted by name, google-* then twitter-* in each class
    assert info.subclass_counts == COUNTS and labels.tolist() == [0, 1, 2] * 2 + [3] * 2 + [4, 5, 6, 7, 8] * 2
    batches = Batches(images, labels, 2, 0, balance=subclass_classes(COUNTS)[labels])
    per_class = torch.zeros(3, dtype=torch.float64).index_add_(0, subclass_classes(COUNTS)[labels], batches.weights)
    assert torch.allclose(per_class, torch.ones(3, dtype=torch.float64))


@pytest.mark.slow                       # trains, exports and samples
def test_a_subclass_run_exports_the_choice_into_the_graph(tmp_path, capsys):
    from gan_pack.pytorch.export import load_generator
    from gan_pack.pytorch.train import train
    from gan_pack.runtime.generator import OnnxGenerator

    data = named_folder(tmp_path / "data")
    train(tiny_config(tmp_path / "run", data, model="cgan", dataset="folder", arch="dcgan", image_size=32,
                      channels=4, batch_size=6, projection=True, subclasses=True, balance=True,
                      diversity=0.4, subclass_mix=0.5))   # pairs of one subclass and two noises, and blends, train too
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["subclasses"] is True and saved["diversity"] == 0.4 and saved["subclass_mix"] == 0.5
    code, _, err = run_cli(["export", tmp_path / "run", "-o", tmp_path / "s.onnx"], capsys)
    assert code == 0, err
    code, _, err = run_cli(["export", tmp_path / "run", "-o", tmp_path / "b.onnx", "--subclass-blend", "0.3"], capsys)
    assert code == 0, err
    blended = OnnxGenerator(tmp_path / "b.onnx")
    assert blended.session.get_modelmeta().custom_metadata_map["subclass_blend"] == "0.3"
    g_torch, _ = load_generator(tmp_path / "run")
    g = OnnxGenerator(tmp_path / "s.onnx")
    assert g.info.num_classes == 3                           # the package takes class labels
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((40, g.info.noise_dim)).astype(np.float32)
    labels = np.arange(40) % 3
    chosen = g_torch.subclasses.choose(torch.from_numpy(noise), torch.from_numpy(labels))
    with torch.no_grad():
        expected = g_torch(torch.from_numpy(noise), subclasses=chosen).clamp(-1, 1).numpy()
    assert np.abs(g.generate(noise, labels) - expected).max() < 1e-4
    g_torch.subclasses.blend = 0.3
    with torch.no_grad():
        expected = g_torch(torch.from_numpy(noise), torch.from_numpy(labels)).clamp(-1, 1).numpy()
    assert np.abs(blended.generate(noise, labels) - expected).max() < 1e-4
    # fp16: the pick still reads the fp32 noise (fp16 noise * 256 would leave a few subclasses reachable)
    code, _, err = run_cli(["export", tmp_path / "run", "-o", tmp_path / "h.onnx", "--precision", "fp16"], capsys)
    assert code == 0, err
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    del ckpt["dataset"]["subclass_counts"]                   # a checkpoint someone edited
    torch.save(ckpt, tmp_path / "edited.pt")
    code, _, err = run_cli(["export", tmp_path / "edited.pt", "-o", tmp_path / "e.onnx"], capsys)
    one_error_line(code, err, "subclass count")
    assert not (tmp_path / "e.onnx").exists()
    code, _, err = run_cli(["train", "--model", "cgan", "--arch", "dcgan", "--dataset", "folder", "--data-dir", data,
                            "--subclasses", "--out", tmp_path / "bad"], capsys)
    one_error_line(code, err, "--subclasses", "--projection")


def test_the_cuda_variant_picks_the_subclass_the_fp32_model_picks(tmp_path):
    """The CUDA variant is fp16 inside, but the pick from the noise stays fp32: here each subclass's
    vector is far from the others, so a different pick would show in the images (checked on the CPU
    provider, which runs fp16 graphs too)."""
    import onnx

    from gan_pack.onnx_tools.cuda import cuda_graph
    from gan_pack.pytorch.export import Exportable, ExportOptions, write_generator
    from gan_pack.runtime.generator import OnnxGenerator

    g, metadata = separated_generator()
    options = ExportOptions(batch_sizes=(1, 7), rewrite="on")                # the rewrites the variant undoes
    write_generator(Exportable(g, 100, 3, metadata), tmp_path / "g.onnx", options)
    onnx.save(cuda_graph(onnx.load(str(tmp_path / "g.onnx"))), str(tmp_path / "half.onnx"))
    full, half = OnnxGenerator(tmp_path / "g.onnx"), OnnxGenerator(tmp_path / "half.onnx")
    noise = full.noise(300, seed=3)
    labels = np.arange(300) % 3
    assert np.abs(half.generate(noise, labels) - full.generate(noise, labels)).max() <= 2e-2


def test_a_sampling_blend_moves_each_sample_towards_a_second_subclass_of_its_class():
    """Subclasses.sample: no mix without a blend; with one, the partner is of the sample's class, the
    weight one of BLEND_STEPS steps below the blend, and G's image the one an explicit mix draws."""
    from gan_pack.pytorch.models import BLEND_STEPS

    g, _ = separated_generator()
    noise, labels = torch.randn(3000, 100), torch.arange(3000) % 3
    chosen, mix = g.subclasses.sample(noise, labels)
    assert mix is None and torch.equal(chosen, g.subclasses.choose(noise, labels))
    g.subclasses.blend = 0.6
    chosen, (partners, weights) = g.subclasses.sample(noise, labels)
    assert torch.equal(chosen, g.subclasses.choose(noise, labels))              # the first pick is unchanged
    assert torch.equal(g.subclasses.classes[partners], labels)
    steps = weights[:, 0] / 0.6 * BLEND_STEPS
    assert torch.allclose(steps, steps.round(), atol=1e-4)
    assert steps.round().min() == 0 and steps.round().max() == BLEND_STEPS - 1
    # drawn apart from the first pick: another subclass 2/3 of the time in class 0, never in class 1, 4/5 in 2
    assert abs((partners != chosen).float().mean() - (2 / 3 + 0 + 4 / 5) / 3) < 0.03
    with torch.no_grad():
        blended = g(noise[:50], labels[:50])
        assert torch.equal(blended, g(noise[:50], labels[:50], subclasses=chosen[:50],
                                      mix=(partners[:50], weights[:50])))
        assert (blended - g(noise[:50], labels[:50], subclasses=chosen[:50])).abs().max() > 0.1


def test_an_export_with_a_blend_matches_pytorch_and_its_cuda_variant_blends_alike(tmp_path):
    """The blend is in the graph: parity against the blending PyTorch G, images unlike the unblended
    export's, and the CUDA variant (fp16 inside) draws the same partners and weights from the fp32
    noise (each subclass's vector far from the others, so another pick would show)."""
    import onnx

    from gan_pack.onnx_tools.cuda import cuda_graph
    from gan_pack.pytorch.export import Exportable, ExportOptions, write_generator
    from gan_pack.runtime.generator import OnnxGenerator

    g, metadata = separated_generator()
    options = ExportOptions(batch_sizes=(1, 7), rewrite="on")
    write_generator(Exportable(g, 100, 3, metadata), tmp_path / "one.onnx", options)
    g.subclasses.blend = 1.0
    write_generator(Exportable(g, 100, 3, metadata), tmp_path / "g.onnx", options)    # proven against g, blending
    onnx.save(cuda_graph(onnx.load(str(tmp_path / "g.onnx"))), str(tmp_path / "half.onnx"))
    one, full, half = (OnnxGenerator(tmp_path / f"{n}.onnx") for n in ("one", "g", "half"))
    noise = full.noise(300, seed=3)
    labels = np.arange(300) % 3
    with torch.no_grad():
        expected = g(torch.from_numpy(noise), torch.from_numpy(labels)).clamp(-1, 1).numpy()
    assert np.abs(full.generate(noise, labels) - expected).max() < 1e-4
    assert np.abs(full.generate(noise, labels) - one.generate(noise, labels)).max() > 0.1
    assert np.abs(half.generate(noise, labels) - full.generate(noise, labels)).max() <= 2e-2


def test_subclass_blend_is_refused_out_of_range_and_on_a_run_without_subclasses(tmp_path, capsys, trained_runs):
    run = trained_runs[("cgan", "dcgan")]
    for value in ("1.5", "-0.1", "nan"):
        code, _, err = run_cli(["export", run, "-o", tmp_path / "x.onnx", "--subclass-blend", value], capsys)
        one_error_line(code, err, "--subclass-blend", "0 (off) to 1")
    code, _, err = run_cli(["export", run, "-o", tmp_path / "x.onnx", "--subclass-blend", "0.3"], capsys)
    one_error_line(code, err, "--subclass-blend", "--subclasses")
    assert not (tmp_path / "x.onnx").exists()


def test_subclass_styles_need_subclasses():
    recipe = Recipe(model="cgan", arch="dcgan", dataset="folder", projection=True, subclass_styles=True)
    assert any("--subclass-styles" in p for p in recipe.problems())
    assert not Recipe(model="cgan", arch="dcgan", dataset="folder", projection=True, subclasses=True,
                      subclass_styles=True).problems()


@pytest.mark.parametrize("change", [{"subclass_mix": -0.1}, {"subclass_mix": 1.5}, {"subclass_mix": float("nan")},
                                    {"subclass_mix": 0.5, "subclasses": False}])
def test_a_subclass_mix_is_a_weight_up_to_one_with_subclasses(change):
    recipe = Recipe(**{"model": "cgan", "arch": "dcgan", "dataset": "folder", "projection": True,
                       "subclasses": True, **change})
    assert any("--subclass-mix" in p for p in recipe.problems())
    assert not Recipe(model="cgan", arch="dcgan", dataset="folder", projection=True, subclasses=True,
                      subclass_mix=1.0).problems()
