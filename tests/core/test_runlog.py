"""The run folder's logs: written and read in one place, robust to a line cut short."""

import json

import pytest

from gan_pack.core import runlog
from gan_pack.errors import RunError


def test_config_round_trips_with_the_data_facts(tmp_path):
    runlog.write_config(tmp_path, {"model": "cgan", "epochs": 3}, {"name": "mnist", "num_classes": 10})
    assert runlog.is_run(tmp_path)
    assert runlog.read_config(tmp_path) == {"model": "cgan", "epochs": 3,
                                            "dataset_info": {"name": "mnist", "num_classes": 10}}


def test_not_a_run(tmp_path):
    assert not runlog.is_run(tmp_path)
    with pytest.raises(RunError, match="not a run folder"):
        runlog.read_config(tmp_path)


def test_metrics_split_train_and_eval_and_skip_a_cut_line(tmp_path):
    runlog.append_metrics(tmp_path, {"step": 2, "d_loss": 1.0})
    runlog.append_metrics(tmp_path, {"step": 4, "eval": True, "fcd": 3.0})
    with open(tmp_path / runlog.METRICS, "a") as f:
        f.write('{"step": 6, "d_lo')                      # a process killed mid-write
    metrics = runlog.read_metrics(tmp_path)
    assert [r["step"] for r in metrics.train] == [2]
    assert [r["fcd"] for r in metrics.evals] == [3.0]
    assert metrics.skipped_lines == 1


def test_exports_keep_only_files_that_still_exist(tmp_path):
    kept, gone = tmp_path / "a.onnx", tmp_path / "b.onnx"
    kept.write_bytes(b"x")
    runlog.record_export(tmp_path, kept, "fp32", "ema")
    runlog.record_export(tmp_path, gone, "fp16", "raw")
    entries = runlog.read_exports(tmp_path)
    assert [e["path"] for e in entries] == [str(kept.resolve())]
    assert entries[0]["precision"] == "fp32" and entries[0]["weights"] == "ema"
    lines = (tmp_path / runlog.EXPORTS).read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["precision"] == "fp16"
