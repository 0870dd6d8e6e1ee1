#!/usr/bin/env python3
"""The ONNX backend node suite through the plain `kerf` binary, as a user would run it.

For every case the manifest marks `pass` (bound ones included), converts the case's
`input_<i>.pb` / `output_<i>.pb` to `.npy` and runs

    kerf run model.onnx -i NAME=x.npy ... --expect NAME=y.npy ... --atol A --rtol R

with the tolerances of `testsuite/src/compare.rs` (per output dtype, loosened by the
case's own rtol/atol from `index.json`, and its ULP bound as `--max-ulp`; `kerf run`'s
bound scales with max|ref|, so it is never tighter than the element-wise one). Inputs the model needs constant are bound by
`kerf run` itself from their files, as the conformance runner binds them.

Cases that cannot be expressed as `.npy` files are counted apart, not as passes:
sequence/optional inputs or outputs, and element types numpy has no dtype for in a
`.npy` file kerf reads (float8, float4, int4/uint4, int2/uint2, strings).

Usage: cli_conformance.py KERF_BINARY GENERATED_ONNX_DIR MANIFEST [--jobs N] [--filter SUBSTR]
Prints one line per failure and `N passed, M failed` (plus the not-expressible count);
exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

# (atol, rtol) per dtype: FloatTolerance::default_for in testsuite/src/compare.rs.
TOLERANCE = {"float64": (1e-9, 1e-8), "float16": (1e-3, 1e-3), "bfloat16": (1e-2, 1e-2)}
DEFAULT = (1e-5, 1e-4)
# ULP bound per dtype (same source); float8/float4 are not expressible anyway.
MAX_ULP = {"float16": 4, "bfloat16": 4}
NPY_KINDS = set("fiub")  # float, signed, unsigned, bool


def rounded_references(manifest: str) -> set[str]:
    """Cases checked with rtol 1e-3 (conformance/rounded_references.txt, beside the manifest)."""
    path = os.path.join(os.path.dirname(manifest), "rounded_references.txt")
    return {ln.strip() for ln in open(path) if ln.strip() and not ln.startswith("#")}


def tensor_names(model: onnx.ModelProto) -> tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]:
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits], list(model.graph.output)


def expressible(arr: np.ndarray) -> bool:
    if arr.dtype.name == "bfloat16":
        return True
    # ml_dtypes' float8/float4 and int4/int2 have kind f/i/u but one byte or less
    narrow = arr.dtype.kind == "f" and arr.dtype.itemsize < 2 or arr.dtype.name in ("int4", "uint4", "int2", "uint2")
    return arr.dtype.kind in NPY_KINDS and not narrow


def run_case(kerf: str, case_dir: str, case: str, meta: dict) -> tuple[str, str | None]:
    """(case, None) on success, (case, 'SKIP: why') when not expressible, else (case, error)."""
    model = onnx.load(os.path.join(case_dir, "model.onnx"), load_external_data=False)
    ins, outs = tensor_names(model)
    if any(not v.type.HasField("tensor_type") for v in ins + outs):
        return case, "SKIP: sequence/optional input or output"
    data = os.path.join(case_dir, "test_data_set_0")
    with tempfile.TemporaryDirectory() as tmp:
        args = [kerf, "run", os.path.join(case_dir, "model.onnx")]
        atol, rtol = meta.get("atol") or 0.0, meta.get("rtol") or 0.0
        out_dtype = "float32"
        for prefix, values, flag in (("input", ins, "-i"), ("output", outs, "--expect")):
            for i, v in enumerate(values):
                pb = os.path.join(data, f"{prefix}_{i}.pb")
                if not os.path.exists(pb):
                    return case, f"missing {prefix}_{i}.pb"
                t = onnx.TensorProto()
                with open(pb, "rb") as f:
                    t.ParseFromString(f.read())
                arr = numpy_helper.to_array(t)
                if not expressible(arr):
                    return case, f"SKIP: {prefix} '{v.name}' is {arr.dtype}, not a .npy dtype kerf reads"
                if prefix == "output":
                    out_dtype = arr.dtype.name
                    a, r = TOLERANCE.get(arr.dtype.name, DEFAULT)
                    atol, rtol = max(atol, a), max(rtol, r)
                path = os.path.join(tmp, f"{prefix}_{i}.npy")
                np.save(path, arr, allow_pickle=False)
                args += [flag, f"{v.name}={path}"]
        args += ["--atol", repr(atol), "--rtol", repr(rtol), "--max-ulp", str(MAX_ULP.get(out_dtype, 64))]
        try:
            p = subprocess.run(args, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return case, "timeout (120 s)"
        if p.returncode != 0:
            lines = [ln for ln in (p.stderr + p.stdout).splitlines() if ln.strip()]
            return case, lines[-1] if lines else f"exit {p.returncode}"
    return case, None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kerf")
    ap.add_argument("generated")
    ap.add_argument("manifest")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--filter", default="")
    a = ap.parse_args()
    index = json.load(open(os.path.join(a.generated, "index.json")))["cases"]
    for c in rounded_references(a.manifest):
        if c in index:
            index[c] = dict(index[c], rtol=max(index[c].get("rtol") or 0.0, 1e-3))
    cases = []
    for line in open(a.manifest):
        parts = line.split()
        if len(parts) >= 2 and not line.startswith("#") and parts[1] == "pass" and a.filter in parts[0]:
            cases.append(parts[0])
    passed, failed, skipped = 0, [], []
    with cf.ThreadPoolExecutor(max_workers=a.jobs) as ex:
        futs = [ex.submit(run_case, a.kerf, os.path.join(a.generated, c), c, index.get(c, {})) for c in cases]
        for f in cf.as_completed(futs):
            case, err = f.result()
            if err is None:
                passed += 1
            elif err.startswith("SKIP"):
                skipped.append((case, err))
            else:
                failed.append((case, err))
    for case, err in sorted(failed):
        print(f"FAIL {case}: {err}")
    print(f"not expressible as .npy through `kerf run`: {len(skipped)} cases")
    print(f"{passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
