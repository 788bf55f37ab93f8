"""Generator quality figures on arrays of classifier outputs: FCD (the Frechet distance of classifier
features), class coverage (KL), classifier score (the Inception Score recipe), and precision / recall
/ density / coverage with k nearest neighbours. numpy + scipy."""

from __future__ import annotations

import numpy as np

from gan_pack.contract.limits import EVAL_K

EPS = 1e-12


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


def labels_in_proportion(real_labels: np.ndarray, n: int, num_classes: int, seed: int) -> np.ndarray:
    """n labels (int64) whose class counts follow the real labels' frequencies (largest remainders
    round them to n), in an order shuffled by seed. A conditional generator measured against a
    real split must draw its classes as often as that split has them: FCD compares the mixtures,
    so cycling through the classes of an imbalanced data set would score even the real training
    images far from the floor."""
    share = np.bincount(real_labels, minlength=num_classes)[:num_classes] / max(len(real_labels), 1)
    counts = np.floor(share * n).astype(np.int64)
    rest = np.argsort(-(share * n - counts), kind="stable")[:n - counts.sum()]
    counts[rest] += 1
    labels = np.repeat(np.arange(num_classes, dtype=np.int64), counts)
    return np.random.default_rng(seed).permutation(labels)


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
        d = distances(x[start:start + chunk], x)
        radii[start:start + chunk] = np.partition(d, k, axis=1)[:, k]   # index 0 is the row itself
    return radii


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between every row of a and every row of b."""
    sq = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def prdc(real: np.ndarray, fake: np.ndarray, k: int = EVAL_K, chunk: int = 1024) -> dict[str, float]:
    """Precision, recall (Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020)."""
    real, fake = real.astype(np.float64), fake.astype(np.float64)
    real_radii, fake_radii = _kth_neighbour_radii(real, k), _kth_neighbour_radii(fake, k)
    in_real_balls = np.zeros(len(fake), dtype=np.int64)     # per fake: real balls containing it
    covered = np.zeros(len(real), dtype=bool)
    recalled = np.zeros(len(real), dtype=bool)
    for start in range(0, len(real), chunk):
        d = distances(real[start:start + chunk], fake)     # (chunk, M)
        radii = real_radii[start:start + chunk, None]
        in_real_balls += (d <= radii).sum(0)
        covered[start:start + chunk] = d.min(1) <= radii[:, 0]
        recalled[start:start + chunk] = (d <= fake_radii[None, :]).any(1)
    return {"precision": float((in_real_balls > 0).mean()), "recall": float(recalled.mean()),
            "density": float(in_real_balls.sum() / (k * len(fake))), "coverage": float(covered.mean())}
