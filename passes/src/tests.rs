//! Crate-level tests: the whole pipeline on a small model, determinism,
//! contradictions, limits.

use egg::Id;
use kerf_ir::{text, Op, Tensor};

use crate::analysis::KEGraph;
use crate::lang::{KNode, NodeOp};
use crate::rules::{rewrite, union, Rule};
use crate::testutil::{interpret, random};
use crate::{optimize, run_groups, runner, PassError, PassOptions, Stop};

const MINI: &str = r#"
graph "mini"
  input %0 "x": f32[1,3,8,8]
  const %1 "w1": f32[4,3,3,3] = iota(-0.5, 0.01)
  const %2 "b1": f32[4] = [0.1,0.2,0.3,0.4]
  const %3 "s1": f32[4] = [1.0,0.5,2.0,1.5]
  const %4 "o1": f32[4] = [0.0,0.1,-0.1,0.2]
  const %5 "m1": f32[4] = [0.05,-0.05,0.1,0.0]
  const %6 "v1": f32[4] = [1.0,0.5,2.0,0.25]
  %7 = Conv{kernel=[3,3], strides=[1,1], dilations=[1,1], pads=[1,1,1,1], group=1, layer="conv1"}(%0, %1, %2): f32[1,4,8,8] @"conv1"
  %8 = BatchNormalization{epsilon=1e-05}(%7, %3, %4, %5, %6): f32[1,4,8,8] @"bn1"
  %9 = Relu(%8): f32[1,4,8,8] @"relu1"
  %10 = Identity(%9): f32[1,4,8,8] @"id1"
  %11 = Slice{starts=[0,0,0,0], ends=[1,4,8,8], steps=[1,1,2,2]}(%10): f32[1,4,4,4] @"pool1"
  %12 = Transpose{perm=[0,2,3,1]}(%11): f32[1,4,4,4] @"t1"
  %13 = Transpose{perm=[0,3,1,2]}(%12): f32[1,4,4,4] @"t2"
  %14 = Reshape{shape=[1,4,16]}(%13): f32[1,4,16] @"flat1"
  %15 = Reshape{shape=[1,64]}(%14): f32[1,64] @"flat2"
  %16 = Dropout(%15): f32[1,64] @"drop"
  const %17 "fcw": f32[10,64] = iota(0.1, -0.0003)
  const %18 "fcb1": f32[10] = fill(0.5)
  const %19 "fcb2": f32[10] = iota(-1.0, 0.25)
  %20 = Mul(%18, %19): f32[10] @"biasmul"
  %21 = Gemm{alpha=1.0, beta=1.0, trans_a=false, trans_b=true, layer="fc"}(%16, %17, %20): f32[1,10] @"fc"
  const %22 "s2": f32[10] = fill(1.5)
  const %23 "o2": f32[10] = fill(0.1)
  const %24 "m2": f32[10] = iota(0.2, 0.01)
  const %25 "v2": f32[10] = fill(0.5)
  %26 = BatchNormalization{epsilon=0.001}(%21, %22, %23, %24, %25): f32[1,10] @"bn2"
  %27 = Sigmoid(%26): f32[1,10] @"softmax"
  output "probs" = %27
"#;

#[test]
fn optimizes_a_small_model() {
    let g = text::parse(MINI).unwrap();
    let (out, reports) = optimize(&g, &PassOptions::default()).unwrap();
    assert!(reports.iter().all(|r| r.stop == Stop::Saturated), "{reports:?}");
    let t = text::print(&out);
    let ops: Vec<&str> = out.nodes.iter().map(|n| n.op.name()).collect();
    // Conv + Relu and Gemm + Sigmoid are fused by the `fusion` group
    assert_eq!(ops, ["ConvFused", "Slice", "Reshape", "GemmFused"], "{t}");
    let names: Vec<&str> = out.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["relu1.ConvFused", "pool1", "flat2.Reshape", "softmax.GemmFused"], "{t}");
    let layers: Vec<String> = out.nodes.iter().filter_map(|n| n.op.layer().map(|l| l.0.clone())).collect();
    assert_eq!(layers, ["conv1", "fc"]);
    assert!(t.contains("Reshape{shape=[1,64]}(%"), "{t}");
    for seed in [1, 2] {
        let x = Tensor::from_f32(vec![1, 3, 8, 8], &random(seed, 192, -1.0, 1.0)).unwrap();
        let (a, b) = (interpret(&g, std::slice::from_ref(&x)), interpret(&out, &[x]));
        for (p, q) in a[0].to_f32_vec().iter().zip(b[0].to_f32_vec()) {
            assert!((p - q).abs() <= 1e-5 * p.abs().max(1e-3), "{p} vs {q}");
        }
    }
    let group_order: Vec<&str> = reports.iter().map(|r| r.group).collect();
    assert_eq!(&group_order[..crate::rule_groups().len()], crate::rule_groups().as_slice());
    let e = crate::run_groups(&g, &["fold"], &PassOptions::default()).unwrap_err().to_string();
    assert!(e.ends_with("(known: cleanup, reshape, bn-fold, const-fold, winograd, fusion, int8, chain)"), "{e}");
}

