"""The layout is enforced: `lint-imports` (the contracts in pyproject.toml) passes on the package as
it is, and fails, naming the contract and the line, on a copy with one import that crosses a boundary."""

import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

pytest.importorskip("importlinter")

VIOLATIONS = {
    "torch in the runtime": ("runtime/labels.py", "import torch  # noqa", "torch stays in gan_pack.pytorch"),
    "a layer importing one above it": ("core/noise.py", "from gan_pack.runtime import generator  # noqa",
                                       "each layer imports only the layers below it"),
    "onnx in verify": ("package/verify.py", "import onnx  # noqa", "needs no onnx package"),
    "starlette outside serve": ("cli/text.py", "import starlette  # noqa", "only gan_pack.serve imports"),
}


def lint_imports(cwd) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; "
                                     "sys.exit(c(['--no-cache']))"]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)})


def test_the_package_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_one_import_across_a_boundary_breaks_the_build(tmp_path, case):
    module, line, contract = VIOLATIONS[case]
    shutil.copytree(ROOT / "gan_pack", tmp_path / "gan_pack", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / "gan_pack" / module
    path.write_text(path.read_text() + f"\n{line}\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert f"{contract}" in result.stdout and "BROKEN" in result.stdout
    assert f"gan_pack.{module.removesuffix('.py').replace('/', '.')}" in result.stdout
