"""The model card of a package: README.md with Hugging Face-style YAML front matter, then how to
sample the generator in Python, Node and the browser, its grid, figures, intended use and limits."""

from __future__ import annotations

import html
import json

from gan_pack.contract.package_format import GOLDEN_TOLERANCE, family
from gan_pack.contract.spec import TensorSpec

TASK = "unconditional-image-generation"
METRIC_NAMES = {"fcd": "FCD", "fcd_ratio_to_floor": "FCD / floor", "conditional_accuracy": "conditional accuracy",
                "precision": "precision", "recall": "recall", "density": "density", "coverage": "coverage",
                "class_kl": "class KL"}


def _yaml(value) -> str:
    """A YAML scalar: JSON strings and numbers are valid YAML."""
    return json.dumps(value)


def _text(value) -> str:
    """A name from someone's files (a class folder's, a data set's) as plain text in Markdown: HTML
    and Markdown's own characters escaped, so `<script>` or `*` stay what they are."""
    escaped = html.escape(str(value), quote=False)
    return "".join("\\" + c if c in "\\`*_[]{}()#+!|$~" else c for c in escaped)


def front_matter(facts: dict, evaluation: dict | None, license: str) -> str:
    tags = ["gan", "gan_pack", "onnx", "conditional-gan" if facts["num_classes"] else "unconditional-gan",
            facts["arch"], facts["dataset"]]
    lines = ["---", f"license: {_yaml(license)}", "library_name: onnxruntime", f"pipeline_tag: {TASK}", "tags:"]
    lines += [f"  - {_yaml(tag)}" for tag in dict.fromkeys(tags)]
    lines += ["datasets:", f"  - {_yaml(facts['dataset'])}"]
    figures = [(key, evaluation[key]) for key in METRIC_NAMES if evaluation and key in evaluation]
    if figures:
        lines += ["metrics:"] + [f"  - {_yaml(key)}" for key, _ in figures]
        lines += ["model-index:", f"  - name: {_yaml(facts['name'])}", "    results:",
                  f"      - task: {{type: {TASK}}}",
                  f"        dataset: {{name: {_yaml(facts['dataset'])}, type: {_yaml(facts['dataset'])}}}",
                  "        metrics:"]
        lines += [f"          - {{type: {_yaml(key)}, name: {_yaml(METRIC_NAMES[key])}, value: {_yaml(value)}}}"
                  for key, value in figures]
    return "\n".join(lines + ["---", ""])


def contract_lines(contract: dict) -> str:
    """The manifest's contract (GeneratorSpec's tensors) as the card's list; images as pixels too."""
    lines = [f"- input {TensorSpec.from_manifest(entry).card()}" for entry in contract["inputs"]]
    lines += [f"- output {TensorSpec.from_manifest(entry).card()} (pixel = (x + 1) * 127.5)"
              for entry in contract["outputs"]]
    return "\n".join(lines)


def model_card(facts: dict, evaluation: dict | None, license: str, data_notice: str | None = None) -> str:
    name, k = facts["name"], facts["num_classes"]
    shape = "x".join(map(str, facts["image_shape"]))
    classes = f"{k} classes ({', '.join(map(_text, facts['class_names']))})" if k else "unconditional"
    files = "\n".join(f"| `{f['path']}` | {f['bytes'] / 1e6:.2f} MB | {f.get('precision', '')} | "
                      f"{f.get('provider', 'any' if f.get('role') == 'model' else '')} |" for f in facts["files"])
    labels_py = ", labels=3" if k else ""
    labels_js = " --label 3" if k else ""
    node_out = {1: "pgm", 3: "ppm"}.get(facts["image_shape"][0], "png")      # what Node writes per channel count
    figures, parity_line = evaluation_section(facts, evaluation), parity_sentence(facts.get("parity") or {})
    return front_matter(facts, evaluation, license) + f"""
# {name}

A {facts['model']} generator ({facts['arch']}) of {shape} {_text(facts['dataset'])} images, {classes}. Packaged by
gan_pack {facts['gan_pack_version']}: `{name}.onnx` needs only onnxruntime and runs everywhere; any variants
beside it are made for one execution provider, and gan_pack's runtime picks the one for its device.

![samples](./{name}.png)

## Contract

{contract_lines(facts["contract"])}

The same facts, for runtimes that cannot read ONNX metadata (onnxruntime-web, onnxruntime-node), are in
`{name}.json`.{truncation_note(facts)}

## Sample it

Python (`pip install gan-pack`, no torch):

```python
from gan_pack.runtime import OnnxGenerator
g = OnnxGenerator(".")                       # this folder: the variant made for the device, else {name}.onnx
images = g.sample(16{labels_py}, seed=0)      # (16, {', '.join(map(str, facts['image_shape']))}) float32 in [-1, 1]
```

Command line: `ganpack sample {name}.onnx -n 64 -o grid.png`. Node (gan_pack's `examples/node`):
`node sample.js --model {name}.onnx{labels_js} --count 8 --out samples.{node_out}`. Browser (`examples/web`):
`index.html?model=PATH/{name}.onnx`. Both read `{name}.json`.

## Check it on your machine

`ganpack verify .` checks every file's SHA-256, the contract and the metadata against the graph, then
runs the golden vectors of `{name}.golden.json` on this machine's onnxruntime and compares the
images with the packed ones ({', '.join(f"{n}: {t['metric']} <= {t['bound']}" for n, t in _tolerances(facts).items())}).

## Files

| file | size | precision | made for |
|---|---|---|---|
{files}

{parity_line}
{figures}{variants_section(facts)}
{data_section(data_notice)}## Intended use and limits

For sampling images like those of {_text(facts['dataset'])}, in apps, demos and tests of image pipelines. The generator
knows only its training data: it cannot draw anything else, and its samples are not real data (do not use them
as evidence of anything). Quality figures come from a small classifier, not from people.
"""


