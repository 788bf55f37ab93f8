"""What a generator that reproduced its training images exactly would score against the test
split: the classifier features of real training images taken as the "generated" ones, measured as
`ganpack evaluate` measures a generator (FCD, precision, recall, density, coverage, k = 5). Rows:

  each training image once
  n draws with repeats                as a sampler of n images from a memorised set draws them
  one image per subclass, n draws     as a --subclasses G that draws one picture of each emoji
                                      samples: labels in the test frequencies, a subclass uniform
                                      within its class, that subclass's first training image
  one per subclass and style, n draws the same with --subclass-styles' subclasses

Repeats put identical images side by side, which shrinks their neighbourhoods and so the recall.
With --shift P and --scale S, each row of draws again, every image moved by up to P pixels and
scaled by 1 +- S (bilinear): new pictures of the same emoji, drawn without anything unseen. Not a
test.

Usage: .venv/bin/python benchmarks/training_set_bound.py --classifier exported/emoji-classifier.onnx
           --data-dir ../shared/data/emoji [-n 10000] [--seed 0] [--shift 4 --scale 0.1]
"""

from __future__ import annotations

import argparse

import numpy as np

from gan_pack.core.folder import folder_subclasses, split_folder
from gan_pack.evaluate.classifier import OnnxClassifier, RealReference, uint8_to_float
from gan_pack.evaluate.metrics import frechet_distance, prdc


def moved(images: np.ndarray, rng: np.random.Generator, shift: float, scale: float) -> np.ndarray:
    """Images (N, C, H, W) in [-1, 1], each moved by up to `shift` pixels and scaled by 1 +- `scale`
    (bilinear; outside, the edge pixel repeated: transparent where the edge is)."""
    import torch
    import torch.nn.functional as F
    n, side = len(images), images.shape[-1]
    s = 1 + rng.uniform(-scale, scale, n)
    theta = np.zeros((n, 2, 3), dtype=np.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / s
    theta[:, :, 2] = rng.uniform(-shift, shift, (n, 2)) * 2 / side      # grid units: the image spans 2
    out = []
    for i in range(0, n, 1000):
        x = torch.from_numpy(images[i:i + 1000].astype(np.float32)) + 1
        grid = F.affine_grid(torch.from_numpy(theta[i:i + 1000]), list(x.shape), align_corners=False)
        out.append((F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False) - 1).numpy())
    return np.concatenate(out)


def subclass_draws(root, styles: bool, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Training-image indices: for each label, a subclass of it uniformly, then its first image."""
    ids, counts = folder_subclasses(root, styles)
    offsets = np.cumsum(counts) - counts
    first = np.full(sum(counts), -1)
    for i in range(len(ids) - 1, -1, -1):
        first[ids[i]] = i
    return first[offsets[labels] + rng.integers(0, 1 << 30, len(labels)) % np.asarray(counts)[labels]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("-n", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shift", type=float, default=0.0, help="pixels, at most (0 and --scale 0: no moved rows)")
    parser.add_argument("--scale", type=float, default=0.0, help="a scale in 1 +- this")
    args = parser.parse_args()
    classifier = OnnxClassifier(args.classifier)
    real = RealReference.load(classifier, args.data_dir, args.n, args.seed)
    images, train_labels = classifier.real_split(args.data_dir, "train")
    images = uint8_to_float(images)
    train = classifier.run(images)[1]
    test = real.test_features
    floor = frechet_distance(real.train_features, test)
    print(f"{len(train)} training and {len(test)} test images; FCD floor {floor:.2f}")
    rng = np.random.default_rng(args.seed)
    labels = real.generator_labels(args.n, int(train_labels.max()) + 1, args.seed)
    root = split_folder(args.data_dir, "train")
    draws = [(f"{args.n} draws with repeats", rng.integers(0, len(train), args.n)),
             ("one image per subclass, draws", subclass_draws(root, False, labels, rng)),
             ("one per subclass and style, draws", subclass_draws(root, True, labels, rng))]
    rows = [(f"each training image once ({len(train)})", train)] + [(name, train[i]) for name, i in draws]
    if args.shift or args.scale:
        rows += [(f"{name}, moved", classifier.run(moved(images[i], rng, args.shift, args.scale))[1])
                 for name, i in draws]
    for name, fake in rows:
        r = prdc(test, fake)                              # evaluate's k
        print(f"{name:>38}: FCD {frechet_distance(fake, test) / floor:.2f}x the floor, "
              + ", ".join(f"{k} {v:.3f}" for k, v in r.items()), flush=True)


if __name__ == "__main__":
    main()
