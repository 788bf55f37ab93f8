"""Choose a package's default truncation (`ganpack pack --truncation T`) without looking at the test
split: FCD of the generator's images against the real *training* images, for a range of thresholds,
in the training split's class frequencies. Not a test.

The threshold with the lowest FCD here is the one to pack; `ganpack evaluate` then measures it
against the test split, which took no part in the choice.

Usage: .venv/bin/python benchmarks/truncation.py exported/emoji-cgan/ --classifier exported/emoji-classifier.onnx
           --data-dir ../shared/data/emoji [--thresholds 0,3,2.5,2,1.75,1.5,1.25,1] [--seed 1]
"""

from __future__ import annotations

import argparse

from gan_pack.evaluate.classifier import OnnxClassifier, uint8_to_float
from gan_pack.evaluate.metrics import frechet_distance, labels_in_proportion
from gan_pack.runtime.generator import OnnxGenerator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--classifier", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--thresholds", default="0,3,2.5,2,1.75,1.5,1.25,1", help="0: none")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    classifier = OnnxClassifier(args.classifier)
    train_images, train_labels = classifier.real_split(args.data_dir, "train")
    _, train_features = classifier.run(uint8_to_float(train_images))
    generator = OnnxGenerator(args.model)
    n = len(train_labels)
    labels = (labels_in_proportion(train_labels, n, generator.info.num_classes, args.seed)
              if generator.info.num_classes else None)
    print(f"{generator.path.name} against its {n} training images (seed {args.seed}); the package's default: "
          f"{generator.info.truncation or 'none'}")
    print(f"{'truncation':>10}  {'FCD vs train':>12}")
    for threshold in (float(t) for t in args.thresholds.split(",")):
        _, features = classifier.run(generator.sample(n, labels, args.seed, truncation=threshold))
        print(f"{threshold or 'none':>10}  {frechet_distance(features, train_features):12.3f}", flush=True)


if __name__ == "__main__":
    main()
