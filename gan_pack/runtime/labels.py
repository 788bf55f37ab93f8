"""Which label each image gets, and the seeds that pick its noise: label patterns that cost no memory
for any n (`LabelCycle`), what --label, --labels and --per-class ask for (`LabelRequest`), and the
seed range. numpy only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, Union

import numpy as np

from gan_pack.core.noise import SEED_MAX, random_seed
from gan_pack.core.numbers import integer_in
from gan_pack.errors import ModelError

MAX_IMAGES = 10**12             # -n / --per-class: streamed, so only the count itself is bounded
Labels = Union[None, int, Sequence[int], np.ndarray, str, "LabelCycle"]
LabelsFor = Callable[[int, int], "np.ndarray | None"]       # (start, count) -> the labels of those images


def whole(value, name: str, low: int, high: int) -> int:
    """An integer argument of the API, checked: an int (not a bool, float or string) in low..high."""
    if not integer_in(value, low, high):
        raise ModelError(f"{name} must be an integer in {low}..{high}, not {str(value)[:40]}")
    return int(value)


def check_seed(seed: int | None, name: str = "seed") -> None:
    """Seeds are 0..2**32-1 everywhere (train takes the same range); `name` is what the user called it."""
    if seed is not None and not integer_in(seed, 0, SEED_MAX):
        raise ModelError(f"{name} must be an integer in 0..{SEED_MAX}, not {str(seed)[:40]}")


def seed_or_random(seed: int | None) -> int:
    """The seed, checked; a random one for a request that gave none."""
    if seed is None:
        return random_seed()
    check_seed(seed)
    return int(seed)


@dataclass(frozen=True)
class LabelCycle:
    """Labels by pattern, never stored whole: image i gets pattern[(i // repeat) % len(pattern)].
    LabelCycle(arange(k)) cycles the classes; LabelCycle(arange(k), repeat=K) is --per-class K."""

    pattern: np.ndarray
    repeat: int = 1

    def take(self, pattern: np.ndarray, start: int, count: int) -> np.ndarray:
        index = np.arange(start, start + count, dtype=np.int64) // self.repeat
        return pattern[index % len(pattern)]


@dataclass(frozen=True)
class LabelRequest:
    """What `--label`, `--labels` and `--per-class` ask for, turned into what `sample` takes."""

    n: int
    labels: Labels
    columns: int | None             # images per grid row (one row per class with --per-class)

    @classmethod
    def parse(cls, num_classes: int, n: int, label: int | str | None = None, labels: str | None = None,
              per_class: int | None = None, class_names: list[str] | None = None) -> "LabelRequest":
        given = [x is not None for x in (label, labels, per_class)]
        if sum(given) > 1:
            raise ModelError("give only one of --label, --labels and --per-class")
        if any(given) and num_classes == 0:
            raise ModelError("this model is unconditional (num_classes 0): drop --label/--labels/--per-class")
        if per_class is not None:
            if not 1 <= per_class <= MAX_IMAGES // num_classes:
                raise ModelError(f"--per-class must be in 1..{MAX_IMAGES // num_classes}, not {per_class}")
            return cls(per_class * num_classes, LabelCycle(np.arange(num_classes), per_class), per_class)
        if labels is not None:
            items = [class_index(x.strip(), class_names or [], "--labels") for x in labels.split(",") if x.strip()]
            if not items:
                raise ModelError("--labels is empty; give e.g. --labels 0,1,2")
            return cls(n, LabelCycle(np.asarray(items, dtype=np.int64)), None)
        return cls(n, None if label is None else class_index(label, class_names or [], "--label"), None)


def class_index(label: int | str, class_names: list[str], flag: str = "label") -> int:
    """A class by its index (3, "3") or its name in the model's metadata ("smileys-emotion",
    "T-shirt/top"); a name wins over a number only where a class is called that."""
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        return int(label)
    text = str(label)
    if text in class_names:
        return class_names.index(text)
    if text.isdigit() and len(text) <= 9:
        return int(text)
    named = f" or a class name ({', '.join(class_names[:12])}{', ...' if len(class_names) > 12 else ''})" \
        if class_names else ""
    raise ModelError(f"{flag} takes a class index{named}, not {text[:40]!r}")


def label_source(num_classes: int, n: int, labels: Labels) -> LabelsFor:
    """labels_for(start, count): the labels of images start..start+count, computed per batch, so
    a pattern (cycle, one label, --per-class) costs no memory for any n."""
    k = num_classes
    if k == 0:
        if labels is not None:
            raise ModelError("this model is unconditional (num_classes 0): labels cannot be used")
        return lambda start, count: None
    if labels is None or (isinstance(labels, str) and labels == "cycle"):
        labels = LabelCycle(np.arange(k))
    if isinstance(labels, str):
        raise ModelError(f"labels must be an int, a sequence of ints or 'cycle', not {labels!r}")
    if not isinstance(labels, LabelCycle):
        try:
            array = np.asarray(labels)
        except (TypeError, ValueError, OverflowError):
            raise ModelError(f"labels must be an int, a flat sequence of ints or 'cycle', not {str(labels)[:40]}") \
                from None
        if array.ndim == 0:
            labels = LabelCycle(array.reshape(1))
        elif array.shape != (n,):
            raise ModelError(f"got {len(array)} labels for {n} images; give one label or exactly {n}")
        else:
            checked = check_labels(k, array)
            return lambda start, count: checked[start:start + count]
    if not len(labels.pattern) or labels.repeat < 1:
        raise ModelError("a LabelCycle needs at least one label and a repeat of at least 1")
    pattern = check_labels(k, np.asarray(labels.pattern))
    return lambda start, count: labels.take(pattern, start, count)


def check_labels(num_classes: int, labels: np.ndarray) -> np.ndarray:
    """Integer labels in 0..num_classes-1, as int64; a ModelError names the first that is not."""
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ModelError(f"labels must be integers, not {labels.dtype}")
    k = num_classes
    bad = labels[(labels < 0) | (labels >= k)] if labels.size else labels
    if bad.size:
        raise ModelError(f"label {int(bad[0])} is out of range: this model has classes 0..{k - 1}")
    return labels.astype(np.int64)
