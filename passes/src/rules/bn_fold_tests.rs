//! Tests of the `bn-fold` group: exact text on a tiny case, numerics on
//! random weights against the reference evaluator.

use kerf_ir::op::{Conv, Gemm, Window};
use kerf_ir::{text, Graph, Layer, Op, Origin, Tensor, TensorType, F32};

use crate::testutil::{interpret, random, run_graph, run_text};
use crate::PassOptions;

#[test]
fn folds_into_a_conv_exactly() {
    let out = run_text(
        "bn-fold",
        r#"
graph "g"
  input %0 "x": f32[1,1,3,3]
  const %1 "w": f32[2,1,1,1] = [1.0,2.0]
  const %2 "scale": f32[2] = [2.0,3.0]
  const %3 "bias": f32[2] = [0.5,0.5]
  const %4 "mean": f32[2] = [1.0,1.0]
  const %5 "var": f32[2] = [3.0,0.0]
  %6 = Conv{kernel=[1,1], strides=[1,1], dilations=[1,1], pads=[0,0,0,0], group=1, layer="conv1"}(%0, %1): f32[1,2,3,3] @"conv1"
  %7 = BatchNormalization{epsilon=1.0}(%6, %2, %3, %4, %5): f32[1,2,3,3] @"bn1"
  output "y" = %7
"#,
    );
    // s = scale / sqrt(var + 1) = [1, 3]; W' = W * s; b' = (0 - mean) * s + bias
    assert_eq!(
        out,
        r#"graph "g"
  input %0 "x": f32[1,1,3,3]
  const %1 "w.bn": f32[2,1,1,1] = [1.0,6.0]
  const %2 "w.bn_bias": f32[2] = [-0.5,-2.5]
  %3 = Conv{kernel=[1,1], strides=[1,1], dilations=[1,1], pads=[0,0,0,0], group=1, layer="conv1"}(%0, %1, %2): f32[1,2,3,3] @"bn1.Conv"
  output "y" = %3
"#
    );
}

#[test]
fn folds_into_a_gemm_exactly() {
    let out = run_text(
        "bn-fold",
        r#"
graph "g"
  input %0 "a": f32[1,2]
  const %1 "B": f32[2,2] = [1.0,2.0,3.0,4.0]
  const %2 "C": f32[2] = [1.0,1.0]
  const %3 "scale": f32[2] = [2.0,3.0]
  const %4 "bias": f32[2] = [0.5,0.5]
  const %5 "mean": f32[2] = [1.0,1.0]
  const %6 "var": f32[2] = [3.0,0.0]
  %7 = Gemm{alpha=1.0, beta=2.0, trans_a=false, trans_b=true, layer="fc"}(%0, %1, %2): f32[1,2] @"fc"
  %8 = BatchNormalization{epsilon=1.0}(%7, %3, %4, %5, %6): f32[1,2] @"bn"
  output "y" = %8
"#,
    );
    // s = [1, 3]: rows of B scaled; C' = (2 * C - mean) * s + bias
    assert_eq!(
        out,
        r#"graph "g"
  input %0 "a": f32[1,2]
  const %1 "B.bn": f32[2,2] = [1.0,2.0,9.0,12.0]
  const %2 "B.bn_bias": f32[2] = [1.5,3.5]
  %3 = Gemm{alpha=1.0, beta=1.0, trans_a=false, trans_b=true, layer="fc"}(%0, %1, %2): f32[1,2] @"bn.Gemm"
  output "y" = %3
"#
    );
}

fn rand_tensor(seed: u64, shape: &[usize], lo: f32, hi: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_f32(shape.to_vec(), &random(seed, n, lo, hi)).unwrap()
}

