#!/usr/bin/env bash
# The codesign loop on the trained models of ../shared/models: tune on the
# training split (calibration: images 0-499; validation: the rest), judge
# the chosen plan on the held-out test split the tuner never saw, and print
# one markdown row per model (docs/compression.md, "The codesign loop").
#
#   bash testsuite/scripts/tune_table.sh KERF PYTHON [MODELS_DIR] [OUT_DIR]
#
# KERF: a release build of kerf; PYTHON: with numpy. Each model's report
# folder (report.md, pareto.svg, layers.csv, ...) stays in OUT_DIR.
set -euo pipefail
kerf=${1:?kerf binary}
py=${2:?python with numpy}
models=${3:-/work/shared/models}
out=${4:-/tmp/kerf-tune-table}
mkdir -p "$out"

echo "| model | chosen plan | tune time | val top-1 (FP32) | test top-1 (FP32) | plans in the tuner, ms: FP32 / int8 / patterns / low rank / chosen | single plans within budget | weights |"
echo "|---|---|---:|---:|---:|---|---|---:|"
# MODEL[:DATA]: the model's folder under $models (digits_cnn5, the 5x5
# digits CNN, is a fixture of this repository trained on digits_cnn's data)
here=$(cd "$(dirname "$0")/../.." && pwd)
for spec in digits_mlp digits_cnn mnist_cnn "$here/testsuite/fixtures/models/digits_cnn5:digits_cnn"; do
  m=${spec%%:*}
  data=$models/${spec#*:}
  [ "$spec" = "$m" ] && data=$models/$m
  case $m in /*) d=$m; m=$(basename "$m") ;; *) d="$models/$m" ;; esac
  w="$out/$m"
  mkdir -p "$w"
  "$py" - "$data" "$w" <<'EOF'
import sys, numpy as np
d, w = sys.argv[1], sys.argv[2]
x, y = np.load(d + "/train_x.npy"), np.load(d + "/train_y.npy")
np.save(w + "/calib.npy", x[:500])
np.save(w + "/val_x.npy", x[500:])
np.save(w + "/val_y.npy", y[500:])
EOF
  start=$(date +%s.%N)
  "$kerf" tune "$d/model.onnx" --calib "$w/calib.npy" --data "$w/val_x.npy" --labels "$w/val_y.npy" \
    --max-drop 1.0 --iters 300 --no-cache -o "$w/plan.toml" --report "$w/report" > "$w/tune.log" 2>&1
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  test_fp=$("$kerf" eval "$d/model.onnx" --data "$data/test_x.npy" --labels "$data/test_y.npy" 2>/dev/null | awk '/^top1:/ {print $2}')
  test_tuned=$("$kerf" eval "$d/model.onnx" --data "$data/test_x.npy" --labels "$data/test_y.npy" \
    --calib "$w/calib.npy" --plan "$w/plan.toml" 2>/dev/null | awk '/^top1:/ {print $2}')
  "$py" - "$w" "$m" "$secs" "$test_fp" "$test_tuned" <<'EOF'
import csv, sys
w, m, secs, test_fp, test_tuned = sys.argv[1:]
rows = list(csv.DictReader(open(w + "/report/pareto.csv")))
by = {r["plan"]: r for r in rows}
fp = by["fp32"]
chosen = next(r for r in rows if r["chosen"] == "true")
budget = 0.01
def ms(label):
    r = by.get(label)
    return "%.4f" % float(r["latency_ms"]) if r else "-"
singles = ["int8 everywhere", "patterns 8 + 25% everywhere", "low rank 1/4 everywhere"]
within = [s for s in singles if s in by and float(fp["top1"]) - float(by[s]["top1"]) <= budget + 1e-9]
faster = all(float(chosen["latency_ms"]) < float(by[s]["latency_ms"]) for s in within)
layers = [r for r in csv.DictReader(open(w + "/report/layers.csv")) if r["chosen"] == "true"]
plan = ", ".join("%s %s" % (r["layer"], r["variant"]) for r in layers) or "FP32"
print("| %s | %s | %.1f s | %.4f (%.4f) | **%s** (%s) | %s / %s / %s / %s / **%.4f** | %s%s | %.1fx smaller |" % (
    m, plan, float(secs), float(chosen["top1"]), float(fp["top1"]), test_tuned, test_fp,
    ms("fp32"), ms(singles[0]), ms(singles[1]), ms(singles[2]), float(chosen["latency_ms"]),
    ", ".join(s.replace(" everywhere", "") for s in within) or "none",
    " (chosen faster than each)" if faster else " (**chosen not faster than each**)",
    float(fp["weight_bytes"]) / float(chosen["weight_bytes"])))
EOF
done
