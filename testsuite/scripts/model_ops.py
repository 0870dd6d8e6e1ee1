#!/usr/bin/env python3
"""Prints the op types used by ONNX models (subgraphs included), one per line,
sorted; ops outside the default domain as `<domain>:<Op>`.

The cross-ISA leg of the conformance suite (tests/onnx_backend_cross.rs) runs
the node cases whose ops are all in this set for the nine public models
(plus EXTRA):

    .venv/bin/python testsuite/scripts/model_ops.py /work/shared/models/*/model.onnx \\
        > testsuite/conformance/cross_isa_ops.txt
"""
import sys

import onnx

# Not in the models, run cross-ISA anyway: the narrow dtypes (float8/float4/
# int4/int2) and the quantisation ops have hand-written integer kernels
# (targets/src/lower/cast.rs) that only their node cases exercise.
EXTRA = ["Cast", "CastLike", "DequantizeLinear", "DynamicQuantizeLinear", "QuantizeLinear"]


def walk(graph, ops):
    for node in graph.node:
        domain = node.domain or "ai.onnx"
        ops.add(node.op_type if domain == "ai.onnx" else f"{domain}:{node.op_type}")
        for a in node.attribute:
            if a.HasField("g"):
                walk(a.g, ops)
            for g in a.graphs:
                walk(g, ops)


def main(paths):
    if not paths:
        sys.exit("usage: model_ops.py MODEL.onnx...")
    ops = set()
    names = []
    for p in paths:
        walk(onnx.load(p, load_external_data=False).graph, ops)
        names.append(p.rstrip("/").split("/")[-2])
    print(f"# op types of the models: {' '.join(names)}")
    print("# regenerate: .venv/bin/python testsuite/scripts/model_ops.py /work/shared/models/*/model.onnx")
    for op in sorted(ops):
        print(op)
    print("# not in the models: the narrow dtypes (float8/float4/int4/int2) and quantisation ops run")
    print("# cross-ISA through their node cases (model_ops.py EXTRA)")
    for op in EXTRA:
        if op not in ops:
            print(op)


if __name__ == "__main__":
    main(sys.argv[1:])
