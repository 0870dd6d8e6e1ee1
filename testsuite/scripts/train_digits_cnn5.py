"""Trains `digits_cnn5`, the digits CNN with 5x5 kernels, in numpy (no
framework), and writes it as ONNX: the trained model on which 5x5 pattern
pruning is judged (docs/compression.md, "5x5 patterns").

    python train_digits_cnn5.py DIGITS_DIR OUT_DIR

DIGITS_DIR holds `train_x.npy`/`train_y.npy`/`test_x.npy`/`test_y.npy`
(`../shared/models/digits_cnn`: sklearn's 8x8 digits, 1,347 training and
450 test images, pixels / 16). The architecture is digits_cnn's with 5x5
kernels: conv5x5(16, pad 2)-relu-conv5x5(32, pad 2)-relu-maxpool2-fc10 on
1x1x8x8; Adam (lr 1e-3), 40 epochs, batches of 32, seed 0, He-normal
initialisation. Deterministic: the same inputs give the same file.
Writes OUT_DIR/model.onnx, input_0.npy (the first test image),
output_0.npy (its logits) and meta.json (test accuracy, parameter and
multiply-add counts).
"""

import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

K, PAD = 5, 2


def im2col(x):
    """(N, C, H, W) -> (N·H·W, C·25): each output pixel's 5x5 patches."""
    n, c, hh, ww = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (PAD, PAD), (PAD, PAD)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (K, K), axis=(2, 3))  # N C H W 5 5
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n * hh * ww, c * K * K)


def col2im(dcols, shape):
    n, c, hh, ww = shape
    d = dcols.reshape(n, hh, ww, c, K, K)
    dxp = np.zeros((n, c, hh + 2 * PAD, ww + 2 * PAD), dcols.dtype)
    for i in range(K):
        for j in range(K):
            dxp[:, :, i : i + hh, j : j + ww] += d[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, PAD:-PAD, PAD:-PAD]


def conv(x, w, b):
    n, _, hh, ww = x.shape
    cols = im2col(x)
    y = cols @ w.reshape(w.shape[0], -1).T + b
    return y.reshape(n, hh, ww, -1).transpose(0, 3, 1, 2), cols


def conv_back(dy, x, cols, w):
    o = w.shape[0]
    d = dy.transpose(0, 2, 3, 1).reshape(-1, o)
    dw = (d.T @ cols).reshape(w.shape)
    db = d.sum(0)
    dx = col2im(d @ w.reshape(o, -1), x.shape)
    return dx, dw, db


def forward(p, x):
    c1, cols1 = conv(x, p["w1"], p["b1"])
    r1 = np.maximum(c1, 0)
    c2, cols2 = conv(r1, p["w2"], p["b2"])
    r2 = np.maximum(c2, 0)
    n, c, hh, ww = r2.shape
    blocks = r2.reshape(n, c, hh // 2, 2, ww // 2, 2)
    pooled = blocks.max(axis=(3, 5))
    flat = pooled.reshape(n, -1)
    logits = flat @ p["w3"].T + p["b3"]
    return logits, (x, c1, cols1, r1, c2, cols2, r2, blocks, pooled, flat)


def backward(p, cache, dlogits):
    x, c1, cols1, r1, c2, cols2, r2, blocks, pooled, flat = cache
    g = {"w3": dlogits.T @ flat, "b3": dlogits.sum(0)}
    dpooled = (dlogits @ p["w3"]).reshape(pooled.shape)
    # the gradient goes to the first maximum of each 2x2 block
    is_max = blocks == pooled[:, :, :, None, :, None]
    first = is_max & (np.cumsum(np.cumsum(is_max, axis=3), axis=5) == 1)
    dr2 = (first * dpooled[:, :, :, None, :, None]).reshape(r2.shape)
    dc2 = dr2 * (c2 > 0)
    dr1, g["w2"], g["b2"] = conv_back(dc2, r1, cols2, p["w2"])
    dc1 = dr1 * (c1 > 0)
    _, g["w1"], g["b1"] = conv_back(dc1, x, cols1, p["w1"])
    return g


def train(xs, ys):
    rng = np.random.default_rng(0)
    he = lambda shape, fan: (rng.standard_normal(shape) * np.sqrt(2.0 / fan)).astype(np.float64)
    p = {
        "w1": he((16, 1, K, K), K * K),
        "b1": np.zeros(16),
        "w2": he((32, 16, K, K), 16 * K * K),
        "b2": np.zeros(32),
        "w3": he((10, 512), 512),
        "b3": np.zeros(10),
    }
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(v) for k, v in p.items()}
    step, lr, b1, b2, eps = 0, 1e-3, 0.9, 0.999, 1e-8
    for _ in range(40):
        order = rng.permutation(len(xs))
        for i in range(0, len(xs), 32):
            idx = order[i : i + 32]
            logits, cache = forward(p, xs[idx])
            z = logits - logits.max(1, keepdims=True)
            prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)
            prob[np.arange(len(idx)), ys[idx]] -= 1
            grads = backward(p, cache, prob / len(idx))
            step += 1
            for k in p:
                m[k] = b1 * m[k] + (1 - b1) * grads[k]
                v[k] = b2 * v[k] + (1 - b2) * grads[k] ** 2
                mh, vh = m[k] / (1 - b1**step), v[k] / (1 - b2**step)
                p[k] -= lr * mh / (np.sqrt(vh) + eps)
    return {k: v.astype(np.float32) for k, v in p.items()}


