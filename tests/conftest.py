"""Shared fixtures: tiny IDX data sets written by the tests, tiny trained runs and their exports.

Nothing here needs ../shared: tests that want the real MNIST look for GANPACK_DATA_DIR.

What a test needs beyond the base install is a mark (torch, onnx, serve), set here from the folder it
lives in (tests/pytorch, tests/onnx_tools, tests/serve mirror the subpackages that need them) and from
the fixtures it uses (a trained run needs torch); a test elsewhere that needs more marks itself. The
torch-free runs select by mark: `pytest -m "not torch and not onnx and not serve"` in the base install.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from gan_pack.core.idx import write_idx

ROOT = Path(__file__).resolve().parents[1]
EXPORTED = ROOT / "exported"
HAS_TORCH = importlib.util.find_spec("torch") is not None
FOLDER_MARKS = {"pytorch": "torch", "onnx_tools": "onnx", "serve": "serve"}
FOLDER_NEEDS = {"pytorch": "torch", "onnx_tools": "onnx", "serve": "starlette"}
# An install without an extra does not collect the folder of tests that needs it.
collect_ignore = [folder for folder, module in FOLDER_NEEDS.items() if importlib.util.find_spec(module) is None]
FIXTURE_MARKS = {"trained_runs": "torch", "exported_models": "torch", "tiny_classifier": "torch",
                 "image_models": "torch"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        folder = Path(item.fspath).relative_to(ROOT / "tests").parts[0]
        needs = {FOLDER_MARKS.get(folder)} | {FIXTURE_MARKS.get(name) for name in item.fixturenames}
        for mark in sorted(needs - {None}):
            item.add_marker(getattr(pytest.mark, mark))


def pytest_collection_finish(session):
    """torch.onnx.export (dynamo) reads onnxscript's torchlib, the source of about 500 functions, on
    every call, to build its table of ops: 0.4-0.6 s of each tiny export on 2 cores. The table is
    the same for the whole process, so where the collected tests have imported torch the suite reads
    it once. Every export still builds its own registry from it; only the reading is shared. Where
    this torch or onnxscript keeps the function elsewhere, nothing changes."""
    if "torch" not in sys.modules:
        return
    with contextlib.suppress(Exception):
        from torch.onnx._internal._lazy_import import onnxscript_apis

        reader = onnxscript_apis.get_torchlib_ops
        if not hasattr(reader, "cache_info"):
            onnxscript_apis.get_torchlib_ops = functools.cache(reader)


def synthetic_digits(n: int, seed: int = 0, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 images (n, size, size): a bright bar whose position encodes the label, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.integers(0, 40, size=(n, size, size)).astype(np.uint8)
    for i, label in enumerate(labels):
        row = 2 + label * (size - 4) // 10
        images[i, row:row + 2, 4:size - 4] = 255
    return images, labels.astype(np.uint8)


def write_tiny_idx(folder: Path, n_train: int = 64, n_test: int = 40, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_digits(n, seed)
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", labels)
    return folder


@pytest.fixture(scope="session")
def tiny_idx(tmp_path_factory) -> Path:
    return write_tiny_idx(tmp_path_factory.mktemp("tiny_mnist"))


def tiny_config(out: Path, data_dir: Path, **overrides):
    from gan_pack.pytorch.config import TrainConfig

    settings = dict(model="cgan", arch="mlp", epochs=1, batch_size=16, data_dir=str(data_dir),
                    out=str(out), device="cpu", log_every=2, width=8, seed=0)
    settings.update(overrides)
    return TrainConfig.from_dict(settings)


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory, tiny_idx) -> dict[tuple[str, str], Path]:
    """One tiny trained run per (model, arch): gan/cgan x mlp/dcgan."""
    if not HAS_TORCH:
        pytest.skip("needs the [train] extra (torch)")
    from gan_pack.pytorch.train import train

    runs = {}
    root = tmp_path_factory.mktemp("runs")
    for model in ("gan", "cgan"):
        for arch in ("mlp", "dcgan"):
            out = root / f"{model}-{arch}"
            train(tiny_config(out, tiny_idx, model=model, arch=arch))
            runs[(model, arch)] = out
    return runs


@pytest.fixture(scope="session")
def exported_models(tmp_path_factory, trained_runs) -> dict[tuple[str, str], Path]:
    from gan_pack.pytorch.export import ExportOptions, export_generator

    root = tmp_path_factory.mktemp("exported")
    models = {}
    for key, run in trained_runs.items():
        path = root / f"{key[0]}-{key[1]}.onnx"
        export_generator(run, path, ExportOptions(batch_sizes=(1, 7, 300), rewrite="on"))
        models[key] = path
    return models


def shipped(name: str) -> Path:
    """A shipped model file: a generator's from its package folder (exported/NAME/NAME.onnx), a
    classifier's from exported/."""
    package = EXPORTED / name.removesuffix(".onnx")
    path = package / name if package.is_dir() else EXPORTED / name
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    return path


