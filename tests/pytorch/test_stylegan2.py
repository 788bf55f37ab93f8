"""StyleGAN2 export: the PyPI package stylegan2-torch, built with random weights, loaded through the
stand-in ops, exported, and held to its own forward."""

import argparse
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from conftest import one_error_line, run_cli
from gan_pack.runtime.generator import OnnxGenerator

SMALL = {"resolution": 32, "latent_dim": 64, "n_mlp": 2, "channels": {"4": 64, "8": 64, "16": 32, "32": 16}}


def generator_class():
    from importlib.util import find_spec

    if find_spec("stylegan2_torch") is None:
        pytest.skip("needs stylegan2-torch (the [dev] extra)")
    from gan_pack.pytorch.stylegan2_ops import stylegan2_torch_generator

    return stylegan2_torch_generator()


def build(init: dict, seed: int = 0):
    """A stylegan2_torch.Generator with random weights; its ToRGB weights scaled down so that, like a
    trained one, its images mostly lie in [-1, 1] (parity is measured on the clamped images)."""
    torch.manual_seed(seed)
    g = generator_class()(init["resolution"], latent_dim=init["latent_dim"], n_mlp=init["n_mlp"],
                          channels={int(k): v for k, v in init["channels"].items()}).eval()
    with torch.no_grad():
        for rgb in g.to_rgbs:
            rgb.weight.mul_(0.2)
        for block in list(g.convs) + list(g.up_convs):      # noise strengths are learned away from 0
            block.add_noise.weight.fill_(0.3)
    return g


def own_forward(g, z, psi=None, w_avg=None, noises=None):
    from gan_pack.pytorch.stylegan2 import noise_resolutions

    noises = noises or [torch.zeros(1, 1, s, s) for s in noise_resolutions(2 * len(g.convs) - 1)]
    trunc = None if psi is None else (torch.as_tensor(psi, dtype=torch.float32).reshape(-1, 1), w_avg)
    with torch.no_grad():
        return g([torch.from_numpy(z)], noises=noises, trunc_option=trunc).clamp(-1, 1).numpy()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    g = build(SMALL)
    folder = tmp_path_factory.mktemp("sg2")
    torch.save({"g_ema": g.state_dict(), "mean_latent": torch.randn(1, 64) * 0.1}, folder / "G.pt")
    return g, folder


def export(capsys, weights, output, init=SMALL, *extra):
    import json

    return run_cli(["export", weights, "--from", "stylegan2-torch", "--init", json.dumps(init), "-o", output,
                    *extra], capsys)


def test_stand_ins_leave_the_real_package_importable_as_it_was():
    generator_class()
    assert not [name for name in sys.modules if name.startswith("stylegan2_torch")]


def test_upfirdn2d_stand_in_is_the_fir_filter():
    from gan_pack.pytorch.stylegan2_ops import upfirdn2d

    x = torch.randn(2, 3, 5, 5)
    assert torch.equal(upfirdn2d(x, torch.ones(1, 1)), x)
    up = upfirdn2d(x, torch.ones(2, 2), up=2, pad=(1, 0))     # zero insertion, then a 2x2 box: nearest
    assert torch.allclose(up, x.repeat_interleave(2, 2).repeat_interleave(2, 3))
    kernel = torch.tensor([[0.0, 0.0], [0.0, 1.0]])           # a true convolution (kernel flipped): a shift
    assert torch.equal(upfirdn2d(x, kernel, pad=(1, 0)), torch.nn.functional.pad(x, [1, 0, 1, 0])[..., :5, :5])
    assert upfirdn2d(x, torch.ones(2, 2) / 4, down=2, pad=(0, 1)).shape == (2, 3, 3, 3)


