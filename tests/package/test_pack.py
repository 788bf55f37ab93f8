"""ganpack pack and verify: a tiny trained run packed with its variants, verified, then tampered with."""

import json
import shutil

import numpy as np
import pytest

from conftest import one_error_line, run_cli, shipped
from gan_pack.contract.package_format import SUMS, decode, encode

pytestmark = pytest.mark.onnx            # packing writes ONNX; the tests of a packed run need torch too


@pytest.fixture(scope="module")
def package(tmp_path_factory, trained_runs):
    out = tmp_path_factory.mktemp("dist") / "tiny"
    code = run_pack([trained_runs[("cgan", "mlp")], "-o", out, "--variants", "fp16,int8", "--license", "apache-2.0"])
    assert code == 0
    return out


def run_pack(args):
    import sys

    from gan_pack.cli.app import main

    argv, sys.argv = sys.argv, ["ganpack", "pack", *map(str, args)]
    try:
        main()
    except SystemExit as e:
        return e.code
    finally:
        sys.argv = argv


def copy(package, tmp_path):
    target = tmp_path / "tiny"
    shutil.copytree(package, target)
    return target


def resum(folder):
    """Re-sign a tampered folder as a careful forger would: the manifest's own list, then SHA256SUMS."""
    from gan_pack.core.files import file_sha256
    from gan_pack.package.manifest import write_sums

    manifest = json.loads((folder / "tiny.json").read_text())
    for entry in manifest["files"]:
        entry.update(bytes=(folder / entry["path"]).stat().st_size, sha256=file_sha256(folder / entry["path"]))
    (folder / "tiny.json").write_text(json.dumps(manifest))
    (folder / SUMS).unlink()
    write_sums(folder)


def test_the_package_holds_every_file(package):
    assert package.stat().st_mode & 0o005 == 0o005                          # others may read it
    names = sorted(p.name for p in package.iterdir())
    assert names == sorted(["README.md", SUMS, "tiny.golden.json", "tiny.json", "tiny.onnx", "tiny.fp16.onnx",
                            "tiny.fp16.parity.json", "tiny.int8.onnx", "tiny.parity.json", "tiny.png"])
    manifest = json.loads((package / "tiny.json").read_text())
    assert manifest["format"] == "gan_pack.package/2" and manifest["noise_dim"] == 100
    assert manifest["num_classes"] == 10 and manifest["class_names"] == [str(c) for c in range(10)]
    assert manifest["image_shape"] == [1, 28, 28] and manifest["training"]["model"] == "cgan"
    models = {f["path"]: f for f in manifest["files"] if "precision" in f}
    assert {m["precision"] for m in models.values()} == {"fp32", "fp16", "int8-dynamic"}
    assert all(m["parity"]["ok"] for m in models.values())
    assert (package / "tiny.golden.json").stat().st_size < 100_000                    # kilobytes
    for line in (package / SUMS).read_text().splitlines():
        digest, name = line.split("  ")
        assert len(digest) == 64 and (package / name).is_file()


def test_model_card_front_matter(package):
    text = (package / "README.md").read_text()
    _, front, body = text.split("---\n", 2)
    import yaml

    card = yaml.safe_load(front)
    assert card["license"] == "apache-2.0" and card["library_name"] == "onnxruntime"
    assert card["pipeline_tag"] == "unconditional-image-generation" and card["datasets"] == ["mnist"]
    assert "conditional-gan" in card["tags"] and "![samples](./tiny.png)" in body
    assert "OnnxGenerator(\".\")" in body and "sample.js" in body and "Intended use" in body
    variants = body.split("## Variants", 1)[1].split("##", 1)[0]
    assert "| `tiny.int8.onnx` | any | int8-dynamic |" in variants and "| `tiny.fp16.onnx` | any | fp16 |" in variants


def test_identity_and_image_metadata_in_every_model(package):
    import onnx

    for name in ("tiny.onnx", "tiny.fp16.onnx", "tiny.int8.onnx"):
        model = onnx.load(str(package / name), load_external_data=False)
        meta = {p.key: p.value for p in model.metadata_props}
        assert (model.producer_name, model.domain, model.model_version) == ("gan_pack", "org.ganpack", 1)
        assert model.producer_version and "noise" in model.doc_string
        assert meta["Image.BitmapPixelFormat"] == "Gray8" and meta["Image.NominalPixelRange"] == "Normalized_1_1"


