"""A package with a variant made for CUDA, as `pack --variants cuda` makes it on a GPU machine, with
the CPU provider standing in for CUDA: the runtime picks the file for the device it runs on (or the
one asked for), info says which, and verify checks the variant where its provider is absent."""

import json
import shutil

import pytest

from conftest import EXPORTED, one_error_line, run_cli
from gan_pack.contract.parity import DEFAULT_ATOL
from gan_pack.core.files import file_sha256
from gan_pack.runtime.generator import OnnxGenerator

pytestmark = pytest.mark.onnx
NAME = "mnist-cgan"


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The shipped package, re-made with NAME.cuda.onnx beside its model (manifest format /2)."""
    import onnx

    from gan_pack.onnx_tools.cuda import CUDA_OPTIONS, cuda_graph
    from gan_pack.onnx_tools.variant import Proof, derive
    from gan_pack.package.manifest import golden_vectors, manifest, write_sums

    folder = tmp_path_factory.mktemp("pkg") / NAME
    shutil.copytree(EXPORTED / NAME, folder)
    main = folder / f"{NAME}.onnx"
    reference = OnnxGenerator(main)
    meta = {k: v for k, v in reference.info.raw.items() if k != "parity"}
    meta.update(precision="fp16", provider="cuda", cuda_options=json.dumps(CUDA_OPTIONS),
                derived_from_sha256=file_sha256(main))
    derive(cuda_graph(onnx.load(str(main))), meta, folder / f"{NAME}.cuda.onnx",
           Proof(reference.generate, "fp32", "fp16-cuda", DEFAULT_ATOL["fp16"], "mismatch", key="parity_vs_fp32"))
    generators = {p.name: OnnxGenerator(p) for p in (main, folder / f"{NAME}.cuda.onnx")}
    (folder / f"{NAME}.golden.json").write_text(json.dumps(golden_vectors(generators, reference.info)))
    evaluation = json.loads((folder / f"{NAME}.eval.json").read_text())
    speed = {"provider": "cuda", "batch": 8192, "images_per_s": 2, "main_images_per_s": 1}
    facts = manifest(NAME, folder, generators, evaluation, {f"{NAME}.cuda.onnx": {"speed": speed}})
    (folder / f"{NAME}.json").write_text(json.dumps(facts))
    (folder / "SHA256SUMS").unlink()
    write_sums(folder)
    return folder


def test_the_manifest_names_the_variant_and_its_provider(package):
    entries = {e["path"]: e for e in json.loads((package / f"{NAME}.json").read_text())["files"]}
    assert json.loads((package / f"{NAME}.json").read_text())["format"] == "gan_pack.package/2"
    assert entries[f"{NAME}.cuda.onnx"]["provider"] == "cuda" and entries[f"{NAME}.cuda.onnx"]["precision"] == "fp16"
    assert entries[f"{NAME}.cuda.onnx"]["speed"]["batch"] == 8192 and "provider" not in entries[f"{NAME}.onnx"]


def test_the_runtime_picks_by_device_or_as_asked(package):
    on_cpu = OnnxGenerator(package)
    assert (on_cpu.path.name, on_cpu.variant) == (f"{NAME}.onnx", "main")
    asked = OnnxGenerator(package, variant="cuda")
    assert (asked.path.name, asked.variant, asked.chosen) == (f"{NAME}.cuda.onnx", "cuda", "asked for (--variant cuda)")
    assert asked.info.precision == "fp16"
    from gan_pack.runtime.session import cuda_available

    # auto: the CUDA variant on a GPU machine; elsewhere the model for every runtime
    assert OnnxGenerator(package, device="auto").variant == ("cuda" if cuda_available() else "main")


def test_info_says_which_file_it_runs(package, capsys):
    code, out, _ = run_cli(["info", package, "--variant", "cuda"], capsys)
    assert code == 0 and "variant: cuda (asked for (--variant cuda))" in out and "provider" in out


def test_an_unknown_variant_or_a_variant_of_a_lone_file_is_one_line(package, tmp_path, capsys):
    code, _, err = run_cli(["sample", package, "--variant", "int4", "-o", tmp_path / "x.png"], capsys)
    one_error_line(code, err, "has no variant 'int4'; it has cuda, main")
    code, _, err = run_cli(["sample", package / f"{NAME}.onnx", "--variant", "cuda", "-o", tmp_path / "x.png"], capsys)
    one_error_line(code, err, "is not a package folder")


def test_verify_checks_the_cuda_variant_on_the_cpu_and_says_so(package, capsys):
    from gan_pack.runtime.session import cuda_available

    if cuda_available():
        pytest.skip("this machine has CUDA: tests/runtime/test_cuda.py verifies there")
    code, out, err = run_cli(["verify", package], capsys)
    assert code == 0, err
    assert "made for CUDA, which this machine lacks: checked on the CPU" in out
    assert out.count(" ok") == 8 and "verified" in out


def test_a_variant_claiming_another_source_fails(package, tmp_path, capsys):
    """A variant that says it was made from another model than NAME.onnx (a swapped variant)."""
    import onnx

    folder = tmp_path / NAME
    shutil.copytree(package, folder)
    variant = onnx.load(str(folder / f"{NAME}.cuda.onnx"))
    for entry in variant.metadata_props:
        if entry.key == "derived_from_sha256":
            entry.value = "0" * 64
    onnx.save(variant, str(folder / f"{NAME}.cuda.onnx"))
    facts = json.loads((folder / f"{NAME}.json").read_text())
    for entry in facts["files"]:
        if entry["path"] == f"{NAME}.cuda.onnx":
            entry["sha256"] = file_sha256(folder / entry["path"])
    (folder / f"{NAME}.json").write_text(json.dumps(facts))
    from gan_pack.package.manifest import write_sums

    (folder / "SHA256SUMS").unlink()
    write_sums(folder)
    code, _, err = run_cli(["verify", folder], capsys)
    assert code == 1 and "says it was made from another model" in err


def test_the_card_shows_each_variant_with_its_figures(package):
    from gan_pack.package.card import model_card

    facts = json.loads((package / f"{NAME}.json").read_text())
    card = model_card(facts, facts["evaluation"], "mit")
    rows = card.split("## Variants", 1)[1].splitlines()
    row = next(line for line in rows if line.startswith(f"| `{NAME}.cuda.onnx`"))
    assert "| cuda | fp16 |" in row and "2 (2.00x `mnist-cgan.onnx`)" in row
    assert "| `mnist-cgan.onnx` |" in card and "| any |" in card


def test_sample_says_which_variant_it_runs(package, tmp_path, capsys):
    code, _, err = run_cli(["sample", package, "--variant", "cuda", "-n", 4, "-o", tmp_path / "x.png"], capsys)
    assert code == 0 and err.strip() == "running mnist-cgan.cuda.onnx (variant cuda, asked for (--variant cuda)) " \
                                        "on CPUExecutionProvider"
    code, _, err = run_cli(["sample", package, "-n", 4, "-o", tmp_path / "y.png"], capsys)
    assert code == 0 and err == ""
