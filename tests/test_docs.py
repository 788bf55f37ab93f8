"""What the manual shows works as shown: its Python snippets run as pasted, and `make sample` writes
the picture the README shows."""

import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, ganpack_command

pytestmark = pytest.mark.slow           # whole processes: the manual's commands and snippets, run as a user would

SNIPPETS = [("README.md", "**Python**"), ("docs/embedding.md", "## Python")]


def snippet(document: str, after: str) -> str:
    text = (ROOT / document).read_text()
    return re.search(r"```python\n(.*?)```", text[text.index(after):], re.S).group(1)


@pytest.mark.parametrize("document, after", SNIPPETS)
def test_the_python_snippets_run_as_pasted(tmp_path, document, after):
    (tmp_path / "exported").symlink_to(ROOT / "exported")
    result = subprocess.run([sys.executable, "-c", snippet(document, after)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert Image.open(tmp_path / "grid.png").size[0] > 28


def test_make_sample_writes_the_picture_the_readme_shows(tmp_path):
    recipe = next(line.strip() for line in (ROOT / "Makefile").read_text().splitlines()
                  if "ganpack sample exported/mnist-cgan/" in line and "samples.png" in line)
    args = recipe.split("ganpack ", 1)[1].replace("samples.png", str(tmp_path / "samples.png")).split()
    assert subprocess.run(ganpack_command(*args), cwd=ROOT, capture_output=True).returncode == 0
    shown = re.search(r"!\[[^\]]*\]\((exported/mnist-cgan/[^)]+\.png)\)", (ROOT / "README.md").read_text()).group(1)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "samples.png")), np.asarray(Image.open(ROOT / shown)))


@pytest.mark.torch
def test_the_stylegan2_checkpoint_recipe_runs_on_a_cpu_and_exports(tmp_path):
    import importlib.util

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("stylegan2_torch") is None:
        pytest.skip("needs torch and stylegan2-torch (the [dev] extra)")
    code = snippet("docs/stylegan2.md", "To make such a checkpoint")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and (tmp_path / "G.pt").is_file(), result.stderr[-2000:]
    init = '{"resolution": 32, "latent_dim": 64, "n_mlp": 2, "channels": {"4": 64, "8": 64, "16": 32, "32": 16}}'
    export = subprocess.run(ganpack_command("export", tmp_path / "G.pt", "--from", "stylegan2-torch", "--init", init,
                                            "-o", tmp_path / "sg.onnx"), cwd=ROOT, capture_output=True, text=True)
    assert export.returncode == 0, export.stderr[-2000:]
