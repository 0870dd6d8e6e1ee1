//! `int8-maxpool` and `int8-concat` (in the `int8` group): the activation
//! quantiser moved toward the ops that produce its input, so that it meets
//! an integer conv whose epilogue can store u8 (`int8-requant`) and neither
//! the f32 tensor nor the pass over it is left.
//!
//! `int8-maxpool` matches `Quantize{s, z, pads}(m)` where `m`'s class holds
//! a 2-D f32 `MaxPool{p}(y)` whose rows hold a vector of byte outputs
//! ([`kerf_ir::byte_pool_rows_fit`]; narrower ones pool a byte at a time,
//! slower than the f32 pool), and adds
//! `Pad{pads, z}(MaxPool{p}(Quantize{s, z, 0}(y)))` to the quantiser's
//! class (without the `Pad` when `pads` are all zero; the integer conv
//! behind it reads an explicitly padded input, and its padding holds the
//! zero point either way). The pool then runs on bytes, a quarter of the
//! traffic (SqueezeNet's stem: a 111x111x64 f32 tensor written, pooled and
//! quantised becomes a byte tensor pooled). Exact, NaN aside: `Quantize`
//! is `x ↦ clamp(round(x / s)) + z` per element with `s > 0`, a
//! non-decreasing map, and a non-decreasing map commutes with a maximum:
//! `q(max(a, b)) = max(q(a), q(b))`, ties giving equal codes. The pool's
//! padding is never read, in f32 or bytes; a window of padding only (which
//! ONNX geometry forbids) gives −inf then code 0 on one side and the bytes'
//! lowest, 0, on the other. A NaN differs: the f32 pool propagates it and
//! the cast makes it 0, while the byte pool takes the other taps' maximum.
//!
//! `int8-concat` matches `Quantize{s, z, pads}(Concat{axis}(a, b, ...))`
//! with no padding on `axis`, and adds
//! `Concat{axis}(Quantize{s, z, pads}(a), Quantize{s, z, pads}(b), ...)`:
//! each piece is quantised where it is made (SqueezeNet's fire modules
//! concatenate two convs' outputs in front of the next squeeze conv's
//! quantiser). Exact: `Quantize` is elementwise, and padding the other axes
//! of each piece pads the same places of the concatenation.
//!
//! Both are directional. The extractor weighs the moved forms against the
//! originals: where no conv takes the quantiser over, the moved one
//! quantises as many elements or more (four times as many before a
//! stride-2 pool), and where the f32 tensor has another user (ResNet's
//! pooled stem feeds a residual) it is computed anyway.

use egg::Id;
use kerf_ir::op::PadMode;
use kerf_ir::{DType, Op, F32};

use super::{add_union, rewrite, KRewrite, Rule};
use crate::analysis::KEGraph;
use crate::lang::KNode;

/// `int8-maxpool` (see the module docs).
pub struct QuantizeBeforeMaxPool;

/// `int8-concat` (see the module docs).
pub struct QuantizeConcatPieces;

/// A match of `int8-concat`: the quantiser, the axis and the pieces.
pub struct ConcatMatch {
    quantize: Op,
    axis: usize,
    pieces: Vec<Id>,
}

