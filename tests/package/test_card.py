"""The model card is Markdown that people render: names that came from someone's folders (class
names, a folder data set's name) are escaped, so markup in them stays text."""

import json

import pytest

from conftest import EXPORTED
from gan_pack.package.card import model_card


def test_hostile_class_and_data_set_names_are_text_in_the_card():
    manifest = EXPORTED / "mnist-cgan" / "mnist-cgan.json"
    if not manifest.is_file():
        pytest.skip("the shipped mnist-cgan package is not in this checkout")
    facts = json.loads(manifest.read_text())
    facts["class_names"] = ["<script>alert(1)</script>", "$(rm -rf ~)", "**bold**", "[link](http://x)", "a|b",
                            "plain", "6", "7", "8", "9"]
    facts["dataset"] = "<img src=x onerror=alert(1)>"
    card = model_card(facts, facts.get("evaluation"), "mit")
    body = card.split("---\n", 2)[2]
    assert "<script>" not in body and "<img" not in body
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in body and "\\$\\(rm -rf \\~\\)" in body
    assert "\\*\\*bold\\*\\*" in body and "\\[link\\]\\(http://x\\)" in body and "a\\|b" in body
    assert ", plain, 6," in body
    front = json.loads(card.split("---\n")[1].split("datasets:\n  - ")[1].splitlines()[0])
    assert front == facts["dataset"]                              # YAML keeps the name itself, quoted
