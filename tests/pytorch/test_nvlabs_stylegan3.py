"""NVlabs StyleGAN3 pickles (T and R): rebuilt in standard ops from the records, held to a clean-room
network's naive forward (Fourier input, grouped modulated convolutions, filtered_lrelu by zero
insertion), exported with psi and labels as graph inputs."""

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

sys.path.insert(0, str(Path(__file__).parent))
import nvlabs_format as nf  # noqa: E402
import nvlabs_format3 as nf3  # noqa: E402

from conftest import one_error_line, run_cli  # noqa: E402
from gan_pack.errors import CheckpointError  # noqa: E402
from gan_pack.pytorch.network_pickle import read_network_pickle  # noqa: E402
from gan_pack.pytorch.nvlabs import nvlabs_config  # noqa: E402
from gan_pack.pytorch.nvlabs_stylegan3 import rebuild_stylegan3  # noqa: E402


def snapshot(path, g):
    nf.dump_snapshot(path, {"G": g, "D": None, "G_ema": g})
    return path


@pytest.mark.parametrize("radial,c_dim", [(False, 0), (True, 0), (False, 4)])
def test_the_rebuilt_stylegan3_computes_what_the_pickled_one_does(tmp_path, radial, c_dim):
    g = nf3.small_generator(seed=1, c_dim=c_dim, radial=radial)
    record = read_network_pickle(snapshot(tmp_path / "s.pkl", g))["G_ema"]
    assert nvlabs_config(record) == ("stylegan3-r" if radial else "stylegan3-t")
    net, facts = rebuild_stylegan3(record, "s.pkl")
    assert facts["layers"] == 3
    for batch in (1, 7):
        z = np.random.default_rng(batch).standard_normal((batch, 32), dtype=np.float32)
        labels = np.arange(batch) % c_dim if c_dim else None
        for psi in (1.0, 0.7):
            reference = nf.images(g, z, labels, psi)
            assert np.abs(reference).mean() > 0.05
            args = [torch.from_numpy(z)] + ([torch.from_numpy(labels)] if c_dim else []) + [torch.full((batch,), psi)]
            with torch.no_grad():
                assert np.abs(net(*args).numpy() - reference).max() < 1e-5


@pytest.mark.slow                       # a whole export with parity and timing
def test_export_detects_stylegan3_and_matches(tmp_path, capsys):
    g = nf3.small_generator(seed=2, radial=True)
    session, path = nf.exported_session(g, tmp_path, capsys, "nvlabs-stylegan3")
    z = np.random.default_rng(5).standard_normal((7, 32), dtype=np.float32)
    for psi in (1.0, 0.7):
        images = session.run(["images"], {"noise": z, "psi": np.full(7, psi, np.float32)})[0]
        assert np.abs(images - nf.images(g, z, None, psi)).max() < 1e-3
    code, _, err = run_cli(["export", path, "-o", tmp_path / "x.onnx", "--noise-mode", "const"], capsys)
    one_error_line(code, err, "nvlabs-stylegan3", "does not take --noise-mode")


def test_records_whose_sizes_do_not_meet_are_refused(tmp_path):
    g = nf3.small_generator(seed=3)
    layer = getattr(g.synthesis, g.synthesis.layer_names[1])
    layer.padding = [layer.padding[0] + 2] + layer.padding[1:]
    record = read_network_pickle(snapshot(tmp_path / "s.pkl", g))["G_ema"]
    with pytest.raises(CheckpointError, match="do not describe a 16 px generator"):
        rebuild_stylegan3(record, "s.pkl")
    g = nf3.small_generator(seed=3)
    getattr(g.synthesis, g.synthesis.layer_names[0]).up_factor = 9
    record = read_network_pickle(snapshot(tmp_path / "t.pkl", g))["G_ema"]
    with pytest.raises(CheckpointError, match="up_factor is '9', not a whole number in 1..4"):
        rebuild_stylegan3(record, "t.pkl")
