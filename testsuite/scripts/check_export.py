#!/usr/bin/env python3
"""Checks a model written by `kerf compress` with ONNX Runtime: it loads,
runs the labelled test set, and its outputs agree with kerf's own run of
the same compression (`kerf eval ... --save-outputs kerf.npy` prints top-1
and writes kerf's logits).

Logits are compared against the file's QDQ semantics: ORT with graph
optimisations off, where QuantizeLinear / DequantizeLinear run as their
float definitions. The model's output comes from a product (Gemm, MatMul,
Conv) whose input is dequantised from one per-tensor grid (step `s_x`) and
whose weight is dequantised too; one quantisation step at the output is
then what one step of that input moves output `o` by at most,
`s_x * max_k |W[o, k]|`. kerf's integer kernels sum exactly and scale once,
ORT's float ops round every product: an intermediate value that lands
next to a rounding boundary may take the neighbouring code. In the head's
input that is the one step allowed; in an earlier layer the flipped code
travels through the layers after it and may move a logit a little further
(the int8 digits CNN: one of 450 samples, its worst logit 1.25 steps off,
every other logit within 0.001 of a step). So at most 0.1% of the logits
may differ by more than --max-steps, and none by more than twice that. ORT with its default optimisations (its own integer
kernels, which saturate u8 x s8 products on CPUs without VNNI) is reported
beside, not checked.

Usage: check_export.py MODEL.q.onnx TEST_X.npy TEST_Y.npy|- [--kerf-top1 T]
       [--min-top1 M] [--kerf-outputs kerf.npy] [--max-steps 1.0]
Exit 1 when ORT cannot load the model, top-1 is below --min-top1 or differs
from --kerf-top1 by more than 0.5 point, or the logits differ from kerf's
by more than the steps allowed above (or the output has no quantised
product to take the step from). TEST_Y `-`: no labels, logits only."""
import argparse
import sys

import numpy as np
import onnx
import onnxruntime as ort

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("x")
p.add_argument("y")
p.add_argument("--kerf-top1", type=float)
p.add_argument("--min-top1", type=float, default=0.0)
p.add_argument("--kerf-outputs")
p.add_argument("--max-steps", type=float, default=1.0)
a = p.parse_args()


def output_steps(m):
    """Per output channel, one step of the output's quantised product (see
    the module docs), or None where the output is not such a product."""
    by_out = {o: n for n in m.graph.node for o in n.output}
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    head = by_out.get(m.graph.output[0].name)
    if head is None or head.op_type not in ("Gemm", "MatMul", "Conv"):
        return None
    x_dq, w_dq = (by_out.get(v) for v in head.input[:2])
    if not x_dq or not w_dq or x_dq.op_type != "DequantizeLinear" or w_dq.op_type != "DequantizeLinear":
        return None
    s_x = inits.get(x_dq.input[1])
    w_q, s_w = inits.get(w_dq.input[0]), inits.get(w_dq.input[1])
    if s_x is None or s_x.size != 1 or w_q is None or s_w is None:
        return None
    axis = next((a.i for a in w_dq.attribute if a.name == "axis"), 1)
    w = w_q.astype(np.float64) * (s_w.reshape([-1 if i == axis else 1 for i in range(w_q.ndim)]) if s_w.size > 1 else s_w)
    trans_b = next((a.i for a in head.attribute if a.name == "transB"), 0)
    rows = w if head.op_type == "Conv" or trans_b else w.T  # [outputs, inputs...]
    return float(s_x.reshape(())) * np.abs(rows.reshape(rows.shape[0], -1)).max(axis=1)


m = onnx.load(a.model)
onnx.checker.check_model(m)
ops = sorted({n.op_type for n in m.graph.node})
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
s = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
plain = ort.SessionOptions()
plain.intra_op_num_threads = 1
plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
s_qdq = ort.InferenceSession(a.model, plain, providers=["CPUExecutionProvider"])
inp = s.get_inputs()[0]
x = np.load(a.x)
y = None if a.y == "-" else np.load(a.y)
shape = [d if isinstance(d, int) else 1 for d in inp.shape]
hits = 0
fused, qdq = [], []
for i in range(len(x)):
    out = s.run(None, {inp.name: x[i].reshape(shape)})[0]
    hits += int(y is not None and np.argmax(out) == y[i])
    fused.append(out)
    qdq.append(s_qdq.run(None, {inp.name: x[i].reshape(shape)})[0])
top1 = hits / len(x)
print(f"ops: {' '.join(ops)}")
if y is not None:
    print(f"ort top1: {top1:.4f}")
ok = top1 >= a.min_top1
if a.kerf_top1 is not None:
    print(f"kerf top1: {a.kerf_top1:.4f}")
    ok = ok and abs(top1 - a.kerf_top1) <= 0.005
if a.kerf_outputs:
    # [samples, output channels, pixels] (a Gemm head has one pixel)
    theirs = np.stack(qdq).astype(np.float64).reshape(len(x), qdq[0].shape[1], -1)
    ours = np.load(a.kerf_outputs).astype(np.float64)
    steps = output_steps(m)
    if steps is None or ours.size != theirs.size or steps.size != theirs.shape[1]:
        print(f"logits: no per-output step (output not a quantised product, or shapes {ours.shape} vs {theirs.shape})")
        ok = False
    else:
        ours = ours.reshape(theirs.shape)
        steps = steps[None, :, None]
        d = np.abs(ours - theirs) / steps
        worst = float(d.max())
        print(f"logits vs the QDQ semantics (ORT, optimisations off): max {worst:.3f} output steps, "
              f"{float((d <= 1e-3).mean()):.4f} of them within 0.001 of a step (steps {steps.min():.3g}..{steps.max():.3g})")
        f = np.abs(ours - np.stack(fused).astype(np.float64).reshape(theirs.shape)) / steps
        print(f"logits vs ORT's own integer kernels (reported, not checked): max {float(f.max()):.3f} output steps")
        over = float((d > a.max_steps).mean())
        print(f"logits past {a.max_steps} step(s): {over:.4%} (allowed: 0.1%, none past {2 * a.max_steps})")
        ok = ok and over <= 0.001 and worst <= 2 * a.max_steps
sys.exit(0 if ok else 1)
