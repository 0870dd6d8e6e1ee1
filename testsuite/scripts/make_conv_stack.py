"""The four-layer ResNet-style conv stack the integer-kernel numbers in
docs/compression.md ("Integer kernels") are measured on, with calibration
data: 3x3 64->64 on 56x56, 3x3 stride 2 64->128, 3x3 128->128 on 28x28,
1x1 128->256, each Conv + Relu, He-initialised seeded random weights.

    python testsuite/scripts/make_conv_stack.py OUT_DIR
    kerf bench OUT_DIR/convs.onnx --threads 1 --iters 40 --profile \
        --quantize int8 --calib OUT_DIR/convs_calib.npy --rounding nearest [--no-int8-kernels]
"""
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
nodes, inits = [], []


def conv(x, cin, cout, k, s, name):
    w = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2 / (cin * k * k))).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    inits.append(numpy_helper.from_array(w, name + "_w"))
    inits.append(numpy_helper.from_array(b, name + "_b"))
    nodes.append(helper.make_node("Conv", [x, name + "_w", name + "_b"], [name + "_c"], name=name,
                                  kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4))
    nodes.append(helper.make_node("Relu", [name + "_c"], [name + "_r"], name=name + "_relu"))
    return name + "_r"


x = conv("x", 64, 64, 3, 1, "c1")
x = conv(x, 64, 128, 3, 2, "c2")
x = conv(x, 128, 128, 3, 1, "c3")
x = conv(x, 128, 256, 1, 1, "c4")
g = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 56, 56])],
                      [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 256, 28, 28])], inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
onnx.checker.check_model(m, full_check=True)
onnx.save(m, out / "convs.onnx")
np.save(out / "convs_calib.npy", np.maximum(rng.standard_normal((8, 1, 64, 56, 56)), 0).astype(np.float32))
