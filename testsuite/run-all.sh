#!/usr/bin/env bash
# The project's test command (see README.md): installs the system packages the tests
# need (testsuite/install-deps.sh), prepares the Python venv and the generated models,
# then runs every test of the workspace. Every stage runs even when an earlier one
# failed; the failures are listed at the end and the exit code is 1 if any.
set -uo pipefail
cd "$(dirname "$0")/.."
failed=()
stage() {
  local name=$1
  shift
  echo "== $name"
  if ! "$@"; then
    echo "!! stage failed: $name"
    failed+=("$name")
  fi
}

stage "system packages" bash testsuite/install-deps.sh
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv || { echo "!! cannot create .venv (apt-get install python3-venv)"; exit 1; }
fi
stage "python packages" .venv/bin/pip install -q -r testsuite/requirements.txt
stage "generated models" .venv/bin/python testsuite/scripts/make_models.py testsuite/generated
stage "generated node tests" .venv/bin/python testsuite/scripts/make_onnx_node_tests.py testsuite/generated/onnx
stage "stored references" .venv/bin/python testsuite/scripts/verify_fixtures.py \
  testsuite/fixtures/models testsuite/fixtures/ops testsuite/generated
# Cross-ISA tests fail (instead of skipping) when a cross gcc or qemu is missing.
export KERF_REQUIRE_CROSS=1
# (its output is also kept, so the failing tests can be named again at the end)
mkdir -p target
cargo_test() { cargo test --workspace --all-targets --no-fail-fast 2>&1 | tee target/cargo-test.log; }
stage "cargo test" cargo_test
# The node suite's passing cases through the plain `kerf run` binary (built by cargo test).
stage "node suite through kerf run" .venv/bin/python testsuite/scripts/cli_conformance.py \
  target/debug/kerf testsuite/generated/onnx testsuite/conformance/manifest.txt
# The CMake example: kerf as a custom command, the archive linked into C.
stage "CMake example" bash testsuite/scripts/cmake_example.sh target/debug/kerf
# Compressed models written as ONNX QDQ and checked by ONNX Runtime.
stage "kerf compress vs ONNX Runtime" bash testsuite/scripts/export_vs_ort.sh target/debug/kerf .venv/bin/python

# Disk is finite on CI machines: say what the build and the tests left behind.
echo "disk used by target/: $(du -sh target/ 2>/dev/null | cut -f1)"

if [ ${#failed[@]} -gt 0 ]; then
  if [ -f target/cargo-test.log ]; then
    grep -E '^test .* FAILED$|^error: test failed|panicked at' target/cargo-test.log | head -40
  fi
  echo "FAILED stages: ${failed[*]}"
  exit 1
fi
echo "all stages passed"
