"""Variety inside each class: the mean pairwise distance between the classifier features of a
cGAN's images of one class, as a share of the same distance between the real test images of that
class. A generator that draws one image per class scores near 0; one as varied as the data, near
1. The real distance of a small class is itself uncertain: "+-" is two jackknife standard errors of
the share over the real images (leaving out one at a time; the generated side, 300 images, varies
far less). Beside it, per class, precision and recall (k = 5) against that class's training
images: the share of generated images that fall inside the real images' neighbourhoods (each looks
like some real image of the class, to the classifier), the same share for the class's real test
images (what a generator as good as the data would score), and the share of the training images
that some generated one comes near. Not a test.

Usage: .venv/bin/python benchmarks/class_variety.py exported/emoji-cgan/ --classifier exported/emoji-classifier.onnx
           --data-dir ../shared/data/emoji [--per-class 300] [--truncation T] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np

from gan_pack.evaluate.classifier import OnnxClassifier, uint8_to_float
from gan_pack.evaluate.metrics import distances, prdc
from gan_pack.runtime.generator import OnnxGenerator


def mean_and_left_out(features: np.ndarray) -> tuple[float, np.ndarray]:
    """The mean Euclidean distance over all pairs of rows (the diagonal left out), and the same with
    each row left out in turn (from one distance matrix)."""
    d = distances(features, features)
    n, total = len(features), d.sum()
    return float(total / (n * (n - 1))), (total - 2 * d.sum(1)) / ((n - 1) * (n - 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--classifier", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--per-class", type=int, default=300, help="generated images of each class")
    parser.add_argument("--truncation", type=float, default=None, help="default: the package's; 0: none")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    classifier = OnnxClassifier(args.classifier)
    images, labels = classifier.real_split(args.data_dir, "test")
    _, real = classifier.run(uint8_to_float(images))
    train_images, train_labels = classifier.real_split(args.data_dir, "train")
    _, train = classifier.run(uint8_to_float(train_images))
    generator = OnnxGenerator(args.model)
    names = generator.info.class_names or [str(c) for c in range(generator.info.num_classes)]
    truncation = generator.info.truncation if args.truncation is None else args.truncation
    print(f"{generator.path.name}, truncation {truncation or 'none'}, {args.per_class} images a class, "
          f"seed {args.seed}")
    print(f"{'class':>18}  {'real':>6}  {'generated':>9}  {'share':>6}  {'+-':>5}  "
          f"{'precision':>9}  {'real':>5}  {'recall':>6}")
    shares = []
    for c, name in enumerate(names):
        fake_images = generator.sample(args.per_class, np.full(args.per_class, c), args.seed + c,
                                       truncation=truncation)
        _, fake = classifier.run(fake_images)
        (real_d, real_left_out), (fake_d, _) = mean_and_left_out(real[labels == c]), mean_and_left_out(fake)
        shares.append(fake_d / real_d)
        left_out = fake_d / real_left_out
        n = len(left_out)
        error = 2 * float(np.sqrt((n - 1) / n * ((left_out - left_out.mean()) ** 2).sum()))
        train_c = train[train_labels == c]
        near, real_near = prdc(train_c, fake), prdc(train_c, real[labels == c])
        print(f"{name:>18}  {real_d:6.2f}  {fake_d:9.2f}  {shares[-1]:6.2f}  {error:5.2f}  "
              f"{near['precision']:9.3f}  {real_near['precision']:5.2f}  {near['recall']:6.3f}", flush=True)
    print(f"{'lowest share':>18}  {min(shares):.2f} ({names[int(np.argmin(shares))]})")


if __name__ == "__main__":
    main()