@pytest.mark.slow                       # a whole StyleGAN2 export, proven
def test_export_matches_its_own_forward_with_psi(small, tmp_path, capsys):
    g, folder = small
    code, out, err = export(capsys, folder / "G.pt", tmp_path / "sg.onnx")
    assert code == 0, err
    assert "stylegan2_torch.Generator.forward" in out
    model = OnnxGenerator(tmp_path / "sg.onnx")
    assert model.info.psi_input and model.info.image_shape == (1, 32, 32)
    w_avg = torch.load(folder / "G.pt")["mean_latent"]
    for batch in (1, 7, 64):
        z = model.noise(batch, seed=batch)
        assert np.abs(model.generate(z) - own_forward(g, z)).max() <= 1e-4
        psi = np.linspace(0, 1, batch, dtype=np.float32)          # one per row
        assert np.abs(model.generate(z, psi=psi) - own_forward(g, z, psi, w_avg)).max() <= 1e-4
    z = model.noise(7, seed=1)
    assert np.abs(model.generate(z, psi=0.5) - own_forward(g, z, 0.5, w_avg)).max() <= 1e-4
    average = model.generate(z, psi=0.0)                          # psi 0: every row is the average image
    assert np.abs(average - average[:1]).max() < 1e-5 and np.abs(average - model.generate(z)).max() > 0.01
    rows = np.concatenate([model.generate(z[i:i + 1], psi=0.7) for i in range(7)])
    assert np.abs(rows - model.generate(z, psi=0.7)).max() <= 1e-5


@pytest.mark.slow
def test_export_at_64_px_matches_its_own_forward(tmp_path, capsys):
    init = {"resolution": 64, "latent_dim": 128, "n_mlp": 4,
            "channels": {"4": 128, "8": 128, "16": 128, "32": 128, "64": 64}}
    g = build(init, seed=3)
    torch.save(g.state_dict(), tmp_path / "G.pt")                # a bare state dict
    code, _, err = export(capsys, tmp_path / "G.pt", tmp_path / "sg.onnx", init, "--noise-mode", "const",
                          "--seed", "5")
    assert code == 0, err
    from gan_pack.pytorch.stylegan2 import noise_resolutions

    gen = torch.Generator().manual_seed(5)
    noises = [torch.randn(1, 1, s, s, generator=gen) for s in noise_resolutions(2 * len(g.convs) - 1)]
    model = OnnxGenerator(tmp_path / "sg.onnx")
    for batch in (1, 7, 64):
        z = model.noise(batch, seed=batch)
        assert np.abs(model.generate(z) - own_forward(g, z, noises=noises)).max() <= 1e-4


@pytest.mark.slow                       # a whole StyleGAN2 export, proven
def test_const_noise_from_the_checkpoint_and_a_rosinality_checkpoint(small, tmp_path, capsys):
    """The lineage's train.py saves g, d, g_ema, optimizer states and its argparse args; noise
    buffers as noises.noise_K in the generator."""
    g, _ = small
    from gan_pack.pytorch.stylegan2 import noise_resolutions

    noises = [torch.randn(1, 1, s, s) for s in noise_resolutions(7)]
    state = {**g.state_dict(), **{f"noises.noise_{k}": n for k, n in enumerate(noises)}}
    torch.save({"g": g.state_dict(), "g_ema": state, "args": argparse.Namespace(size=32, latent=64)},
               tmp_path / "ckpt.pt")
    code, _, err = export(capsys, tmp_path / "ckpt.pt", tmp_path / "sg.onnx", SMALL, "--noise-mode", "const")
    assert code == 0, err
    model = OnnxGenerator(tmp_path / "sg.onnx")
    z = model.noise(7, seed=2)
    assert np.abs(model.generate(z) - own_forward(g, z, noises=noises)).max() <= 1e-4
    assert np.abs(model.generate(z) - own_forward(g, z)).max() > 1e-3        # the noise is really in it
    assert model.info.raw["noise_mode"] == "const" and "seed" in model.info.raw["mean_latent"]


@pytest.mark.parametrize("init, extra, words", [
    ({**SMALL, "n_mlp": 3}, [], ["does not fit", "missing: mapping.3.weight"]),
    ({**SMALL, "channels": {"4": 64, "8": 64, "16": 32}}, [], ["no width for resolution 32"]),
    ({**SMALL, "resolution": 48}, [], ["resolution"]),
    ({**SMALL, "channels": {"4": 64, "8": 64, "16": 32, "32": 8}}, [], ["other shapes"]),
    (SMALL, ["--noise-mode", "const"], ["no noise buffers", "--seed"]),
    (SMALL, ["--noise-dim", "64"], ["drop --noise-dim"]),
])
def test_traps_are_one_line_and_leave_nothing(small, tmp_path, capsys, init, extra, words):
    _, folder = small
    torch.save(small[0].state_dict(), tmp_path / "bare.pt")       # no mean latent, no noise
    code, _, err = export(capsys, tmp_path / "bare.pt", tmp_path / "sg.onnx", init, *extra)
    one_error_line(code, err, *words)
    assert list(tmp_path.iterdir()) == [tmp_path / "bare.pt"]


