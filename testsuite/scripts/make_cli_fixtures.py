#!/usr/bin/env python3
"""Small models for the CLI's input tests (`driver/tests/cli.rs`), written to
testsuite/fixtures/cli/ (committed; rerun after a change here):

- `reshape_input.onnx`: y = Reshape(x, shape) * 2 with x `f32[batch, 6]` (a dynamic
  dimension) and `shape` an `i64[2]` graph input, which a static-shape compiler needs
  constant; `reshape_x.npy` f32[2,6], `reshape_shape.npy` [3, 4], `reshape_y.npy` the result.
- `f16_abs.onnx`: y = Abs(x) on `f16[2,3]`; `f16_x.npy`, `f16_y.npy`.
- `if_rate.onnx`: y = If(sr == 16000, x * 2, x * 3) with `sr` an `i64[]` input (a
  sample-rate switch as in voice-activity models); `sr16k.npy` = 16000, `sr8k.npy` = 8000
  (with `sr_y16k.npy`/`sr_y8k.npy`, the outputs for each), `sr_x.npy`.
- `huge_activation.onnx`: y = ReduceSum(Relu(Expand(x, [400000, 400000]))) on `f32[1]`
  (`one_x.npy`): a 640 GB intermediate, which compiles but cannot be allocated.
- `embed.onnx`: y = Gather(table, ids) with `table` a constant `f32[10, 4]` and `ids` an
  `i64[3]` input (an embedding lookup); `ids_ok.npy` [1, 9, -10] with `embed_y.npy` its
  output, and `ids_bad.npy` [1, 10, 2], whose 10 is outside the table's 10 rows.

Usage: make_cli_fixtures.py OUT_DIR
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

import common


def reshape_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6])
    shape = helper.make_tensor_value_info("shape", TensorProto.INT64, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["d0", "d1"])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["r"], name="reshape"),
        helper.make_node("Mul", ["r", "two"], ["y"], name="double"),
    ]
    g = helper.make_graph(nodes, "reshape_input", [x, shape], [y], [two])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def f16_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2, 3])
    g = helper.make_graph([helper.make_node("Abs", ["x"], ["y"], name="abs")], "f16_abs", [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def if_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    sr = helper.make_tensor_value_info("sr", TensorProto.INT64, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])

    def branch(name: str, k: float) -> onnx.GraphProto:
        out = helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [4])
        c = helper.make_node("Constant", [], [f"{name}_k"], value=helper.make_tensor(f"{name}_kv", TensorProto.FLOAT, [], [k]))
        m = helper.make_node("Mul", ["x", f"{name}_k"], [f"{name}_y"], name=f"{name}_mul")
        return helper.make_graph([c, m], name, [], [out])

    k16 = helper.make_tensor("k16", TensorProto.INT64, [], [16000])
    nodes = [
        helper.make_node("Equal", ["sr", "k16"], ["is16"], name="is16k"),
        helper.make_node("If", ["is16"], ["y"], name="by_rate", then_branch=branch("then", 2.0), else_branch=branch("else", 3.0)),
    ]
    g = helper.make_graph(nodes, "if_rate", [x, sr], [y], [k16])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def main(argv: list[str]) -> int:
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    m = reshape_model()
    common.check(m)
    common.save_model(m, os.path.join(out, "reshape_input.onnx"))
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    shape = np.array([3, 4], dtype=np.int64)
    common.save_npy(os.path.join(out, "reshape_x.npy"), x)
    common.save_npy(os.path.join(out, "reshape_shape.npy"), shape)
    common.save_npy(os.path.join(out, "reshape_y.npy"), common.run(m, {"x": x, "shape": shape})[0])

    m = f16_model()
    common.check(m)
    common.save_model(m, os.path.join(out, "f16_abs.onnx"))
    x = np.array([[-1.5, 2, -0.25], [0, -65504, 3]], dtype=np.float16)
    common.save_npy(os.path.join(out, "f16_x.npy"), x)
    common.save_npy(os.path.join(out, "f16_y.npy"), common.run(m, {"x": x})[0])

    m = if_model()
    common.check(m)
    common.save_model(m, os.path.join(out, "if_rate.onnx"))
    x = np.array([1, -2, 3, 0.5], dtype=np.float32)
    common.save_npy(os.path.join(out, "sr_x.npy"), x)
    common.save_npy(os.path.join(out, "sr16k.npy"), np.array(16000, dtype=np.int64))
    common.save_npy(os.path.join(out, "sr_y16k.npy"), common.run(m, {"x": x, "sr": np.array(16000, dtype=np.int64)})[0])
    # the other branch, for the run-time condition
    common.save_npy(os.path.join(out, "sr8k.npy"), np.array(8000, dtype=np.int64))
    common.save_npy(os.path.join(out, "sr_y8k.npy"), common.run(m, {"x": x, "sr": np.array(8000, dtype=np.int64)})[0])

    m = huge_model()
    common.check(m)
    common.save_model(m, os.path.join(out, "huge_activation.onnx"))
    common.save_npy(os.path.join(out, "one_x.npy"), np.ones([1], dtype=np.float32))

    m = embed_model()
    common.check(m)
    common.save_model(m, os.path.join(out, "embed.onnx"))
    ok = np.array([1, 9, -10], dtype=np.int64)
    common.save_npy(os.path.join(out, "ids_ok.npy"), ok)
    common.save_npy(os.path.join(out, "embed_y.npy"), common.run(m, {"ids": ok})[0])
    common.save_npy(os.path.join(out, "ids_bad.npy"), np.array([1, 10, 2], dtype=np.int64))
    return 0


def embed_model() -> onnx.ModelProto:
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])
    table = np.arange(40, dtype=np.float32).reshape(10, 4) * 0.5 - 3
    t = helper.make_tensor("table", TensorProto.FLOAT, [10, 4], table.flatten().tolist())
    nodes = [helper.make_node("Gather", ["table", "ids"], ["y"], name="embed", axis=0)]
    g = helper.make_graph(nodes, "embed", [ids], [y], [t])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def huge_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [400000, 400000])
    nodes = [
        helper.make_node("Expand", ["x", "shape"], ["big"], name="expand"),
        helper.make_node("Relu", ["big"], ["r"], name="relu"),
        helper.make_node("ReduceSum", ["r"], ["y"], name="sum", keepdims=0),
    ]
    g = helper.make_graph(nodes, "huge_activation", [x], [y], [shape])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
