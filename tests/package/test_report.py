import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli, tiny_config
from gan_pack.core.images import save_grid
from gan_pack.package.report import list_runs, load_run, render_html


def polyline(html_text: str, series: str) -> tuple[list[float], list[float]]:
    match = re.search(rf'data-series="{re.escape(series)}" data-x="([^"]*)" data-y="([^"]*)"', html_text)
    assert match, series
    return [float(v) for v in match.group(1).split(",")], [float(v) for v in match.group(2).split(",")]


def fake_run(folder, records, epochs=2):
    """A run folder written the way `ganpack train` writes one (no torch needed)."""
    (folder / "samples").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": "gan", "arch": "mlp", "dataset": "mnist",
                                                    "epochs": epochs, "dataset_info": {"name": "mnist"}}))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for epoch in range(1, epochs + 1):
        save_grid(folder / "samples" / f"epoch_{epoch:03d}.png", np.zeros((4, 1, 8, 8), np.float32))
    return folder


RECORDS = [{"epoch": 1, "step": s, "d_loss": 1.0 / s, "g_loss": 0.5 * s, "d_x": 0.6, "d_g_z": 0.4,
            "images_per_s": 100.0 + s} for s in (2, 4, 6)]


def test_curves_match_metrics_and_page_is_self_contained(tmp_path):
    run = fake_run(tmp_path / "r", RECORDS + [{"epoch": 1, "step": 6, "eval": True, "fcd": 3.5,
                                               "conditional_accuracy": float("nan")}])
    page = render_html(load_run(run))
    assert polyline(page, "d_loss") == ([2, 4, 6], [r["d_loss"] for r in RECORDS])
    assert polyline(page, "D(G(z))")[1] == [0.4, 0.4, 0.4]
    assert polyline(page, "FCD") == ([1], [3.5])
    assert "http" not in page and 'src="//' not in page and "<script" not in page
    assert 'src="data:image/png;base64,' in page
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        assert Image.open(io.BytesIO(base64.b64decode(data))).size == (22, 22)


def test_run_without_metrics_says_so(tmp_path, capsys):
    run = fake_run(tmp_path / "r", [], epochs=0)
    code, out, err = run_cli(["report", run, "-o", tmp_path / "r.html"], capsys)
    assert code == 0, err
    assert "No metrics yet" in (tmp_path / "r.html").read_text()


def test_truncated_last_line_skipped_with_one_warning(tmp_path, capsys):
    run = fake_run(tmp_path / "r", RECORDS)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "step": 8, "d_lo')
    code, _, err = run_cli(["report", run, "--png", tmp_path / "s.png"], capsys)
    assert code == 0
    assert err.count("warning") == 1 and "skipped 1" in err
    assert polyline((run / "report.html").read_text(), "d_loss")[0] == [2, 4, 6]
    assert Image.open(tmp_path / "s.png").width > 800


def test_not_a_run(tmp_path, capsys):
    code, _, err = run_cli(["report", tmp_path], capsys)
    assert code == 2 and err.strip().startswith("error:") and "not a run folder" in err
    assert len(err.strip().splitlines()) == 1


def test_runs_table_newest_first(tmp_path, capsys):
    import os
    import time

    old = fake_run(tmp_path / "old", RECORDS)
    fake_run(tmp_path / "new", RECORDS[:1] + [{"epoch": 1, "step": 2, "eval": True, "fcd": 1.25}])
    past = time.time() - 1000
    for f in old.rglob("*"):
        os.utime(f, (past, past))
    assert [r["name"] for r in list_runs(tmp_path)] == ["new", "old"]
    code, out, _ = run_cli(["runs", tmp_path], capsys)
    lines = out.strip().splitlines()
    assert code == 0 and lines[1].startswith("new") and "1.250" in lines[1] and lines[2].startswith("old")


# ---------------------------------------------------------------- a real short run (torch)

@pytest.mark.torch
@pytest.mark.slow                       # a 2-epoch run with TensorBoard and an export
def test_real_run_report_and_tensorboard(tmp_path, tiny_idx, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gan_pack.pytorch.export import ExportOptions, export_generator
    from gan_pack.pytorch.train import train

    run = tmp_path / "run"
    train(tiny_config(run, tiny_idx, epochs=2, tensorboard=True))
    export_generator(run, tmp_path / "m.onnx", ExportOptions(batch_sizes=(1, 7)))
    code, _, err = run_cli(["report", run], capsys)
    assert code == 0, err
    page = (run / "report.html").read_text()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert polyline(page, "g_loss") == ([r["step"] for r in records], [r["g_loss"] for r in records])
    assert "max abs" in page and "noise_distribution" in page and "http" not in page

    events = EventAccumulator(str(run), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"loss/d", "loss/g", "D/real D(x)", "D/fake D(G(z))", "speed/images_per_s",
            "lr/generator"} <= set(tags["scalars"])
    assert [e.value for e in events.Scalars("loss/g")] == pytest.approx([r["g_loss"] for r in records], rel=1e-4)
    images = events.Images("samples")
    assert [i.step for i in images] == [1, 2]
    last_grid = Image.open(run / "samples" / "epoch_002.png")
    assert Image.open(io.BytesIO(images[-1].encoded_image_string)).size == last_grid.size


@pytest.mark.torch
def test_runs_tells_an_export_the_run_has_trained_past(tmp_path, tiny_idx, capsys):
    """`runs` says yes only while an export holds the run's last weights: resumed past it, the
    column names the epoch the export came from."""
    from gan_pack.pytorch.export import ExportOptions, export_generator
    from gan_pack.pytorch.train import train

    run = tmp_path / "runs" / "demo"
    train(tiny_config(run, tiny_idx, epochs=1))
    assert list_runs(tmp_path / "runs")[0]["exported"] == "no"
    export_generator(run, tmp_path / "m.onnx", ExportOptions(batch_sizes=(1, 7)))
    assert list_runs(tmp_path / "runs")[0]["exported"] == "yes"
    train(tiny_config(run, tiny_idx, epochs=2), resume=True)
    assert list_runs(tmp_path / "runs")[0]["exported"] == "epoch 1"
    code, out, _ = run_cli(["runs", tmp_path / "runs"], capsys)
    assert code == 0 and out.splitlines()[1].rstrip().endswith("epoch 1")
