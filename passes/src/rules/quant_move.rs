//! `int8-maxpool`, `int8-concat`, `int8-reshape` and `int8-same-grid` (in
//! the `int8` group): the activation
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
//! `int8-reshape` matches `Quantize{s, z, pads}(Reshape{shape}(y))` or
//! `Quantize{s, z, pads}(Slice{..}(y))` with no padding and adds
//! `Reshape{shape}(Quantize{s, z, 0}(y))` (`Slice{..}(Quantize{s, z,
//! 0}(y))`: the crop after an `int8-convtranspose-phases` interleave), and
//! `Quantize{s, z, pads}(Transpose{perm}(y))`, adding
//! `Transpose{perm}(Quantize{s, z, pads'}(y))` with each axis's padding
//! carried to the axis it comes from (`pads'[perm[i]] = pads[i]`, begin
//! and end; where that stays on the last two axes, the only ones
//! `Quantize` pads): the quantiser then meets what makes the tensor (a Flatten in
//! front of a classifier head is a Reshape). Exact: `Quantize` is
//! elementwise, and row-major reshapes, slices and axis permutations only
//! move or drop elements (a padded transpose pads the same places either
//! way).
//!
//! `int8-same-grid` matches `Quantize{s, z, pads}(q)` where `q`'s class
//! holds the activation quantiser on the same grid, `Mul(Clip{−z, 255 −
//! z}(Round(Div(x, s))), s)`, and adds `Quantize{s, z, pads}(x)`: putting a
//! value on a grid it is already on changes nothing. It also reads through
//! a MaxPool: `Quantize{s, z, pads}(MaxPool(q))` gets
//! `Quantize{s, z, pads}(MaxPool(x))`, since the quantiser is
//! non-decreasing and so commutes with the maximum (as for
//! `int8-maxpool`). Other tools' QDQ
//! models quantise again after every op that keeps the grid (ONNX
//! Runtime's `quantize_static` writes `Q → DQ` after a Relu, a MaxPool and a
//! Flatten on one scale), and each pair imports as such a
//! quantiser; with this rule the repeated ones go. Exact for a normal `s` with `255·s`
//! finite: the quantiser's value is `v = fl(c·s)` for an integer `c` in
//! `[−z, 255 − z]`, and `fl(v / s) = c·(1 + δ)` with `|δ| ≤ 2⁻²³`, within
//! `255·2⁻²³ < ½` of `c`, so it rounds to `c` again (with the reciprocal's
//! product instead of the division, a few ulps more, the same); `±∞`
//! clamps to the same end code either way and NaN stays NaN into the
//! second `Quantize`.
//!
//! All four are directional. The extractor weighs the moved forms against the
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

/// `int8-reshape` (see the module docs).
pub struct QuantizeBeforeReshape;

/// A match of `int8-reshape`: the moved quantiser (its padding carried to
/// the input's axes), the reshape or transpose, and its input.
pub struct MoveMatch {
    quantize: Op,
    movement: Op,
    input: Id,
}