/// A squeeze-excitation gate as exporters spell it, `relu6(conv + 3)/6`:
/// `recognise-hardsigmoid` (cleanup) makes it one HardSigmoid, and
/// `fuse-conv-hardsigmoid` (fusion) folds it into the conv, which then
/// clamps to `[0, 1]` in its epilogue: one kernel where there were four.
#[test]
fn a_spelt_out_hardsigmoid_gate_becomes_one_conv() {
    let src = r#"
graph "gate"
  input %0 "x": f32[1,8,1,1]
  const %1 "w": f32[4,8,1,1] = iota(-0.4, 0.025)
  const %2 "b": f32[4] = [0.1,-0.2,0.3,0.0]
  const %3 "three": f32[] = [3.0]
  const %4 "six": f32[] = [6.0]
  %5 = Conv{kernel=[1,1], strides=[1,1], dilations=[1,1], pads=[0,0,0,0], group=1, layer="se"}(%0, %1, %2): f32[1,4,1,1] @"se"
  %6 = Add(%5, %3): f32[1,4,1,1] @"add"
  %7 = Clip{min=0.0, max=6.0}(%6): f32[1,4,1,1] @"relu6"
  %8 = Div(%7, %4): f32[1,4,1,1] @"div"
  output "gate" = %8
"#;
    let g = text::parse(src).unwrap();
    let (out, _) = optimize(&g, &PassOptions::default()).unwrap();
    let t = text::print(&out);
    let ops: Vec<&str> = out.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(ops, ["ConvFused"], "{t}");
    assert!(t.contains("act=Clip") && t.contains("act_max=1.0"), "{t}");
    for seed in [1, 2] {
        let x = Tensor::from_f32(vec![1, 8, 1, 1], &random(seed, 8, -20.0, 20.0)).unwrap();
        let (a, b) = (interpret(&g, std::slice::from_ref(&x)), interpret(&out, &[x]));
        for (p, q) in a[0].to_f32_vec().iter().zip(b[0].to_f32_vec()) {
            assert!((p - q).abs() <= 1e-6, "{p} vs {q}");
        }
    }
}

/// A bias-less ConvTranspose followed by its activation (nothing folds a
/// bias in) is one `ConvTransposeFused` of two inputs.
#[test]
fn a_bias_less_transposed_conv_takes_its_activation() {
    let src = r#"
graph "up"
  input %0 "x": f32[1,4,3,3]
  const %1 "w": f32[4,3,2,2] = iota(-0.5, 0.02)
  %2 = ConvTranspose{kernel=[2,2], strides=[2,2], dilations=[1,1], pads=[0,0,0,0], group=1, output_padding=[0,0], layer="up"}(%0, %1): f32[1,3,6,6] @"up"
  %3 = Sigmoid(%2): f32[1,3,6,6] @"act"
  output "y" = %3
"#;
    let g = text::parse(src).unwrap();
    let (out, _) = optimize(&g, &PassOptions::default()).unwrap();
    let t = text::print(&out);
    let [n] = out.nodes.as_slice() else { panic!("one node expected:\n{t}") };
    assert!(matches!(&n.op, Op::ConvTransposeFused(_, e) if e.act == Some(kerf_ir::UnaryOp::Sigmoid)), "{t}");
    assert_eq!(n.inputs.len(), 2, "{t}");
}

