#!/usr/bin/env bash
# Z-synth (Zhang et al. 2021, Fig. 4) at CPU size: width x radius grid, ours vs regular vs
# constrained-regular, at two (n, d). One train.py run per cell; wall time of each in times.csv.
#   bash reproduction/zsynth_grid.sh [STEPS] [OUT]     (defaults: 5000 GD steps, runs/repro/zsynth)
#   WIDTHS="20 30" NDS="500 20" REGIMES="ours_inf ours_10 regular" bash reproduction/zsynth_grid.sh
#     (the extra narrow widths of REPRODUCTION.md: only the named cells)
# Then: python -m lit_memo.report runs/repro/zsynth --out reproduction/zsynth
set -u
STEPS=${1:-5000}
OUT=${2:-runs/repro/zsynth}
mkdir -p "$OUT"
export WANDB_MODE=disabled OMP_NUM_THREADS=1
[ -f "$OUT/times.csv" ] || echo "n,d,regime,width,radius,seconds,status" > "$OUT/times.csv"
run() {  # n d regime width radius
  local n=$1 d=$2 regime=$3 width=$4 radius=$5 cfg=synthetic_narrow.yaml
  [ "$regime" = regular ] && cfg=synthetic_regular.yaml
  [ "$regime" = constrained_regular ] && cfg=synthetic_constrained_regular.yaml
  local tag="n${n}_d${d}/${regime}_w${width}_r${radius}"
  if grep -q "^$n,$d,$regime,$width,$radius,.*,0$" "$OUT/times.csv"; then return; fi  # resumable: redo failures
  # learning rates pinned to the synthetic configs' values of commit 537de51 (B2's stated grid):
  # lr_hidden 0.05 where a ball can bind (0.1 spiked), 0.1 for regular; lr_outer 0.1
  local extra=(--model.init_args.lr_hidden=0.1 --model.init_args.lr_outer=0.1)
  [ "$regime" != regular ] && extra=(--model.init_args.radius="$radius" --model.init_args.lr_hidden=0.05 --model.init_args.lr_outer=0.1)
  local t0=$(date +%s.%N)
  nice -n 10 timeout 1200 python train.py --config "$cfg" --config reproduction/configs/grid_diagnostics.yaml \
    --trainer.max_steps="$STEPS" --trainer.enable_progress_bar=false --run_test=false --wandb_mode=disabled \
    --model.init_args.width="$width" --data.init_args.n="$n" --data.init_args.d="$d" "${extra[@]}" \
    --output_dir "$OUT/$tag" > /dev/null 2> "$OUT/last_stderr.txt"
  local status=$?
  echo "$n,$d,$regime,$width,$radius,$(echo "$(date +%s.%N) - $t0" | bc),$status" >> "$OUT/times.csv"
}
if [ -n "${WIDTHS:-}" ]; then  # only the named cells
  for width in $WIDTHS; do for cell in $REGIMES; do
    case $cell in
      regular) run $NDS regular "$width" inf ;;
      *) regime=${cell%_*}; radius=${cell##*_}; run $NDS "$regime" "$width" "$radius" ;;
    esac
  done; done
  exit 0
fi
for nd in "500 20" "200 10"; do
  for width in 10 50 150; do
    run $nd ours "$width" 10
    run $nd regular "$width" inf
  done
  for width in 10 50 150; do
    run $nd ours "$width" 1
    run $nd ours "$width" inf
    run $nd constrained_regular "$width" 1
    run $nd constrained_regular "$width" 10
  done
done