def test_a_pickled_module_is_refused_without_running_it(small, tmp_path, capsys):
    torch.save({"g_ema": torch.nn.Linear(2, 2)}, tmp_path / "module.pt")     # a pickled module
    code, _, err = export(capsys, tmp_path / "module.pt", tmp_path / "sg.onnx")
    one_error_line(code, err, "would run their code")


@pytest.mark.slow                       # a whole StyleGAN2 export, proven
def test_psi_is_refused_where_it_does_not_belong(small, tmp_path, capsys, exported_models):
    _, folder = small
    assert export(capsys, folder / "G.pt", tmp_path / "sg.onnx")[0] == 0
    code, _, err = run_cli(["sample", tmp_path / "sg.onnx", "-n", "4", "--psi", "3", "-o", tmp_path / "x.png"], capsys)
    one_error_line(code, err, "psi must be a number in -2..2")
    plain = next(iter(exported_models.values()))
    code, _, err = run_cli(["sample", plain, "-n", "4", "--psi", "0.7", "-o", tmp_path / "y.png"], capsys)
    one_error_line(code, err, "no psi input")
    code, _, err = run_cli(["sample", tmp_path / "sg.onnx", "--seeds", "0-3", "--psi", "0.7", "-o",
                            tmp_path / "z.npy"], capsys)
    assert code == 0, err
    model = OnnxGenerator(tmp_path / "sg.onnx", psi=0.7)
    expected = np.concatenate([model.generate(model.noise(1, s)) for s in range(4)])
    assert np.abs(np.load(tmp_path / "z.npy") - expected).max() <= 1e-6


# ---------------------------------------------------------------- a clean-room NVlabs-style generator

ZOO = Path(__file__).with_name("zoo_stylegan.py")


@pytest.fixture(scope="module")
def nvlabs_style(tmp_path_factory):
    """The zoo's class-conditional RGB generator at 16 px with random weights and a w_avg that
    training would have tracked, and its state dict on disk."""
    from gan_pack.pytorch.importer import load_class

    cls = load_class(f"{ZOO}:Generator")
    torch.manual_seed(1)
    g = cls(c_dim=3).eval()
    with torch.no_grad():
        g.mapping.w_avg.normal_(0, 0.3)
    folder = tmp_path_factory.mktemp("nvlabs")
    torch.save(g.state_dict(), folder / "G.pth")
    return g, folder / "G.pth"


def export_nvlabs(capsys, weights, output, *extra):
    return run_cli(["export", weights, "--module", f"{ZOO}:Generator", "--init", '{"c_dim": 3}', "--noise-dim", "32",
                    "--num-classes", "3", "--label-input", "onehot", "--class-names", "circle,square,star",
                    "-o", output, *extra], capsys)


@pytest.mark.slow                       # a whole StyleGAN2 export, proven
def test_a_conditional_nvlabs_style_generator_maps_c_onto_labels_and_psi(nvlabs_style, tmp_path, capsys):
    g, weights = nvlabs_style
    code, _, err = export_nvlabs(capsys, weights, tmp_path / "nv.onnx", "--noise-mode", "const")
    assert code == 0, err
    model = OnnxGenerator(tmp_path / "nv.onnx")
    assert model.info.psi_input and model.info.image_shape == (3, 16, 16) and model.info.num_classes == 3
    z, labels = model.noise(7, seed=4), np.array([0, 1, 2, 0, 1, 2, 0])
    c = torch.nn.functional.one_hot(torch.from_numpy(labels), 3).float()
    for psi in (None, 0.5, np.linspace(0, 1, 7, dtype=np.float32)):
        truncation = 1 if psi is None else torch.as_tensor(psi).reshape(-1, 1)
        with torch.no_grad():      # NVlabs' inference path: the grouped convolution of per-sample weights
            own = g(torch.from_numpy(z), c, truncation_psi=truncation, noise_mode="const").clamp(-1, 1).numpy()
        assert np.abs(model.generate(z, labels, psi=psi) - own).max() <= 1e-4
    assert np.abs(model.generate(z, labels) - model.generate(z, 2 - labels)).max() > 1e-3   # c matters


