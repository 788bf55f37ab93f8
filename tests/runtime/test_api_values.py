"""Every bad value given to the Python API raises the project's own error (ModelError, a GanPackError)
in one line: never a TypeError, OverflowError or numpy's ValueError from deep inside, never a hang."""

import numpy as np
import pytest

from conftest import EXPORTED
from gan_pack.errors import GanPackError
from gan_pack.runtime.generator import OnnxGenerator

PACKAGE = EXPORTED / "mnist-cgan"
BAD = ["abc", None, 10**400, True, {"a": 1}, -1, 1.5, float("nan"), [1, 2], 2**64, [[1], [1, 2]], b"\x00"]


@pytest.fixture(scope="module")
def g():
    if not PACKAGE.is_dir():
        pytest.skip("the shipped mnist-cgan package is not in this checkout")
    return OnnxGenerator(PACKAGE)


CALLS = {
    "sample(n)": lambda g, v: g.sample(v, seed=0),
    "sample(seed)": lambda g, v: g.sample(2, seed=v),
    "sample(labels)": lambda g, v: g.sample(2, labels=v, seed=0),
    "sample(truncation)": lambda g, v: g.sample(2, seed=0, truncation=v),
    "sample(batch_size)": lambda g, v: g.sample(2, seed=0, batch_size=v),
    "noise(n)": lambda g, v: g.noise(v, seed=0),
    "noise(start)": lambda g, v: g.noise(2, seed=0, start=v),
    "noise(truncation)": lambda g, v: g.noise(2, seed=0, truncation=v),
    "generate(noise)": lambda g, v: g.generate(v, np.zeros(1, np.int64)),
    "generate(labels)": lambda g, v: g.generate(g.noise(2, 0), v),
    "generate(output)": lambda g, v: g.generate(g.noise(2, 0), [1, 2], output=v),
    "iter_batches(n)": lambda g, v: next(iter(g.iter_batches(v, seed=0))),
    "resolve_labels": lambda g, v: g.resolve_labels(3, v),
    "OnnxGenerator(path)": lambda g, v: OnnxGenerator(v),
    "OnnxGenerator(device)": lambda g, v: OnnxGenerator(PACKAGE, device=v),
    "OnnxGenerator(variant)": lambda g, v: OnnxGenerator(PACKAGE, variant=v),
    "OnnxGenerator(batch_size)": lambda g, v: OnnxGenerator(PACKAGE, batch_size=v),
    "OnnxGenerator(threads)": lambda g, v: OnnxGenerator(PACKAGE, threads=v),
    "OnnxGenerator(memory_budget)": lambda g, v: OnnxGenerator(PACKAGE, memory_budget=v),
}
# values that are fine for an argument (None: its default; -1 and 1.5 for noise or labels give shape errors)
VALID = [("sample(labels)", None), ("sample(truncation)", None), ("sample(seed)", None), ("sample(batch_size)", None),
         ("noise(truncation)", None), ("OnnxGenerator(variant)", None), ("OnnxGenerator(batch_size)", None),
         ("OnnxGenerator(threads)", None), ("sample(truncation)", 1.5), ("noise(truncation)", 1.5),
         ("resolve_labels", None), ("generate(labels)", [1, 2]), ("sample(labels)", [1, 2]),
         ("sample(truncation)", 2**64), ("noise(truncation)", 2**64)]          # a threshold no noise reaches


@pytest.mark.parametrize("call", sorted(CALLS))
def test_bad_values_raise_the_projects_own_error(g, call):
    for value in BAD:
        if any(call == c and value is v or (call == c and type(value) is type(v) and value == v) for c, v in VALID):
            continue
        try:
            CALLS[call](g, value)
        except GanPackError as e:
            assert "\n" not in str(e), (call, value, str(e))
        else:
            pytest.fail(f"{call} accepted {str(value)[:40]!r}")
