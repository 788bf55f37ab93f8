#!/usr/bin/env bash
# Export the best checkpoint of each named run in /tmp/sweep (the device scripts' run folders), side
# by side, and pack each run's model, parity report, log and last grid into $OUT/NAME.tgz (what
# the device tool brings back). A run that failed to export still sends its metrics.jsonl.
#   OUT=dir bash scripts/device_export.sh NAME...
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
R=/tmp/sweep
for name in "$@"; do
  python3 -m gan_pack export $R/$name/checkpoint-best.pt -o $R/$name/$name.onnx > $R/$name/export.log 2>&1 &
done
wait
for name in "$@"; do
  tail -n 1 $R/$name/export.log
  cp $R/$name.log $R/$name/train.log; last=$(ls $R/$name/samples | tail -1)
  tar czf $OUT/$name.tgz -C $R/$name $name.onnx $name.parity.json metrics.jsonl config.json samples/$last train.log 2>/dev/null || tar czf $OUT/$name.tgz -C $R/$name metrics.jsonl
done
