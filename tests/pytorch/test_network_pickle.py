"""NVlabs network pickles: read as data, rebuilt by gan_pack's own code, exported, held to a clean-room
network's naive forward; hostile pickles refused with nothing of them run (the same files run their
payload through pickle.load, so each test can fail)."""

import os
import pickle
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

sys.path.insert(0, str(Path(__file__).parent))
import nvlabs_format as nf  # noqa: E402

from conftest import one_error_line, run_cli  # noqa: E402
from gan_pack.errors import CheckpointError  # noqa: E402
from gan_pack.pytorch.network_pickle import PersistentObject, read_network_pickle  # noqa: E402
from gan_pack.pytorch.nvlabs_stylegan2 import rebuild_stylegan2  # noqa: E402


def snapshot(path, g, **kwargs):
    nf.dump_snapshot(path, {"G": g, "D": None, "G_ema": g}, **kwargs)
    return path


def rebuilt_images(g_record, z, labels, psi, noise_mode="const"):
    net, _ = rebuild_stylegan2(g_record, noise_mode, "test")
    args = [torch.from_numpy(z)] + ([torch.from_numpy(labels)] if labels is not None else [])
    with torch.no_grad():
        return net(*args, torch.full((len(z),), psi)).numpy()


@pytest.mark.parametrize("architecture,c_dim", [("skip", 0), ("skip", 5), ("resnet", 0), ("orig", 3)])
def test_the_rebuilt_network_computes_what_the_pickled_one_does(tmp_path, architecture, c_dim):
    g = nf.small_generator(seed=1, c_dim=c_dim, architecture=architecture)
    record = read_network_pickle(snapshot(tmp_path / "s.pkl", g))["G_ema"]
    assert isinstance(record, PersistentObject) and record.class_name == "Generator"
    for batch in (1, 7):
        z = np.random.default_rng(batch).standard_normal((batch, 32), dtype=np.float32)
        labels = np.arange(batch) % c_dim if c_dim else None
        for psi in (1.0, 0.7):
            reference = nf.images(g, z, labels, psi)
            assert np.abs(reference).mean() > 0.05                 # images, not a blank
            assert np.abs(rebuilt_images(record, z, labels, psi) - reference).max() < 1e-5


def test_noise_mode_none_drops_the_stored_noise(tmp_path):
    g = nf.small_generator(seed=2)
    record = read_network_pickle(snapshot(tmp_path / "s.pkl", g))["G_ema"]
    z = np.random.default_rng(0).standard_normal((3, 32), dtype=np.float32)
    none = nf.images(g, z, None, 1.0, noise_mode="none")
    assert np.abs(rebuilt_images(record, z, None, 1.0, "none") - none).max() < 1e-5
    assert np.abs(nf.images(g, z, None, 1.0) - none).max() > 1e-3      # the noise mattered


