#!/usr/bin/env bash
# Many runs on a machine of several GPUs (the device tool), trained in the background so that one
# sweep spans back-to-back calls without stopping. Usage, one call each:
#   bash scripts/device_fleet.sh start NAME@GPU:ARGS...   start each run on GPU (setsid: it
#                                                          outlives the call; a run with a
#                                                          checkpoint is resumed)
#   bash scripts/device_fleet.sh watch SECONDS            wait, then show each run's progress
#   bash scripts/device_fleet.sh stop                      end the runs (they keep their checkpoints)
#   OUT=dir bash scripts/device_fleet.sh export NAME...    export the best checkpoints into $OUT/NAME.tgz
# ARGS may use @M / @F for the MNIST / Fashion-MNIST data, classifier and in-training evaluation.
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
R=/tmp/sweep; mkdir -p $R
M="--data-dir .data/mnist --classifier exported/mnist-classifier.onnx --eval-every 8 --log-every 500"
F="--dataset fashion-mnist --data-dir .data/fashion-mnist --classifier exported/fashion-mnist-classifier.onnx --eval-every 8 --log-every 500"
verb=$1; shift
case $verb in
start)
  for spec in "$@"; do
    head=${spec%%:*}; args=${spec#*:}; name=${head%@*}; gpu=${head#*@}
    args=${args//@M/$M}; args=${args//@F/$F}
    resume=""; [ -f $R/$name/checkpoint.pt ] && resume="--resume"
    CUDA_VISIBLE_DEVICES=$gpu setsid nohup python3 -m gan_pack train --out $R/$name $args $resume \
      >> $R/$name.log 2>&1 < /dev/null &
    echo "$name on GPU $gpu: $args $resume"
  done ;;
watch)
  sleep "$1"
  nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv,noheader
  for log in $R/*.log; do
    name=$(basename $log .log)
    echo "== $name: $(grep -c '^epoch' $log) epochs this far; $(grep '^epoch' $log | tail -n 1 | cut -c1-60)"
    grep -E 'Error|error:' $log | tail -n 2
    [ -f $R/$name/metrics.jsonl ] && grep '"fcd"' $R/$name/metrics.jsonl | tail -n 4 | python3 -c "
import json,sys
for l in sys.stdin:
    r=json.loads(l); print('  ', r['epoch'], round(r['fcd'],4), round(r['fcd_ratio'],2), 'recall', r['recall'], 'kl', r['class_kl'], 'acc', r['conditional_accuracy'])"
  done ;;
stop)
  # Anchored: a caller whose own command line holds the words (bash -c "... gan_pack train ...")
  # must not be matched and killed with the runs.
  pkill -f "^python3 -m gan_pack train" ; sleep 5 ;;
export)
  bash scripts/device_export.sh "$@" ;;
esac
