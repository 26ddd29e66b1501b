#!/usr/bin/env bash
# The CPU-sized experiments of REPRODUCTION.md, one train.py run at a time (nice 10, one thread).
#   bash reproduction/experiments.sh NAME...     (names below; wall time of each run -> runs/repro/times.csv)
# Figures: python -m lit_memo.report runs/repro/NAME --out reproduction/NAME
set -u
export WANDB_MODE=disabled OMP_NUM_THREADS=1 LIT_MEMO_DATA=${LIT_MEMO_DATA:-../shared/data}
OUT=runs/repro
mkdir -p "$OUT"
[ -f "$OUT/times.csv" ] || echo "experiment,run,seconds,status" > "$OUT/times.csv"
train() {  # experiment run-name train.py-args...
  local exp=$1 name=$2; shift 2
  if grep -q "^$exp,$name,.*,0$" "$OUT/times.csv"; then return; fi  # done before: resumable
  local t0=$(date +%s.%N)
  nice -n 10 timeout 1500 python train.py "$@" --wandb_mode=disabled --trainer.enable_progress_bar=false \
    --output_dir "$OUT/$exp/$name" > "$OUT/$exp.$name.log" 2>&1
  local status=$?
  echo "$exp,$name,$(echo "$(date +%s.%N) - $t0" | bc),$status" >> "$OUT/times.csv"
}
for exp in "$@"; do
  case $exp in
    digits)  # Zhang et al. regime on real images (scikit-learn digits, n = 1500, d = 64): ours vs regular
      for regime in ours regular; do
        train digits "$regime" --config digits_narrow.yaml --model.init_args.regime=$regime
      done ;;
    ge_synth)  # Ge et al. Fig. 2/5: quadratic two-layer net, perturbed GD
      train ge_synth pgd --config ge_synthetic_quadratic.yaml ;;
    ge_mnist)  # Ge et al. Figs. 6/7 at CPU size (the configs' 1,000 digits): without and with the 0.01 noise
      train ge_mnist original --config ge_mnist_quadratic.yaml
      train ge_mnist noise0.01 --config ge_mnist_quadratic_noise.yaml ;;
    ge_random)  # Ge et al. Figs. 9/10 at CPU size: random digits as labels, with and without the noise
      train ge_random noise0.01 --config ge_mnist_quadratic_random_labels.yaml
      train ge_random original --config ge_mnist_quadratic_random_labels.yaml --data.init_args.noise_std=0 ;;
    ge_pca)  # Ge et al. Figs. 8/10 at CPU size (the configs' 6,000 digits): three-layer net on PCA-100 + noise
      train ge_pca noise0.05 --config ge_mnist_pca_three_layer.yaml
      train ge_pca random_noise0.05 --config ge_mnist_pca_three_layer_random_labels.yaml ;;
    daniely)  # Daniely (2020): zero-output init, only W trains, n = 1000 random +-1 labels, d = 50
      train daniely q80 --config daniely_random_labels.yaml ;;
    table3)  # Zhang et al. Table 3 at CPU size: random-label CIFAR-10, 1,000 images, widths < n
      for act in relu tanh; do for width in 128 256 512; do
        train table3 "${act}_$width" --config cifar10_random_labels.yaml --data.init_args.subset_size=1000 \
          --model.init_args.activation=$act --model.init_args.width=$width --trainer.max_epochs=100 \
          --data.init_args.pipeline=tensor --model.init_args.lr_scheduler.init_args.milestones='[50,75]'
      done; done ;;
    mnist_mlp)  # Zhang et al. Fig. 7 at CPU size: 5,000 MNIST images, 5 epochs, width-2 in {32, 118, 512},
      # 3 training seeds (seed_everything: init and batch order; the data seed, i.e. the subset, stays 0)
      for seed in 0 1 2; do for width in 32 118 512; do for regime in ours regular; do
        train mnist_mlp "${regime}_$width$([ $seed = 0 ] || echo _s$seed)" --config mnist_mlp_${regime/ours/narrow}.yaml \
          --data.init_args.subset_size=5000 --trainer.max_epochs=5 --model.init_args.hidden_widths="[1024,$width]" \
          --model.init_args.lr_scheduler.init_args.T_max=5 --seed_everything=$seed
      done; done; done ;;
    zcifar)  # Zhang et al. Fig. 8 at CPU size: ResNet-18, 256 CIFAR-10 images, 25 epochs (50 steps), layer4 64 vs 512
      for width in 64 512; do for regime in ours regular; do
        train zcifar "${regime}_$width" --config resnet18_${regime/ours/narrow}.yaml \
          --data.init_args.subset_size=256 --trainer.max_epochs=25 --model.init_args.layer4_width=$width \
          --model.init_args.lr_scheduler.init_args.T_max=25 --trainer.log_every_n_steps=1
      done; done ;;
    *) echo "unknown experiment $exp" >&2; exit 2 ;;
  esac
done
