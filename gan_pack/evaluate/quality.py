"""`ganpack evaluate`: sample a generator, run the images through a classifier of the same data, and
measure them against the real test set (FCD and its floor, accuracy, coverage, PRDC).
numpy + scipy + onnxruntime (no torch)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from gan_pack.contract.limits import EVAL_K, EVAL_K_MAX, EVAL_N_MAX, EVAL_N_MIN
from gan_pack.core.files import file_sha256
from gan_pack.core.log import Log, say
from gan_pack.errors import ModelError
from gan_pack.evaluate.classifier import OnnxClassifier, RealReference, check_compatible, check_real_data
from gan_pack.evaluate.metrics import (
    EPS,
    class_histogram,
    classifier_score,
    frechet_distance,
    kl_divergence,
    prdc,
    softmax,
)
from gan_pack.runtime.generator import OnnxGenerator

LABELS_NOTE = "the test split's class frequencies"


def quality_metrics(fake_images: np.ndarray, fake_labels: np.ndarray | None,
                    classifier: OnnxClassifier, real: RealReference, k: int = EVAL_K) -> dict:
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


def reference_metrics(real: RealReference) -> dict:
    """The real data's own figures: the FCD floor, and how the classifier scores real test images
    (overall and per class: what the generated images' accuracy is measured against)."""
    predicted = real.test_probs.argmax(1)
    hits = predicted == real.test_labels
    k = real.test_probs.shape[1]
    return {"fcd_floor_train_vs_test": frechet_distance(real.train_features, real.test_features),
            "classifier_score_real_test": classifier_score(real.test_probs),
            "real_test_accuracy": float(hits.mean()),
            "per_class_real_test_accuracy": [float(hits[real.test_labels == c].mean())
                                             if (real.test_labels == c).any() else None for c in range(k)]}


def evaluate_generator(model_path: str | Path, classifier_path: str | Path, data_dir: str | Path,
                       n: int = 10000, seed: int = 0, k: int = EVAL_K, device: str = "cpu",
                       warn=lambda msg: print(msg, file=sys.stderr), truncation: float | None = None,
                       log: Log = None, variant: str | None = None, psi: float | None = None) -> dict:
    """Sample n images from an exported generator and measure them; returns the full report."""
    started = time.perf_counter()
    if not EVAL_N_MIN <= n <= EVAL_N_MAX:
        raise ModelError(f"-n must be in {EVAL_N_MIN}..{EVAL_N_MAX}, not {n}")
    if not 1 <= k <= min(EVAL_K_MAX, n - 1):
        raise ModelError(f"--k must be in 1..{min(EVAL_K_MAX, n - 1)} (fewer than -n), not {k}")
    generator = OnnxGenerator(model_path, device=device, variant=variant, psi=psi)
    classifier = OnnxClassifier(classifier_path)
    check_compatible(generator.info, classifier)
    feature_dim = classifier.run(np.zeros((1, *classifier.image_shape), np.float32))[1].shape[1]
    if n <= feature_dim:
        warn(f"warning: n = {n} is not above the feature dimension {feature_dim}: the covariance "
             f"behind FCD is singular and the FCD is unreliable; use -n 10000")
    say(log, f"evaluating {generator.describe()}: {n} generated and {n} real images through the classifier")
    real = RealReference.load(classifier, data_dir, n, seed)
    if len(real.test_features) <= k:
        raise ModelError(f"the test set in {data_dir} has {len(real.test_features)} images, too few for --k {k}")
    check_real_data(real, classifier, data_dir, warn)
    labels = real.generator_labels(n, generator.info.num_classes, seed)
    fake = generator.sample(n, labels, seed, truncation=truncation)
    result = {"model": str(generator.path), "model_sha256": file_sha256(generator.path),
              "classifier": str(classifier_path), "classifier_sha256": file_sha256(classifier_path),
              "classifier_test_accuracy": classifier.test_accuracy, "dataset": classifier.dataset,
              "n": n, "n_real": len(real.test_features), "seed": seed, "k": k,
              "truncation": generator.effective_truncation(truncation), "psi": psi,
              "noise": "portable", "labels": LABELS_NOTE if labels is not None else None,
              **quality_metrics(fake, labels, classifier, real, k), **reference_metrics(real)}
    result["fcd_ratio_to_floor"] = result["fcd"] / max(result["fcd_floor_train_vs_test"], EPS)
    if "conditional_accuracy" in result:
        result["conditional_accuracy_to_real"] = result["conditional_accuracy"] / max(result["real_test_accuracy"], EPS)
    result["class_names"] = classifier.class_names
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def format_report(r: dict) -> str:
    rows = [("FCD", f"{r['fcd']:.3f}"),
            ("FCD floor (real train vs test)", f"{r['fcd_floor_train_vs_test']:.3f}"),
            ("FCD / floor", f"{r['fcd_ratio_to_floor']:.2f}x")]
    if "conditional_accuracy" in r:
        rows.append(("conditional accuracy", f"{100 * r['conditional_accuracy']:.2f}%"))
        if "real_test_accuracy" in r:
            rows.append(("classifier on real test images", f"{100 * r['real_test_accuracy']:.2f}% "
                         f"(generated / real: {r['conditional_accuracy_to_real']:.2f})"))
        scored = [(a, c) for c, a in enumerate(r["per_class_accuracy"]) if a is not None]
        worst, c = min(scored)
        names = r.get("class_names") or []
        name = f" ({names[c]})" if c < len(names) else ""
        real = r.get("per_class_real_test_accuracy")
        real_text = f", real {100 * real[c]:.2f}%" if real and real[c] is not None else ""
        rows.append(("lowest class accuracy", f"{100 * worst:.2f}%{name}{real_text}"))
    rows += [("class KL (real || generated)", f"{r['class_kl']:.4f}"),
             ("classifier score", f"{r['classifier_score']:.3f}"),
             ("classifier score, real test", f"{r['classifier_score_real_test']:.3f}"),
             ("precision", f"{r['precision']:.3f}"), ("recall", f"{r['recall']:.3f}"),
             ("density", f"{r['density']:.3f}"), ("coverage", f"{r['coverage']:.3f}")]
    width = max(len(name) for name, _ in rows)
    cut = f", truncation {r['truncation']}" if r.get("truncation") is not None else ""
    cut += f", psi {r['psi']}" if r.get("psi") is not None else ""
    drawn = f", labels in {r['labels']}" if r.get("labels") else ""
    head = f"{Path(r['model']).name}: n = {r['n']}, seed {r['seed']}{cut}{drawn}, k = {r['k']}, {r['seconds']} s"
    return "\n".join([head] + [f"  {name:<{width}}  {value}" for name, value in rows])