@pytest.mark.slow                       # a whole StyleGAN2 export, proven
def test_noise_mode_defaults_to_none_and_is_checked_against_the_forward(nvlabs_style, tmp_path, capsys):
    g, weights = nvlabs_style
    code, _, err = export_nvlabs(capsys, weights, tmp_path / "nv.onnx")      # forward's default is random
    assert code == 0, err
    model = OnnxGenerator(tmp_path / "nv.onnx")
    assert model.info.raw["noise_mode"] == "none"
    z, labels = model.noise(3, seed=0), np.array([0, 1, 2])
    with torch.no_grad():
        own = g(torch.from_numpy(z), torch.eye(3), noise_mode="none").clamp(-1, 1).numpy()
    assert np.abs(model.generate(z, labels) - own).max() <= 1e-4
    torch.save({f"l.{k}": v for k, v in torch.nn.Linear(4, 4).state_dict().items()}, tmp_path / "lin.pth")
    (tmp_path / "plain.py").write_text(textwrap.dedent("""
        import torch
        class G(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.l = torch.nn.Linear(4, 4)
            def forward(self, z):
                return torch.tanh(self.l(z)).view(-1, 1, 2, 2)
        """))
    code, _, err = run_cli(["export", tmp_path / "lin.pth", "--module", f"{tmp_path / 'plain.py'}:G",
                            "--noise-dim", "4", "--noise-mode", "const", "-o", tmp_path / "p.onnx"], capsys)
    one_error_line(code, err, "takes no noise_mode")


# ---------------------------------------------------------------- downstream: pack, verify, Triton, serve

@pytest.fixture(scope="module")
def packages(small, nvlabs_style, tmp_path_factory):
    """Both exports packed: the 32 px one-channel stylegan2-torch one and the RGB conditional one."""
    import json

    root = tmp_path_factory.mktemp("sgpack")
    weights = small[1] / "G.pt"
    g, nv_weights = nvlabs_style
    commands = [["export", weights, "--from", "stylegan2-torch", "--init", json.dumps(SMALL), "-o", root / "sg.onnx"],
                ["export", nv_weights, "--module", f"{ZOO}:Generator", "--init", '{"c_dim": 3}', "--noise-dim", "32",
                 "--num-classes", "3", "--label-input", "onehot", "--class-names", "circle,square,star",
                 "--noise-mode", "const", "-o", root / "nv.onnx"],
                ["pack", root / "sg.onnx", "-o", root / "sg2-mono", "--triton", root / "models"],
                ["pack", root / "nv.onnx", "-o", root / "sg2-rgb"]]
    for args in commands:
        code = ganpack_in_process(args)
        assert code == 0, args
    return root


def ganpack_in_process(args) -> int:
    from gan_pack.cli.app import main

    argv, sys.argv = sys.argv, ["ganpack", *map(str, args)]
    try:
        main()
        return 0
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = argv


@pytest.mark.slow                       # two StyleGAN2 packages exported, packed and served
def test_packages_verify_and_say_psi_in_their_contract(packages, capsys):
    import json

    for name in ("sg2-mono", "sg2-rgb"):
        code, out, err = run_cli(["verify", packages / name], capsys)
        assert code == 0 and "verified" in out, err
        manifest = json.loads((packages / name / f"{name}.json").read_text())
        assert {"name": "psi", "dtype": "float32", "shape": ["psi_rows"], "optional": True, "default": 1.0,
                "range": [-2.0, 2.0]} in manifest["contract"]["inputs"]
    assert json.loads((packages / "sg2-rgb" / "sg2-rgb.json").read_text())["image_shape"] == [3, 16, 16]


