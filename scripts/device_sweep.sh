#!/usr/bin/env bash
# Side-by-side variants on one GPU machine (the device tool): each run logs in-training FCD every
# few epochs and keeps its best checkpoint. Usage:
#   OUT=dir [EXPORT=1] bash scripts/device_sweep.sh SECONDS NAME:ARGS...
# Each run trains for at most SECONDS in this call. A run whose folder (/tmp/sweep/NAME) already
# holds a checkpoint is resumed, so a sweep longer than one call is the same command repeated in
# back-to-back calls (a warm machine keeps /tmp). With EXPORT=1 the best checkpoints are then
# exported, and each run's files are packed into $OUT/NAME.tgz.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
LIMIT=$1; shift
R=/tmp/sweep; mkdir -p $R
M="--data-dir .data/mnist --classifier exported/mnist-classifier.onnx --eval-every 4 --log-every 500"
F="--dataset fashion-mnist --data-dir .data/fashion-mnist --classifier exported/fashion-mnist-classifier.onnx --eval-every 4 --log-every 500"
names=()
for spec in "$@"; do
  name=${spec%%:*}; args=${spec#*:}; names+=($name)
  args=${args//@M/$M}; args=${args//@F/$F}
  resume=""; [ -f $R/$name/checkpoint.pt ] && resume="--resume"
  timeout $LIMIT python3 -m gan_pack train --out $R/$name $args $resume >> $R/$name.log 2>&1 &
done
wait
for name in "${names[@]}"; do
  echo "== $name: $(ls $R/$name/samples 2>/dev/null | wc -l) epochs, $(tail -n 1 $R/$name.log)"
  grep eval $R/$name/metrics.jsonl | tail -n 6 | python3 -c "
import json,sys
for l in sys.stdin:
    r=json.loads(l); print(r['epoch'], r['fcd'], r['fcd_ratio'], r['recall'], r['precision'], r['class_kl'], r['conditional_accuracy'])"
done
[ "${EXPORT:-0}" = 1 ] || exit 0
bash scripts/device_export.sh "${names[@]}"
