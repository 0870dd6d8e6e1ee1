#!/usr/bin/env python3
"""Generate the ONNX backend conformance cases for kerf's runner (tests/onnx_backend.rs).

Usage: make_onnx_node_tests.py OUT_DIR

Writes, all offline from the pinned `onnx` wheel (1.23.2):

* `OUT_DIR/node/<case>/`: the 1,884 node cases. The wheel does not ship their data, only the
  case definitions (`onnx.backend.test.case.node.collect_testcases()`). They are written with
  the wheel's own writer, `onnx.backend.test.cmd_tools.generate_data`, which writes whatever
  its module-level `model_test.collect_testcases()` returns, so we point that at the node
  cases. Each case is `model.onnx` + `test_data_set_0/{input_*.pb, output_*.pb}`.
* `OUT_DIR/{pytorch-converted,pytorch-operator,simple}/<case>/`: copied from the wheel's
  `onnx/backend/test/data/`, same layout.
* `OUT_DIR/light/<model>/`: the nine `light` architectures. The wheel stores them as
  `light_<model>.onnx` plus `light_<model>_output_0.pb`; their weights are `ConstantOfShape`
  nodes over `__SHAPE` initializers, so no external data is needed. There is no input file:
  onnx's own runner feeds `arange(n).reshape(shape) / n` as float32 (`generate_dummy_data`
  with `random=False`), and so do we, then lay the case out like the others.

Determinism: the node case definitions draw from numpy's global generator without seeding it,
so we seed it (0) before collecting; two runs give byte-identical files. Stale case folders
are removed because each suite folder is rebuilt from scratch.

`OUT_DIR/index.json` lists every case with what the runner cannot learn when kerf rejects a
model: `op` (the op a node case tests, or the only op type of a model), `ops` (all op types,
prefixed with their domain unless it is ai.onnx), `opset`, `io` (the element types of the graph
inputs and outputs, or `sequence`/`map`/`optional`/`sparse`), `expanded` (node cases whose op is
inlined as its function body), and for `light` the `rtol`/`atol` onnx's runner uses.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
import warnings

import numpy as np

SUITES_SHIPPED = ("pytorch-converted", "pytorch-operator", "simple")


def generate_node(out_dir: str) -> int:
    # Some definitions divide by zero on purpose (e.g. the -inf of ReduceMax on empty sets).
    warnings.simplefilter("ignore", RuntimeWarning)
    # Seed before importing the case modules: their export() functions run at import time.
    np.random.seed(0)
    import onnx.backend.test.case.node as node_test
    import onnx.backend.test.cmd_tools as cmd_tools

    cases = node_test.collect_testcases()

    class _Cases:
        @staticmethod
        def collect_testcases():
            return cases

    saved = cmd_tools.model_test
    cmd_tools.model_test = _Cases
    try:
        cmd_tools.generate_data(argparse.Namespace(output=out_dir))
    finally:
        cmd_tools.model_test = saved
    kinds = {c.kind for c in cases}
    if kinds != {"node"}:
        raise SystemExit(f"unexpected case kinds {sorted(kinds)} (expected only 'node')")
    # The op a case tests: its single node for plain cases; for `<base>_expanded[_verN]` (the
    # op's function body inlined) the op of the base case.
    tested = node_test._existing_names
    index = {}
    for c in cases:
        base = re.sub(r"_expanded(_ver\d+)?$", "", c.name)
        node = tested.get(base)
        if node is None:
            raise SystemExit(f"node case {c.name}: cannot find the op it tests")
        entry = model_entry(c.model)
        entry["op"] = qualified(node.domain, node.op_type)
        entry["expanded"] = base != c.name
        index[f"node/{c.name}"] = entry
    return index


def qualified(domain: str, op_type: str) -> str:
    return op_type if domain in ("", "ai.onnx") else f"{domain}.{op_type}"


def model_entry(model) -> dict:
    """Facts about a case the runner cannot get when kerf rejects the model."""
    ops = sorted({qualified(n.domain, n.op_type) for n in model.graph.node})
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    io = sorted({type_name(v.type) for v in [*model.graph.input, *model.graph.output]})
    return {"ops": ops, "opset": opset, "op": ops[0] if len(ops) == 1 else None, "io": io}


def type_name(tp) -> str:
    """`FLOAT`, `STRING`, ... for tensors; `sequence`, `map`, `optional`, `sparse` otherwise."""
    from onnx import TensorProto

    kind = tp.WhichOneof("value")
    if kind == "tensor_type":
        return TensorProto.DataType.Name(tp.tensor_type.elem_type)
    return {"sequence_type": "sequence", "map_type": "map", "optional_type": "optional"}.get(kind, "sparse")


def copy_shipped(data_dir: str, out_dir: str) -> dict:
    import onnx

    index = {}
    for suite in SUITES_SHIPPED:
        src = os.path.join(data_dir, suite)
        dst = os.path.join(out_dir, suite)
        shutil.copytree(src, dst)
        for case in sorted(os.listdir(dst)):
            model = os.path.join(dst, case, "model.onnx")
            if os.path.isfile(model):
                index[f"{suite}/{case}"] = model_entry(onnx.load(model, load_external_data=False))
    return index


def dummy_input(vi) -> np.ndarray:
    """onnx.backend.test.runner.Runner.generate_dummy_data(x, random=False)."""
    if vi.type.tensor_type.elem_type != 1:
        raise SystemExit(f"light model input '{vi.name}' is not float32")
    shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim)
    n = int(np.prod(shape))
    return (np.arange(n).reshape(shape) / n).astype(np.float32)


def make_light(data_dir: str, out_dir: str) -> dict:
    import onnx
    from onnx import numpy_helper

    src = os.path.join(data_dir, "light")
    dst_root = os.path.join(out_dir, "light")
    os.makedirs(dst_root)
    index = {}
    for fname in sorted(os.listdir(src)):
        if not (fname.startswith("light_") and fname.endswith(".onnx")):
            continue
        model_name = fname[len("light_") : -len(".onnx")]
        model_path = os.path.join(src, fname)
        model = onnx.load(model_path)
        case_dir = os.path.join(dst_root, f"test_{model_name}")
        data_set = os.path.join(case_dir, "test_data_set_0")
        os.makedirs(data_set)
        shutil.copyfile(model_path, os.path.join(case_dir, "model.onnx"))
        inits = {t.name for t in model.graph.initializer}
        k = 0
        for vi in model.graph.input:
            if vi.name in inits:
                continue
            t = numpy_helper.from_array(dummy_input(vi), vi.name)
            with open(os.path.join(data_set, f"input_{k}.pb"), "wb") as f:
                f.write(t.SerializeToString(deterministic=True))
            k += 1
        for i in range(len(model.graph.output)):
            ref = os.path.join(src, f"light_{model_name}_output_{i}.pb")
            if not os.path.exists(ref):
                raise SystemExit(f"{fname}: missing reference output {ref}")
            shutil.copyfile(ref, os.path.join(data_set, f"output_{i}.pb"))
        entry = model_entry(model)
        # The tolerances onnx's runner uses for these models (case/model/__init__.py).
        real = light_tolerances().get(model_name)
        if real is None:
            raise SystemExit(f"no tolerances for light model {model_name}")
        entry["rtol"], entry["atol"] = real
        index[f"light/test_{model_name}"] = entry
    return index


def light_tolerances() -> dict:
    import onnx.backend.test.case.model as model_test

    return {c.model_name: (c.rtol, c.atol) for c in model_test.collect_testcases() if c.kind == "real"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    args = ap.parse_args()
    out = args.out_dir
    import onnx

    if onnx.__version__ != "1.23.2":
        print(f"warning: onnx {onnx.__version__}, the cases are pinned to 1.23.2", file=sys.stderr)
    data_dir = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    t0 = time.time()
    for suite in ("node", "light", *SUITES_SHIPPED):
        path = os.path.join(out, suite)
        if os.path.exists(path):
            shutil.rmtree(path)
    os.makedirs(out, exist_ok=True)
    index = generate_node(out)
    index.update(copy_shipped(data_dir, out))
    index.update(make_light(data_dir, out))
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"onnx": onnx.__version__, "cases": index}, f, indent=1, sort_keys=True)
        f.write("\n")
    counts = {}
    for key in index:
        suite = key.split("/")[0]
        counts[suite] = counts.get(suite, 0) + 1
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"onnx backend cases in {out}: {summary} ({time.time() - t0:.1f} s)")


if __name__ == "__main__":
    main()
