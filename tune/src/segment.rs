//! Per-layer micro-benchmarks: one layer cut out of a graph with its real
//! shapes, layout and fused epilogue, so a (layer, variant) is timed on
//! what changes rather than as a whole model.
//!
//! A layer's *segment* in a graph (FP32 or compressed, before the lossless
//! passes) holds
//! - the layer's own nodes: the op whose [`kerf_ir::Layer`] is the layer's
//!   name, or a factored layer's two halves (`<layer>.v`, `<layer>.u`,
//!   [`kerf_compress::rewrite::factor_names`]);
//! - its input quantiser (the nodes compression names `<layer>.xq…`);
//! - the followers fusion may fold into its kernel: nodes without a layer of
//!   their own that read a segment value and apply an elementwise op
//!   (Relu, Clip, a residual Add, …) to a segment value as their first
//!   operand, up to [`FOLLOWERS`] deep.
//!
//! Values it reads from outside become inputs (filled with a fixed
//! pseudo-random pattern: timing does not depend on the values, but zeros
//! could hide denormal or sparsity effects) and values read outside become
//! outputs ([`Graph::segment`]). The segment then goes through the same
//! passes and code generator as the model. A variant's latency is the FP32
//! model's measured latency plus the difference of the two segments' times;
//! the knapsack adds those differences per layer, which is what this
//! measures. Whole plans (the single-technique plans, the chosen plan) are
//! still timed end to end.

use kerf_ir::{Graph, Op, Tensor};

/// How many elementwise steps past the layer are taken along.
const FOLLOWERS: usize = 3;

/// Whether node `n` is one of `layer`'s own nodes or its input quantiser.
fn owned(n: &kerf_ir::Node, layer: &str) -> bool {
    let (v, u) = kerf_compress::rewrite::factor_names(layer);
    let own = n.op.layer().is_some_and(|l| l.0 == layer || l.0 == v || l.0 == u);
    own || n.name.strip_prefix(layer).is_some_and(|rest| rest.starts_with(".xq"))
}

fn elementwise(op: &Op) -> bool {
    matches!(op, Op::Unary(_) | Op::Binary(_) | Op::Chain(_))
}

/// `layer`'s segment of `g` (see the module docs), or `None` when no node
/// of `g` is that layer.
pub(crate) fn layer_segment(g: &Graph, layer: &str) -> Option<Graph> {
    let mut keep: Vec<bool> = g.nodes.iter().map(|n| owned(n, layer)).collect();
    if !keep.iter().any(|&k| k) {
        return None;
    }
    let mut inside = vec![false; g.values.len()];
    let mut grown: Vec<usize> = (0..g.nodes.len()).filter(|&i| keep[i]).collect();
    for _ in 0..FOLLOWERS {
        for &i in &grown {
            for o in &g.nodes[i].outputs {
                inside[o.0 as usize] = true;
            }
        }
        // a follower continues the segment's value: its first operand is
        // one (a residual Add reads the skip connection as the other)
        grown = (0..g.nodes.len())
            .filter(|&i| {
                let n = &g.nodes[i];
                let free = n.op.layer().is_none() && !n.name.contains(".xq");
                !keep[i] && free && elementwise(&n.op) && n.inputs.first().is_some_and(|v| inside[v.0 as usize])
            })
            .collect();
        if grown.is_empty() {
            break;
        }
        for &i in &grown {
            keep[i] = true;
        }
    }
    Some(g.segment(&keep))
}

/// One input sample for `g`: every input filled with a fixed pattern of
/// small values in its element type (f32 in `[-1, 1)`, integers `0..7`).
pub(crate) fn sample_for(g: &Graph) -> Result<Vec<Tensor>, kerf_ir::IrError> {
    g.inputs
        .iter()
        .map(|&v| {
            let ty = g.ty(v);
            let n = ty.numel();
            let f: Vec<f64> = (0..n).map(|i| ((i * 7919 % 257) as f64 / 128.5) - 1.0).collect();
            if ty.dtype == kerf_ir::DType::F32 {
                Tensor::from_f32(ty.shape.clone(), &f.iter().map(|&x| x as f32).collect::<Vec<_>>())
            } else {
                let ints: Vec<f64> = (0..n).map(|i| (i % 7) as f64).collect();
                Tensor::from_f64_values(ty.dtype, ty.shape.clone(), &ints)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use kerf_ir::text;

    use super::*;

    fn src() -> String {
        let zeros = vec!["0.0"; 144].join(",");
        SRC.replace("ZEROS", &zeros)
    }

    const SRC: &str = r#"graph "g"
  input %0 "x": f32[1,4,8,8]
  const %1 "w1": f32[4,4,3,3] = [ZEROS]
  const %2 "w2": f32[4,4,3,3] = [ZEROS]
  const %3 "s": f32[] = [0.5]
  %4 = Conv{kernel=[3,3], strides=[1,1], dilations=[1,1], pads=[1,1,1,1], group=1, layer="a"}(%0, %1): f32[1,4,8,8] @"a"
  %5 = Relu(%4): f32[1,4,8,8] @"a/relu"
  %6 = Div(%5, %3): f32[1,4,8,8] @"b.xq/div"
  %7 = Round(%6): f32[1,4,8,8] @"b.xq/round"
  %8 = Clip{min=0.0, max=255.0}(%7): f32[1,4,8,8] @"b.xq/clip"
  %9 = Mul(%8, %3): f32[1,4,8,8] @"b.xq"
  %10 = Conv{kernel=[3,3], strides=[1,1], dilations=[1,1], pads=[1,1,1,1], group=1, layer="b"}(%9, %2): f32[1,4,8,8] @"b"
  %11 = Add(%10, %5): f32[1,4,8,8] @"b/add"
  %12 = Relu(%11): f32[1,4,8,8] @"b/relu"
  output "y" = %12
"#;

    #[test]
    fn a_segment_holds_the_layer_its_quantiser_and_its_followers() {
        let g = text::parse(&src()).unwrap_or_else(|e| panic!("{e}"));
        let b = layer_segment(&g, "b").unwrap();
        let out = text::print(&b);
        // the quantiser, the conv, the residual add and the Relu; the
        // producer's Relu is an input (read twice, once as the residual)
        assert_eq!(b.nodes.len(), 7, "{out}");
        assert_eq!(b.inputs.len(), 1, "{out}");
        assert_eq!(b.outputs.len(), 1, "{out}");
        assert!(!out.contains("layer=\"a\""), "{out}");
        // layer a: its conv and Relu; the Relu is read outside, so it is the output
        let a = layer_segment(&g, "a").unwrap();
        assert_eq!(a.nodes.len(), 2, "{}", text::print(&a));
        assert!(layer_segment(&g, "c").is_none());
        let sample = sample_for(&b).unwrap();
        assert_eq!(sample[0].shape(), &[1, 4, 8, 8]);
    }
}
