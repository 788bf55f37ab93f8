"""Time to quality: train with `ganpack train`'s own code and evaluate the EMA generator after every
epoch (FCD against the train-vs-test floor, conditional accuracy, recall; n images), printing the
curve against seconds of training. The evaluations are timed apart and left out of the seconds;
grid and checkpoint writing stay in.

Usage: python benchmarks/time_to_quality.py --data-dir ../shared/data/mnist --seconds 60 \
           [--target-accuracy 0.98] [--out runs/ttq] -- --model cgan --arch dcgan --d-width 128
(everything after -- is passed to TrainConfig as `ganpack train` flags would be)
"""

from __future__ import annotations

import argparse
import json
import time
import typing


def parse_train_flags(flags: list[str]) -> dict:
    """--model cgan --d-width 128 --no-ema --bf16 -> {"model": "cgan", "d_width": 128, ...}"""

    # Each setting's declared type, `X | None` taken as X (a default of None says nothing).
    from gan_pack.pytorch.config import GROUPS

    types = {name: next((a for a in typing.get_args(hint) if a is not type(None)), hint)
             for group in GROUPS.values() for name, hint in typing.get_type_hints(group).items()}
    settings, i = {}, 0
    while i < len(flags):
        name = flags[i].lstrip("-").replace("-", "_")
        if name.startswith("no_") and types.get(name[3:]) is bool:
            settings[name[3:]], i = False, i + 1
        elif types.get(name) is bool:
            settings[name], i = True, i + 1
        else:
            settings[name], i = types.get(name, str)(flags[i + 1]), i + 2
    return settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--classifier", default="exported/mnist-classifier.onnx")
    parser.add_argument("--seconds", type=float, default=60.0, help="stop after this much training")
    parser.add_argument("--eval-n", type=int, default=5000)
    parser.add_argument("--target-accuracy", type=float, default=0.98)
    parser.add_argument("--out", default="runs/time-to-quality")
    parser.add_argument("train_flags", nargs=argparse.REMAINDER)
    args = parser.parse_args()

    import torch

    from gan_pack.pytorch.config import TrainConfig
    from gan_pack.pytorch.monitor import InTrainingEvaluation, Monitor
    from gan_pack.pytorch.train import train

    flags = [f for f in args.train_flags if f != "--"]
    config = TrainConfig.from_dict({"model": "cgan", "epochs": 10_000, "dataset": args.dataset,
                                    "data_dir": args.data_dir, "classifier": args.classifier,
                                    "eval_n": args.eval_n, "out": args.out, "log_every": 10_000,
                                    **parse_train_flags(flags)})
    evaluation = InTrainingEvaluation(config)
    curve, clock = [], {"eval": 0.0}
    device_name = None

    class Done(Exception):
        pass

    class Clock(Monitor):
        """Evaluates after every epoch with the training clock stopped."""

        def on_start(self, t):
            nonlocal device_name
            device_name = torch.cuda.get_device_name(t.device) if t.device.type == "cuda" else "CPU"
            clock["start"] = time.perf_counter()

        def on_epoch_end(self, t):
            if t.device.type == "cuda":
                torch.cuda.synchronize()
            paused = time.perf_counter()
            seconds = paused - clock["start"] - clock["eval"]
            record = evaluation.evaluate(t)
            clock["eval"] += time.perf_counter() - paused
            curve.append({"epoch": t.epoch, "train_seconds": round(seconds, 2), **{k: record[k] for k in (
                "fcd", "fcd_ratio", "recall", "conditional_accuracy")}})
            print(json.dumps(curve[-1]), flush=True)
            if seconds >= args.seconds:
                raise Done
            return []

    try:
        train(config, monitors=[Clock()])
    except Done:
        pass
    print(f"device: {device_name}; torch {torch.__version__}; flags: {' '.join(flags) or '(defaults)'}")
    reached = [p for p in curve if p["conditional_accuracy"] >= args.target_accuracy]
    if reached:
        p = reached[0]
        print(f"accuracy >= {args.target_accuracy:.0%} after {p['train_seconds']} s of training "
              f"(epoch {p['epoch']}: FCD {p['fcd']} = {p['fcd_ratio']}x floor, recall {p['recall']})")
    else:
        print(f"accuracy {args.target_accuracy:.0%} not reached in {args.seconds:g} s")
    best = min(curve, key=lambda p: p["fcd"])
    print(f"lowest FCD: {best['fcd']} ({best['fcd_ratio']}x floor) at epoch {best['epoch']}, "
          f"{best['train_seconds']} s")


if __name__ == "__main__":
    main()
