//! Conversion of each op family: the IR ops produced, their resolved
//! attributes and the inferred shapes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

mod common;

use common::*;
use kerf_ir::op::{CoordMode, Direction, NearestMode, PadMode, ReduceKind, ResizeMode};
use kerf_ir::{BinaryOp, DType, Op, UnaryOp, ValueDef};

fn conv_window(g: &kerf_ir::Graph) -> kerf_ir::op::Window {
    match &g.nodes[0].op {
        Op::Conv(c) => c.window.clone(),
        Op::MaxPool(p) | Op::AveragePool(p) => p.window.clone(),
        other => panic!("expected a conv, got {other:?}"),
    }
}

#[test]
fn conv_auto_pad_same_upper_lower_valid() {
    let base = |pad: &str, k: i64, s: i64| {
        M::new(17)
            .input("x", &[1, 3, 7, 7])
            .weight("w", &[4, 3, k, k])
            .op("Conv", &["x", "w"], "y", vec![astr("auto_pad", pad), ais("strides", &[s, s])])
            .output("y")
    };
    // 7 / stride 2 -> 4 outputs; total pad (4-1)*2 + 3 - 7 = 2.
    let g = base("SAME_UPPER", 3, 2).ok();
    assert_eq!(out_shape(&g, "y"), vec![1, 4, 4, 4]);
    assert_eq!(conv_window(&g).pads, vec![1, 1, 1, 1]);
    // kernel 2, stride 1: total 1, upper puts it at the end, lower at the start.
    let g = base("SAME_UPPER", 2, 1).ok();
    assert_eq!(conv_window(&g).pads, vec![0, 0, 1, 1]);
    assert_eq!(out_shape(&g, "y"), vec![1, 4, 7, 7]);
    let g = base("SAME_LOWER", 2, 1).ok();
    assert_eq!(conv_window(&g).pads, vec![1, 1, 0, 0]);
    let g = base("VALID", 3, 2).ok();
    assert_eq!(conv_window(&g).pads, vec![0, 0, 0, 0]);
    assert_eq!(out_shape(&g, "y"), vec![1, 4, 3, 3]);
}

