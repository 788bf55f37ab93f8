import pytest

from conftest import tiny_config

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from gan_pack.errors import DataError  # noqa: E402
from gan_pack.pytorch.data import DeviceBatches, LoaderBatches, load_dataset


def numbered_images(n=10):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return images, torch.arange(n)


@pytest.mark.parametrize("cls", [DeviceBatches, LoaderBatches])
def test_batches_cover_each_image_once_per_epoch(cls):
    batches = cls(*numbered_images(), 3, torch.device("cpu"))
    seen = [(x, y) for _, x, y in batches.epoch(0)]
    assert len(batches) == 3 and [len(y) for _, y in seen] == [3, 3, 3]    # the last partial batch dropped
    drawn = torch.cat([y for _, y in seen])
    assert len(set(drawn.tolist())) == 9
    for x, y in seen:                                                        # pixels follow their labels
        assert torch.allclose(x[:, 0, 0, 0], y.float() / 127.5 - 1.0)


def test_both_data_paths_give_the_same_batches_and_epochs_differ():
    device, loader = (cls(*numbered_images(), 3, torch.device("cpu"), seed=5)
                      for cls in (DeviceBatches, LoaderBatches))
    for epoch in (0, 1):
        for (_, x1, y1), (_, x2, y2) in zip(device.epoch(epoch), loader.epoch(epoch)):
            assert torch.equal(y1, y2) and torch.equal(x1, x2)
    first, second = ([y for _, _, y in device.epoch(e)] for e in (0, 1))
    assert not all(torch.equal(a, b) for a, b in zip(first, second))


def test_processes_split_each_global_batch():
    whole = DeviceBatches(*numbered_images(), 4, torch.device("cpu"))
    shares = [DeviceBatches(*numbered_images(), 4, torch.device("cpu"), rank=r, world_size=2) for r in (0, 1)]
    assert len(shares[0]) == len(whole) == 2
    for batch, part0, part1 in zip(whole.epoch(3), shares[0].epoch(3), shares[1].epoch(3)):
        assert torch.equal(batch[2], torch.cat([part0[2], part1[2]]))
    with pytest.raises(DataError, match="multiple of 3"):
        DeviceBatches(*numbered_images(), 4, torch.device("cpu"), rank=0, world_size=3)


def test_too_few_images_for_a_batch():
    with pytest.raises(DataError, match="fewer than one batch"):
        DeviceBatches(torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.zeros(3), 4, torch.device("cpu"))


def test_mnist_resized_and_widened_for_dcgan(tmp_path, tiny_idx):
    config = tiny_config(tmp_path, tiny_idx, arch="dcgan", image_size=32, channels=3)
    images, labels, info = load_dataset(config.recipe, config.run.data_dir)
    assert images.shape == (64, 3, 32, 32) and images.dtype == torch.uint8
    assert info.image_shape == (3, 32, 32) and info.num_classes == 10 and info.class_names[3] == "3"
    assert int(images.max()) > 200                                          # the bright bar survives


def test_gan_has_no_classes(tmp_path, tiny_idx):
    config = tiny_config(tmp_path, tiny_idx, model="gan")
    _, _, info = load_dataset(config.recipe, config.run.data_dir)
    assert info.num_classes == 0 and info.class_names == []


def test_balance_draws_every_class_equally_and_the_same_way_twice():
    from gan_pack.pytorch.data import balancing_weights, make_batches

    labels = torch.cat([torch.zeros(900, dtype=torch.int64), torch.ones(100, dtype=torch.int64)])   # 9:1
    images = torch.zeros(1000, 1, 4, 4, dtype=torch.uint8)
    balanced = make_batches(images, labels, 100, torch.device("cpu"), fast=True, seed=3, balance=True)
    plain = make_batches(images, labels, 100, torch.device("cpu"), fast=True, seed=3)
    drawn = torch.cat([batch_labels for _, _, batch_labels in balanced.epoch(0)])
    assert len(drawn) == 1000 and 400 <= int(drawn.sum()) <= 600          # about half are the small class
    assert int(torch.cat([b for _, _, b in plain.epoch(0)]).sum()) == 100   # plain: each image once
    again = torch.cat([batch_labels for _, _, batch_labels in balanced.epoch(0)])
    assert torch.equal(drawn, again)
    weights = balancing_weights(labels)
    assert torch.allclose(weights[:900].sum(), weights[900:].sum())


def test_balance_needs_a_cgan(tmp_path, tiny_idx):
    from gan_pack.errors import ConfigError

    with pytest.raises(ConfigError, match="--balance"):
        tiny_config(tmp_path, tiny_idx, model="gan", balance=True)
