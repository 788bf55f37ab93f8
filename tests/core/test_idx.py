import gzip

import numpy as np
import pytest

from conftest import write_tiny_idx
from gan_pack.core.idx import load_idx_split, read_idx, write_idx
from gan_pack.errors import DataError


@pytest.mark.parametrize("gz", [True, False])
def test_round_trip(tmp_path, gz):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.gz" if gz else "a")
    write_idx(path, array)
    assert np.array_equal(read_idx(path), array)


def test_torchvision_raw_layout(tmp_path):
    write_tiny_idx(tmp_path / "MNIST" / "raw")
    images, labels = load_idx_split(tmp_path, "mnist", "train")
    assert images.shape == (64, 1, 28, 28) and labels.dtype == np.int64


def test_truncated_and_bad_magic(tmp_path):
    path = tmp_path / "x"
    write_idx(path, np.zeros((5, 4, 4), np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)
    path.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(DataError, match="magic"):
        read_idx(path)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (10).to_bytes(4, "big") + bytes(10))[:-8])
    with pytest.raises(DataError, match="cannot be read"):
        read_idx(path)


def test_images_and_labels_must_pair(tmp_path):
    data = write_tiny_idx(tmp_path)
    write_idx(data / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match="pair up"):
        load_idx_split(data, "mnist", "train")


def test_missing_folder_names_the_files(tmp_path):
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        load_idx_split(tmp_path / "nowhere", "mnist", "test")
