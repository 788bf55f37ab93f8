import json
import math

import numpy as np
import pytest

from conftest import run_cli, tiny_config, write_tiny_idx

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from gan_pack.pytorch.checkpoint import load_checkpoint
from gan_pack.pytorch.monitor import Monitor
from gan_pack.pytorch.train import build_trainer, train


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("model", ["gan", "cgan"])
@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_few_steps_train_every_preset(trained_runs, tiny_idx, model, arch):
    run = trained_runs[(model, arch)]
    records = read_metrics(run)
    assert records and all(math.isfinite(r["d_loss"]) and math.isfinite(r["g_loss"]) for r in records)
    assert {"epoch", "step", "d_x", "d_g_z", "images_per_s"} <= set(records[-1])
    ckpt = load_checkpoint(run)
    assert ckpt["step"] == 4 and ckpt["epoch"] == 1           # 64 images / batch 16
    config, info = tiny_config(run, tiny_idx, model=model, arch=arch), ckpt["dataset"]
    assert info["num_classes"] == (10 if model == "cgan" else 0)
    fresh = build_trainer(config)
    changed = [not torch.equal(fresh.generator.state_dict()[k], v) for k, v in ckpt["generator"].items()
               if v.is_floating_point()]
    assert all(changed[:2]) and any(changed)
    assert (run / "samples" / "epoch_001.png").is_file()
    saved = json.loads((run / "config.json").read_text())
    assert saved["dataset_info"]["image_shape"] == [1, 28, 28] and saved["arch"] == arch


def test_checkpoint_loads_with_weights_only(trained_runs):
    ckpt = torch.load(trained_runs[("cgan", "mlp")] / "checkpoint.pt", weights_only=True)
    assert {"generator", "generator_ema", "discriminator", "opt_g", "opt_d", "rng", "step"} <= set(ckpt)


def test_same_seed_same_losses(tmp_path, tiny_idx):
    losses = []
    for name in ("a", "b"):
        train(tiny_config(tmp_path / name, tiny_idx))
        losses.append([(r["d_loss"], r["g_loss"]) for r in read_metrics(tmp_path / name)])
    assert losses[0] == losses[1]


class Interrupted(Exception):
    pass


class StopAfterEpoch(Monitor):
    """Raise once epoch `epoch` is checkpointed, as a kill between epochs would leave the run."""

    def __init__(self, epoch: int = 1):
        self.epoch = epoch

    def on_epoch_end(self, trainer):
        if trainer.epoch == self.epoch:
            raise Interrupted
        return []


def test_resume_continues_from_saved_step(tmp_path, tiny_idx):
    """A run killed after epoch 1 and resumed, in its folder or carried in parts to another, gives
    the same weights as one that never stopped."""
    whole = train(tiny_config(tmp_path / "whole", tiny_idx, epochs=2))
    config = tiny_config(tmp_path / "cut", tiny_idx, epochs=2)
    with pytest.raises(Interrupted):
        train(config, monitors=[StopAfterEpoch()])
    assert load_checkpoint(tmp_path / "cut")["step"] == 4
    # the same cut run carried to another folder (another machine) in parts of 1 MiB
    from gan_pack.core.parts import join_run, split_run

    split_run(tmp_path / "cut", tmp_path / "parts", part_mib=1)
    join_run([tmp_path / "parts"], tmp_path / "elsewhere")
    carried = train(tiny_config(tmp_path / "elsewhere", tiny_idx, epochs=2), resume=True)
    resumed = train(config, resume=True)
    assert (resumed.epoch, resumed.step) == (2, 8) == (carried.epoch, carried.step)
    for key, value in whole.generator.state_dict().items():
        assert torch.allclose(value, resumed.generator.state_dict()[key], atol=1e-6), key
        assert torch.allclose(value, carried.generator.state_dict()[key], atol=1e-6), key
    steps = [r["step"] for r in read_metrics(tmp_path / "cut")]
    assert steps == [r["step"] for r in read_metrics(tmp_path / "whole")]


