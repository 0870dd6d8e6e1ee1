#!/usr/bin/env bash
# The accuracy / MACs / size table of docs/compression.md: each technique
# on the trained models of ../shared/models (or $MODELS), the first 500
# training images as calibration data, top-1 on the held-out test sets, FP32
# measured the same way in the same run.
# Usage: bash testsuite/scripts/compression_table.sh [kerf binary]
set -euo pipefail
cd "$(dirname "$0")/../.."
KERF=${1:-target/release/kerf}
MODELS=${MODELS:-../shared/models}
PY=${PY:-.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

CNN_PLANS='--quantize int8 --rounding nearest
--quantize int8
--prune-patterns 8 --selection magnitude
--prune-patterns 8
--prune-patterns 8 --connectivity 0.25 --selection magnitude
--prune-patterns 8 --connectivity 0.25
--prune-patterns 8 --connectivity 0.25 --quantize int8
--prune-patterns 8 --connectivity 0.25 --prune-nm 2:4 --quantize int8
--prune-patterns 8 --connectivity 0.25 --prune-nm 2:4 --selection magnitude --quantize int8
--prune-patterns 8 --connectivity 0.5 --selection magnitude
--prune-patterns 8 --connectivity 0.5
--prune-patterns 8 --connectivity 0.5 --quantize int8
--prune-nm 2:4/16 --quantize int8
--prune-nm 2:4x4/16 --quantize int8
--prune-nm 2:4x4/16 --selection magnitude --quantize int8
--prune-nm 3:4x4/16 --quantize int8
--low-rank 16
--low-rank 16 --quantize int8
--tucker 8,16
--tucker 8,16 --quantize int8'
MLP_PLANS='--quantize int8 --rounding nearest
--quantize int8
--prune-nm 2:4 --selection magnitude
--prune-nm 2:4
--prune-nm 1:4 --selection magnitude
--prune-nm 1:4
--prune-nm 2:4 --quantize int8
--prune-nm 2:4/16
--prune-nm 2:4/16 --selection magnitude
--prune-nm 2:4/16 --quantize int8
--prune-nm 2:4x4/16 --quantize int8
--prune-nm 2:4x4/16 --selection magnitude --quantize int8
--prune-nm 3:4x4/16 --quantize int8
--low-rank 0.9
--low-rank 16
--low-rank 16 --quantize int8
--low-rank 12 --quantize int8
--low-rank 8 --quantize int8'

CNN5_PLANS='--quantize int8
--prune-patterns 8 --selection magnitude
--prune-patterns 8
--prune-patterns 8 --quantize int8
--prune-patterns 8 --connectivity 0.25 --selection magnitude
--prune-patterns 8 --connectivity 0.25
--prune-patterns 8 --connectivity 0.25 --quantize int8
--prune-patterns 4 --connectivity 0.5 --selection magnitude
--prune-patterns 4 --connectivity 0.5
--prune-patterns 4 --connectivity 0.5 --quantize int8
--prune-patterns 8 --connectivity 0.25 --prune-nm 2:4 --quantize int8'

# One row per plan of $3 for model $1 in folder $2, calibrated on $4.
rows() {
  local m=$1 d=$2 plans=$3 calib=$4 plan out top fid tot
  while IFS= read -r plan; do
    # shellcheck disable=SC2086
    out=$("$KERF" eval "$d/model.onnx" --data "$d/test_x.npy" --labels "$d/test_y.npy" --calib "$calib" $plan 2>&1)
    top=$(sed -n 's/^top1: \([0-9.]*\) (fp32 \([0-9.]*\))/\1 | \2/p' <<<"$out")
    fid=$(sed -n 's/^agreement: \([0-9.]*\)  snr: \([0-9.inf-]*\) dB.*/\1 | \2/p' <<<"$out")
    tot=$(sed -n 's/^total: MACs \(.*\) -> \(.*\) (\(.*\)x fewer), weight bytes \(.*\) -> \(.*\) (\(.*\)x smaller)/\2 (\3x fewer) | \5 (\6x smaller)/p' <<<"$out")
    echo "| $m | \`$plan\` | $top | $fid | $tot |"
  done <<<"$plans"
}

echo "| model | plan | top-1 | FP32 | agreement | SNR dB | MACs | weight bytes |"
echo "|---|---|---:|---:|---:|---:|---|---|"
for m in digits_cnn mnist_cnn digits_mlp; do
  d=$MODELS/$m
  "$PY" -c "import numpy as np; np.save('$tmp/calib.npy', np.load('$d/train_x.npy')[:500])"
  case $m in
    digits_mlp) plans=$MLP_PLANS ;;
    *) plans=$CNN_PLANS ;;
  esac
  rows "$m" "$d" "$plans" "$tmp/calib.npy"
done
# the 5x5 digits CNN is a fixture (train_digits_cnn5.py); its calibration
# file is digits_cnn's first 500 training images
d=testsuite/fixtures/models/digits_cnn5
rows digits_cnn5 "$d" "$CNN5_PLANS" "$d/calib_x.npy"