@pytest.mark.slow                       # a whole export with parity and timing
def test_export_detects_the_family_and_matches_the_pickled_forward(tmp_path, capsys):
    """`ganpack export X.pkl` with no --from: a conditional generator, labels and psi as graph inputs."""
    g = nf.small_generator(seed=3, c_dim=4)
    session, path = nf.exported_session(g, tmp_path, capsys, "nvlabs-stylegan2")
    z = np.random.default_rng(9).standard_normal((7, 32), dtype=np.float32)
    labels = np.arange(7) % 4
    for psi in (1.0, 0.7):
        feeds = {"noise": z, "labels": labels.astype(np.int64), "psi": np.full(7, psi, np.float32)}
        images = session.run(["images"], feeds)[0]
        assert np.abs(images - nf.images(g, z, labels, psi)).max() < 1e-4
    code, out, _ = run_cli(["inspect", path], capsys)
    assert code == 0 and "nvlabs-stylegan2" in out and "c_dim                4" in out
    # the I/O-bound run a GPU session uses: psi overrides an initializer, which a binding cannot take
    from gan_pack.runtime.device import bound_run

    feeds = {"noise": z, "labels": labels.astype(np.int64), "psi": np.full(7, 0.7, np.float32)}
    for output in ("numpy", "device"):
        bound = bound_run(session, feeds, "cpu", output, (7, 3, 16, 16))
        assert np.abs(np.asarray(bound if output == "numpy" else bound.numpy()) - images).max() == 0
    # serve takes psi as the optional input tensor its metadata lists, or as a parameter; not both
    import json

    from gan_pack.runtime.generator import OnnxGenerator
    from gan_pack.serve.protocol import HTTPError, model_metadata, parse_infer

    g = OnnxGenerator(tmp_path / "sg.onnx")
    assert {"name": "psi", "datatype": "FP32", "shape": [-1]} in model_metadata("sg", g)["inputs"]
    entries = [{"name": "noise", "datatype": "FP32", "shape": [7, 32], "data": z.reshape(-1).tolist()},
               {"name": "labels", "datatype": "INT64", "shape": [7], "data": labels.tolist()}]
    psi_entry = {"name": "psi", "datatype": "FP32", "shape": [7], "data": [0.7] * 7}
    parsed = parse_infer(json.dumps({"inputs": entries + [psi_entry]}).encode(), None, g, 64)
    assert np.abs(g.run_checked(parsed.feeds) - images).max() < 1e-6
    with pytest.raises(HTTPError, match="psi is given twice"):
        parse_infer(json.dumps({"inputs": entries + [psi_entry], "parameters": {"psi": 0.7}}).encode(), None, g, 64)


@pytest.mark.slow                       # a whole StyleGAN2 export, proven
def test_an_rgba_snapshot_exports_four_channels_from_its_network_not_an_assumed_three(tmp_path, capsys):
    """The spec's image shape comes from the rebuilt ToRGB layers: an RGBA StyleGAN2 is an RGBA model
    in its spec, manifest facts and pixel format, and its fourth channel is the network's."""
    from gan_pack.runtime.generator import OnnxGenerator

    g = nf.small_generator(seed=6, img_channels=4)
    session, _ = nf.exported_session(g, tmp_path, capsys, "nvlabs-stylegan2")
    model = OnnxGenerator(tmp_path / "sg.onnx")
    from gan_pack.contract.metadata import spec_of

    assert model.info.image_shape == (4, 16, 16) and spec_of(model.info.raw).image_shape == (4, 16, 16)
    assert model.info.raw["Image.BitmapPixelFormat"] == "Rgba8"
    z = np.random.default_rng(2).standard_normal((3, 32), dtype=np.float32)
    images = session.run(["images"], {"noise": z, "psi": np.ones(3, np.float32)})[0]
    assert images.shape == (3, 4, 16, 16) and np.abs(images - nf.images(g, z, None, 1.0)).max() < 1e-4


def test_network_g_is_exported_when_asked(tmp_path):
    from gan_pack.pytorch.nvlabs import exportable_network_pickle

    g_ema, g = nf.small_generator(seed=4), nf.small_generator(seed=5)
    path = tmp_path / "s.pkl"
    nf.dump_snapshot(path, {"G": g, "D": None, "G_ema": g_ema})
    z = np.random.default_rng(0).standard_normal((2, 32), dtype=np.float32)
    with torch.no_grad():
        out = exportable_network_pickle(path, "G").generator(torch.from_numpy(z)).numpy()
    assert np.abs(out - nf.images(g, z)).max() < 1e-5
    with pytest.raises(CheckpointError, match="no network 'G_avg'.*G, G_ema"):
        exportable_network_pickle(path, "G_avg")


# ---------------------------------------------------------------- hostile pickles

