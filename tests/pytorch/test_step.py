import math

import pytest

from conftest import tiny_config

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from gan_pack.pytorch.data import DeviceBatches, LoaderBatches
from gan_pack.pytorch.step import EagerStep
from gan_pack.pytorch.train import train


def max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa)


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_fast_and_plain_paths_train_the_same_weights(tmp_path, tiny_idx, arch):
    """--fast (data on the device, fused Adam) and --no-fast (DataLoader, foreach Adam) are one
    recipe: two epochs from the same seed end at the same weights, to float32 rounding."""
    fast, plain = (train(tiny_config(tmp_path / str(f), tiny_idx, arch=arch, fast=f, epochs=2))
                   for f in (True, False))
    assert isinstance(fast.batches, DeviceBatches) and isinstance(plain.batches, LoaderBatches)
    assert fast.nets.g_optimizer.defaults["fused"] and not plain.nets.g_optimizer.defaults["fused"]
    for name in ("generator", "discriminator"):
        assert max_difference(getattr(fast, name), getattr(plain, name)) < 1e-5, name
    assert max_difference(fast.ema.model, plain.ema.model) < 1e-5
    other_seed = train(tiny_config(tmp_path / "seed1", tiny_idx, arch=arch, epochs=2, seed=1))
    assert max_difference(fast.generator, other_seed.generator) > 1e-3    # the check can fail


def test_cpu_runs_eager_steps_and_leaves_d_trainable(tmp_path, tiny_idx):
    t = train(tiny_config(tmp_path / "run", tiny_idx))
    assert isinstance(t.run_step, EagerStep) and isinstance(t.new_step(), EagerStep)
    assert all(p.requires_grad for p in t.discriminator.parameters())
    assert t.ema.updates == t.step == 4


def test_bf16_autocast_trains_close_to_fp32(tmp_path, tiny_idx):
    fp32 = train(tiny_config(tmp_path / "fp32", tiny_idx))
    bf16 = train(tiny_config(tmp_path / "bf16", tiny_idx, bf16=True))
    difference = max_difference(fp32.generator, bf16.generator)
    assert 0 < difference < 0.05
    assert all(math.isfinite(float(p.detach().sum())) for p in bf16.generator.parameters())


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")


@needs_cuda
@pytest.mark.parametrize("arch,extra", [("mlp", {}), ("dcgan", {}),
                                        ("dcgan", {"lr_decay_from": 1, "batch_size": 8}),
                                        ("dcgan", {"mbstd": 4, "r1": 1.0, "augment": "translation,cutout",
                                                   "batch_size": 8})])
def test_cuda_graph_replays_the_eager_step(tmp_path, tiny_idx, arch, extra, monkeypatch):
    """On a GPU, --fast records the step as a CUDA graph after 3 eager steps; replaying it must
    give the weights that running the same step eagerly gives (and --no-fast, to rounding).
    With --lr-decay-from the graph is recorded once and reads each epoch's rates from the device,
    and the checkpoint holds them as floats."""
    from gan_pack.pytorch.checkpoint import load_checkpoint
    from gan_pack.pytorch.step import GraphedStep

    captures = []
    capture = GraphedStep._capture
    monkeypatch.setattr(GraphedStep, "_capture", lambda self, index: (captures.append(1), capture(self, index)))

    # cuDNN's default convolution algorithms add with atomics in any order, and TF32 rounds
    # differently per algorithm: over a dozen GAN steps either drifts two identical runs apart.
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)

    def run(name, **settings):
        return train(tiny_config(tmp_path / name, tiny_idx, arch=arch, device="cuda", epochs=3,
                                 **extra, **settings))

    graphed = run("graph")
    assert isinstance(graphed.run_step, GraphedStep) and graphed.run_step.graph is not None
    assert graphed.nets.g_optimizer.defaults["capturable"] and len(captures) == 1
    rate = graphed.nets.g_optimizer.param_groups[0]["lr"]
    assert isinstance(rate, torch.Tensor) and rate.device.type == "cuda"
    assert float(rate) == pytest.approx(2e-4 / 3 if "lr_decay_from" in extra else 2e-4)
    saved = load_checkpoint(tmp_path / "graph")["opt_g"]["param_groups"][0]["lr"]
    assert type(saved) is float and saved == pytest.approx(float(rate))
    plain = run("plain", fast=False)
    monkeypatch.setattr("gan_pack.pytorch.train.make_step", lambda nets, settings, *rest: EagerStep(nets, settings))
    eager = run("eager")
    assert isinstance(eager.run_step, EagerStep)
    for name in ("generator", "discriminator"):
        to_eager = max_difference(getattr(graphed, name), getattr(eager, name))
        to_plain = max_difference(getattr(graphed, name), getattr(plain, name))
        assert to_eager < 1e-5 and to_plain < 1e-4, (name, to_eager, to_plain)
    assert max_difference(graphed.ema.model, eager.ema.model) < 1e-5


