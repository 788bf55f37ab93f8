"""DistributedDataParallel on CPU: two processes with the gloo backend, as torchrun starts them."""

import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import ROOT, tiny_config

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_as_rank(rank: int, world_size: int, port: int, config, result_dir: str) -> None:
    """One process of a distributed run; saves its own final weights for the test to compare."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from gan_pack.pytorch.train import train

    t = train(config)
    torch.save({"generator": t.generator.state_dict(), "discriminator": t.discriminator.state_dict(),
                "step": t.step}, f"{result_dir}/rank{rank}.pt")


@pytest.mark.slow
def test_two_processes_keep_identical_weights(tmp_path, tiny_idx):
    """Each process draws its own noise and its own half of every batch; DDP's averaged
    gradients keep G and D identical across processes (without it they would drift apart)."""
    config = tiny_config(tmp_path / "run", tiny_idx, epochs=1)
    torch.multiprocessing.spawn(train_as_rank, args=(2, free_port(), config, str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0]["step"] == ranks[1]["step"] == 4                 # 64 images / global batch 16
    for name in ("generator", "discriminator"):
        for key, value in ranks[0][name].items():
            if "running" in key or "num_batches" in key:    # BatchNorm statistics: each process its own
                continue
            assert torch.allclose(value.float(), ranks[1][name][key].float(), atol=1e-6), (name, key)
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    for key, value in saved["generator"].items():
        if "running" not in key:
            assert torch.equal(value, ranks[0]["generator"][key]), key


@pytest.mark.slow
def test_torchrun_cli_writes_once_and_resumes_in_one_process(tmp_path, tiny_idx):
    out = tmp_path / "run"
    args = ["--model", "cgan", "--device", "cpu", "--batch-size", "16", "--epochs", "1", "--log-every", "2",
            "--data-dir", tiny_idx, "--out", out]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "gan_pack", "train", *map(str, args)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("epoch 1/1") == 1                         # rank 0 alone reports
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]                      # one line per interval, not two
    resumed = subprocess.run([sys.executable, "-m", "gan_pack", "train", "--out", str(out), "--resume",
                              "--epochs", "2"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 8


def test_batch_that_does_not_split_is_refused(tmp_path, tiny_idx):
    from gan_pack.errors import DataError
    from gan_pack.pytorch.data import DeviceBatches

    with pytest.raises(DataError, match="--batch-size 15 does not split evenly over 2"):
        DeviceBatches(torch.zeros(64, 1, 28, 28, dtype=torch.uint8), torch.zeros(64), 15,
                      torch.device("cpu"), rank=1, world_size=2)


def test_mbstd_groups_must_fit_each_process_batch():
    """--batch-size 8 --mbstd 4 is fine on one process but gives each of 4 processes 2 images."""
    from gan_pack.errors import ConfigError
    from gan_pack.pytorch.config import Recipe
    from gan_pack.pytorch.distributed import World
    from gan_pack.pytorch.train import check_process_batch

    recipe = Recipe(arch="dcgan", width=8, batch_size=8, mbstd=4)
    check_process_batch(recipe, World())
    with pytest.raises(ConfigError, match="multiple of 16"):
        check_process_batch(recipe, World(rank=0, size=4, local_rank=0))