def real_data_dir(dataset: str = "mnist") -> Path:
    """The real data set from GANPACK_DATA_DIR (a folder holding mnist/ and fashion-mnist/, or the
    data set's own folder); skip with the reason when it is absent."""
    base = os.environ.get("GANPACK_DATA_DIR")
    if not base:
        pytest.skip("set GANPACK_DATA_DIR to the folder of the real IDX files to run this test")
    for candidate in (Path(base) / dataset, Path(base)):
        if (candidate / "t10k-labels-idx1-ubyte.gz").exists() or (candidate / "t10k-labels-idx1-ubyte").exists():
            return candidate
    pytest.skip(f"GANPACK_DATA_DIR={base} holds no {dataset} IDX files")


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run the real console entry point in-process; returns (exit code, stdout, stderr)."""
    import sys

    from gan_pack.cli.app import main

    argv = sys.argv
    sys.argv = ["ganpack", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(code, err, *words):
    """The standard for bad input: exit 2, one line on stderr starting 'error:', no traceback."""
    assert code == 2 and "Traceback" not in err, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for word in words:
        assert word in lines[0], (word, lines[0])


def ganpack_command(*args) -> list[str]:
    """The command line of a separate `ganpack` process (this interpreter, this checkout)."""
    import sys

    return [sys.executable, "-m", "gan_pack", *map(str, args)]


def ganpack_process(*args, timeout: float = 300, **kwargs):
    """Run `ganpack ARGS` as its own process; returns the CompletedProcess (text output)."""
    import subprocess

    return subprocess.run(ganpack_command(*args), capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          **kwargs)


def write_rgba_folder(folder: Path, per_class: int = 8, side: int = 32, seed: int = 0) -> Path:
    """A folder of transparent PNGs in two classes (discs, squares), in random colours on a fully
    transparent background whose hidden colour is red: what a sticker or emoji set looks like."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    for name in ("discs", "squares"):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            cy, cx, r = rng.integers(side // 3, 2 * side // 3, 2).tolist() + [int(rng.integers(side // 6, side // 3))]
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r if name == "discs" else \
                (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
            pixels = np.zeros((side, side, 4), np.uint8)
            pixels[..., 0] = 255                                          # the hidden colour
            pixels[inside] = [*rng.integers(0, 255, 3).tolist(), 255]
            Image.fromarray(pixels, "RGBA").save(folder / name / f"{i}.png")
    return folder


@contextlib.contextmanager
def serving(paths, **options):
    """`ganpack serve`'s server (its socket, protocol and limits) on a free port of 127.0.0.1, in a
    thread, for the models at `paths`; yields its host:port."""
    import threading
    import time

    from gan_pack.serve.app import create_app, listen, make_server
    from gan_pack.serve.layout import ServeOptions, load_models

    settings = ServeOptions(**options)
    sock = listen("127.0.0.1", 0)
    server = make_server(create_app(load_models(list(paths), "cpu"), settings), settings.read_timeout_s)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def image_models(tmp_path_factory) -> dict[str, Path]:
    """Exported 2x upscalers of spandrel's classes with seeded random weights: a Compact (any size) and a
    SAFMN (height and width multiples of 8); and a Compact's state dict, weights.pth, not exported."""
    pytest.importorskip("spandrel")
    import torch
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.SAFMN import SAFMN

    from gan_pack.pytorch.image_export import write_image_model
    from gan_pack.pytorch.image_models import exportable_spandrel

    root = tmp_path_factory.mktemp("image_models")
    torch.manual_seed(0)
    models = {}
    for name, module in (("compact", Compact(num_feat=16, num_conv=4, upscale=2)),
                         ("safmn", SAFMN(dim=8, n_blocks=1, upscaling_factor=2))):
        write_image_model(exportable_spandrel(module.state_dict(), f"{name}.pth"), root / f"{name}.onnx")
        models[name] = root / f"{name}.onnx"
    torch.save(Compact(num_feat=8, num_conv=2, upscale=2).state_dict(), root / "weights.pth")
    models["root"] = root
    return models
