"""Single-conv ONNX models for the pattern kernel's per-layer table
(docs/compression.md, "Speed"): 3x3 convs + Relu, dense (`d*.onnx`) and
pattern-pruned (`p*.onnx`: every kept kernel keeps one of 8 four-tap masks,
half the kernels removed, so 22% of the weights), random weights (seed 0).

    python make_pattern_layers.py OUT_DIR
    kerf bench OUT_DIR/p64_56.onnx --threads 1          # pattern kernel
    kerf bench OUT_DIR/d64_56.onnx --threads 1          # dense, kerf's pick
    kerf bench OUT_DIR/d64_56.onnx --threads 1 --no-winograd   # dense direct
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

MASKS = [[1, 3, 4, 5], [0, 4, 5, 8], [4, 6, 7, 8], [1, 2, 4, 7], [3, 4, 5, 7], [0, 1, 3, 4], [4, 5, 7, 8], [1, 4, 5, 7]]


def model(rng, out, c, hw, pruned, stride=1):
    w = rng.standard_normal((c, c, 3, 3)).astype(np.float32) * 0.05
    if pruned:
        m = np.zeros((c, c, 9), np.float32)
        for o in range(c):
            for i in range(c):
                if rng.random() < 0.5:
                    continue
                m[o, i, MASKS[rng.integers(8)]] = 1
        w = (w.reshape(c, c, 9) * m).reshape(c, c, 3, 3)
    b = rng.standard_normal(c).astype(np.float32) * 0.1
    oh = (hw + 2 - 3) // stride + 1
    g = h.make_graph(
        [
            h.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[stride, stride]),
            h.make_node("Relu", ["c"], ["y"]),
        ],
        "g",
        [h.make_tensor_value_info("x", T.FLOAT, [1, c, hw, hw])],
        [h.make_tensor_value_info("y", T.FLOAT, [1, c, oh, oh])],
        [nh.from_array(w, "w"), nh.from_array(b, "b")],
    )
    mo = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    mo.ir_version = 8
    name = f"{'p' if pruned else 'd'}{c}_{hw}{'_s2' if stride == 2 else ''}.onnx"
    onnx.save(mo, os.path.join(out, name))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    for c, hw in [(64, 56), (128, 28), (256, 14), (512, 7)]:
        model(rng, out, c, hw, True)
        model(rng, out, c, hw, False)
    for c, hw in [(128, 56), (256, 28), (512, 14)]:
        model(rng, out, c, hw, True, stride=2)
        model(rng, out, c, hw, False, stride=2)


if __name__ == "__main__":
    main()
