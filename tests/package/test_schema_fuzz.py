"""The manifest and golden readers against generated input: a shipped package's files with keys
dropped and values replaced by any JSON, and JSON of any shape. The outcome is the facts read, or
problems that each name the file, never an exception."""

import copy
import json

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from conftest import EXPORTED
from gan_pack.contract.package_schema import Golden, Manifest, read_golden, read_manifest

FUZZ = settings(max_examples=2000, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
MANIFEST = json.loads((EXPORTED / "mnist-cgan" / "mnist-cgan.json").read_text())
GOLDEN = json.loads((EXPORTED / "mnist-cgan" / "mnist-cgan.golden.json").read_text())

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10)
hostile = st.sampled_from(["../x", "/etc/passwd", ".hidden", "a\nb", "x" * 300, "", -1, 2 ** 70, 1e300, True,
                           "gan_pack.package/3", "gan_pack.golden/9", [1, 2, 3], {"file": "../g"}])


def places(document) -> list[tuple]:
    """Every (container, key) of a JSON document, to mutate one."""
    found, stack = [], [document]
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else []
        for key in keys:
            found.append((node, key))
            stack.append(node[key])
    return found


@st.composite
def mutated(draw, original: dict):
    document = copy.deepcopy(original)
    for _ in range(draw(st.integers(0, 3))):
        spots = places(document)
        if not spots:
            break
        node, key = draw(st.sampled_from(spots))
        if isinstance(node, dict) and draw(st.booleans()):
            del node[key]
        else:
            node[key] = copy.deepcopy(draw(json_values | hostile))        # never a shared object
    return document


def manifest_outcome(data) -> Manifest | None:
    manifest, problems = read_manifest(data, "m.json")
    assert (manifest is None) == bool(problems)
    assert all(isinstance(p, str) and p.startswith("m.json") for p in problems)
    return manifest


def golden_outcome(data) -> Golden | None:
    golden, problems = read_golden(data, "g.json", read_manifest(MANIFEST, "m.json")[0])
    assert (golden is None) == bool(problems)
    assert all(isinstance(p, str) and p.startswith("g.json") for p in problems)
    return golden


@pytest.mark.slow                       # hundreds of generated documents
@FUZZ
@given(data=mutated(MANIFEST) | json_values)
def test_a_manifest_is_read_or_named_wrong(data):
    manifest_outcome(data)


@pytest.mark.slow                       # hundreds of generated documents
@FUZZ
@given(data=mutated(GOLDEN) | json_values)
def test_golden_vectors_are_read_or_named_wrong(data):
    golden_outcome(data)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")   # a golden file is 36 kB of base64
@pytest.mark.parametrize("reader, original", [(manifest_outcome, MANIFEST), (golden_outcome, GOLDEN)])
def test_the_generated_files_are_sometimes_still_valid(reader, original):
    """The fuzzing is not all noise: a changed file can still be read (a key it does not use)."""
    changed = find(mutated(original), lambda d: d != original and reader(d) is not None,
                   settings=settings(max_examples=2000, database=None, derandomize=True,
                                     suppress_health_check=list(HealthCheck)))
    assert reader(changed) is not None
