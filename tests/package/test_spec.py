"""One spec, every consumer: what the manifest's contract, the model card, Triton's config.pbtxt,
serve's Open Inference Protocol metadata and the model's doc string say of a generator all come from
its GeneratorSpec, so changing one field changes what each of them says."""

import json
from dataclasses import replace

import pytest

from gan_pack.contract.metadata import describe
from gan_pack.contract.spec import GeneratorSpec
from gan_pack.package.card import contract_lines
from gan_pack.package.triton import triton_config
from gan_pack.serve.protocol import spec_metadata

BASE = GeneratorSpec(noise_dim=100, num_classes=10, image_shape=(1, 28, 28))


def metadata_of(spec: GeneratorSpec) -> dict[str, str]:
    return {"model": "cgan", "noise_dim": str(spec.noise_dim), "num_classes": str(spec.num_classes),
            "image_shape": json.dumps(list(spec.image_shape)), **({"psi_input": "true"} if spec.psi else {})}


def what_each_says(spec: GeneratorSpec) -> dict[str, str]:
    return {"manifest": json.dumps(spec.contract()), "card": contract_lines(spec.contract()),
            "triton": triton_config("m", spec), "serve": json.dumps(spec_metadata("m", spec)),
            "doc string": describe(metadata_of(spec))}


@pytest.mark.parametrize("change, word", [({"psi": True}, "psi"), ({"noise_dim": 77}, "77"),
                                          ({"num_classes": 0}, None), ({"image_shape": (3, 32, 32)}, "3, 32, 32")])
def test_one_field_changes_what_every_consumer_says(change, word):
    before, after = what_each_says(BASE), what_each_says(replace(BASE, **change))
    for consumer in before:
        assert before[consumer] != after[consumer], consumer
        if word is not None:
            assert word in after[consumer] and word not in before[consumer], consumer
        else:                                   # unconditional: no labels input anywhere
            assert "labels" in before[consumer] and "labels" not in after[consumer], consumer


def test_psi_is_one_optional_input_everywhere():
    says = what_each_says(replace(BASE, psi=True))
    psi = next(i for i in json.loads(says["manifest"])["inputs"] if i["name"] == "psi")
    assert psi["optional"] and psi["default"] == 1.0 and psi["dtype"] == "float32"
    assert 'name: "psi" data_type: TYPE_FP32 dims: [ 1 ] reshape: { shape: [ ] } optional: true' in says["triton"]
    assert {"name": "psi", "datatype": "FP32", "shape": [-1]} in json.loads(says["serve"])["inputs"]
    assert "`psi` float32" in says["card"] and "optional" in says["card"] and "optional `psi`" in says["doc string"]


def test_the_spec_round_trips_and_refuses_strangers():
    spec = replace(BASE, psi=True, truncation=1.5, parity_bound=1e-4, parity_batches=(1, 7))
    assert GeneratorSpec.from_json(spec.to_json()) == spec
    with pytest.raises(ValueError):
        GeneratorSpec.from_json(json.dumps({"noise_dim": 3, "evil": 1}))