def test_verify_passes_and_reports_each_vector(package, capsys):
    code, out, err = run_cli(["verify", package], capsys)
    assert code == 0, err
    assert out.count(" ok") == 12 and "verified" in out                   # 4 vectors x 3 model files


@pytest.mark.parametrize("tamper, words", [
    ("flip_model_byte", "tiny.onnx: SHA-256 does not match SHA256SUMS"),
    ("edit_manifest", "tiny.json: SHA-256 does not match"),
    ("edit_manifest_and_sums", "the manifest says noise_dim 64"),
    ("truncation_and_sums", "the manifest says truncation 1.5 but tiny.fp16.onnx's metadata says None"),
    ("drop_vector", "tiny.golden.json: SHA-256 does not match"),
    ("drop_vector_and_sums", "vectors is not a list of the 4 vectors the manifest records"),
    ("change_image_and_sums", "golden vector 1: tiny.onnx differs by"),
    ("add_file", "extra.onnx: not listed in SHA256SUMS"),
    ("remove_golden", "tiny.golden.json is listed in SHA256SUMS but missing"),
])
def test_tampering_exits_1_naming_the_problem(package, tmp_path, capsys, tamper, words):
    folder = copy(package, tmp_path)
    manifest, golden = folder / "tiny.json", folder / "tiny.golden.json"
    if tamper == "flip_model_byte":
        data = bytearray((folder / "tiny.onnx").read_bytes())
        data[len(data) // 2] ^= 0x01
        (folder / "tiny.onnx").write_bytes(bytes(data))
    elif tamper.startswith("edit_manifest"):
        facts = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**facts, "noise_dim": 64}))
    elif tamper == "truncation_and_sums":
        manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "truncation": 1.5}))
    elif tamper.startswith("drop_vector"):
        vectors = json.loads(golden.read_text())
        golden.write_text(json.dumps({**vectors, "vectors": vectors["vectors"][:3]}))
    elif tamper == "change_image_and_sums":
        vectors = json.loads(golden.read_text())
        image = decode(vectors["vectors"][0]["images"]["tiny.onnx"], (1, 28, 28)).copy()
        image[0, 14, 14] += 0.01
        vectors["vectors"][0]["images"]["tiny.onnx"] = encode(image)
        golden.write_text(json.dumps(vectors))
    elif tamper == "add_file":
        shutil.copy(folder / "tiny.onnx", folder / "extra.onnx")
    elif tamper == "remove_golden":
        golden.unlink()
    if tamper.endswith("_sums"):
        resum(folder)
    code, _, err = run_cli(["verify", folder], capsys)
    assert code == 1 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("error:") and words in err, err


def test_verify_a_lone_model(package, tmp_path, capsys):
    code, out, _ = run_cli(["verify", package / "tiny.int8.onnx"], capsys)         # in its package: the package
    assert code == 0 and "a model of the package" in out and out.count(" ok") == 12
    shutil.copy(package / "tiny.onnx", tmp_path / "alone.onnx")
    code, out, _ = run_cli(["verify", tmp_path / "alone.onnx"], capsys)
    assert code == 0 and "smoke run only" in out


def test_pack_an_onnx_keeps_its_graph(tmp_path, capsys):
    import onnx

    source = tmp_path / "g.onnx"
    shutil.copy(shipped("mnist-gan.onnx"), source)
    code, _, err = run_cli(["pack", source, "-o", tmp_path / "dist" / "g"], capsys)
    assert code == 0, err
    before, after = onnx.load(str(source)), onnx.load(str(tmp_path / "dist" / "g" / "g.onnx"))
    assert before.graph.SerializeToString() == after.graph.SerializeToString()
    assert after.producer_name == "gan_pack" and not (tmp_path / "dist" / "g" / "g.eval.json").exists()


@pytest.mark.parametrize("figure, carried", [(0.851, True), ("0.1 (trust me)", False), (float("nan"), False),
                                             (10 ** 400, False)])
def test_an_evaluation_beside_the_onnx_is_carried_only_if_its_figures_are_numbers(tmp_path, capsys, figure, carried):
    shipped_package = shipped("mnist-gan.onnx").parent
    shutil.copy(shipped_package / "mnist-gan.onnx", tmp_path / "g.onnx")
    evaluation = json.loads((shipped_package / "mnist-gan.eval.json").read_text())
    (tmp_path / "g.eval.json").write_text(json.dumps({**evaluation, "fcd": figure}))
    code, _, err = run_cli(["pack", tmp_path / "g.onnx", "-o", tmp_path / "dist"], capsys)
    assert code == 0 and "Traceback" not in err, err
    card = (tmp_path / "dist" / "README.md").read_text()
    assert (tmp_path / "dist" / "dist.eval.json").exists() == carried and ("## Evaluation" in card) == carried
    assert carried or "its figures are not numbers" in err


