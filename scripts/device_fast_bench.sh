#!/usr/bin/env bash
# Issue 7 on one GPU: the CUDA-graph tests, the training-speed benchmark, time-to-quality curves.
set -u
export PYTHONPATH=.:/tmp/site PYTHONUNBUFFERED=1
bash scripts/device_unpack_data.sh
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
nvidia-smi -L
python3 -c "import torch; a=[torch.ones(2,device='cuda')]; torch._foreach_lerp_(a,[torch.zeros(2,device='cuda')],torch.tensor(0.5,device='cuda')); print('foreach_lerp_ with a tensor weight works on', torch.__version__)"
timeout 100 python3 -m pytest -q -x -p no:cacheprovider tests/test_step.py tests/test_data.py 2>&1 | tail -5 | tee $OUT/tests.txt
timeout 180 python3 benchmarks/train_speed.py --data-dir .data/mnist --device cuda --cases mlp-64,mlp-1024,dcgan-64 \
  --seconds 4 --bf16 --quality-epochs 5 2>&1 | grep -v Warn | tee $OUT/train_speed.txt
TTQ="python3 benchmarks/time_to_quality.py --data-dir .data/mnist"
timeout 130 $TTQ --seconds 60 --out /tmp/ttq1 -- --arch dcgan --d-width 128 2>&1 | grep -v Warn | tee $OUT/ttq_dcgan.txt
timeout 90 $TTQ --seconds 35 --out /tmp/ttq2 -- --arch dcgan --d-width 128 --bf16 2>&1 | grep -v Warn | tee $OUT/ttq_dcgan_bf16.txt
timeout 60 $TTQ --seconds 15 --out /tmp/ttq3 -- --arch mlp 2>&1 | grep -v Warn | tee $OUT/ttq_mlp.txt
