#!/usr/bin/env python3
"""kerf's int8 against ONNX Runtime's int8, FP32 beside both, in one process and one run.

Issue 14's speed target compares four programs on one thread: kerf FP32, kerf
int8, ONNX Runtime FP32 and ONNX Runtime running its own `quantize_static`
QDQ model of the same network (per-channel s8 weights, u8 activations) made
from the same calibration samples. This script builds them all and times them
in alternating rounds on the same input, so that a noisy host moves every
column alike (`bench_vs_ort.py` does the same for FP32).

For every model folder (default: resnet18, mobilenet_v2, squeezenet1_1 in
/work/shared/models):

1. calibration samples: the folder's `train_x.npy` (its first --samples
   rows, disjoint from `test_x.npy`) where it has one, else --noise
   standard-normal samples of the input's shape (seed 0; random-weight
   models have no data);
2. `kerf compile --cpu native --name m` for FP32 and for each
   `--weight-bits` variant of `--quantize int8 --calib C --rounding R`
   (`8`, `7`, or `8:any` / `8:exact` to set `--byte-pairs`), each linked
   with `runtime/c/kerf_pool.c` into a shared library and loaded with
   ctypes (without VNNI, 8-bit weights with free byte pairs run on 16-bit
   pairs, 7-bit ones and exact pairs on AVX2's byte tile:
   docs/compression.md);
3. ONNX Runtime: the FP32 model and `quantize_static(QDQ, per_channel,
   QInt8 weights, QUInt8 activations)` of it on the same samples, both with
   one intra-op thread, ORT_ENABLE_ALL;
4. rounds: each engine in turn runs a batch of calls, each call timed on its
   own; medians.

Prints (and writes with --out) a Markdown table: medians in ms, kerf int8's
speed-up over kerf FP32, kerf int8 / ORT int8 (< 1: kerf faster), ORT int8's
speed-up over ORT FP32, and each int8 output's SNR against its own FP32
output on the timed input. `--reduce-range` gives ORT 7-bit weights (its
remedy for `vpmaddubsw`'s saturation without VNNI), the like-for-like
partner of kerf's 7-bit column. A model that fails to compile stops the run.

Usage: .venv/bin/python testsuite/scripts/bench_int8_vs_ort.py [--weight-bits 8,8:any,7]
       [--rounding nearest|gptq] [--reduce-range] [--samples 500] [--noise 8]
       [--seconds 2] [--rounds 10] [--out table.md] [MODEL_DIR ...]
"""

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vs_ort import (REPO, PUBLIC, KerfLib, cpu_model, fmt, measured_clock, ort_session,  # noqa: E402
                          alternate, timing_args)

DEFAULT = ["resnet18", "mobilenet_v2", "squeezenet1_1"]


