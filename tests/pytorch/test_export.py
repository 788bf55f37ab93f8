import json

import numpy as np
import pytest

from conftest import run_cli

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.torch

from gan_pack.contract.parity import parity_path
from gan_pack.errors import ParityError  # noqa: E402
from gan_pack.pytorch.export import ExportOptions, export_generator, load_generator


@pytest.mark.parametrize("model", ["gan", "cgan"])
@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_exported_matches_pytorch_at_any_batch(exported_models, trained_runs, model, arch):
    path = exported_models[(model, arch)]
    generator, ckpt = load_generator(trained_runs[(model, arch)])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    k = ckpt["dataset"]["num_classes"]
    for batch in (1, 7, 300):
        noise = np.random.default_rng(batch + 100).standard_normal((batch, 100), dtype=np.float32)
        feeds = {"noise": noise}
        labels = torch.arange(batch) % k if k else None
        if k:
            feeds["labels"] = labels.numpy()
        got = session.run(["images"], feeds)[0]
        with torch.no_grad():
            want = generator(torch.from_numpy(noise), labels).numpy()
        assert got.shape == (batch, 1, 28, 28)
        assert np.abs(got - want).max() < 1e-4


def test_batch_axis_is_symbolic_and_named(exported_models):
    model = onnx.load(str(exported_models[("cgan", "dcgan")]))
    for value in list(model.graph.input) + list(model.graph.output):
        first = value.type.tensor_type.shape.dim[0]
        assert first.dim_param == "batch" and not first.dim_value
    assert [i.name for i in model.graph.input] == ["noise", "labels"]
    assert [o.name for o in model.graph.output] == ["images"]
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    onnx.checker.check_model(model, full_check=True)


def test_metadata_round_trips(exported_models, trained_runs):
    path = exported_models[("cgan", "mlp")]
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    for key in ("gan_pack.version", "model", "arch", "noise_dim", "noise_distribution", "num_classes",
                "class_names", "image_shape", "output_range", "dataset", "epochs", "weights", "opset", "parity"):
        assert key in meta, key
    assert meta["model"] == "cgan" and meta["arch"] == "mlp" and meta["num_classes"] == "10"
    assert json.loads(meta["image_shape"]) == [1, 28, 28]
    assert json.loads(meta["class_names"]) == [str(d) for d in range(10)]
    parity = json.loads(meta["parity"])
    assert parity == json.loads(parity_path(path).read_text())
    assert [b["batch"] for b in parity["batches"]] == [1, 7, 300] and parity["ok"]
    assert parity["labels_checked"] == list(range(10))


def test_corrupted_weights_fail_and_leave_no_file(trained_runs, tmp_path, monkeypatch):
    """The ONNX graph gets altered weights after export: validation must catch it."""
    import gan_pack.pytorch.export as export

    original = export.rename_batch_axis

    def corrupt(model):
        original(model)
        init = max(model.graph.initializer, key=lambda t: len(t.raw_data))
        values = onnx.numpy_helper.to_array(init).copy()
        values.flat[0] += 1.0
        init.CopyFrom(onnx.numpy_helper.from_array(values, init.name))

    monkeypatch.setattr(export, "rename_batch_axis", corrupt)
    output = tmp_path / "bad.onnx"
    with pytest.raises(ParityError, match="batch") as caught:
        export_generator(trained_runs[("cgan", "mlp")], output)
    assert list(tmp_path.iterdir()) == []
    # a wrong weight is far beyond what fp32 rounds: the error says so, and offers no looser bound
    assert "more than fp32 rounding" in str(caught.value) and "accepts it" not in str(caught.value)


def test_rounding_measure_in_row_chunks_matches_the_whole_batch():
    """A failed parity's hint runs float64 a few rows at a time (a whole 1000-image batch of a 64 px
    generator in float64 took more than 16 GB); the distance it finds is the whole batch's."""
    from gan_pack.pytorch.export import fp32_distance

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.ConvTranspose2d(8, 16, 4, 2, 1), torch.nn.ReLU(),
                                 torch.nn.Conv2d(16, 3, 3, padding=1), torch.nn.Tanh()).eval()
    x = torch.randn(10, 8, 6, 6)
    whole = fp32_distance(module, x)
    assert whole is not None and 0 < whole < 1e-5
    assert fp32_distance(module, x, rows=3) == pytest.approx(whole, rel=1e-6)
    assert fp32_distance(module, x, rows=64) == pytest.approx(whole, rel=1e-6)


