"""Generator quality in the feature space of a classifier trained on the same data.

numpy + scipy + onnxruntime only (no torch). Metrics: FCD (Frechet distance of classifier
features), conditional accuracy, class coverage (KL), classifier score (the Inception Score
recipe), and precision / recall / density / coverage with k nearest neighbours.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gan_pack.config import EVAL_N_MIN, LIMITS
from gan_pack.contract import CLASSIFIER_KIND, file_sha256
from gan_pack.errors import ModelError

BUILTIN_DATASETS = ("mnist", "fashion-mnist")
EVAL_N_MAX, K_MAX = LIMITS["eval_n"], 100

EPS = 1e-12


# ---------------------------------------------------------------- metrics on arrays

def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets a (N, F) and b (M, F).

    The matrix square root is scipy.linalg.sqrtm; its tiny imaginary part is dropped.
    """
    import warnings

    from scipy import linalg

    a, b = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # near-singular products are handled below
        covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(cov_a)) * 1e-6
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    covmean = np.real(covmean)
    value = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))
    return max(value, 0.0)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def classifier_score(probs: np.ndarray) -> float:
    """exp(E_x KL(p(y|x) || p(y))): high when each image is confidently one class and all are used."""
    marginal = probs.mean(0, keepdims=True)
    kl = (probs * (np.log(probs + EPS) - np.log(marginal + EPS))).sum(1)
    return float(np.exp(kl.mean()))


def class_histogram(predicted: np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(predicted, minlength=num_classes) / max(len(predicted), 1)


def kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) in nats. With p the real label distribution, a missing class in q blows it up."""
    p, q = np.asarray(p, np.float64), np.clip(np.asarray(q, np.float64), 1e-6, None)
    q = q / q.sum()
    mask = p > 0
    return float((p[mask] * np.log(p[mask] / q[mask])).sum())


def _kth_neighbour_radii(x: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Distance from each row of x to its k-th nearest other row."""
    radii = np.empty(len(x))
    for start in range(0, len(x), chunk):
        d = _distances(x[start:start + chunk], x)
        radii[start:start + chunk] = np.partition(d, k, axis=1)[:, k]   # index 0 is the row itself
    return radii


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5, chunk: int = 1024) -> dict[str, float]:
    """Precision, recall (Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020)."""
    real, fake = real.astype(np.float64), fake.astype(np.float64)
    real_radii, fake_radii = _kth_neighbour_radii(real, k), _kth_neighbour_radii(fake, k)
    in_real_balls = np.zeros(len(fake), dtype=np.int64)     # per fake: real balls containing it
    covered = np.zeros(len(real), dtype=bool)
    recalled = np.zeros(len(real), dtype=bool)
    for start in range(0, len(real), chunk):
        d = _distances(real[start:start + chunk], fake)     # (chunk, M)
        radii = real_radii[start:start + chunk, None]
        in_real_balls += (d <= radii).sum(0)
        covered[start:start + chunk] = d.min(1) <= radii[:, 0]
        recalled[start:start + chunk] = (d <= fake_radii[None, :]).any(1)
    return {"precision": float((in_real_balls > 0).mean()), "recall": float(recalled.mean()),
            "density": float(in_real_balls.sum() / (k * len(fake))), "coverage": float(covered.mean())}


# ---------------------------------------------------------------- models and data

