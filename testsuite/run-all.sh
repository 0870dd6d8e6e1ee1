#!/usr/bin/env bash
# The project's test command (see README.md): prepares the Python venv and the
# generated models, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q -r testsuite/requirements.txt
.venv/bin/python testsuite/scripts/make_models.py testsuite/generated
.venv/bin/python testsuite/scripts/make_onnx_node_tests.py testsuite/generated/onnx
.venv/bin/python testsuite/scripts/verify_fixtures.py testsuite/fixtures/models testsuite/fixtures/ops testsuite/generated
# Cross-ISA tests fail (instead of skipping) when a cross gcc or qemu is missing.
export KERF_REQUIRE_CROSS=1
cargo test --workspace --all-targets
