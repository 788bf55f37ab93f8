#!/usr/bin/env bash
# Issue 7 on a 2-GPU machine: DDP scaling of the DCGAN cGAN at a large batch (1 GPU, then 2 GPUs
# through torchrun), and a 2-GPU checkpoint resumed on one GPU. Usage: bash scripts/device_ddp.sh
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
bash scripts/device_unpack_data.sh > /dev/null
nvidia-smi -L
COMMON="--model cgan --arch dcgan --data-dir .data/mnist --log-every 5 --epochs 4"
rate() {  # mean images/s over the logged intervals after the first epoch
  python3 -c "import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if 'images_per_s' in l]; r=[x for x in r if x['epoch']>1]; print(f\"{sum(x['images_per_s'] for x in r)/len(r):,.0f} images/s\")" $1/metrics.jsonl
}
for B in 1024 4096; do
  timeout 150 python3 -m gan_pack train $COMMON --batch-size $B --out /tmp/g1-$B > /tmp/g1-$B.log 2>&1
  echo "1 GPU, batch $B: $(rate /tmp/g1-$B)"
  timeout 150 python3 -m gan_pack train $COMMON --batch-size $B --no-fast --out /tmp/g0-$B > /tmp/g0-$B.log 2>&1
  echo "1 GPU --no-fast, batch $B: $(rate /tmp/g0-$B)"
  timeout 150 python3 -m torch.distributed.run --standalone --nproc_per_node=2 -m gan_pack train $COMMON \
    --batch-size $B --out /tmp/g2-$B > /tmp/g2-$B.log 2>&1
  echo "2 GPUs (DDP), batch $B: $(rate /tmp/g2-$B)"; tail -n 2 /tmp/g2-$B.log
done
python3 -m gan_pack train --out /tmp/g2-4096 --resume --epochs 5 2>&1 | tail -n 2
python3 -c "import torch; c=torch.load('/tmp/g2-4096/checkpoint.pt', weights_only=True); print('resumed on 1 GPU to epoch', c['epoch'], 'step', c['step'])"
