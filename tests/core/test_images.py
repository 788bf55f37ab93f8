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


def test_rgba_grids_and_files_keep_the_alpha(tmp_path):
    images = np.random.default_rng(1).uniform(-1, 1, (3, 4, 8, 8)).astype(np.float32)
    images[0, 3] = -1.0                                       # image 0 fully transparent
    save_grid(tmp_path / "g.png", images, nrow=3)
    picture = Image.open(tmp_path / "g.png")
    assert picture.mode == "RGBA"
    pixels = np.asarray(picture)
    assert (pixels[2:10, 2:10, 3] == 0).all() and np.array_equal(pixels[2:10, 12:20], to_uint8(images[1:2])[0])
    paths = save_each(tmp_path / "each", images[:1], start=0)
    assert Image.open(paths[0]).mode == "RGBA"


def test_flatten_composites_straight_alpha():
    from gan_pack.core.images import checkerboard, flatten, parse_color

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255                                        # red everywhere ...
    rgba[:4, :, 3] = 255                                      # ... opaque on top, transparent below
    rgba[4:6, :, 3] = 128
    white = flatten(rgba, "white")
    assert white.shape == (8, 8, 3) and (white[:4] == [255, 0, 0]).all() and (white[6:] == 255).all()
    assert (white[4:6] == [255, 127, 127]).all()              # half red over white
    assert np.array_equal(flatten(rgba)[6:], checkerboard(8, 8)[6:])
    assert (flatten(rgba, "#000000")[6:] == 0).all() and parse_color("#0a0B0c") == (10, 11, 12)
    gray = np.zeros((4, 4, 1), np.uint8)
    assert flatten(gray, "white") is gray
    import pytest

    with pytest.raises(ValueError, match="not a color"):
        parse_color("#12345")


def test_captions_on_rgba_grids_are_white_on_an_opaque_band():
    """Seed captions under RGBA images: white text over transparency would vanish on a white page."""
    from gan_pack.core.images import CAPTION_HEIGHT, captioned_grid

    images = -np.ones((2, 4, 16, 16), np.float32)               # black, fully transparent images
    grid = captioned_grid(images, ["seed 7", "seed 8"], nrow=2)
    band = grid[2 + 16:2 + 16 + CAPTION_HEIGHT, 2:2 + 16]
    assert (band[:, :, 3] == 255).all()                          # opaque under the text
    assert band[:, :, :3].min(axis=2).max() > 128                # and the text is light on it
    assert (grid[2:18, 2:18, 3] == 0).all()                      # the image keeps its transparency