#[test]
fn conv_1d_depthwise_dilated_with_bias() {
    let g = M::new(17)
        .input("x", &[1, 4, 10])
        .weight("w", &[4, 1, 3])
        .weight("b", &[4])
        .op("Conv", &["x", "w", "b"], "y", vec![ai("group", 4), ais("dilations", &[2]), ais("pads", &[1, 1])])
        .output("y")
        .ok();
    // 10 + 2 - (3-1)*2 - 1 + 1 = 8
    assert_eq!(out_shape(&g, "y"), vec![1, 4, 8]);
    match &g.nodes[0].op {
        Op::Conv(c) => {
            assert_eq!(c.group, 4);
            assert_eq!(c.window.dilations, vec![2]);
            assert_eq!(c.layer.0, "y");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(g.nodes[0].inputs.len(), 3);
}

#[test]
fn conv_transpose_output_shape_and_padding() {
    let m = |attrs| {
        M::new(17)
            .input("x", &[1, 2, 4, 4])
            .weight("w", &[2, 3, 3, 3])
            .op("ConvTranspose", &["x", "w"], "y", attrs)
            .output("y")
    };
    let g = m(vec![ais("strides", &[2, 2])]).ok();
    assert_eq!(out_shape(&g, "y"), vec![1, 3, 9, 9]);
    let g = m(vec![ais("strides", &[2, 2]), ais("output_padding", &[1, 1])]).ok();
    assert_eq!(out_shape(&g, "y"), vec![1, 3, 10, 10]);
    let g = m(vec![ais("strides", &[2, 2]), ais("output_shape", &[8, 8])]).ok();
    assert_eq!(out_shape(&g, "y"), vec![1, 3, 8, 8]);
    match &g.nodes[0].op {
        Op::ConvTranspose(c) => assert_eq!(c.window.pads, vec![1, 1, 0, 0]),
        other => panic!("{other:?}"),
    }
    // An output_shape beyond the full output becomes output padding (ONNX
    // test case convtranspose_output_shape: zeros in the extra cells).
    let g = M::new(17)
        .input("x", &[1, 1, 3, 3])
        .weight("w", &[1, 2, 3, 3])
        .op("ConvTranspose", &["x", "w"], "y", vec![ais("strides", &[3, 2]), ais("output_shape", &[10, 8])])
        .output("y")
        .ok();
    assert_eq!(out_shape(&g, "y"), vec![1, 2, 10, 8]);
    match &g.nodes[0].op {
        Op::ConvTranspose(c) => {
            assert_eq!(c.output_padding, vec![1, 1]);
            assert_eq!(c.window.pads, vec![0, 0, 0, 0]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn pools() {
    let g = M::new(17)
        .input("x", &[1, 2, 7, 7])
        .op("MaxPool", &["x"], "m", vec![ais("kernel_shape", &[3, 3]), ais("strides", &[2, 2]), ai("ceil_mode", 1)])
        .op(
            "AveragePool",
            &["m"],
            "a",
            vec![ais("kernel_shape", &[2, 2]), ais("pads", &[1, 1, 1, 1]), ai("count_include_pad", 1)],
        )
        .op("GlobalAveragePool", &["a"], "ga", vec![])
        .op("GlobalMaxPool", &["a"], "gm", vec![])
        .output("ga")
        .output("gm")
        .ok();
    assert_eq!(op_names(&g), vec!["MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"]);
    assert_eq!(g.ty(g.nodes[0].outputs[0]).shape, vec![1, 2, 3, 3]);
    assert_eq!(g.ty(g.nodes[1].outputs[0]).shape, vec![1, 2, 4, 4]);
    assert!(matches!(&g.nodes[1].op, Op::AveragePool(p) if p.count_include_pad));
    assert_eq!(out_shape(&g, "ga"), vec![1, 2, 1, 1]);
}

#[test]
fn gemm_matmul_and_unique_layer_names() {
    let g = M::new(17)
        .input("x", &[2, 8])
        .weight("w", &[4, 8])
        .weight("b", &[4])
        .weight("w2", &[4, 3])
        .node("Gemm", "", &["x", "w", "b"], &["h"], vec![ai("transB", 1), af("alpha", 0.5)])
        .node("MatMul", "", &["h", "w2"], &["m"], vec![])
        .node("MatMul", "dup", &["m", "w3"], &["y"], vec![])
        .node("MatMul", "dup", &["y", "w3"], &["z"], vec![])
        .init(tensor_f32("w3", &[3, 3], &[0.0; 9]))
        .output("z")
        .ok();
    assert_eq!(out_shape(&g, "z"), vec![2, 3]);
    let layers: Vec<String> = g.nodes.iter().map(|n| n.op.layer().unwrap().0.clone()).collect();
    assert_eq!(layers, vec!["gemm_0", "matmul_1", "dup", "dup_1"]);
    match &g.nodes[0].op {
        Op::Gemm(gm) => {
            assert!(gm.trans_b && !gm.trans_a);
            assert_eq!(gm.alpha.get(), 0.5);
            assert_eq!(gm.beta.get(), 1.0);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(kerf_ir::stats::totals(&g).macs, 2 * 4 * 8 + 2 * 3 * 4 + 2 * 3 * 3 * 2);
}

#[test]
fn elementwise_and_variadic() {
    let g = M::new(17)
        .input("x", &[2, 3])
        .input("y", &[3])
        .op("Add", &["x", "y"], "a", vec![])
        .op("Sum", &["a", "x", "y"], "s", vec![])
        .op("Mean", &["s", "x"], "mean", vec![])
        .op("Max", &["mean"], "mx", vec![])
        .op("LeakyRelu", &["mx"], "lr", vec![af("alpha", 0.2)])
        .op("HardSigmoid", &["lr"], "hs", vec![])
        .op("Gelu", &["hs"], "ge", vec![astr("approximate", "tanh")])
        .op("Greater", &["ge", "x"], "gt", vec![])
        .op("Where", &["gt", "ge", "x"], "w", vec![])
        .output("w")
        .ok();
    assert_eq!(
        op_names(&g),
        vec!["Add", "Add", "Add", "Add", "Div", "Identity", "LeakyRelu", "HardSigmoid", "Gelu", "Greater", "Where"]
    );
    assert_eq!(g.nodes[6].op, Op::Unary(UnaryOp::LeakyRelu { alpha: 0.2.into() }));
    assert_eq!(g.nodes[7].op, Op::Unary(UnaryOp::HardSigmoid { alpha: 0.2.into(), beta: 0.5.into() }));
    assert_eq!(g.nodes[8].op, Op::Unary(UnaryOp::Gelu { tanh: true }));
    assert_eq!(g.ty(g.nodes[9].outputs[0]).dtype, DType::Bool);
    // Mean divides by the input count, a derived scalar constant.
    let div = &g.nodes[4];
    assert_eq!(g.const_of(div.inputs[1]).unwrap().to_f32_vec(), vec![2.0]);
    assert_eq!(out_shape(&g, "w"), vec![2, 3]);
}

#[test]
fn clip_forms() {
    let g = M::new(11)
        .input("x", &[4])
        .init_f32("lo", &[], &[0.0])
        .init_f32("hi", &[], &[6.0])
        .op("Clip", &["x", "lo", "hi"], "y", vec![])
        .op("Clip", &["y", "", "hi"], "z", vec![])
        .output("z")
        .ok();
    assert_eq!(g.nodes[0].op, Op::Unary(UnaryOp::Clip { min: 0.0.into(), max: 6.0.into() }));
    assert_eq!(g.nodes[1].op, Op::Unary(UnaryOp::Clip { min: f32::NEG_INFINITY.into(), max: 6.0.into() }));
    let g = M::new(6).input("x", &[4]).op("Clip", &["x"], "y", vec![af("min", -1.0), af("max", 1.0)]).output("y").ok();
    assert_eq!(g.nodes[0].op, Op::Unary(UnaryOp::Clip { min: (-1.0).into(), max: 1.0.into() }));
    // a bound computed at run time stays a runtime input: min(max(x, lo), 6)
    let g = M::new(13)
        .input("x", &[4])
        .input("lo", &[])
        .init_f32("hi", &[], &[6.0])
        .op("Clip", &["x", "lo", "hi"], "y", vec![])
        .output("y")
        .ok();
    assert_eq!(op_names(&g), vec!["Max", "Clip"]);
    assert_eq!(g.nodes[1].op, Op::Unary(UnaryOp::Clip { min: f32::NEG_INFINITY.into(), max: 6.0.into() }));
    let x = kerf_ir::Tensor::from_f32(vec![4], &[-3.0, 0.5, 2.0, 9.0]).unwrap();
    let lo = kerf_ir::Tensor::from_f32(vec![], &[1.0]).unwrap();
    assert_eq!(kerf_ir::eval::eval_graph(&g, &[x, lo]).unwrap()[0].to_f32_vec(), vec![1.0, 1.0, 2.0, 6.0]);
    let e = M::new(13).input("x", &[4]).input("lo", &[2]).op("Clip", &["x", "lo"], "y", vec![]).output("y").err();
    assert_eq!(e, "node 'y' (Clip): input 'min' must be a scalar, got shape [2]");
}

#[test]
fn softmax_coerces_to_2d_before_opset_13() {
    let m = |opset| {
        M::new(opset)
            .input("x", &[2, 3, 4])
            .op("Softmax", &["x"], "y", vec![ai("axis", 1)])
            .op("LogSoftmax", &["y"], "z", vec![])
            .output("z")
    };
    let g = m(11).ok();
    assert_eq!(op_names(&g), vec!["Reshape", "Softmax", "Reshape", "Reshape", "LogSoftmax", "Reshape"]);
    assert_eq!(g.nodes[0].op, Op::Reshape { shape: vec![2, 12] });
    assert_eq!(g.nodes[1].op, Op::Softmax { axis: 1 });
    assert_eq!(g.nodes[2].op, Op::Reshape { shape: vec![2, 3, 4] });
    let g = m(13).ok();
    assert_eq!(ops(&g), vec![&Op::Softmax { axis: 1 }, &Op::LogSoftmax { axis: 2 }]);
}

#[test]
fn norms() {
    let g = M::new(17)
        .input("x", &[2, 3, 5])
        .weight("s", &[3])
        .weight("b", &[3])
        .weight("m", &[3])
        .weight("v", &[3])
        .weight("ls", &[5])
        .op("BatchNormalization", &["x", "s", "b", "m", "v"], "bn", vec![af("epsilon", 1e-3)])
        .op("InstanceNormalization", &["bn", "s", "b"], "in", vec![])
        .op("LayerNormalization", &["in", "ls"], "ln", vec![])
        .output("ln")
        .ok();
    assert_eq!(g.nodes[0].op, Op::BatchNorm { epsilon: 1e-3.into() });
    assert_eq!(g.nodes[1].op, Op::InstanceNorm { epsilon: 1e-5.into() });
    assert_eq!(g.nodes[2].op, Op::LayerNorm { axis: 2, epsilon: 1e-5.into() });
    assert_eq!(out_shape(&g, "ln"), vec![2, 3, 5]);
}

#[test]
fn reshape_flatten_squeeze_unsqueeze_become_reshape() {
    let g = M::new(13)
        .input("x", &[2, 3, 4])
        .init_i64("shape", &[3], &[0, -1, 2])
        .init_i64("ax0", &[1], &[1])
        .init_i64("ax_neg", &[2], &[-1, 1])
        .op("Reshape", &["x", "shape"], "r", vec![])
        .op("Flatten", &["r"], "f", vec![ai("axis", 2)])
        .op("Unsqueeze", &["f", "ax_neg"], "u", vec![])
        .op("Squeeze", &["u", "ax0"], "s", vec![])
        .op("Squeeze", &["s"], "s2", vec![])
        .op("Transpose", &["s2"], "t", vec![])
        .output("t")
        .ok();
    assert_eq!(
        ops(&g),
        vec![
            &Op::Reshape { shape: vec![2, 6, 2] },
            &Op::Reshape { shape: vec![12, 2] },
            &Op::Reshape { shape: vec![12, 1, 2, 1] },
            &Op::Reshape { shape: vec![12, 2, 1] },
            &Op::Reshape { shape: vec![12, 2] },
            &Op::Transpose { perm: vec![1, 0] },
        ]
    );
    // allowzero keeps a literal 0.
    let g = M::new(14)
        .input("x", &[0, 3])
        .init_i64("shape", &[2], &[3, 0])
        .op("Reshape", &["x", "shape"], "r", vec![ai("allowzero", 1)])
        .output("r")
        .ok();
    assert_eq!(out_shape(&g, "r"), vec![3, 0]);
    // Unsqueeze before opset 13 takes an attribute.
    let g = M::new(11).input("x", &[3]).op("Unsqueeze", &["x"], "u", vec![ais("axes", &[0, 2])]).output("u").ok();
    assert_eq!(out_shape(&g, "u"), vec![1, 3, 1]);
}

#[test]
fn split_concat() {
    let g = M::new(13)
        .input("x", &[2, 7])
        .init_i64("sp", &[2], &[3, 4])
        .node("Split", "sp", &["x", "sp"], &["a", "b"], vec![ai("axis", -1)])
        .op("Concat", &["b", "a"], "c", vec![ai("axis", 1)])
        .output("c")
        .ok();
    assert_eq!(g.nodes[0].op, Op::Split { axis: 1, sizes: vec![3, 4] });
    assert_eq!(out_shape(&g, "c"), vec![2, 7]);
    let g = M::new(18)
        .input("x", &[7])
        .node("Split", "sp", &["x"], &["a", "b", "c"], vec![ai("num_outputs", 3)])
        .output("c")
        .ok();
    assert_eq!(g.nodes[0].op, Op::Split { axis: 0, sizes: vec![3, 3, 1] });
    let g = M::new(11).input("x", &[6]).node("Split", "sp", &["x"], &["a", "b"], vec![]).output("b").ok();
    assert_eq!(g.nodes[0].op, Op::Split { axis: 0, sizes: vec![3, 3] });
}

#[test]
fn slice_normalisation_including_negative_steps() {
    let g = M::new(13)
        .input("x", &[5, 6, 3])
        .init_i64("st", &[2], &[-1, 4])
        .init_i64("en", &[2], &[-100, 0])
        .init_i64("ax", &[2], &[0, 1])
        .init_i64("sp", &[2], &[-1, -2])
        .op("Slice", &["x", "st", "en", "ax", "sp"], "y", vec![])
        .output("y")
        .ok();
    assert_eq!(g.nodes[0].op, Op::Slice { starts: vec![4, 4, 0], ends: vec![-1, 0, 3], steps: vec![-1, -2, 1] });
    assert_eq!(out_shape(&g, "y"), vec![5, 2, 3]);
    // Huge ends clamp, negative axes count from the back, starts past the end give empty.
    let g = M::new(13)
        .input("x", &[5, 6])
        .init_i64("st", &[2], &[1, 10])
        .init_i64("en", &[2], &[i64::MAX, 20])
        .init_i64("ax", &[2], &[-1, 0])
        .op("Slice", &["x", "st", "en", "ax"], "y", vec![])
        .output("y")
        .ok();
    assert_eq!(g.nodes[0].op, Op::Slice { starts: vec![5, 1], ends: vec![5, 6], steps: vec![1, 1] });
    assert_eq!(out_shape(&g, "y"), vec![0, 5]);
    // Opset < 10: attributes.
    let g = M::new(9)
        .input("x", &[4, 4])
        .op("Slice", &["x"], "y", vec![ais("starts", &[1]), ais("ends", &[-1]), ais("axes", &[1])])
        .output("y")
        .ok();
    assert_eq!(out_shape(&g, "y"), vec![4, 2]);
    // Full reverse with INT64_MIN end.
    let g = M::new(13)
        .input("x", &[4])
        .init_i64("st", &[1], &[-1])
        .init_i64("en", &[1], &[i64::MIN])
        .init_i64("sp", &[1], &[-1])
        .op("Slice", &["x", "st", "en", "", "sp"], "y", vec![])
        .output("y")
        .ok();
    assert_eq!(g.nodes[0].op, Op::Slice { starts: vec![3], ends: vec![-1], steps: vec![-1] });
    assert_eq!(out_shape(&g, "y"), vec![4]);
}

#[test]
fn gather_expand_tile_pad() {
    let g = M::new(13)
        .input("x", &[3, 1])
        .init_i64("idx", &[2], &[2, 0])
        .init_i64("shape", &[3], &[2, 1, 4])
        .init_i64("rep", &[3], &[1, 2, 1])
        .init_i64("pads", &[6], &[0, 1, 0, 0, 1, 0])
        .op("Gather", &["x", "idx"], "g", vec![])
        .op("Expand", &["g", "shape"], "e", vec![])
        .op("Tile", &["e", "rep"], "t", vec![])
        .op("Pad", &["t", "pads"], "p", vec![astr("mode", "reflect")])
        .output("p")
        .ok();
    assert_eq!(g.nodes[0].op, Op::Gather { axis: 0 });
    assert_eq!(g.nodes[1].op, Op::Expand { shape: vec![2, 2, 4] });
    assert_eq!(g.nodes[2].op, Op::Tile { repeats: vec![1, 2, 1] });
    assert_eq!(g.nodes[3].op, Op::Pad { pads: vec![0, 1, 0, 0, 1, 0], mode: PadMode::Reflect, value: 0.0.into() });
    assert_eq!(out_shape(&g, "p"), vec![2, 6, 4]);
    // Opset 18 axes input: pads follow the given axis order.
    let g = M::new(18)
        .input("x", &[2, 3])
        .init_i64("pads", &[4], &[1, 2, 3, 4])
        .init_i64("ax", &[2], &[1, 0])
        .init_f32("v", &[], &[7.0])
        .op("Pad", &["x", "pads", "v", "ax"], "p", vec![])
        .output("p")
        .ok();
    assert_eq!(g.nodes[0].op, Op::Pad { pads: vec![2, 1, 4, 3], mode: PadMode::Constant, value: 7.0.into() });
}

#[test]
fn shape_subgraph_folds_to_static_reshape() {
    let g = M::new(13)
        .input("x", &[2, 3, 4])
        .init_i64("zero", &[], &[0])
        .init_i64("ax", &[1], &[0])
        .init_i64("minus1", &[1], &[-1])
        .op("Shape", &["x"], "s", vec![])
        .op("Gather", &["s", "zero"], "n", vec![])
        .op("Unsqueeze", &["n", "ax"], "u", vec![])
        .op("Concat", &["u", "minus1"], "c", vec![ai("axis", 0)])
        .op("Reshape", &["x", "c"], "y", vec![])
        .output("y")
        .ok();
    assert_eq!(ops(&g), vec![&Op::Reshape { shape: vec![2, 12] }]);
    assert_eq!(g.nodes.len(), 1, "only the reshape survives");
    assert_eq!(g.weights.len(), 0, "the folded shape is an attribute, not a weight");
}

#[test]
fn constant_of_shape_range_size_cast_constant() {
    let mut v = tensor_i64("v", &[1], &[3]);
    v.name = String::new();
    let g = M::new(13)
        .input("x", &[2, 5])
        .init_i64("s", &[1], &[5])
        .op("ConstantOfShape", &["s"], "c", vec![at("value", v)])
        .op("Range", &["zero", "five", "one"], "r", vec![])
        .op("Add", &["c", "r"], "sum", vec![])
        .op("Cast", &["sum"], "f", vec![ai("to", 1)])
        .op("Size", &["x"], "n", vec![])
        .op("Constant", &[], "k", vec![afs("value_floats", &[1.0, 2.0, 3.0, 4.0, 5.0])])
        .op("Mul", &["f", "k"], "y", vec![])
        .op("Add", &["x", "y"], "z", vec![])
        .init_i64("zero", &[], &[0])
        .init_i64("five", &[], &[5])
        .init_i64("one", &[], &[1])
        .output("z")
        .output("n")
        .ok();
    // Everything but the final Add folds.
    assert_eq!(op_names(&g), vec!["Add"]);
    let y = g.const_of(g.nodes[0].inputs[1]).unwrap();
    assert_eq!(y.to_f32_vec(), vec![3.0, 8.0, 15.0, 24.0, 35.0]);
    let n = g.outputs.iter().find(|o| o.name == "n").unwrap();
    assert_eq!(g.const_of(n.value).unwrap().to_i64_vec(), vec![10]);
}

#[test]
fn constant_nodes_count_as_params_and_identity_keeps_them() {
    let g = M::new(13)
        .input("x", &[4])
        .op("Constant", &[], "k", vec![at("value", tensor_f32("", &[4], &[1.0, 2.0, 3.0, 4.0]))])
        .op("Identity", &["k"], "k2", vec![])
        .op("Add", &["x", "k2"], "y", vec![])
        .output("y")
        .ok();
    assert_eq!(kerf_ir::stats::totals(&g).params, 4);
    let w = match g.value(g.nodes[0].inputs[1]).def {
        ValueDef::Const(w) => w,
        other => panic!("{other:?}"),
    };
    assert_eq!(g.weights.get(w).origin, kerf_ir::Origin::ConstantNode);
}

#[test]
fn dropout_mask_is_all_true() {
    let g = M::new(13)
        .input("x", &[2, 2])
        .node("Dropout", "d", &["x"], &["y", "mask"], vec![])
        .output("y")
        .output("mask")
        .ok();
    assert_eq!(op_names(&g), vec!["Dropout"]);
    let mask = g.outputs.iter().find(|o| o.name == "mask").unwrap();
    let t = g.const_of(mask.value).unwrap();
    assert_eq!(t.dtype(), DType::Bool);
    assert_eq!(t.to_i64_vec(), vec![1, 1, 1, 1]);
}

#[test]
fn reductions_per_opset() {
    let g = M::new(13)
        .input("x", &[2, 3, 4])
        .init_i64("ax", &[1], &[1])
        .op("ReduceMean", &["x"], "m", vec![ais("axes", &[-1])])
        .op("ReduceSum", &["m", "ax"], "s", vec![ai("keepdims", 0)])
        .op("ReduceL2", &["s"], "l2", vec![])
        .op("ArgMax", &["x"], "am", vec![ai("axis", 2), ai("keepdims", 0)])
        .output("l2")
        .output("am")
        .ok();
    assert_eq!(g.nodes[0].op, Op::Reduce { kind: ReduceKind::Mean, axes: vec![2], keepdims: true });
    assert_eq!(g.nodes[1].op, Op::Reduce { kind: ReduceKind::Sum, axes: vec![1], keepdims: false });
    assert_eq!(g.nodes[2].op, Op::Reduce { kind: ReduceKind::L2, axes: vec![0, 1], keepdims: true });
    assert_eq!(out_shape(&g, "l2"), vec![1, 1]);
    assert_eq!(out_shape(&g, "am"), vec![2, 3]);
    // Opset 18: axes input; empty axes with noop is the identity.
    let g = M::new(18)
        .input("x", &[2, 3])
        .init_i64("ax", &[1], &[0])
        .op("ReduceMax", &["x", "ax"], "m", vec![])
        .op("ReduceMin", &["m"], "n", vec![ai("noop_with_empty_axes", 1)])
        .output("n")
        .ok();
    assert_eq!(g.nodes[0].op, Op::Reduce { kind: ReduceKind::Max, axes: vec![0], keepdims: true });
    assert_eq!(g.nodes[1].op, Op::Identity);
}

/// `tf_crop_and_resize` of a `[1, 2, 5, 4]` image to `[1, 2, 7, 3]` with
/// the roi as a graph input (`runtime`) or an initializer.
fn crop_and_resize(mode: &str, nearest: &str, roi: &[f32], runtime: bool) -> M {
    let m = M::new(19).input("x", &[1, 2, 5, 4]).init_i64("sz", &[4], &[1, 2, 7, 3]);
    let m = if runtime { m.input("roi", &[8]) } else { m.init_f32("roi", &[8], roi) };
    m.op(
        "Resize",
        &["x", "roi", "", "sz"],
        "y",
        vec![
            astr("coordinate_transformation_mode", "tf_crop_and_resize"),
            astr("mode", mode),
            astr("nearest_mode", nearest),
            af("extrapolation_value", -7.5),
        ],
    )
    .output("y")
}

#[test]
fn resize_with_a_runtime_roi_matches_the_constant_roi() {
    let x: Vec<f32> = (0..40).map(|i| ((i * 7) % 11) as f32 - 3.25).collect();
    let xt = kerf_ir::Tensor::from_f32(vec![1, 2, 5, 4], &x).unwrap();
    // Inside the image, past both edges (extrapolated), and a flipped box.
    let rois: [[f32; 8]; 3] = [
        [0.0, 0.0, 0.1, 0.2, 1.0, 1.0, 0.9, 0.75],
        [0.0, 0.0, -0.3, 0.4, 1.0, 1.0, 1.2, 1.1],
        [0.0, 0.0, 0.8, 0.9, 1.0, 1.0, 0.2, 0.1],
    ];
    let modes = [
        ("linear", "round_prefer_floor"),
        ("nearest", "round_prefer_floor"),
        ("nearest", "round_prefer_ceil"),
        ("nearest", "floor"),
        ("nearest", "ceil"),
    ];
    for (mode, nearest) in modes {
        let g = crop_and_resize(mode, nearest, &[0.0; 8], true).ok();
        assert!(op_names(&g).contains(&"MatMul"), "{mode}: {:?}", op_names(&g));
        for roi in &rois {
            let want = crop_and_resize(mode, nearest, roi, false).ok();
            let want = kerf_ir::eval::eval_graph(&want, std::slice::from_ref(&xt)).unwrap()[0].to_f32_vec();
            let rt = kerf_ir::Tensor::from_f32(vec![8], roi).unwrap();
            let got = kerf_ir::eval::eval_graph(&g, &[xt.clone(), rt]).unwrap()[0].to_f32_vec();
            assert_eq!(got.len(), 2 * 7 * 3);
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!((a - b).abs() <= 1e-5 + 1e-5 * b.abs(), "{mode}/{nearest} roi {roi:?} [{i}]: {a} vs {b}");
            }
        }
    }
    // Cubic weights on a run-time roi are not built: the roi must be bound.
    let e = crop_and_resize("cubic", "floor", &[0.0; 8], true).err();
    assert!(e.contains("input 'roi' must be a constant"), "{e}");
}

#[test]
fn resize_scales_and_sizes() {
    let g = M::new(13)
        .input("x", &[1, 2, 3, 4])
        .init_f32("sc", &[4], &[1.0, 1.0, 2.0, 1.5])
        .op("Resize", &["x", "", "sc"], "y", vec![astr("mode", "nearest")])
        .output("y")
        .ok();
    match &g.nodes[0].op {
        Op::Resize(r) => {
            assert_eq!(r.sizes, vec![1, 2, 6, 6]);
            assert_eq!(r.mode, ResizeMode::Nearest(NearestMode::RoundPreferFloor));
            assert_eq!(r.coord, CoordMode::HalfPixel);
            assert_eq!(r.scales[3].get(), 1.5);
        }
        other => panic!("{other:?}"),
    }
    let g = M::new(13)
        .input("x", &[1, 2, 3, 4])
        .init_f32("sc", &[0], &[])
        .init_i64("sz", &[4], &[1, 2, 6, 2])
        .op(
            "Resize",
            &["x", "", "sc", "sz"],
            "y",
            vec![astr("mode", "linear"), astr("coordinate_transformation_mode", "align_corners")],
        )
        .output("y")
        .ok();
    match &g.nodes[0].op {
        Op::Resize(r) => {
            assert_eq!(r.sizes, vec![1, 2, 6, 2]);
            assert_eq!(r.mode, ResizeMode::Linear);
            assert_eq!(r.coord, CoordMode::AlignCorners);
            assert_eq!(r.scales[2].get(), 2.0);
            assert_eq!(r.scales[3].get(), 0.5);
        }
        other => panic!("{other:?}"),
    }
    let g = M::new(9)
        .input("x", &[1, 1, 2, 2])
        .init_f32("sc", &[4], &[1.0, 1.0, 2.0, 2.0])
        .op("Upsample", &["x", "sc"], "y", vec![])
        .output("y")
        .ok();
    assert_eq!(out_shape(&g, "y"), vec![1, 1, 4, 4]);
}

#[test]
fn lstm_materialises_optional_inputs() {
    let (h, i) = (4i64, 3i64);
    let g = M::new(14)
        .input("x", &[5, 2, i])
        .weight("w", &[1, 4 * h, i])
        .weight("r", &[1, 4 * h, h])
        .node("LSTM", "", &["x", "w", "r"], &["y", "yh", "yc"], vec![ai("hidden_size", h)])
        .output("y")
        .output("yh")
        .output("yc")
        .ok();
    assert_eq!(g.nodes.len(), 1);
    let n = &g.nodes[0];
    assert_eq!(n.inputs.len(), 7);
    let shapes: Vec<Vec<usize>> = n.inputs[3..].iter().map(|&v| g.ty(v).shape.clone()).collect();
    assert_eq!(shapes, vec![vec![1, 32], vec![1, 2, 4], vec![1, 2, 4], vec![1, 12]]);
    for &v in &n.inputs[3..] {
        let t = g.const_of(v).expect("materialised constant");
        assert!(t.to_f32_vec().iter().all(|&x| x == 0.0));
    }
    match &n.op {
        Op::Lstm(r) => {
            assert_eq!(r.hidden, 4);
            assert_eq!(r.direction, Direction::Forward);
            assert_eq!(r.activations.len(), 3);
            assert_eq!(r.layer.0, "lstm_0");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(out_shape(&g, "y"), vec![5, 1, 2, 4]);
    assert_eq!(out_shape(&g, "yc"), vec![1, 2, 4]);
    // Only the weights count as params, not the materialised zeros.
    assert_eq!(kerf_ir::stats::totals(&g).params, (16 * 3 + 16 * 4) as u64);
}

#[test]
fn gru_layout_1_gets_transposes_and_sequence_lens_kept() {
    let (h, i) = (2i64, 3i64);
    let m = |seq_lens: &[i32]| {
        let mut sl = onnx_protobuf::TensorProto::new();
        sl.name = "sl".into();
        sl.dims = vec![4];
        sl.data_type = 6;
        sl.int32_data = seq_lens.to_vec();
        M::new(14)
            .input("x", &[4, 5, i])
            .weight("w", &[2, 3 * h, i])
            .weight("r", &[2, 3 * h, h])
            .weight("b", &[2, 6 * h])
            .init(sl)
            .node(
                "GRU",
                "gru",
                &["x", "w", "r", "b", "sl"],
                &["y", "yh"],
                vec![ai("layout", 1), astr("direction", "bidirectional"), ai("linear_before_reset", 1)],
            )
            .output("y")
            .output("yh")
    };
    let g = m(&[5, 5, 5, 5]).ok();
    assert_eq!(op_names(&g), vec!["Transpose", "GRU", "Transpose", "Transpose"]);
    assert_eq!(out_shape(&g, "y"), vec![4, 5, 2, 2]);
    assert_eq!(out_shape(&g, "yh"), vec![4, 2, 2]);
    match &g.nodes[1].op {
        Op::Gru(r) => {
            assert!(r.linear_before_reset);
            assert_eq!(r.activations.len(), 4);
        }
        other => panic!("{other:?}"),
    }
    // Lengths that differ become the op's last input; one past seq is an error.
    let g = m(&[5, 3, 5, 5]).ok();
    assert_eq!(g.nodes[1].inputs.len(), 6);
    assert_eq!(g.ty(g.nodes[1].inputs[5]).dtype, kerf_ir::DType::I32);
    let e = m(&[5, 6, 5, 5]).err();
    assert_contains(&e, &["node 'gru' (GRU)", "sequence_lens", "[5, 6, 5, 5]", "outside [0, 5]"]);
}

#[test]
fn rnn_imports_with_one_activation_per_direction() {
    let (h, i) = (3i64, 2i64);
    let m = |acts: &[&str]| {
        let mut node_attrs = vec![ai("hidden_size", h), astr("direction", "bidirectional")];
        if !acts.is_empty() {
            let mut a = onnx_protobuf::AttributeProto::new();
            a.name = "activations".into();
            a.type_ = onnx_protobuf::attribute_proto::AttributeType::STRINGS.into();
            a.strings = acts.iter().map(|s| s.as_bytes().to_vec()).collect();
            node_attrs.push(a);
        }
        M::new(14)
            .input("x", &[5, 1, i])
            .weight("w", &[2, h, i])
            .weight("r", &[2, h, h])
            .node("RNN", "rnn", &["x", "w", "r"], &["y", "yh"], node_attrs)
            .output("y")
            .output("yh")
    };
    let g = m(&[]).ok();
    assert_eq!(op_names(&g), vec!["RNN"]);
    assert_eq!(out_shape(&g, "y"), vec![5, 2, 1, 3]);
    assert_eq!(out_shape(&g, "yh"), vec![2, 1, 3]);
    match &g.nodes[0].op {
        Op::Rnn(r) => assert_eq!(r.activations, vec![kerf_ir::op::Activation::Tanh; 2]),
        other => panic!("{other:?}"),
    }
    let g = m(&["Relu", "Tanh"]).ok();
    match &g.nodes[0].op {
        Op::Rnn(r) => {
            assert_eq!(r.activations, vec![kerf_ir::op::Activation::Relu, kerf_ir::op::Activation::Tanh])
        }
        other => panic!("{other:?}"),
    }
    let e = m(&["Bogus"]).err();
    assert_contains(&e, &["node 'rnn' (RNN)", "unknown activation 'bogus'"]);
}

#[test]
fn graph_metadata() {
    let m = M::new(17).input("x", &[1]).op("Relu", &["x"], "y", vec![]).output("y");
    let g = m.ok();
    assert_eq!(g.name, "model");
    assert_eq!(g.outputs[0].name, "y");
    assert_eq!(g.value(g.inputs[0]).name, "x");
    let opts = kerf_onnx::ImportOptions { name: Some("custom".into()), ..Default::default() };
    let g = kerf_onnx::load_model_bytes(&m.bytes(), None, &opts).unwrap();
    assert_eq!(g.name, "custom");
    assert!(kerf_onnx::supported_ops().contains(&"LSTM"));
    assert!(kerf_onnx::supported_ops().contains(&"Conv"));
    let _ = BinaryOp::Add;
}

/// Runs a single-input model on a constant by making the input an
/// initializer: everything folds, and the folded output is the result.
fn fold_with(m: M, input: onnx_protobuf::TensorProto, out: &str) -> kerf_ir::Tensor {
    let g = m.init(input).ok();
    let o = g.outputs.iter().find(|o| o.name == out).unwrap();
    g.const_of(o.value).unwrap_or_else(|| panic!("output {out} did not fold: {}", kerf_ir::text::print(&g))).clone()
}

#[test]
fn depth_to_space_and_back() {
    let vals: Vec<f32> = (0..48).map(|v| v as f32).collect();
    let x = || tensor_f32("x", &[1, 8, 2, 3], &vals);
    for mode in ["DCR", "CRD"] {
        let y = fold_with(
            M::new(13)
                .op("DepthToSpace", &["x"], "y", vec![ai("blocksize", 2), astr("mode", mode)])
                .op("SpaceToDepth", &["y"], "z", vec![ai("blocksize", 2), astr("mode", mode)])
                .output("y")
                .output("z"),
            x(),
            "y",
        );
        assert_eq!(y.shape(), &[1, 2, 4, 6]);
        let y = y.to_f32_vec();
        let (b, cp, h, w) = (2, 2, 2, 3);
        for c in 0..cp {
            for hh in 0..h * b {
                for ww in 0..w * b {
                    let (i, j, h0, w0) = (hh % b, ww % b, hh / b, ww / b);
                    let src_c = if mode == "DCR" { (i * b + j) * cp + c } else { c * b * b + i * b + j };
                    let want = vals[(src_c * h + h0) * w + w0];
                    assert_eq!(y[(c * h * b + hh) * w * b + ww], want, "{mode} c={c} h={hh} w={ww}");
                }
            }
        }
    }
    for mode in ["DCR", "CRD"] {
        let z = fold_with(
            M::new(13)
                .op("DepthToSpace", &["x"], "y", vec![ai("blocksize", 2), astr("mode", mode)])
                .op("SpaceToDepth", &["y"], "z", vec![ai("blocksize", 2), astr("mode", mode)])
                .output("z"),
            x(),
            "z",
        );
        assert_eq!(z.to_f32_vec(), vals, "SpaceToDepth inverts DepthToSpace in {mode}");
    }
}

#[test]
fn folded_slice_and_activation_values() {
    let x = tensor_f32("x", &[6], &[-2.0, -1.0, -0.5, 0.5, 1.0, 2.0]);
    let y = fold_with(
        M::new(13)
            .init_i64("st", &[1], &[-2])
            .init_i64("en", &[1], &[i64::MIN])
            .init_i64("sp", &[1], &[-2])
            .op("Slice", &["x", "st", "en", "", "sp"], "y", vec![])
            .output("y"),
        x.clone(),
        "y",
    );
    assert_eq!(y.to_f32_vec(), vec![1.0, -0.5, -2.0]);
    let m = M::new(13)
        .op("ThresholdedRelu", &["x"], "t", vec![af("alpha", 0.75)])
        .op("Celu", &["x"], "c", vec![af("alpha", 2.0)])
        .output("t")
        .output("c");
    let t = fold_with(m, x.clone(), "t");
    assert_eq!(t.to_f32_vec(), vec![0.0, 0.0, 0.0, 0.0, 1.0, 2.0]);
    let m = M::new(13).op("Celu", &["x"], "c", vec![af("alpha", 2.0)]).output("c");
    let c = fold_with(m, x, "c").to_f32_vec();
    for (v, &xi) in c.iter().zip(&[-2.0f32, -1.0, -0.5, 0.5, 1.0, 2.0]) {
        let want = xi.max(0.0) + (2.0 * ((xi / 2.0).exp() - 1.0)).min(0.0);
        assert!((v - want).abs() < 1e-6, "celu({xi}) = {v}, want {want}");
    }
}

#[test]
fn layer_norm_statistics_outputs() {
    let g = M::new(17)
        .input("x", &[2, 3, 4])
        .weight("s", &[3, 4])
        .node("LayerNormalization", "ln", &["x", "s"], &["y", "mean", "inv"], vec![ai("axis", 1)])
        .op("Mish", &["y"], "m", vec![])
        .output("m")
        .output("mean")
        .output("inv")
        .ok();
    assert_eq!(out_shape(&g, "m"), vec![2, 3, 4]);
    assert_eq!(out_shape(&g, "mean"), vec![2, 1, 1]);
    assert_eq!(out_shape(&g, "inv"), vec![2, 1, 1]);
    assert_eq!(
        g.nodes[1].op,
        Op::Reduce { kind: ReduceKind::Mean, axes: vec![1, 2], keepdims: true },
        "mean over the normalised axes"
    );
}

#[test]
fn lowered_elementwise_extras_fold_to_reference_values() {
    let x = || tensor_f32("x", &[5], &[f32::NAN, f32::NEG_INFINITY, -1.0, 0.25, f32::INFINITY]);
    let m = M::new(20)
        .op("IsNaN", &["x"], "nan", vec![])
        .op("IsInf", &["x"], "inf", vec![])
        .op("IsInf", &["x"], "pinf", vec![ai("detect_negative", 0)])
        .output("nan")
        .output("inf")
        .output("pinf");
    let g = m.init(x()).ok();
    let get = |n: &str| {
        let o = g.outputs.iter().find(|o| o.name == n).unwrap();
        g.const_of(o.value).unwrap().to_i64_vec()
    };
    assert_eq!(get("nan"), vec![1, 0, 0, 0, 0]);
    assert_eq!(get("inf"), vec![0, 1, 0, 0, 1]);
    assert_eq!(get("pinf"), vec![0, 0, 0, 0, 1]);

    let s = fold_with(
        M::new(13).op("Shrink", &["x"], "s", vec![af("lambd", 0.5), af("bias", 0.25)]).output("s"),
        tensor_f32("x", &[4], &[-2.0, -0.5, 0.4, 3.0]),
        "s",
    );
    assert_eq!(s.to_f32_vec(), vec![-1.75, 0.0, 0.0, 2.75]);
}

#[test]
fn trilu_and_eye_like() {
    let vals: Vec<f32> = (1..=12).map(|v| v as f32).collect();
    let t = fold_with(
        M::new(14).init_i64("k", &[], &[1]).op("Trilu", &["x", "k"], "t", vec![ai("upper", 0)]).output("t"),
        tensor_f32("x", &[3, 4], &vals),
        "t",
    );
    assert_eq!(t.to_f32_vec(), vec![1.0, 2.0, 0.0, 0.0, 5.0, 6.0, 7.0, 0.0, 9.0, 10.0, 11.0, 12.0]);
    let e = fold_with(
        M::new(14).op("EyeLike", &["x"], "e", vec![ai("k", -1), ai("dtype", 7)]).output("e"),
        tensor_f32("x", &[3, 3], &[0.0; 9]),
        "e",
    );
    assert_eq!(e.dtype(), DType::I64);
    assert_eq!(e.to_i64_vec(), vec![0, 0, 0, 1, 0, 0, 0, 1, 0]);
}

#[test]
fn lowered_normalisations() {
    let x = || tensor_f32("x", &[2, 2], &[3.0, 4.0, -6.0, 8.0]);
    let l2 = fold_with(M::new(13).op("LpNormalization", &["x"], "y", vec![]).output("y"), x(), "y");
    assert_eq!(l2.to_f32_vec(), vec![0.6, 0.8, -0.6, 0.8]);
    let rms = fold_with(
        M::new(23)
            .init_f32("s", &[2], &[1.0, 2.0])
            .op("RMSNormalization", &["x", "s"], "y", vec![af("epsilon", 0.0)])
            .output("y"),
        x(),
        "y",
    );
    let r0 = (12.5f32).sqrt();
    let r1 = (50.0f32).sqrt();
    for (got, want) in rms.to_f32_vec().iter().zip([3.0 / r0, 8.0 / r0, -6.0 / r1, 16.0 / r1]) {
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
    // GroupNormalization and LRN lower to InstanceNorm / AveragePool chains.
    let g = M::new(21)
        .input("x", &[1, 4, 3, 3])
        .weight("s", &[4])
        .weight("b", &[4])
        .op("GroupNormalization", &["x", "s", "b"], "gn", vec![ai("num_groups", 2)])
        .op("LRN", &["gn"], "lrn", vec![ai("size", 3)])
        .op("Hardmax", &["lrn"], "hm", vec![ai("axis", 1)])
        .output("hm")
        .ok();
    assert_eq!(out_shape(&g, "hm"), vec![1, 4, 3, 3]);
    assert!(g.nodes.iter().any(|n| matches!(n.op, Op::InstanceNorm { .. })));
    let pool = g.nodes.iter().find_map(|n| match &n.op {
        Op::AveragePool(p) => Some(p.clone()),
        _ => None,
    });
    let pool = pool.expect("LRN uses an average pool");
    assert!(pool.count_include_pad);
    assert_eq!(pool.window.kernel, vec![3, 1]);
    assert_eq!(pool.window.pads, vec![1, 0, 1, 0]);
}

#[test]
fn legacy_broadcast_and_prelu_before_opset_7() {
    let g = M::new(6)
        .input("x", &[2, 3, 4, 5])
        .weight("b", &[3, 4])
        .weight("slope", &[3])
        .op("Add", &["x", "b"], "y", vec![ai("broadcast", 1), ai("axis", 1)])
        .op("PRelu", &["y", "slope"], "z", vec![])
        .output("z")
        .ok();
    assert_eq!(out_shape(&g, "z"), vec![2, 3, 4, 5]);
    // B [3,4] aligned at axis 1 becomes [3,4,1]; the slope [3] becomes [3,1,1].
    let shapes: Vec<Vec<usize>> = g.nodes.iter().map(|n| g.ty(n.inputs[1]).shape.clone()).collect();
    assert_eq!(shapes, vec![vec![3, 4, 1], vec![3, 1, 1]]);
}

/// A QLinearMatMul of a u8 `A` (zero point 131) and a constant i8 `B`
/// (zero zero points, per-column scales) runs on the integer conv kernel
/// (a 1x1 accumulating QConv over A's rows, then one Requantize), and
/// computes the ONNX reference's numpy semantics exactly: the int32 sum,
/// times `a_scale · b_scale / y_scale` in f32, in f64, plus the zero point,
/// clamped and rounded half to even. Also MatMulInteger's sums, and the
/// one-row form without transposes.
#[test]
fn qlinear_matmul_runs_on_the_integer_kernel() {
    let raw = |name: &str, dt: i32, dims: &[i64], bytes: Vec<u8>| {
        let mut t = onnx_protobuf::TensorProto::new();
        t.name = name.into();
        t.data_type = dt;
        t.dims = dims.to_vec();
        t.raw_data = bytes;
        t
    };
    let (k, n) = (300usize, 5usize);
    let b: Vec<i8> = (0..k * n).map(|i| ((i * 7919 % 255) as i64 - 127) as i8).collect();
    let bs: Vec<f32> = (0..n).map(|j| 0.01 + 0.004 * j as f32).collect();
    // the last case has a per-row a_scale with M == N: it scales rows, not columns
    for (rows_dims, rows, per_row) in [(vec![2i64, 3], 6usize, false), (vec![1], 1, false), (vec![5], 5, true)] {
        let mut adims = rows_dims.clone();
        adims.push(k as i64);
        let a_scale: Vec<f32> = if per_row { (0..rows).map(|r| 0.02 + 0.01 * r as f32).collect() } else { vec![0.02] };
        let as_dims: Vec<i64> = if per_row { vec![rows as i64] } else { vec![] };
        let mut m = M::new(13)
            .input_vi(common::value_info("a", 2, Some(adims.iter().map(|&d| common::D::V(d)).collect())))
            .init(raw("as", 1, &as_dims, a_scale.iter().flat_map(|v| v.to_le_bytes()).collect()))
            .init(raw("az", 2, &[], vec![131]))
            .init(raw("b", 3, &[k as i64, n as i64], b.iter().map(|&v| v as u8).collect()))
            .init(raw("bs", 1, &[n as i64], bs.iter().flat_map(|v| v.to_le_bytes()).collect()))
            .init(raw("bz", 3, &[n as i64], vec![0; n]))
            .init(raw("ys", 1, &[], 0.75f32.to_le_bytes().to_vec()))
            .init(raw("yz", 2, &[], vec![100]));
        m = m.op("QLinearMatMul", &["a", "as", "az", "b", "bs", "bz", "ys", "yz"], "y", vec![]).output("y");
        let g = m.ok();
        let names = op_names(&g);
        // per-row scales are not one multiplier per column: the composed requantisation
        assert!(names.contains(&"QConv") && names.contains(&"Requantize") != per_row, "{names:?}");
        assert_eq!(names.contains(&"Transpose"), rows > 1, "{names:?}");
        let a: Vec<u8> = (0..rows * k).map(|i| (i * 104729 % 256) as u8).collect();
        let at =
            kerf_ir::Tensor::from_bytes(kerf_ir::DType::U8, adims.iter().map(|&d| d as usize).collect(), a.clone())
                .unwrap();
        let got = kerf_ir::eval::eval_graph(&g, &[at]).unwrap().remove(0).to_i64_vec();
        for r in 0..rows {
            for j in 0..n {
                let acc: i64 = (0..k).map(|i| (i64::from(a[r * k + i]) - 131) * i64::from(b[i * n + j])).sum();
                let mult = a_scale[if per_row { r } else { 0 }] * bs[j] / 0.75f32;
                let v = (acc as f64 * f64::from(mult) + 100.0).clamp(0.0, 255.0);
                let want = ((v + 1.5 * 2f64.powi(52)) - 1.5 * 2f64.powi(52)) as i64;
                assert_eq!(got[r * n + j], want, "row {r} column {j}");
            }
        }
    }
}
