#!/usr/bin/env python3
"""A model whose channel ranges are far apart, computing the same function.

For every pair of convs joined by a ReLU (A -> Relu -> B, A's output used once),
A's output channel i is multiplied by c_i and B's input channel i divided by it
(c_i log-uniform in [1/R, R], fixed seed), which ReLU's positive homogeneity
leaves exact up to f32 rounding. This is what folding BatchNorm into trained
convs does to depthwise-separable networks, and why a per-tensor int8 grid
collapses on them without cross-layer equalisation (`--equalize`).

Usage: make_unbalanced.py MODEL.onnx OUT.onnx [--range R] [--seed S]
"""

import argparse

import numpy as np
import onnx
from onnx import numpy_helper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--range", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    m = onnx.load(a.model)
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    users = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    rng = np.random.default_rng(a.seed)
    pairs = 0
    for n in g.node:
        if n.op_type != "Conv":
            continue
        (y,) = n.output
        if len(users.get(y, [])) != 1 or users[y][0].op_type != "Relu":
            continue
        relu = users[y][0]
        nxt = users.get(relu.output[0], [])
        if len(nxt) != 1 or nxt[0].op_type != "Conv":
            continue
        b = nxt[0]
        wa = numpy_helper.to_array(inits[n.input[1]]).copy()
        wb = numpy_helper.to_array(inits[b.input[1]]).copy()
        c = np.exp(rng.uniform(-np.log(a.range), np.log(a.range), wa.shape[0])).astype(np.float32)
        wa *= c.reshape(-1, *([1] * (wa.ndim - 1)))
        if len(n.input) > 2:
            ba = numpy_helper.to_array(inits[n.input[2]]).copy() * c
            inits[n.input[2]].CopyFrom(numpy_helper.from_array(ba.astype(np.float32), n.input[2]))
        group = next((at.i for at in b.attribute if at.name == "group"), 1)
        cg = wb.shape[1]
        mg = wb.shape[0] // group
        for o in range(wb.shape[0]):
            for ci in range(cg):
                wb[o, ci] /= c[(o // mg) * cg + ci]
        inits[n.input[1]].CopyFrom(numpy_helper.from_array(wa.astype(np.float32), n.input[1]))
        inits[b.input[1]].CopyFrom(numpy_helper.from_array(wb.astype(np.float32), b.input[1]))
        pairs += 1
    onnx.save(m, a.out)
    print(f"{pairs} conv pairs rescaled (channel factors within [1/{a.range}, {a.range}])")


if __name__ == "__main__":
    main()
