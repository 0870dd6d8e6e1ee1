//! Control flow and sequences resolved at import (`ops/control.rs`): what is
//! inlined or unrolled (or, for `If` on a run-time condition, selected),
//! and the errors past the static limits. Numerics are
//! covered by the ONNX backend node cases (If, Loop, Scan, Sequence*,
//! Optional*) in the conformance run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ai, tensor_i64, value_info, D, F32, M};
use kerf_onnx::ImportError;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, GraphProto, TensorProto};

const BOOL: i32 = 9;

fn ag(name: &str, g: GraphProto) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::GRAPH.into();
    a.g = Some(g).into();
    a
}

fn graph_of(m: M) -> GraphProto {
    m.model.graph.into_option().unwrap()
}

fn bool_scalar(name: &str, v: bool) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.data_type = BOOL;
    t.int32_data = vec![i32::from(v)];
    t
}

/// `then`: Relu(x); `else`: Neg(x) (x from the enclosing scope).
fn branches() -> (GraphProto, GraphProto) {
    let then_g = graph_of(M::new(17).op("Relu", &["x"], "t", vec![]).output("t"));
    let else_g = graph_of(M::new(17).op("Neg", &["x"], "e", vec![]).output("e"));
    (then_g, else_g)
}

#[test]
fn if_with_a_constant_condition_inlines_the_taken_branch() {
    for (cond, want, not) in [(true, "Relu", "Neg"), (false, "Neg", "Relu")] {
        let (t, e) = branches();
        let g = M::new(17)
            .input("x", &[2, 3])
            .init(bool_scalar("c", cond))
            .node("If", "if", &["c"], &["y"], vec![ag("then_branch", t), ag("else_branch", e)])
            .output("y")
            .ok();
        let names = common::op_names(&g);
        assert!(names.contains(&want) && !names.contains(&not), "cond {cond}: {names:?}");
        assert_eq!(common::out_shape(&g, "y"), vec![2, 3]);
    }
}

fn if_model(t: GraphProto, e: GraphProto) -> M {
    M::new(17)
        .input("x", &[2, 3])
        .input_vi(value_info("c", BOOL, Some(vec![])))
        .node("If", "if", &["c"], &["y"], vec![ag("then_branch", t), ag("else_branch", e)])
        .output("y")
}

#[test]
fn if_with_a_runtime_condition_selects_between_both_branches() {
    let (t, e) = branches();
    let g = if_model(t, e).ok();
    let names = common::op_names(&g);
    assert!(names.contains(&"Relu") && names.contains(&"Neg") && names.contains(&"Where"), "{names:?}");
    let x = kerf_ir::Tensor::from_f32(vec![2, 3], &[-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]).unwrap();
    for (c, want) in [(true, [0.0, 0.0, 0.0, 1.0, 2.0, 3.0]), (false, [2.0, 1.0, -0.0, -1.0, -2.0, -3.0])] {
        let c = kerf_ir::Tensor::from_i64_values(kerf_ir::DType::Bool, vec![], &[i64::from(c)]).unwrap();
        let y = kerf_ir::eval::eval_graph(&g, &[x.clone(), c]).unwrap();
        assert_eq!(y[0].to_f32_vec(), want);
    }
}

#[test]
fn if_whose_branches_differ_in_shape_asks_for_a_constant_condition() {
    let then_g = graph_of(M::new(17).op("Relu", &["x"], "t", vec![]).output("t"));
    let else_g = graph_of(
        M::new(17)
            .init(common::tensor_f32("k", &[3], &[1.0, 2.0, 3.0]))
            .op("Identity", &["k"], "e", vec![])
            .output("e"),
    );
    let err = kerf_onnx::load_model_bytes(&if_model(then_g, else_g).bytes(), None, &Default::default()).unwrap_err();
    match err {
        ImportError::NonConstantInput { node, value, .. } => assert_eq!((node.as_str(), value.as_str()), ("if", "c")),
        other => panic!("expected NonConstantInput, got {other}"),
    }
}

/// A Loop body `(i, cond, s) -> (cond, s + 1, s)` with `adds` chained Adds.
fn loop_body(adds: usize) -> GraphProto {
    let mut m = M::new(17)
        .input_vi(value_info("i", common::I64, Some(vec![])))
        .input_vi(value_info("cin", BOOL, Some(vec![])))
        .input_vi(value_info("s", F32, Some(vec![D::V(2)])))
        .init(common::tensor_f32("one", &[], &[1.0]))
        .op("Identity", &["cin"], "cout", vec![]);
    let mut prev = "s".to_string();
    for k in 0..adds {
        let out = format!("a{k}");
        m = m.op("Add", &[&prev, "one"], &out, vec![]);
        prev = out;
    }
    m = m.op("Identity", &[&prev], "snext", vec![]).op("Identity", &["s"], "scan", vec![]);
    graph_of(m.output("cout").output("snext").output("scan"))
}

fn loop_model(trips: i64, adds: usize) -> M {
    M::new(17)
        .input("x", &[2])
        .init(tensor_i64("m", &[], &[trips]))
        .node("Loop", "loop", &["m", "", "x"], &["y", "ys"], vec![ag("body", loop_body(adds))])
        .output("y")
        .output("ys")
}

#[test]
fn loop_with_a_constant_trip_count_unrolls() {
    let g = loop_model(3, 1).ok();
    let adds = common::op_names(&g).iter().filter(|n| **n == "Add").count();
    assert_eq!(adds, 3);
    assert_eq!(common::out_shape(&g, "y"), vec![2]);
    // Scan output: the per-iteration values stacked on a new axis 0.
    assert_eq!(common::out_shape(&g, "ys"), vec![3, 2]);
}

#[test]
fn unrolling_is_bounded() {
    let err = loop_model(100_000, 1).err();
    assert!(err.contains("more than 4096 iterations"), "{err}");
    let err = loop_model(4000, 8).err();
    assert!(err.contains("more than 20000 nodes"), "{err}");
}

#[test]
fn sequences_resolve_to_lists_of_values() {
    let g = M::new(17)
        .input("x", &[2, 3])
        .node("SequenceConstruct", "sc", &["x", "x", "x"], &["seq"], vec![])
        .op("SequenceLength", &["seq"], "n", vec![])
        .node("ConcatFromSequence", "cat", &["seq"], &["y"], vec![ai("axis", 0), ai("new_axis", 1)])
        .output("y")
        .output("n")
        .ok();
    assert_eq!(common::out_shape(&g, "y"), vec![3, 2, 3]);
    let n = g.outputs.iter().find(|o| o.name == "n").unwrap();
    assert_eq!(g.const_of(n.value).unwrap().to_i64_vec(), vec![3]);
}