impl Rule for QuantizeConcatPieces {
    type Match = ConcatMatch;
    fn name(&self) -> &'static str {
        "int8-concat"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<ConcatMatch>) {
        for n in &eg[class].nodes {
            let Some(quantize @ Op::Quantize { pads, .. }) = n.kerf_op() else { continue };
            let [c] = n.children.as_slice() else { continue };
            let rank = pads.len() / 2;
            for cn in &eg[*c].nodes {
                let Some(&Op::Concat { axis }) = cn.kerf_op() else { continue };
                if axis < rank && pads[axis] == 0 && pads[rank + axis] == 0 {
                    out.push(ConcatMatch { quantize: quantize.clone(), axis, pieces: cn.children.clone() });
                }
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &ConcatMatch) -> Vec<Id> {
        let pieces: Vec<Id> = m.pieces.iter().map(|&p| eg.add(KNode::op(m.quantize.clone(), vec![p]))).collect();
        add_union(eg, class, KNode::op(Op::Concat { axis: m.axis }, pieces))
    }
}

/// A match: the quantiser's grid and padding, the pool and its input.
pub struct PoolMatch {
    scale: F32,
    zp: u8,
    pads: Vec<usize>,
    pool: kerf_ir::op::Pool,
    input: Id,
}

impl Rule for QuantizeBeforeMaxPool {
    type Match = PoolMatch;
    fn name(&self) -> &'static str {
        "int8-maxpool"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<PoolMatch>) {
        for n in &eg[class].nodes {
            let Some(Op::Quantize { scale, zp, pads }) = n.kerf_op() else { continue };
            let [m] = n.children.as_slice() else { continue };
            for pn in &eg[*m].nodes {
                let Some(Op::MaxPool(pool)) = pn.kerf_op() else { continue };
                let [y] = pn.children.as_slice() else { continue };
                let w = &pool.window;
                let fits = |t: &kerf_ir::TensorType| {
                    let [.., in_w] = t.shape[..] else { return false };
                    kerf_ir::byte_pool_rows_fit(w.kernel[1], w.strides[1], w.dilations[1], w.pad_begin(1), in_w)
                };
                let f32_2d = eg[*y].data.ty().is_some_and(|t| t.dtype == DType::F32 && t.shape.len() == 4 && fits(t));
                if f32_2d {
                    let (scale, zp, pads) = (*scale, *zp, pads.clone());
                    out.push(PoolMatch { scale, zp, pads, pool: pool.clone(), input: *y });
                }
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &PoolMatch) -> Vec<Id> {
        let flat = vec![0; m.pads.len()];
        let q = eg.add(KNode::op(Op::Quantize { scale: m.scale, zp: m.zp, pads: flat }, vec![m.input]));
        let pooled = KNode::op(Op::MaxPool(m.pool.clone()), vec![q]);
        union_padded(eg, class, pooled, &m.pads, m.zp)
    }
}

/// Unions the u8 codes `node` computes with the class of a quantiser
/// whose padding is `pads`: directly where they are all zero, else through
/// `Pad{pads, zp}` (the quantiser pads with zeros before dividing, and a
/// zero is the code `zp`). `int8-maxpool` and `int8-requant` share it.
pub(super) fn union_padded(eg: &mut KEGraph, class: Id, node: KNode, pads: &[usize], zp: u8) -> Vec<Id> {
    if pads.iter().all(|&p| p == 0) {
        return add_union(eg, class, node);
    }
    let codes = eg.add(node);
    let value = F32::new(f32::from(zp));
    add_union(eg, class, KNode::op(Op::Pad { pads: pads.to_vec(), mode: PadMode::Constant, value }, vec![codes]))
}

/// The rules.
pub fn rules() -> Vec<KRewrite> {
    vec![rewrite(QuantizeBeforeMaxPool), rewrite(QuantizeConcatPieces)]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use kerf_ir::{text, Tensor};

    use crate::testutil::{interpret, random, QLayer};
    use crate::{Int8Dot, PassOptions};

    /// A quantised 16-channel conv `i` with Relu over `input` (`side`
    /// square), kernel `k`, pads `p`: its lines, output `%{10 i + 17}`.
    fn layer(i: usize, k: usize, p: usize, input: &str, side: usize) -> String {
        QLayer { c: 16, group: 1, k, pads: p, side, clip: (0.0, 255.0) }.text(i, input)
    }

    /// A ResNet stem in small: a quantised 3x3 conv with Relu, a 3x3
    /// stride-2 MaxPool (pads 1), then a quantised 3x3 conv (pads 1, so its
    /// quantiser pads) or 1x1 (`pointwise`: an unpadded quantiser).
    fn stem(pointwise: bool, side: usize) -> String {
        let (k, p) = if pointwise { (1, 0) } else { (3, 1) };
        format!(
            "graph \"g\"\n  input %0 \"x\": f32[1,16,{side},{side}]\n  const %3 \"s\": f32[] = [0.02]\n{}  %18 = MaxPool{{kernel=[3,3], strides=[2,2], dilations=[1,1], pads=[1,1,1,1], ceil_mode=false}}(%17): f32[1,16,{half},{half}] @\"pool\"\n{}  output \"y\" = %27\n",
            layer(0, 3, 1, "%0", side),
            layer(1, k, p, "%18", side / 2),
            half = side / 2
        )
    }

    /// Where the first conv can store u8 (`Int8Dot::Bytes`: the assembled
    /// x86 tiles), the pool runs on its bytes: the conv takes the pool's
    /// grid (`out=quant`), a byte MaxPool follows, and a `Pad` with the
    /// zero point where the next conv pads; the output equals the original
    /// graph's up to f32 rounding. Where it cannot (`Pairs`), quantising
    /// the pool's four times larger input would cost more, and the pool
    /// stays f32 before the quantiser.
    #[test]
    fn the_quantiser_moves_before_the_pool_where_the_conv_stores_bytes() {
        let x = Tensor::from_f32(vec![1, 16, 40, 40], &random(3, 16 * 1600, -2.0, 3.0)).unwrap();
        for pointwise in [false, true] {
            let g = text::parse(&stem(pointwise, 40)).unwrap_or_else(|e| panic!("{e}"));
            let want = interpret(&g, std::slice::from_ref(&x)).remove(0).to_f32_vec();
            let opts = PassOptions { int8_dot: Int8Dot::Bytes, ..PassOptions::default() };
            let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
            let printed = text::print(&out);
            let pool = printed.lines().find(|l| l.contains("MaxPool{")).unwrap_or_else(|| panic!("{printed}"));
            assert!(pool.contains(": u8[1,16,20,20]"), "{printed}");
            assert!(printed.contains("out=quant"), "{printed}");
            assert_eq!(printed.contains("Pad{"), !pointwise, "{printed}");
            let got = interpret(&out, std::slice::from_ref(&x)).remove(0).to_f32_vec();
            let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
            let close = got.iter().zip(&want).filter(|(p, q)| (*p - *q).abs() <= 1e-5 * scale).count();
            assert!(close * 100 >= 99 * want.len(), "{close} of {} within f32 rounding", want.len());

            let opts = PassOptions { int8_dot: Int8Dot::Pairs, ..PassOptions::default() };
            let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
            let printed = text::print(&out);
            let pool = printed.lines().find(|l| l.contains("MaxPool{")).unwrap_or_else(|| panic!("{printed}"));
            assert!(pool.contains(": f32[1,16,20,20]") && !printed.contains("out=quant"), "{printed}");
        }
        // rows of 32 pool to 16 outputs, 15 of them interior: no byte vector
        let g = text::parse(&stem(true, 32)).unwrap_or_else(|e| panic!("{e}"));
        let opts = PassOptions { int8_dot: Int8Dot::Bytes, ..PassOptions::default() };
        let printed = text::print(&crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap().0);
        let pool = printed.lines().find(|l| l.contains("MaxPool{")).unwrap_or_else(|| panic!("{printed}"));
        assert!(pool.contains(": f32[1,16,16,16]"), "{printed}");
    }

    /// A fire module in small (SqueezeNet): a quantised 1x1 and a
    /// quantised 3x3 conv over one input, concatenated along the channels,
    /// then the next quantised 1x1 conv. Where the convs store u8
    /// (`Int8Dot::Bytes`) each is quantised where it is made: both store
    /// u8 and the concatenation is of bytes; elsewhere (`Pairs`) they
    /// store f32 (whether one quantiser runs after the concatenation or one
    /// per piece, the extractor's choice, the same elements are
    /// quantised). The output equals the original's up to f32 rounding.
    #[test]
    fn concatenated_convs_each_store_their_bytes() {
        let concat = "  %40 = Concat{axis=1}(%17, %27): f32[1,32,8,8] @\"cat\"\n";
        let head: Vec<String> =
            random(5, 8 * 32, -127.0, 127.0).iter().map(|q| format!("{:?}", q.round() * 0.01)).collect();
        let text = format!(
            "graph \"fire\"\n  input %0 \"x\": f32[1,16,8,8]\n  const %3 \"s\": f32[] = [0.02]\n{}{}{concat}  const %41 \"wh\": f32[8,32,1,1] = [{}] grid=int8(axis=0, scales=[{}])\n  %42 = Div(%40, %3): f32[1,32,8,8] @\"dh\"\n  %43 = Round(%42): f32[1,32,8,8] @\"rh\"\n  %44 = Clip{{min=0.0, max=255.0}}(%43): f32[1,32,8,8] @\"ch\"\n  %45 = Mul(%44, %3): f32[1,32,8,8] @\"qh\"\n  %46 = Conv{{kernel=[1,1], strides=[1,1], dilations=[1,1], pads=[0,0,0,0], group=1, layer=\"head\"}}(%45, %41): f32[1,8,8,8] @\"head\"\n  output \"y\" = %46\n",
            layer(0, 1, 0, "%0", 8),
            layer(1, 3, 1, "%0", 8),
            head.join(","),
            ["0.01"; 8].join(","),
        );
        let g = text::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let x = Tensor::from_f32(vec![1, 16, 8, 8], &random(3, 16 * 64, -2.0, 3.0)).unwrap();
        let want = interpret(&g, std::slice::from_ref(&x)).remove(0).to_f32_vec();
        for (int8_dot, bytes) in [(Int8Dot::Bytes, true), (Int8Dot::Pairs, false)] {
            let opts = PassOptions { int8_dot, ..PassOptions::default() };
            let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
            let printed = text::print(&out);
            let cat = printed.lines().find(|l| l.contains("Concat{")).unwrap_or_else(|| panic!("{printed}"));
            assert!(cat.contains(": u8[1,32,8,8]") || !bytes, "{int8_dot:?}: {printed}");
            assert_eq!(printed.matches("out=quant").count(), if bytes { 2 } else { 0 }, "{int8_dot:?}: {printed}");
            let got = interpret(&out, std::slice::from_ref(&x)).remove(0).to_f32_vec();
            let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
            let close = got.iter().zip(&want).filter(|(p, q)| (*p - *q).abs() <= 1e-5 * scale).count();
            assert!(close * 100 >= 99 * want.len(), "{int8_dot:?}: {close} of {} within f32 rounding", want.len());
        }
    }

    /// The moved form alone, without the integer convs: `Quantize` of a
    /// byte pool equals the pool of the quantised floats code for code,
    /// ties and clamped values included, in ceil mode with a partial last
    /// window on both axes (odd spans: 10 + 2 − 3, 12 + 2 − 3).
    #[test]
    fn pooling_codes_equals_quantising_the_pool() {
        let text = "graph \"p\"
  input %0 \"x\": f32[1,2,10,12]
  %1 = MaxPool{kernel=[3,3], strides=[2,2], dilations=[1,1], pads=[1,1,1,1], ceil_mode=true}(%0): f32[1,2,6,7] @\"pool\"
  %2 = Quantize{scale=0.05, zp=100, pads=[0,0,1,1,0,0,1,1]}(%1): u8[1,2,8,9] @\"q\"
  output \"y\" = %2
";
        let g = text::parse(text).unwrap_or_else(|e| panic!("{e}"));
        // values on and between grid points (ties), beyond both ends of the
        // grid, and a block of windows below it (pooled to code 0)
        let x: Vec<f32> = (0..2 * 10 * 12)
            .map(|i| if i % 99 < 30 { -9.0 } else { ((i * 37 % 101) as f32 - 50.0) * 0.2 + 0.025 * (i % 3) as f32 })
            .collect();
        let x = Tensor::from_f32(vec![1, 2, 10, 12], &x).unwrap();
        let want = interpret(&g, std::slice::from_ref(&x)).remove(0);
        // what the rule writes for it
        let moved = text::parse(
            "graph \"p\"
  input %0 \"x\": f32[1,2,10,12]
  %1 = Quantize{scale=0.05, zp=100, pads=[0,0,0,0,0,0,0,0]}(%0): u8[1,2,10,12] @\"q\"
  %2 = MaxPool{kernel=[3,3], strides=[2,2], dilations=[1,1], pads=[1,1,1,1], ceil_mode=true}(%1): u8[1,2,6,7] @\"pool\"
  %3 = Pad{pads=[0,0,1,1,0,0,1,1], mode=constant, value=100.0}(%2): u8[1,2,8,9] @\"pad\"
  output \"y\" = %3
",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let got = interpret(&moved, std::slice::from_ref(&x)).remove(0);
        assert_eq!(got.bytes(), want.bytes());
        assert!(want.bytes().contains(&0) && want.bytes().contains(&255));
    }
}