/// `x -> Conv -> BN -> y` (and optionally the raw conv as a second output).
fn conv_bn(group: usize, bias: bool, conv_is_output: bool) -> Graph {
    let (n, ci, co, h) = (2, 4, 6, 7);
    let mut g = Graph::new("conv_bn");
    let x = g.add_input("x", TensorType::new(kerf_ir::DType::F32, vec![n, ci, h, h]));
    let w = g.add_const("w", rand_tensor(1, &[co, ci / group, 3, 3], -1.0, 1.0), Origin::Initializer);
    let mut ins = vec![x, w];
    if bias {
        ins.push(g.add_const("b", rand_tensor(2, &[co], -1.0, 1.0), Origin::Initializer));
    }
    let window = Window { kernel: vec![3, 3], strides: vec![2, 1], dilations: vec![1, 2], pads: vec![1, 0, 2, 1] };
    let conv =
        Op::Conv(Conv { window, group, layer: Layer("block1.conv".into()), algo: kerf_ir::op::ConvAlgo::Direct });
    let y = g.add_node1("conv", conv, ins).unwrap();
    let p = |g: &mut Graph, name: &str, seed: u64, lo: f32, hi: f32| {
        g.add_const(name, rand_tensor(seed, &[co], lo, hi), Origin::Initializer)
    };
    let s = p(&mut g, "scale", 3, 0.5, 2.0);
    let b = p(&mut g, "bias", 4, -1.0, 1.0);
    let m = p(&mut g, "mean", 5, -0.5, 0.5);
    let v = p(&mut g, "var", 6, 0.1, 3.0);
    let z = g.add_node1("bn", Op::BatchNorm { epsilon: F32::new(1e-5) }, vec![y, s, b, m, v]).unwrap();
    g.add_output("y", z);
    if conv_is_output {
        g.add_output("raw", y);
    }
    g
}

fn assert_close(a: &[Tensor], b: &[Tensor]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.shape(), y.shape());
        let (xv, yv) = (x.to_f64_vec(), y.to_f64_vec());
        let scale = xv.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (p, q)) in xv.iter().zip(&yv).enumerate() {
            let tol = 1e-5 * p.abs().max(scale * 1e-2).max(1e-6);
            assert!((p - q).abs() <= tol, "element {i}: {p} vs {q} (tol {tol})");
        }
    }
}

fn check_numerics(g: &Graph, group: &str) -> Graph {
    let (out, reports) = crate::run_groups(g, &[group], &PassOptions::default()).unwrap();
    assert_eq!(reports[0].stop, crate::Stop::Saturated);
    for seed in [11, 12, 13] {
        let inputs: Vec<Tensor> = g.inputs.iter().map(|&v| rand_tensor(seed, &g.ty(v).shape, -2.0, 2.0)).collect();
        assert_close(&interpret(g, &inputs), &interpret(&out, &inputs));
    }
    out
}

#[test]
fn conv_fold_matches_the_reference() {
    for (group, bias) in [(1, false), (1, true), (2, true)] {
        let g = conv_bn(group, bias, false);
        let out = check_numerics(&g, "bn-fold");
        let t = text::print(&out);
        assert!(!t.contains("BatchNormalization"), "group {group} bias {bias}:\n{t}");
        assert_eq!(out.nodes.len(), 1);
        // the conv keeps its layer identity
        assert_eq!(out.nodes[0].op.layer(), Some(&Layer("block1.conv".into())));
        // folded weights derive from parameters, so they are parameters
        assert!(out.weights.iter().all(|(_, w)| w.is_param && w.origin == Origin::Derived));
    }
}

#[test]
fn shared_conv_output_keeps_the_batchnorm() {
    // The raw conv output is needed too: folding would cost a second conv,
    // keeping the BatchNorm is cheaper.
    let g = conv_bn(1, true, true);
    let out = check_numerics(&g, "bn-fold");
    let t = text::print(&out);
    assert_eq!(t.matches("= Conv").count(), 1, "{t}");
    assert!(t.contains("BatchNormalization"), "{t}");
}

fn gemm_bn(trans_b: bool, c_shape: Option<Vec<usize>>) -> Graph {
    let (m, k, n) = (3, 5, 4);
    let mut g = Graph::new("gemm_bn");
    let a = g.add_input("a", TensorType::new(kerf_ir::DType::F32, vec![m, k]));
    let bshape = if trans_b { vec![n, k] } else { vec![k, n] };
    let b = g.add_const("B", rand_tensor(21, &bshape, -1.0, 1.0), Origin::Initializer);
    let mut ins = vec![a, b];
    if let Some(cs) = c_shape {
        ins.push(g.add_const("C", rand_tensor(22, &cs, -1.0, 1.0), Origin::Initializer));
    }
    let op = Op::Gemm(Gemm {
        alpha: F32::new(0.75),
        beta: F32::new(1.5),
        trans_a: false,
        trans_b,
        layer: Layer("fc".into()),
    });
    let y = g.add_node1("fc", op, ins).unwrap();
    let p = |g: &mut Graph, name: &str, seed: u64, lo: f32, hi: f32| {
        g.add_const(name, rand_tensor(seed, &[n], lo, hi), Origin::Initializer)
    };
    let s = p(&mut g, "scale", 23, 0.5, 2.0);
    let bb = p(&mut g, "bias", 24, -1.0, 1.0);
    let mm = p(&mut g, "mean", 25, -0.5, 0.5);
    let v = p(&mut g, "var", 26, 0.1, 3.0);
    let z = g.add_node1("bn", Op::BatchNorm { epsilon: F32::new(1e-3) }, vec![y, s, bb, mm, v]).unwrap();
    g.add_output("y", z);
    g
}