class OnnxClassifier:
    """An exported gan_pack classifier: images (B, 1, 28, 28) -> logits (B, K), features (B, F)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        from gan_pack.runtime import check_model_file, create_session

        self.path = Path(path)
        check_model_file(self.path, "an exported classifier (ganpack train-classifier)")
        self.session = create_session(self.path, "cpu", threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        names = {o.name for o in self.session.get_outputs()}
        if meta.get("gan_pack.kind") != CLASSIFIER_KIND or not {"logits", "features"} <= names:
            raise ModelError(f"{self.path} is not a gan_pack classifier (needs outputs logits and "
                             f"features); make one with `ganpack train-classifier`")
        try:
            self.dataset = str(meta["dataset"])
            self.num_classes = int(meta["num_classes"])
            self.image_shape = tuple(int(x) for x in json.loads(meta["image_shape"]))
            self.test_accuracy = float(meta.get("test_accuracy", "nan"))
        except (KeyError, ValueError, TypeError) as e:
            raise ModelError(f"{self.path} has malformed classifier metadata ({type(e).__name__}); "
                             f"train it again with `ganpack train-classifier`") from e

    def run(self, images: np.ndarray, batch: int = 2000) -> tuple[np.ndarray, np.ndarray]:
        """(logits, features) for images (N, C, H, W) float32 in [-1, 1]."""
        outs = [self.session.run(["logits", "features"], {"images": images[i:i + batch].astype(np.float32)})
                for i in range(0, len(images), batch)]
        return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])


def uint8_to_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 127.5 - 1.0


@dataclass
class RealReference:
    """Classifier outputs on the real test set, and on n real training images (for the floor)."""

    test_features: np.ndarray
    test_probs: np.ndarray
    test_labels: np.ndarray
    train_features: np.ndarray

    @classmethod
    def load(cls, classifier: OnnxClassifier, data_dir: str | Path, n: int, seed: int) -> "RealReference":
        from gan_pack.idx import load_idx_split

        test_x, test_y = load_idx_split(data_dir, classifier.dataset, "test")
        train_x, _ = load_idx_split(data_dir, classifier.dataset, "train")
        test_x, test_y = test_x[:n], test_y[:n]
        pick = np.random.default_rng(seed).choice(len(train_x), size=min(n, len(train_x)), replace=False)
        test_logits, test_features = classifier.run(uint8_to_float(test_x))
        _, train_features = classifier.run(uint8_to_float(train_x[pick]))
        return cls(test_features, softmax(test_logits), test_y, train_features)


def check_compatible(generator_info, classifier: OnnxClassifier) -> None:
    if generator_info.dataset in BUILTIN_DATASETS and generator_info.dataset != classifier.dataset:
        raise ModelError(f"the generator was trained on {generator_info.dataset} but the classifier on "
                         f"{classifier.dataset}; its figures would mean nothing: use a {generator_info.dataset} "
                         f"classifier (ganpack train-classifier --dataset {generator_info.dataset})")
    if tuple(generator_info.image_shape) != classifier.image_shape:
        raise ModelError(f"the generator makes {tuple(generator_info.image_shape)} images but the "
                         f"classifier reads {classifier.image_shape}; use a classifier trained on the "
                         f"generator's data")
    if generator_info.num_classes and generator_info.num_classes != classifier.num_classes:
        raise ModelError(f"the generator has {generator_info.num_classes} classes but the classifier "
                         f"{classifier.num_classes}; use a classifier of the generator's data set")


def quality_metrics(fake_images: np.ndarray, fake_labels: np.ndarray | None,
                    classifier: OnnxClassifier, real: RealReference, k: int = 5) -> dict:
    """Every figure for one set of generated images against the real reference."""
    logits, features = classifier.run(fake_images)
    probs, predicted = softmax(logits), logits.argmax(1)
    K = classifier.num_classes
    real_dist = class_histogram(real.test_labels, K)
    hist = class_histogram(predicted, K)
    result = {
        "fcd": frechet_distance(features, real.test_features),
        "classifier_score": classifier_score(probs),
        "class_histogram": hist.tolist(),
        "class_kl": kl_divergence(real_dist, hist),
        **prdc(real.test_features, features, k),
    }
    if fake_labels is not None:
        hits = predicted == fake_labels
        result["conditional_accuracy"] = float(hits.mean())
        result["per_class_accuracy"] = [float(hits[fake_labels == c].mean()) if (fake_labels == c).any()
                                        else None for c in range(K)]
    return result


def check_real_data(real: RealReference, classifier: OnnxClassifier, data_dir, warn) -> None:
    """Warn when --data-dir is not the classifier's data set: the classifier then misreads its
    test set (MNIST and Fashion-MNIST share file names, so only the images tell)."""
    accuracy = float((real.test_probs.argmax(1) == real.test_labels).mean())
    if np.isfinite(classifier.test_accuracy) and accuracy < classifier.test_accuracy - 0.2:
        warn(f"warning: the classifier scores {100 * accuracy:.1f}% on the test set in {data_dir}, against "
             f"{100 * classifier.test_accuracy:.1f}% on {classifier.dataset}'s: --data-dir seems to hold "
             f"another data set than {classifier.dataset}, and the figures below mean little")


def reference_metrics(real: RealReference) -> dict:
    return {"fcd_floor_train_vs_test": frechet_distance(real.train_features, real.test_features),
            "classifier_score_real_test": classifier_score(real.test_probs)}


def evaluate_generator(model_path: str | Path, classifier_path: str | Path, data_dir: str | Path,
                       n: int = 10000, seed: int = 0, k: int = 5, device: str = "cpu",
                       warn=lambda msg: print(msg, file=sys.stderr), truncation: float | None = None) -> dict:
    """Sample n images from an exported generator and measure them; returns the full report."""
    from gan_pack.runtime import OnnxGenerator

    started = time.perf_counter()
    if not EVAL_N_MIN <= n <= EVAL_N_MAX:
        raise ModelError(f"-n must be in {EVAL_N_MIN}..{EVAL_N_MAX}, not {n}")
    if not 1 <= k <= min(K_MAX, n - 1):
        raise ModelError(f"--k must be in 1..{min(K_MAX, n - 1)} (fewer than -n), not {k}")
    generator = OnnxGenerator(model_path, device=device)
    classifier = OnnxClassifier(classifier_path)
    check_compatible(generator.info, classifier)
    feature_dim = classifier.run(np.zeros((1, *classifier.image_shape), np.float32))[1].shape[1]
    if n <= feature_dim:
        warn(f"warning: n = {n} is not above the feature dimension {feature_dim}: the covariance "
             f"behind FCD is singular and the FCD is unreliable; use -n 10000")
    real = RealReference.load(classifier, data_dir, n, seed)
    if len(real.test_features) <= k:
        raise ModelError(f"the test set in {data_dir} has {len(real.test_features)} images, too few for --k {k}")
    check_real_data(real, classifier, data_dir, warn)
    labels = generator.resolve_labels(n, None)
    fake = generator.sample(n, labels, seed, truncation=truncation)
    result = {"model": str(model_path), "model_sha256": file_sha256(model_path),
              "classifier": str(classifier_path), "classifier_sha256": file_sha256(classifier_path),
              "classifier_test_accuracy": classifier.test_accuracy, "dataset": classifier.dataset,
              "n": n, "n_real": len(real.test_features), "seed": seed, "k": k, "truncation": truncation,
              "noise": "portable",
              **quality_metrics(fake, labels, classifier, real, k), **reference_metrics(real)}
    result["fcd_ratio_to_floor"] = result["fcd"] / max(result["fcd_floor_train_vs_test"], EPS)
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def format_report(r: dict) -> str:
    rows = [("FCD", f"{r['fcd']:.3f}"),
            ("FCD floor (real train vs test)", f"{r['fcd_floor_train_vs_test']:.3f}"),
            ("FCD / floor", f"{r['fcd_ratio_to_floor']:.2f}x")]
    if "conditional_accuracy" in r:
        rows.append(("conditional accuracy", f"{100 * r['conditional_accuracy']:.2f}%"))
        rows.append(("lowest class accuracy", f"{100 * min(a for a in r['per_class_accuracy'] if a is not None):.2f}%"))
    rows += [("class KL (real || generated)", f"{r['class_kl']:.4f}"),
             ("classifier score", f"{r['classifier_score']:.3f}"),
             ("classifier score, real test", f"{r['classifier_score_real_test']:.3f}"),
             ("precision", f"{r['precision']:.3f}"), ("recall", f"{r['recall']:.3f}"),
             ("density", f"{r['density']:.3f}"), ("coverage", f"{r['coverage']:.3f}")]
    width = max(len(name) for name, _ in rows)
    cut = f", truncation {r['truncation']}" if r.get("truncation") is not None else ""
    head = f"{Path(r['model']).name}: n = {r['n']}, seed {r['seed']}{cut}, k = {r['k']}, {r['seconds']} s"
    return "\n".join([head] + [f"  {name:<{width}}  {value}" for name, value in rows])