@pytest.mark.slow                       # two StyleGAN2 packages exported, packed and served
def test_triton_entry_declares_psi_optional(packages):
    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")
    from google.protobuf import text_format

    text = (packages / "models" / "sg2-mono" / "config.pbtxt").read_text()
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert [(i.name, list(i.dims), i.optional) for i in config.input] == [("noise", [64], False), ("psi", [1], True)]


@pytest.mark.slow                       # two StyleGAN2 packages exported, packed and served
def test_serve_takes_psi_in_the_query_and_the_request_parameters(packages):
    pytest.importorskip("starlette")
    httpclient = pytest.importorskip("tritonclient.http")
    import io
    import urllib.request

    from conftest import serving

    with serving([packages / "sg2-mono", packages / "sg2-rgb"], max_images_per_request=64) as url:
        model = OnnxGenerator(packages / "sg2-rgb")
        with urllib.request.urlopen(f"http://{url}/v1/models/sg2-rgb/sample.npy?n=6&seed=3&label=2&psi=0.6") as r:
            got = np.load(io.BytesIO(r.read()))
        assert np.abs(got - model.generate(model.noise(6, 3), np.full(6, 2), psi=0.6)).max() <= 1e-6
        client = httpclient.InferenceServerClient(url)
        noise = model.noise(5, 9)
        inputs = [httpclient.InferInput("noise", [5, 32], "FP32"), httpclient.InferInput("labels", [5], "INT64")]
        inputs[0].set_data_from_numpy(noise)
        inputs[1].set_data_from_numpy(np.arange(5, dtype=np.int64) % 3)
        for psi in (None, 0.3):
            reply = client.infer("sg2-rgb", inputs, parameters=None if psi is None else {"psi": psi})
            expected = model.generate(noise, np.arange(5) % 3, psi=psi)
            assert np.abs(reply.as_numpy("images") - expected).max() <= 1e-6
        assert client.get_model_metadata("sg2-mono")["parameters"]["psi_input"] is True
        body = ('{"inputs": [{"name": "noise", "datatype": "FP32", "shape": [1, 64], "data": [' + ", ".join(["0"] * 64)
                + ']}], "parameters": {"psi": ' + "9" * 401 + "}}").encode()
        request = urllib.request.Request(f"http://{url}/v2/models/sg2-mono/infer", data=body)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request)
        assert refused.value.code == 400 and "psi must be a number" in refused.value.read().decode()


@pytest.mark.parametrize("psi", ["abc", 10**400, {"a": 1}, [[0.5], [0.5, 0.6]], True, "0.5", [], [[0.5]], 1e308,
                                 float("nan"), -2.5])
@pytest.mark.slow                       # two StyleGAN2 packages exported, packed and served
def test_psi_values_are_numbers_in_range_or_one_model_error(packages, psi):
    import warnings

    from gan_pack.errors import ModelError

    model = OnnxGenerator(packages / "sg2-mono")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # no numpy overflow warnings on the way to the refusal
        with pytest.raises(ModelError, match="psi must be"):
            model.generate(model.noise(2, 0), psi=psi)
        with pytest.raises(ModelError, match="psi must be"):
            OnnxGenerator(packages / "sg2-mono", psi=psi)


@pytest.mark.slow                       # two StyleGAN2 packages exported, packed and served
def test_psi_on_the_command_line_is_one_line_without_warnings(packages, tmp_path, capsys):
    code, _, err = run_cli(["sample", packages / "sg2-mono", "-n", 2, "--psi", "1e308", "-o", tmp_path / "x.png"],
                           capsys)
    one_error_line(code, err, "psi must be")



def test_a_checkpoint_with_nan_extras_or_odd_noise_keys_is_one_line(small, tmp_path, capsys):
    g, _ = small
    torch.save({"g_ema": g.state_dict(), "mean_latent": torch.full((1, 64), float("nan"))}, tmp_path / "nan.pt")
    code, _, err = export(capsys, tmp_path / "nan.pt", tmp_path / "a.onnx")
    one_error_line(code, err, "NaN")
    torch.save({"g_ema": {**g.state_dict(), "noises.noise_x": torch.zeros(1)}}, tmp_path / "odd.pt")
    code, _, err = export(capsys, tmp_path / "odd.pt", tmp_path / "b.onnx")
    one_error_line(code, err, "unexpected: noises.noise_x")
    assert not (tmp_path / "a.onnx").exists() and not (tmp_path / "b.onnx").exists()


