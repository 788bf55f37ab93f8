import numpy as np
from PIL import Image

from gan_pack.core.images import make_grid, save_each, save_grid, save_npy, to_uint8


def test_to_uint8_maps_range():
    images = np.array([-1.0, 0.0, 1.0, 2.0], np.float32).reshape(1, 1, 1, 4)
    assert to_uint8(images).ravel().tolist() == [0, 128, 255, 255]


def test_grid_layout_and_rgb():
    images = np.zeros((5, 3, 4, 6), np.float32)
    grid = make_grid(images, nrow=2, padding=1)
    assert grid.shape == (3 * 5 + 1, 2 * 7 + 1, 3)


def test_files_decode(tmp_path):
    images = np.random.default_rng(0).uniform(-1, 1, (4, 1, 8, 8)).astype(np.float32)
    save_grid(tmp_path / "g.png", images)
    assert np.asarray(Image.open(tmp_path / "g.png")).shape == (2 * 10 + 2, 2 * 10 + 2)
    save_npy(tmp_path / "a.npy", images)
    assert np.array_equal(np.load(tmp_path / "a.npy"), images)
    paths = save_each(tmp_path, images[:2], start=10)
    assert [p.name for p in paths] == ["000010.png", "000011.png"]
    assert np.array_equal(np.asarray(Image.open(paths[0])), to_uint8(images[:1])[0, :, :, 0])
    assert not list(tmp_path.glob("*.tmp"))
