//! `int8-requant` (in the `int8` group): the requantising epilogue.
//!
//! Matches `Quantize{s, z, pads}(c)` where `c`'s class holds a
//! `QConv{out: Real}(args)` on an x86 target with the assembled tiles,
//! which store u8 in their own epilogue (elsewhere the Cranelift
//! epilogue's per-vector u8 store is slower than the separate quantiser:
//! `Int8Dot::tiles_store_u8`) with an activation they apply themselves
//! (`int8::tiles_apply`: others, LeakyRelu or Sigmoid, would take the
//! Cranelift epilogue's slower u8 store): the integer GEMM's, or the
//! integer pattern kernel's where the conv has no residual or a u8 one at
//! stride 1 (`ChannelQuads::u8_residual_fits`: its tiles' u8 store takes
//! no f32 residual); not a depthwise one except
//! on the flat pass (AVX2 targets, `Conv::on_depthwise_flat`: small
//! stride-1 "same" planes) or the VNNI quad pass (`Int8Dot::Bytes` and
//! `Conv::on_depthwise_quads`), which store u8 in their own epilogues:
//! the AVX2 padded-plane pass's u8 store measured slower than the separate
//! quantiser (MobileNetV2's stride-2 112x112 layer 0.175 + 0.031 → 0.243
//! ms on Zen 4, bound by its extra shuffles and stores). It adds
//! `QConv{out: Quant{s, z}}(args)`
//! to the `Quantize`'s class, or `Pad{pads, z}(QConv{out: Quant{s, z}}(args))`
//! where the quantiser pads (the next conv is KxK): the integer conv then
//! hands the next layer's integer conv its u8 input directly, without
//! writing and re-reading an f32 tensor, and a padded consumer pays a
//! byte copy instead of a pass over the floats. The padding is exact:
//! `Quantize` pads with zeros before dividing, and a zero quantises to the
//! code `z`.
//!
//! Sound up to f32 rounding (as the `int8-conv` rule): [`QOut::Quant`]'s
//! output is [`QOut::Real`]'s value on the grid `(s, z)` with the division
//! by `s` a multiplication by its f32 reciprocal ([`QOut::factor`]; grids
//! without a finite normal one are not matched). The two quotients differ
//! by at most a few ulps, so the bytes are `Quantize{s, z}`'s except where
//! the value lies that close to a half step (one step apart there). The
//! f32 output may still be needed elsewhere (a residual); the DAG-aware
//! extraction then weighs computing the conv twice against the separate
//! quantiser. Directional: nothing turns a `Quant` output back.

use egg::Id;
use kerf_ir::op::{QConv, QOut};
use kerf_ir::Op;

use super::{rewrite, KRewrite, Rule};
use crate::analysis::KEGraph;
use crate::lang::KNode;

/// `int8-requant` (see the module docs).
pub struct Requant;

/// A match: the conv to re-emit with the quantiser's grid as its output.
pub struct RequantMatch {
    q: QConv,
    children: Vec<Id>,
    pads: Vec<usize>,
}

