//! Stored tensors: typed fields, f16/bf16, external data and its path checks.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

mod common;

use std::path::{Path, PathBuf};

use common::*;
use half::{bf16, f16};
use kerf_ir::DType;
use onnx_protobuf::tensor_proto::DataLocation;
use onnx_protobuf::{StringStringEntryProto, TensorProto};
use protobuf::Message;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kerf-onnx-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn external(name: &str, dims: &[i64], entries: &[(&str, &str)]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = F32;
    t.data_location = DataLocation::EXTERNAL.into();
    for (k, v) in entries {
        let mut e = StringStringEntryProto::new();
        e.key = k.to_string();
        e.value = v.to_string();
        t.external_data.push(e);
    }
    t
}

/// Model: y = x + w, with w given.
fn add_model(w: TensorProto) -> M {
    M::new(17).input("x", &[4]).init(w).op("Add", &["x", "w"], "y", vec![]).output("y")
}

fn weight_values(g: &kerf_ir::Graph) -> Vec<f32> {
    g.const_of(g.nodes[0].inputs[1]).unwrap().to_f32_vec()
}

fn write_f32(path: &Path, prefix: usize, vals: &[f32]) {
    let mut bytes = vec![0xAAu8; prefix];
    bytes.extend(vals.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn external_data_good_file_with_offset() {
    let dir = scratch("good");
    write_f32(&dir.join("w.bin"), 8, &[1.0, 2.0, 3.0, 4.0]);
    let m = add_model(external("w", &[4], &[("location", "w.bin"), ("offset", "8"), ("length", "16")]));
    let g = m.import_in(&dir).unwrap();
    assert_eq!(weight_values(&g), vec![1.0, 2.0, 3.0, 4.0]);
    // Through load_model: base dir is the file's folder, name is the stem.
    std::fs::write(dir.join("net.onnx"), m.bytes()).unwrap();
    let g = kerf_onnx::load_model(&dir.join("net.onnx"), &Default::default()).unwrap();
    assert_eq!(g.name, "net");
    assert_eq!(weight_values(&g), vec![1.0, 2.0, 3.0, 4.0]);
    // Without a folder, external data cannot be read.
    let e = m.import().unwrap_err().to_string();
    assert!(e.contains("tensor 'w'") && e.contains("model's folder"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn external_data_path_escapes_are_refused() {
    let root = scratch("escape");
    let dir = root.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    write_f32(&root.join("secret.bin"), 0, &[9.0; 4]);

    let e = add_model(external("w", &[4], &[("location", "../secret.bin")])).import_in(&dir).unwrap_err().to_string();
    assert_eq!(
        e,
        "tensor 'w': external data location '../secret.bin' may not contain '..' or leave the model's folder"
    );

    let abs = root.join("secret.bin");
    let e =
        add_model(external("w", &[4], &[("location", abs.to_str().unwrap())])).import_in(&dir).unwrap_err().to_string();
    assert!(e.contains("must be a relative path"), "{e}");

    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(root.join("secret.bin"), dir.join("link.bin")).unwrap();
        let e = add_model(external("w", &[4], &[("location", "link.bin")])).import_in(&dir).unwrap_err().to_string();
        assert_eq!(e, "tensor 'w': external data location 'link.bin' resolves outside the model's folder");
    }
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn external_data_bounds_are_checked() {
    let dir = scratch("bounds");
    write_f32(&dir.join("w.bin"), 0, &[1.0, 2.0, 3.0, 4.0]);
    let e = add_model(external("w", &[4], &[("location", "w.bin"), ("offset", "4")])).import_in(&dir).unwrap_err();
    assert_contains(&e.to_string(), &["tensor 'w'", "runs past the end", "16 bytes"]);
    let e = add_model(external("w", &[4], &[("location", "w.bin"), ("offset", "99999999999")]))
        .import_in(&dir)
        .unwrap_err();
    assert_contains(&e.to_string(), &["runs past the end"]);
    let e = add_model(external("w", &[4], &[("location", "w.bin"), ("length", "12")])).import_in(&dir).unwrap_err();
    assert_contains(&e.to_string(), &["length 12", "16 bytes"]);
    let e = add_model(external("w", &[4], &[("location", "missing.bin")])).import_in(&dir).unwrap_err();
    assert_contains(&e.to_string(), &["cannot read", "missing.bin"]);
    let e = add_model(external("w", &[4], &[("location", "w.bin"), ("offset", "x")])).import_in(&dir).unwrap_err();
    assert_contains(&e.to_string(), &["offset 'x' is not a number"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn f16_and_bf16_initializers() {
    let vals = [1.5f32, -2.0, 0.25, 3.0];
    let mut h = TensorProto::new();
    h.name = "h".into();
    h.dims = vec![4];
    h.data_type = 10;
    h.int32_data = vals.iter().map(|&v| f16::from_f32(v).to_bits() as i32).collect();
    let mut b = TensorProto::new();
    b.name = "b".into();
    b.dims = vec![4];
    b.data_type = 16;
    b.raw_data = vals.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect();
    let g = M::new(17)
        .input_vi(value_info("x", 10, Some(vec![D::V(4)])))
        .init(h)
        .init(b)
        .op("Add", &["x", "h"], "y", vec![])
        .op("Cast", &["b"], "bc", vec![ai("to", 10)])
        .op("Add", &["y", "bc"], "z", vec![])
        .output("z")
        .ok();
    let ht = g.const_of(g.nodes[0].inputs[1]).unwrap();
    assert_eq!(ht.dtype(), DType::F16);
    assert_eq!(ht.to_f32_vec(), vals.to_vec());
    let bt = g.const_of(g.nodes[1].inputs[1]).unwrap();
    assert_eq!(bt.dtype(), DType::F16, "cast of a bf16 constant folds to f16");
    assert_eq!(bt.to_f32_vec(), vals.to_vec());
    // The folded cast of a weight still counts as that weight.
    assert_eq!(kerf_ir::stats::totals(&g).params, 8);
}

#[test]
fn typed_fields_and_read_tensor_proto() {
    let cases: Vec<(TensorProto, DType, Vec<f64>)> = vec![
        (
            {
                let mut t = TensorProto::new();
                t.data_type = 1;
                t.dims = vec![2];
                t.float_data = vec![1.0, -1.0];
                t
            },
            DType::F32,
            vec![1.0, -1.0],
        ),
        (
            {
                let mut t = TensorProto::new();
                t.data_type = 11;
                t.dims = vec![2];
                t.double_data = vec![0.5, 2.0];
                t
            },
            DType::F64,
            vec![0.5, 2.0],
        ),
        (
            {
                let mut t = TensorProto::new();
                t.data_type = 7;
                t.dims = vec![2];
                t.int64_data = vec![-7, 9];
                t
            },
            DType::I64,
            vec![-7.0, 9.0],
        ),
        (
            {
                let mut t = TensorProto::new();
                t.data_type = 6;
                t.dims = vec![2];
                t.int32_data = vec![-3, 4];
                t
            },
            DType::I32,
            vec![-3.0, 4.0],
        ),
        (
            {
                let mut t = TensorProto::new();
                t.data_type = 3;
                t.dims = vec![2];
                t.int32_data = vec![-128, 127];
                t
            },
            DType::I8,
            vec![-128.0, 127.0],
        ),
        (
            {
                let mut t = TensorProto::new();
                t.data_type = 2;
                t.dims = vec![2];
                t.int32_data = vec![0, 255];
                t
            },
            DType::U8,
            vec![0.0, 255.0],
        ),
        (
            {
                let mut t = TensorProto::new();
                t.data_type = 5;
                t.dims = vec![1];
                t.int32_data = vec![-300];
                t
            },
            DType::I16,
            vec![-300.0],
        ),
        (
            {
                let mut t = TensorProto::new();
                t.data_type = 4;
                t.dims = vec![1];
                t.int32_data = vec![65535];
                t
            },
            DType::U16,
            vec![65535.0],
        ),
        (
            {
                let mut t = TensorProto::new();
                t.data_type = 9;
                t.dims = vec![3];
                t.int32_data = vec![1, 0, 1];
                t
            },
            DType::Bool,
            vec![1.0, 0.0, 1.0],
        ),
        (
            {
                let mut t = TensorProto::new();
                t.data_type = 12;
                t.dims = vec![1];
                t.uint64_data = vec![4_000_000_000];
                t
            },
            DType::U32,
            vec![4e9],
        ),
        (
            {
                let mut t = TensorProto::new();
                t.data_type = 13;
                t.dims = vec![1];
                t.uint64_data = vec![5];
                t
            },
            DType::U64,
            vec![5.0],
        ),
        (
            {
                let mut t = TensorProto::new();
                t.data_type = 1;
                t.dims = vec![];
                t.float_data = vec![3.5];
                t
            },
            DType::F32,
            vec![3.5],
        ),
    ];
    for (mut t, dtype, want) in cases {
        t.name = "t".into();
        let (name, tensor) = kerf_onnx::read_tensor_proto(&t.write_to_bytes().unwrap()).unwrap();
        assert_eq!(name, "t");
        assert_eq!(tensor.dtype(), dtype);
        assert_eq!(tensor.to_f64_vec(), want, "{dtype}");
    }
    let mut t = TensorProto::new();
    t.name = "few".into();
    t.data_type = 7;
    t.dims = vec![3];
    t.int64_data = vec![1];
    let e = kerf_onnx::read_tensor_proto(&t.write_to_bytes().unwrap()).unwrap_err().to_string();
    assert_eq!(e, "tensor 'few': int64_data has 1 values, i64[3] needs 3");
}