def test_lr_decay_sets_each_epochs_rates_and_resumes_onto_the_same_weights(tmp_path, tiny_idx):
    """--lr-decay-from: both optimizers take each epoch's rate (logged), the weights differ from
    a constant-rate run, and a run cut inside the decay resumes onto the uninterrupted weights."""
    decayed = dict(epochs=3, lr_decay_from=1, lr_d=4e-4)
    whole = train(tiny_config(tmp_path / "whole", tiny_idx, **decayed))
    rates = sorted({(r["epoch"], r["lr"]) for r in read_metrics(tmp_path / "whole")})
    assert rates == [(1, 2e-4), (2, pytest.approx(2e-4 * 2 / 3)), (3, pytest.approx(2e-4 / 3))]
    assert whole.nets.d_optimizer.param_groups[0]["lr"] == pytest.approx(4e-4 / 3)
    constant = train(tiny_config(tmp_path / "constant", tiny_idx, epochs=3))
    assert any(not torch.allclose(a, b) for a, b in zip(whole.generator.parameters(),
                                                         constant.generator.parameters()))
    config = tiny_config(tmp_path / "cut", tiny_idx, **decayed)
    with pytest.raises(Interrupted):
        train(config, monitors=[StopAfterEpoch(2)])
    resumed = train(config, resume=True)
    for key, value in whole.generator.state_dict().items():
        assert torch.allclose(value, resumed.generator.state_dict()[key], atol=1e-6), key


def test_save_every_writes_every_nth_epoch_and_a_cut_run_resumes_from_the_last_written(tmp_path, tiny_idx):
    """--save-every 2 over 5 epochs writes the checkpoints and grids of epochs 2, 4 and 5 (the last).
    A run stopped after epoch 3 keeps epoch 2's checkpoint, trains epoch 3 again when resumed, and
    ends on the weights and log of the run that never stopped."""
    whole = train(tiny_config(tmp_path / "whole", tiny_idx, epochs=5, save_every=2))
    grids = sorted(p.name for p in (tmp_path / "whole" / "samples").iterdir())
    assert grids == ["epoch_002.png", "epoch_004.png", "epoch_005.png"]
    config = tiny_config(tmp_path / "cut", tiny_idx, epochs=5, save_every=2)
    with pytest.raises(Interrupted):
        train(config, monitors=[StopAfterEpoch(3)])
    assert load_checkpoint(tmp_path / "cut")["epoch"] == 2
    resumed = train(config, resume=True)
    assert (resumed.epoch, resumed.step) == (5, 20)
    for key, value in whole.generator.state_dict().items():
        assert torch.allclose(value, resumed.generator.state_dict()[key], atol=1e-6), key
    assert [r["step"] for r in read_metrics(tmp_path / "cut")] == [r["step"] for r in read_metrics(tmp_path / "whole")]


def test_resume_through_cli_takes_saved_settings(tmp_path, tiny_idx, capsys):
    config = tiny_config(tmp_path / "run", tiny_idx, epochs=2)
    with pytest.raises(Interrupted):
        train(config, monitors=[StopAfterEpoch()])
    code, _, err = run_cli(["train", "--out", tmp_path / "run", "--resume"], capsys)
    assert code == 0, err
    assert load_checkpoint(tmp_path / "run")["step"] == 8


def test_folder_dataset_rgb_dcgan(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / cls / f"{i}.png")
    config = tiny_config(tmp_path / "run", tmp_path / "imgs", dataset="folder", arch="dcgan",
                         image_size=32, channels=3, batch_size=4)
    t = train(config)
    assert t.info.image_shape == (3, 32, 32) and t.info.class_names == ["cats", "dogs"]
    assert t.step == 4


# ---------------------------------------------------------------- bad input through the CLI

def assert_clean_failure(code, err, run_dir, *words):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not run_dir.exists() or not any(run_dir.iterdir())


