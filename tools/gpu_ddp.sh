#!/usr/bin/env bash
# Data-parallel training on the 2-GPU machine (issue 14), after `tools/gpu_session.sh build` with
# corpus/broad there: the same global batch on 1 GPU and on 2 ranks (started the way torchrun starts
# workers), their loss curves side by side and tokens/s. Then the 2-rank checkpoint resumed on 1 GPU.
# Results to $OUT/ddp.log.   bash tools/gpu_ddp.sh
set -u
OUT=${OUT:-/tmp/statescope-out}
export LD_LIBRARY_PATH=/tmp/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
cli=${CLI:-build-cuda/app/statescope-cli}
steps=${STEPS:-60}
common=(--data corpus/broad/train.txt --d-model ${D_MODEL:-768} --layers ${LAYERS:-12} --d-state 128 --headdim 64
        --train-length 2048 --batch ${BATCH:-32} --warmup 5 --lr 1e-3 --log-every 10 --save-every 1000
        --device cuda --bf16 --threads 2)
{
  echo "NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-unset}"
  echo "== 1 GPU, global batch ${BATCH:-32}"
  CUDA_VISIBLE_DEVICES=0 $cli train "${common[@]}" --steps "$steps" --out ddp-1 2>&1
  echo "== 2 ranks, the same global batch"
  for r in 1 0; do
    MASTER_ADDR=127.0.0.1 MASTER_PORT=29531 WORLD_SIZE=2 RANK=$r LOCAL_RANK=$r \
      $cli train "${common[@]}" --steps "$steps" --out ddp-2 > "rank$r.log" 2>&1 &
  done
  wait
  cat rank0.log; echo "-- rank 1 printed:"; cat rank1.log
  grep -E '"world_size"|"process_group"' ddp-2/model_card.json
  echo "== the 2-rank checkpoint resumed on 1 GPU to $((steps + 20)) steps"
  CUDA_VISIBLE_DEVICES=0 $cli train "${common[@]}" --steps $((steps + 20)) --out ddp-2 2>&1 | tail -2
} | tee "$OUT/ddp.log"
