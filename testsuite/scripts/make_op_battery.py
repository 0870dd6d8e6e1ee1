#!/usr/bin/env python3
"""Write kerf's op-level test battery.

Usage: make_op_battery.py OUT_DIR

Every case is a single-node ONNX model (opset 17; Gelu uses opset 20) in
OUT_DIR/<op>_<variant>/ with
  model.onnx       weights and shape-like operands (axes, pads, scales, ...) as initializers,
                   data operands as graph inputs,
  input_<i>.npy    one per graph input, in graph-input order,
  output_<i>.npy   one per graph output (ONNX Runtime CPU reference, 1 thread, ORT_ENABLE_ALL),
  case.json        {"op": ..., "opset": ..., "description": ...} on one line.

Cases are tiny and stress what a compiler gets wrong: last-axis sizes that are not a multiple
of 4 (1, 3, 5, 7, 13, 17), padding, strides, dilations, groups, auto_pad, every kind of
broadcasting, negative axes, keepdims, ceil_mode, optional inputs. Float inputs keep away
from the points where the op is discontinuous or non-differentiable (Relu at 0, HardSwish
at +-3, Cast near integers, ...) so the references are robust to rounding. Each op family
draws from its own numpy Generator seeded from the family name, so the files are
deterministic and adding a case to one family does not change the others.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper

import common

OPSET = 17
F32 = np.float32
I64 = np.int64
INT64_MAX = np.iinfo(np.int64).max


@dataclass
class Case:
    op: str
    variant: str
    description: str
    inputs: dict[str, np.ndarray] = field(default_factory=dict)  # graph inputs (data)
    inits: dict[str, np.ndarray] = field(default_factory=dict)  # initializers (weights, axes, ...)
    attrs: dict = field(default_factory=dict)
    node_inputs: list[str] | None = None  # explicit order, '' for an omitted optional input
    n_out: int = 1
    out_types: list[int] | None = None  # ONNX elem types of the outputs (default: first input's)
    opset: int = OPSET

    @property
    def dirname(self) -> str:
        return f"{self.op}_{self.variant}"


# ------------------------------------------------------------------------------------------
# data helpers
# ------------------------------------------------------------------------------------------
def u(r, shape, lo=-2.0, hi=2.0) -> np.ndarray:
    return r.uniform(lo, hi, shape).astype(F32)


def away(x: np.ndarray, points=(0.0,), eps=0.05) -> np.ndarray:
    """Move values within eps of any breakpoint to breakpoint +- eps (keeping their side)."""
    x = x.astype(np.float64)
    for p in points:
        d = x - p
        near = np.abs(d) < eps
        x[near] = p + np.where(d[near] >= 0, eps, -eps)
    return x.astype(F32)


def pos(r, shape, lo=0.2, hi=3.0) -> np.ndarray:
    return u(r, shape, lo, hi)


def signed_mag(r, shape, lo=0.5, hi=2.0) -> np.ndarray:
    """Random sign times a magnitude in [lo, hi] (never near zero)."""
    return (u(r, shape, lo, hi) * np.where(r.random(shape) < 0.5, -1, 1)).astype(F32)


def i64(v) -> np.ndarray:
    return np.asarray(v, dtype=I64)


# ------------------------------------------------------------------------------------------
# families
# ------------------------------------------------------------------------------------------
def gen_conv(r):
    def conv(variant, desc, x, wshape, bias=True, **attrs):
        w = (r.standard_normal(wshape) * np.sqrt(2.0 / np.prod(wshape[1:]))).astype(F32)
        inits = {"W": w}
        if bias:
            inits["B"] = u(r, (wshape[0],), -0.5, 0.5)
        return Case("Conv", variant, desc, {"X": x}, inits, attrs)

    yield conv("1d_k3_pad1", "1-D conv, 17 samples, k=3, pads 1", u(r, (1, 3, 17)), (4, 3, 3), pads=[1, 1])
    yield conv("1d_stride2_dilation2", "1-D conv, 13 samples, stride 2, dilation 2, no bias", u(r, (1, 2, 13)),
               (3, 2, 3), bias=False, strides=[2], dilations=[2])
    yield conv("2d_basic", "2-D 3x3 valid conv, 5 output channels", u(r, (1, 3, 7, 7)), (5, 3, 3, 3))
    yield conv("2d_pads_asym", "asymmetric pads [1,0,2,1]", u(r, (1, 2, 6, 5)), (3, 2, 3, 3), pads=[1, 0, 2, 1])
    yield conv("2d_stride2", "stride 2 pads 1 on 9x9", u(r, (1, 3, 9, 9)), (4, 3, 3, 3), strides=[2, 2],
               pads=[1, 1, 1, 1])
    yield conv("2d_dilation2", "dilation 2 pads 2", u(r, (1, 2, 9, 9)), (3, 2, 3, 3), dilations=[2, 2],
               pads=[2, 2, 2, 2])
    yield conv("2d_groups2", "group=2 (4 in, 6 out channels)", u(r, (1, 4, 6, 6)), (6, 2, 3, 3), group=2,
               pads=[1, 1, 1, 1])
    yield conv("2d_depthwise", "depthwise 3x3, 5 channels, pads 1", u(r, (1, 5, 7, 7)), (5, 1, 3, 3), group=5,
               pads=[1, 1, 1, 1])
    yield conv("2d_depthwise_stride2", "depthwise 3x3 stride 2 on 8x8, 7 channels", u(r, (1, 7, 8, 8)),
               (7, 1, 3, 3), group=7, pads=[1, 1, 1, 1], strides=[2, 2])
    yield conv("2d_depthwise_multiplier2", "group=3 with 6 outputs (channel multiplier 2)", u(r, (1, 3, 6, 6)),
               (6, 1, 3, 3), group=3, pads=[1, 1, 1, 1])
    yield conv("2d_auto_pad_same_upper", "auto_pad SAME_UPPER, stride 2 on 7x7", u(r, (1, 2, 7, 7)), (3, 2, 3, 3),
               auto_pad="SAME_UPPER", strides=[2, 2])
    yield conv("2d_auto_pad_same_lower", "auto_pad SAME_LOWER, 2x2 kernel", u(r, (1, 2, 5, 5)), (3, 2, 2, 2),
               auto_pad="SAME_LOWER")
    yield conv("2d_auto_pad_valid", "auto_pad VALID", u(r, (1, 2, 6, 7)), (2, 2, 3, 2), auto_pad="VALID")
    yield conv("2d_pointwise", "1x1 conv, 13 in, 7 out channels", u(r, (1, 13, 5, 5)), (7, 13, 1, 1))
    yield conv("2d_rect_kernel_strides", "1x5 kernel, strides [1,2], batch 2", u(r, (2, 3, 5, 11)), (4, 3, 1, 5),
               strides=[1, 2], pads=[0, 2, 0, 2])
    yield conv("2d_kernel_shape_attr", "explicit kernel_shape attribute, no bias", u(r, (1, 1, 5, 5)),
               (2, 1, 3, 3), bias=False, kernel_shape=[3, 3])
    # small planes, many channels: the kernels split their tasks over output channels too (Winograd for the
    # stride-1 3x3, the packed GEMM conv for stride 2)
    yield conv("2d_3x3_7x7_64ch", "3x3 pads 1, 48 -> 64 channels on 7x7", u(r, (1, 48, 7, 7)), (64, 48, 3, 3),
               pads=[1, 1, 1, 1])
    yield conv("2d_3x3_stride2_64ch", "3x3 stride 2 pads 1, 32 -> 64 channels, 14x14 -> 7x7", u(r, (1, 32, 14, 14)),
               (64, 32, 3, 3), strides=[2, 2], pads=[1, 1, 1, 1])
    # Winograd with quads of four tiles in one tile row (whole-vector input and output transforms) beside quads
    # across rows and at the right and bottom edges (14 and 9 tiles per row)
    yield conv("2d_3x3_winograd_rows", "3x3 pads 1, 16 -> 24 channels on 22x54", u(r, (1, 16, 22, 54)),
               (24, 16, 3, 3), pads=[1, 1, 1, 1])
    yield conv("2d_3x3_winograd_batch", "3x3 pads 1, 24 -> 16 channels on 17x35, batch 2", u(r, (2, 24, 17, 35)),
               (16, 24, 3, 3), pads=[1, 1, 1, 1])


def gen_conv_transpose(r):
    def ct(variant, desc, x, wshape, bias=True, **attrs):
        w = (r.standard_normal(wshape) * np.sqrt(1.0 / np.prod(wshape[1:]))).astype(F32)
        inits = {"W": w}
        if bias:
            inits["B"] = u(r, (wshape[1] * attrs.get("group", 1),), -0.5, 0.5)
        return Case("ConvTranspose", variant, desc, {"X": x}, inits, attrs)

    yield ct("2d_basic", "stride 1, no pads", u(r, (1, 3, 4, 4)), (3, 2, 3, 3))
    yield ct("2d_stride2_pads_outpad", "stride 2, pads 1, output_padding 1 (exact 2x upsample)",
             u(r, (1, 3, 4, 5)), (3, 2, 3, 3), strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])
    yield ct("2d_stride2_k2", "2x2 kernel stride 2, no bias", u(r, (1, 4, 3, 3)), (4, 3, 2, 2), bias=False,
             strides=[2, 2])
    yield ct("2d_groups2", "group 2", u(r, (1, 4, 3, 3)), (4, 1, 3, 3), group=2, pads=[1, 1, 1, 1])
    yield ct("2d_dilation2", "dilation 2", u(r, (1, 2, 4, 4)), (2, 2, 3, 3), dilations=[2, 2])
    yield ct("1d_stride2", "1-D, 7 samples, k=4 stride 2", u(r, (1, 2, 7)), (2, 3, 4), strides=[2])


def gen_gemm(r):
    def g(variant, desc, a, b, c=None, b_input=False, **attrs):
        inputs = {"A": a}
        inits = {}
        (inputs if b_input else inits)["B"] = b
        if c is not None:
            inits["C"] = c
        return Case("Gemm", variant, desc, inputs, inits, attrs)

    yield g("basic_bias_row", "A[3,5] B[5,7] + C[7]", u(r, (3, 5)), u(r, (5, 7)), u(r, (7,)))
    yield g("transA", "transA=1, A[5,3]", u(r, (5, 3)), u(r, (5, 7)), u(r, (7,)), transA=1)
    yield g("transB_C_1xN", "transB=1 (torch Linear), C[1,7]", u(r, (3, 5)), u(r, (7, 5)), u(r, (1, 7)), transB=1)
    yield g("transA_transB", "transA=1 transB=1", u(r, (5, 2)), u(r, (13, 5)), u(r, (13,)), transA=1, transB=1)
    yield g("alpha_beta_full_C", "alpha 0.5, beta 2, C[3,7]", u(r, (3, 5)), u(r, (5, 7)), u(r, (3, 7)),
            alpha=0.5, beta=2.0)
    yield g("C_column", "C[3,1] broadcast over columns", u(r, (3, 5)), u(r, (5, 7)), u(r, (3, 1)))
    yield g("C_scalar", "scalar C", u(r, (3, 5)), u(r, (5, 7)), np.array(0.75, F32))
    yield g("no_C", "no C input, 17 outputs", u(r, (1, 13)), u(r, (17, 13)), transB=1)
    yield g("B_input", "B as a graph input", u(r, (2, 3)), u(r, (3, 5)), u(r, (5,)), b_input=True)


def gen_matmul(r):
    def mm(variant, desc, a, b, b_init=True):
        return Case("MatMul", variant, desc, {"A": a}, {"B": b}) if b_init else \
            Case("MatMul", variant, desc, {"A": a, "B": b})

    yield mm("2d_weight", "[3,13] x [13,17] weight", u(r, (3, 13)), u(r, (13, 17)))
    yield mm("2d_inputs", "[5,7] x [7,3], both inputs", u(r, (5, 7)), u(r, (7, 3)), b_init=False)
    yield mm("1d_x_2d", "[5] x [5,3] -> [3]", u(r, (5,)), u(r, (5, 3)))
    yield mm("2d_x_1d", "[4,5] x [5] -> [4]", u(r, (4, 5)), u(r, (5,)))
    yield mm("1d_x_1d", "[7] x [7] -> scalar", u(r, (7,)), u(r, (7,)), b_init=False)
    yield mm("batched", "[2,3,5] x [2,5,4]", u(r, (2, 3, 5)), u(r, (2, 5, 4)), b_init=False)
    yield mm("broadcast_batch", "[2,1,3,5] x [3,5,6] -> [2,3,3,6]", u(r, (2, 1, 3, 5)), u(r, (3, 5, 6)),
             b_init=False)
    yield mm("3d_x_2d_weight", "[2,5,7] x [7,3] (transformer linear)", u(r, (2, 5, 7)), u(r, (7, 3)))
    yield mm("1d_x_3d", "[5] x [2,5,3] -> [2,3]", u(r, (5,)), u(r, (2, 5, 3)), b_init=False)


def _bcast_cases(op, r, mk_a, mk_b, which):
    table = {
        "same": ("same shape [2,3,5]", (2, 3, 5), (2, 3, 5), False),
        "scalar": ("scalar initializer B", (3, 7), (), True),
        "row": ("row broadcast [3,7] op [7]", (3, 7), (7,), True),
        "column": ("column broadcast [3,7] op [3,1]", (3, 7), (3, 1), False),
        "rank_mismatch": ("rank mismatch [2,3,4] op [3,1]", (2, 3, 4), (3, 1), False),
        "both": ("both sides broadcast [1,7] op [13,1]", (1, 7), (13, 1), False),
        "tail17": ("17 elements, same shape", (17,), (17,), False),
        "scalar_lhs": ("scalar initializer A op [2,5]", (), (2, 5), True),
    }
    for v in which:
        desc, sa, sb, b_init = table[v]
        a, b = mk_a(r, sa), mk_b(r, sb)
        if v == "scalar_lhs":
            yield Case(op, v, desc, {"B": b}, {"A": a}, node_inputs=["A", "B"])
        elif b_init:
            yield Case(op, v, desc, {"A": a}, {"B": b})
        else:
            yield Case(op, v, desc, {"A": a, "B": b})


def gen_binary(r):
    yield from _bcast_cases("Add", r, u, u, ["same", "scalar", "row", "column", "rank_mismatch", "both", "tail17"])
    yield from _bcast_cases("Sub", r, u, u, ["same", "scalar", "column", "both", "scalar_lhs"])
    yield from _bcast_cases("Mul", r, u, u, ["same", "scalar", "row", "rank_mismatch", "tail17"])
    yield from _bcast_cases("Div", r, u, signed_mag, ["same", "scalar", "column", "both"])
    yield from _bcast_cases("Pow", r, pos, u, ["same", "row", "column"])
    yield Case("Pow", "scalar_2", "x^2 with scalar exponent initializer", {"A": u(r, (3, 7))},
               {"B": np.array(2.0, F32)})
    yield Case("Pow", "scalar_0p5", "x^0.5 with scalar exponent initializer", {"A": pos(r, (13,))},
               {"B": np.array(0.5, F32)})


def gen_unary(r):
    def un(op, data_fn, n=3, **attrs):
        # always a [2,3,17] case (several rows with a 1-element vector tail), then one of
        # [3,7]/[5]/[13] (rotating by op) and a single element
        middle = [(3, 7), (5,), (13,)][len(op) % 3]
        for s in [(2, 3, 17), middle, (1,)][:n]:
            yield Case(op, "n" + "x".join(map(str, s)), f"{op} on shape {list(s)}", {"X": data_fn(s)}, attrs=attrs)

    yield from un("Sqrt", lambda s: pos(r, s, 0.05, 9.0))
    yield from un("Reciprocal", lambda s: signed_mag(r, s, 0.2, 4.0))
    yield from un("Neg", lambda s: u(r, s))
    yield from un("Abs", lambda s: away(u(r, s)))
    yield from un("Exp", lambda s: u(r, s, -4, 4))
    yield from un("Log", lambda s: pos(r, s, 0.05, 20.0))
    yield from un("Erf", lambda s: u(r, s, -3, 3))
    yield from un("Tanh", lambda s: u(r, s, -4, 4))
    yield from un("Sigmoid", lambda s: u(r, s, -8, 8))
    yield from un("Relu", lambda s: away(u(r, s)))
    yield Case("Relu", "large_3x1021", "[3,1021] (long rows with a 1-element vector tail)",
               {"X": away(u(r, (3, 1021)))})
    yield from un("HardSigmoid", lambda s: away(u(r, s, -4, 4), (-2.5, 2.5)), n=2)
    yield Case("HardSigmoid", "alpha_beta", "alpha 0.25 beta 0.4", {"X": away(u(r, (2, 13), -4, 4), (-1.6, 2.4))},
               attrs={"alpha": 0.25, "beta": 0.4})
    yield from un("HardSwish", lambda s: away(u(r, s, -5, 5), (-3.0, 3.0)))
    yield from un("LeakyRelu", lambda s: away(u(r, s)), n=2)
    yield Case("LeakyRelu", "alpha0p2", "alpha 0.2", {"X": away(u(r, (3, 7)))}, attrs={"alpha": 0.2})


def gen_clip(r):
    def cl(variant, desc, x, lo, hi):
        inits = {}
        names = ["X"]
        if lo is not None:
            inits["min"] = np.array(lo, F32)
            names.append("min")
        elif hi is not None:
            names.append("")
        if hi is not None:
            inits["max"] = np.array(hi, F32)
            names.append("max")
        return Case("Clip", variant, desc, {"X": x}, inits, node_inputs=names)

    yield cl("relu6", "min 0 max 6 (ReLU6)", away(u(r, (2, 3, 17), -3, 9), (0.0, 6.0)), 0.0, 6.0)
    yield cl("min_only", "min only (-0.5)", away(u(r, (13,)), (-0.5,)), -0.5, None)
    yield cl("max_only", "max only (0.3), min omitted with ''", away(u(r, (3, 5)), (0.3,)), None, 0.3)
    yield cl("no_bounds", "no min/max: identity", u(r, (7,)), None, None)


def gen_gelu(r):
    yield Case("Gelu", "exact", "Gelu (opset 20), approximate='none'", {"X": u(r, (2, 3, 17), -4, 4)}, opset=20)
    yield Case("Gelu", "tanh", "Gelu (opset 20), approximate='tanh'", {"X": u(r, (13,), -4, 4)},
               attrs={"approximate": "tanh"}, opset=20)


def gen_softmax(r):
    for op in ("Softmax", "LogSoftmax"):
        yield Case(op, "axis_last_17", "axis -1 on [3,17]", {"X": u(r, (3, 17), -3, 3)}, attrs={"axis": -1})
        yield Case(op, "default_axis", "default axis (-1) on [2,5]", {"X": u(r, (2, 5), -3, 3)})
        yield Case(op, "axis1_of_3d", "axis 1 on [2,5,3] (not the last axis)", {"X": u(r, (2, 5, 3), -3, 3)},
                   attrs={"axis": 1})
        yield Case(op, "large_values", "inputs around +-40 (needs max subtraction)", {"X": u(r, (2, 7), -40, 40)},
                   attrs={"axis": -1})
        yield Case(op, "axis0", "axis 0 on [4,3]", {"X": u(r, (4, 3), -3, 3)}, attrs={"axis": 0})


def gen_norm(r):
    def bn(variant, desc, shape, eps=1e-5):
        c = shape[1]
        return Case("BatchNormalization", variant, desc, {"X": u(r, shape)},
                    {"scale": u(r, (c,), 0.5, 1.5), "B": u(r, (c,), -0.5, 0.5), "mean": u(r, (c,), -0.5, 0.5),
                     "var": u(r, (c,), 0.3, 2.0)}, attrs={"epsilon": eps})

    yield bn("4d", "NCHW [1,5,4,4]", (1, 5, 4, 4))
    yield bn("3d_batch2", "[2,3,7] (1-D spatial), batch 2", (2, 3, 7))
    yield bn("2d", "[3,13] (no spatial dims)", (3, 13))
    yield bn("eps_1e-3", "epsilon 1e-3, [1,7,3,3]", (1, 7, 3, 3), eps=1e-3)

    yield Case("LayerNormalization", "last_axis_17", "axis -1 on [2,3,17]", {"X": u(r, (2, 3, 17))},
               {"scale": u(r, (17,), 0.5, 1.5), "B": u(r, (17,), -0.5, 0.5)}, attrs={"axis": -1, "epsilon": 1e-5})
    yield Case("LayerNormalization", "axis_neg2", "axis -2 (normalise over [5,7])", {"X": u(r, (2, 5, 7))},
               {"scale": u(r, (5, 7), 0.5, 1.5), "B": u(r, (5, 7), -0.5, 0.5)}, attrs={"axis": -2})
    yield Case("LayerNormalization", "no_bias", "no bias input, epsilon 1e-3, [4,13]", {"X": u(r, (4, 13))},
               {"scale": u(r, (13,), 0.5, 1.5)}, attrs={"axis": 1, "epsilon": 1e-3})
    yield Case("LayerNormalization", "d1", "normalised size 1 (output is the bias)", {"X": u(r, (3, 1))},
               {"scale": u(r, (1,), 0.5, 1.5), "B": u(r, (1,), -0.5, 0.5)}, attrs={"axis": -1})

    yield Case("InstanceNormalization", "4d", "[1,3,5,5]", {"X": u(r, (1, 3, 5, 5))},
               {"scale": u(r, (3,), 0.5, 1.5), "B": u(r, (3,), -0.5, 0.5)})
    yield Case("InstanceNormalization", "3d_batch2", "[2,4,13], epsilon 1e-3", {"X": u(r, (2, 4, 13))},
               {"scale": u(r, (4,), 0.5, 1.5), "B": u(r, (4,), -0.5, 0.5)}, attrs={"epsilon": 1e-3})


def gen_pool(r):
    def mp(variant, desc, shape, **attrs):
        return Case("MaxPool", variant, desc, {"X": u(r, shape)}, attrs=attrs)

    yield mp("2x2_s2", "2x2 stride 2 on 6x6", (1, 2, 6, 6), kernel_shape=[2, 2], strides=[2, 2])
    yield mp("3x3_s2_p1", "3x3 stride 2 pads 1 (ResNet stem) on 7x7", (1, 3, 7, 7), kernel_shape=[3, 3],
             strides=[2, 2], pads=[1, 1, 1, 1])
    yield mp("ceil_mode", "3x3 stride 2 ceil_mode 1 on 6x6 (SqueezeNet)", (1, 2, 6, 6), kernel_shape=[3, 3],
             strides=[2, 2], ceil_mode=1)
    yield mp("dilation2", "3x3 dilation 2 on 7x7", (1, 2, 7, 7), kernel_shape=[3, 3], dilations=[2, 2])
    yield mp("1d", "1-D k3 s2 on 13", (1, 3, 13), kernel_shape=[3], strides=[2])
    yield mp("auto_pad_same_upper", "3x3 stride 2 SAME_UPPER on 5x5", (1, 1, 5, 5), kernel_shape=[3, 3],
             strides=[2, 2], auto_pad="SAME_UPPER")
    yield mp("rect_asym_pads", "2x3 kernel, strides [1,2], pads [0,1,1,0]", (2, 2, 5, 7), kernel_shape=[2, 3],
             strides=[1, 2], pads=[0, 1, 1, 0])
    yield mp("all_negative", "inputs all negative with padding (pad must act as -inf)", (1, 1, 4, 5),
             kernel_shape=[3, 3], pads=[1, 1, 1, 1])

    def ap(variant, desc, shape, **attrs):
        return Case("AveragePool", variant, desc, {"X": u(r, shape)}, attrs=attrs)

    yield ap("2x2_s2", "2x2 stride 2 on 6x6", (1, 2, 6, 6), kernel_shape=[2, 2], strides=[2, 2])
    yield ap("pads_exclude", "3x3 pads 1, count_include_pad 0", (1, 2, 5, 5), kernel_shape=[3, 3],
             pads=[1, 1, 1, 1], count_include_pad=0)
    yield ap("pads_include", "3x3 pads 1, count_include_pad 1", (1, 2, 5, 5), kernel_shape=[3, 3],
             pads=[1, 1, 1, 1], count_include_pad=1)
    yield ap("ceil_mode", "3x3 stride 2 ceil_mode 1 on 6x6 (partial last window)", (1, 2, 6, 6),
             kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    yield ap("1d_asym_pads", "1-D k4 s3 pads [2,1], count_include_pad 1", (1, 3, 13), kernel_shape=[4],
             strides=[3], pads=[2, 1], count_include_pad=1)
    yield ap("auto_pad_same_upper", "3x3 stride 1 SAME_UPPER (excludes pad)", (1, 1, 5, 7), kernel_shape=[3, 3],
             auto_pad="SAME_UPPER")

    for op in ("GlobalAveragePool", "GlobalMaxPool"):
        yield Case(op, "4d", "[1,5,7,7]", {"X": u(r, (1, 5, 7, 7))})
        yield Case(op, "3d", "[2,3,13] (1-D spatial)", {"X": u(r, (2, 3, 13))})
        yield Case(op, "spatial_1x1", "[1,17,1,1] (already global)", {"X": u(r, (1, 17, 1, 1))})

    # Wide rows reach the 2-D f32 fast path's f32x4 interior (stride 1 and the
    # stride-2 deinterleave) as well as its scalar interior tail and borders.
    # Appended last so the inputs of the cases above stay unchanged.
    yield mp("3x3_s2_p1_wide", "3x3 stride 2 pads 1 on 9x37 (vector interior + tail)", (1, 3, 9, 37),
             kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    yield mp("3x3_s1_p1_wide", "3x3 stride 1 pads 1 on 6x34", (1, 2, 6, 34), kernel_shape=[3, 3],
             pads=[1, 1, 1, 1])
    yield mp("ceil_mode_wide", "3x3 stride 2 ceil_mode 1 on 8x40 (SqueezeNet)", (1, 2, 8, 40),
             kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    yield ap("3x3_s2_p1_wide_include", "3x3 stride 2 pads 1 count_include_pad 1 on 7x36", (1, 2, 7, 36),
             kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)
    yield ap("ceil_mode_wide_exclude", "3x3 stride 2 pads [1,2,0,1] ceil_mode 1 on 9x35", (1, 2, 9, 35),
             kernel_shape=[3, 3], strides=[2, 2], pads=[1, 2, 0, 1], ceil_mode=1)
    yield ap("4x5_s1_wide", "4x5 stride 1 pads [1,2,2,1] on 6x33 (even kernel rows, odd columns)", (1, 2, 6, 33),
             kernel_shape=[4, 5], pads=[1, 2, 2, 1])


def gen_shape_ops(r):
    for axis, shape in ((1, (2, 3, 4, 5)), (0, (3, 5)), (-1, (2, 3, 7)), (3, (2, 1, 3, 5))):
        v = f"axis_{axis}".replace("-", "neg")
        yield Case("Flatten", v, f"axis {axis} on {list(shape)}", {"X": u(r, shape)}, attrs={"axis": axis})

    def rs(variant, desc, shape, target):
        return Case("Reshape", variant, desc, {"X": u(r, shape)}, {"shape": i64(target)})

    yield rs("zero_and_minus1", "[2,3,4] -> [0,-1] (0 copies a dim)", (2, 3, 4), [0, -1])
    yield rs("minus1_middle", "[2,3,4] -> [4,-1,2]", (2, 3, 4), [4, -1, 2])
    yield rs("zeros_split", "[2,3,4] -> [0,0,2,2]", (2, 3, 4), [0, 0, 2, 2])
    yield rs("flatten_all", "[3,5,1] -> [-1]", (3, 5, 1), [-1])
    yield rs("to_scalar_dims", "[1,1] -> [1]", (1, 1), [1])

    for perm, shape in (([1, 0], (3, 17)), ([0, 2, 3, 1], (1, 3, 5, 7)), (None, (2, 3, 5)), ([2, 0, 1], (3, 5, 7)),
                        ([0, 2, 1, 3], (1, 5, 4, 3))):
        v = "default_reverse" if perm is None else "perm_" + "".join(map(str, perm))
        attrs = {} if perm is None else {"perm": perm}
        yield Case("Transpose", v, f"perm {perm} on {list(shape)}", {"X": u(r, shape)}, attrs=attrs)

    yield Case("Squeeze", "axis1", "axes [1] on [3,1,5]", {"X": u(r, (3, 1, 5))}, {"axes": i64([1])})
    yield Case("Squeeze", "neg_axis", "axes [-1] on [2,7,1]", {"X": u(r, (2, 7, 1))}, {"axes": i64([-1])})
    yield Case("Squeeze", "no_axes", "no axes: drop all 1-dims of [1,3,1,5]", {"X": u(r, (1, 3, 1, 5))})
    yield Case("Unsqueeze", "axis0", "axes [0] on [3,5]", {"X": u(r, (3, 5))}, {"axes": i64([0])})
    yield Case("Unsqueeze", "neg_axis", "axes [-1] on [3,5]", {"X": u(r, (3, 5))}, {"axes": i64([-1])})
    yield Case("Unsqueeze", "multi_axes", "axes [0,3] on [3,5]", {"X": u(r, (3, 5))}, {"axes": i64([3, 0])})

    yield Case("Concat", "axis1", "axis 1, [2,3,4] ++ [2,5,4]", {"A": u(r, (2, 3, 4)), "B": u(r, (2, 5, 4))},
               attrs={"axis": 1})
    yield Case("Concat", "neg_axis_three", "axis -1, last dims 1, 3 and 13",
               {"A": u(r, (2, 1)), "B": u(r, (2, 3)), "C": u(r, (2, 13))}, attrs={"axis": -1})
    yield Case("Concat", "axis0_with_init", "axis 0 with an initializer operand", {"A": u(r, (2, 5))},
               {"B": u(r, (3, 5))}, attrs={"axis": 0})

    yield Case("Split", "equal_axis1", "no split input: 3 equal parts of axis 1 of [2,9]", {"X": u(r, (2, 9))},
               attrs={"axis": 1}, n_out=3)
    yield Case("Split", "sizes_neg_axis", "split [1,3,13] on axis -1 of [2,17]", {"X": u(r, (2, 17))},
               {"split": i64([1, 3, 13])}, node_inputs=["X", "split"], attrs={"axis": -1}, n_out=3)
    yield Case("Split", "axis0_two", "default axis 0, split [1,2] of [3,5]", {"X": u(r, (3, 5))},
               {"split": i64([1, 2])}, n_out=2)

    def sl(variant, desc, shape, starts, ends, axes=None, steps=None):
        inits = {"starts": i64(starts), "ends": i64(ends)}
        names = ["X", "starts", "ends"]
        if axes is not None:
            inits["axes"] = i64(axes)
            names.append("axes")
        if steps is not None:
            if axes is None:
                names.append("")
            inits["steps"] = i64(steps)
            names.append("steps")
        return Case("Slice", variant, desc, {"X": u(r, shape)}, inits, node_inputs=names)

    yield sl("basic", "[1:3, 2:7] of [4,9]", (4, 9), [1, 2], [3, 7])
    yield sl("axes_neg", "axis -1 [1:-1] of [3,17]", (3, 17), [1], [-1], axes=[-1])
    yield sl("step2", "axis 1 [0:17:2] of [2,17]", (2, 17), [0], [17], axes=[1], steps=[2])
    yield sl("reverse", "axis 0 [::-1] (start -1, end -INT64_MAX, step -1) of [5,3]", (5, 3), [-1],
             [-INT64_MAX], axes=[0], steps=[-1])
    yield sl("neg_step2", "axis 1 [7:0:-2] of [2,9]", (2, 9), [7], [0], axes=[1], steps=[-2])
    yield sl("clamped_ends", "ends INT64_MAX and starts -100 are clamped", (3, 7), [-100, 2], [INT64_MAX, 100],
             axes=[0, 1])
    yield sl("empty_axis_omitted_steps", "steps given, axes omitted (''), [0:2, 1:4:3]", (3, 5), [0, 1], [2, 4],
             steps=[1, 3])

    def ga(variant, desc, shape, idx, axis):
        return Case("Gather", variant, desc, {"X": u(r, shape)}, {"indices": i64(idx)}, attrs={"axis": axis})

    yield ga("axis0", "axis 0, indices [3,0,3] of [5,3]", (5, 3), [3, 0, 3], 0)
    yield ga("axis1_2d_indices", "axis 1, 2-D indices of [3,7,2]", (3, 7, 2), [[0, 2], [6, 1]], 1)
    yield ga("negative_indices", "negative indices [-1,-3] on axis 0 of [4,5]", (4, 5), [-1, -3], 0)
    yield ga("scalar_index_neg_axis", "scalar index 2 on axis -1 (rank drops)", (3, 5), 2, -1)

    yield Case("Expand", "column", "[3,1] -> [3,4]", {"X": u(r, (3, 1))}, {"shape": i64([3, 4])})
    yield Case("Expand", "rank_increase", "[1] -> [2,3,5]", {"X": u(r, (1,))}, {"shape": i64([2, 3, 5])})
    yield Case("Expand", "both_ways", "[2,1,7] with shape [3,1,1,1] -> [3,2,1,7]", {"X": u(r, (2, 1, 7))},
               {"shape": i64([3, 1, 1, 1])})

    yield Case("Identity", "3d", "[2,3,5]", {"X": u(r, (2, 3, 5))})
    yield Case("Dropout", "default", "inference: identity", {"X": u(r, (2, 7))})
    yield Case("Dropout", "ratio_input", "ratio 0.3 as initializer, inference: identity", {"X": u(r, (3, 5))},
               {"ratio": np.array(0.3, F32)})
    yield Case("Dropout", "with_mask", "mask output (all true in inference)", {"X": u(r, (13,))}, n_out=2,
               out_types=[TensorProto.FLOAT, TensorProto.BOOL])


def gen_cast(r):
    def frac_floats(shape):
        # integers +- a fractional part in [0.2, 0.8]: truncation is never at a tie
        k = r.integers(-20, 20, shape)
        f = r.uniform(0.2, 0.8, shape)
        return (k + f).astype(F32)

    yield Case("Cast", "float_to_int64", "truncation toward zero", {"X": frac_floats((3, 7))},
               attrs={"to": TensorProto.INT64}, out_types=[TensorProto.INT64])
    yield Case("Cast", "float_to_int32", "truncation toward zero", {"X": frac_floats((13,))},
               attrs={"to": TensorProto.INT32}, out_types=[TensorProto.INT32])
    yield Case("Cast", "int64_to_float", "int64 -> float", {"X": r.integers(-1000, 1000, (2, 5)).astype(I64)},
               attrs={"to": TensorProto.FLOAT}, out_types=[TensorProto.FLOAT])
    x = u(r, (17,))
    x[::4] = 0.0
    yield Case("Cast", "float_to_bool", "non-zero -> true (every 4th element is 0)", {"X": x},
               attrs={"to": TensorProto.BOOL}, out_types=[TensorProto.BOOL])
    yield Case("Cast", "bool_to_float", "bool -> float", {"X": r.random((3, 5)) < 0.5},
               attrs={"to": TensorProto.FLOAT}, out_types=[TensorProto.FLOAT])
    yield Case("Cast", "float_to_float", "no-op cast", {"X": u(r, (5,))}, attrs={"to": TensorProto.FLOAT})


def gen_pad(r):
    def pd(variant, desc, shape, pads, mode=None, value=None):
        inits = {"pads": i64(pads)}
        if value is not None:
            inits["value"] = np.array(value, F32)
        attrs = {} if mode is None else {"mode": mode}
        return Case("Pad", variant, desc, {"X": u(r, shape)}, inits, attrs=attrs)

    yield pd("constant_value", "constant 0.5, NCHW pads [0,0,1,2,0,0,2,1]", (1, 2, 3, 5), [0, 0, 1, 2, 0, 0, 2, 1],
             "constant", 0.5)
    yield pd("constant_default_zero", "default mode, no value input (zeros)", (3, 7), [1, 0, 0, 3])
    yield pd("constant_negative", "negative pads crop: [-1,1,0,-2]", (4, 6), [-1, 1, 0, -2], "constant", 0.0)
    yield pd("reflect", "reflect, pads 2 on 5x5", (1, 2, 5, 5), [0, 0, 2, 2, 0, 0, 2, 2], "reflect")
    yield pd("reflect_1d", "reflect 1-D [3,1] on 7", (7,), [3, 1], "reflect")
    yield pd("edge", "edge pads [1,3,2,0] on [2,7]", (2, 7), [1, 3, 2, 0], "edge")


def gen_resize(r):
    def rz(variant, desc, shape, scales=None, sizes=None, **attrs):
        inits = {}
        names = ["X", ""]  # roi omitted
        if scales is not None:
            inits["scales"] = np.asarray(scales, F32)
            names.append("scales")
        else:
            names.append("")
            inits["sizes"] = i64(sizes)
            names.append("sizes")
        return Case("Resize", variant, desc, {"X": u(r, shape)}, inits, attrs=attrs, node_inputs=names)

    yield rz("nearest_asym_floor_x2", "nearest, asymmetric, floor, scales 2 (torch Upsample nearest)",
             (1, 2, 3, 5), scales=[1, 1, 2, 2], mode="nearest", coordinate_transformation_mode="asymmetric",
             nearest_mode="floor")
    yield rz("nearest_asym_floor_x3_sizes", "nearest asymmetric floor, sizes 3x in H only", (1, 1, 3, 4),
             sizes=[1, 1, 9, 4], mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    yield rz("nearest_default_x2", "nearest with default modes (half_pixel, round_prefer_floor), scales 2",
             (1, 2, 3, 3), scales=[1, 1, 2, 2], mode="nearest")
    yield rz("linear_half_pixel_x2", "linear, half_pixel, scales 2", (1, 2, 3, 5), scales=[1, 1, 2, 2],
             mode="linear", coordinate_transformation_mode="half_pixel")
    yield rz("linear_half_pixel_sizes", "linear, half_pixel, sizes [1,2,5,7] from 3x4 (non-integer ratio)",
             (1, 2, 3, 4), sizes=[1, 2, 5, 7], mode="linear", coordinate_transformation_mode="half_pixel")
    yield rz("linear_half_pixel_down", "linear, half_pixel, scales 0.5 (downsample)", (1, 1, 6, 8),
             scales=[1, 1, 0.5, 0.5], mode="linear", coordinate_transformation_mode="half_pixel")


def gen_reduce(r):
    for op in ("ReduceMean", "ReduceMax", "ReduceL2"):
        yield Case(op, "neg_axis_keepdims", "axes [-1] keepdims 1 on [2,3,17]", {"X": u(r, (2, 3, 17))},
                   attrs={"axes": [-1], "keepdims": 1})
        yield Case(op, "axis1_no_keepdims", "axes [1] keepdims 0 on [2,5,3]", {"X": u(r, (2, 5, 3))},
                   attrs={"axes": [1], "keepdims": 0})
        yield Case(op, "multi_axes", "axes [0,2] keepdims 1 on [3,4,5]", {"X": u(r, (3, 4, 5))},
                   attrs={"axes": [0, 2], "keepdims": 1})
        yield Case(op, "all_axes", "no axes (reduce all), keepdims 0, [7,13]", {"X": u(r, (7, 13))},
                   attrs={"keepdims": 0})
    yield Case("ReduceMean", "spatial_hw", "axes [2,3] keepdims 1 (GAP form) on [1,3,5,7]",
               {"X": u(r, (1, 3, 5, 7))}, attrs={"axes": [2, 3], "keepdims": 1})
    yield Case("ReduceSum", "neg_axis_no_keepdims", "axes input [-1], keepdims 0, [2,3,17]", {"X": u(r, (2, 3, 17))},
               {"axes": i64([-1])}, attrs={"keepdims": 0})
    yield Case("ReduceSum", "axis0_keepdims", "axes input [0], keepdims 1, [5,3]", {"X": u(r, (5, 3))},
               {"axes": i64([0])}, attrs={"keepdims": 1})
    yield Case("ReduceSum", "no_axes_keepdims", "no axes input: reduce all, keepdims 1, [3,7]",
               {"X": u(r, (3, 7))}, attrs={"keepdims": 1})
    yield Case("ReduceSum", "multi_axes", "axes input [2,0], keepdims 0, [3,4,5]", {"X": u(r, (3, 4, 5))},
               {"axes": i64([2, 0])}, attrs={"keepdims": 0})


def gen_logic(r):
    yield Case("Where", "same_shape", "cond/X/Y all [3,5]",
               {"C": r.random((3, 5)) < 0.5, "X": u(r, (3, 5)), "Y": u(r, (3, 5))}, out_types=[TensorProto.FLOAT])
    yield Case("Where", "broadcast", "cond [5], X scalar initializer, Y [3,1]",
               {"C": r.random((5,)) < 0.5, "Y": u(r, (3, 1))}, {"X": np.array(1.5, F32)},
               node_inputs=["C", "X", "Y"], out_types=[TensorProto.FLOAT])
    yield Case("Where", "int64", "int64 values, cond [2,1]",
               {"C": np.array([[True], [False]]), "X": r.integers(-9, 9, (2, 3)).astype(I64),
                "Y": r.integers(-9, 9, (2, 3)).astype(I64)}, out_types=[TensorProto.INT64])
    b = TensorProto.BOOL
    a = u(r, (3, 7))
    bb = u(r, (3, 7))
    bb[:, ::2] = a[:, ::2]  # exact equality in half the columns
    yield Case("Equal", "float_some_equal", "float, half the entries exactly equal", {"A": a, "B": bb},
               out_types=[b])
    yield Case("Equal", "int64_broadcast", "int64 [3,4] vs [4]", {"A": r.integers(0, 3, (3, 4)).astype(I64)},
               {"B": r.integers(0, 3, (4,)).astype(I64)}, out_types=[b])
    a = u(r, (2, 17))
    bb = u(r, (17,))
    a[0, :5] = bb[:5]  # ties: Greater/Less must say false
    yield Case("Greater", "row_broadcast_ties", "[2,17] > [17] with some exact ties", {"A": a, "B": bb},
               out_types=[b])
    yield Case("Greater", "scalar", "[13] > scalar 0.25", {"A": away(u(r, (13,)), (0.25,))},
               {"B": np.array(0.25, F32)}, out_types=[b])
    yield Case("Less", "column_broadcast", "[3,5] < [3,1]", {"A": u(r, (3, 5)), "B": u(r, (3, 1))}, out_types=[b])
    yield Case("Less", "int64", "int64 [7] < [7] with ties", {"A": r.integers(0, 4, (7,)).astype(I64),
                                                              "B": r.integers(0, 4, (7,)).astype(I64)},
               out_types=[b])
    yield Case("And", "same_shape", "bool [3,5]", {"A": r.random((3, 5)) < 0.5, "B": r.random((3, 5)) < 0.5},
               out_types=[b])
    yield Case("And", "broadcast", "bool [2,1,4] and [3,1]", {"A": r.random((2, 1, 4)) < 0.5,
                                                              "B": r.random((3, 1)) < 0.5}, out_types=[b])


def gen_rnn(r):
    def rnn(op, variant, desc, seq, batch, inp, hid, dirs, with_bias=True, with_state=False, lens=None, **attrs):
        g = {"LSTM": 4, "GRU": 3, "RNN": 1}[op]
        bound = 1.0 / np.sqrt(hid)
        inputs = {"X": u(r, (seq, batch, inp))}
        inits = {"W": u(r, (dirs, g * hid, inp), -bound, bound), "R": u(r, (dirs, g * hid, hid), -bound, bound)}
        names = ["X", "W", "R"]
        if with_bias:
            inits["B"] = u(r, (dirs, 2 * g * hid), -bound, bound)
            names.append("B")
        elif with_state or lens is not None:
            names.append("")
        if lens is not None:
            inputs["sequence_lens"] = np.array(lens, np.int32)  # a run-time input
            names.append("sequence_lens")
        elif with_state:
            names.append("")  # sequence_lens omitted
        if with_state:
            inputs["initial_h"] = u(r, (dirs, batch, hid), -0.5, 0.5)
            names.append("initial_h")
            if op == "LSTM":
                inputs["initial_c"] = u(r, (dirs, batch, hid), -0.5, 0.5)
                names.append("initial_c")
        if dirs == 2:
            attrs["direction"] = "bidirectional"
        return Case(op, variant, desc, inputs, inits, attrs={"hidden_size": hid, **attrs}, node_inputs=names,
                    n_out=3 if op == "LSTM" else 2)

    yield rnn("LSTM", "forward", "forward, seq 5, batch 2, input 3, hidden 5, zero initial state", 5, 2, 3, 5, 1)
    yield rnn("LSTM", "forward_initial_state", "forward with initial_h/initial_c inputs", 4, 1, 7, 4, 1,
              with_state=True)
    yield rnn("LSTM", "forward_no_bias", "forward, B omitted", 3, 1, 4, 3, 1, with_bias=False)
    yield rnn("LSTM", "bidirectional", "bidirectional, seq 6, batch 1, input 5, hidden 3", 6, 1, 5, 3, 2)
    yield rnn("LSTM", "bidirectional_initial_state", "bidirectional with initial states, batch 2", 4, 2, 3, 4, 2,
              with_state=True)
    yield rnn("GRU", "forward_lbr1", "forward, linear_before_reset 1 (PyTorch), seq 5, batch 2", 5, 2, 3, 5, 1,
              linear_before_reset=1)
    yield rnn("GRU", "forward_lbr0", "forward, linear_before_reset 0 (ONNX default)", 5, 1, 4, 3, 1)
    yield rnn("GRU", "forward_initial_state", "forward with initial_h input, linear_before_reset 1", 4, 1, 7, 4, 1,
              with_state=True, linear_before_reset=1)
    yield rnn("GRU", "bidirectional", "bidirectional, linear_before_reset 1", 6, 1, 5, 3, 2, linear_before_reset=1)
    yield rnn("GRU", "bidirectional_initial_state", "bidirectional with initial_h, batch 2, no bias", 4, 2, 3, 4, 2,
              with_bias=False, with_state=True, linear_before_reset=1)
    # appended last: the draws of the cases above stay the same
    yield rnn("LSTM", "forward_clip", "forward, clip 0.5 (saturates most gates), hidden 6, batch 3", 4, 3, 5, 6, 1,
              clip=0.5)
    yield rnn("RNN", "forward", "simple RNN (tanh), seq 5, batch 2, input 3, hidden 5", 5, 2, 3, 5, 1)
    yield rnn("RNN", "bidirectional_initial_state", "bidirectional, Relu / Tanh, initial_h, batch 2, hidden 7",
              4, 2, 3, 7, 2, with_state=True, activations=["Relu", "Tanh"])
    yield rnn("RNN", "reverse_no_bias", "reverse, B omitted, clip 1.0, hidden 4", 6, 1, 4, 4, 1, with_bias=False,
              direction="reverse", clip=1.0)
    # run-time sequence_lens: rows past their length keep their state, Y is 0 there
    yield rnn("LSTM", "bidirectional_sequence_lens", "bidirectional, run-time lengths [5, 2, 3], hidden 5",
              5, 3, 4, 5, 2, lens=[5, 2, 3])
    yield rnn("LSTM", "forward_sequence_lens", "forward, initial state, lengths [1, 4, 3, 2], hidden 8", 4, 4, 3, 8, 1,
              with_state=True, lens=[1, 4, 3, 2])
    yield rnn("GRU", "reverse_sequence_lens", "reverse, linear_before_reset 0, lengths [3, 1]", 4, 2, 3, 6, 1,
              direction="reverse", lens=[3, 1])
    yield rnn("RNN", "forward_sequence_lens", "forward, lengths [2, 3, 1]", 3, 3, 2, 4, 1, lens=[2, 3, 1])


def gen_nn_c(r):
    """3-D pooling and convolution, GridSample, DFT, antialiased Resize, Col2Im."""
    yield Case("MaxPool", "3d_pads_strides_dilation", "3-D k[2,3,2] strides [1,2,2] dilations [2,1,1] pads 1, ceil",
               {"X": u(r, (1, 2, 5, 6, 7))}, attrs=dict(kernel_shape=[2, 3, 2], strides=[1, 2, 2],
                                                      dilations=[2, 1, 1], pads=[1, 1, 0, 0, 1, 1], ceil_mode=1))
    yield Case("AveragePool", "3d_include_pad", "3-D k3 stride 2 pads 1, count_include_pad 1",
               {"X": u(r, (2, 3, 5, 5, 6))}, attrs=dict(kernel_shape=[3, 3, 3], strides=[2, 2, 2],
                                                      pads=[1, 1, 1, 1, 1, 1], count_include_pad=1))
    w3 = (r.standard_normal((4, 1, 2, 3, 3)) * 0.4).astype(F32)
    yield Case("Conv", "3d_groups2_stride", "3-D conv, group 2, strides [1,2,1], pads 1",
               {"X": u(r, (1, 2, 4, 7, 5))}, {"W": w3, "B": u(r, (4,), -0.5, 0.5)},
               attrs=dict(group=2, strides=[1, 2, 1], pads=[1, 1, 1, 1, 1, 1]))
    wt = (r.standard_normal((2, 3, 2, 3, 2)) * 0.4).astype(F32)
    yield Case("ConvTranspose", "3d_stride2", "3-D transposed conv, strides 2, pads [0,1,0,0,1,1]",
               {"X": u(r, (1, 2, 3, 3, 4))}, {"W": wt, "B": u(r, (3,), -0.5, 0.5)},
               attrs=dict(strides=[2, 2, 2], pads=[0, 1, 0, 0, 1, 1]))

    def gs(variant, desc, xshape, gshape, opset=16, **attrs):
        grid = u(r, gshape, -1.15, 1.15)
        return Case("GridSample", variant, desc, {"X": u(r, xshape), "grid": grid}, attrs=attrs, opset=opset)

    yield gs("bilinear_zeros", "bilinear, zeros padding, align_corners 0", (2, 3, 5, 7), (2, 4, 6, 2))
    yield gs("bicubic_zeros_align", "bicubic, zeros padding, align_corners 1", (1, 2, 6, 5), (1, 3, 7, 2),
             mode="bicubic", align_corners=1)
    # Bicubic with border padding only inside the grid range: outside it ONNX Runtime (like PyTorch)
    # clamps each tap while the ONNX reference clamps the location first; kerf follows the reference.
    yield Case("GridSample", "bicubic_border_inside", "bicubic, border padding, grid within [-1, 1]",
               {"X": u(r, (1, 2, 5, 6)), "grid": u(r, (1, 4, 3, 2), -1.0, 1.0)}, opset=16,
               attrs=dict(mode="bicubic", padding_mode="border"))
    yield gs("nearest_reflection", "nearest, reflection padding", (1, 3, 4, 6), (1, 5, 5, 2),
             mode="nearest", padding_mode="reflection")
    yield gs("bilinear_reflection_align", "bilinear, reflection padding, align_corners 1", (1, 2, 5, 4),
             (1, 6, 3, 2), padding_mode="reflection", align_corners=1)

    def dft(variant, desc, x, opset=17, **attrs):
        return Case("DFT", variant, desc, {"X": x}, attrs=attrs, opset=opset)

    yield dft("real_onesided", "real input [2,13,1], axis 1, onesided", u(r, (2, 13, 1)), axis=1, onesided=1)
    yield dft("complex_inverse_axis2", "complex input [2,3,6,2], axis 2, inverse", u(r, (2, 3, 6, 2)), axis=2,
              inverse=1)
    yield Case("Resize", "linear_antialias_down", "linear antialias, scales [1,1,0.6,0.45]",
               {"X": u(r, (1, 2, 7, 9))}, {"scales": np.asarray([1, 1, 0.6, 0.45], F32)}, opset=18,
               attrs=dict(mode="linear", antialias=1), node_inputs=["X", "", "scales"])
    yield Case("Col2Im", "strides_pads_dilations", "Col2Im 2-D, block 2x3, strides 2, dilations [1,2], pads 1",
               {"X": u(r, (1, 2 * 6, 9))},
               {"image_shape": i64([5, 7]), "block_shape": i64([2, 3])}, opset=18,
               attrs=dict(strides=[2, 2], dilations=[1, 2], pads=[1, 1, 1, 1]))
    # MaxUnpool: distinct flat indices into the inferred [2, 3, 6, 5] (per plane, as MaxPool makes them).
    idx = np.stack([r.choice(30, 9, replace=False) + 30 * p for p in range(6)]).reshape(2, 3, 3, 3).astype(I64)
    # No output_shape: with one, ONNX Runtime indexes the output_shape tensor while the ONNX reference
    # and backend test data (which kerf follows) index the inferred shape and pad it at the end.
    yield Case("MaxUnpool", "2d_stride2_pads", "MaxUnpool k2 s2 pads [0,0,0,1]",
               {"X": u(r, (2, 3, 3, 3)), "I": idx},
               attrs=dict(kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 0, 1]))


def gen_int_math_index(r):
    """Integer bit ops, inverse trig/hyperbolic functions, TopK, ScatterND, GatherND and Einsum."""
    u8 = np.uint8
    yield Case("BitShift", "left_uint8", "uint8 << [0..7] with broadcasting", {
        "X": r.integers(0, 256, (3, 5)).astype(u8), "Y": r.integers(0, 8, (5,)).astype(u8)},
        attrs={"direction": "LEFT"}, opset=18)
    yield Case("BitShift", "right_uint32", "uint32 >> [0..31]", {
        "X": r.integers(0, 2**32, (2, 9)).astype(np.uint32), "Y": r.integers(0, 32, (2, 9)).astype(np.uint32)},
        attrs={"direction": "RIGHT"}, opset=18)
    yield Case("BitwiseAnd", "int32_broadcast", "int32 [3,4] & [4]", {
        "A": r.integers(-2**31, 2**31, (3, 4)).astype(np.int32), "B": r.integers(-2**31, 2**31, (4,)).astype(np.int32)},
        opset=18)
    yield Case("BitwiseXor", "uint16", "uint16 ^", {
        "A": r.integers(0, 2**16, (11,)).astype(np.uint16), "B": r.integers(0, 2**16, (11,)).astype(np.uint16)},
        opset=18)
    yield Case("BitwiseNot", "int64", "~int64", {"X": r.integers(-2**62, 2**62, (2, 7)).astype(I64)}, opset=18)
    for op, lo, hi in [("Tan", -1.5, 1.5), ("Asin", -0.999, 0.999), ("Acos", -0.999, 0.999), ("Atan", -20, 20),
                       ("Sinh", -9, 9), ("Cosh", -9, 9), ("Asinh", -50, 50), ("Acosh", 1.0, 60),
                       ("Atanh", -0.999, 0.999)]:
        yield Case(op, "n2x3x17", f"{op} on [2,3,17] in [{lo}, {hi}]", {"X": u(r, (2, 3, 17), lo, hi)}, opset=18)
    yield Case("Tan", "wide", "Tan on [-100, 100] (several periods; values away from the poles)",
               {"X": away(u(r, (41,), -100, 100), tuple(np.pi * (k + 0.5) for k in range(-33, 33)), 0.05)}, opset=18)
    yield Case("TopK", "largest_axis1", "TopK k=3 of [3,7] along axis 1 (largest, sorted)",
               {"X": u(r, (3, 7))}, {"K": i64([3])}, attrs={"axis": 1}, n_out=2,
               out_types=[TensorProto.FLOAT, TensorProto.INT64], opset=18)
    x = r.integers(0, 4, (4, 6)).astype(I64)
    yield Case("TopK", "smallest_ties_axis0", "TopK k=2 smallest of int64 [4,6] with ties, axis 0",
               {"X": x}, {"K": i64([2])}, attrs={"axis": 0, "largest": 0}, n_out=2,
               out_types=[TensorProto.INT64, TensorProto.INT64], opset=18)
    yield Case("ScatterND", "add_slices", "ScatterND add: 3 index rows into [5,4,3] (one duplicate)",
               {"data": u(r, (5, 4, 3)), "updates": u(r, (3, 4, 3))}, {"indices": i64([[1], [4], [1]])},
               node_inputs=["data", "indices", "updates"], attrs={"reduction": "add"}, opset=18)
    yield Case("ScatterND", "none_elements", "ScatterND: element indices into [4,5] (negative index)",
               {"data": u(r, (4, 5)), "updates": u(r, (3,))}, {"indices": i64([[0, 1], [3, -1], [2, 2]])},
               node_inputs=["data", "indices", "updates"], opset=18)
    yield Case("GatherND", "batch_dims1", "GatherND batch_dims 1: [2,3,4] with [2,2,1]",
               {"data": u(r, (2, 3, 4))}, {"indices": i64([[[2], [0]], [[1], [1]]])},
               node_inputs=["data", "indices"], attrs={"batch_dims": 1}, opset=18)
    yield Case("Einsum", "batch_matmul", "Einsum bij,bjk->bik", {"A": u(r, (2, 3, 4)), "B": u(r, (2, 4, 5))},
               attrs={"equation": "bij,bjk->bik"}, opset=18)
    yield Case("Einsum", "trace_outer", "Einsum ii,j->j (trace times vector)", {"A": u(r, (4, 4)), "B": u(r, (3,))},
               attrs={"equation": "ii,j->j"}, opset=18)
    yield Case("Einsum", "ellipsis_implicit", "Einsum ...ij,jk (implicit output)", {
        "A": u(r, (2, 3, 4)), "B": u(r, (4, 2))}, attrs={"equation": "...ij,jk"}, opset=18)
    # f64 and fmod paths (ONNX Runtime has float Mod only with fmod=1)
    f64 = np.float64
    yield Case("Mod", "fmod_f32", "fmod f32 with mixed signs and large quotients", {
        "A": signed_mag(r, (3, 11), 0.5, 3000.0), "B": signed_mag(r, (11,), 0.3, 3.0)}, attrs={"fmod": 1}, opset=18)
    yield Case("Mod", "fmod_f64", "fmod f64 with mixed signs", {
        "A": signed_mag(r, (2, 9), 0.5, 1e6).astype(f64), "B": signed_mag(r, (2, 9), 0.3, 7.0).astype(f64)},
        attrs={"fmod": 1}, opset=18)
    yield Case("Exp", "f64", "Exp on f64 [-30, 30]", {"X": r.uniform(-30, 30, (4, 9)).astype(f64)}, opset=18)
    yield Case("ReduceLogSumExp", "f64_axis1", "ReduceLogSumExp f64 over axis 1 (values up to 700)",
               {"X": r.uniform(-50, 700, (3, 5, 4)).astype(f64)}, {"axes": i64([1])}, attrs={"keepdims": 0},
               opset=18)


def gen_quant(r):
    """Quantisation ops with 8-bit graph I/O (the narrow float8/int4 kernels have no .npy form; their
    node cases run cross-ISA in onnx_backend_cross). Float inputs sit at (k + f) * scale with f in
    [0.2, 0.8], away from the rounding ties."""
    U8, I8 = np.uint8, np.int8
    x = r.integers(0, 256, (1, 28, 10, 10)).astype(U8)
    w = r.integers(0, 256, (8, 28, 3, 3)).astype(U8)
    yield Case("ConvInteger", "u8_3x3_k252",
               "constant 3x3 stride-1 u8 weights (the shape the winograd rule takes), reduction 252: exact int32",
               {"x": x}, {"w": w, "x_zero_point": np.array(128, U8), "w_zero_point": np.array(100, U8)},
               attrs={"pads": [1, 1, 1, 1]}, node_inputs=["x", "w", "x_zero_point", "w_zero_point"],
               out_types=[TensorProto.INT32])
    wq = r.integers(-128, 128, (6, 28, 3, 3)).astype(I8)
    yield Case("QLinearConv", "u8_i8_per_channel",
               "u8 input, i8 per-channel weights, 3x3 pads 1, u8 output",
               {"x": x}, {"x_scale": np.array(0.02, F32), "x_zero_point": np.array(128, U8), "w": wq,
                          "w_scale": r.uniform(0.001, 0.004, (6,)).astype(F32), "w_zero_point": np.zeros(6, I8),
                          "y_scale": np.array(0.5, F32), "y_zero_point": np.array(120, U8)},
               attrs={"pads": [1, 1, 1, 1]},
               node_inputs=["x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale", "y_zero_point"],
               out_types=[TensorProto.UINT8])
    yield Case("QLinearMatMul", "u8_3d", "u8 [2,5,37] x [37,7], per-tensor scales",
               {"a": r.integers(0, 256, (2, 5, 37)).astype(U8)},
               {"a_scale": np.array(0.03, F32), "a_zero_point": np.array(110, U8),
                "b": r.integers(0, 256, (37, 7)).astype(U8), "b_scale": np.array(0.02, F32),
                "b_zero_point": np.array(130, U8), "y_scale": np.array(0.4, F32), "y_zero_point": np.array(100, U8)},
               node_inputs=["a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point", "y_scale", "y_zero_point"],
               out_types=[TensorProto.UINT8])
    yield Case("MatMulInteger", "u8_13x37x5", "u8 x u8 with zero points -> int32",
               {"A": r.integers(0, 256, (13, 37)).astype(U8), "B": r.integers(0, 256, (37, 5)).astype(U8)},
               {"a_zero_point": np.array(7, U8), "b_zero_point": np.array(200, U8)},
               node_inputs=["A", "B", "a_zero_point", "b_zero_point"], out_types=[TensorProto.INT32])
    scale = np.array([0.05, 0.2, 0.01], F32)
    k = r.integers(-100, 100, (2, 3, 17)) + r.uniform(0.2, 0.8, (2, 3, 17))
    yield Case("QuantizeLinear", "i8_per_axis", "f32 -> i8 per-axis (axis 1), zero points, saturating",
               {"x": (k * scale.reshape(1, 3, 1)).astype(F32)},
               {"y_scale": scale, "y_zero_point": np.array([0, 5, -7], I8)}, attrs={"axis": 1},
               node_inputs=["x", "y_scale", "y_zero_point"], out_types=[TensorProto.INT8])
    k = r.integers(-40, 300, (41,)) + r.uniform(0.2, 0.8, (41,))
    yield Case("QuantizeLinear", "u8_tensor", "f32 -> u8 per-tensor (clamps at 0 and 255)",
               {"x": (k * 0.1).astype(F32)}, {"y_scale": np.array(0.1, F32), "y_zero_point": np.array(3, U8)},
               node_inputs=["x", "y_scale", "y_zero_point"], out_types=[TensorProto.UINT8])
    yield Case("DequantizeLinear", "i8_per_axis", "i8 -> f32 per-axis (axis 1) with zero points",
               {"x": r.integers(-128, 128, (2, 3, 13)).astype(I8)},
               {"x_scale": np.array([0.05, 0.2, 0.01], F32), "x_zero_point": np.array([0, 5, -7], I8)},
               attrs={"axis": 1}, node_inputs=["x", "x_scale", "x_zero_point"], out_types=[TensorProto.FLOAT])
    # reductions past 258, where one f32 accumulation would no longer be exact: chunked
    yield Case("MatMulInteger", "u8_k600", "u8 [3,600] x [600,4], sums ~3e7 > 2^24: reduction in int32-summed chunks",
               {"A": r.integers(200, 256, (3, 600)).astype(U8), "B": r.integers(200, 256, (600, 4)).astype(U8)},
               {"a_zero_point": np.array(0, U8), "b_zero_point": np.array(1, U8)},
               node_inputs=["A", "B", "a_zero_point", "b_zero_point"], out_types=[TensorProto.INT32])
    yield Case("QLinearMatMul", "u8_k600", "u8 [2,3,600] x [600,5], chunked reduction, requantised",
               {"a": r.integers(0, 256, (2, 3, 600)).astype(U8)},
               {"a_scale": np.array(0.01, F32), "a_zero_point": np.array(128, U8),
                "b": r.integers(0, 256, (600, 5)).astype(U8), "b_scale": np.array(0.01, F32),
                "b_zero_point": np.array(128, U8), "y_scale": np.array(2.0, F32), "y_zero_point": np.array(128, U8)},
               node_inputs=["a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point", "y_scale", "y_zero_point"],
               out_types=[TensorProto.UINT8])
    yield Case("ConvInteger", "u8_c64_k576", "64 channels 3x3 (reduction 576, sums ~3e7 > 2^24): channel chunks summed in int32",
               {"x": r.integers(200, 256, (1, 64, 6, 6)).astype(U8)},
               {"w": r.integers(200, 256, (4, 64, 3, 3)).astype(U8), "x_zero_point": np.array(0, U8),
                "w_zero_point": np.array(1, U8)},
               attrs={"pads": [1, 1, 1, 1]}, node_inputs=["x", "w", "x_zero_point", "w_zero_point"],
               out_types=[TensorProto.INT32])


FAMILIES = [gen_conv, gen_conv_transpose, gen_gemm, gen_matmul, gen_binary, gen_unary, gen_clip, gen_gelu,
            gen_softmax, gen_norm, gen_pool, gen_shape_ops, gen_cast, gen_pad, gen_resize, gen_reduce, gen_logic,
            gen_rnn, gen_nn_c, gen_int_math_index, gen_quant]


def all_cases() -> list[Case]:
    cases = []
    for fam in FAMILIES:
        r = np.random.default_rng(zlib.crc32(fam.__name__.encode()))
        cases.extend(fam(r))
    for c in cases:
        if c.op == "MaxPool" and c.variant == "all_negative":
            c.inputs["X"] = -np.abs(c.inputs["X"]) - 0.1
    names = [c.dirname for c in cases]
    dup = {n for n in names if names.count(n) > 1}
    assert not dup, f"duplicate case names: {sorted(dup)}"
    return cases


# ------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------
def _elem(arr: np.ndarray) -> int:
    return helper.np_dtype_to_tensor_dtype(arr.dtype)


def build_model(c: Case, out_shapes=None) -> onnx.ModelProto:
    node_inputs = c.node_inputs if c.node_inputs is not None else list(c.inputs) + list(c.inits)
    outs = ["out"] if c.n_out == 1 else [f"out_{i}" for i in range(c.n_out)]
    node = helper.make_node(c.op, node_inputs, outs, name=f"{c.op}_0", **c.attrs)
    first = next(iter(c.inputs.values()))
    types = c.out_types or [_elem(first)] * c.n_out
    if out_shapes is None:
        out_shapes = [None] * c.n_out
    graph = helper.make_graph(
        [node], c.dirname,
        [helper.make_tensor_value_info(k, _elem(v), list(v.shape)) for k, v in c.inputs.items()],
        [helper.make_tensor_value_info(o, t, s) for o, t, s in zip(outs, types, out_shapes)],
        initializer=[common.tensor(k, v) for k, v in c.inits.items()])
    m = helper.make_model(graph, producer_name="kerf-testsuite make_op_battery.py", producer_version="1",
                          opset_imports=[helper.make_opsetid("", c.opset)])
    m.ir_version = 8 if c.opset <= 17 else 9
    return m


def write_case(out_dir: str, c: Case) -> int:
    feeds = dict(c.inputs)
    ys = common.run(build_model(c), feeds)
    model = build_model(c, [list(y.shape) for y in ys])
    common.check(model)
    ys2 = common.run(model, feeds)
    for a, b in zip(ys, ys2):
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), c.dirname
    d = common.ensure_dir(os.path.join(out_dir, c.dirname))
    total = common.save_model(model, os.path.join(d, "model.onnx"))
    files = [(f"input_{i}.npy", v) for i, v in enumerate(c.inputs.values())]
    files += [(f"output_{i}.npy", y) for i, y in enumerate(ys)]
    for fname, arr in files:
        p = os.path.join(d, fname)
        common.save_npy(p, arr)
        total += os.path.getsize(p)
    with open(os.path.join(d, "case.json"), "w") as f:
        f.write(json.dumps({"op": c.op, "opset": c.opset, "description": c.description}) + "\n")
    total += os.path.getsize(os.path.join(d, "case.json"))
    return total


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: make_op_battery.py OUT_DIR", file=sys.stderr)
        return 2
    out_dir = argv[1]
    t0 = time.time()
    cases = all_cases()
    # Remove stale case folders so a renamed case does not leave its old copy behind.
    if os.path.isdir(out_dir):
        keep = {c.dirname for c in cases}
        for name in os.listdir(out_dir):
            p = os.path.join(out_dir, name)
            if os.path.isdir(p) and name not in keep and os.path.exists(os.path.join(p, "case.json")):
                shutil.rmtree(p)
    total = 0
    ops = set()
    for c in cases:
        try:
            total += write_case(out_dir, c)
        except Exception as e:
            raise RuntimeError(f"case {c.dirname}: {e}") from e
        ops.add(c.op)
    print(f"{len(cases)} cases over {len(ops)} ops, {total / 1024:.1f} KiB of files, {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