def test_forced_mismatch_through_cli_exit_2(trained_runs, tmp_path, capsys):
    output = tmp_path / "tight.onnx"
    code, _, err = run_cli(["export", trained_runs[("gan", "dcgan")], "-o", output, "--atol", "1e-12",
                             "--rewrite", "on"], capsys)
    assert code == 2 and "does not match" in err and "Traceback" not in err
    assert not output.exists() and not parity_path(output).exists()
    # a bound below fp32's own rounding: the error measures PyTorch against float64 and names a
    # bound, and an export with that bound goes through
    line = err.strip().splitlines()[-1]
    words = line.split()
    assert line.startswith("error: export does not match") and "fp32 rounding" in line and "float64" in line
    if "accepts" in words:
        suggested = words[words.index("--atol") + 1]
        code, _, err = run_cli(["export", trained_runs[("gan", "dcgan")], "-o", output, "--atol", suggested,
                                 "--rewrite", "on"], capsys)
        assert code == 0 and output.exists(), err


@pytest.mark.parametrize("x, bound", [(1.46e-4, 2e-4), (3.47e-4, 5e-4), (6e-4, 1e-3), (1e-4, 1e-4), (2.1e-7, 3e-7)])
def test_nice_bound_is_the_next_round_number(x, bound):
    from gan_pack.contract.parity import nice_bound

    assert nice_bound(x) == pytest.approx(bound) and nice_bound(x) >= x


def test_allow_mismatch_writes_loudly(trained_runs, tmp_path, capsys):
    output = tmp_path / "tight.onnx"
    code, out, err = run_cli(["export", trained_runs[("gan", "mlp")], "-o", output, "--atol", "1e-12",
                              "--allow-mismatch"], capsys)
    assert code == 0 and output.exists() and "WARNING" in err


def test_fp16_export_runs_and_is_reported(trained_runs, tmp_path):
    output = tmp_path / "half.onnx"
    report, = export_generator(trained_runs[("cgan", "dcgan")], output,
                               ExportOptions(precision="fp16", batch_sizes=(1, 7, 64)))
    assert report.ok and report.precision == "fp16" and report.bound == 2e-2
    assert max(b.max_abs for b in report.batches) > 0
    meta = {p.key: p.value for p in onnx.load(str(output)).metadata_props}
    assert meta["precision"] == "fp16"
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(float)"
    assert session.get_outputs()[0].type == "tensor(float)"


def test_raw_weights_differ_from_ema(trained_runs, tmp_path):
    ema, _ = load_generator(trained_runs[("cgan", "mlp")], "ema")
    raw, _ = load_generator(trained_runs[("cgan", "mlp")], "raw")
    assert not torch.equal(ema.net[0].weight, raw.net[0].weight)


# ---------------------------------------------------------------- bad input

def assert_one_line_error(code, err, *words):
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for word in words:
        assert word in lines[0]


def test_not_a_run(tmp_path, capsys):
    code, _, err = run_cli(["export", tmp_path, "-o", tmp_path / "x.onnx"], capsys)
    assert_one_line_error(code, err, "checkpoint.pt")
    assert not (tmp_path / "x.onnx").exists()


