"""Image folders as data sets, read as files someone else made: FIFOs and links are skipped unopened
and counted, a decompression bomb or an oversized image is refused from its header in one line
naming the file, 16-bit images are scaled (not clipped), an empty class folder and a class name that
is not printable are refused. Fuzzed with hypothesis: any folder gives right-shaped data or one
DataError."""

import io
import os
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import one_error_line, run_cli
from gan_pack.core.folder import MAX_IMAGE_PIXELS, load_image_folder
from gan_pack.errors import DataError


def png(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)
    return path


def classes(root, n=2, per_class=2, size=8):
    for c in range(n):
        for i in range(per_class):
            png(root / f"class{c}" / f"{i}.png", np.full((size, size, 3), 40 * c + i, np.uint8))
    return root


def bomb_png(width: int, height: int) -> bytes:
    """A one-colour grayscale PNG of width x height: width * height / 250 bytes on disk (zlib's fastest
    level), width * height bytes decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    row = b"\x00" + b"\x00" * width
    compressor, parts = zlib.compressobj(1), []
    for start in range(0, height, 100):
        parts.append(compressor.compress(row * min(100, height - start)))
    parts.append(compressor.flush())
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def test_a_fifo_or_link_named_like_an_image_is_skipped_unopened_and_counted(tmp_path):
    root = classes(tmp_path / "data")
    os.mkfifo(root / "class0" / "x.png")                         # opening it would wait forever
    (root / "class1" / "y.png").symlink_to("/etc/hostname")
    said = []
    images, labels, names = load_image_folder(root, 8, 3, warn=said.append)
    assert images.shape == (4, 3, 8, 8) and labels.tolist() == [0, 0, 1, 1] and names == ["class0", "class1"]
    assert len(said) == 1 and "skipped 2 image name(s)" in said[0]


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    root = classes(tmp_path / "data")
    (root / "class0" / "bomb.png").write_bytes(bomb_png(10000, 10000))       # 100 MB decoded, 0.4 MB on disk
    with pytest.raises(DataError, match=r"bomb.png is 10000x10000 pixels, over the 16,777,216"):
        load_image_folder(root, 8, 3)
    (root / "class0" / "bomb.png").write_bytes(bomb_png(20000, 20000))       # over Pillow's own cap too
    with pytest.raises(DataError, match=r"bomb.png is over 178,956,970 pixels \(a decompression bomb\?\)"):
        load_image_folder(root, 8, 3)


def test_an_image_just_over_the_cap_is_refused_and_one_at_the_cap_is_read(tmp_path):
    root = classes(tmp_path / "data")
    (root / "class0" / "big.png").write_bytes(bomb_png(4097, 4096))
    with pytest.raises(DataError, match="big.png is 4097x4096"):
        load_image_folder(root, 8, 1)
    (root / "class0" / "big.png").write_bytes(bomb_png(4096, 4096))
    assert load_image_folder(root, 8, 1)[0].shape == (5, 1, 8, 8)
    assert 4096 * 4096 == MAX_IMAGE_PIXELS


def test_a_16_bit_gradient_is_scaled_to_8_bits_not_clipped(tmp_path):
    gradient = np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (64, 1))
    png(tmp_path / "data" / "a" / "g.png", gradient)
    png(tmp_path / "data" / "b" / "g.png", gradient)
    images, _, _ = load_image_folder(tmp_path / "data", 64, 1)
    row = images[0, 0, 32].astype(int)
    expected = np.round(np.linspace(0, 255, 64)).astype(int)
    assert np.abs(row - expected).max() <= 3, row
    assert (images[0] == 255).mean() < 0.05                           # was 98% white


def test_an_empty_class_folder_is_refused_naming_it(tmp_path):
    root = classes(tmp_path / "data")
    (root / "class2").mkdir()
    (root / "class2" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="class2 holds no images"):
        load_image_folder(root, 8, 3)


@pytest.mark.parametrize("name", ["bad\nname", "tab\there", "esc\x1b[31m"])
def test_a_class_name_that_is_not_printable_is_refused(tmp_path, name):
    root = classes(tmp_path / "data")
    png(root / name / "0.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="not printable"):
        load_image_folder(root, 8, 3)


@pytest.mark.slow                       # the torch command, end to end
def test_train_classifier_on_a_bomb_is_one_line(tmp_path, capsys):
    pytest.importorskip("torch")
    for split in ("train", "test"):
        classes(tmp_path / "data" / split)
    (tmp_path / "data" / "train" / "class1" / "bomb.png").write_bytes(bomb_png(30000, 30000))
    out = tmp_path / "c.onnx"
    code, _, err = run_cli(["train-classifier", "--dataset", "folder", "--data-dir", tmp_path / "data",
                            "--image-size", 8, "--channels", 3, "-o", out], capsys)
    one_error_line(code, err, "bomb.png is over", "pixels")
    assert not out.exists()


IMAGE = st.one_of(
    st.binary(max_size=200),                                                      # not an image
    st.tuples(st.integers(1, 12), st.integers(1, 12), st.sampled_from(["L", "RGB", "RGBA", "I;16", "P", "1", "LA"]),
              st.sampled_from(["PNG", "BMP", "GIF", "WEBP"]), st.integers(0, 2 ** 32 - 1)),
)


def encode(spec) -> bytes:
    if isinstance(spec, bytes):
        return spec
    width, height, mode, fmt, seed = spec
    rng = np.random.default_rng(seed)
    image = Image.new(mode, (width, height))
    top = 65535 if mode == "I;16" else 255
    image.putdata(list(rng.integers(0, top + 1, width * height * len(image.getbands())).reshape(
        width * height, -1).squeeze(-1).tolist()) if len(image.getbands()) == 1 else
        [tuple(p) for p in rng.integers(0, 256, (width * height, len(image.getbands()))).tolist()])
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except (OSError, ValueError, KeyError):
        image.convert("RGB").save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.slow                       # 2,000 folders: the full suite
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(st.tuples(st.integers(0, 2), IMAGE), min_size=1, max_size=4),
       channels=st.sampled_from([1, 3, 4]))
def test_fuzz_any_folder_gives_right_shaped_data_or_one_data_error(tmp_path_factory, files, channels):
    root = tmp_path_factory.mktemp("fuzz")
    for i, (label, spec) in enumerate(files):
        (root / f"c{label}").mkdir(exist_ok=True)
        (root / f"c{label}" / f"{i}.png").write_bytes(encode(spec))
    try:
        images, labels, names = load_image_folder(root, 6, channels, warn=lambda m: None)
    except DataError as e:
        assert "\n" not in str(e)
        return
    assert images.dtype == np.uint8 and images.shape == (len(files), channels, 6, 6)
    assert sorted(labels.tolist()) == sorted(names.index(f"c{label}") for label, _ in files)


def test_subclasses_are_the_names_after_the_first_dash_numbered_class_by_class(tmp_path):
    """google-1f383.png and twitter-1f383.png are one subclass; the numbering follows the order in
    which load_image_folder reads the images, class 0's subclasses first."""
    from gan_pack.core.folder import folder_subclasses

    root = tmp_path / "data"
    for name in ("b/google-2.png", "b/twitter-2-1f3fb.png", "b/google-1.png", "a/x-9.png", "a/y-9.png", "a/plain.png"):
        png(root / name, np.zeros((8, 8, 3), np.uint8))
    ids, counts = folder_subclasses(root)
    _, labels, names = load_image_folder(root, 8, 3)
    # a: plain.png, x-9.png, y-9.png -> subclasses "plain", "9" (sorted: "9" = 0, "plain" = 1)
    # b: google-1, google-2, twitter-2-1f3fb (a skin tone of 2) -> "1" = 2, "2" = 3
    assert names == ["a", "b"] and labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert ids.tolist() == [1, 0, 0, 2, 3, 3] and counts == [2, 2]


def test_subclass_styles_keep_each_style_apart_and_still_fold_skin_tones(tmp_path):
    """With styles, google-2 and twitter-2 are two subclasses; twitter-2's skin tone stays with it."""
    from gan_pack.core.folder import folder_subclasses

    root = tmp_path / "data"
    for name in ("b/google-2.png", "b/twitter-2-1f3fb.png", "b/twitter-2.png", "b/google-1.png", "a/plain.png"):
        png(root / name, np.zeros((8, 8, 3), np.uint8))
    ids, counts = folder_subclasses(root, styles=True)
    # a: plain -> 0; b (read order google-1, google-2, twitter-2-1f3fb, twitter-2): google-1 = 1,
    # google-2 = 2, twitter-2 = 3 (its skin tone too)
    assert ids.tolist() == [0, 1, 2, 3, 3] and counts == [1, 3]
    assert folder_subclasses(root)[1] == [1, 2]                 # without: one per emoji, as before
