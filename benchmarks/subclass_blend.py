"""A --subclasses generator sampled between its emoji: each image's subclass vector blended from
several of its class's (not a test).

A subclass G draws the emoji it was trained on, so its recall against the test split (other emoji)
stays low. Here each sample of class c takes the vector of the subclass its noise picks (as the
exported graph does), blended with others of the same class:

  pick     the graph's own choice (reproduces `ganpack evaluate` of the export exactly)
  two      (1 - a) E[s1] + a E[s2], s2 a second subclass of c, a uniform in [0, A]
  fixed    the same with a = A
  three    Dirichlet(A, A, A) weights over s1 and two more subclasses of c
  gauss    the class's mean vector plus A times its per-dimension spread times standard noise
  near     like two, but s2 one of the --neighbours subclasses of c nearest to s1: nearest by the
           classifier features of G's own image of each subclass at zero noise (--near-space
           render), or by the subclass vectors themselves (--near-space embedding)

With --shift P and --scale S each image is then moved by up to P pixels and scaled by 1 +- S
(training_set_bound.moved). Then the evaluation `ganpack evaluate` makes (test split, the
project's classifier, labels in the test frequencies, seed 0), in PyTorch on the CPU, and the
lowest variety share over the classes
(mean pairwise classifier-feature distance of the generated images of a class over that of its real
test images). The blends' draws use numpy's generator (--blend-seed, 1 by default); the noise is
the portable noise of seed 0.

Usage: .venv/bin/python benchmarks/subclass_blend.py CHECKPOINT --data-dir ../shared/data/emoji
           [--mode two] [--amount 1.0] [--neighbours 3] [--near-space render] [--truncation 0]
           [--shift 0] [--scale 0] [-n 10000] [--blend-seed 1] [--grid grid.png]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from class_variety import mean_and_left_out  # noqa: E402
from training_set_bound import moved  # noqa: E402

from gan_pack.core.images import save_grid  # noqa: E402
from gan_pack.core.noise import portable_noise  # noqa: E402
from gan_pack.evaluate.classifier import OnnxClassifier, RealReference  # noqa: E402
from gan_pack.evaluate.quality import quality_metrics, reference_metrics  # noqa: E402
from gan_pack.pytorch.checkpoint import checkpoint_config  # noqa: E402
from gan_pack.pytorch.export import load_generator  # noqa: E402

CLASSIFIER = Path(__file__).resolve().parent.parent / "exported" / "emoji-classifier.onnx"


def render(g, noise: torch.Tensor, labels: torch.Tensor, vectors: torch.Tensor) -> np.ndarray:
    """G's images for the noise, class labels and subclass vectors given (any vectors, blends too)."""
    x = torch.cat([noise, g.embed(labels), vectors], 1)
    return g.blocks(g.project(x).unflatten(1, (g.feats0, g.base, g.base))).numpy()