def ort_qdq(model, calib, out, reduce_range=False, operators=False):
    """ONNX Runtime's own int8 model of `model` (QDQ, per-channel s8
    weights, u8 activations) calibrated on the samples `calib` (N x the
    input's shape, or N x it without the batch-1 axis); `reduce_range`:
    7-bit weights, ORT's remedy for `vpmaddubsw`'s saturation without
    VNNI; `operators`: the QOperator format (QLinearConv, ...) instead."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    g = onnx.load(str(model)).graph
    name = g.input[0].name
    shape = [d.dim_value or 1 for d in g.input[0].type.tensor_type.shape.dim]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.i = 0

        def get_next(self):
            if self.i >= len(calib):
                return None
            self.i += 1
            return {name: calib[self.i - 1].reshape(shape).astype(np.float32)}

    fmt = QuantFormat.QOperator if operators else QuantFormat.QDQ
    quantize_static(str(model), str(out), Reader(), quant_format=fmt, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, reduce_range=reduce_range)


def model_data(folder, onnx_path, args):
    """The calibration samples, what they are, and the timed input: the
    folder's `input_0.npy`, else the training row after the calibration
    rows, else the first calibration sample (which makes the SNR
    optimistic). Each file is read once."""
    own = np.load(folder / "input_0.npy") if (folder / "input_0.npy").is_file() else None
    train = np.load(folder / "train_x.npy").astype(np.float32) if (folder / "train_x.npy").is_file() else None
    if train is not None:
        calib, what = train[: args.samples], f"{min(args.samples, len(train))} training samples"
    else:
        if own is not None:
            shape = list(own.shape)
        else:
            g = onnx.load(str(onnx_path)).graph
            shape = [d.dim_value or 1 for d in g.input[0].type.tensor_type.shape.dim]
        rng = np.random.default_rng(0)
        calib, what = rng.standard_normal([args.noise] + shape[1:]).astype(np.float32), f"{args.noise} noise samples"
    if own is not None:
        timed = own
    elif train is not None and len(train) > len(calib):
        timed = train[len(calib):len(calib) + 1]
    else:
        timed = calib[:1]
    return calib, what, timed


def fixed_shape(onnx_path, x):
    """`--input-shape` for a model whose input has dynamic dimensions (the
    timed input's shape), else nothing."""
    i = onnx.load(str(onnx_path)).graph.input[0]
    if all(d.dim_value > 0 for d in i.type.tensor_type.shape.dim):
        return []
    return ["--input-shape", f"{i.name}=" + ",".join(str(n) for n in x.shape)]


def kerf_lib(args, onnx_path, work, tag, flags, inputs):
    """`flags` include the model's `--input-shape` where it needs one
    (`fixed_shape`, computed once per model)."""
    obj, so = work / f"{tag}.o", work / f"{tag}.so"
    cmd = [args.kerf, "compile", str(onnx_path), "--cpu", "native", "--name", "m", "-o", str(obj)] + flags
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: {(r.stderr.strip().splitlines() or ['failed'])[-1]}")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-pthread", "-I", str(REPO / "runtime/include"), str(obj),
                    str(REPO / "runtime/c/kerf_pool.c"), "-o", str(so)], check=True)
    k = KerfLib(so, inputs)
    k.set_threads(1)
    return k


def snr_db(ref, y):
    ref, y = ref.astype(np.float64).ravel(), y.astype(np.float64).ravel()
    noise = np.sum((ref - y) ** 2)
    return float("inf") if noise == 0 else 10 * np.log10(np.sum(ref ** 2) / noise)


def bench_model(args, folder, tmp):
    folder = Path(folder)
    name, onnx_path = folder.name, folder / "model.onnx"
    work = tmp / name
    work.mkdir(parents=True, exist_ok=True)
    calib, calib_what, timed = model_data(folder, onnx_path, args)
    inputs = [timed]
    shape = fixed_shape(onnx_path, timed)
    cfile = work / "calib.npy"
    np.save(cfile, calib)
    s32 = ort_session(onnx_path, 1)
    feed = {s32.get_inputs()[0].name: inputs[0].astype(np.float32)}
    qdq = work / "model_qdq.onnx"
    ort_qdq(onnx_path, calib, qdq, reduce_range=args.reduce_range)
    s8 = ort_session(qdq, 1)
    libs = {"kerf FP32": kerf_lib(args, onnx_path, work, "fp32", shape, inputs)}
    for spec in args.weight_bits:
        base, res = residual_of(spec)
        bits, _, pairs = base.partition(":")
        flags = shape + ["--quantize", "int8", "--calib", str(cfile), "--rounding", args.rounding, "--weight-bits", bits]
        flags += ["--byte-pairs", pairs] if pairs else []
        flags += ["--residual", res] if res else []
        tag = (f"int8_{bits}_{pairs}" if pairs else f"int8_{bits}") + (f"_{res}res" if res else "")
        libs[f"kerf int8 {label(spec)}"] = kerf_lib(args, onnx_path, work, tag, flags, inputs)
    engines = {key: k.call for key, k in libs.items()}
    engines["ORT FP32"] = lambda: s32.run(None, feed)
    engines["ORT int8"] = lambda: s8.run(None, feed)
    outs = {}
    for key, fn in engines.items():
        for _ in range(3):
            r = fn()
        outs[key] = libs[key].outputs[0].copy() if key in libs else r[0]
    samples = alternate(engines, args)
    for k in libs.values():
        k.close()
    med = {key: statistics.median(v) / 1e6 for key, v in samples.items()}
    snr = {key: snr_db(outs["kerf FP32" if key.startswith("kerf") else "ORT FP32"], y)
           for key, y in outs.items() if "int8" in key}
    return {"name": name, "calib": calib_what, "med": med, "snr": snr}


