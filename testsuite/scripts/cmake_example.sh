#!/usr/bin/env bash
# The CMake example (examples/cmake) configured, built (kerf runs as a
# custom command) and run on the digits test set; its accuracy line must
# match ONNX Runtime's (440 of 450, the fixture's meta.json).
# Usage: cmake_example.sh KERF
set -euo pipefail
cd "$(dirname "$0")/../.."
KERF=$(realpath "$1")
build=target/cmake-example
rm -rf "$build"
cmake -S examples/cmake -B "$build" -DKERF="$KERF" >/dev/null
cmake --build "$build"
d=testsuite/fixtures/models/digits_cnn
out=$("$build/digits_example" "$d/test_x.npy" "$d/test_y.npy")
echo "$out"
grep -q " 440/450 correct" <<<"$out" || { echo "expected 440/450 correct (ONNX Runtime's accuracy)"; exit 1; }
