"""The model card of an image model's package: README.md with YAML front matter, how to run it (the
command line, Python, serve), its size rules and tiling, its figures against bicubic, its variants
with their PSNR against fp32, its parity, and the training data's licenses."""

from __future__ import annotations

from gan_pack.contract.spec import TensorSpec
from gan_pack.package.card import _text, _yaml, data_section

TASK = "image-to-image"


def image_card(facts: dict, license: str, notice: str | None) -> str:
    name, spec = facts["name"], facts["spec"]
    scale = spec["scale"]
    tags = ["gan_pack", "onnx", "super-resolution" if scale > 1 else "image-restoration", facts["architecture"],
            facts["dataset"]]
    lines = ["---", f"license: {_yaml(license)}", "library_name: onnxruntime", f"pipeline_tag: {TASK}", "tags:"]
    lines += [f"  - {_yaml(t)}" for t in dict.fromkeys(tags)] + ["---", ""]
    what = f"{scale}x upscaler" if scale > 1 else "image restorer"
    lines += [f"# {_text(name)}", "",
              f"A {what} ({_text(facts['source'])}, {spec['in_channels']} channels"
              f"{', RGBA' if spec['alpha'] else ''}) packaged by gan_pack {facts['gan_pack_version']}"
              + (f", trained on {_text(facts['dataset'])}." if facts["dataset"] not in ("unknown", "?") else "."), "",
              "## Use", "", "```bash", f"ganpack apply {name}/ input.png -o output.png      # tiles, alpha kept",
              f"ganpack serve {name}/    # POST PNG bytes to /v1/models/{name}/apply", "```", "", "```python",
              "from gan_pack.runtime.image_model import ImageModel",
              f"model = ImageModel('{name}/')", "big = model.apply(image)      # (H, W, C) uint8 in and out", "```",
              "", "## Contract", ""]
    lines += [f"- input {TensorSpec.from_manifest(e).card()}" for e in facts["contract"]["inputs"]]
    lines += [f"- output {TensorSpec.from_manifest(e).card()}" for e in facts["contract"]["outputs"]]
    lines += [f"- tiling: {spec['tiling']}" + ("; `apply` pads any image to the size rules and crops the output"
                                                if not spec["fixed"] else ""), ""]
    evaluation = facts.get("evaluation")
    if evaluation:
        p = evaluation["psnr_db"]
        lines += ["## Against bicubic", "",
                  f"{evaluation['images']} test images of {_text(evaluation.get('data_dir', facts['dataset']))}, made "
                  f"{scale}x smaller with Pillow's bicubic, enlarged again ({name}.png: input, bicubic, this model, "
                  f"original). PSNR in dB against the original:", "",
                  "| | RGB over white | alpha |", "|---|---|---|",
                  f"| bicubic | {p['bicubic_rgb']:.2f} | {p.get('bicubic_alpha', float('nan')):.2f} |",
                  f"| {_text(name)} | {p['model_rgb']:.2f} | {p.get('model_alpha', float('nan')):.2f} |", ""]
    lines += ["## Files", "", "| file | size | precision | against fp32 |", "|---|---|---|---|"]
    for f in facts["files"]:
        if f.get("role"):
            figure = f"{f['psnr_vs_fp32_db']:.1f} dB" if "psnr_vs_fp32_db" in f else "(the reference)"
            lines.append(f"| `{f['path']}` | {f['bytes'] / 1e6:.2f} MB | {f['precision']}"
                         f"{' (CUDA)' if f.get('provider') == 'cuda' else ''} | {figure} |")
    parity = facts.get("parity") or {}
    if parity.get("batches"):
        worst = max(b["max_abs"] for b in parity["batches"])
        sizes = ", ".join(f"{b['batch']}x{b.get('height', '?')}x{b.get('width', '?')}" for b in parity["batches"])
        lines += ["", f"Parity: the export differs from {_text(parity.get('reference', 'PyTorch'))} by at most "
                      f"{worst:.1e} (bound {parity.get('bound', 0):.0e}) at {sizes}."]
    lines += ["", "Check the package anywhere with `ganpack verify " + name + "/`.", ""]
    limits = ("## Intended use and limits\n\nFor images like those it was trained on; on other pictures it may "
              "invent or smooth detail. Its figures above are measured on the test images named there only.\n")
    return "\n".join(lines) + data_section(notice) + limits