def nearest(g, classifier: OnnxClassifier, space: str, k: int, noise_dim: int) -> torch.Tensor:
    """(subclasses, k): each subclass's k nearest others of its class (itself where a class has fewer)."""
    sub = g.subclasses
    table = sub.embedding.weight.detach()
    if space == "embedding":
        points = table.numpy()
    else:
        with torch.no_grad():
            rendered = render(g, torch.zeros(len(table), noise_dim), sub.classes.long(), table)
        points = np.concatenate([classifier.run(rendered[i:i + 256])[1] for i in range(0, len(table), 256)])
    out = np.zeros((len(table), k), dtype=np.int64)
    for c in range(len(sub.counts)):
        members = np.flatnonzero(sub.classes.numpy() == c)
        if len(members) == 1:
            out[members] = members[0]
            continue
        d = ((points[members, None] - points[None, members]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        out[members] = members[np.argsort(d, 1)[:, np.arange(k) % (len(members) - 1)]]
    return torch.from_numpy(out)


def vectors(g, noise: torch.Tensor, labels: torch.Tensor, mode: str, amount: float,
            rng: np.random.Generator, near: torch.Tensor | None = None) -> torch.Tensor:
    sub = g.subclasses
    chosen = sub.choose(noise, labels)
    first = sub.embedding(chosen)
    if mode == "pick":
        return first
    if mode == "near":
        partner = near[chosen, torch.from_numpy(rng.integers(0, near.shape[1], len(labels)))]
        a = torch.from_numpy(rng.uniform(0, amount, (len(labels), 1))).float()
        return (1 - a) * first + a * sub.embedding(partner)

    def another() -> torch.Tensor:
        return sub.embedding(sub.offsets[labels] + torch.from_numpy(rng.integers(0, 1 << 30, len(labels)))
                             % sub.counts[labels])
    if mode in ("two", "fixed"):
        a = (torch.full((len(labels), 1), amount) if mode == "fixed"
             else torch.from_numpy(rng.uniform(0, amount, (len(labels), 1))).float())
        return (1 - a) * first + a * another()
    if mode == "three":
        w = torch.from_numpy(rng.dirichlet([amount] * 3, len(labels))).float()
        return w[:, :1] * first + w[:, 1:2] * another() + w[:, 2:] * another()
    table, classes = sub.embedding.weight, sub.classes
    mean = torch.stack([table[classes == c].mean(0) for c in range(len(sub.counts))])
    spread = torch.stack([table[classes == c].std(0) for c in range(len(sub.counts))])
    return mean[labels] + amount * spread[labels] * torch.from_numpy(rng.standard_normal(first.shape)).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--classifier", default=str(CLASSIFIER))
    parser.add_argument("--mode", choices=("pick", "two", "fixed", "three", "gauss", "near"), default="two")
    parser.add_argument("--amount", type=float, default=1.0)
    parser.add_argument("--neighbours", type=int, default=3, help="near: how many nearest subclasses")
    parser.add_argument("--near-space", choices=("render", "embedding"), default="render")
    parser.add_argument("--truncation", type=float, default=0.0, help="0: none")
    parser.add_argument("-n", type=int, default=10000)
    parser.add_argument("--blend-seed", type=int, default=1, help="seeds the blends' draws (not the noise)")
    parser.add_argument("--shift", type=float, default=0.0, help="move each image by up to this many pixels")
    parser.add_argument("--scale", type=float, default=0.0, help="and scale it by 1 +- this")
    parser.add_argument("--grid", help="also write the first 10 images of each class here, a row each (PNG)")
    args = parser.parse_args()
    torch.manual_seed(0)
    g, checkpoint = load_generator(args.checkpoint)
    if getattr(g, "subclasses", None) is None:
        raise SystemExit(f"{args.checkpoint} was not trained with --subclasses")
    classifier = OnnxClassifier(args.classifier)
    real = RealReference.load(classifier, args.data_dir, args.n, 0)
    labels = real.generator_labels(args.n, len(g.subclasses.counts), 0)
    noise_dim = checkpoint_config(checkpoint, args.checkpoint).recipe.noise_dim
    noise = portable_noise(0, 0, args.n, noise_dim, args.truncation or None)
    rng = np.random.default_rng(args.blend_seed)
    near = nearest(g, classifier, args.near_space, args.neighbours, noise_dim) if args.mode == "near" else None
    images = []
    with torch.no_grad():
        for start in range(0, args.n, 250):
            z = torch.from_numpy(noise[start:start + 250])
            y = torch.from_numpy(labels[start:start + 250]).long()
            images.append(render(g, z, y, vectors(g, z, y, args.mode, args.amount, rng, near)))
    fake = np.concatenate(images)
    if args.shift or args.scale:
        fake = moved(fake, np.random.default_rng(args.blend_seed + 1), args.shift, args.scale)
    if args.grid:
        rows = [np.flatnonzero(labels == c)[:10] for c in range(len(g.subclasses.counts))]
        save_grid(args.grid, fake[np.concatenate(rows)], nrow=10)
    result = {**quality_metrics(fake, labels, classifier, real), **reference_metrics(real)}
    _, features = classifier.run(fake)
    real_of = real.test_features                                        # the test split, read once by load
    shares = [mean_and_left_out(features[labels == c])[0] / mean_and_left_out(real_of[real.test_labels == c])[0]
              for c in range(len(g.subclasses.counts))]
    gaps = [100 * (a - r) for a, r in zip(result["per_class_accuracy"], result["per_class_real_test_accuracy"])]
    print(json.dumps({"mode": args.mode, "amount": args.amount,
                      **({"neighbours": args.neighbours, "near_space": args.near_space} if near is not None else {}),
                      "truncation": args.truncation,
                      "blend_seed": args.blend_seed, "shift": args.shift, "scale": args.scale,
                      "fcd_to_floor": round(result["fcd"] / result["fcd_floor_train_vs_test"], 3),
                      "conditional_accuracy": round(result["conditional_accuracy"], 4),
                      "real_test_accuracy": round(result["real_test_accuracy"], 4),
                      "most_below_real_points": round(min(gaps), 1),
                      **{k: round(result[k], 3) for k in ("precision", "recall", "coverage", "class_kl")},
                      "lowest_variety_share": round(min(shares), 2),
                      "variety_shares": [round(s, 2) for s in shares]}))


if __name__ == "__main__":
    main()
