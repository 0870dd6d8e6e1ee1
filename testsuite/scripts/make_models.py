#!/usr/bin/env python3
"""Rebuild kerf's end-to-end test models with seeded random weights.

Usage: make_models.py OUT_DIR [NAME ...]

For every model writes OUT_DIR/<name>/{model.onnx, input_0.npy, output_0.npy, meta.json}.
The graphs mirror what `torch.onnx.export(opset_version=17, do_constant_folding=True)`
produces for the torchvision / hand-built architectures in kerf's public model set (same
node structure, op mix, shapes and, where the exporter's choices allow, parameter counts),
but are built directly with `onnx.helper` from numpy weights, so no torch is needed.

* Weights: numpy `default_rng(seed)`, He-normal convolutions, PyTorch-default uniform
  Linear/RNN init. BatchNorm gamma/beta are random and the running statistics are
  calibrated on a separate seeded input (then perturbed), so activations stay O(1).
* `<arch>` is the folded form PyTorch exports (Conv with bias, no BatchNormalization);
  `<arch>_bn` is the same network with explicit BatchNormalization nodes (Conv without bias),
  which kerf must fold itself. Both are given their own ONNX Runtime reference.
* References: ONNX Runtime CPU, 1 intra-op thread, ORT_ENABLE_ALL.
Deterministic: two runs produce byte-identical files.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto

import common
from graph_builder import Builder, dedup_initializers

F = TensorProto.FLOAT


# ------------------------------------------------------------------------------------------
# MobileNetV2 (torchvision)
# ------------------------------------------------------------------------------------------
def build_mobilenet_v2(seed: int) -> Builder:
    b = Builder(seed)
    x = "input"

    def conv_bn(scope, x, cin, cout, k, stride, group, prefix, act):
        pad = (k - 1) // 2
        y = b.conv(f"{scope}/{prefix[0]}", x, cin, cout, k, stride, pad, group, bias=False)
        y = b.bn(f"{scope}/{prefix[1]}", y, cout, param_prefix=prefix[2])
        if act:
            y = b.clip6(f"{scope}/{prefix[3]}", y)
        return y

    s0 = "/features/features.0"
    x = conv_bn(s0, x, 3, 32, 3, 2, 1, ("features.0.0", "features.0.1", "features.0.1", "features.0.2"), True)
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]
    cin = 32
    idx = 1
    for t, c, n, s in settings:
        for i in range(n):
            stride = s if i == 0 else 1
            scope = f"/features/features.{idx}/conv"
            p = f"features.{idx}.conv"
            hidden = cin * t
            y = x
            j = 0
            if t != 1:
                y = conv_bn(scope, y, cin, hidden, 1, 1, 1,
                            (f"conv.{j}/conv.{j}.0", f"conv.{j}/conv.{j}.1", f"{p}.{j}.1", f"conv.{j}/conv.{j}.2"),
                            True)
                j += 1
            y = conv_bn(scope, y, hidden, hidden, 3, stride, hidden,
                        (f"conv.{j}/conv.{j}.0", f"conv.{j}/conv.{j}.1", f"{p}.{j}.1", f"conv.{j}/conv.{j}.2"), True)
            j += 1
            y = b.conv(f"{scope}/conv.{j}", y, hidden, c, 1, bias=False)
            y = b.bn(f"{scope}/conv.{j + 1}", y, c, param_prefix=f"{p}.{j + 1}")
            if stride == 1 and cin == c:
                y = b.op("Add", f"/features/features.{idx}", [x, y])
            x = y
            cin = c
            idx += 1
    s18 = "/features/features.18"
    x = conv_bn(s18, x, 320, 1280, 1, 1, 1, ("features.18.0", "features.18.1", "features.18.1", "features.18.2"), True)
    x = b.op("GlobalAveragePool", "", [x])
    x = b.op("Flatten", "", [x], axis=1)
    b.gemm("/classifier/classifier.1", x, 1280, 1000, "classifier.1", output="output")
    return b


# ------------------------------------------------------------------------------------------
# ResNet-18 (torchvision)
# ------------------------------------------------------------------------------------------
def build_resnet18(seed: int) -> Builder:
    b = Builder(seed)
    x = b.conv("/conv1", "input", 3, 64, 7, 2, 3, bias=False)
    x = b.bn("/bn1", x, 64, "bn1")
    x = b.op("Relu", "/relu", [x])
    x = b.op("MaxPool", "/maxpool", [x], ceil_mode=0, dilations=[1, 1], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
             strides=[2, 2])
    cin = 64
    for li, c in enumerate([64, 128, 256, 512], start=1):
        for bi in range(2):
            stride = 2 if (li > 1 and bi == 0) else 1
            s = f"/layer{li}/layer{li}.{bi}"
            p = f"layer{li}.{bi}"
            y = b.conv(f"{s}/conv1", x, cin, c, 3, stride, 1, bias=False)
            y = b.bn(f"{s}/bn1", y, c, f"{p}.bn1")
            y = b.op("Relu", f"{s}/relu", [y])
            y = b.conv(f"{s}/conv2", y, c, c, 3, 1, 1, bias=False)
            y = b.bn(f"{s}/bn2", y, c, f"{p}.bn2")
            if stride != 1 or cin != c:
                sc = b.conv(f"{s}/downsample/downsample.0", x, cin, c, 1, stride, 0, bias=False)
                sc = b.bn(f"{s}/downsample/downsample.1", sc, c, f"{p}.downsample.1")
            else:
                sc = x
            y = b.op("Add", s, [y, sc])
            x = b.op("Relu", f"{s}/relu_1", [y])
            cin = c
    x = b.op("GlobalAveragePool", "/avgpool", [x])
    x = b.op("Flatten", "", [x], axis=1)
    b.gemm("/fc", x, 512, 1000, "fc", output="output")
    return b


# ------------------------------------------------------------------------------------------
# SqueezeNet 1.1 (torchvision): zero biases (torchvision init), deduplicated by the exporter
# ------------------------------------------------------------------------------------------
def build_squeezenet1_1(seed: int) -> Builder:
    b = Builder(seed)

    def kconv(scope, x, cin, cout, k, stride, pad, pname, w=None):
        if w is None:
            bound = np.sqrt(6.0 / (cin * k * k))  # kaiming_uniform_, gain sqrt(2)
            w = b.uniform((cout, cin, k, k), bound)
        return b.conv(scope, x, cin, cout, k, stride, pad, w_name=f"{pname}.weight", b_name=f"{pname}.bias",
                      w=w, b=np.zeros(cout, np.float32))

    def maxpool(scope, x):
        return b.op("MaxPool", scope, [x], ceil_mode=1, dilations=[1, 1], kernel_shape=[3, 3], pads=[0, 0, 0, 0],
                    strides=[2, 2])

    def fire(i, x, cin, sq, e1, e3):
        s = f"/features/features.{i}"
        p = f"features.{i}"
        y = kconv(f"{s}/squeeze", x, cin, sq, 1, 1, 0, f"{p}.squeeze")
        y = b.op("Relu", f"{s}/squeeze_activation", [y])
        a = kconv(f"{s}/expand1x1", y, sq, e1, 1, 1, 0, f"{p}.expand1x1")
        a = b.op("Relu", f"{s}/expand1x1_activation", [a])
        c = kconv(f"{s}/expand3x3", y, sq, e3, 3, 1, 1, f"{p}.expand3x3")
        c = b.op("Relu", f"{s}/expand3x3_activation", [c])
        return b.op("Concat", s, [a, c], axis=1)

    x = kconv("/features/features.0", "input", 3, 64, 3, 2, 0, "features.0")
    x = b.op("Relu", "/features/features.1", [x])
    x = maxpool("/features/features.2", x)
    x = fire(3, x, 64, 16, 64, 64)
    x = fire(4, x, 128, 16, 64, 64)
    x = maxpool("/features/features.5", x)
    x = fire(6, x, 128, 32, 128, 128)
    x = fire(7, x, 256, 32, 128, 128)
    x = maxpool("/features/features.8", x)
    x = fire(9, x, 256, 48, 192, 192)
    x = fire(10, x, 384, 48, 192, 192)
    x = fire(11, x, 384, 64, 256, 256)
    x = fire(12, x, 512, 64, 256, 256)
    w = (b.rng.standard_normal((1000, 512, 1, 1)) * 0.01).astype(np.float32)
    x = kconv("/classifier/classifier.1", x, 512, 1000, 1, 1, 0, "classifier.1", w=w)
    x = b.op("Relu", "/classifier/classifier.2", [x])
    x = b.op("GlobalAveragePool", "/classifier/classifier.3", [x])
    b.node("Flatten", "", [x], outputs=["output"], axis=1)
    return b


# ------------------------------------------------------------------------------------------
# Tiny pre-LN transformer encoder (2 layers, d=128, 4 heads, FFN 512, exact GELU)
# ------------------------------------------------------------------------------------------
def build_tiny_transformer(seed: int, ln_affine: bool) -> Builder:
    """ln_affine=False: LayerNorm gamma=1/beta=0 as in a freshly initialised torch module (the
    exporter then deduplicates them into Identity nodes, like the public model).
    ln_affine=True: random gamma/beta, so the LayerNorm affine part is exercised."""
    b = Builder(seed)
    T, D, H, FF = 64, 128, 4, 512
    hd = D // H

    def ln(scope, x, prefix):
        if ln_affine:
            g = b.rng.uniform(0.7, 1.3, D).astype(np.float32)
            be = (b.rng.standard_normal(D) * 0.1).astype(np.float32)
        else:
            g, be = np.ones(D, np.float32), np.zeros(D, np.float32)
        gw = b.init(f"{prefix}.weight", g)
        gb = b.init(f"{prefix}.bias", be)
        return b.op("LayerNormalization", scope, [x, gw, gb], axis=-1, epsilon=1e-5)

    def linear(scope, x, fin, fout, prefix):
        bound = 1.0 / np.sqrt(fin)
        w = b.init(b.anon("MatMul"), b.uniform((fin, fout), bound))
        bias = b.init(f"{prefix}.bias", b.uniform((fout,), bound))
        y = b.op("MatMul", scope, [x, w])
        return b.op("Add", scope, [bias, y])

    x = "input"
    for L in range(2):
        s = f"/blocks/blocks.{L}"
        p = f"blocks.{L}"
        h = ln(f"{s}/ln1", x, f"{p}.ln1")
        qkv = linear(f"{s}/qkv", h, D, 3 * D, f"{p}.qkv")
        split = b.const(s, [D, D, D], np.int64)
        q, k, v = b.node("Split", s, [qkv, split], n_out=3, axis=-1)
        shp = [b.const(s, [1, T, H, hd], np.int64) for _ in range(3)]
        q = b.op("Reshape", s, [q, shp[0]], allowzero=0)
        q = b.op("Transpose", s, [q], perm=[0, 2, 1, 3])
        k = b.op("Reshape", s, [k, shp[1]], allowzero=0)
        v = b.op("Reshape", s, [v, shp[2]], allowzero=0)
        v = b.op("Transpose", s, [v], perm=[0, 2, 1, 3])
        k = b.op("Transpose", s, [k], perm=[0, 2, 3, 1])
        att = b.op("MatMul", s, [q, k])
        c32 = b.const(s, 32.0, np.float32)
        c05 = b.const(s, 0.5, np.float32)
        sq = b.op("Pow", s, [c32, c05])
        rc = b.op("Reciprocal", s, [sq])
        one = b.const(s, 1.0, np.float32)
        scale = b.op("Mul", s, [rc, one])
        att = b.op("Mul", s, [att, scale])
        att = b.op("Softmax", s, [att], axis=-1)
        o = b.op("MatMul", s, [att, v])
        o = b.op("Transpose", s, [o], perm=[0, 2, 1, 3])
        shp3 = b.const(s, [1, T, D], np.int64)
        o = b.op("Reshape", s, [o, shp3], allowzero=0)
        o = linear(f"{s}/proj", o, D, D, f"{p}.proj")
        x = b.op("Add", s, [x, o])
        h = ln(f"{s}/ln2", x, f"{p}.ln2")
        h = linear(f"{s}/ff1", h, D, FF, f"{p}.ff1")
        a = f"{s}/act"
        r2 = b.const(a, np.sqrt(2.0), np.float32)
        g = b.op("Div", a, [h, r2])
        g = b.op("Erf", a, [g])
        g = b.op("Add", a, [g, b.const(a, 1.0, np.float32)])
        g = b.op("Mul", a, [h, g])
        g = b.op("Mul", a, [g, b.const(a, 0.5, np.float32)])
        h = linear(f"{s}/ff2", g, FF, D, f"{p}.ff2")
        x = b.op("Add", s, [x, h])
    gw = b.init("ln.weight", np.ones(D, np.float32) if not ln_affine else b.rng.uniform(0.7, 1.3, D).astype(np.float32))
    gb = b.init("ln.bias", np.zeros(D, np.float32) if not ln_affine
                else (b.rng.standard_normal(D) * 0.1).astype(np.float32))
    b.node("LayerNormalization", "/ln", [x, gw, gb], outputs=["output"], axis=-1, epsilon=1e-5)
    return b


# ------------------------------------------------------------------------------------------
# Keyword-spotting RNNs (PyTorch-style initial-state subgraphs)
# ------------------------------------------------------------------------------------------
def _zero_state_expand(b: Builder, xt: str, hidden: int, zero: str, dirs: int = 1) -> str:
    """Shape -> Gather(1) -> Unsqueeze -> Concat([dirs], B, [hidden]) -> Expand(zeros)."""
    shape = b.op("Shape", "/rnn", [xt])
    bdim = b.op("Gather", "/rnn", [shape, b.const("/rnn", 1, np.int64)])
    bdim = b.op("Unsqueeze", "", [bdim, b.const("", [0], np.int64)])
    hid = b.const("/rnn", [hidden], np.int64)
    ndir = b.const("", [dirs], np.int64)
    full = b.op("Concat", "/rnn", [ndir, bdim, hid], axis=0)
    return b.op("Expand", "/rnn", [zero, full])


def _zero_state_cos(b: Builder, xt: str, hidden: int, dirs: int) -> str:
    """Shape -> Gather(1) -> Unsqueeze -> Concat([dirs], B, [hidden]) -> ConstantOfShape(0)."""
    shape = b.op("Shape", "/rnn", [xt])
    bdim = b.op("Gather", "/rnn", [shape, b.const("/rnn", 1, np.int64)])
    bdim = b.op("Unsqueeze", "", [bdim, b.const("", [0], np.int64)])
    full = b.op("Concat", "/rnn", [b.const("", [dirs], np.int64), bdim, b.const("/rnn", [hidden], np.int64)],
                axis=0)
    return b.op("ConstantOfShape", "/rnn", [full], value=common.tensor("", np.zeros(1, np.float32)))


def build_rnn_kws(seed: int, cell: str) -> Builder:
    """LSTM/GRU(40->64) over 1x50x40 (batch_first), fc12 on the last step (torch export form)."""
    b = Builder(seed)
    I, Hd, C = 40, 64, 12
    gates = 4 if cell == "LSTM" else 3
    bound = 1.0 / np.sqrt(Hd)
    zero = b.const("/rnn", np.zeros((1, 1, Hd), np.float32))
    xt = b.op("Transpose", "/rnn", ["input"], perm=[1, 0, 2])
    h0 = _zero_state_expand(b, xt, Hd, zero)
    ins = [xt, b.init(b.anon(cell), b.uniform((1, gates * Hd, I), bound)),
           b.init(b.anon(cell), b.uniform((1, gates * Hd, Hd), bound)),
           b.init(b.anon(cell), b.uniform((1, 2 * gates * Hd), bound)), "", h0]
    if cell == "LSTM":
        ins.append(_zero_state_expand(b, xt, Hd, zero))
        y = b.node("LSTM", "/rnn", ins, n_out=3, hidden_size=Hd)[0]
    else:
        y = b.node("GRU", "/rnn", ins, n_out=2, hidden_size=Hd, linear_before_reset=1)[0]
    y = b.op("Squeeze", "/rnn", [y, b.const("/rnn", [1], np.int64)])
    y = b.op("Transpose", "/rnn", [y], perm=[1, 0, 2])
    last = b.op("Gather", "", [y, b.const("", -1, np.int64)], axis=1)
    b.gemm("/fc", last, Hd, C, "fc", output="output")
    return b


def build_lstm_bidir_kws(seed: int) -> Builder:
    """Bidirectional LSTM(40->32) with ConstantOfShape initial states, both directions
    concatenated per step (Transpose + Reshape), fc12 on the last step."""
    b = Builder(seed)
    I, Hd, C, T = 40, 32, 12, 50
    bound = 1.0 / np.sqrt(Hd)
    xt = b.op("Transpose", "/rnn", ["input"], perm=[1, 0, 2])
    h0 = _zero_state_cos(b, xt, Hd, 2)
    c0 = _zero_state_cos(b, xt, Hd, 2)
    ins = [xt, b.init(b.anon("LSTM"), b.uniform((2, 4 * Hd, I), bound)),
           b.init(b.anon("LSTM"), b.uniform((2, 4 * Hd, Hd), bound)),
           b.init(b.anon("LSTM"), b.uniform((2, 8 * Hd), bound)), "", h0, c0]
    y = b.node("LSTM", "/rnn", ins, n_out=3, hidden_size=Hd, direction="bidirectional")[0]  # [T,2,1,H]
    y = b.op("Transpose", "/rnn", [y], perm=[0, 2, 1, 3])  # [T,1,2,H]
    y = b.op("Reshape", "/rnn", [y, b.const("/rnn", [T, 1, 2 * Hd], np.int64)], allowzero=0)
    last = b.op("Gather", "", [y, b.const("", -1, np.int64)], axis=0)  # [1, 2H]
    b.gemm("/fc", last, 2 * Hd, C, "fc", output="output")
    return b


# ------------------------------------------------------------------------------------------
# bn_convnet: a tiny CNN full of things kerf's rewrite rules must remove
# ------------------------------------------------------------------------------------------
def build_bn_convnet(seed: int) -> Builder:
    b = Builder(seed)
    x = b.conv("/conv1", "input", 3, 8, 3, 1, 1, bias=False)
    x = b.bn("/bn1", x, 8, "bn1")
    x = b.op("Relu", "/relu1", [x])
    ratio = b.init("dropout.ratio", np.array(0.25, np.float32))
    x = b.op("Dropout", "/drop1", [x, ratio])
    x = b.op("Identity", "/id1", [x])
    x = b.op("Transpose", "/nhwc", [x], perm=[0, 2, 3, 1])
    x = b.op("Transpose", "/nchw", [x], perm=[0, 3, 1, 2])
    x = b.conv("/conv2", x, 8, 16, 3, 2, 1, bias=True)  # BN after a Conv that already has a bias
    x = b.bn("/bn2", x, 16, "bn2")
    x = b.clip6("/act2", x)
    x = b.conv("/dw3", x, 16, 16, 3, 1, 1, group=16, bias=True)
    x = b.bn("/bn3", x, 16, "bn3")
    x = b.op("Relu", "/relu3", [x])
    x = b.op("MaxPool", "/pool", [x], kernel_shape=[2, 2], strides=[2, 2])  # [1,16,8,8]
    x = b.op("Reshape", "/r1", [x, b.const("/r1", [0, 16, -1], np.int64)])  # [1,16,64]
    x = b.op("Transpose", "/t1", [x], perm=[0, 2, 1])  # [1,64,16]
    x = b.op("Transpose", "/t2", [x], perm=[0, 2, 1])  # back to [1,16,64]
    x = b.op("Reshape", "/r2", [x, b.const("/r2", [1, -1], np.int64)])  # [1,1024]
    x = b.op("Reshape", "/r3", [x, b.const("/r3", [1, 1024], np.int64)])
    x = b.op("Identity", "/id2", [x])
    x = b.gemm("/fc", x, 1024, 10, "fc")
    b.node("Dropout", "/drop2", [x], outputs=["output"])
    return b


def build_residual_cnn(seed: int) -> Builder:
    """Two ResNet basic blocks over 16 channels of 16x16 (a 3x3 stem with
    Relu, then per block conv-Relu-conv, Add of the block input, Relu), a
    global pool and a 10-way Gemm: small enough for compression tests of
    residual adds in a debug build."""
    b = Builder(seed)
    x = b.conv("/stem", "input", 3, 16, 3, 1, 1, bias=True)
    x = b.op("Relu", "/stem_relu", [x])
    for i in range(2):
        s = f"/block{i}"
        y = b.conv(f"{s}/conv1", x, 16, 16, 3, 1, 1, bias=True)
        y = b.op("Relu", f"{s}/relu", [y])
        y = b.conv(f"{s}/conv2", y, 16, 16, 3, 1, 1, bias=True)
        y = b.op("Add", f"{s}/add", [y, x])
        x = b.op("Relu", f"{s}/relu_1", [y])
    x = b.op("GlobalAveragePool", "/pool", [x])
    x = b.op("Flatten", "", [x], axis=1)
    b.gemm("/fc", x, 16, 10, "fc", output="output")
    return b


def build_upsample_head(seed: int) -> Builder:
    """A detector's upsampling head in small (DBNet-style): a 3x3 conv with
    Relu over 16 channels of 12x12, a 2x2 stride-2 ConvTranspose with its
    bias Add, BatchNormalization and Relu (each output pixel one tap), a 3x3 stride-2 ConvTranspose with pads 1
    and output padding 1 (overlapping taps), then a 1x1 conv to one map."""
    b = Builder(seed)
    x = b.conv("/stem", "input", 3, 16, 3, 1, 1, bias=True)
    x = b.op("Relu", "/stem_relu", [x])
    # as paddle2onnx writes PP-OCR's DB head: no bias input, an Add of the
    # bias, a BatchNormalization (folded into the int8 weight's grid)
    w1 = b.he_normal((16, 8, 2, 2), 16 * 4)
    x = b.op("ConvTranspose", "/up1", [x, b.init("up1.weight", w1)], kernel_shape=[2, 2], strides=[2, 2])
    x = b.op("Add", "/up1_bias", [x, b.init("up1.bias", b.uniform((1, 8, 1, 1), 0.25))])
    x = b.bn("/up1_bn", x, 8, "up1_bn")
    x = b.op("Relu", "/up1_relu", [x])
    w2 = b.he_normal((8, 8, 3, 3), 8 * 9)
    x = b.op("ConvTranspose", "/up2", [x, b.init("up2.weight", w2), b.init("up2.bias", b.uniform((8,), 0.25))],
             kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])
    x = b.op("Relu", "/up2_relu", [x])
    b.conv("/head", x, 8, 1, 1, 1, 0, bias=True, w_name="head.weight", b_name="head.bias")
    b.nodes[-1].output[0] = "output"
    return b


def build_upsample_odd(seed: int) -> Builder:
    """Upsampling whose output is not a multiple of the stride: a 3x3 conv
    with Relu over 16 channels of 12x12, a 3x3 stride-2 ConvTranspose with
    pads 1 and no output padding (PyTorch's default: 12 -> 23, 2·len − 1)
    and Relu, a 3x3 stride-2 one without pads (23 -> 47, 2·len + 1), then a
    1x1 conv to one map."""
    b = Builder(seed)
    x = b.conv("/stem", "input", 3, 16, 3, 1, 1, bias=True)
    x = b.op("Relu", "/stem_relu", [x])
    w1 = b.he_normal((16, 16, 3, 3), 16 * 9)
    x = b.op("ConvTranspose", "/up1", [x, b.init("up1.weight", w1), b.init("up1.bias", b.uniform((16,), 0.25))],
             kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    x = b.op("Relu", "/up1_relu", [x])
    w2 = b.he_normal((16, 16, 3, 3), 16 * 9)
    x = b.op("ConvTranspose", "/up2", [x, b.init("up2.weight", w2), b.init("up2.bias", b.uniform((16,), 0.25))],
             kernel_shape=[3, 3], strides=[2, 2])
    x = b.op("Relu", "/up2_relu", [x])
    b.conv("/head", x, 16, 1, 1, 1, 0, bias=True, w_name="head.weight", b_name="head.bias")
    b.nodes[-1].output[0] = "output"
    return b


def pattern_prune(rng: np.random.Generator, w: np.ndarray, patterns: int, connectivity: float) -> np.ndarray:
    """What a training-time tool leaves in a 3x3 conv weight (PatDNN's
    form, chosen here by magnitude as such tools do): every kernel keeps
    the 4 taps of one of `patterns` centred 4-tap masks (the one keeping
    the most of its magnitude), and the `connectivity` fraction of kernels
    with the least magnitude left are zeroed whole."""
    taps = [i for i in range(9) if i != 4]
    lib = []
    while len(lib) < patterns:
        m = np.zeros(9, bool)
        m[4] = True
        m[rng.choice(taps, 3, replace=False)] = True
        if not any((m == l).all() for l in lib):
            lib.append(m)
    lib = np.array(lib, np.float32)  # [patterns, 9]
    k = w.reshape(-1, 9)
    best = np.argmax((k * k) @ lib.T, axis=1)
    k = k * lib[best]
    mag = (k * k).sum(axis=1)
    k[np.argsort(mag, kind="stable")[: int(connectivity * len(k))]] = 0.0
    return k.reshape(w.shape).astype(np.float32)


def build_pattern_pruned_cnn(seed: int) -> Builder:
    """Three 3x3 convs over 32 channels of 28x28 (stem, two pruned), a
    global pool and a 10-way Gemm; the two 32-channel convs' weights are
    pattern-pruned as a training script would leave them (8 patterns, half
    the kernels removed: `pattern_prune`), so `kerf compile` without any
    compression flag should find the structure and run the pattern
    kernels."""
    b = Builder(seed)
    x = b.conv("/stem", "input", 3, 32, 3, 1, 1, bias=True)
    x = b.op("Relu", "/stem_relu", [x])
    for i in range(2):
        w = pattern_prune(b.rng, b.he_normal((32, 32, 3, 3), 32 * 9), 8, 0.5)
        x = b.conv(f"/conv{i}", x, 32, 32, 3, 1, 1, bias=True, w=w)
        x = b.op("Relu", f"/relu{i}", [x])
    x = b.op("GlobalAveragePool", "/pool", [x])
    x = b.op("Flatten", "", [x], axis=1)
    b.gemm("/fc", x, 32, 10, "fc", output="output")
    return b


def constants_variant(path: str) -> onnx.ModelProto:
    """The model at `path` with every initializer moved into a `Constant`
    node at the graph's start, as converters (tf2onnx, paddle2onnx) often
    write weights: compression and export must treat both alike."""
    m = onnx.load(path)
    g = m.graph
    consts = [onnx.helper.make_node("Constant", [], [t.name], name=f"const_{t.name}", value=t)
              for t in g.initializer]
    nodes = consts + list(g.node)
    del g.initializer[:]
    del g.node[:]
    g.node.extend(nodes)
    return m


def unnamed_variant(path: str) -> onnx.ModelProto:
    """The model at `path` with every node's name cleared, as some converters
    write them: layers are then named `<op>_<index>`, and the exporter must
    find them by those names although it inserts nodes before them."""
    m = onnx.load(path)
    for n in m.graph.node:
        n.name = ""
    return m


# ------------------------------------------------------------------------------------------
# driver
# ------------------------------------------------------------------------------------------
NAMES = ["mobilenet_v2", "mobilenet_v2_bn", "resnet18", "resnet18_bn", "squeezenet1_1", "tiny_transformer",
         "tiny_transformer_affine", "lstm_kws", "gru_kws", "lstm_bidir_kws", "bn_convnet", "residual_cnn",
         "pattern_pruned_cnn", "digits_cnn_constants", "digits_cnn_unnamed", "upsample_head", "upsample_odd"]


def _io(shape_in, shape_out):
    return [("input", shape_in, F)], [("output", shape_out, F)]


def make_all(only: set[str] | None):
    """Yield (name, description, seed, model, input array)."""
    img = [1, 3, 224, 224]

    def want(*names):
        return only is None or any(n in only for n in names)

    def cnn_pair(name, builder_fn, seed, desc):
        if not want(name, name + "_bn"):
            return
        b = builder_fn(seed)
        calib = np.random.default_rng(seed + 1000).standard_normal([2] + img[1:]).astype(np.float32)
        b.calibrate_bn("input", calib, seed + 2000)
        x = np.random.default_rng(seed + 1).standard_normal(img).astype(np.float32)
        ins, outs = _io(img, [1, 1000])
        nodes, inits = b.folded()
        if want(name):
            yield name, desc + " (BatchNorm folded into Conv, as torch.onnx.export emits it)", seed, \
                b.model(ins, outs, nodes=nodes, inits=inits), x
        if want(name + "_bn"):
            yield name + "_bn", desc + " (explicit BatchNormalization nodes, Conv without bias)", seed, \
                b.model(ins, outs), x

    yield from cnn_pair("mobilenet_v2", build_mobilenet_v2, 101, "torchvision mobilenet_v2 structure, 1x3x224x224")
    yield from cnn_pair("resnet18", build_resnet18, 102, "torchvision resnet18 structure, 1x3x224x224")
    if want("squeezenet1_1"):
        b = build_squeezenet1_1(103)
        ins, outs = _io(img, [1, 1000])
        yield "squeezenet1_1", "torchvision squeezenet1_1 structure, 1x3x224x224 (zero biases deduplicated)", 103, \
            dedup_initializers(b.model(ins, outs)), \
            np.random.default_rng(104).standard_normal(img).astype(np.float32)
    for name, affine, seed in (("tiny_transformer", False, 105), ("tiny_transformer_affine", True, 106)):
        if want(name):
            b = build_tiny_transformer(seed, affine)
            ins, outs = _io([1, 64, 128], [1, 64, 128])
            m = b.model(ins, outs)
            desc = "pre-LN transformer encoder, 2 layers, d=128, 4 heads, FFN 512 (exact GELU), input 1x64x128"
            if affine:
                desc += ", random LayerNorm gamma/beta"
            else:
                m = dedup_initializers(m)
            yield name, desc, seed, m, np.random.default_rng(seed + 1).standard_normal([1, 64, 128]).astype(np.float32)
    for name, cell, seed in (("lstm_kws", "LSTM", 107), ("gru_kws", "GRU", 108)):
        if want(name):
            b = build_rnn_kws(seed, cell)
            ins, outs = _io([1, 50, 40], [1, 12])
            yield name, f"{cell}(40->64) over 50 frames of 40 features (1x50x40) + fc12 on last step", seed, \
                b.model(ins, outs), np.random.default_rng(seed + 1).standard_normal([1, 50, 40]).astype(np.float32)
    if want("lstm_bidir_kws"):
        b = build_lstm_bidir_kws(109)
        ins, outs = _io([1, 50, 40], [1, 12])
        yield "lstm_bidir_kws", "bidirectional LSTM(40->32), ConstantOfShape initial states, fc12 on last step", \
            109, b.model(ins, outs), np.random.default_rng(110).standard_normal([1, 50, 40]).astype(np.float32)
    if want("bn_convnet"):
        b = build_bn_convnet(111)
        shape = [1, 3, 32, 32]
        calib = np.random.default_rng(1111).standard_normal([2, 3, 32, 32]).astype(np.float32)
        b.calibrate_bn("input", calib, 2111)
        ins, outs = _io(shape, [1, 10])
        yield "bn_convnet", "tiny CNN with explicit BatchNormalization, Dropout, Identity, Transpose pairs and " \
                            "Reshape chains, 1x3x32x32", 111, b.model(ins, outs), \
            np.random.default_rng(112).standard_normal(shape).astype(np.float32)
    if want("residual_cnn"):
        b = build_residual_cnn(113)
        shape = [1, 3, 16, 16]
        ins, outs = _io(shape, [1, 10])
        yield "residual_cnn", "two ResNet basic blocks (16 channels, 16x16) with residual Adds, pool, fc10, " \
                              "1x3x16x16", 113, b.model(ins, outs), \
            np.random.default_rng(114).standard_normal(shape).astype(np.float32)
    if want("upsample_head"):
        b = build_upsample_head(119)
        shape = [1, 3, 12, 12]
        ins, outs = _io(shape, [1, 1, 48, 48])
        yield "upsample_head", "a 3x3 conv, two ConvTransposes (2x2 stride 2; 3x3 stride 2, pads 1, output " \
                               "padding 1) with Relu, a 1x1 conv to one map, 1x3x12x12", 119, b.model(ins, outs), \
            np.random.default_rng(120).standard_normal(shape).astype(np.float32)
    if want("upsample_odd"):
        b = build_upsample_odd(121)
        shape = [1, 3, 12, 12]
        ins, outs = _io(shape, [1, 1, 47, 47])
        yield "upsample_odd", "a 3x3 conv, two 3x3 stride-2 ConvTransposes whose outputs are not twice their " \
                              "inputs (pads 1: 12 -> 23; no pads: 23 -> 47) with Relu, a 1x1 conv to one map, " \
                              "1x3x12x12", 121, b.model(ins, outs), \
            np.random.default_rng(122).standard_normal(shape).astype(np.float32)
    if want("digits_cnn_constants"):
        fixture = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../fixtures/models/digits_cnn")
        yield "digits_cnn_constants", "the digits_cnn fixture with its weights in Constant nodes, 1x1x8x8", 117, \
            constants_variant(os.path.join(fixture, "model.onnx")), np.load(os.path.join(fixture, "input_0.npy"))
    if want("digits_cnn_unnamed"):
        fixture = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../fixtures/models/digits_cnn")
        yield "digits_cnn_unnamed", "the digits_cnn fixture with every node's name cleared, 1x1x8x8", 123, \
            unnamed_variant(os.path.join(fixture, "model.onnx")), np.load(os.path.join(fixture, "input_0.npy"))
    if want("pattern_pruned_cnn"):
        b = build_pattern_pruned_cnn(115)
        shape = [1, 3, 28, 28]
        ins, outs = _io(shape, [1, 10])
        yield "pattern_pruned_cnn", "three 3x3 convs (32 channels, 28x28), two pattern-pruned by numpy (8 " \
                                    "patterns, 50% connectivity), pool, fc10, 1x3x28x28", 115, b.model(ins, outs), \
            np.random.default_rng(116).standard_normal(shape).astype(np.float32)


def write_model(out_dir: str, name: str, desc: str, seed: int, model: onnx.ModelProto, x: np.ndarray) -> dict:
    common.check(model)
    d = common.ensure_dir(os.path.join(out_dir, name))
    size = common.save_model(model, os.path.join(d, "model.onnx"))
    in_name = model.graph.input[0].name
    y = common.run(model, {in_name: x})
    common.save_npy(os.path.join(d, "input_0.npy"), x)
    outputs = []
    for i, (vi, arr) in enumerate(zip(model.graph.output, y)):
        common.save_npy(os.path.join(d, f"output_{i}.npy"), arr)
        outputs.append({"name": vi.name, "shape": list(arr.shape), "dtype": str(arr.dtype), "file": f"output_{i}.npy",
                        "absmax": float(np.abs(arr).max())})
    st = common.stats(model)
    meta = {
        "name": name,
        "group": "generated",
        "source": f"testsuite/scripts/make_models.py (onnx {onnx.__version__}, numpy default_rng seed {seed})",
        "description": desc,
        "inputs": [{"name": in_name, "shape": list(x.shape), "dtype": str(x.dtype), "file": "input_0.npy"}],
        "outputs": outputs,
        "opset": {"ai.onnx": model.opset_import[0].version},
        "ir_version": model.ir_version,
        **st,
        "file_size_bytes": size,
        "reference": f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider, ORT_ENABLE_ALL, 1 thread",
    }
    common.write_json(os.path.join(d, "meta.json"), meta)
    return meta


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    out_dir = argv[1]
    only = set(argv[2:]) or None
    unknown = sorted((only or set()) - set(NAMES))
    if unknown:
        print(f"unknown model(s) {unknown}; known: {', '.join(NAMES)}", file=sys.stderr)
        return 2
    t0 = time.time()
    for name, desc, seed, model, x in make_all(only):
        t = time.time()
        meta = write_model(out_dir, name, desc, seed, model, x)
        print(f"{name:24s} params {meta['params']:>10,d}  MACs {meta['macs']:>14,d}  nodes {meta['n_nodes']:4d}  "
              f"out absmax {meta['outputs'][0]['absmax']:.4g}  ({time.time() - t:.1f}s)", flush=True)
    print(f"done in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
