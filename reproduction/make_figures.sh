#!/usr/bin/env bash
# Redraw every figure and table of REPRODUCTION.md from the runs under runs/repro (see experiments.sh,
# zsynth_grid.sh): one `python -m lit_memo.report` per experiment, plus the wall-time tables.
set -eu
for exp in zsynth digits ge_synth table3 mnist_mlp ge_mnist ge_random ge_pca daniely zcifar; do
  if [ -d "runs/repro/$exp" ]; then
    rm -rf "reproduction/$exp"
    python -m lit_memo.report "runs/repro/$exp" --out "reproduction/$exp" > /dev/null
  fi
done
cp runs/repro/times.csv reproduction/times.csv
cp runs/repro/zsynth/times.csv reproduction/zsynth/times.csv