def test_pack_with_evaluation_puts_figures_in_the_card(tmp_path, trained_runs, tiny_idx):
    import yaml

    from gan_pack.package.pack import PackOptions, pack
    from gan_pack.pytorch.export import export_for_pack

    model, _ = export_for_pack(trained_runs[("cgan", "mlp")], tmp_path)
    out = pack(model, tmp_path / "e", PackOptions(
        classifier=str(shipped("mnist-classifier.onnx")), data_dir=str(tiny_idx), eval_n=64))
    card = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])
    metrics = card["model-index"][0]["results"][0]["metrics"]
    assert {m["type"] for m in metrics} >= {"fcd", "conditional_accuracy", "recall"}
    evaluation = json.loads((out / "e.eval.json").read_text())
    assert evaluation["n"] == 64 and json.loads((out / "e.json").read_text())["evaluation"]["fcd"] == evaluation["fcd"]


def test_a_packed_truncation_is_every_samplers_default(tmp_path, capsys, tiny_idx):
    """pack --truncation records the threshold in the model's metadata and the manifest; sampling,
    the grid and the evaluation use it unless told otherwise (0: none); verify holds the two to each
    other."""
    from gan_pack.runtime.generator import OnnxGenerator

    source, out = shipped("mnist-cgan.onnx"), tmp_path / "t"
    code, _, err = run_cli(["pack", source, "-o", out, "--truncation", "0.8"], capsys)
    assert code == 0, err
    facts = json.loads((out / "t.json").read_text())
    assert facts["truncation"] == 0.8 and facts["metadata"]["truncation"] == "0.8"
    assert "truncate the noise at 0.8" in (out / "README.md").read_text()
    packed, plain = OnnxGenerator(out), OnnxGenerator(source)
    assert packed.info.truncation == 0.8 and plain.info.truncation is None
    by_default = packed.sample(24, labels=3, seed=5)
    np.testing.assert_array_equal(by_default, plain.sample(24, labels=3, seed=5, truncation=0.8))
    np.testing.assert_array_equal(packed.sample(24, labels=3, seed=5, truncation=0), plain.sample(24, labels=3, seed=5))
    assert not np.array_equal(by_default, plain.sample(24, labels=3, seed=5))
    assert np.abs(packed.noise(24, seed=5)).max() <= 0.8 < np.abs(packed.noise(24, seed=5, truncation=0)).max()
    code, _, _ = run_cli(["sample", out, "-n", 24, "--label", 3, "--seed", 5, "-o", tmp_path / "d.npy"], capsys)
    assert code == 0 and np.array_equal(np.load(tmp_path / "d.npy"), by_default)
    code, out_text, _ = run_cli(["evaluate", out, "--classifier", shipped("mnist-classifier.onnx"), "--data-dir",
                                 tiny_idx, "-n", 40, "--json", tmp_path / "e.json"], capsys)
    assert code == 0 and json.loads((tmp_path / "e.json").read_text())["truncation"] == 0.8
    assert "truncation 0.8" in out_text
    code, _, _ = run_cli(["verify", out], capsys)
    assert code == 0
    facts["truncation"] = 2.0                          # a manifest that no longer says what the model does
    (out / "t.json").write_text(json.dumps(facts))
    code, _, err = run_cli(["verify", out], capsys)
    assert code == 1 and "t.json: SHA-256 does not match" in err
    repacked = tmp_path / "r"
    code, _, _ = run_cli(["pack", out, "-o", repacked, "--truncation", "0"], capsys)      # 0 removes it
    assert code == 0 and OnnxGenerator(repacked).info.truncation is None


