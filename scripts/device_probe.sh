#!/usr/bin/env bash
# One short run on a GPU machine: versions, and one epoch of each preset, timed.
set -x
export PYTHONPATH=.
python3 -c "import torch, onnx, onnxruntime, onnxscript, typer; print(torch.__version__, onnx.__version__, onnxruntime.__version__, onnxscript.__version__, typer.__version__, torch.cuda.get_device_name())"
python3 -m gan_pack train-classifier --data-dir .data/mnist -o $OUT/clf.onnx --epochs 2
for arch in mlp dcgan; do
  python3 -m gan_pack train --model cgan --arch $arch --epochs 2 --data-dir .data/mnist --out /tmp/runs/$arch --log-every 200 \
     --eval-every 1 --classifier $OUT/clf.onnx
  python3 -m gan_pack export /tmp/runs/$arch -o $OUT/$arch.onnx
  tail -2 /tmp/runs/$arch/metrics.jsonl
done
cp /tmp/runs/dcgan/samples/epoch_002.png $OUT/dcgan_epoch2.png