@pytest.mark.slow                       # two StyleGAN2 packages exported, packed and served
def test_evaluate_at_a_psi(packages, tmp_path, capsys):
    """evaluate --psi measures a StyleGAN at that truncation, and says so; a model without psi is one line."""
    import json

    from conftest import write_rgba_folder

    data = tmp_path / "data"
    write_rgba_folder(data / "train", per_class=12)
    write_rgba_folder(data / "test", per_class=12, seed=1)
    code, _, err = run_cli(["train-classifier", "--dataset", "folder", "--data-dir", data, "--image-size", 32,
                            "--channels", 1, "--epochs", 1, "--batch-size", 8, "--device", "cpu",
                            "-o", tmp_path / "c.onnx"], capsys)
    assert code == 0, err
    reports = {}
    for psi in (None, 0.3):
        code, out, err = run_cli(["evaluate", packages / "sg2-mono", "--classifier", tmp_path / "c.onnx", "--data-dir",
                                  data, "-n", 24, "--k", 3, "--json", tmp_path / "e.json"]
                                 + ([] if psi is None else ["--psi", psi]), capsys)
        assert code == 0, err
        reports[psi] = json.loads((tmp_path / "e.json").read_text())
        assert reports[psi]["psi"] == psi and (psi is None or f"psi {psi}" in out)
    assert reports[None]["fcd"] != reports[0.3]["fcd"]
    code, _, err = run_cli(["evaluate", packages / "sg2-rgb", "--classifier", tmp_path / "c.onnx", "--data-dir", data,
                            "--psi", 5], capsys)
    one_error_line(code, err, "psi must be a number in -2..2")


# ---------------------------------------------------------------- hostile checkpoints and --init

def rewritten_zip(source, target, compress: bool = False, declare: int | None = None):
    """`source` (a torch.save zip) written again: its entries deflated, or one entry's declared size
    in the central directory set to `declare` bytes."""
    import zipfile

    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info.filename, old.read(info),
                         compress_type=zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
    if declare is not None:                                 # patch the first central directory entry
        data = bytearray(target.read_bytes())
        at = data.rfind(b"PK\x01\x02", 0, data.rfind(b"PK\x05\x06"))
        at = data.find(b"PK\x01\x02")
        data[at + 24:at + 28] = min(declare, 2**32 - 1).to_bytes(4, "little")
        target.write_bytes(bytes(data))
    return target


def test_a_compressed_or_oversized_checkpoint_is_refused_before_it_is_inflated(small, tmp_path, capsys):
    _, folder = small
    packed = rewritten_zip(folder / "G.pt", tmp_path / "deflated.pt", compress=True)
    code, _, err = export(capsys, packed, tmp_path / "sg.onnx")
    one_error_line(code, err, "compressed entries", "torch.save never writes")
    huge = rewritten_zip(folder / "G.pt", tmp_path / "huge.pt", declare=4 << 30)
    code, _, err = export(capsys, huge, tmp_path / "sg.onnx")
    one_error_line(code, err, "unpacks to", "over the 2,147,483,648")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deflated.pt", "huge.pt"]


@pytest.mark.parametrize("where, words", [("folder", ["is a folder"]), ("fifo", ["not a regular file"]),
                                          ("/dev/zero", ["not a regular file"]), ("missing", ["does not exist"])])
def test_a_checkpoint_that_is_no_file_says_what_it_is(tmp_path, capsys, where, words):
    import os

    path = {"folder": tmp_path / "dir.pt", "fifo": tmp_path / "fifo.pt", "/dev/zero": "/dev/zero",
            "missing": tmp_path / "missing.pt"}[where]
    if where == "folder":
        os.mkdir(path)
    elif where == "fifo":
        os.mkfifo(path)
    code, _, err = export(capsys, path, tmp_path / "sg.onnx")
    one_error_line(code, err, *words)


