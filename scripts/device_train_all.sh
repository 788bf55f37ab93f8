#!/usr/bin/env bash
# Trains the shipped models side by side on one GPU machine (the device tool), then exports the
# checkpoint with the lowest in-training FCD of each run. Data in .data/{mnist,fashion-mnist}.
# Usage: OUT=out_folder bash scripts/device_train_all.sh [TRAIN_SECONDS]
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
LIMIT=${1:-420}
R=/tmp/runs; mkdir -p $R $OUT/cls
gp() { python3 -m gan_pack "$@"; }

gp train-classifier --dataset mnist --data-dir .data/mnist -o $OUT/cls/mnist-classifier.onnx --epochs 12 > $R/cls-mnist.log 2>&1 &
gp train-classifier --dataset fashion-mnist --data-dir .data/fashion-mnist -o $OUT/cls/fashion-mnist-classifier.onnx --epochs 20 > $R/cls-fashion.log 2>&1 &
wait
M="--data-dir .data/mnist --classifier $OUT/cls/mnist-classifier.onnx --eval-every 4 --log-every 200"
F="--dataset fashion-mnist --data-dir .data/fashion-mnist --classifier $OUT/cls/fashion-mnist-classifier.onnx --eval-every 4 --log-every 200"
run() { name=$1; shift; timeout $LIMIT python3 -m gan_pack train --out $R/$name "$@" > $R/$name.log 2>&1; }
run mnist-cgan        --model cgan --arch dcgan --epochs 40 $M &
run mnist-cgan-w32    --model cgan --arch dcgan --width 32 --epochs 40 $M &
run mnist-gan         --model gan  --arch dcgan --epochs 40 $M &
run mnist-cgan-mlp    --model cgan --arch mlp   --epochs 50 $M &
run mnist-cgan-mlp-tutorial --model cgan --arch mlp --epochs 10 --no-ema --loss bce-prob --eval-every 10 --data-dir .data/mnist --classifier $OUT/cls/mnist-classifier.onnx &
run fashion-mnist-cgan --model cgan --arch dcgan --epochs 40 $F &
wait
for name in mnist-cgan mnist-cgan-w32 mnist-gan mnist-cgan-mlp mnist-cgan-mlp-tutorial fashion-mnist-cgan; do
  (w=ema; [ $name = mnist-cgan-mlp-tutorial ] && w=raw
   gp export $R/$name/checkpoint-best.pt -o $R/$name/$name.onnx --weights $w > $R/$name/export.log 2>&1) &
done
wait
cp $R/*.log $OUT/cls/
for name in mnist-cgan mnist-cgan-w32 mnist-gan mnist-cgan-mlp mnist-cgan-mlp-tutorial fashion-mnist-cgan; do
  last=$(ls $R/$name/samples | tail -1)
  tar czf $OUT/$name.tgz -C $R/$name $name.onnx $name.parity.json metrics.jsonl config.json export.log samples/$last
  grep eval $R/$name/metrics.jsonl | tail -3; cat $R/$name/export.log | tail -3
done
tar czf $OUT/classifiers.tgz -C $OUT cls && rm -r $OUT/cls
