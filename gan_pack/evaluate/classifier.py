"""The feature space figures are measured in: an exported gan_pack classifier run through onnxruntime,
and its outputs on the real data (`RealReference`). numpy + onnxruntime."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gan_pack.contract.names import CLASSIFIER_KIND
from gan_pack.core.folder import load_image_folder, split_folder
from gan_pack.core.idx import BUILTIN_DATASETS, load_idx_split
from gan_pack.errors import ModelError
from gan_pack.evaluate.metrics import labels_in_proportion, softmax
from gan_pack.runtime.session import create_session, resolve_model_file


class OnnxClassifier:
    """An exported gan_pack classifier: images (B, C, H, W) -> logits (B, K), features (B, F)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path = resolve_model_file(path, "an exported classifier (ganpack train-classifier)")
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
            self.class_names = [str(c) for c in json.loads(meta.get("class_names", "[]"))]
            self.per_class_test_accuracy = json.loads(meta.get("per_class_test_accuracy", "null"))
        except (KeyError, ValueError, TypeError) as e:
            raise ModelError(f"{self.path} has malformed classifier metadata ({type(e).__name__}); "
                             f"train it again with `ganpack train-classifier`") from e

    def real_split(self, data_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(images uint8 (N, C, H, W), labels) of the real data's split, read as this classifier reads."""
        if self.dataset != "folder":
            return load_idx_split(data_dir, self.dataset, split)
        channels, side, _ = self.image_shape
        images, labels, names = load_image_folder(split_folder(data_dir, split), side, channels)
        if names != self.class_names:
            raise ModelError(f"{data_dir}/{split} holds the classes {', '.join(names[:4])}..., not the "
                             f"classifier's {', '.join(self.class_names[:4])}...: give the data it was trained on")
        return images, labels

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
        test_x, test_y = classifier.real_split(data_dir, "test")
        train_x, _ = classifier.real_split(data_dir, "train")
        test_x, test_y = test_x[:n], test_y[:n]
        pick = np.random.default_rng(seed).choice(len(train_x), size=min(n, len(train_x)), replace=False)
        test_logits, test_features = classifier.run(uint8_to_float(test_x))
        _, train_features = classifier.run(uint8_to_float(train_x[pick]))
        return cls(test_features, softmax(test_logits), test_y, train_features)

    def generator_labels(self, n: int, num_classes: int, seed: int) -> np.ndarray | None:
        """The n labels a generator of num_classes classes is measured with, in this test set's class
        frequencies (labels_in_proportion); None for an unconditional one."""
        return labels_in_proportion(self.test_labels, n, num_classes, seed) if num_classes else None


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


def check_real_data(real: RealReference, classifier: OnnxClassifier, data_dir, warn) -> None:
    """Warn when --data-dir is not the classifier's data set: the classifier then misreads its
    test set (MNIST and Fashion-MNIST share file names, so only the images tell)."""
    accuracy = float((real.test_probs.argmax(1) == real.test_labels).mean())
    if np.isfinite(classifier.test_accuracy) and accuracy < classifier.test_accuracy - 0.2:
        warn(f"warning: the classifier scores {100 * accuracy:.1f}% on the test set in {data_dir}, against "
             f"{100 * classifier.test_accuracy:.1f}% on {classifier.dataset}'s: --data-dir seems to hold "
             f"another data set than {classifier.dataset}, and the figures below mean little")
