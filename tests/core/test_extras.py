"""A missing extra is named with the command that installs it from where gan_pack runs."""

from gan_pack.core.extras import checkout_root, install_hint


def test_from_a_checkout_the_hint_installs_the_checkout():
    root = checkout_root()
    assert root is not None and (root / "gan_pack" / "__init__.py").is_file()
    hint = install_hint("serve")
    assert hint.startswith("pip install -e '") and "[serve]'" in hint and "gan-pack[" not in hint