def test_missing_data_dir_files_named(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["train", "--data-dir", tmp_path / "empty", "--out", tmp_path / "run"], capsys)
    assert_clean_failure(code, err, tmp_path / "run", "train-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def test_offline_without_data_dir_says_to_pass_one(tmp_path, capsys, monkeypatch):
    """No --data-dir and no network: the one fix is a folder of the IDX files and --data-dir (not
    "leave out --data-dir"). The download fails as torchvision's does offline."""
    from torchvision import datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(datasets, "MNIST", offline)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    code, _, err = run_cli(["train", "--out", tmp_path / "run"], capsys)
    assert_clean_failure(code, err, tmp_path / "run", "could not download mnist", "offline",
                         "train-images-idx3-ubyte", "pass --data-dir FOLDER")
    assert "leave out --data-dir" not in err


def test_truncated_idx_file(tmp_path, capsys):
    data = write_tiny_idx(tmp_path / "data", gz=False)
    path = data / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    code, _, err = run_cli(["train", "--data-dir", data, "--out", tmp_path / "run"], capsys)
    assert_clean_failure(code, err, tmp_path / "run", "truncated")


def test_non_idx_file(tmp_path, capsys):
    data = write_tiny_idx(tmp_path / "data", gz=False)
    (data / "train-labels-idx1-ubyte").write_text("hello, not an IDX file")
    code, _, err = run_cli(["train", "--data-dir", data, "--out", tmp_path / "run"], capsys)
    assert_clean_failure(code, err, tmp_path / "run", "not an IDX file")


@pytest.mark.parametrize("flags,word", [
    (["--arch", "dcgan", "--image-size", "30"], "--image-size"),
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "-4"], "--batch-size"),
    (["--arch", "dcgan", "--mbstd", "3"], "--mbstd"),
    (["--augment", "flip"], "--augment"),
])
def test_bad_settings(tmp_path, tiny_idx, capsys, flags, word):
    code, _, err = run_cli(["train", "--data-dir", tiny_idx, "--out", tmp_path / "run", *flags], capsys)
    assert_clean_failure(code, err, tmp_path / "run", word)


def test_every_bad_setting_in_one_line(tmp_path, tiny_idx, capsys):
    code, _, err = run_cli(["train", "--data-dir", tiny_idx, "--out", tmp_path / "run",
                            "--epochs", "0", "--batch-size", "0"], capsys)
    assert_clean_failure(code, err, tmp_path / "run", "--epochs", "--batch-size")


def test_resume_without_checkpoint(tmp_path, tiny_idx, capsys):
    code, _, err = run_cli(["train", "--data-dir", tiny_idx, "--out", tmp_path / "run", "--resume"], capsys)
    assert_clean_failure(code, err, tmp_path / "run", "checkpoint.pt")


def test_resume_with_different_config(tmp_path, tiny_idx, capsys):
    out = tmp_path / "run"
    train(tiny_config(out, tiny_idx))
    before = (out / "checkpoint.pt").read_bytes()
    code, _, err = run_cli(["train", "--out", out, "--resume", "--arch", "dcgan"], capsys)
    assert code == 2 and "arch" in err and "Traceback" not in err
    assert (out / "checkpoint.pt").read_bytes() == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(tmp_path, tiny_idx, capsys):
    code, _, err = run_cli(["train", "--data-dir", tiny_idx, "--out", tmp_path / "run", "--device", "cuda"], capsys)
    assert_clean_failure(code, err, tmp_path / "run", "--device cuda")


def test_empty_image_folder(tmp_path, capsys):
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    code, _, err = run_cli(["train", "--dataset", "folder", "--data-dir", tmp_path / "imgs",
                            "--out", tmp_path / "run"], capsys)
    assert_clean_failure(code, err, tmp_path / "run", "holds no images")


def test_existing_run_needs_resume(tmp_path, tiny_idx, capsys):
    out = tmp_path / "run"
    train(tiny_config(out, tiny_idx))
    code, _, err = run_cli(["train", "--data-dir", tiny_idx, "--out", out], capsys)
    assert code == 2 and "--resume" in err