#[test]
fn gemm_fold_matches_the_reference() {
    for (trans_b, c) in [(true, Some(vec![4])), (false, None), (true, Some(vec![3, 4])), (false, Some(vec![3, 1]))] {
        let g = gemm_bn(trans_b, c.clone());
        let out = check_numerics(&g, "bn-fold");
        let t = text::print(&out);
        assert!(!t.contains("BatchNormalization"), "trans_b {trans_b} C {c:?}:\n{t}");
        assert_eq!(out.nodes[0].op.layer(), Some(&Layer("fc".into())));
        assert!(t.contains("beta=1.0"), "{t}");
    }
}

#[test]
fn folding_is_memoized() {
    let g = conv_bn(1, true, false);
    let opts = PassOptions { iter_limit: 40, ..PassOptions::default() };
    let (weights, _) = run_graph(&g, "bn-fold", &opts);
    // 6 source weights + W' and b', however often the rule re-matched
    assert_eq!(weights, 8);
}

/// `x -> Conv -> op(·, c)` for a constant `c` of `shape` (either operand order).
fn conv_then(op: kerf_ir::BinaryOp, shape: &[usize], conv_first: bool) -> Graph {
    let (n, ci, co, h) = (2, 3, 4, 6);
    let mut g = Graph::new("conv_affine");
    let x = g.add_input("x", TensorType::new(kerf_ir::DType::F32, vec![n, ci, h, h]));
    let w = g.add_const("w", rand_tensor(1, &[co, ci, 3, 3], -1.0, 1.0), Origin::Initializer);
    let b = g.add_const("b", rand_tensor(2, &[co], -1.0, 1.0), Origin::Initializer);
    let window = Window { kernel: vec![3, 3], strides: vec![1, 1], dilations: vec![1, 1], pads: vec![1, 1, 1, 1] };
    let conv = Op::Conv(Conv { window, group: 1, layer: Layer("c".into()), algo: kerf_ir::op::ConvAlgo::Direct });
    let y = g.add_node1("conv", conv, vec![x, w, b]).unwrap();
    let c = g.add_const("k", rand_tensor(3, shape, -2.0, 2.0), Origin::Initializer);
    let ins = if conv_first { vec![y, c] } else { vec![c, y] };
    let z = g.add_node1("affine", Op::Binary(op), ins).unwrap();
    g.add_output("y", z);
    g
}

#[test]
fn per_channel_scales_and_shifts_fold_into_the_conv() {
    use kerf_ir::BinaryOp::{Add, Mul};
    for op in [Mul, Add] {
        for (shape, first) in [(&[1][..], true), (&[1, 4, 1, 1][..], false), (&[4, 1, 1][..], true), (&[][..], false)] {
            let out = check_numerics(&conv_then(op, shape, first), "bn-fold");
            let t = text::print(&out);
            assert_eq!(out.nodes.len(), 1, "{op:?} {shape:?}:\n{t}");
            assert!(t.contains(if op == Mul { "w.scaled" } else { "w.shifted" }), "{t}");
        }
    }
}

#[test]
fn constants_varying_off_the_channel_axis_stay() {
    use kerf_ir::BinaryOp::{Add, Mul};
    // one value per column, per image or per spatial position: not a
    // per-channel affine, and a [6] vector broadcasts along the width
    for op in [Mul, Add] {
        for shape in [&[1, 1, 1, 6][..], &[2, 1, 1, 1][..], &[1, 4, 6, 6][..], &[6][..]] {
            let out = check_numerics(&conv_then(op, shape, true), "bn-fold");
            assert_eq!(out.nodes.len(), 2, "{op:?} {shape:?}:\n{}", text::print(&out));
        }
    }
}
