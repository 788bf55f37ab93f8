"""What a generator that reproduced its training images exactly would score against the test
split: the classifier features of the real training images taken as the "generated" ones, once
each and as n draws with repeats (as a sampler of n images from a memorised set draws them),
measured as `ganpack evaluate` measures a generator (FCD, precision, recall, density, coverage,
k = 5). Repeats put near-identical images side by side, which shrinks their neighbourhoods and so
the recall. Not a test.

Usage: .venv/bin/python benchmarks/training_set_bound.py --classifier exported/emoji-classifier.onnx
           --data-dir ../shared/data/emoji [-n 10000] [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np

from gan_pack.evaluate.classifier import OnnxClassifier, RealReference
from gan_pack.evaluate.metrics import frechet_distance, prdc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("-n", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    real = RealReference.load(OnnxClassifier(args.classifier), args.data_dir, args.n, args.seed)
    train, test = real.train_features, real.test_features
    drawn = train[np.random.default_rng(args.seed).integers(0, len(train), args.n)]
    floor = frechet_distance(train, test)
    print(f"{len(train)} training and {len(test)} test images; FCD floor {floor:.2f}")
    for name, fake in ((f"each training image once ({len(train)})", train),
                       (f"{args.n} draws with repeats", drawn)):
        r = prdc(test, fake)                              # evaluate's k
        print(f"{name:>34}: FCD {frechet_distance(fake, test) / floor:.2f}x the floor, "
              + ", ".join(f"{k} {v:.3f}" for k, v in r.items()))


if __name__ == "__main__":
    main()
