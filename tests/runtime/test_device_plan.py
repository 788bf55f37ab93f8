"""--device auto on a machine whose onnxruntime lists the CUDA provider but cannot start it (an
onnxruntime-gpu without its CUDA libraries): the package's fp32 main model runs on the CPU, never its
fp16 CUDA variant. Here onnxruntime's CPU build is told it lists CUDA; asked for it, it starts the CPU
provider alone, which is what such a machine does."""

import numpy as np
import pytest

from conftest import EXPORTED
from gan_pack.runtime.generator import OnnxGenerator

PACKAGE = EXPORTED / "mnist-cgan"


@pytest.fixture
def cuda_listed_but_absent(monkeypatch):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider")
    if not (PACKAGE / "mnist-cgan.cuda.onnx").is_file():
        pytest.skip("the shipped mnist-cgan package is not in this checkout")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])


def test_auto_falls_back_to_the_fp32_main_model_not_the_cuda_variant(cuda_listed_but_absent, capsys):
    g = OnnxGenerator(PACKAGE, device="auto")
    assert g.path.name == "mnist-cgan.onnx" and g.variant == "main" and g.info.precision == "fp32"
    assert g.providers == ["CPUExecutionProvider"] and "CUDA did not start" in g.describe()
    reference = OnnxGenerator(PACKAGE / "mnist-cgan.onnx")
    np.testing.assert_array_equal(g.sample(4, labels=2, seed=5), reference.sample(4, labels=2, seed=5))
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gan_pack: CUDA unavailable, sampling on CPU"]              # one line, no onnxruntime warning


def test_the_cuda_variant_asked_for_by_name_is_still_what_runs(cuda_listed_but_absent):
    assert OnnxGenerator(PACKAGE, device="auto", variant="cuda").path.name == "mnist-cgan.cuda.onnx"


def test_the_plan_holds_every_choice_and_the_fallback_replaces_it(cuda_listed_but_absent):
    """One plan: the file, why, and the providers with the file's own CUDA options; after a CUDA that
    did not start, the generator's plan is the CPU's, so nothing else decides the device again."""
    import json

    from gan_pack.runtime.onnxscan import model_metadata
    from gan_pack.runtime.session import plan_run

    plan = plan_run(PACKAGE, "auto")
    asked = json.loads(model_metadata(PACKAGE / "mnist-cgan.cuda.onnx")["cuda_options"])
    assert plan.path.name == "mnist-cgan.cuda.onnx" and plan.made_for_cuda
    assert plan.providers[0][0] == "CUDAExecutionProvider" and asked.items() <= plan.providers[0][1].items()
    assert plan_run(PACKAGE, "auto", tf32=False).providers[0][1].get("use_tf32") is None    # fp16: tf32 moot
    g = OnnxGenerator(PACKAGE, device="auto")
    assert g.plan.device == "cpu" and g.plan.providers == ["CPUExecutionProvider"] and g.path == g.plan.path
    assert plan_run(PACKAGE, "cpu").path.name == "mnist-cgan.onnx"
