"""The torch commands' console: train's options come from TrainConfig, and long steps say what they
do when stderr is a log file rather than a terminal."""

from dataclasses import fields

import pytest

from conftest import run_cli, tiny_config

pytestmark = pytest.mark.torch


def test_every_setting_is_an_option_with_its_default_and_help(capsys):
    """The command is built from TrainConfig: one option per field, its default the field's."""
    import typer.main

    from gan_pack.cli.app import build_app
    from gan_pack.pytorch.config import GROUPS, TrainConfig

    command = typer.main.get_command(build_app()).commands["train"]
    options = {p.name: p for p in command.params}
    defaults = {name: getattr(p.default, "value", p.default) for name, p in options.items()
                if name not in ("resume", "help")}
    assert defaults == TrainConfig().to_dict()
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0 and "--resume" in out and "cutout" in out
    for group in GROUPS.values():
        for f in fields(group):
            assert f"--{f.name.replace('_', '-')}" in out and options[f.name].help == f.metadata["help"]


def test_epochs_print_progress_lines_when_stderr_is_not_a_terminal(tmp_path, tiny_idx, capsys):
    from gan_pack.cli.train import ConsoleMonitor
    from gan_pack.pytorch.train import train

    train(tiny_config(tmp_path / "run", tiny_idx, epochs=1), monitors=[ConsoleMonitor(False, every=0)])
    lines = capsys.readouterr().err.splitlines()
    within = [line for line in lines if line.startswith("  epoch 1/1  step ")]
    assert lines[0].startswith("training cgan (mlp)") and lines[-1].startswith("epoch 1/1")
    assert len(within) >= 2 and "img/s" in within[0]


def test_export_says_each_stage_on_stderr(tmp_path, trained_runs, capsys):
    code, out, err = run_cli(["export", trained_runs[("gan", "mlp")], "-o", tmp_path / "g.onnx"], capsys)
    assert code == 0, err
    stages = err.splitlines()
    assert stages[0].startswith("... exporting with torch.onnx") and "parity against PyTorch" in stages[-1]
    assert out.startswith("parity: fp32 vs pytorch fp32 eval")
    assert "gan-pack)" in out                                     # the family it was read as


def test_the_epoch_line_gives_the_epochs_own_rate(tmp_path, tiny_idx, capsys):
    """images/s on the epoch line is the epoch's images over its time, not the log's last window."""
    import re
    import time

    from gan_pack.cli.train import ConsoleMonitor
    from gan_pack.pytorch.train import train

    config = tiny_config(tmp_path / "run", tiny_idx, epochs=1)
    started = time.monotonic()
    trainer = train(config, monitors=[ConsoleMonitor(False, every=0)])
    took = time.monotonic() - started
    line = capsys.readouterr().err.splitlines()[-1]
    rate, seconds = map(float, re.search(r"(\d+) images/s over ([\d.]+) s", line).groups())
    images = trainer.step * config.recipe.batch_size                  # the line rounds to 0.1 s and 1 image/s
    assert 0 < seconds <= took + 0.05 and abs(rate * seconds - images) <= 0.25 * images + rate * 0.05 + 1