def residual_of(spec):
    """A variant's spec without its residual suffix, and the `--residual`
    it asks for: `+res` int8, `+f32res` f32, none the default (int8)."""
    for suffix, res in (("+f32res", "f32"), ("+res", "int8")):
        if spec.endswith(suffix):
            return spec.removesuffix(suffix), res
    return spec, None


def label(spec):
    """A `--weight-bits` variant's column name: `8-bit`, `8-bit any pairs`,
    `8-bit f32 residual`."""
    base, res = residual_of(spec)
    bits, _, pairs = base.partition(":")
    return f"{bits}-bit" + (f" {pairs} pairs" if pairs else "") + (f" {res} residual" if res else "")


def table(args, rows, clock):
    kerf_int8 = [f"kerf int8 {label(b)}" for b in args.weight_bits]
    lines = [f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs"
             + (f", measured clock {clock:.2f} GHz (dependent-add loop)" if clock else "")
             + "; kerf --cpu native, 1 thread",
             f"onnxruntime {ort.__version__}, numpy {np.__version__}, Python {platform.python_version()}; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; kerf int8: --rounding {args.rounding}; "
             f"ORT int8: {'7-bit weights (reduce_range)' if args.reduce_range else '8-bit weights'}",
             "",
             "Medians in ms over alternating rounds in one process. *speed-up*: kerf FP32 / kerf int8. "
             "*/ ORT int8*: kerf int8 / ORT int8 (< 1: kerf faster). SNR: each int8 output against its own "
             "engine's FP32 output on the timed input.",
             ""]
    head = ["model", "calibration", "kerf FP32"] + kerf_int8 + ["ORT FP32", "ORT int8"]
    head += [f"speed-up {label(b)}" for b in args.weight_bits] + [f"{label(b)} / ORT int8" for b in args.weight_bits]
    head += ["ORT int8 speed-up"] + [f"SNR {label(b)}" for b in args.weight_bits] + ["SNR ORT int8"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|---|---|" + "---:|" * (len(head) - 2))
    for r in rows:
        md, s = r["med"], r["snr"]
        cells = [r["name"], r["calib"], fmt(md["kerf FP32"])] + [fmt(md[k]) for k in kerf_int8]
        cells += [fmt(md["ORT FP32"]), fmt(md["ORT int8"])]
        cells += [f"{md['kerf FP32'] / md[k]:.2f}x" for k in kerf_int8]
        cells += [f"{md[k] / md['ORT int8']:.2f}" for k in kerf_int8]
        cells += [f"{md['ORT FP32'] / md['ORT int8']:.2f}x"]
        cells += [f"{s[k]:.1f} dB" for k in kerf_int8] + [f"{s['ORT int8']:.1f} dB"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    ap = timing_args(__doc__, seconds=2.0)
    ap.add_argument("--weight-bits", default="8,7",
                    help="kerf int8 variants, comma-separated: 8, 7, or 8:any / 8:exact (--byte-pairs); "
                         "a +f32res suffix adds --residual f32 (e.g. 8+f32res), +res --residual int8 (the default)")
    ap.add_argument("--rounding", default="nearest", choices=["nearest", "gptq"])
    ap.add_argument("--samples", type=int, default=500, help="calibration rows taken from train_x.npy")
    ap.add_argument("--noise", type=int, default=8, help="noise samples for a model without train_x.npy")
    ap.add_argument("--reduce-range", action="store_true",
                    help="ORT's int8 model with 7-bit weights (quantize_static reduce_range=True)")
    args = ap.parse_args()
    ort.set_default_logger_severity(3)  # the QDQ models' unused-initializer warnings
    args.weight_bits = [b.strip() for b in args.weight_bits.split(",") if b.strip()]
    if not Path(args.kerf).is_file():
        sys.exit(f"{args.kerf} not found: cargo build --release -p kerf")
    models = args.models or [PUBLIC / m for m in DEFAULT if (PUBLIC / m / "model.onnx").is_file()]
    if not models:
        sys.exit("no models given and none found in /work/shared/models")
    with tempfile.TemporaryDirectory(prefix="kerf-int8-") as tmp:
        tmp = Path(tmp)
        clock = measured_clock(tmp)
        rows = []
        for m in models:
            rows.append(bench_model(args, m, tmp))
            print(rows[-1], file=sys.stderr, flush=True)
    text = table(args, rows, clock)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
