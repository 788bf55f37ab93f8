import json

import numpy as np
import pytest

from conftest import run_cli, tiny_config
from gan_pack.evaluate.metrics import class_histogram, classifier_score, frechet_distance, kl_divergence, prdc, softmax


def test_identical_sets():
    x = np.random.default_rng(0).standard_normal((2000, 8))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    m = prdc(x, x, k=5)
    assert m["precision"] == 1.0 and m["recall"] == 1.0 and m["coverage"] == 1.0
    assert m["density"] == pytest.approx(6 / 5)                 # each point also sits in its own ball


def test_same_distribution_independent_samples():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((3000, 4)), rng.standard_normal((3000, 4))
    assert frechet_distance(a, b) < 0.02
    m = prdc(a, b, k=5)
    assert m["precision"] > 0.9 and m["recall"] > 0.9 and m["coverage"] > 0.9
    assert m["density"] == pytest.approx(1.0, abs=0.1)


def test_shifted_gaussians_frechet_is_squared_mean_distance():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((20000, 4))
    b = rng.standard_normal((20000, 4)) + np.array([3.0, 0, 0, 0])
    assert frechet_distance(a, b) == pytest.approx(9.0, rel=0.03)


def test_scaled_gaussian_frechet():
    """N(0, I) vs N(0, 4I) in d dims: d * (1 + 4 - 2 * 2) = d."""
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((20000, 3)), 2.0 * rng.standard_normal((20000, 3))
    assert frechet_distance(a, b) == pytest.approx(3.0, rel=0.05)


def test_disjoint_sets_have_no_precision_or_recall():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((500, 4))
    b = rng.standard_normal((500, 4)) + 100.0
    m = prdc(a, b, k=5)
    assert m == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_subset_has_precision_but_low_recall():
    rng = np.random.default_rng(4)
    real = rng.standard_normal((2000, 2))
    fake = real[real[:, 0] > 1.0] + 1e-3                       # one tail of the real data only
    m = prdc(real, fake, k=5)
    assert m["precision"] > 0.95 and m["recall"] < 0.4


def test_classifier_score_and_kl():
    confident = np.eye(10)[np.arange(1000) % 10]
    assert classifier_score(confident * 0.999 + 0.0001) == pytest.approx(10.0, rel=0.02)
    assert classifier_score(np.full((100, 10), 0.1)) == pytest.approx(1.0)
    uniform = np.full(10, 0.1)
    assert kl_divergence(uniform, uniform) == pytest.approx(0.0)
    missing = class_histogram(np.arange(900) % 9, 10)          # no class 9
    assert kl_divergence(uniform, missing) > 1.0
    assert softmax(np.array([[0.0, 0.0]])).tolist() == [[0.5, 0.5]]


# ---------------------------------------------------------------- end to end with a tiny classifier

torch_needed = pytest.mark.torch


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory, tiny_idx):
    from gan_pack.pytorch.classifier import ClassifierConfig, export_classifier, train_classifier

    config = ClassifierConfig(data_dir=str(tiny_idx), epochs=8, batch_size=16, device="cpu")   # about 80% right
    model, acc = train_classifier(config, log=lambda line: None)
    path = tmp_path_factory.mktemp("cls") / "classifier.onnx"
    export_classifier(model, path, config, acc)
    return path


@torch_needed
def test_classifier_onnx_contract(tiny_classifier):
    import onnxruntime as ort

    session = ort.InferenceSession(str(tiny_classifier), providers=["CPUExecutionProvider"])
    logits, features = session.run(None, {"images": np.zeros((3, 1, 28, 28), np.float32)})
    assert logits.shape == (3, 10) and features.shape == (3, 128)
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["gan_pack.kind"] == "classifier" and 0.0 <= float(meta["test_accuracy"]) <= 1.0
    assert session.get_inputs()[0].shape[0] == "batch"