impl Rule for Requant {
    type Match = RequantMatch;
    fn name(&self) -> &'static str {
        "int8-requant"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<RequantMatch>) {
        for n in &eg[class].nodes {
            let Some(Op::Quantize { scale, zp, pads }) = n.kerf_op() else { continue };
            let [c] = n.children.as_slice() else { continue };
            if QOut::factor(scale.get()).is_none() {
                continue;
            }
            for cn in &eg[*c].nodes {
                let Some(Op::QConv(q)) = cn.kerf_op() else { continue };
                // the pattern tiles' u8 store takes a residual only as u8, where it fits
                let u8_residual = q.res_grid.is_some() && kerf_ir::ChannelQuads::u8_residual_fits(&q.conv, true);
                let pattern_residual = q.epi.residual && !u8_residual && on_quad_kernel(eg, q, cn);
                let tiles = super::int8::tiles_apply(q.epi.act);
                if q.out != QOut::Real || !tiles || !stores_bytes(eg, q, cn, *c) || pattern_residual {
                    continue;
                }
                let q = QConv { out: QOut::Quant { scale: *scale, zp: *zp }, ..q.clone() };
                out.push(RequantMatch { q, children: cn.children.clone(), pads: pads.clone() });
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &RequantMatch) -> Vec<Id> {
        let conv = KNode::op(Op::QConv(m.q.clone()), m.children.clone());
        let QOut::Quant { zp, .. } = m.q.out else { return Vec::new() };
        super::quant_move::union_padded(eg, class, conv, &m.pads, zp)
    }
}

/// Whether the code generator gives the QConv `n` (of class `class`) a
/// u8 store in its own epilogue: a GEMM QConv where the tiles are the
/// assembled x86 ones (`Int8Dot::tiles_store_u8`); a depthwise one
/// (weight `[M, 1, kh, kw]`, `M` groups) only on the flat pass (AVX2
/// targets) or the VNNI quad pass (`int8::on_byte_pass`).
fn stores_bytes(eg: &KEGraph, q: &QConv, n: &KNode, class: Id) -> bool {
    let w = n.children.get(1).and_then(|&c| eg[c].data.ty());
    let Some(w) = w.filter(|w| q.conv.is_depthwise(&w.shape)) else { return eg.analysis.int8_dot.tiles_store_u8() };
    let shape = |c: Option<&Id>| c.and_then(|&c| eg[c].data.ty()).map_or(&[][..], |t| &t.shape[..]);
    super::int8::on_byte_pass(eg, &q.conv, &w.shape, (shape(n.children.first()), shape(Some(&class))))
}

/// Whether the code generator runs the QConv `n` on the integer pattern
/// kernel (the assembled tiles and a weight of channel quads, as the
/// extraction prices it), whose u8 store takes no f32 residual.
fn on_quad_kernel(eg: &KEGraph, q: &QConv, n: &KNode) -> bool {
    let w = n.children.get(1).and_then(|&c| eg[c].data.constant);
    eg.analysis.quad_tiles()
        && w.is_some_and(|w| {
            let saturating = eg.analysis.int8_dot.saturates();
            kerf_ir::ChannelQuads::of_integer_conv(&q.conv, eg.analysis.weights.tensor(w), saturating).is_some()
        })
}

/// The rule.
pub fn rules() -> Vec<KRewrite> {
    vec![rewrite(Requant)]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use kerf_ir::{text, DType, Tensor};

    use crate::testutil::{interpret, random, QLayer};
    use crate::{Int8Dot, PassOptions};

    /// Two quantised layers in a row, a 3x3 conv (`depthwise`: one channel
    /// per group) then a 1x1 (Relu between them, the second's input
    /// through its unpadded quantiser), the first conv's f32 output also a
    /// graph output with `second_user`.
    fn two_layers(depthwise: bool, second_user: bool) -> String {
        two_layers_k(depthwise, second_user, 1)
    }

    /// [`two_layers`] with a `k2`x`k2` second conv ("same" padding: its
    /// quantiser pads for `k2 > 1`).
    fn two_layers_k(depthwise: bool, second_user: bool, k2: usize) -> String {
        let layer = |i: usize, input: &str| {
            let (k, pads) = if i == 0 { (3, 1) } else { (k2, k2 / 2) };
            let group = if i == 0 && depthwise { 32 } else { 1 };
            QLayer { c: 32, group, k, pads, side: 16, clip: (-100.0, 155.0) }.text(i, input)
        };
        let extra = if second_user { "  output \"z\" = %17\n" } else { "" };
        format!(
            "graph \"g\"\n  input %0 \"x\": f32[1,32,16,16]\n  const %3 \"s\": f32[] = [0.02]\n{}{}  output \"y\" = %27\n{extra}",
            layer(0, "%0"),
            layer(1, "%17")
        )
    }

    /// Two quantised convs in a row, 3x3 then 1x1 (Relu between them, the
    /// second's input through its unpadded quantiser; padded ones below):
    /// the first conv's output becomes u8
    /// through its own epilogue on targets with the assembled x86 tiles
    /// (`Int8Dot::Bytes`), not on the others (`Pairs`, `Sdot`). A second user of the first conv's f32
    /// output keeps that output f32 (the conv is not computed twice); the
    /// second conv's output is the same either way, up to f32 rounding.
    #[test]
    fn a_conv_feeding_a_quantised_conv_stores_u8() {
        let x = Tensor::from_f32(vec![1, 32, 16, 16], &random(3, 32 * 256, -2.0, 3.0)).unwrap();
        let mut ys = Vec::new();
        for second_user in [false, true] {
            let g = text::parse(&two_layers(false, second_user)).unwrap_or_else(|e| panic!("{e}"));
            // byte dot products (VNNI's): the 1x1 conv is worth the integer kernel
            let opts = PassOptions { int8_dot: Int8Dot::Bytes, ..PassOptions::default() };
            let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
            let printed = text::print(&out);
            // with a second user the first conv is not computed twice
            assert_eq!(printed.contains("out=quant"), !second_user, "{printed}");
            // without the assembled x86 tiles the quantiser stays separate
            for int8_dot in [Int8Dot::Pairs, Int8Dot::Sdot] {
                let opts = PassOptions { int8_dot, ..PassOptions::default() };
                let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
                let printed = text::print(&out);
                let convs = printed.matches("QConv{").count();
                assert!(convs == 2 && !printed.contains("out=quant"), "{int8_dot:?}: {printed}");
            }
            let y = interpret(&out, std::slice::from_ref(&x)).remove(0);
            assert_eq!(y.dtype(), DType::F32);
            ys.push(y.to_f32_vec());
        }
        // the second conv integer (u8 input from the first's epilogue) or
        // f32 (on the fake-quantised input): f32 rounding apart, which may
        // move a value across a rounding tie of the quantiser (one step)
        let scale = ys[1].iter().fold(0f32, |a, v| a.max(v.abs()));
        let err = ys[0].iter().zip(&ys[1]).fold(0f32, |a, (p, q)| a.max((p - q).abs()));
        assert!(err / scale < 1e-2, "relative error {}", err / scale);
        let close = ys[0].iter().zip(&ys[1]).filter(|(p, q)| (*p - *q).abs() <= 1e-5 * scale).count();
        assert!(close * 100 >= 99 * ys[0].len(), "{close} of {} within f32 rounding", ys[0].len());
    }

    /// A conv feeding a 3x3 conv, whose quantiser pads: with the
    /// assembled x86 tiles the first conv stores u8 and a `Pad` with the
    /// zero point makes the padded input (no pass over floats), equal to
    /// the original up to f32 rounding; without them (`Pairs`) the padding
    /// quantiser stays.
    #[test]
    fn a_conv_feeding_a_padded_quantised_conv_stores_u8_then_pads() {
        let x = Tensor::from_f32(vec![1, 32, 16, 16], &random(3, 32 * 256, -2.0, 3.0)).unwrap();
        let g = text::parse(&two_layers_k(false, false, 3)).unwrap_or_else(|e| panic!("{e}"));
        let want = interpret(&g, std::slice::from_ref(&x)).remove(0).to_f32_vec();
        let opts = PassOptions { int8_dot: Int8Dot::ExactBytes, ..PassOptions::default() };
        let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
        let printed = text::print(&out);
        let pad = printed.lines().find(|l| l.contains("Pad{")).unwrap_or_else(|| panic!("{printed}"));
        assert!(pad.contains("value=") && pad.contains(": u8[1,32,18,18]"), "{printed}");
        assert_eq!(printed.matches("out=quant").count(), 1, "{printed}");
        let got = interpret(&out, std::slice::from_ref(&x)).remove(0).to_f32_vec();
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        let close = got.iter().zip(&want).filter(|(p, q)| (*p - *q).abs() <= 1e-5 * scale).count();
        assert!(close * 100 >= 99 * want.len(), "{close} of {} within f32 rounding", want.len());
        let opts = PassOptions { int8_dot: Int8Dot::Pairs, ..PassOptions::default() };
        let printed = text::print(&crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap().0);
        assert!(!printed.contains("Pad{") && !printed.contains("out=quant"), "{printed}");
    }

    /// A residual block over two quantised 3x3 convs: the second conv's
    /// output plus a residual, then Relu. Where the residual is the value
    /// the second conv's own quantiser makes of the block input
    /// (`residual = "int8"`'s graph), `int8-conv` lets the conv read it as
    /// u8 (`res_scale`/`res_zp`) and the first conv stores u8 once for
    /// both of its users (no quantiser pass, no f32 tensor between the
    /// convs), equal to the original up to f32 rounding; where it is the
    /// f32 block input itself, the residual stays f32.
    #[test]
    fn a_quantised_residual_is_read_as_u8() {
        let x = Tensor::from_f32(vec![1, 32, 16, 16], &random(3, 32 * 256, -2.0, 3.0)).unwrap();
        let block = |residual: &str| {
            let t = two_layers_k(false, false, 3);
            let relu = "  %27 = Relu(%26): f32[1,32,16,16] @\"relu1\"\n";
            assert!(t.contains(relu), "{t}");
            let add = format!(
                "  %28 = Add(%26, {residual}): f32[1,32,16,16] @\"add\"\n  %27 = Relu(%28): f32[1,32,16,16] @\"relu1\"\n"
            );
            t.replace(relu, &add)
        };
        let opts = PassOptions { int8_dot: Int8Dot::ExactBytes, ..PassOptions::default() };
        for (residual, u8_residual) in [("%25", true), ("%17", false)] {
            let g = text::parse(&block(residual)).unwrap_or_else(|e| panic!("{e}"));
            let want = interpret(&g, std::slice::from_ref(&x)).remove(0).to_f32_vec();
            let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
            let printed = text::print(&out);
            assert_eq!(printed.contains("res_scale=0.02, res_zp=100"), u8_residual, "{residual}:\n{printed}");
            assert_eq!(printed.matches("QConv{").count(), 2, "{printed}");
            if u8_residual {
                // the first conv's bytes serve the Pad and the residual:
                // the graph input's quantiser is the only one
                assert_eq!(printed.matches("Quantize{").count(), 1, "{printed}");
            }
            let got = interpret(&out, std::slice::from_ref(&x)).remove(0).to_f32_vec();
            let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
            let close = got.iter().zip(&want).filter(|(p, q)| (*p - *q).abs() <= 1e-5 * scale).count();
            assert!(close * 100 >= 99 * want.len(), "{close} of {} within f32 rounding", want.len());
        }
    }

    /// A conv whose activation the assembled tiles do not apply
    /// (LeakyRelu) keeps its f32 output and the separate quantiser: its u8
    /// store would be the Cranelift epilogue's, slower than the quantiser
    /// pass; with Relu the same graph stores u8.
    #[test]
    fn an_activation_the_tiles_lack_keeps_the_quantiser() {
        let relu = two_layers_k(false, false, 3);
        let leaky = relu.replace("  %17 = Relu(%16)", "  %17 = LeakyRelu{alpha=0.1}(%16)");
        assert_ne!(relu, leaky);
        let opts = PassOptions { int8_dot: Int8Dot::ExactBytes, ..PassOptions::default() };
        for (text, bytes) in [(relu, true), (leaky, false)] {
            let g = text::parse(&text).unwrap_or_else(|e| panic!("{e}"));
            let printed = text::print(&crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap().0);
            assert_eq!(printed.matches("QConv{").count(), 2, "{printed}");
            assert_eq!(printed.contains("out=quant"), bytes, "{printed}");
        }
    }

    /// A pattern-pruned conv (one 4-tap pattern per quad of input
    /// channels) feeding a padded quantised conv: on the integer pattern
    /// kernel (AVX2's byte quads, `wide_patterns`) it stores u8 and a
    /// `Pad` makes the padded input, as the integer GEMM's convs do, equal
    /// to the original up to f32 rounding; with a residual added before
    /// its Relu it keeps the f32 output and the separate quantiser (the
    /// pattern tiles' u8 store takes no f32 residual), unless the residual
    /// is on an int8 grid (`residual = "int8"`): then the tiles read it as
    /// u8 and store u8.
    #[test]
    fn a_pattern_conv_stores_u8_without_an_f32_residual() {
        let x = Tensor::from_f32(vec![1, 32, 16, 16], &random(3, 32 * 256, -2.0, 3.0)).unwrap();
        let layer = QLayer { c: 32, group: 1, k: 3, pads: 1, side: 16, clip: (-100.0, 155.0) };
        let first = layer.pattern_text(0, "%0");
        let residual =
            first.replace("  %17 = Relu(%16)", "  %19 = Add(%16, %0): f32[1,32,16,16] @\"add0\"\n  %17 = Relu(%19)");
        assert_ne!(first, residual);
        // the residual on the conv's own input grid (`residual = "int8"`): read as u8, stored as u8
        let on_grid = residual.replace("Add(%16, %0)", "Add(%16, %15)");
        let opts = PassOptions { int8_dot: Int8Dot::ExactBytes, wide_patterns: true, ..PassOptions::default() };
        for (body, bytes) in [(first, true), (residual, false), (on_grid.clone(), true)] {
            let u8_residual = body == on_grid;
            let text = format!(
                "graph \"g\"\n  input %0 \"x\": f32[1,32,16,16]\n  const %3 \"s\": f32[] = [0.02]\n{body}{}  output \"y\" = %27\n",
                layer.text(1, "%17")
            );
            let g = text::parse(&text).unwrap_or_else(|e| panic!("{e}"));
            let want = interpret(&g, std::slice::from_ref(&x)).remove(0).to_f32_vec();
            let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
            let printed = text::print(&out);
            assert_eq!(printed.matches("QConv{").count(), 2, "{printed}");
            assert_eq!(printed.contains("out=quant") && printed.contains("Pad{"), bytes, "{printed}");
            assert_eq!(printed.contains("res_scale=0.02, res_zp=100"), u8_residual, "{printed}");
            let got = interpret(&out, std::slice::from_ref(&x)).remove(0).to_f32_vec();
            let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
            let close = got.iter().zip(&want).filter(|(p, q)| (*p - *q).abs() <= 1e-5 * scale).count();
            assert!(close * 100 >= 99 * want.len(), "{close} of {} within f32 rounding", want.len());
        }
    }

    /// A depthwise QConv stores u8 through the next layer's quantiser only
    /// where the code generator has a pass whose epilogue stores bytes:
    /// the flat pass on small stride-1 "same" planes (a 16x16 plane, any
    /// AVX2 target) or VNNI's quad pass (`Int8Dot::Bytes`, also on 17x17);
    /// the AVX2 padded-plane pass (17x17 without VNNI) keeps its f32
    /// output and the separate quantiser.
    #[test]
    fn a_depthwise_conv_stores_u8_only_on_a_byte_storing_pass() {
        for side in [16, 17] {
            let text = two_layers(true, false).replace(",16,16]", &format!(",{side},{side}]"));
            let g = text::parse(&text).unwrap_or_else(|e| panic!("{e}"));
            for int8_dot in [Int8Dot::ExactBytes, Int8Dot::Bytes] {
                let opts = PassOptions { int8_dot, int8_depthwise: true, ..PassOptions::default() };
                let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
                let printed = text::print(&out);
                let dw = printed.lines().find(|l| l.contains("QConv{") && l.contains("group=32"));
                let dw = dw.unwrap_or_else(|| panic!("no depthwise QConv: {printed}"));
                let bytes = side == 16 || int8_dot == Int8Dot::Bytes;
                assert_eq!(dw.contains("out=quant"), bytes, "{side}x{side}, {int8_dot:?}: {printed}");
            }
        }
    }
}
