
import pytest

from gan_pack.errors import ConfigError
from gan_pack.pytorch.config import RESUMABLE_GROUPS, Recipe, Schedule, TrainConfig, setting_names
from gan_pack.pytorch.data_facts import DatasetInfo


def flat(**settings) -> TrainConfig:
    return TrainConfig.from_dict(settings)


def test_defaults_are_the_tutorial_recipe():
    r = TrainConfig().recipe
    assert (r.lr, r.beta1, r.beta2, r.noise_dim, r.batch_size, r.arch, r.ema) == \
        (2e-4, 0.5, 0.999, 100, 64, "mlp", True)


def test_every_problem_in_one_error():
    """Problems of every group (recipe, schedule, run, evaluation) come in one error."""
    with pytest.raises(ConfigError) as e:
        flat(epochs=0, batch_size=-1, arch="dcgan", image_size=30, model="vae", log_every=0, eval_n=1)
    message = str(e.value)
    for word in ("--epochs", "--batch-size", "--image-size", "--model", "--log-every", "--eval-n"):
        assert word in message


def test_round_trip_and_unknown_keys():
    c = flat(model="cgan", arch="dcgan", image_size=32, epochs=3, device="cpu", eval_n=100)
    assert TrainConfig.from_dict(c.to_dict()) == c
    assert c.recipe.image_size == 32 and c.schedule.epochs == 3 and c.run.device == "cpu"
    assert c.evaluation.eval_n == 100
    with pytest.raises(ConfigError, match="newer"):
        TrainConfig.from_dict({**c.to_dict(), "quantum": True})


def test_a_saved_run_older_than_a_setting_reads_with_its_default():
    saved = {k: v for k, v in flat(model="cgan").to_dict().items() if k not in ("r1", "lr_decay_from")}
    config = TrainConfig.from_dict(saved)
    assert config.recipe.r1 == 0.0 and config.schedule.lr_decay_from is None and config.conditional


def test_setting_names_are_unique_across_groups():
    names = setting_names()
    assert len(names) == len(set(names)) == len(TrainConfig().to_dict())


def test_what_resume_may_change_follows_from_the_groups():
    resumable = set(setting_names(RESUMABLE_GROUPS))
    assert {"epochs", "lr_decay_from", "device", "data_dir", "out", "log_every", "save_every", "tensorboard",
            "fast", "channels_last", "eval_every", "classifier", "eval_n"} == resumable
    assert not resumable & set(setting_names(("recipe",)))


def test_written_epochs_are_every_save_every_each_evaluation_and_the_last():
    config = flat(epochs=7, save_every=3, eval_every=2, classifier="c.onnx", data_dir="x")
    assert [e for e in range(1, 8) if config.writes(e)] == [2, 3, 4, 6, 7]
    assert all(flat(epochs=3).writes(e) for e in (1, 2, 3))
    with pytest.raises(ConfigError, match="--save-every must be at least 1"):
        flat(save_every=0)


def test_eval_every_needs_classifier():
    with pytest.raises(ConfigError, match="--classifier"):
        flat(eval_every=2, data_dir="x")


def test_eval_every_needs_data_dir_across_groups():
    with pytest.raises(ConfigError, match="--data-dir"):
        flat(eval_every=2, classifier="c.onnx")


def test_dataset_info_round_trip():
    info = DatasetInfo("mnist", (1, 28, 28), 10, [str(i) for i in range(10)], 60000)
    assert DatasetInfo.from_dict(info.to_dict()) == info


def test_lr_decay_falls_linearly_from_its_epoch_and_never_reaches_zero():
    s = flat(epochs=10, lr_decay_from=6).schedule
    factors = [s.lr_factor(e) for e in range(10)]
    assert factors[:6] == [1.0] * 6
    assert factors[6:] == pytest.approx([0.8, 0.6, 0.4, 0.2])
    assert Schedule(epochs=10).lr_factor(9) == 1.0


@pytest.mark.parametrize("start", [10, 12, -1])
def test_lr_decay_must_start_inside_the_run(start):
    with pytest.raises(ConfigError, match="--lr-decay-from"):
        flat(epochs=10, lr_decay_from=start)


@pytest.mark.parametrize("settings,word", [
    ({"mbstd": 4, "arch": "mlp"}, "--mbstd"),
    ({"mbstd": -1, "arch": "dcgan"}, "--mbstd"),
    ({"mbstd": 3, "arch": "dcgan", "batch_size": 64}, "multiple of --mbstd"),
    ({"r1": -1.0}, "--r1"),
    ({"diversity": -0.1}, "--diversity"),
    ({"diversity": 2.5}, "--diversity"),
    ({"diversity": float("nan")}, "--diversity"),
    ({"diversity": 0.4, "batch_size": 1}, "--diversity"),
    ({"diversity": 0.4, "model": "sr", "dataset": "folder", "image_size": 64}, "--diversity"),
    ({"min_width": 32, "arch": "fastgan"}, "--min-width"),
    ({"min_width": -1, "arch": "dcgan"}, "--min-width"),
    ({"refine_from": 16, "arch": "mlp"}, "--refine-from"),
    ({"refine_from": -1, "arch": "dcgan"}, "--refine-from"),
    ({"refine_from": 65, "arch": "dcgan"}, "--refine-from"),
    ({"projection": True, "arch": "dcgan", "model": "gan"}, "--projection"),
    ({"projection": True, "arch": "dcgan", "model": "cgan", "late_label": True}, "--projection"),
    ({"augment": "translation,flip"}, "'flip'"),
    ({"lr": float("nan")}, "--lr"),
])
def test_discriminator_options_checked(settings, word):
    with pytest.raises(ConfigError, match=word):
        flat(**settings)


def test_augment_list_is_read_loosely():
    assert Recipe(augment=" translation , cutout,").augmentations == ["translation", "cutout"]
    assert Recipe().augmentations == []
