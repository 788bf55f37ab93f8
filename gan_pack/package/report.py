"""One self-contained HTML page (or one PNG) per run, and a table of runs. No torch.

Plots are plain inline SVG: no plotting library to install, nothing fetched at view time, and the
numbers stay in the page (each curve's points are in its data-x / data-y attributes).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gan_pack.core import runlog
from gan_pack.core.numbers import number
from gan_pack.errors import RunError

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd")


@dataclass
class RunData:
    path: Path
    config: dict
    train: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    grids: list[Path] = field(default_factory=list)
    exports: list[dict] = field(default_factory=list)
    skipped_lines: int = 0


MAX_GRID_BYTES = 20 << 20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def load_run(run_dir: str | Path, warn=None) -> RunData:
    """Read a run folder: config, metrics (a truncated line is skipped, with one warning), grids.

    A run folder may come from anyone: only grids that are real PNG files inside it are used."""
    path = Path(run_dir)
    warn = warn or (lambda message: None)
    config = runlog.read_config(path)
    metrics = runlog.read_metrics(path)
    grids: list[Path] = []
    refused: list[Path] = []
    for grid in sorted((path / "samples").glob("epoch_*.png")):
        (grids if is_own_image(grid, path) else refused).append(grid)
    run = RunData(path, config, metrics.train, metrics.evals, grids, runlog.read_exports(path),
                  metrics.skipped_lines)
    if run.skipped_lines:
        warn(f"warning: skipped {run.skipped_lines} unreadable line(s) of {path / runlog.METRICS} "
             f"(cut short by a kill, or not records of a run)")
    if refused:
        warn(f"warning: left out {len(refused)} sample file(s) that are not PNG images inside {path} "
             f"(links or other files), e.g. {refused[0]}")
    return run


def is_own_image(path: Path, root: Path) -> bool:
    """A regular file (not a link), inside root even after resolving links, that is a PNG image."""
    try:
        if path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(root.resolve()):
            return False
        if path.stat().st_size > MAX_GRID_BYTES:
            return False
        with open(path, "rb") as f:
            if f.read(8) != PNG_SIGNATURE:
                return False
        from PIL import Image

        with Image.open(path) as image:
            image.verify()
        return True
    except Exception:  # PIL raises many types for a broken image  # noqa: BLE001
        return False


# ---------------------------------------------------------------- SVG charts

def svg_chart(title: str, series: dict[str, tuple[list, list]], xlabel: str = "step",
              width: int = 560, height: int = 260) -> str:
    """A line chart; every series keeps its raw points in data-x / data-y."""
    pad_l, pad_r, pad_t, pad_b = 56, 12, 28, 36
    xs = [x for sx, _ in series.values() for x in sx]
    ys = [y for _, sy in series.values() for y in sy if y is not None and np.isfinite(y)]
    if not xs or not ys:
        return f"<p><em>{html.escape(title)}: no data yet.</em></p>"
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

    def px(x, y):
        return (pad_l + (x - x0) / (x1 - x0) * (width - pad_l - pad_r),
                height - pad_b - (y - y0) / (y1 - y0) * (height - pad_t - pad_b))

    parts = [f'<svg width="{width}" height="{height}" '
             f'class="chart" data-title="{html.escape(title)}">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>',
             f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - pad_r}" y2="{height - pad_b}" stroke="#888"/>',
             f'<line x1="{pad_l}" y1="{pad_t}" x2="{pad_l}" y2="{height - pad_b}" stroke="#888"/>']
    for value in np.linspace(y0, y1, 5):
        _, y = px(x0, value)
        parts.append(f'<text x="{pad_l - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{value:.3g}</text>')
    for value in np.linspace(x0, x1, 5):
        x, _ = px(value, y0)
        parts.append(f'<text x="{x:.1f}" y="{height - pad_b + 14}" text-anchor="middle" '
                     f'font-size="10">{value:.0f}</text>')
    parts.append(f'<text x="{width / 2}" y="{height - 4}" text-anchor="middle" font-size="11">{xlabel}</text>')
    for i, (name, (sx, sy)) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in (px(x, y) for x, y in zip(sx, sy)))
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{points}" '
                     f'data-series="{html.escape(name)}" data-x="{",".join(map(str, sx))}" '
                     f'data-y="{",".join(map(str, sy))}"/>')
        parts.append(f'<text x="{pad_l + 8 + 110 * i}" y="{pad_t + 10}" font-size="11" fill="{color}">'
                     f'{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def curve(records: list[dict], key: str, x: str = "step") -> tuple[list, list]:
    pairs = [(r[x], r[key]) for r in records if number(r.get(key)) and number(r.get(x))]
    return [p[0] for p in pairs], [p[1] for p in pairs]


# ---------------------------------------------------------------- the page

def _img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
            f'<figcaption>{html.escape(alt)}</figcaption></figure>')


def _table(rows: list[tuple], header: tuple | None = None) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def chosen_grids(grids: list[Path]) -> list[Path]:
    """The first, middle and last epoch's grids (fewer if there are fewer)."""
    if len(grids) <= 3:
        return grids
    return [grids[0], grids[len(grids) // 2], grids[-1]]


def _curves_section(run: RunData) -> str:
    if not run.train:
        return "<p><strong>No metrics yet</strong>: the run has not logged a training step.</p>"
    parts = [svg_chart("losses", {"d_loss": curve(run.train, "d_loss"), "g_loss": curve(run.train, "g_loss")}),
             svg_chart("discriminator outputs",
                       {"D(x)": curve(run.train, "d_x"), "D(G(z))": curve(run.train, "d_g_z")}),
             svg_chart("images/s", {"images/s": curve(run.train, "images_per_s")})]
    if run.evals:
        parts.append(svg_chart("FCD (in-training evaluation)", {"FCD": curve(run.evals, "fcd", "epoch")}, "epoch"))
        accuracy = curve(run.evals, "conditional_accuracy", "epoch")
        if accuracy[0]:
            parts.append(svg_chart("conditional accuracy", {"accuracy": accuracy}, "epoch"))
    return "\n".join(parts)


def _cell(value, spec: str) -> str:
    return format(value, spec) if number(value) else "-"


def _export_section(run: RunData, warn=None) -> str:
    if not run.exports:
        return "<p>Not exported yet (<code>ganpack export RUN -o NAME.onnx</code>).</p>"
    from gan_pack.errors import GanPackError
    from gan_pack.runtime.generator import OnnxGenerator

    parts = []
    for entry in run.exports:
        try:
            g = OnnxGenerator(entry["path"])
        except GanPackError as e:
            if warn:
                warn(f"warning: left out the export {entry['path']} ({e})")
            continue
        parity = g.info.parity or {"batches": []}
        rows = [(b["batch"], _cell(b.get("max_abs"), ".2e"), _cell(b.get("max_rel"), ".2e"),
                 _cell(b.get("bound"), ".1e"), "yes" if b.get("ok") else "NO") for b in parity["batches"]]
        meta = [(k, v) for k, v in sorted(g.info.raw.items()) if k not in ("parity", "train_config")]
        parts.append(f"<h3>{html.escape(entry['path'])}</h3>"
                     + _table(rows, ("batch", "max abs", "max rel", "bound", "ok"))
                     + "<h4>ONNX metadata</h4>" + _table(meta, ("key", "value")))
    return "\n".join(parts)


STYLE = """body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}
figure{display:inline-block;margin:0 1em 1em 0}img{image-rendering:pixelated;width:300px}
svg.chart{margin:0 1em 1em 0;border:1px solid #eee}"""


def render_html(run: RunData, warn=None) -> str:
    """The whole report as one HTML string: images inlined, no script, no external address."""
    settings = [(k, v) for k, v in sorted(run.config.items()) if k != "dataset_info"]
    facts = run.config.get("dataset_info")
    facts = facts if isinstance(facts, dict) else {}
    grids = ("".join(_img_tag(p, p.stem.replace("_", " ")) for p in chosen_grids(run.grids))
             or "<p>No sample grids yet.</p>")
    last = run.train[-1] if run.train else {}
    summary = (f"{run.config.get('model')} / {run.config.get('arch')} on {run.config.get('dataset')}: "
               f"epoch {last.get('epoch', 0)}, step {last.get('step', 0)}")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>gan_pack run {html.escape(run.path.name)}</title>
<style>{STYLE}</style></head><body>
<h1>Run {html.escape(run.path.name)}</h1><p>{html.escape(summary)}</p>
<h2>Curves</h2>{_curves_section(run)}
<h2>Samples (fixed noise)</h2>{grids}
<h2>Export</h2>{_export_section(run, warn)}
<h2>Settings</h2>{_table(settings, ("setting", "value"))}
<h2>Data</h2>{_table(sorted(facts.items(), key=str), ("fact", "value"))}
</body></html>
"""


def write_report(run: RunData, output: str | Path | None = None, warn=None) -> Path:
    from gan_pack.core.files import write_text_atomic

    output = Path(output) if output else run.path / "report.html"
    write_text_atomic(output, render_html(run, warn))
    return output


# ---------------------------------------------------------------- one summary PNG

def _plot_png(series: dict[str, tuple[list, list]], size=(420, 300), title=""):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 4), title, fill="black")
    ys = [y for _, sy in series.values() for y in sy]
    xs = [x for sx, _ in series.values() for x in sx]
    if not xs:
        draw.text((8, 40), "no metrics yet", fill="black")
        return image
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    y0, y1 = min(ys), max(max(ys), min(ys) + 1e-9)
    box = (40, 24, size[0] - 8, size[1] - 20)
    draw.rectangle(box, outline="#999")
    draw.text((2, box[1]), f"{y1:.3g}", fill="black")
    draw.text((2, box[3] - 10), f"{y0:.3g}", fill="black")
    for i, (name, (sx, sy)) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        points = [(box[0] + (x - x0) / (x1 - x0) * (box[2] - box[0]),
                   box[3] - (y - y0) / (y1 - y0) * (box[3] - box[1])) for x, y in zip(sx, sy)]
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        draw.text((box[0] + 6 + 90 * i, box[1] + 4), name, fill=color)
    return image


def write_summary_png(run: RunData, output: str | Path) -> Path:
    """Losses, D outputs and the last grid side by side in one PNG."""
    from PIL import Image

    from gan_pack.core.files import atomic_path

    panels = [_plot_png({"d_loss": curve(run.train, "d_loss"), "g_loss": curve(run.train, "g_loss")}, title="losses"),
              _plot_png({"D(x)": curve(run.train, "d_x"), "D(G(z))": curve(run.train, "d_g_z")}, title="D outputs")]
    if run.grids:
        grid = Image.open(run.grids[-1]).convert("RGB")
        panels.append(grid.resize((300, int(300 * grid.height / grid.width)), Image.Resampling.NEAREST))
    canvas = Image.new("RGB", (sum(p.width for p in panels), max(p.height for p in panels)), "white")
    x = 0
    for panel in panels:
        canvas.paste(panel, (x, 0))
        x += panel.width
    output = Path(output)
    with atomic_path(output) as tmp:
        canvas.save(tmp, format="PNG")
    return output


# ---------------------------------------------------------------- the table of runs

def list_runs(root: str | Path, warn=None) -> list[dict]:
    """Every run folder directly under root, newest first."""
    root = Path(root)
    if not root.is_dir():
        raise RunError(f"{root} is not a folder; give the folder that holds your runs (e.g. runs/)")
    rows = []
    for folder in (p for p in root.iterdir() if runlog.is_run(p)):
        try:
            run = load_run(folder)
        except RunError as e:
            if warn:
                warn(f"warning: skipped {folder} ({e})")
            continue
        last = run.train[-1] if run.train else {}
        fcds = [e["fcd"] for e in run.evals if number(e.get("fcd"))]
        stamp = max(f.lstat().st_mtime for f in folder.iterdir())
        text = {key: str(run.config.get(key, "-"))[:14] for key in ("model", "arch", "dataset", "epochs")}
        rows.append({"name": folder.name, "model": text["model"], "arch": text["arch"],
                     "dataset": text["dataset"], "epochs": f"{len(run.grids)}/{text['epochs']}",
                     "d_loss": last.get("d_loss"), "g_loss": last.get("g_loss"),
                     "best_fcd": min(fcds) if fcds else None, "exported": export_state(run, last), "modified": stamp})
    return sorted(rows, key=lambda r: r["modified"], reverse=True)


def export_state(run: RunData, last: dict) -> str:
    """yes: an export holds the weights of the run's last logged step; epoch N: the newest export is
    of epoch N, and the run trained on since (a resume); no: never exported. Exports recorded before
    their step was, count as yes."""
    if not run.exports:
        return "no"
    steps = [e.get("step") for e in run.exports]
    if any(step is None or step == last.get("step") for step in steps):
        return "yes"
    newest = max(run.exports, key=lambda e: e.get("step") or 0)
    return f"epoch {newest.get('epoch')}" if isinstance(newest.get("epoch"), int) else "older"


def format_runs(rows: list[dict]) -> str:
    header = (f"{'name':<24} {'model':<5} {'arch':<6} {'dataset':<14} {'epochs':>7} {'d_loss':>7} {'g_loss':>7} "
              f"{'best FCD':>9} exported")
    lines = [header]
    for r in rows:
        lines.append(f"{r['name'][:24]:<24} {r['model']:<5} {r['arch']:<6} {r['dataset']:<14} {r['epochs']:>7} "
                     f"{_cell(r['d_loss'], '7.3f'):>7} {_cell(r['g_loss'], '7.3f'):>7} "
                     f"{_cell(r['best_fcd'], '9.3f'):>9} "
                     f"{r['exported']}")
    return "\n".join(lines)
