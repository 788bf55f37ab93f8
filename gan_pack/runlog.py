"""A run folder's logs, written and read in one place. No torch.

- config.json: every setting (flat) and the data set's facts, under `dataset_info`;
- metrics.jsonl: one JSON object a line, training records and `"eval": true` records;
- exports.jsonl: one line per `ganpack export` of the run.

A line cut short by a killed process is skipped when read, never fatal.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from gan_pack.config import dump_json
from gan_pack.errors import RunError
from gan_pack.files import write_text_atomic

CONFIG, METRICS, EXPORTS = "config.json", "metrics.jsonl", "exports.jsonl"


def is_run(folder: str | Path) -> bool:
    return (Path(folder) / CONFIG).is_file()


def write_config(run_dir: str | Path, settings: dict, dataset_info: dict) -> None:
    write_text_atomic(Path(run_dir) / CONFIG, dump_json({**settings, "dataset_info": dataset_info}))


def read_config(run_dir: str | Path) -> dict:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise RunError(f"{run_dir} is not a run folder (no {CONFIG}); give the --out folder of "
                       f"`ganpack train`")
    return json.loads(path.read_text())


def _append(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _read_lines(path: Path) -> tuple[list[dict], int]:
    """(records, number of unreadable lines) of a JSON-lines file; absent means empty."""
    if not path.is_file():
        return [], 0
    records, skipped = [], 0
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            skipped += 1
    return records, skipped


def append_metrics(run_dir: str | Path, record: dict) -> None:
    _append(Path(run_dir) / METRICS, record)


@dataclass
class Metrics:
    train: list[dict]
    evals: list[dict]
    skipped_lines: int


def read_metrics(run_dir: str | Path) -> Metrics:
    records, skipped = _read_lines(Path(run_dir) / METRICS)
    return Metrics([r for r in records if not r.get("eval")], [r for r in records if r.get("eval")], skipped)


def record_export(run_dir: str | Path, output: Path, precision: str, weights: str) -> None:
    """Note an export in the run folder, so `ganpack report` can show it."""
    entry = {"path": str(Path(output).resolve()), "precision": precision, "weights": weights,
             "time": round(time.time(), 3)}
    _append(Path(run_dir) / EXPORTS, entry)


def read_exports(run_dir: str | Path) -> list[dict]:
    """The recorded exports whose file still exists."""
    entries, _ = _read_lines(Path(run_dir) / EXPORTS)
    return [e for e in entries if Path(e.get("path", "")).is_file()]