def export(p, path):
    conv_attrs = dict(kernel_shape=[K, K], pads=[PAD] * 4)
    nodes = [
        h.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="/conv1/Conv", **conv_attrs),
        h.make_node("Relu", ["c1"], ["r1"], name="/relu1/Relu"),
        h.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="/conv2/Conv", **conv_attrs),
        h.make_node("Relu", ["c2"], ["r2"], name="/relu2/Relu"),
        h.make_node("MaxPool", ["r2"], ["m"], name="/pool/MaxPool", kernel_shape=[2, 2], strides=[2, 2]),
        h.make_node("Flatten", ["m"], ["f"], name="/flatten/Flatten", axis=1),
        h.make_node("Gemm", ["f", "w3", "b3"], ["logits"], name="/fc/Gemm", transB=1),
    ]
    inits = [nh.from_array(p[k], k) for k in ["w1", "b1", "w2", "b2", "w3", "b3"]]
    g = h.make_graph(
        nodes,
        "digits_cnn5",
        [h.make_tensor_value_info("input", T.FLOAT, [1, 1, 8, 8])],
        [h.make_tensor_value_info("logits", T.FLOAT, [1, 10])],
        inits,
    )
    mo = h.make_model(g, opset_imports=[h.make_opsetid("", 13)], producer_name="kerf train_digits_cnn5.py")
    mo.ir_version = 8
    onnx.checker.check_model(mo)
    onnx.save(mo, path)


def main():
    src, out = sys.argv[1], sys.argv[2]
    load = lambda f: np.load(os.path.join(src, f))
    xs, ys = load("train_x.npy").astype(np.float64), load("train_y.npy")
    tx, ty = load("test_x.npy"), load("test_y.npy")
    p = train(xs, ys)
    os.makedirs(out, exist_ok=True)
    export(p, os.path.join(out, "model.onnx"))
    logits, _ = forward({k: v.astype(np.float64) for k, v in p.items()}, tx.astype(np.float64))
    acc = float((logits.argmax(1) == ty).mean())
    np.save(os.path.join(out, "input_0.npy"), tx[:1])
    np.save(os.path.join(out, "output_0.npy"), logits[:1].astype(np.float32))
    # the counts `kerf inspect` reports (tests compare them): weights and
    # biases; multiply-adds of the two convs (8x8 outputs) and the Gemm
    params = sum(int(v.size) for v in p.values())
    macs = 16 * 25 * 64 + 32 * 16 * 25 * 64 + 10 * 512
    meta = {
        "name": "digits_cnn5",
        "group": "a-trained",
        "source": "testsuite/scripts/train_digits_cnn5.py (numpy) on ../shared/models/digits_cnn's train split: Adam lr 1e-3, 40 epochs, batch 32, seed 0",
        "description": "CNN conv5x5(16)-relu-conv5x5(32)-relu-maxpool2-fc10 on 1x1x8x8",
        "test_set": {"x": "test_x.npy", "y": "test_y.npy", "n": len(ty), "numpy_accuracy": acc},
        "inputs": [{"name": "input", "shape": [1, 1, 8, 8], "dtype": "float32", "file": "input_0.npy"}],
        "outputs": [{"name": "logits", "shape": [1, 10], "dtype": "float32", "file": "output_0.npy"}],
        "opset": {"ai.onnx": 13},
        "ir_version": 8,
        "op_types": {"Conv": 2, "Flatten": 1, "Gemm": 1, "MaxPool": 1, "Relu": 2},
        "n_nodes": 7,
        "params": params,
        "macs": macs,
        "reference": "the numpy forward pass in float64, rounded to float32",
    }
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"test accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
