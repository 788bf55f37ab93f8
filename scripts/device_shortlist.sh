#!/usr/bin/env bash
# Choose among finished runs on the device machine itself, where there are CPUs to spare: export
# each named run's best checkpoint (by the in-training FCD, n = 5000) and its last one, evaluate
# every file as the shipped files are evaluated (`ganpack evaluate`, n = 10000, seed 0), print them
# ranked by FCD, and bring back every evaluation and log in $OUT/evals.tgz and only the TOP files
# as $OUT/FILE.tgz (the device tool returns at most 8 files, 64 MiB in all).
#   OUT=dir DATA=fashion-mnist TOP=2 bash scripts/device_shortlist.sh NAME...
set -u
export PYTHONPATH=. PYTHONUNBUFFERED=1
R=/tmp/sweep; DATA=${DATA:-mnist}; TOP=${TOP:-2}; S=$R/shortlist; mkdir -p $S
for name in "$@"; do
  for which in best last; do
    ckpt=$R/$name/checkpoint-best.pt; [ $which = last ] && ckpt=$R/$name/checkpoint.pt
    echo "$ckpt $S/$name-$which.onnx"
  done
done | xargs -P 8 -n 2 sh -c 'python3 -m gan_pack export "$0" -o "$1" > "${1%.onnx}.export.log" 2>&1 \
  || tail -n 1 "${1%.onnx}.export.log"'
ls $S/*.onnx | DATA=$DATA xargs -P 8 -n 1 sh -c 'python3 -m gan_pack evaluate "$0" \
  --classifier exported/$DATA-classifier.onnx --data-dir .data/$DATA --json "${0%.onnx}.eval.json" > /dev/null 2>&1'
python3 - "$S" "$TOP" > $S/ranking.txt <<'PY'
import json, pathlib, sys
rows = sorted((json.loads(p.read_text()) | {"file": p.name[:-len(".eval.json")]}
               for p in pathlib.Path(sys.argv[1]).glob("*.eval.json")), key=lambda r: r["fcd"])
for r in rows:
    print(f'{r["file"]:24s} fcd {r["fcd"]:.4f} ({r["fcd_ratio_to_floor"]:.2f}x)  recall {r["recall"]:.3f}'
          f'  acc {r.get("conditional_accuracy") or 0:.4f}  worst {min(r.get("per_class_accuracy") or [0]):.3f}'
          f'  kl {r["class_kl"]:.4f}')
print("TOP", *[r["file"] for r in rows[:int(sys.argv[2])]])
PY
cat $S/ranking.txt
for name in "$@"; do cp $R/$name.log $R/$name/train.log; done
(cd $R && tar czf $OUT/evals.tgz shortlist/ranking.txt shortlist/*.eval.json \
  $(for name in "$@"; do echo $name/metrics.jsonl $name/config.json $name/train.log; done))
for file in $(grep ^TOP $S/ranking.txt | cut -d' ' -f2-); do
  tar czf $OUT/$file.tgz -C $S $file.onnx $file.parity.json
done
