#!/usr/bin/env python3
"""Check test data: every `<dir>/*/model.onnx` under the given roots passes
`onnx.checker.check_model(full_check=True)`, loads in ONNX Runtime, and reproduces its
stored `output_<i>.npy` (same dtype and shape) from its `input_<i>.npy` within the
tolerances below.

The stored references were recorded on one CPU; ONNX Runtime picks different kernels on
others (AVX2 vs AVX-512 reduction orders; its u8 x s8 integer path saturates in
`vpmaddubsw` on CPUs without VNNI), so equality to the last bit is not a property of the
data and is not demanded:

| output dtype | passes when |
|---|---|
| float | NaN at the same places, equal infinities, and max|ort - ref| <= atol + rtol * max|ref| (f32: 1e-5 + 1e-4; f64: 1e-9 + 1e-8; f16/bf16: 1e-3 + 1e-3) |
| integer / bool | equal to ORT's output; or, where ORT's differs, within 1 of ONNX's numpy reference evaluator (`onnx.reference`, the exact semantics: round-half-to-even requantisation, no saturation of intermediate products) |

The float bounds are the ones kerf's own outputs are held to (`testsuite/src/compare.rs`).

Usage: verify_fixtures.py DIR [DIR ...]     (e.g. testsuite/fixtures/ops testsuite/generated)
Prints 'N passed, M failed' and exits non-zero on any failure.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx

import common

# (atol, rtol) per float dtype; the relative term scales with the largest |reference|.
FLOAT_TOLERANCE = {
    np.dtype(np.float64): (1e-9, 1e-8),
    np.dtype(np.float32): (1e-5, 1e-4),
    np.dtype(np.float16): (1e-3, 1e-3),
}
# Integer outputs of quantised ops may differ from the exact semantics by one step
# (rounding of the requantisation scale product in f32 vs f64).
INTEGER_STEP = 1


def float_mismatch(ref: np.ndarray, got: np.ndarray) -> str | None:
    atol, rtol = FLOAT_TOLERANCE.get(ref.dtype, (1e-3, 1e-3))  # bfloat16 & co.
    r = ref.astype(np.float64)
    g = got.astype(np.float64)
    if not np.array_equal(np.isnan(r), np.isnan(g)):
        return "NaN at different positions"
    inf = np.isinf(r) | np.isinf(g)
    if not np.array_equal(r[inf], g[inf]):
        return "infinities differ"
    fin = ~(np.isnan(r) | inf)
    if not fin.any():
        return None
    diff = np.abs(r[fin] - g[fin]).max()
    bound = atol + rtol * np.abs(r[fin]).max()
    if diff > bound:
        return f"max abs diff {diff:g} > {bound:g} (atol {atol:g} + rtol {rtol:g} x max|ref|)"
    return None


def int_mismatch(ref: np.ndarray, got: np.ndarray, exact: np.ndarray | None) -> str | None:
    if np.array_equal(ref, got):
        return None
    if exact is None:
        diff = np.abs(ref.astype(np.int64) - got.astype(np.int64)).max()
        return f"max abs diff {diff} from ONNX Runtime (integer outputs must be equal)"
    diff = np.abs(ref.astype(np.int64) - np.asarray(exact).astype(np.int64)).max()
    if diff > INTEGER_STEP:
        return f"max abs diff {diff} from ONNX's reference evaluator (allowed {INTEGER_STEP})"
    return None


def reference_outputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray] | None:
    """ONNX's numpy reference evaluator, or None where it cannot run the model."""
    try:
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(model).run(None, feeds)
    except Exception:  # noqa: BLE001 - an evaluator gap is not a data error
        return None


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
        exact = None
        for i, y in enumerate(ys):
            f = os.path.join(path, f"output_{i}.npy")
            if not os.path.exists(f):
                return f"missing output_{i}.npy"
            ref = np.load(f)
            if ref.dtype != y.dtype or ref.shape != y.shape:
                return f"output_{i}: stored {ref.dtype}{list(ref.shape)}, ORT gives {y.dtype}{list(y.shape)}"
            if ref.dtype.kind == "f":
                err = float_mismatch(ref, y)
            else:
                if not np.array_equal(ref, y) and exact is None:
                    exact = reference_outputs(model, feeds) or []
                err = int_mismatch(ref, y, exact[i] if exact and i < len(exact) else None)
            if err:
                return f"output_{i}: {err}"
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
