"""How good an upscaler is, against Pillow's bicubic, on a test set: each test image made `scale` times
smaller with Pillow's bicubic (premultiplied alpha, as Pillow resizes RGBA), then enlarged again by the
model and by bicubic; PSNR against the original on RGB composited over white, and on alpha (RGBA),
per image and averaged. numpy + pillow + onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gan_pack.core.test_images import psnr
from gan_pack.runtime.image_model import ImageModel

EVAL_SEED = 0


def over_white(image: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 -> (H, W, 3) float over white; RGB as it is."""
    if image.shape[2] != 4:
        return image.astype(np.float64)
    alpha = image[:, :, 3:].astype(np.float64) / 255
    return image[:, :, :3] * alpha + 255 * (1 - alpha)


def bicubic(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) uint8 resized to (width, height) with Pillow's bicubic."""
    from PIL import Image

    mode = {1: "L", 3: "RGB", 4: "RGBA"}[image.shape[2]]
    source = Image.fromarray(image[:, :, 0] if mode == "L" else image, mode)
    out = np.asarray(source.resize(size, Image.Resampling.BICUBIC))
    return out[:, :, None] if out.ndim == 2 else out


def evaluate_upscaler(model: ImageModel, images: np.ndarray) -> dict:
    """images: (N, H, W, C) uint8 originals, H and W multiples of the model's scale."""
    s = model.scale
    rows = []
    for original in images:
        h, w = original.shape[:2]
        small = bicubic(original, (w // s, h // s))
        candidates = {"model": model.apply(small), "bicubic": bicubic(small, (w, h))}
        row = {}
        for name, made in candidates.items():
            row[f"{name}_rgb"] = psnr(over_white(made), over_white(original))
            if original.shape[2] == 4:
                row[f"{name}_alpha"] = psnr(made[:, :, 3], original[:, :, 3])
        rows.append(row)
    keys = rows[0].keys()
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    gain = {"rgb_over_white": mean["model_rgb"] - mean["bicubic_rgb"]}
    if "model_alpha" in mean:
        gain["alpha"] = mean["model_alpha"] - mean["bicubic_alpha"]
    return {"images": len(rows), "scale": s, "psnr_db": mean, "gain_db": gain}


def test_images(data_dir: str | Path, side: int, channels: int) -> np.ndarray:
    """A folder data set's test split (or the folder itself) as (N, H, W, C) uint8."""
    from gan_pack.core.folder import load_image_folder

    root = Path(data_dir)
    root = root / "test" if (root / "test").is_dir() else root
    images, _, _ = load_image_folder(root, side, channels)
    return images.transpose(0, 2, 3, 1)