@torch_needed
def test_evaluate_end_to_end(tiny_classifier, exported_models, tiny_idx, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code, stdout, err = run_cli(["evaluate", exported_models[("cgan", "mlp")], "--classifier", tiny_classifier,
                                 "--data-dir", tiny_idx, "-n", "30", "--json", out], capsys)
    assert code == 0, err
    assert "unreliable" in err                                 # 30 <= 128 features
    result = json.loads(out.read_text())
    for key in ("fcd", "fcd_floor_train_vs_test", "conditional_accuracy", "per_class_accuracy", "class_kl",
                "classifier_score", "classifier_score_real_test", "precision", "recall", "density",
                "coverage", "model_sha256", "classifier_sha256", "n", "seed"):
        assert key in result, key
    assert len(result["per_class_accuracy"]) == 10 and result["n"] == 30
    assert "FCD" in stdout and "recall" in stdout


@torch_needed
def test_evaluate_gan_has_no_conditional_accuracy(tiny_classifier, exported_models, tiny_idx, capsys):
    code, stdout, err = run_cli(["evaluate", exported_models[("gan", "dcgan")], "--classifier", tiny_classifier,
                                 "--data-dir", tiny_idx, "-n", "40"], capsys)
    assert code == 0, err
    assert "conditional accuracy" not in stdout and "class KL" in stdout


@pytest.mark.slow                       # a training and an export, for one error line
@torch_needed
def test_rgb_32px_generator_with_mnist_classifier(tiny_classifier, tmp_path, capsys):
    from PIL import Image

    from gan_pack.pytorch.export import ExportOptions, export_generator
    from gan_pack.pytorch.train import train

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    train(tiny_config(tmp_path / "run", tmp_path / "imgs", model="gan", dataset="folder", arch="dcgan",
                      image_size=32, channels=3, batch_size=4))
    export_generator(tmp_path / "run", tmp_path / "rgb.onnx", ExportOptions(batch_sizes=(1, 7), rewrite="on"))
    code, _, err = run_cli(["evaluate", tmp_path / "rgb.onnx", "--classifier", tiny_classifier,
                            "--data-dir", tmp_path, "-n", "16"], capsys)
    assert code == 2 and "(3, 32, 32)" in err and "Traceback" not in err


@torch_needed
def test_classifier_with_other_class_count(tiny_classifier, exported_models, tiny_idx, tmp_path, capsys):
    import onnx

    model = onnx.load(str(tiny_classifier))
    for prop in model.metadata_props:
        if prop.key == "num_classes":
            prop.value = "3"
    onnx.save(model, str(tmp_path / "three.onnx"))
    code, _, err = run_cli(["evaluate", exported_models[("cgan", "mlp")], "--classifier", tmp_path / "three.onnx",
                            "--data-dir", tiny_idx, "-n", "16"], capsys)
    assert code == 2 and "10 classes" in err


def test_generator_given_as_classifier(capsys, tmp_path):
    from conftest import shipped

    code, _, err = run_cli(["evaluate", shipped("mnist-cgan.onnx"), "--classifier", shipped("mnist-cgan.onnx"),
                            "--data-dir", tmp_path, "-n", "16"], capsys)
    assert code == 2 and "not a gan_pack classifier" in err


def test_shipped_model_on_real_mnist(capsys):
    """With the real data (GANPACK_DATA_DIR), a quick check that the shipped cGAN is good."""
    from conftest import real_data_dir, shipped
    from gan_pack.evaluate.quality import evaluate_generator

    data = real_data_dir("mnist")
    result = evaluate_generator(shipped("mnist-cgan.onnx"), shipped("mnist-classifier.onnx"), data, n=1000)
    assert result["conditional_accuracy"] > 0.95 and result["recall"] > 0.5


@torch_needed
def test_in_training_evaluation_logs_and_keeps_best(tiny_classifier, tiny_idx, tmp_path):
    from conftest import tiny_config
    from gan_pack.evaluate.classifier import OnnxClassifier, RealReference
    from gan_pack.evaluate.metrics import frechet_distance
    from gan_pack.pytorch.checkpoint import load_checkpoint
    from gan_pack.pytorch.train import train

    run = tmp_path / "run"
    train(tiny_config(run, tiny_idx, epochs=2, eval_every=1, classifier=str(tiny_classifier), eval_n=40))
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert [e["epoch"] for e in evals] == [1, 2]
    real = RealReference.load(OnnxClassifier(tiny_classifier), tiny_idx, 40, 0)
    floor = frechet_distance(real.train_features, real.test_features)
    for e in evals:
        assert e["fcd_ratio"] == pytest.approx(e["fcd"] / floor, rel=1e-2)
    best = min(evals, key=lambda e: e["fcd"])
    assert load_checkpoint(run / "checkpoint-best.pt")["step"] == best["step"]

    # Resumed, the run remembers the best FCD it logged: here a (made-up) perfect earlier
    # evaluation, so no new one may replace checkpoint-best.pt.
    before = (run / "checkpoint-best.pt").read_bytes()
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({**best, "fcd": 0.0}) + "\n")
    resumed = tiny_config(run, tiny_idx, epochs=3, eval_every=1, classifier=str(tiny_classifier), eval_n=40)
    train(resumed, resume=True)
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    assert [e["epoch"] for e in evals] == [1, 2, best["epoch"], 3]
    assert (run / "checkpoint-best.pt").read_bytes() == before


@torch_needed
def test_data_dir_of_another_data_set_is_warned_about(tiny_classifier, exported_models, tiny_idx, tmp_path, capsys):
    """MNIST and Fashion-MNIST share file names: the classifier's own accuracy on the test set tells."""
    import shutil

    from conftest import synthetic_digits
    from gan_pack.core.idx import write_idx

    other = tmp_path / "other"
    shutil.copytree(tiny_idx, other)
    images, labels = synthetic_digits(40, seed=1)
    write_idx(other / "t10k-labels-idx1-ubyte.gz", ((labels + 5) % 10).astype(np.uint8))     # other meanings
    args = ["evaluate", exported_models[("cgan", "mlp")], "--classifier", tiny_classifier, "-n", "30"]
    code, _, err = run_cli([*args, "--data-dir", other], capsys)
    assert code == 0 and "seems to hold another data set" in err
    code, _, err = run_cli([*args, "--data-dir", tiny_idx], capsys)
    assert code == 0 and "another data set" not in err


@pytest.mark.parametrize("n, seed", [(10000, 0), (7, 3), (1000, 1)])
def test_labels_follow_the_real_class_frequencies(n, seed):
    """A cGAN is measured with its classes drawn as often as the real test split has them: the counts
    are n times each class's share, rounded by largest remainders to sum to n, in a seeded order."""
    from gan_pack.evaluate.metrics import labels_in_proportion

    real = np.repeat(np.arange(4), [550, 25, 300, 125])             # imbalanced, like emoji categories
    labels = labels_in_proportion(real, n, 5, seed)                  # class 4 never occurs
    counts = np.bincount(labels, minlength=5)
    assert labels.dtype == np.int64 and counts.sum() == n and counts[4] == 0
    assert np.abs(counts - n * np.bincount(real, minlength=5) / len(real)).max() < 1
    assert (labels == labels_in_proportion(real, n, 5, seed)).all()
    if n > 100:
        assert not (labels == np.sort(labels)).all()                 # shuffled, not in class blocks
