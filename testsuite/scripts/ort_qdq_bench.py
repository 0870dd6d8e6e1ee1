"""ONNX Runtime's own int8 of a model beside its FP32 (the ORT columns of the
older int8 tables in docs/compression.md): `quantize_static` (QDQ,
per-channel s8 weights, u8 activations, `bench_int8_vs_ort.ort_qdq`)
calibrated on the given samples (N x the input's shape, the same file
`kerf ... --calib` takes), then ORT FP32 and ORT int8 timed in alternating
rounds, 1 thread; prints both medians. `bench_int8_vs_ort.py` times kerf's
FP32 and int8 in the same rounds.

    python testsuite/scripts/ort_qdq_bench.py model.onnx calib.npy out_qdq.onnx
"""
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_int8_vs_ort import ort_qdq  # noqa: E402

model, calib_path, out = sys.argv[1], sys.argv[2], sys.argv[3]
calib = np.load(calib_path).astype(np.float32)
inp = onnx.load(model).graph.input[0]
name = inp.name
shape = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
ort_qdq(model, calib, out)
so = ort.SessionOptions(); so.intra_op_num_threads = 1; so.inter_op_num_threads = 1
s32 = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
s8 = ort.InferenceSession(out, so, providers=["CPUExecutionProvider"])
x = calib[0].reshape(shape)
t = {"fp32": [], "int8": []}
for sess in (s32, s8):
    for _ in range(5): sess.run(None, {name: x})
for _ in range(10):
    for k, sess in (("fp32", s32), ("int8", s8)):
        t0 = time.perf_counter(); n = 0
        while time.perf_counter() - t0 < 0.3:
            sess.run(None, {name: x}); n += 1
        t[k].append((time.perf_counter() - t0) / n * 1e3)
for k in t: print(f"ORT {k}: median {np.median(t[k]):.3f} ms")