def truncation_note(facts: dict) -> str:
    """The package's sampling default (pack --truncation), where it has one."""
    t = facts.get("truncation")
    if t is None:
        return ""
    return (f"\n\nBy default its samplers truncate the noise at {t:g}: components beyond +-{t:g} are drawn again "
            f"(fidelity over variety; metadata `truncation`). gan_pack, the Node and the browser examples do so "
            f"unless told otherwise (`--truncation 0`: none); a program that feeds `noise` itself does its own.")


def data_section(notice: str | None) -> str:
    """The training data's licenses and attribution (pack --data-notice), as the packer wrote them."""
    return f"## Training data: licenses and attribution\n\n{notice}\n\n" if notice else ""


def evaluation_section(facts: dict, evaluation: dict | None) -> str:
    if not evaluation:
        return ""
    rows = "\n".join(f"| {METRIC_NAMES[key]} | {evaluation[key]:.4g} |" for key in METRIC_NAMES if key in evaluation)
    cut = f", truncation {evaluation['truncation']:g}" if evaluation.get("truncation") is not None else ""
    return (f"\n## Evaluation\n\n`ganpack evaluate`, n = {evaluation.get('n')}, seed {evaluation.get('seed')}{cut}, "
            f"in the features of a classifier trained on {_text(facts['dataset'])}:\n\n| figure | value |\n|---|---|\n"
            f"{rows}\n")


def variants_section(facts: dict) -> str:
    """Each variant: what it is made for, its parity with the main model, the speed measured when it
    was made, and its own evaluation."""
    variants = [f for f in facts["files"] if f.get("role") == "variant"]
    if not variants:
        return ""

    def cells(f: dict) -> str:
        parity = f.get("parity") or {}
        worst = max((b.get("max_abs", 0) for b in parity.get("batches", [])), default=None)
        speed, ev = f.get("speed") or {}, f.get("evaluation") or {}
        on = f", {speed['device']}" if isinstance(speed.get("device"), str) else ""
        rate = (f"{speed['images_per_s']:,} ({speed['images_per_s'] / speed['main_images_per_s']:.2f}x "
                f"`{facts['name']}.onnx`{on})" if speed.get("images_per_s") and speed.get("main_images_per_s") else "")
        return " | ".join([f"`{f['path']}`", f.get("provider", "any"), f.get("precision", ""),
                           "" if worst is None else f"{worst:.2e}", rate,
                           f"{ev['fcd']:.4g}" if "fcd" in ev else "",
                           f"{ev['conditional_accuracy']:.4g}" if "conditional_accuracy" in ev else ""])

    batch = next((f["speed"]["batch"] for f in variants if f.get("speed")), None)
    return ("\n## Variants\n\nParity: the largest difference from the main model's images. Speed: images/s on "
            f"the provider it is made for{f', batch {batch}' if batch else ''}, images left on the device, measured "
            "when packed. FCD and accuracy: `ganpack evaluate` of the variant itself.\n\n"
            "| file | provider | precision | parity (max abs) | images/s | FCD | conditional accuracy |\n"
            "|---|---|---|---|---|---|---|\n" + "\n".join(f"| {cells(f)} |" for f in variants) + "\n")


def parity_sentence(parity: dict) -> str:
    worst = max((b.get("max_abs", 0) for b in parity.get("batches", [])), default=None)
    if worst is None:
        return "No parity report was recorded."
    return (f"Export parity against PyTorch: max abs difference {worst:.2e} over batch sizes "
            f"{', '.join(str(b['batch']) for b in parity['batches'])} (bound {parity.get('bound')}).")


def _tolerances(facts: dict) -> dict:
    return {f["path"]: dict(zip(("metric", "bound"), GOLDEN_TOLERANCE[family(f["precision"])]))
            for f in facts["files"] if "precision" in f}