@pytest.mark.parametrize("change, words", [
    ({"latent_dim": "abc"}, ["latent_dim must be an integer"]),
    ({"latent_dim": [64]}, ["latent_dim must be an integer"]),
    ({"latent_dim": None}, ["latent_dim must be an integer"]),
    ({"latent_dim": float("nan")}, ["latent_dim must be an integer"]),
    ({"latent_dim": float("inf")}, ["latent_dim must be an integer"]),
    ({"latent_dim": 64.0}, ["latent_dim must be an integer"]),
    ({"n_mlp": 1_000_000}, ["n_mlp must be an integer in 1..64"]),
    ({"latent_dim": 65536}, ["GiB", "over the 1 GiB"]),
    ({"channels": {"4": 64.9, "8": 64, "16": 32, "32": 16}}, ["whole numbers"]),
    ({"channels": {"4": True, "8": 64, "16": 32, "32": 16}}, ["whole numbers"]),
    ({"resolution": True}, ["resolution"]),
    ({"lr_mlp_mult": -1}, ["lr_mlp_mult"]),
])
def test_init_is_checked_before_anything_is_built(small, tmp_path, capsys, change, words):
    """Each bad value is one line at once (the network is never allocated), never converted."""
    import time

    _, folder = small
    started = time.perf_counter()
    code, _, err = export(capsys, folder / "G.pt", tmp_path / "sg.onnx", {**SMALL, **change})
    one_error_line(code, err, "--init", *words)
    assert time.perf_counter() - started < 5 and not (tmp_path / "sg.onnx").exists()


@pytest.mark.parametrize("seed", ["-1", str(2**64), "abc"])
def test_a_seed_out_of_range_is_one_line(small, tmp_path, capsys, seed):
    _, folder = small
    code, _, err = export(capsys, folder / "G.pt", tmp_path / "sg.onnx", SMALL, "--noise-mode", "const", "--seed", seed)
    assert code == 2 and "Traceback" not in err and "--seed" in err


def test_nan_weights_are_refused_when_loaded_not_after_export(small, tmp_path, capsys):
    g, _ = small
    state = {k: v.clone() for k, v in g.state_dict().items()}
    state["convs.1.weight"].view(-1)[0] = float("nan")
    torch.save({"g_ema": state}, tmp_path / "nan.pt")
    code, _, err = export(capsys, tmp_path / "nan.pt", tmp_path / "sg.onnx")
    one_error_line(code, err, "convs.1.weight holds NaN")
    assert not (tmp_path / "sg.onnx").exists()


@pytest.mark.slow                       # 2,000 objects: the full suite
def test_fuzz_init_parser_refuses_in_one_error_or_returns_a_bounded_network():
    """2,000 --init objects, most of them wrong: ConfigError (one line) or a table whose network fits."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from gan_pack.errors import ConfigError
    from gan_pack.pytorch.stylegan2_init import MAX_NETWORK_BYTES, network_bytes, parse_stylegan2_init

    value = st.one_of(st.none(), st.booleans(), st.integers(-2, 2**70), st.floats(allow_nan=True),
                      st.text(max_size=8), st.lists(st.integers(0, 9), max_size=10))
    resolutions = st.sampled_from([4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 48, 32.0])
    channels = st.one_of(value, st.dictionaries(st.sampled_from(["4", "8", "16", "32", "64", "x", "-4", "04"]),
                                                 st.one_of(st.integers(-1, 5000), value), max_size=8))
    inits = st.fixed_dictionaries({}, optional={"resolution": st.one_of(resolutions, value),
                                                "latent_dim": value, "n_mlp": value, "lr_mlp_mult": value,
                                                "channels": channels, "blur_kernel": value})

    @settings(max_examples=2000, deadline=None)
    @given(init=inits)
    def check(init):
        try:
            parsed = parse_stylegan2_init(init)
        except ConfigError as e:
            assert "\n" not in str(e) and str(e).startswith("--init:")
            return
        assert network_bytes(parsed) <= MAX_NETWORK_BYTES and parsed["resolution"] in (8, 16, 32, 64, 128, 256, 512,
                                                                                       1024)
    check()