@pytest.mark.parametrize("args, words", [
    (["{run}", "-o", "{existing}"], "already exists"),
    (["{onnx}", "-o", "{new}", "--variants", "fp16"], "--variants fp16 is exported from PyTorch"),
    (["{onnx}", "-o", "{new}", "--variants", "int4"], "--variants must be one of cuda, fp16, int8"),
    (["{onnx}", "-o", "{new}", "--eval"], "--eval goes with --classifier and --data-dir"),
    (["{onnx}", "-o", "/proc/gan-pack-test"], "/proc"),              # looks writable to root, is not
    (["{onnx}", "-o", "{new}", "--truncation", "0.05"], "--truncation must be a number >= 0.1 (or 0 for none)"),
    (["{onnx}", "-o", "{new}", "--truncation", "nan"], "--truncation must be a number >= 0.1"),
    (["{onnx}", "-o", "{new}", "--variants", "int8,int8"], "--variants names int8 more than once"),
])
def test_pack_mistakes(tmp_path, capsys, trained_runs, args, words):
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "file").write_text("x")
    paths = {"{run}": trained_runs[("gan", "mlp")], "{existing}": tmp_path / "existing", "{new}": tmp_path / "new",
             "{onnx}": shipped("mnist-gan.onnx")}
    code, _, err = run_cli(["pack", *[paths.get(a, a) for a in args]], capsys)
    one_error_line(code, err, words)
    assert not (tmp_path / "new").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("name", ["../evil", "/tmp/evil", "a\nb", ".hidden", "x" * 101, ""])
def test_a_name_that_is_not_a_plain_file_name_writes_nothing(tmp_path, capsys, name):
    out = tmp_path / "pkg" / "new"
    code, _, err = run_cli(["pack", shipped("mnist-gan.onnx"), "-o", out, "--name", name], capsys)
    one_error_line(code, err, "--name must be a plain file name")
    assert not (tmp_path / "pkg").exists() and not (tmp_path / "evil").exists()


def test_packing_a_file_that_is_no_model_writes_nothing(tmp_path, capsys):
    (tmp_path / "random.onnx").write_bytes(bytes(range(256)) * 40)
    code, _, err = run_cli(["pack", tmp_path / "random.onnx", "-o", tmp_path / "pkg"], capsys)
    one_error_line(code, err, "is not a loadable ONNX model")
    assert not (tmp_path / "pkg").exists()


def test_verify_something_that_is_not_a_package(tmp_path, capsys):
    code, _, err = run_cli(["verify", tmp_path], capsys)
    one_error_line(code, err, "is not a package")


def test_golden_vectors_round_trip():
    values = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(decode(encode(values), (2, 3)), values)


@pytest.mark.slow                       # three packs of shipped packages
def test_packing_a_package_again_carries_its_license_and_notice_and_says_what_it_drops(tmp_path, capsys):
    """Re-packing the shipped emoji package keeps its CC-BY license and attribution; re-packing the
    MNIST cGAN without --variants cuda says its CUDA variant is not carried, and why."""
    from conftest import EXPORTED

    if not (EXPORTED / "emoji-cgan").is_dir() or not (EXPORTED / "mnist-cgan" / "mnist-cgan.cuda.onnx").is_file():
        pytest.skip("the shipped packages are not in this checkout")
    code, _, err = run_cli(["pack", EXPORTED / "emoji-cgan", "-o", tmp_path / "emoji", "--variants", "int8"], capsys)
    assert code == 0, err
    card = (tmp_path / "emoji" / "README.md").read_text()
    source = (EXPORTED / "emoji-cgan" / "README.md").read_text()
    notice = source.split("## Training data: licenses and attribution\n\n")[1].split("\n\n## Intended use")[0]
    assert 'license: "cc-by-4.0"' in card and notice in card and "carrying the source package's license" in err
    code, _, err = run_cli(["pack", EXPORTED / "emoji-cgan", "-o", tmp_path / "mit", "--license", "mit"], capsys)
    assert code == 0 and 'license: "mit"' in (tmp_path / "mit" / "README.md").read_text()
    code, _, err = run_cli(["pack", EXPORTED / "mnist-cgan", "-o", tmp_path / "x", "--triton", tmp_path / "models"],
                           capsys)
    assert code == 0 and "not carrying the source's cuda variant" in err and "--variants cuda" in err


@pytest.mark.slow                       # exports a run
def test_pack_takes_a_runs_raw_weights(tmp_path, capsys, trained_runs):
    from gan_pack.runtime.generator import OnnxGenerator

    run = trained_runs[("gan", "mlp")]
    code, _, err = run_cli(["pack", run, "-o", tmp_path / "raw", "--weights", "raw"], capsys)
    assert code == 0, err
    assert OnnxGenerator(tmp_path / "raw").info.raw.get("weights") == "raw"
