#!/usr/bin/env python3
"""Check generated test data: every `<dir>/*/model.onnx` under the given roots passes
`onnx.checker.check_model(full_check=True)`, loads in ONNX Runtime, and reproduces its
stored `output_<i>.npy` bit-for-bit (same dtype and shape) from its `input_<i>.npy`.

Usage: verify_fixtures.py DIR [DIR ...]     (e.g. testsuite/fixtures/ops testsuite/generated)
Prints 'N passed, M failed' and exits non-zero on any failure.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx

import common


def verify_case(path: str) -> str | None:
    """None if the case is good, else what is wrong."""
    try:
        model = onnx.load(os.path.join(path, "model.onnx"))
        common.check(model)
        feeds = {}
        for i, vi in enumerate(model.graph.input):
            f = os.path.join(path, f"input_{i}.npy")
            if not os.path.exists(f):
                return f"missing input_{i}.npy for graph input '{vi.name}'"
            feeds[vi.name] = np.load(f)
        ys = common.run(model, feeds)
        for i, y in enumerate(ys):
            f = os.path.join(path, f"output_{i}.npy")
            if not os.path.exists(f):
                return f"missing output_{i}.npy"
            ref = np.load(f)
            if ref.dtype != y.dtype or ref.shape != y.shape:
                return f"output_{i}: stored {ref.dtype}{list(ref.shape)}, ORT gives {y.dtype}{list(y.shape)}"
            if not np.array_equal(ref, y, equal_nan=ref.dtype.kind == "f"):
                diff = np.abs(ref.astype(np.float64) - y.astype(np.float64)).max()
                return f"output_{i}: max abs diff {diff:g} from the stored reference"
        if os.path.exists(os.path.join(path, f"output_{len(ys)}.npy")):
            return f"stored output_{len(ys)}.npy but the model has only {len(ys)} outputs"
    except Exception as e:  # report every broken case, not just the first
        return f"{type(e).__name__}: {e}"
    return None


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    passed = failed = 0
    for root in argv[1:]:
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name)
            if not os.path.isfile(os.path.join(path, "model.onnx")):
                continue
            err = verify_case(path)
            if err is None:
                passed += 1
            else:
                failed += 1
                print(f"FAIL {path}: {err}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
