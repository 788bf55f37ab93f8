import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from gan_pack.pytorch.augment import BACKGROUND, augment, cutout, translate


def shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """image (c, h, w) moved down by dy and right by dx, background filling what came in."""
    out = torch.full_like(image, BACKGROUND)
    h, w = image.shape[1:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def test_translation_moves_each_image_by_at_most_an_eighth():
    torch.manual_seed(0)
    images = torch.rand(32, 2, 16, 16) * 2 - 1
    out = translate(images)
    moves = set()
    for image, moved in zip(images, out):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(moved, shifted(image, dy, dx))]
        assert len(found) == 1
        moves.add(found[0])
    assert len(moves) > 5                                      # each image its own shift


def test_cutout_blanks_one_half_size_square():
    torch.manual_seed(0)
    images = torch.rand(16, 1, 8, 8) + 0.5                    # never the background
    out = cutout(images)
    blank = out == BACKGROUND                                 # (16, 1, 8, 8)
    assert torch.equal(blank.sum(dim=(1, 2, 3)), torch.full((16,), 16))
    rows, cols = blank.any(dim=3)[:, 0], blank.any(dim=2)[:, 0]
    assert torch.equal(rows.sum(1), torch.full((16,), 4)) and torch.equal(cols.sum(1), torch.full((16,), 4))
    assert torch.equal(out[~blank], images[~blank])


def test_gradients_reach_the_generator_through_the_augmentations():
    images = torch.rand(4, 1, 12, 12, requires_grad=True)
    augment(images, ["translation", "cutout"]).sum().backward()
    assert images.grad is not None and 0 < images.grad.sum() < images.numel()


def test_color_moves_the_colour_channels_per_image_and_keeps_alpha():
    torch.manual_seed(0)
    images = (torch.rand(64, 4, 8, 8) * 2 - 1).requires_grad_(True)
    out = augment(images, ["color"])
    assert torch.equal(out[:, 3], images[:, 3])                # alpha is not a colour
    moved = (out[:, :3] - images[:, :3]).abs().mean(dim=(1, 2, 3))
    assert (moved > 1e-3).all() and moved.std() > 0.05          # every image, each its own draw
    out.sum().backward()                                        # differentiable: G learns through it
    assert images.grad is not None and images.grad[:, :3].abs().sum() > 0


def test_color_on_gray_images_changes_brightness_and_contrast_only():
    torch.manual_seed(1)
    gray = torch.rand(16, 1, 8, 8) * 2 - 1
    out = augment(gray, ["color"])
    assert out.shape == gray.shape
    # brightness and contrast are affine per image: out = a * gray + b, the same a, b for every pixel
    for image, moved in zip(gray, out):
        x, y = image.flatten(), moved.flatten()
        a = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
        assert torch.allclose(y, a * x + (y.mean() - a * x.mean()), atol=1e-5)


def test_color_shifts_brightness_by_at_most_a_half_as_diffaugment_does():
    """A flat gray image is left alone by saturation and contrast, so what moves it is brightness."""
    torch.manual_seed(2)
    flat = torch.zeros(512, 3, 4, 4)
    shift = augment(flat, ["color"])[:, :, 0, 0]                       # (512, 3), one value per image
    assert torch.equal(shift, shift[:, :1].expand(-1, 3))
    assert shift.abs().max() <= 0.5 and shift.abs().max() > 0.45
