import pytest

from conftest import tiny_config

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from gan_pack.data import DeviceBatches, load_dataset  # noqa: E402
from gan_pack.errors import DataError  # noqa: E402


def test_batches_cover_each_image_once_per_epoch():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    labels = torch.arange(10)
    batches = DeviceBatches(images, labels, 3, torch.device("cpu"))
    seen = [(x, y) for x, y in batches.epoch()]
    assert len(batches) == 3 and [len(y) for _, y in seen] == [3, 3, 3]    # the last partial batch dropped
    drawn = torch.cat([y for _, y in seen])
    assert len(set(drawn.tolist())) == 9
    for x, y in seen:                                                        # pixels follow their labels
        assert torch.allclose(x[:, 0, 0, 0], y.float() / 127.5 - 1.0)


def test_too_few_images_for_a_batch():
    with pytest.raises(DataError, match="fewer than one batch"):
        DeviceBatches(torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.zeros(3), 4, torch.device("cpu"))


def test_mnist_resized_and_widened_for_dcgan(tmp_path, tiny_idx):
    config = tiny_config(tmp_path, tiny_idx, arch="dcgan", image_size=32, channels=3)
    images, labels, info = load_dataset(config)
    assert images.shape == (64, 3, 32, 32) and images.dtype == torch.uint8
    assert info.image_shape == (3, 32, 32) and info.num_classes == 10 and info.class_names[3] == "3"
    assert int(images.max()) > 200                                          # the bright bar survives


def test_gan_has_no_classes(tmp_path, tiny_idx):
    _, _, info = load_dataset(tiny_config(tmp_path, tiny_idx, model="gan"))
    assert info.num_classes == 0 and info.class_names == []