/// A detector's upsampling head: a bias-less ConvTranspose (two groups),
/// its bias as a separate per-channel Add, a BatchNormalization and a Relu.
/// `bn-fold` folds the Add and the BatchNorm into the ConvTranspose (group
/// `g`'s output channel `j` scales the slices `W[c, j]` of the group's
/// input channels), `fusion` the Relu: one `ConvTransposeFused`, whose
/// weight and bias are checked here against the fold's arithmetic (the
/// reference evaluator has no ConvTranspose; `targets/tests/conv_transpose.rs`
/// checks the fused kernel's values).
#[test]
fn a_transposed_conv_head_becomes_one_kernel() {
    let src = r#"
graph "head"
  input %0 "x": f32[1,4,3,3]
  const %1 "w": f32[4,3,2,2] = iota(-0.5, 0.02)
  const %2 "b": f32[1,6,1,1] = [0.1,-0.2,0.3,0.0,0.5,-0.4]
  const %3 "scale": f32[6] = [1.0,0.5,2.0,1.5,0.25,3.0]
  const %4 "shift": f32[6] = [0.0,0.1,-0.1,0.2,0.3,-0.3]
  const %5 "mean": f32[6] = [0.05,-0.05,0.1,0.0,0.2,-0.1]
  const %6 "var": f32[6] = [1.0,0.5,2.0,0.25,4.0,1.5]
  %7 = ConvTranspose{kernel=[2,2], strides=[2,2], dilations=[1,1], pads=[0,0,0,0], group=2, output_padding=[0,0], layer="up"}(%0, %1): f32[1,6,6,6] @"up"
  %8 = Add(%7, %2): f32[1,6,6,6] @"bias"
  %9 = BatchNormalization{epsilon=1e-05}(%8, %3, %4, %5, %6): f32[1,6,6,6] @"bn"
  %10 = Relu(%9): f32[1,6,6,6] @"relu"
  output "y" = %10
"#;
    let g = text::parse(src).unwrap();
    let (out, _) = optimize(&g, &PassOptions::default()).unwrap();
    let t = text::print(&out);
    let [n] = out.nodes.as_slice() else { panic!("one node expected:\n{t}") };
    assert!(
        matches!(&n.op, Op::ConvTransposeFused(c, e) if c.group == 2 && e.act == Some(kerf_ir::UnaryOp::Relu)),
        "{t}"
    );
    let konst = |i: usize| out.const_of(n.inputs[i]).unwrap().to_f64_vec();
    let (w, b) = (konst(1), konst(2));
    let w0: Vec<f64> = (0..48).map(|i| f64::from(-0.5f32 + 0.02 * i as f32)).collect();
    let (b0, sc, sh, mean, var) = (
        [0.1, -0.2, 0.3, 0.0, 0.5, -0.4],
        [1.0, 0.5, 2.0, 1.5, 0.25, 3.0],
        [0.0, 0.1, -0.1, 0.2, 0.3, -0.3],
        [0.05, -0.05, 0.1, 0.0, 0.2, -0.1],
        [1.0, 0.5, 2.0, 0.25, 4.0, 1.5],
    );
    let s = |o: usize| sc[o] / (var[o] + 1e-5f64).sqrt();
    for (i, (&got, &w0)) in w.iter().zip(&w0).enumerate() {
        // w is [4, 3, 2, 2]: input channel c (group c / 2), output j of the group
        let (c, j) = (i / 12, i / 4 % 3);
        let want = w0 * s(c / 2 * 3 + j);
        assert!((got - want).abs() <= 1e-6 * want.abs().max(1.0), "w[{i}] {got} vs {want}");
    }
    for o in 0..6 {
        let want = (f64::from(b0[o] as f32) - mean[o]) * s(o) + sh[o];
        assert!((b[o] - want).abs() <= 1e-6, "b[{o}] {} vs {want}", b[o]);
    }
}

#[test]
fn output_is_deterministic() {
    let g = text::parse(MINI).unwrap();
    let first = text::print(&optimize(&g, &PassOptions::default()).unwrap().0);
    for _ in 0..3 {
        let g = text::parse(MINI).unwrap();
        assert_eq!(text::print(&optimize(&g, &PassOptions::default()).unwrap().0), first);
    }
}

#[test]
fn unknown_group_is_an_error() {
    let g = text::parse(MINI).unwrap();
    let e = run_groups(&g, &["cleanup", "no-such-group"], &PassOptions::default()).unwrap_err();
    assert!(matches!(&e, PassError::UnknownGroup(n) if n == "no-such-group"), "{e}");
}

/// A deliberately wrong rule: claims `Reshape(x)` equals `x` whatever the shape.
struct WrongReshape;