impl Rule for QuantizeBeforeReshape {
    type Match = MoveMatch;
    fn name(&self) -> &'static str {
        "int8-reshape"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<MoveMatch>) {
        for n in &eg[class].nodes {
            let Some(Op::Quantize { scale, zp, pads }) = n.kerf_op() else { continue };
            let [m] = n.children.as_slice() else { continue };
            for mn in &eg[*m].nodes {
                let [y] = mn.children.as_slice() else { continue };
                let Some(t) = eg[*y].data.ty().filter(|t| t.dtype == DType::F32) else { continue };
                let rank = t.shape.len();
                let moved = match mn.kerf_op() {
                    Some(Op::Reshape { .. } | Op::Slice { .. }) if pads.iter().all(|&p| p == 0) => vec![0; 2 * rank],
                    Some(Op::Transpose { perm }) if perm.len() == rank && pads.len() == 2 * rank => {
                        let mut moved = vec![0; 2 * rank];
                        for (i, &from) in perm.iter().enumerate() {
                            moved[from] = pads[i];
                            moved[rank + from] = pads[rank + i];
                        }
                        // `Quantize` pads the last two axes only (a conv's plane)
                        let plane = rank.saturating_sub(2);
                        if moved[..plane].iter().chain(&moved[rank..rank + plane]).any(|&p| p != 0) {
                            continue;
                        }
                        moved
                    }
                    _ => continue,
                };
                let Some(movement) = mn.kerf_op() else { continue };
                let quantize = Op::Quantize { scale: *scale, zp: *zp, pads: moved };
                out.push(MoveMatch { quantize, movement: movement.clone(), input: *y });
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &MoveMatch) -> Vec<Id> {
        let q = eg.add(KNode::op(m.quantize.clone(), vec![m.input]));
        add_union(eg, class, KNode::op(m.movement.clone(), vec![q]))
    }
}

/// `int8-same-grid` (see the module docs).
pub struct QuantizeOnItsGrid;

/// A match of `int8-same-grid`: the quantiser, the MaxPool it reads
/// through (if any), and the input of the quantiser on its grid.
pub struct GridMatch {
    quantize: Op,
    pool: Option<Op>,
    x: Id,
}

impl Rule for QuantizeOnItsGrid {
    type Match = GridMatch;
    fn name(&self) -> &'static str {
        "int8-same-grid"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<GridMatch>) {
        for n in &eg[class].nodes {
            let Some(quantize @ Op::Quantize { scale, zp, .. }) = n.kerf_op() else { continue };
            let [q] = n.children.as_slice() else { continue };
            let s = scale.get();
            if !s.is_normal() || !(s * 255.0).is_finite() {
                continue;
            }
            let on_grid = |c: Id| super::int8::quantiser(eg, c).filter(|inner| inner.s == s && inner.z == *zp);
            if let Some(inner) = on_grid(*q) {
                out.push(GridMatch { quantize: quantize.clone(), pool: None, x: inner.x });
            }
            for pn in &eg[*q].nodes {
                let (Some(pool @ Op::MaxPool(_)), [p]) = (pn.kerf_op(), pn.children.as_slice()) else { continue };
                if let Some(inner) = on_grid(*p) {
                    out.push(GridMatch { quantize: quantize.clone(), pool: Some(pool.clone()), x: inner.x });
                }
            }
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &GridMatch) -> Vec<Id> {
        let x = match &m.pool {
            Some(pool) => eg.add(KNode::op(pool.clone(), vec![m.x])),
            None => m.x,
        };
        add_union(eg, class, KNode::op(m.quantize.clone(), vec![x]))
    }
}

/// The rules.
pub fn rules() -> Vec<KRewrite> {
    vec![
        rewrite(QuantizeBeforeMaxPool),
        rewrite(QuantizeConcatPieces),
        rewrite(QuantizeBeforeReshape),
        rewrite(QuantizeOnItsGrid),
    ]
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

    /// `x` quantised on `(s, zp = 100)` as the compress stage writes it,
    /// then `movement` (a line of the graph text, `%6` of `%5`) and the
    /// quantiser `Quantize{scale = outer, zp = 100, pads}` of it.
    fn requantised(outer: &str, movement: &str, pads: &str, out: &str) -> String {
        format!(
            "graph \"q\"
  input %0 \"x\": f32[1,2,4,6]
  const %1 \"s\": f32[] = [0.05]
  %2 = Div(%0, %1): f32[1,2,4,6] @\"d\"
  %3 = Round(%2): f32[1,2,4,6] @\"r\"
  %4 = Clip{{min=-100.0, max=155.0}}(%3): f32[1,2,4,6] @\"c\"
  %5 = Mul(%4, %1): f32[1,2,4,6] @\"m\"
{movement}  %7 = Quantize{{scale={outer}, zp=100, pads={pads}}}(%6): u8{out} @\"q\"
  output \"y\" = %7
"
        )
    }

    /// A quantiser behind a Flatten, a crop, a padded transpose or a MaxPool,
    /// reading a value already on its grid (ONNX Runtime's `Q → DQ` after
    /// ops that keep the grid): `int8-reshape` moves it before the movement
    /// and `int8-same-grid` drops the chain (through the pool), so one
    /// `Quantize` is left, and its codes are the original's byte for byte: ties, values
    /// past both ends of the grid, ±∞ and NaN included. On another grid the
    /// chain stays.
    #[test]
    fn quantising_again_on_the_same_grid_changes_nothing() {
        let flatten = "  %6 = Reshape{shape=[1,48]}(%5): f32[1,48] @\"flat\"\n";
        let transpose = "  %6 = Transpose{perm=[0,1,3,2]}(%5): f32[1,2,6,4] @\"t\"\n";
        // a 2x2 pool of 3-pixel rows: no byte vector, so it stays f32
        // (`int8-maxpool` does not apply) and the quantiser reads through it
        let pool = "  %6 = MaxPool{kernel=[2,2], strides=[2,2], dilations=[1,1], pads=[0,0,0,0], ceil_mode=false}(%5): f32[1,2,2,3] @\"p\"\n";
        let crop = "  %6 = Slice{starts=[0,0,1,0], ends=[1,2,4,5], steps=[1,1,1,1]}(%5): f32[1,2,3,5] @\"c\"\n";
        let cases = [
            (flatten, "[0,0,0,0]", "[1,48]", "Reshape{", true),
            (crop, "[0,0,0,0,0,0,0,0]", "[1,2,3,5]", "Slice{", true),
            (transpose, "[0,0,1,0,0,0,1,2]", "[1,2,8,6]", "Transpose{", true),
            (pool, "[0,0,0,1,0,0,0,1]", "[1,2,2,5]", "MaxPool{", false),
        ];
        let mut x: Vec<f32> = (0..48).map(|i| (i as f32 - 24.0) * 0.5 * 0.05 + 0.0125 * (i % 3) as f32).collect();
        x[5] = f32::INFINITY;
        x[6] = f32::NEG_INFINITY;
        x[7] = f32::NAN;
        x[8] = 9.0;
        x[9] = -9.0;
        let x = Tensor::from_f32(vec![1, 2, 4, 6], &x).unwrap();
        for (movement, pads, out, kept, on_codes) in cases {
            let g = text::parse(&requantised("0.05", movement, pads, out)).unwrap_or_else(|e| panic!("{e}"));
            let want = interpret(&g, std::slice::from_ref(&x)).remove(0);
            let (opt, reports) = crate::run_groups(&g, &["int8"], &PassOptions::default()).unwrap();
            let printed = text::print(&opt);
            assert!(!printed.contains("Round(") && !printed.contains("Div("), "{printed}");
            let moved = printed.lines().find(|l| l.contains(kept)).unwrap_or_else(|| panic!("{printed}"));
            assert_eq!(moved.contains(": u8["), on_codes, "the movement runs on the codes: {printed}");
            assert!(reports[0].rules_fired.contains_key("int8-same-grid"), "{reports:?}");
            let got = interpret(&opt, std::slice::from_ref(&x)).remove(0);
            assert_eq!(got.shape(), want.shape());
            assert_eq!(got.bytes(), want.bytes(), "{printed}");
            assert!(want.bytes().contains(&0) && want.bytes().contains(&255));

            let g = text::parse(&requantised("0.04", movement, pads, out)).unwrap_or_else(|e| panic!("{e}"));
            let printed = text::print(&crate::run_groups(&g, &["int8"], &PassOptions::default()).unwrap().0);
            assert!(printed.contains("Round("), "another grid requantises: {printed}");
        }
    }
}