def test_a_fast_run_resumes_on_the_plain_path(tmp_path, tiny_idx):
    """The optimizer flags (fused, capturable) are this run's, not the checkpoint's."""
    from gan_pack.pytorch.checkpoint import load_checkpoint

    train(tiny_config(tmp_path / "run", tiny_idx, fast=True))
    resumed = train(tiny_config(tmp_path / "run", tiny_idx, fast=False, epochs=2), resume=True)
    assert resumed.step == 8 and not resumed.nets.g_optimizer.param_groups[0]["fused"]
    steps = [s["step"] for s in resumed.nets.g_optimizer.state.values()]
    assert all(s.device.type == "cpu" and float(s) == 8 for s in steps)
    assert load_checkpoint(tmp_path / "run")["epoch"] == 2


def test_r1_penalty_of_a_linear_critic_is_its_squared_weight_norm():
    from gan_pack.pytorch.step import r1_penalty

    w = torch.randn(1, 5, 5)
    real = torch.randn(6, 1, 5, 5, requires_grad=True)
    logits = (real * w).sum(dim=(1, 2, 3)) + 3.0              # gradient w at every image
    assert torch.allclose(r1_penalty(logits, real), w.square().sum())
    quadratic = (real ** 2).sum(dim=(1, 2, 3))                 # gradient 2x: penalty mean 4|x|^2
    assert torch.allclose(r1_penalty(quadratic, real), 4 * real.detach().square().sum(dim=(1, 2, 3)).mean())


def test_diversity_penalty_is_its_hinge_for_copies_and_zero_for_distant_pairs():
    from gan_pack.pytorch.step import diversity_penalty

    first = torch.zeros(4, 1, 3, 3, requires_grad=True)
    second = torch.zeros(4, 1, 3, 3)
    same = diversity_penalty(first, second, 0.4)
    assert float(same.detach()) == pytest.approx(0.4)                     # the noise changed nothing: full hinge
    same.backward()
    assert first.grad is not None and float(first.grad.abs().sum()) == 0   # |0| has no slope: no push
    apart = torch.full((4, 1, 3, 3), 0.1, requires_grad=True)
    near = diversity_penalty(apart, second, 0.4)
    assert float(near.detach()) == pytest.approx(0.3)
    near.backward()
    assert bool((apart.grad < 0).all())                           # descending moves the pair apart
    assert float(diversity_penalty(torch.full((4, 1, 3, 3), 0.5), second, 0.4)) == 0
    mixed = torch.cat([torch.zeros(2, 1, 3, 3), torch.full((2, 1, 3, 3), 1.0)])
    assert float(diversity_penalty(mixed, second, 0.4)) == pytest.approx(0.2)   # per pair, then averaged


def test_diversity_counts_no_speckle_only_differences_that_survive_pooling():
    from gan_pack.pytorch.config import DIVERSITY_SIDE
    from gan_pack.pytorch.step import diversity_penalty

    side = 4 * DIVERSITY_SIDE
    checks = (torch.arange(side)[:, None] + torch.arange(side)[None, :]) % 2 * 2 - 1.0   # +-1 speckle
    speckle, plain = checks.expand(2, 4, side, side), torch.zeros(2, 4, side, side)
    assert float((speckle - plain).abs().mean()) == 1                 # a full pixel difference...
    assert float(diversity_penalty(speckle, plain, 0.4)) == pytest.approx(0.4)   # ...that pays nothing off
    shifted = torch.full((2, 4, side, side), 0.5)                     # a change of colour survives
    assert float(diversity_penalty(shifted, plain, 0.4)) == 0


@pytest.mark.slow                       # two 4-epoch trainings; the wiring is also in the next test
def test_diversity_trains_the_noise_to_matter_within_a_label(tmp_path, tiny_idx):
    """Two samples with one label and two noises differ more after training with --diversity than
    after the same steps without it, from the same start."""
    def spread(t):
        g, draw = t.generator.eval(), torch.Generator().manual_seed(0)
        with torch.no_grad():
            labels = torch.arange(4).repeat(4)
            a, b = (g(torch.randn(16, 100, generator=draw), labels) for _ in range(2))
        return float((a - b).abs().mean())

    base = dict(arch="dcgan", model="cgan", batch_size=8, epochs=4, lr=1e-3)
    plain = spread(train(tiny_config(tmp_path / "plain", tiny_idx, **base)))
    pushed = spread(train(tiny_config(tmp_path / "pushed", tiny_idx, **base, diversity=2.0)))
    assert pushed > plain * 1.5, (plain, pushed)


def test_r1_mbstd_and_augment_train_and_change_the_weights(tmp_path, tiny_idx):
    """Each D option changes what one run learns (so each is wired in), and the run stays finite."""
    base = dict(arch="dcgan", batch_size=8, epochs=1)
    plain = train(tiny_config(tmp_path / "plain", tiny_idx, **base))
    for name, option in {"r1": {"r1": 10.0}, "mbstd": {"mbstd": 4},
                         "augment": {"augment": "translation,cutout"}, "diversity": {"diversity": 0.4}}.items():
        t = train(tiny_config(tmp_path / name, tiny_idx, **base, **option))
        assert max_difference(plain.generator, t.generator) > 1e-4, name
        assert all(math.isfinite(float(p.detach().sum())) for p in t.discriminator.parameters()), name
