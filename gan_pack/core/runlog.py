"""A run folder's logs, written and read in one place. No torch.

- config.json: every setting (flat) and the data set's facts, under `dataset_info`;
- metrics.jsonl: one JSON object a line, training records and `"eval": true` records;
- exports.jsonl: one line per `ganpack export` of the run.

A line cut short by a killed process is skipped when read, never fatal; a line that is not a JSON
object, or an export entry without a path, is skipped too. A resumed run rewinds metrics.jsonl to
its checkpoint's step, so the steps a kill cut off and the resumed run redoes appear once.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from gan_pack.core.files import FolderLock, append_line, write_text_atomic
from gan_pack.errors import RunError

CONFIG, METRICS, EXPORTS = "config.json", "metrics.jsonl", "exports.jsonl"


def dump_json(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


def is_run(folder: str | Path) -> bool:
    return (Path(folder) / CONFIG).is_file()


def write_config(run_dir: str | Path, settings: dict, dataset_info: dict) -> None:
    write_text_atomic(Path(run_dir) / CONFIG, dump_json({**settings, "dataset_info": dataset_info}))


def read_config(run_dir: str | Path) -> dict:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise RunError(f"{run_dir} is not a run folder (no {CONFIG}); give the --out folder of "
                       f"`ganpack train`")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path} is not readable JSON ({type(e).__name__}); the run folder is damaged") from e
    if not isinstance(config, dict):
        raise RunError(f"{path} does not hold an object of settings; the run folder is damaged")
    return config


def lock_run(run_dir: str | Path) -> FolderLock:
    """Hold the run folder for this process: a second `ganpack train` on it exits saying who holds it."""
    return FolderLock(run_dir, "ganpack train").acquire()


def _append(path: Path, record: dict) -> None:
    append_line(path, json.dumps(record))


def _read_lines(path: Path) -> tuple[list[dict], int]:
    """(records, number of unreadable lines) of a JSON-lines file; absent means empty. A line that
    is not a JSON object counts as unreadable."""
    if not path.is_file():
        return [], 0
    return _parse_lines(path.read_text(encoding="utf-8", errors="replace").splitlines())


def _parse_lines(lines: list[str]) -> tuple[list[dict], int]:
    records, skipped = [], 0
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        elif line.strip():
            skipped += 1
    return records, skipped


def append_metrics(run_dir: str | Path, record: dict) -> None:
    _append(Path(run_dir) / METRICS, record)


@dataclass
class Metrics:
    train: list[dict]
    evals: list[dict]
    skipped_lines: int


def _step(record: dict) -> int | None:
    step = record.get("step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def read_metrics(run_dir: str | Path) -> Metrics:
    """Training and eval records; a record without an integer step counts as unreadable."""
    records, skipped = _read_lines(Path(run_dir) / METRICS)
    good = [r for r in records if _step(r) is not None]
    skipped += len(records) - len(good)
    return Metrics([r for r in good if not r.get("eval")], [r for r in good if r.get("eval")], skipped)


def rewind_metrics(run_dir: str | Path, step: int) -> int:
    """Keep the records up to `step` (a checkpoint's), drop later ones and unreadable lines; returns
    how many lines were dropped. Used on resume (the resumed run logs those steps again) and, with
    step 0, by a fresh run in a folder whose first checkpoint was never written."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    records, _ = _parse_lines(lines)
    kept = [r for r in records if (at := _step(r)) is not None and at <= step]
    if len(kept) == len(lines):
        return 0
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))
    return len(lines) - len(kept)


def record_export(run_dir: str | Path, output: Path, precision: str, weights: str, step: int | None = None,
                  epoch: int | None = None) -> None:
    """Note an export, and the step and epoch of the weights it holds, in the run folder, so that
    `ganpack report` can show it and `ganpack runs` can tell whether the run trained on since."""
    entry = {"path": str(Path(output).resolve()), "precision": precision, "weights": weights,
             "time": round(time.time(), 3), "step": step, "epoch": epoch}
    _append(Path(run_dir) / EXPORTS, entry)


def read_exports(run_dir: str | Path) -> list[dict]:
    """The recorded exports whose file still exists."""
    entries, _ = _read_lines(Path(run_dir) / EXPORTS)
    return [e for e in entries if isinstance(e.get("path"), str) and e["path"] and Path(e["path"]).is_file()]
