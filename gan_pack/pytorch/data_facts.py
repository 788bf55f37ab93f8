"""What a run knows about its data: the facts that travel with a checkpoint into ONNX metadata
(`DatasetInfo`), and the class names of the built-in data sets. No torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from gan_pack.errors import ConfigError

DATASET_CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}


@dataclass
class DatasetInfo:
    """Facts about the data a model was trained on; they travel into ONNX metadata."""

    name: str
    image_shape: tuple[int, int, int]        # (C, H, W)
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    size: int = 0
    fingerprint: str = ""           # sha256 of the images and labels trained on ("": a run older than it)
    subclass_counts: list[int] = field(default_factory=list)     # --subclasses: how many each class has

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "DatasetInfo":
        try:
            info = cls(name=str(data["name"]), image_shape=tuple(int(x) for x in _a_list(data["image_shape"])),
                       num_classes=int(data["num_classes"]),
                       class_names=[str(c) for c in _a_list(data.get("class_names", []))],
                       size=int(data.get("size", 0)),
                       fingerprint=str(data.get("fingerprint", "")),
                       subclass_counts=[int(c) for c in _a_list(data.get("subclass_counts", []))])
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"the data facts are malformed ({type(e).__name__}: {e})") from e
        if len(info.image_shape) != 3 or min(info.image_shape) < 1 or not 0 <= info.num_classes <= 100_000:
            raise ConfigError(f"the data facts are malformed (image shape {info.image_shape}, "
                              f"{info.num_classes} classes)")
        counts = info.subclass_counts
        if counts and (len(counts) != info.num_classes or min(counts) < 1 or sum(counts) > 100_000):
            raise ConfigError(f"the data facts are malformed ({len(counts)} subclass counts for "
                              f"{info.num_classes} classes, each at least 1 and at most 100000 in all)")
        return info

    def describe(self) -> str:
        return f"{self.name}, {self.size} images of {'x'.join(map(str, self.image_shape))}"


def _a_list(value) -> list | tuple:
    """A sequence field as stored: a list (a tuple from a pickle). A string or a mapping would
    iterate too, and quietly ("464" as the shape (4, 6, 4), "abc" as three class names)."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"a list was expected, not {type(value).__name__}")
    return value
