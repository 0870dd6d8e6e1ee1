"""Shared helpers for the kerf test-data generators.

Everything here is deterministic: the same model bytes and inputs always produce the
same files. ONNX Runtime runs on the CPU provider with one intra-op thread and
ORT_ENABLE_ALL, the configuration the public reference outputs were made with.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper, shape_inference

MAC_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm", "LSTM", "GRU")

# Ops whose output elements count as one FLOP each in `flops_approx` (pure data movement,
# shape plumbing and constants are excluded).
_COMPUTE_OPS = {
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "Abs", "Exp", "Log", "Erf",
    "Tanh", "Sigmoid", "HardSigmoid", "HardSwish", "Relu", "LeakyRelu", "Clip", "Gelu",
    "Softmax", "LogSoftmax", "BatchNormalization", "LayerNormalization", "InstanceNormalization",
    "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum",
    "ReduceMax", "ReduceL2", "Where", "Equal", "Greater", "Less", "And", "Resize",
}


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    """ORT CPU session configured exactly like the reference generator (1 thread, ENABLE_ALL)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return session(model).run(None, feeds)


def check(model: onnx.ModelProto) -> None:
    """Full ONNX checker (includes strict shape inference); raises on any problem."""
    onnx.checker.check_model(model, full_check=True)


def save_model(model: onnx.ModelProto, path: str) -> int:
    data = model.SerializeToString(deterministic=True)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def save_npy(path: str, arr: np.ndarray) -> None:
    # not np.ascontiguousarray: it turns 0-d arrays into shape (1,)
    np.save(path, np.array(arr, order="C", copy=True), allow_pickle=False)


def write_json(path: str, obj, indent: int | None = 1) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent)
        f.write("\n")


def dims_of(vi: onnx.ValueInfoProto) -> list[int] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    out = []
    for d in t.shape.dim:
        if not d.HasField("dim_value"):
            return None
        out.append(d.dim_value)
    return out


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    inferred = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    g = inferred.graph
    shapes: dict[str, list[int]] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        d = dims_of(vi)
        if d is not None:
            shapes[vi.name] = d
    for init in g.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _attr(node: onnx.NodeProto, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def macs_of_node(node: onnx.NodeProto, shapes: dict[str, list[int]]) -> int:
    op = node.op_type
    if op == "Conv":
        return int(np.prod(shapes[node.output[0]])) * int(np.prod(shapes[node.input[1]][1:]))
    if op == "ConvTranspose":
        return int(np.prod(shapes[node.input[0]])) * int(np.prod(shapes[node.input[1]][1:]))
    if op == "MatMul":
        a = shapes[node.input[0]]
        return int(np.prod(shapes[node.output[0]])) * int(a[-1])
    if op == "Gemm":
        a = shapes[node.input[0]]
        k = a[0] if _attr(node, "transA", 0) else a[1]
        return int(np.prod(shapes[node.output[0]])) * int(k)
    if op in ("LSTM", "GRU"):
        x = shapes[node.input[0]]
        w = shapes[node.input[1]]
        r = shapes[node.input[2]]
        seq, batch = (x[1], x[0]) if _attr(node, "layout", 0) else (x[0], x[1])
        dirs, gates_h, inp = w
        hidden = r[2]
        return int(seq * batch * dirs * gates_h * (inp + hidden))
    return 0


def stats(model: onnx.ModelProto) -> dict:
    """op_types, node count, params, MACs and approximate FLOPs, defined as for the public models:
    params = elements of float initializers and float Constant nodes with more than one element
    (a scalar such as a Dropout ratio is a hyperparameter, not a parameter);
    MACs = multiply-accumulates of Conv/ConvTranspose/MatMul/Gemm/LSTM/GRU;
    flops_approx = 2*MACs + one per output element of elementwise/normalisation/pool/reduce ops.
    """
    g = model.graph
    float_types = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                   onnx.TensorProto.BFLOAT16}
    params = 0
    non_float = 0
    for init in g.initializer:
        n = int(np.prod(init.dims)) if len(init.dims) else 1
        if init.data_type in float_types:
            if n > 1:
                params += n
        else:
            non_float += n
    for node in g.node:
        if node.op_type == "Constant":
            t = _attr(node, "value", None)
            if t is None:
                continue
            n = int(np.prod(t.dims)) if len(t.dims) else 1
            if t.data_type in float_types:
                if n > 1:
                    params += n
            else:
                non_float += n
    shapes = _shapes(model)
    macs = 0
    other = 0
    for node in g.node:
        if node.op_type in MAC_OPS:
            macs += macs_of_node(node, shapes)
        elif node.op_type in _COMPUTE_OPS and node.output[0] in shapes:
            other += int(np.prod(shapes[node.output[0]]))
    counts = Counter(n.op_type for n in g.node)
    return {
        "op_types": dict(sorted(counts.items())),
        "n_nodes": len(g.node),
        "params": params,
        "non_float_constant_elems": non_float,
        "macs": macs,
        "flops_approx": 2 * macs + other,
    }


def ensure_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


def tensor(name: str, arr: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(arr), name)
