"""How to install an extra, said the way that works from where gan_pack runs: a checkout (an
editable install, or the source tree on the path) installs its own folder, not a name that no
index may serve. Standard library only."""

from __future__ import annotations

from pathlib import Path

import gan_pack


def checkout_root() -> Path | None:
    """The source tree gan_pack is imported from (its pyproject.toml names this project), if any."""
    root = Path(gan_pack.__file__).resolve().parents[1]
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8", errors="replace")[:4096]
    except OSError:
        return None
    return root if 'name = "gan-pack"' in text else None


def install_hint(extra: str) -> str:
    """The command that adds `extra` (serve, train, onnx) to this install."""
    root = checkout_root()
    if root is None:
        return f"pip install 'gan-pack[{extra}]' (or the same extra of the wheel you installed)"
    here = "." if root == Path.cwd().resolve() else str(root)
    return f"pip install -e '{here}[{extra}]' (this checkout; `make setup` installs every extra)"
