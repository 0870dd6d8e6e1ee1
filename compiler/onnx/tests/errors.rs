//! Every import error comes back as an `ImportError` with a message naming
//! what is wrong (never a panic).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

mod common;

use std::collections::BTreeMap;

use common::*;
use kerf_onnx::{load_model_bytes, ImportOptions};
use onnx_protobuf::{ModelProto, OperatorSetIdProto, TensorProto};
use protobuf::Message;

fn err_of(bytes: &[u8], opts: &ImportOptions) -> String {
    match load_model_bytes(bytes, None, opts) {
        Ok(_) => panic!("import unexpectedly succeeded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn malformed_protobuf() {
    let e = err_of(&[0xff, 0xff, 0xff, 0xff], &ImportOptions::default());
    assert!(e.starts_with("malformed ONNX protobuf"), "{e}");
    assert!(matches!(kerf_onnx::read_tensor_proto(&[0x0a, 0xff]), Err(kerf_onnx::ImportError::Protobuf(_))));
}

#[test]
fn missing_graph_ir_version_and_opset() {
    let mut m = ModelProto::new();
    m.ir_version = 8;
    let mut o = OperatorSetIdProto::new();
    o.version = 17;
    m.opset_import.push(o);
    let e = err_of(&m.write_to_bytes().unwrap(), &ImportOptions::default());
    assert_eq!(e, "model has no graph");

    let mut mm = M::new(17).input("x", &[1]).op("Relu", &["x"], "y", vec![]).output("y");
    mm.model.ir_version = 0;
    assert_contains(&mm.err(), &["ir_version 0"]);

    let e = M::new(29).input("x", &[1]).op("Relu", &["x"], "y", vec![]).output("y").err();
    assert_eq!(e, "model uses ai.onnx opset 29, newer than the newest supported opset 28");
}

#[test]
fn unknown_domain() {
    let mut m = M::new(17).input("x", &[1]).op("FusedThing", &["x"], "y", vec![]).output("y");
    m.model.graph.as_mut().unwrap().node[0].domain = "com.microsoft".into();
    assert_eq!(m.err(), "node 'y' (FusedThing) is in unknown domain 'com.microsoft'");
}

#[test]
fn all_unsupported_ops_at_once() {
    let e = M::new(17)
        .input("x", &[1])
        .node("Foo", "a", &["x"], &["a"], vec![])
        .node("Relu", "r", &["a"], &["r"], vec![])
        .node("Bar", "c", &["r"], &["c"], vec![])
        .node("Foo", "b", &["c"], &["b"], vec![])
        .output("b")
        .err();
    assert_eq!(e, "unsupported operators: Foo (nodes 'a', 'b'), Bar (node 'c')");
}

#[test]
fn declined_ops_say_why() {
    let e = M::new(17).input("x", &[4]).node("NonZero", "nz", &["x"], &["y"], vec![]).output("y").err();
    assert_eq!(
        e,
        "unsupported operators: NonZero (node 'nz': its output shape depends on the input data; \
         kerf compiles static shapes)"
    );
}

#[test]
fn dynamic_input_dims_need_a_shape() {
    let m = M::new(17)
        .input_vi(value_info("x", F32, Some(vec![D::P("batch"), D::V(3), D::V(224), D::V(224)])))
        .op("Relu", &["x"], "y", vec![])
        .output("y");
    assert_eq!(m.err(), "input 'x' has dynamic dimension 0 ('batch'); kerf compiles for one shape: pass --input-shape x=batch,3,224,224 with the sizes you will run (e.g. --input-shape x=1,3,224,224), or an input file (kerf run) whose shape fixes them");

    let shapes = |name: &str, s: Vec<usize>| ImportOptions {
        input_shapes: BTreeMap::from([(name.to_string(), s)]),
        ..Default::default()
    };
    let g = load_model_bytes(&m.bytes(), None, &shapes("x", vec![2, 3, 224, 224])).unwrap();
    assert_eq!(out_shape(&g, "y"), vec![2, 3, 224, 224]);

    let e = err_of(&m.bytes(), &shapes("nope", vec![1]));
    assert_contains(&e, &["'nope'", "not a model input", "x"]);
    let e = err_of(&m.bytes(), &shapes("x", vec![1, 3, 224]));
    assert_contains(&e, &["'x'", "rank 3", "rank 4"]);
    let e = err_of(&m.bytes(), &shapes("x", vec![1, 4, 224, 224]));
    assert_contains(&e, &["'x'", "dimension 1", "fixes it to 3"]);

    let e = M::new(17).input_vi(value_info("x", F32, None)).op("Relu", &["x"], "y", vec![]).output("y").err();
    assert_contains(&e, &["input 'x' has no declared shape", "--input-shape"]);
}

#[test]
fn duplicate_undefined_and_missing_values() {
    let e = M::new(17)
        .input("x", &[1])
        .op("Relu", &["x"], "y", vec![])
        .node("Neg", "n", &["x"], &["y"], vec![])
        .output("y")
        .err();
    assert_eq!(e, "value 'y' is produced twice: by node 'y' and by node 'n'");

    let e = M::new(17).input("x", &[1]).op("Relu", &["ghost"], "y", vec![]).output("y").err();
    assert_eq!(e, "node 'y' (Relu): reads undefined value 'ghost'");

    let e = M::new(17).input("x", &[1]).op("Relu", &["x"], "y", vec![]).output("z").err();
    assert_eq!(e, "graph output 'z' is not produced by any node");

    // A cycle is an error naming the nodes on it (nodes merely out of order
    // are sorted: see out_of_order_nodes_are_sorted).
    let e = M::new(17)
        .input("x", &[1])
        .op("Add", &["x", "b"], "a", vec![])
        .op("Neg", &["a"], "b", vec![])
        .output("b")
        .err();
    assert_contains(&e, &["node 'a' (Add)", "cycle of nodes 'a', 'b'"]);

    // Inference-mode BatchNormalization has no running-mean output; reading
    // it is an error naming it.
    let e = M::new(17)
        .input("x", &[1, 2, 3])
        .weight("s", &[2])
        .weight("b", &[2])
        .weight("m", &[2])
        .weight("v", &[2])
        .node("BatchNormalization", "bn", &["x", "s", "b", "m", "v"], &["y", "rm"], vec![])
        .op("Neg", &["rm"], "c", vec![])
        .output("c")
        .err();
    assert_contains(&e, &["node 'c' (Neg)", "'rm'", "output 1 of node 'bn' (BatchNormalization)", "not supported"]);
}

#[test]
fn inference_errors_name_the_node() {
    let e = M::new(17).input("x", &[2, 3]).input("y", &[4]).op("Add", &["x", "y"], "sum", vec![]).output("sum").err();
    assert!(e.starts_with("node 'sum' (Add): "), "{e}");

    let e = M::new(17)
        .input("x", &[1, 3, 8, 8])
        .weight("w", &[4, 2, 3, 3])
        .node("Conv", "", &["x", "w"], &["y"], vec![])
        .output("y")
        .err();
    assert_contains(&e, &["node 'conv_0' (Conv)", "input channels 3"]);
}

#[test]
fn attribute_errors_name_the_node() {
    let e = M::new(17)
        .input("x", &[2, 3])
        .weight("w", &[3, 4])
        .node("Gemm", "g", &["x", "w"], &["y"], vec![astr("alpha", "big")])
        .output("y")
        .err();
    assert_eq!(e, "node 'g' (Gemm): attribute 'alpha' must be a float, got a string");

    let e = M::new(17).input("x", &[2]).node("Concat", "", &["x", "x"], &["y"], vec![]).output("y").err();
    assert_eq!(e, "node 'concat_0' (Concat): missing required attribute 'axis'");
}

#[test]
fn shaping_inputs_must_be_constant() {
    let e = M::new(17)
        .input("x", &[2, 3])
        .input_vi(value_info("s", I64, Some(vec![D::V(2)])))
        .op("Reshape", &["x", "s"], "r", vec![])
        .output("r")
        .err();
    assert_eq!(e, "node 'r' (Reshape): input 'shape' must be a constant (dynamic shapes are not supported)");

    // Negative pads crop; only constant mode defines that, and not past the axis.
    let e = M::new(17)
        .input("x", &[2, 3])
        .init_i64("p", &[4], &[0, -1, 0, 0])
        .op("Pad", &["x", "p"], "y", vec![astr("mode", "reflect")])
        .output("y")
        .err();
    assert_contains(&e, &["node 'y' (Pad)", "negative pads", "only supported in constant mode"]);
    let e = M::new(17)
        .input("x", &[2, 3])
        .init_i64("p", &[4], &[0, -2, 0, -2])
        .op("Pad", &["x", "p"], "y", vec![])
        .output("y")
        .err();
    assert_contains(&e, &["node 'y' (Pad)", "crop more than the 3 elements of axis 1"]);

    let e = M::new(17)
        .input("x", &[2, 3])
        .init_i64("s", &[2], &[-1, -1])
        .op("Reshape", &["x", "s"], "r", vec![])
        .output("r")
        .err();
    assert_contains(&e, &["node 'r' (Reshape)", "more than one -1"]);
}

/// Tools act on these errors through their fields, not their messages.
#[test]
fn structured_errors_and_constant_inputs() {
    use kerf_onnx::{ImportError, TypeSite, UnsupportedOp};
    let dynamic = M::new(17)
        .input("x", &[2, 3])
        .input_vi(value_info("s", I64, Some(vec![D::V(2)])))
        .op("Reshape", &["x", "s"], "r", vec![])
        .output("r");
    match dynamic.import() {
        Err(ImportError::NonConstantInput { node, op, input, value }) => {
            assert_eq!((node.as_str(), op.as_str(), input.as_str(), value.as_str()), ("r", "Reshape", "shape", "s"));
        }
        other => panic!("expected NonConstantInput, got {other:?}"),
    }
    // Binding the shape input specialises the graph: one input, Reshape to [3, 2].
    let mut opts = ImportOptions::default();
    opts.constant_inputs.insert("s".into(), kerf_ir::Tensor::from_i64(vec![2], &[3, 2]).unwrap());
    let g = load_model_bytes(&dynamic.bytes(), None, &opts).unwrap();
    assert_eq!(g.inputs.len(), 1);
    assert_eq!(out_shape(&g, "r"), vec![3, 2]);
    // A constant of the wrong type or shape is rejected.
    let mut bad = ImportOptions::default();
    bad.constant_inputs.insert("s".into(), kerf_ir::Tensor::from_f32(vec![2], &[3.0, 2.0]).unwrap());
    assert_eq!(err_of(&dynamic.bytes(), &bad), "constant for input 's' is f32[2], but the input is i64[2]");
    bad.constant_inputs.insert("s".into(), kerf_ir::Tensor::from_i64(vec![3], &[3, 2, 1]).unwrap());
    assert_contains(&err_of(&dynamic.bytes(), &bad), &["'s' gives 3 for dimension 0", "fixes it to 2"]);
    let mut unknown = ImportOptions::default();
    unknown.constant_inputs.insert("nope".into(), kerf_ir::Tensor::from_i64(vec![1], &[1]).unwrap());
    assert_contains(&err_of(&dynamic.bytes(), &unknown), &["'nope', which is not a model input"]);

    let m = M::new(17).input("x", &[1]).op("Foo", &["x"], "a", vec![]).op("Foo", &["a"], "b", vec![]);
    match m.op("Bar", &["b"], "c", vec![]).output("c").import() {
        Err(ImportError::Unsupported(list)) => assert_eq!(
            list,
            vec![
                UnsupportedOp { op: "Foo".into(), nodes: vec!["a".into(), "b".into()] },
                UnsupportedOp { op: "Bar".into(), nodes: vec!["c".into()] }
            ]
        ),
        other => panic!("expected Unsupported, got {other:?}"),
    }
    match M::new(29).input("x", &[1]).op("Relu", &["x"], "y", vec![]).output("y").import() {
        Err(ImportError::OpsetTooNew { domain, opset: 29, max: 28 }) => assert_eq!(domain, "ai.onnx"),
        other => panic!("expected OpsetTooNew, got {other:?}"),
    }
    let e = M::new(17).input_vi(value_info("x", 14, Some(vec![D::V(1)]))).op("Relu", &["x"], "y", vec![]).output("y");
    match e.import() {
        Err(ImportError::UnsupportedElementType { site: TypeSite::Input, name, code: 14, kind }) => {
            assert_eq!((name.as_str(), kind.as_str()), ("x", "complex64"));
        }
        other => panic!("expected UnsupportedElementType, got {other:?}"),
    }
    assert_eq!(e.err(), "input 'x': element type complex64 is not supported");
    // float8 is an IR dtype, but a storage type: arithmetic on it is refused by name
    let e = M::new(19).input_vi(value_info("x", 17, Some(vec![D::V(1)]))).op("Relu", &["x"], "y", vec![]).output("y");
    assert_contains(&e.err(), &["Relu", "does not take f8e4m3fn"]);
}

#[test]
fn bad_initializers_name_the_tensor() {
    let mut s = TensorProto::new();
    s.name = "words".into();
    s.data_type = 8;
    s.dims = vec![1];
    s.string_data = vec![b"hi".to_vec()];
    let e = M::new(17).input("x", &[1]).init(s).op("Relu", &["x"], "y", vec![]).output("y").err();
    assert_eq!(e, "tensor 'words': element type string is not supported");

    for (code, kind) in [(14, "complex64"), (15, "complex128"), (0, "undefined")] {
        let mut t = TensorProto::new();
        t.name = "t".into();
        t.data_type = code;
        t.dims = vec![1];
        let e = M::new(17).input("x", &[1]).init(t).op("Relu", &["x"], "y", vec![]).output("y").err();
        assert_eq!(e, format!("tensor 't': element type {kind} is not supported"));
    }

    let mut t = tensor_f32("neg", &[2], &[1.0, 2.0]);
    t.dims = vec![-2];
    let e = M::new(17).input("x", &[1]).init(t).op("Relu", &["x"], "y", vec![]).output("y").err();
    assert_contains(&e, &["tensor 'neg'", "negative dimension"]);

    let mut t = tensor_f32("huge", &[1], &[1.0]);
    t.dims = vec![i64::MAX, i64::MAX];
    let e = M::new(17).input("x", &[1]).init(t).op("Relu", &["x"], "y", vec![]).output("y").err();
    assert_contains(&e, &["tensor 'huge'", "overflow"]);

    let mut t = tensor_f32("big", &[1], &[1.0]);
    t.dims = vec![1 << 20, 1 << 20];
    let e = M::new(17).input("x", &[1]).init(t).op("Relu", &["x"], "y", vec![]).output("y").err();
    assert_contains(&e, &["tensor 'big'", "limit"]);

    let mut t = tensor_f32("short", &[3], &[1.0, 2.0]);
    t.dims = vec![3];
    let e = M::new(17).input("x", &[1]).init(t).op("Relu", &["x"], "y", vec![]).output("y").err();
    assert_eq!(e, "tensor 'short': raw_data has 8 bytes, f32[3] needs 12");
}

#[test]
fn deep_chain_does_not_recurse() {
    let mut m = M::new(17).input("x", &[4]);
    let mut prev = "x".to_string();
    for i in 0..10_000 {
        let out = format!("v{i}");
        m = m.node("Relu", &out, &[&prev], &[&out], vec![]);
        prev = out;
    }
    let g = m.output(&prev).ok();
    assert_eq!(g.nodes.len(), 10_000);
}

/// ONNX Runtime accepts nodes out of topological order, so kerf does: they
/// are sorted (unnamed nodes keep the names of their original positions)
/// and the graph computes what the ordered one does.
#[test]
fn out_of_order_nodes_are_sorted() {
    let m = M::new(17)
        .input("x", &[3])
        .op("Relu", &["a"], "b", vec![])
        .op("Neg", &["x"], "a", vec![])
        .op("Add", &["b", "x"], "c", vec![])
        .output("c");
    let g = m.ok();
    let x = kerf_ir::Tensor::from_f32(vec![3], &[-1.0, 0.5, 2.0]).unwrap();
    let y = kerf_ir::eval::eval_graph(&g, &[x]).unwrap();
    // relu(-x) + x
    assert_eq!(y[0].to_f32_vec(), vec![0.0, 0.5, 2.0]);
}

/// A constant quantisation scale must be positive and finite: zero,
/// negative, NaN or infinite scales are errors naming the node and the
/// element; with a valid scale the integer value carries its grid, and a
/// QuantizeLinear → DequantizeLinear pair on one grid imports as the
/// activation quantiser `Mul(Clip(Round(Div(x, s))), s)` reading `x`.
#[test]
fn quantisation_scales_and_grids() {
    let qdq = |scale: f32| {
        M::new(13)
            .input("x", &[1, 4])
            .init_f32("s", &[], &[scale])
            .op("QuantizeLinear", &["x", "s"], "q", vec![])
            .op("DequantizeLinear", &["q", "s"], "y", vec![])
            .output("y")
            .output("q")
    };
    let g = qdq(0.5).ok();
    let grids: Vec<_> = g.values.iter().filter_map(|v| v.ty.quant.as_ref().map(|q| (v.ty.dtype, q))).collect();
    assert_eq!(grids.len(), 1, "one integer value with a grid");
    let (dtype, q) = grids[0];
    assert_eq!((dtype, q.axis), (kerf_ir::DType::U8, None));
    assert_eq!(g.weights.tensor(q.scale).to_f32_vec(), vec![0.5]);
    assert_eq!(g.weights.tensor(q.zero_point).to_f32_vec(), vec![0.0]);
    // y = Mul(Clip{-0, 255}(Round(Div(x, 0.5))), 0.5), on x itself
    let y = g.outputs[0].value;
    let ops = |v: kerf_ir::ValueId| match g.value(v).def {
        kerf_ir::ValueDef::Node { node, .. } => Some((g.nodes[node].op.name(), g.nodes[node].inputs[0])),
        _ => None,
    };
    let mut chain = Vec::new();
    let mut v = y;
    while let Some((name, input)) = ops(v) {
        chain.push(name);
        v = input;
    }
    assert_eq!(chain, ["Mul", "Clip", "Round", "Div"]);
    assert_eq!(v, g.inputs[0]);
    let x = kerf_ir::Tensor::from_f32(vec![1, 4], &[-1.0, 0.3, 0.75, 300.0]).unwrap();
    assert_eq!(kerf_ir::eval::eval_graph(&g, &[x]).unwrap()[0].to_f32_vec(), vec![0.0, 0.5, 1.0, 127.5]);
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert_contains(&qdq(bad).err(), &["QuantizeLinear", "y_scale element 0 is", "must be positive and finite"]);
    }
    // per-axis scales must have one value per element of the axis: 3 for 4 columns
    let per_axis = M::new(13)
        .input("x", &[1, 4])
        .init_f32("s", &[3], &[0.5, 0.25, 0.125])
        .op("QuantizeLinear", &["x", "s"], "q", vec![ai("axis", 1)])
        .output("q");
    assert_contains(&per_axis.err(), &["QuantizeLinear", "of shape [3]", "1-D of length 4", "axis 1"]);
}

/// ONNX Runtime's `com.microsoft` QGemm (what its QOperator quantiser
/// writes for a Gemm) imports: `alpha · a_scale·b_scale[n] · (Σ (a −
/// a_zp)·b + C[n])` (C joins the int32 sum, as ONNX Runtime's kernel adds
/// it), f32 out without `y_scale`; other contrib ops stay unknown, and a
/// non-int32 C is an error naming the node.
#[test]
fn onnx_runtime_qgemm() {
    let int_tensor = |name: &str, dtype: i32, dims: &[i64], vals: &[i32]| {
        let mut t = TensorProto::new();
        t.name = name.into();
        t.data_type = dtype;
        t.dims = dims.to_vec();
        t.int32_data = vals.to_vec();
        t
    };
    let (u8_, i8_, i32_) = (2, 3, 6);
    let b: Vec<i32> = vec![1, -2, 3, -4, 5, 6, -7, 8, -9, 10, 11, -12];
    let qgemm = |c_type: i32| {
        let mut m = M::new(13)
            .input("x", &[2, 4])
            .init_f32("sx", &[], &[0.5])
            .init(int_tensor("zx", u8_, &[], &[3]))
            .init_f32("sb", &[3], &[0.25, 0.5, 1.0])
            .init(int_tensor("zb", i8_, &[3], &[0, 0, 0]))
            .init(int_tensor("b", i8_, &[3, 4], &b))
            .init(int_tensor("c", c_type, &[3], &[8, -4, 2]))
            .op("QuantizeLinear", &["x", "sx", "zx"], "q", vec![])
            .node(
                "QGemm",
                "qg",
                &["q", "sx", "zx", "b", "sb", "zb", "c"],
                &["y"],
                vec![af("alpha", 2.0), ai("transB", 1)],
            )
            .output("y");
        m.model.graph.as_mut().unwrap().node[1].domain = "com.microsoft".into();
        if c_type != i32_ {
            let g = m.model.graph.as_mut().unwrap();
            g.initializer.retain(|t| t.name != "c");
            g.initializer.push(tensor_f32("c", &[3], &[8.0, -4.0, 2.0]));
        }
        m
    };
    let g = qgemm(i32_).ok();
    let xv = [1.0f32, -0.5, 2.0, 0.0, 3.0, 1.5, -1.0, 0.5];
    let x = kerf_ir::Tensor::from_f32(vec![2, 4], &xv).unwrap();
    let got = kerf_ir::eval::eval_graph(&g, &[x]).unwrap()[0].to_f32_vec();
    let (sb, c) = ([0.25f64, 0.5, 1.0], [8.0f64, -4.0, 2.0]);
    for r in 0..2 {
        for n in 0..3 {
            // the codes QuantizeLinear gives, centred on the zero point
            let dot: f64 = (0..4).map(|k| (f64::from(xv[r * 4 + k]) / 0.5).round() * f64::from(b[n * 4 + k])).sum();
            let want = 2.0 * 0.5 * sb[n] * (dot + c[n]);
            assert!((f64::from(got[r * 3 + n]) - want).abs() < 1e-5, "y[{r}, {n}] = {} vs {want}", got[r * 3 + n]);
        }
    }
    assert_contains(&qgemm(1).err(), &["qg", "C must be int32, got f32"]);
}