def test_not_a_checkpoint_file(tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    code, _, err = run_cli(["export", tmp_path / "junk.pt", "-o", tmp_path / "x.onnx"], capsys)
    assert_one_line_error(code, err, "not a PyTorch checkpoint")


@pytest.mark.parametrize("change,word", [({"format": 99}, "newer"), ({"arch": "transformer"}, "arch")])
def test_newer_format_or_unknown_arch(trained_runs, tmp_path, capsys, change, word):
    ckpt = torch.load(trained_runs[("gan", "mlp")] / "checkpoint.pt", weights_only=True)
    if "format" in change:
        ckpt["format"] = change["format"]
    else:
        ckpt["config"]["arch"] = change["arch"]
    torch.save(ckpt, tmp_path / "c.pt")
    code, _, err = run_cli(["export", tmp_path / "c.pt", "-o", tmp_path / "x.onnx"], capsys)
    assert_one_line_error(code, err, word)
    assert not (tmp_path / "x.onnx").exists()


def test_output_folder_is_created(trained_runs, tmp_path, capsys):
    output = tmp_path / "new" / "deeper" / "m.onnx"
    code, out, err = run_cli(["export", trained_runs[("gan", "mlp")], "-o", output], capsys)
    assert code == 0 and output.exists(), err
    assert "batch" in out and "max abs" in out


@pytest.mark.parametrize("flags,word", [(["--opset", "9"], "opset"), (["--precision", "int4"], "precision")])
def test_bad_options(trained_runs, tmp_path, capsys, flags, word):
    code, _, err = run_cli(["export", trained_runs[("gan", "mlp")], "-o", tmp_path / "x.onnx", *flags], capsys)
    assert_one_line_error(code, err, word)


def test_non_onnx_output_name(trained_runs, tmp_path, capsys):
    code, _, err = run_cli(["export", trained_runs[("gan", "mlp")], "-o", tmp_path / "x.pt"], capsys)
    assert_one_line_error(code, err, ".onnx")
    assert list(tmp_path.iterdir()) == []


def test_int8_export_through_cli(trained_runs, tmp_path, capsys):
    from gan_pack.runtime.generator import OnnxGenerator

    run = trained_runs[("cgan", "mlp")]
    output = tmp_path / "m8.onnx"
    code, out, err = run_cli(["export", run, "-o", output, "--precision", "int8"], capsys)
    assert code == 0, err
    assert OnnxGenerator(output).info.precision == "int8-dynamic"          # auto: an MLP
    parity = json.loads(parity_path(output).read_text())
    assert parity["fp32_vs_pytorch"]["ok"] and parity["int8_vs_fp32"]["batches"][0]["batch"] == 1
    assert "int8 vs fp32" in out and sorted(p.name for p in tmp_path.iterdir()) == ["m8.onnx", "m8.parity.json"]
    recorded = [json.loads(line) for line in (run / "exports.jsonl").read_text().splitlines()]
    assert recorded[-1]["path"] == str(output.resolve()) and recorded[-1]["precision"] == "int8-dynamic"


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_no_batchnorm_left_in_the_graph(exported_models, arch):
    """BatchNorm is folded into the layers around it (onnxruntime's CUDA kernel for 2-D BatchNorm
    is slow); the parity test above shows the folded graph still matches PyTorch."""
    model = onnx.load(str(exported_models[("cgan", arch)]))
    assert "BatchNormalization" not in {n.op_type for n in model.graph.node}
    assert "Gemm" in {n.op_type for n in model.graph.node}


def test_folding_keeps_the_outputs_and_drops_the_statistics(tmp_path, trained_runs):
    from gan_pack.onnx_tools.graph import fold_batchnorm_into_next_gemm
    from gan_pack.pytorch.export import ExportedGenerator, to_onnx

    generator, _ = load_generator(trained_runs[("cgan", "mlp")])
    path = tmp_path / "raw.onnx"
    to_onnx(ExportedGenerator(generator, half=False).eval(), path, 100, 10, 18)
    model = onnx.load(str(path))
    before = len(model.graph.initializer)
    assert fold_batchnorm_into_next_gemm(model) == 3                   # one per hidden layer
    assert len(model.graph.initializer) == before - 12                  # gamma, beta, mean, var each
    feeds = {"noise": np.random.default_rng(0).standard_normal((64, 100), dtype=np.float32),
             "labels": np.arange(64) % 10}
    raw = ort.InferenceSession(str(path)).run(["images"], feeds)[0]
    folded = ort.InferenceSession(model.SerializeToString()).run(["images"], feeds)[0]
    assert np.abs(raw - folded).max() < 1e-5 and np.abs(raw).max() > 0.1


@pytest.mark.slow
def test_a_min_width_run_exports_its_wider_generator(tiny_idx, tmp_path):
    """--min-width and --refine-from are part of the recipe that export rebuilds G from: the export
    holds the floored and the added layers and matches PyTorch (the export's own parity check)."""
    from conftest import tiny_config
    from gan_pack.pytorch.train import train

    train(tiny_config(tmp_path / "run", tiny_idx, arch="dcgan", width=8, min_width=32, refine_from=28))
    reports = export_generator(tmp_path / "run", tmp_path / "g.onnx", ExportOptions(batch_sizes=(1, 7)))
    assert all(r.ok for r in reports)
    generator, ckpt = load_generator(tmp_path / "run")
    assert ckpt["config"]["min_width"] == 32
    convs = [m for m in generator.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in convs] == [32, 32]                 # 28 px: 16, 8 without the floor
    weights = {tuple(t.dims) for t in onnx.load(str(tmp_path / "g.onnx")).graph.initializer}
    assert (4 * 32, 32, 2, 2) in weights                               # 32 -> 32, as four 2x2 phases
    assert ckpt["config"]["refine_from"] == 28
    assert (32, 32, 3, 3) in weights                                   # the one added at 28 px
