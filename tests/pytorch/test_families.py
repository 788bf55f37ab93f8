"""The family registry: `ganpack export` with no --from picks each family from what the checkpoint
holds, `ganpack inspect` says what it read, and what fits no family (or several) says which families
were tried and why each said no."""

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

sys.path.insert(0, str(Path(__file__).parent))
import nvlabs_format as nf  # noqa: E402
from test_importer import ZOO, trained  # noqa: E402,F401

from conftest import one_error_line, run_cli  # noqa: E402
from gan_pack.errors import CheckpointError  # noqa: E402
from gan_pack.pytorch import families  # noqa: E402


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    import importlib.util

    folder = tmp_path_factory.mktemp("zoo")
    (folder / "zoo.py").write_text(ZOO)
    spec = importlib.util.spec_from_file_location("family_zoo", folder / "zoo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["family_zoo"] = module
    spec.loader.exec_module(module)
    yield folder, module
    del sys.modules["family_zoo"]


@pytest.mark.parametrize("name,classes,family", [("TutorialGAN", 0, "tutorial-gan"),
                                                 ("TutorialCGAN", 10, "tutorial-cgan")])
def test_a_tutorial_state_dict_is_detected(zoo, capsys, name, classes, family):
    """What inspect says; export finds the same (test_importer exports tutorial-gan without --from)."""
    weights, _ = trained(zoo, name, classes=classes)
    code, out, _ = run_cli(["inspect", weights, "--json"], capsys)
    report = json.loads(out)
    assert report["family"] == family and report["facts"]["num_classes"] == classes
    assert report["facts"]["noise_dim"] == 100 and "not the tutorial's layout" not in json.dumps(report["facts"])


def test_a_run_is_detected(trained_runs, capsys):
    """What inspect says; that export says it too is in tests/cli/test_train.py's export."""
    run = trained_runs[("cgan", "mlp")]
    code, out, _ = run_cli(["inspect", run], capsys)
    assert code == 0 and out.startswith(f"{run}: gan-pack") and "not nvlabs-stylegan2" in out


def test_a_state_dict_of_no_known_family_lists_the_families_tried(zoo, tmp_path, capsys):
    weights, _ = trained(zoo, "PyTorchGANcGAN", classes=10)
    code, _, err = run_cli(["export", weights, "-o", tmp_path / "x.onnx"], capsys)
    one_error_line(code, err, "no generator family gan_pack knows", "tutorial-cgan: not the tutorial's layout",
                   "stylegan2-torch: no g_ema", "nvlabs-stylegan2: not an NVlabs network pickle", "--module")
    assert not (tmp_path / "x.onnx").exists()


def test_what_several_families_fit_asks_for_from(zoo, monkeypatch):
    weights, _ = trained(zoo, "TutorialGAN")
    twin = families.Family("tutorial-twin", "a family that reads the same keys", families.FAMILIES[1].detect,
                           families.FAMILIES[1].load, families.FAMILIES[1].facts)
    monkeypatch.setattr(families, "FAMILIES", families.FAMILIES + (twin,))
    with pytest.raises(CheckpointError, match=r"fits several families \(tutorial-gan, tutorial-twin\).*--from"):
        families.detect(families.open_source(weights))


def test_from_overrides_detection_and_flags_are_held_to_the_family(zoo, tmp_path, capsys):
    weights, _ = trained(zoo, "TutorialCGAN", classes=10)
    code, _, err = run_cli(["export", weights, "--from", "tutorial-gan", "-o", tmp_path / "x.onnx"], capsys)
    one_error_line(code, err, "has a label embedding", "--from tutorial-cgan")
    code, _, err = run_cli(["export", weights, "--seed", "3", "-o", tmp_path / "x.onnx"], capsys)
    one_error_line(code, err, "is tutorial-cgan", "does not take --seed", "drop --seed")
    pickle_path = tmp_path / "s.pkl"
    nf.dump_snapshot(pickle_path, {"G_ema": nf.small_generator()})
    code, _, err = run_cli(["export", pickle_path, "--noise-dim", "32", "-o", tmp_path / "x.onnx"], capsys)
    one_error_line(code, err, "nvlabs-stylegan2", "does not take --noise-dim")
    code, _, err = run_cli(["export", weights, "--from", "nvlabs-stylegan2", "-o", tmp_path / "x.onnx"], capsys)
    one_error_line(code, err, "not an NVlabs network pickle")
    code, _, err = run_cli(["export", pickle_path, "--from", "nvlabs-stylegan3", "-o", tmp_path / "x.onnx"], capsys)
    one_error_line(code, err, "is not nvlabs-stylegan3: its generator is stylegan2", "drop --from")
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_stylegan2_torch_is_detected_and_its_init_read_from_shapes(tmp_path, capsys):
    from test_stylegan2 import SMALL, build

    g = build(SMALL)
    torch.save({"g_ema": g.state_dict()}, tmp_path / "G.pt")
    code, out, _ = run_cli(["inspect", tmp_path / "G.pt", "--json"], capsys)
    facts = json.loads(out)["facts"]
    assert {k: facts[k] for k in ("resolution", "latent_dim", "n_mlp", "channels")} == SMALL
    code, out, err = run_cli(["export", tmp_path / "G.pt", "-o", tmp_path / "sg.onnx"], capsys)
    assert code == 0, err
    assert "stylegan2-torch)" in out
