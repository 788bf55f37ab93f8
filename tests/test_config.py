import pytest

from gan_pack.config import DatasetInfo, TrainConfig
from gan_pack.errors import ConfigError


def test_defaults_are_the_tutorial_recipe():
    c = TrainConfig()
    assert (c.lr, c.beta1, c.beta2, c.noise_dim, c.batch_size, c.arch, c.ema) == (2e-4, 0.5, 0.999, 100, 64, "mlp", True)


def test_every_problem_in_one_error():
    with pytest.raises(ConfigError) as e:
        TrainConfig(epochs=0, batch_size=-1, arch="dcgan", image_size=30, model="vae")
    message = str(e.value)
    for word in ("--epochs", "--batch-size", "--image-size", "--model"):
        assert word in message


def test_round_trip_and_unknown_keys():
    c = TrainConfig(model="cgan", arch="dcgan", image_size=32)
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="newer"):
        TrainConfig.from_dict({**c.to_dict(), "quantum": True})


def test_eval_every_needs_classifier():
    with pytest.raises(ConfigError, match="--classifier"):
        TrainConfig(eval_every=2, data_dir="x")


def test_dataset_info_round_trip():
    info = DatasetInfo("mnist", (1, 28, 28), 10, [str(i) for i in range(10)], 60000)
    assert DatasetInfo.from_dict(info.to_dict()) == info


def test_lr_decay_falls_linearly_from_its_epoch_and_never_reaches_zero():
    c = TrainConfig(epochs=10, lr_decay_from=6)
    factors = [c.lr_factor(e) for e in range(10)]
    assert factors[:6] == [1.0] * 6
    assert factors[6:] == pytest.approx([0.8, 0.6, 0.4, 0.2])
    assert TrainConfig(epochs=10).lr_factor(9) == 1.0


@pytest.mark.parametrize("start", [10, 12, -1])
def test_lr_decay_must_start_inside_the_run(start):
    with pytest.raises(ConfigError, match="--lr-decay-from"):
        TrainConfig(epochs=10, lr_decay_from=start)


@pytest.mark.parametrize("settings,word", [
    ({"mbstd": 4, "arch": "mlp"}, "--mbstd"),
    ({"mbstd": -1, "arch": "dcgan"}, "--mbstd"),
    ({"mbstd": 3, "arch": "dcgan", "batch_size": 64}, "multiple of --mbstd"),
    ({"r1": -1.0}, "--r1"),
    ({"augment": "translation,flip"}, "'flip'"),
])
def test_discriminator_options_checked(settings, word):
    with pytest.raises(ConfigError, match=word):
        TrainConfig(**settings)


def test_augment_list_is_read_loosely():
    assert TrainConfig(augment=" translation , cutout,").augmentations == ["translation", "cutout"]
    assert TrainConfig().augmentations == []
