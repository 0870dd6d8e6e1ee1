#!/usr/bin/env bash
# `kerf compress` output checked by ONNX Runtime: the trained digits CNN
# fixture compressed (int8; patterns + connectivity + int8; low rank (the
# second conv by channel SVD, the Gemm) + int8; Tucker-2 of the second
# conv + int8: three convs; block-shared 2:4 in runs of four channels +
# int8) is written as
# ONNX QDQ, loaded by ORT, run on the 450 test images; ORT's top-1 must be
# within half a point of kerf's own (`kerf eval`) and above the floors, and
# every logit within one output quantisation step of kerf's (check_export.py).
# Usage: export_vs_ort.sh KERF PYTHON
set -euo pipefail
cd "$(dirname "$0")/../.."
KERF=$1
PY=$2
d=testsuite/fixtures/models/digits_cnn
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
while IFS='|' read -r plan floor; do
  # shellcheck disable=SC2086
  "$KERF" compress "$d/model.onnx" --calib "$d/calib_x.npy" $plan -o "$tmp/q.onnx" 2>/dev/null
  # the same model `kerf compress` wrote: eval compresses for this host,
  # whose byte pairs would otherwise be exact on AVX2 without VNNI
  # shellcheck disable=SC2086
  kt=$("$KERF" eval "$d/model.onnx" --data "$d/test_x.npy" --labels "$d/test_y.npy" --calib "$d/calib_x.npy" --byte-pairs any \
    --save-outputs "$tmp/kerf.npy" $plan 2>/dev/null |
    sed -n 's/^top1: \([0-9.]*\).*/\1/p')
  echo "plan: $plan (kerf top1 $kt)"
  "$PY" testsuite/scripts/check_export.py "$tmp/q.onnx" "$d/test_x.npy" "$d/test_y.npy" --kerf-top1 "$kt" --min-top1 "$floor" \
    --kerf-outputs "$tmp/kerf.npy"
done <<'PLANS'
--quantize int8|0.973
--prune-patterns 8 --connectivity 0.25 --quantize int8|0.968
--low-rank 8 --quantize int8|0.95
--tucker 8,16 --quantize int8|0.968
--prune-nm 2:4x4/16 --quantize int8|0.965
PLANS
# a detector's upsampling head (generated, random weights: logits only, no
# labels): int8 ConvTransposes, their weights per output channel on axis 1
m=testsuite/generated/upsample_head
"$PY" -c "import numpy as np; r = np.random.default_rng(5); np.save('$tmp/calib.npy', r.standard_normal((16, 3, 12, 12)).astype(np.float32)); np.save('$tmp/x.npy', r.standard_normal((8, 3, 12, 12)).astype(np.float32))"
"$KERF" compress "$m/model.onnx" --calib "$tmp/calib.npy" --quantize int8 -o "$tmp/q.onnx" 2>/dev/null
"$KERF" eval "$m/model.onnx" --data "$tmp/x.npy" --calib "$tmp/calib.npy" --quantize int8 --byte-pairs any \
  --save-outputs "$tmp/kerf.npy" >/dev/null 2>&1
echo "model: upsample_head --quantize int8"
"$PY" testsuite/scripts/check_export.py "$tmp/q.onnx" "$tmp/x.npy" - --kerf-outputs "$tmp/kerf.npy"
