"""ONNX Runtime's own int8 models of the digits CNN and their outputs, for the
QDQ and QOperator import tests (testsuite/tests/compression.rs): `quantize_static`, QDQ
format, per-channel int8 weights, uint8 activations, calibrated on the
fixture's 500 calibration images (disjoint from the test set); ORT's logits
on the 450 test images with graph optimisations off, i.e. the QDQ model's
own semantics (Q and DQ as float ops): with them on, ORT fuses the pairs
into its integer kernels, whose results differ from those semantics by up
to 19 output steps on an AVX2 CPU without VNNI (they also differ between
CPUs), so they are no reference. The same in the QOperator format
(`model_qop_ort.onnx`: QLinearConv, MaxPool on u8, com.microsoft's QGemm;
`qop_ort_logits.npy`, ORT's integer operators with optimisations off,
recorded on a CPU with VNNI, where ORT's u8 x s8 products are exact: on
one without, they may saturate and the file would no longer be the
operators' exact values; the test reads the stored file, so it does not
depend on the CPU it runs on).

    python testsuite/scripts/make_qdq_fixture.py testsuite/fixtures/models/digits_cnn
"""
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_int8_vs_ort import ort_qdq  # noqa: E402

d = Path(sys.argv[1])
calib = np.load(d / "calib_x.npy").astype(np.float32)

out = d / "model_qdq_ort.onnx"
ort_qdq(d / "model.onnx", calib, out)
x = np.load(d / "test_x.npy").astype(np.float32)
y = np.load(d / "test_y.npy")
for level, name in [(ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "QDQ semantics"),
                    (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "ORT's fused integer kernels")]:
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    sess = ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"])
    logits = np.stack([sess.run(None, {"input": s.reshape(1, 1, 8, 8)})[0][0] for s in x])
    print(f"ORT top-1 on its QDQ model, {name}:", (logits.argmax(1) == y).mean())
    if level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL:
        np.save(d / "qdq_ort_logits.npy", logits.astype(np.float32))

qop = d / "model_qop_ort.onnx"
ort_qdq(d / "model.onnx", calib, qop, operators=True)
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
sess = ort.InferenceSession(str(qop), so, providers=["CPUExecutionProvider"])
logits = np.stack([sess.run(None, {"input": s.reshape(1, 1, 8, 8)})[0][0] for s in x])
print("ORT top-1 on its QOperator model:", (logits.argmax(1) == y).mean())
np.save(d / "qop_ort_logits.npy", logits.astype(np.float32))
