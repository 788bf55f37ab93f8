"""The portable noise: its definition pinned by golden numbers, its statistics, its independence of
n and the batch size, truncation's redraws, and seed lists."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gan_pack.core.noise import (
    MAX_REDRAWS,
    MAX_SEEDS,
    SEED_MAX,
    effective_truncation,
    mix,
    parse_seeds,
    portable_noise,
)
from gan_pack.errors import ModelError

# The first numbers of a few seeds: if the definition in gan_pack/core/noise.py (and docs/noise.md, and
# examples/shared/samples.mjs) changes, these move. test_examples checks the JavaScript against them.
GOLDEN = {
    (0, 0): [-0.82252645, -0.7251154, -0.3316438, -0.22654587],
    (1, 0): [0.7062117, -0.4669093, -1.2618002, 0.6439521],
    (4294967295, 10**12): [0.7162283, 0.24300598, -0.20864983, -0.8854084],
}


@pytest.mark.parametrize("seed, image", list(GOLDEN))
def test_golden_numbers(seed, image):
    np.testing.assert_array_equal(portable_noise(seed, image, 1, 4)[0], np.float32(GOLDEN[(seed, image)]))


def lowbias32(x: int) -> int:
    """The hash as the docs write it, in plain Python integers."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_mix_is_lowbias32():
    values = [0, 1, 2, 0xDEADBEEF, 0xFFFFFFFF, *np.random.default_rng(0).integers(0, 2**32, 100).tolist()]
    assert [int(v) for v in mix(np.array(values, dtype=np.uint32))] == [lowbias32(v) for v in values]


def test_image_k_depends_only_on_seed_and_k():
    whole = portable_noise(7, 0, 50, 100)
    np.testing.assert_array_equal(portable_noise(7, 20, 5, 100), whole[20:25])
    assert not np.array_equal(portable_noise(8, 0, 50, 100), whole)


def test_standard_normal_statistics():
    z = portable_noise(3, 0, 20_000, 100).astype(np.float64)
    assert abs(z.mean()) < 0.005 and abs(z.std() - 1) < 0.005
    assert abs((np.abs(z) > 2).mean() - 0.0455) < 0.002                 # the two-sided 2-sigma tail
    assert abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) < 0.02


def test_truncation_redraws_deterministically_within_bounds():
    plain, cut = portable_noise(5, 0, 2000, 100), portable_noise(5, 0, 2000, 100, truncation=0.5)
    assert np.abs(cut).max() <= 0.5
    inside = np.abs(plain) <= 0.5
    np.testing.assert_array_equal(cut[inside], plain[inside])            # only the outliers are redrawn
    np.testing.assert_array_equal(cut, portable_noise(5, 0, 2000, 100, truncation=0.5))
    assert np.abs(portable_noise(5, 0, 10, 4096, truncation=0.1)).max() <= 0.1 and MAX_REDRAWS == 256


@pytest.mark.parametrize("psi", [0.0, 0.05, float("nan"), float("inf"), -1.0])
def test_truncation_out_of_range(psi):
    with pytest.raises(ModelError, match="truncation must be"):
        portable_noise(0, 0, 1, 4, truncation=psi)


def test_a_given_truncation_wins_over_the_models_and_0_means_none():
    assert effective_truncation(None, 1.5) == 1.5 and effective_truncation(None, None) is None
    assert effective_truncation(0.7, 1.5) == 0.7 and effective_truncation(0, 1.5) is None
    for bad in (0.05, -1.0, float("nan"), float("inf")):
        with pytest.raises(ModelError, match=r"truncation must be a number >= 0.1 \(or 0 for none\)"):
            effective_truncation(bad, 1.5)


def test_seed_lists():
    assert parse_seeds("0-3") == [0, 1, 2, 3] and parse_seeds("1,5,9") == [1, 5, 9]
    assert parse_seeds("3,10-12") == [3, 10, 11, 12]
    for bad in ("", "a-b", "5-2", "-1", "4294967296", "0-200000", "1,,2", "1,", "+5", "1_0", "\u0663",
                ",".join(["0-99999"] * 10_000)):
        with pytest.raises(ModelError, match="--seeds"):
            parse_seeds(bad)


@pytest.mark.slow                       # 2,000 texts: the full suite
@settings(max_examples=2000, deadline=None, derandomize=True, database=None)
@given(text=st.text(alphabet="0123456789-, +_x\u0663", max_size=24) | st.text(max_size=12))
def test_any_text_is_a_seed_list_or_one_error(text):
    """Generated text: the seeds (each in range, at most MAX_SEEDS), or the one documented error."""
    try:
        seeds = parse_seeds(text)
    except ModelError as e:
        assert str(e).startswith("--seeds")
        return
    assert 0 < len(seeds) <= MAX_SEEDS and all(0 <= s <= SEED_MAX for s in seeds)
    assert text.replace(" ", "").replace(",", "").replace("-", "").isdigit()
