#!/usr/bin/env bash
# What the test command needs beyond Rust: Debian's cross GCCs and libcs for aarch64 and
# riscv64, qemu-user to run their binaries, valgrind for the memcheck tests, python3-venv
# for ONNX Runtime, make for the examples, MinGW-w64 and Wine for the Windows (COFF) example.
# The one list of it: README.md and .ci/run point here.
#
# Installs the missing ones when it can (root and apt-get present); otherwise prints the
# command to run and exits 1 (the tests that need a missing tool fail loudly, not skip).
set -euo pipefail
pkgs=(gcc-aarch64-linux-gnu gcc-riscv64-linux-gnu libc6-dev-arm64-cross libc6-dev-riscv64-cross
      binutils-aarch64-linux-gnu binutils-riscv64-linux-gnu qemu-user python3-venv valgrind make cmake
      gcc-mingw-w64-x86-64 wine wine64)
# installed without their recommends (Wine's pull in fonts and desktop integration)
bare=(wine wine64)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  full=() lean=()
  for p in "${missing[@]}"; do
    if [[ " ${bare[*]} " == *" $p "* ]]; then lean+=("$p"); else full+=("$p"); fi
  done
  [ ${#full[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${full[@]}" >/dev/null
  [ ${#lean[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${lean[@]}" >/dev/null
else
  echo "missing packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