impl Rule for WrongReshape {
    type Match = Id;
    fn name(&self) -> &'static str {
        "wrong-reshape"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Id>) {
        for n in &eg[class].nodes {
            if matches!(n.kerf_op(), Some(Op::Reshape { .. })) {
                out.extend(n.children.first().copied());
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, x: &Id) -> Vec<Id> {
        union(eg, class, *x)
    }
}

/// Another wrong rule: claims every Neg of a constant is the constant.
struct WrongConst;

impl Rule for WrongConst {
    type Match = Id;
    fn name(&self) -> &'static str {
        "wrong-const"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Id>) {
        for n in &eg[class].nodes {
            if matches!(n.kerf_op(), Some(Op::Unary(kerf_ir::UnaryOp::Neg))) {
                out.extend(n.children.first().copied());
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, x: &Id) -> Vec<Id> {
        // first make the Neg class constant (correctly), then equate it with x (wrong)
        let w =
            eg.analysis.weights.add("neg", Tensor::from_f32(vec![2], &[-1.0, -2.0]).unwrap(), kerf_ir::Origin::Derived);
        let c = eg.add(KNode::leaf(NodeOp::Const(w)));
        let mut changed = union(eg, class, c);
        changed.extend(union(eg, class, *x));
        changed
    }
}

const RESHAPE_SRC: &str = r#"
graph "g"
  input %0 "x": f32[2,3]
  %1 = Reshape{shape=[6]}(%0): f32[6] @"flat"
  output "y" = %1
"#;

#[test]
fn a_wrong_rule_is_a_contradiction() {
    let g = text::parse(RESHAPE_SRC).unwrap();
    let rules = vec![rewrite(WrongReshape)];
    let e = runner::run_phase(&g, "test", &rules, &PassOptions::default(), false).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, PassError::Contradiction { group: "test", .. }), "{msg}");
    assert!(msg.contains("rule 'wrong-reshape'"), "{msg}");
    assert!(msg.contains("merged classes of different types"), "{msg}");
    assert!(msg.contains("(f32[6])") && msg.contains("(f32[2,3])"), "{msg}");
    assert!(msg.contains("node 'flat' (Reshape), input 'x'"), "{msg}");
}

#[test]
fn merging_different_constants_is_a_contradiction() {
    let src = r#"
graph "g"
  input %0 "x": f32[2]
  const %1 "a": f32[2] = [1.0,2.0]
  %2 = Neg(%1): f32[2] @"neg"
  %3 = Add(%0, %2): f32[2] @"add"
  output "y" = %3
"#;
    let g = text::parse(src).unwrap();
    let e = runner::run_phase(&g, "test", &[rewrite(WrongConst)], &PassOptions::default(), false).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("rule 'wrong-const': merged different constants"), "{msg}");
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "e-graph contradiction: rule 'wrong-reshape'")]
fn contradictions_panic_in_debug_builds() {
    let g = text::parse(RESHAPE_SRC).unwrap();
    let _ = runner::run_phase(&g, "test", &[rewrite(WrongReshape)], &PassOptions::default(), true);
}

/// A chain of transposes; consecutive pairs compose to new permutations,
/// so the e-graph grows while the rules run. Perms cycle through three
/// swaps whose product over 6 steps is the identity.
fn transpose_chain(n: usize) -> String {
    let mut s = String::from("graph \"chain\"\n  input %0 \"x\": f32[2,2,2]\n");
    let perms = ["[1,0,2]", "[0,2,1]", "[2,1,0]"];
    for i in 0..n {
        s += &format!("  %{} = Transpose{{perm={}}}(%{i}): f32[2,2,2] @\"t{i}\"\n", i + 1, perms[i % 3]);
    }
    s += &format!("  output \"y\" = %{n}\n");
    s
}

#[test]
fn node_limit_is_reported() {
    let g = text::parse(&transpose_chain(42)).unwrap();
    let opts = PassOptions { node_limit: 50, ..PassOptions::default() };
    let (out, reports) = run_groups(&g, &["reshape"], &opts).unwrap();
    assert_eq!(reports[0].stop, Stop::NodeLimit, "{reports:?}");
    out.validate().unwrap();
    // with room to run, the chain disappears entirely
    let (out, reports) = run_groups(&g, &["reshape"], &PassOptions::default()).unwrap();
    assert_eq!(reports[0].stop, Stop::Saturated);
    assert!(out.nodes.is_empty(), "{}", text::print(&out));
    assert!(reports[0].rules_fired["transpose-pair"] > 0);
}

#[test]
fn iteration_limit_is_reported() {
    let g = text::parse(&transpose_chain(8)).unwrap();
    let opts = PassOptions { iter_limit: 1, ..PassOptions::default() };
    let (out, reports) = run_groups(&g, &["reshape"], &opts).unwrap();
    assert_eq!(reports[0].stop, Stop::IterationLimit, "{reports:?}");
    assert_eq!(reports[0].iterations, 1);
    out.validate().unwrap();
}