class Payload:
    """An object whose unpickling calls os.system: the classic pickle exploit."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_carried_module_source_is_never_run(tmp_path, capsys):
    marker = tmp_path / "source-ran"
    source = f"open({str(marker)!r}, 'w').write('ran')\n"
    path = snapshot(tmp_path / "s.pkl", nf.small_generator(seed=6), source=source)
    code, _, err = run_cli(["export", path, "-o", tmp_path / "sg.onnx"], capsys)
    assert code == 0, err
    assert not marker.exists()
    nf.unsafe_load(path)                                    # what pickle.load does with the same file
    assert marker.exists()


@pytest.mark.parametrize("where", ["top", "inside a network's state"])
def test_a_reduce_payload_is_refused_and_not_run(tmp_path, capsys, where):
    marker = tmp_path / "payload-ran"
    g = nf.small_generator(seed=7)
    path = tmp_path / "s.pkl"
    if where == "top":
        nf.dump_snapshot(path, {"G_ema": g, "evil": Payload(marker)})
    else:
        nf.dump_snapshot(path, {"G_ema": g}, extra_state={"hook": Payload(marker)})
    for command in (["export", path, "-o", tmp_path / "sg.onnx"], ["inspect", path]):
        code, _, err = run_cli(command, capsys)
        one_error_line(code, err, "system", "nothing of it was run")
    assert not marker.exists() and not (tmp_path / "sg.onnx").exists()
    nf.unsafe_load(path)
    assert marker.exists()


def test_exec_and_eval_globals_are_refused(tmp_path):
    class Exec:
        def __reduce__(self):
            return exec, ("raise SystemExit('ran')",)

    path = tmp_path / "e.pkl"
    path.write_bytes(pickle.dumps({"G_ema": Exec()}))
    with pytest.raises(CheckpointError, match="builtins.exec"):
        read_network_pickle(path)


def test_a_tensor_beyond_its_storage_is_refused(tmp_path):
    class Overreach:
        def __reduce__(self):
            storage = torch.zeros(4).storage()
            return torch._utils._rebuild_tensor_v2, (storage, 0, (1 << 20,), (1,), False, OrderedDict())

    nf.dump_snapshot(tmp_path / "s.pkl", {"G_ema": nf.small_generator()}, extra_state={"big": Overreach()})
    with pytest.raises(CheckpointError, match="outside its storage"):
        read_network_pickle(tmp_path / "s.pkl")


def test_numpy_objects_are_refused(tmp_path):
    nf.dump_snapshot(tmp_path / "s.pkl", {"G_ema": nf.small_generator()},
                     extra_state={"odd": np.array([1, "two"], dtype=object)})
    with pytest.raises(CheckpointError, match="refused"):
        read_network_pickle(tmp_path / "s.pkl")


def test_tensors_that_do_not_fit_are_listed(tmp_path, capsys):
    g = nf.small_generator(seed=8)
    g.mapping.fc1.weight = torch.nn.Parameter(torch.zeros(32, 31))
    del g.synthesis.b8.conv1._buffers["noise_const"]
    path = snapshot(tmp_path / "s.pkl", g)
    code, _, err = run_cli(["export", path, "-o", tmp_path / "sg.onnx"], capsys)
    one_error_line(code, err, "missing: synthesis.b8.conv1.noise_const", "other shapes: mapping.fc1.weight (32, 31)")


def test_nan_weights_and_absurd_sizes_are_refused(tmp_path):
    g = nf.small_generator(seed=9)
    with torch.no_grad():
        g.synthesis.b16.conv0.weight[0, 0, 0, 0] = float("nan")
    record = read_network_pickle(snapshot(tmp_path / "nan.pkl", g))["G_ema"]
    with pytest.raises(CheckpointError, match="not finite"):
        rebuild_stylegan2(record, "const", "nan.pkl")
    g = nf.small_generator(seed=9)
    g.img_resolution = 1 << 20
    record = read_network_pickle(snapshot(tmp_path / "big.pkl", g))["G_ema"]
    with pytest.raises(CheckpointError, match="img_resolution"):
        rebuild_stylegan2(record, "const", "big.pkl")


@pytest.mark.parametrize("content,words", [
    (pickle.dumps([1, 2, 3]), "not an NVlabs network snapshot"),
    (b"\x80\x04_reconstruct_persistent_obj" + b"\x00" * 10, "not a readable network pickle"),
])
def test_files_that_are_not_snapshots_say_so(tmp_path, capsys, content, words):
    path = tmp_path / "x.pkl"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=words):
        read_network_pickle(path)
