//! Group `int8`: convs whose operands are on int8 grids run on the integer
//! kernel ([`QConv`]).
//!
//! `int8-conv` matches a direct or Winograd 2-D f32 `Conv(a, w[, b])` or
//! `ConvFused(a, w, b[, r])` (the `winograd` group runs first and its
//! extraction may already have chosen Winograd; the QConv is direct either
//! way, so the extractor weighs it against the Winograd form) where
//! - `a`'s class holds the activation quantiser the compress stage writes,
//!   `Mul(Clip{−z, 255 − z}(Round(Div(x, s))), s)`, with `s` one positive
//!   finite f32 (both occurrences the same value) and `z` an integer in
//!   `0..=255`;
//! - `w` is a constant on a per-output-channel int8 grid
//!   ([`kerf_ir::WeightGrid`], axis 0), and `b` is constant (or absent);
//! - the conv is worth an integer kernel: one group, or at least 16
//!   products per output and 4 output channels per group (the GEMM), or
//!   one input and one output channel per group where the code generator
//!   has the integer depthwise pass ([`crate::PassOptions::int8_depthwise`])
//!   and output rows hold one of its vectors (8 pixels) or the plane suits
//!   its flat or quad pass (elsewhere a depthwise conv stays on the f32
//!   depthwise kernel, which the GEMM does not beat), and not a pattern-pruned
//!   conv the f32 pattern kernel computes (it skips the removed weights;
//!   the integer GEMM would multiply them) unless the integer pattern
//!   kernel computes it once quantised (`on_quad_kernel`: patterns shared
//!   by quads of input channels, the assembled tiles).
//!
//! It also matches a product with a constant weight on a per-output int8
//! grid: `Gemm(a, w[, c])` / `GemmFused` (`alpha = beta = 1`, `a` not
//! transposed; `w` `[N, K]` transposed on a per-row grid or `[K, N]` on a
//! per-column one, `c` a constant of `N` values), `MatMul(a, w)` and
//! `MatMulFused(a, w, c[, r])` (`w` `[K, N]` on a per-column grid), `a:
//! [.., M, K]` through the quantiser: the 1x1 conv of the `M` rows viewed
//! as `M` one-pixel images `[M, K, 1, 1]`, between reshapes
//! (`Reshape{out}(QConv(Quantize(Reshape{[M, K, 1, 1]}(x)), q[N, K, 1, 1],
//! ...))`, the codes transposed at compile time for `[K, N]`, a residual
//! reshaped to `[M, N, 1, 1]`), so no transposes. One row (a classifier
//! head) on every target; several rows only where the code generator
//! runs one-pixel images on the one-pixel product
//! ([`crate::Int8Dot::one_pixel_rows`] and
//! [`kerf_ir::one_pixel_product_fits`]: elsewhere each row would take a
//! whole pixel unit of the tiles), with an activation that product does
//! not apply (Gelu, Sigmoid, …) moved after the QConv as its own op.
//!
//! It adds `QConv{x_scale = s, x_zp = z}(Quantize{s, z, pads}(x), q, sc,
//! b'[, r])` to the conv's class (and, where the residual `r`'s class holds
//! an activation quantiser of its own, `Mul(Clip(Round(Div(y, s_r))),
//! s_r)` with zero point `z_r` — what `residual = "int8"` writes — also the
//! form reading it as u8, `QConv{res_grid = (s_r, z_r)}(…, Quantize{s_r,
//! z_r}(y))`, except for depthwise convs, one-pixel planes and convs on
//! AArch64's integer pattern tiles, whose kernels add f32 residuals only: exact, as
//! `f32(u8 − z_r) · s_r` is the quantiser's `Clip(Round(…)) · s_r` with the
//! same single rounding, NaN aside (the u8 form makes it the code 0) and
//! the sign of a zero residual (`Round` may give −0, the code gives +0)), where `x` is the quantiser's input and
//! `pads` the conv's (the QConv itself has no padding, except a depthwise
//! one, which keeps the conv's and reads an unpadded `Quantize`; `Quantize` is by
//! definition `Cast<u8>(Add(Clip(Round(Div(Pad{0}(x), s))), z))`, the
//! quantiser's integers shifted by `z`, in one pass), `q` the grid's codes
//! (i8), `sc` its steps and
//! `b'` the bias (or zeros). Extraction keeps whichever form the cost model
//! prices lower (a Winograd f32 conv can win; so can f32 for a layer too
//! small to repay the quantiser's passes).
//!
//! Sound up to f32 rounding (as loose as BatchNorm folding): the conv sums
//! `(s·c)·(sc[m]·q) = s·sc[m]·(c·q)` over the window, with `c = (u8 − z)`
//! exactly (`c` is an integer in `[−z, 255 − z]`, so `Add(c, z)` is exact and
//! in u8 range, and `Quantize` computes `c` with the quantiser's own
//! `Div` and `Round`); a padded zero quantises to `c = 0`, as the f32 conv's zero
//! padding reads; `QConv` computes `Σ c·q` exactly and scales once by
//! `f32(s·sc[m])`. The weight codes are exact by the grid's contract. A NaN
//! input differs: the f32 chain keeps it, the cast to u8 makes it 0.
//! Directional: nothing turns a `QConv` back into f32.

use egg::Id;
use kerf_ir::op::{ConvAlgo, Epilogue, QConv, QOut, ResGrid};
use kerf_ir::{BinaryOp, DType, Op, Origin, Tensor, UnaryOp, WeightId, F32};

use super::{add_union, on_pattern_kernel, on_quad_kernel, rewrite, KRewrite, Rule};
use crate::analysis::{KEGraph, MemoKey};
use crate::lang::{KNode, NodeOp};

/// `int8-conv` (see the module docs).
pub struct Int8Conv;

/// A match of `int8-conv`.
pub struct Int8Match {
    conv: kerf_ir::op::Conv,
    /// A product run as a 1x1 QConv on one-pixel images.
    gemm: Option<Product>,
    epi: Epilogue,
    /// The quantiser's input.
    x: Id,
    s: f32,
    z: u8,
    w: WeightId,
    b: Option<WeightId>,
    residual: Option<Id>,
    /// The residual's class holds an activation quantiser: the conv may
    /// read it as u8 instead (`QConv::res_grid`).
    res_q: Option<Quantiser>,
}

/// A product (`Gemm`, `MatMul`) as a 1x1 QConv: its rows become one-pixel
/// images `[rows, k, 1, 1]`, the result `[rows, n, 1, 1]` is reshaped back
/// to `out`.
#[derive(Clone)]
pub struct Product {
    rows: usize,
    k: usize,
    n: usize,
    /// The product's output shape.
    out: Vec<usize>,
    /// The weight is `[K, N]` (per-column grid): its codes are transposed.
    kn: bool,
    /// An activation of the product the one-pixel product does not apply,
    /// applied after the QConv.
    after: Option<UnaryOp>,
}

/// The single positive finite f32 value of a constant class.
fn scalar(eg: &KEGraph, class: Id) -> Option<f32> {
    let w = eg[class].data.constant?;
    let t = eg.analysis.weights.tensor(w);
    (t.dtype() == DType::F32 && t.numel() == 1).then(|| t.to_f32_vec()[0])
}

/// The quantiser in a class: `Mul(Clip{−z, 255 − z}(Round(Div(x, s))), s)`.
pub(super) struct Quantiser {
    /// The quantiser's input `x`.
    pub(super) x: Id,
    pub(super) s: f32,
    pub(super) z: u8,
}

/// The activation quantiser `class` holds, if any.
pub(super) fn quantiser(eg: &KEGraph, class: Id) -> Option<Quantiser> {
    for n in &eg[class].nodes {
        if n.kerf_op() != Some(&Op::Binary(BinaryOp::Mul)) {
            continue;
        }
        let [c, sc] = n.children.as_slice() else { continue };
        let Some(s) = scalar(eg, *sc).filter(|s| *s > 0.0 && s.is_finite()) else { continue };
        for cn in &eg[*c].nodes {
            let Some(Op::Unary(UnaryOp::Clip { min, max })) = cn.kerf_op() else { continue };
            let z = -min.get();
            if !(0.0..=255.0).contains(&z) || z.fract() != 0.0 || max.get() != 255.0 - z {
                continue;
            }
            let [r] = cn.children.as_slice() else { continue };
            for rn in &eg[*r].nodes {
                let (Some(&Op::Unary(UnaryOp::Round)), [d]) = (rn.kerf_op(), rn.children.as_slice()) else { continue };
                for dn in &eg[*d].nodes {
                    if dn.kerf_op() != Some(&Op::Binary(BinaryOp::Div)) {
                        continue;
                    }
                    if let [x, s2] = dn.children.as_slice() {
                        if scalar(eg, *s2) == Some(s) {
                            return Some(Quantiser { x: *x, s, z: z as u8 });
                        }
                    }
                }
            }
        }
    }
    None
}

/// Whether the integer kernel pays for this conv (see the module docs):
/// the GEMM for one group or wide groups, the integer depthwise passes
/// (where the target has them, `PassOptions::int8_depthwise`) for one
/// channel per group on output rows of at least 8 pixels or on a byte
/// pass's plane ([`on_byte_pass`]). On narrower rows the AVX2 padded-plane
/// pass loses to the f32 depthwise kernel's unrolled small-plane path even
/// with the quantising chain in front of it (Zen 4: MobileNetV2's 7x7
/// planes 0.057 against 0.069 ms, DS-CNN's 25x5 ones 8.4 against 12.0 µs;
/// 14x14 and larger planes gain, docs/compression.md).
fn worth_it(eg: &KEGraph, c: &kerf_ir::op::Conv, epi: &Epilogue, wshape: &[usize], xy: (&[usize], &[usize])) -> bool {
    let per_output: usize = wshape[1..].iter().product();
    let ow = xy.1.last().copied().unwrap_or(0);
    let rows = ow >= 8 || on_byte_pass(eg, c, wshape, xy);
    let dw = eg.analysis.int8_depthwise && rows && c.is_depthwise(wshape) && on_depthwise_pass(c, epi, wshape);
    c.group == 1 || (per_output >= 16 && wshape[0] / c.group >= 4) || dw
}

/// Whether the depthwise conv `c` (weight shape `w`, input and output
/// shapes `xy`) runs on a pass that stores u8 in its own epilogue: the
/// flat pass on AVX2 targets (`PassOptions::int8_depthwise` and
/// `Conv::on_depthwise_flat`: small stride-1 "same" planes) or VNNI's
/// quad pass (`Int8Dot::Bytes` and `Conv::on_depthwise_quads`).
pub(super) fn on_byte_pass(eg: &KEGraph, c: &kerf_ir::op::Conv, w: &[usize], (x, y): (&[usize], &[usize])) -> bool {
    let flat = eg.analysis.int8_depthwise && c.on_depthwise_flat(w, x, y);
    flat || (eg.analysis.int8_dot == crate::Int8Dot::Bytes && c.on_depthwise_quads(w, x, y))
}

/// What the code generator's integer depthwise pass takes (elsewhere it
/// runs such a conv on a scalar kernel, far slower than the f32 one):
/// strides up to 2, exact f32 sums (`taps · 255 · 128 < 2^24`) and an
/// activation the pass applies (none, Relu, Clip with bounds, HardSwish).
fn on_depthwise_pass(c: &kerf_ir::op::Conv, epi: &Epilogue, wshape: &[usize]) -> bool {
    let taps: usize = wshape[2..].iter().product();
    c.window.strides.iter().all(|&s| s <= 2) && taps * 255 * 128 < 1 << 24 && tiles_apply(epi.act)
}

/// Whether the assembled integer passes and tiles apply activation `act`
/// themselves (none, Relu, Clip with bounds, HardSwish).
pub(super) fn tiles_apply(act: Option<UnaryOp>) -> bool {
    match act {
        None | Some(UnaryOp::Relu | UnaryOp::HardSwish) => true,
        // the tiles' compare-select clamp
        Some(UnaryOp::Clip { min, max }) => Epilogue::clamp_by_selects(min.get(), Some(max.get())),
        Some(_) => false,
    }
}

impl Rule for Int8Conv {
    type Match = Int8Match;
    fn name(&self) -> &'static str {
        "int8-conv"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Int8Match>) {
        if eg[class].data.ty().is_none_or(|t| t.dtype != DType::F32) {
            return;
        }
        for n in &eg[class].nodes {
            let (conv, epi) = match n.kerf_op() {
                Some(Op::Conv(c)) => (c.clone(), Epilogue::default()),
                Some(Op::ConvFused(c, e)) => (c.clone(), *e),
                _ => continue,
            };
            if !matches!(conv.algo, ConvAlgo::Direct | ConvAlgo::Winograd { .. }) || conv.window.rank() != 2 {
                continue;
            }
            let ch = &n.children;
            let Some(w) = ch.get(1).and_then(|&w| eg[w].data.constant) else { continue };
            let weight = eg.analysis.weights.get(w);
            // the grid was validated where it was set (compress, the text
            // parser, BatchNorm folding, the importer); codes are read once, in apply
            let on_grid = weight.grid.as_ref().is_some_and(|g| g.axis == 0);
            // (decodes the weight's codes: once per match)
            let quad = on_quad_kernel(eg, &conv, w);
            let pattern_f32 = on_pattern_kernel(eg, class, &conv, w) && !quad;
            let shape = |c: Option<&Id>| c.and_then(|&c| eg[c].data.ty()).map_or(&[][..], |t| &t.shape[..]);
            let xy = (shape(ch.first()), shape(Some(&class)));
            let worth = worth_it(eg, &conv, &epi, weight.tensor.shape(), xy);
            if !on_grid || !worth || pattern_f32 {
                continue;
            }
            let b = match ch.get(2) {
                None => None,
                Some(&b) => match eg[b].data.constant {
                    Some(b) => Some(b),
                    None => continue,
                },
            };
            let Some(q) = ch.first().and_then(|&a| quantiser(eg, a)) else { continue };
            let residual = if epi.residual { ch.get(3).copied() } else { None };
            // a u8 residual: not on the depthwise passes, AArch64's
            // pattern tiles or the one-pixel product (one-pixel planes),
            // which add f32 ones only
            let one_pixel = xy.1.get(2..).is_some_and(|p| p.iter().product::<usize>() == 1);
            let sdot_pattern = eg.analysis.int8_dot == crate::Int8Dot::Sdot && quad;
            let plain = !conv.is_depthwise(weight.tensor.shape()) && !sdot_pattern && !one_pixel;
            let res_q = residual.filter(|_| plain).and_then(|r| quantiser(eg, r));
            let (x, s, z) = (q.x, q.s, q.z);
            out.push(Int8Match { conv, gemm: None, epi, x, s, z, w, b, residual, res_q });
        }
        for n in &eg[class].nodes {
            out.extend(product_match(eg, n, class));
        }
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &Int8Match) -> Vec<Id> {
        let Some([q, sc, b]) = weights(eg, m) else { return vec![] };
        if !sums_fit_i32(eg.analysis.weights.tensor(q), m.z) {
            return vec![];
        }
        let konst = |eg: &mut KEGraph, w: WeightId| eg.add(KNode::leaf(NodeOp::Const(w)));
        let wd = &m.conv.window;
        // the quantiser, padding with z (what a padded zero quantises to),
        // in one pass; a depthwise QConv pads itself (its padded taps add
        // nothing), so its quantiser, unpadded, may fuse into the producer
        let ws = eg.analysis.weights.tensor(m.w).shape();
        let depthwise = m.gemm.is_none() && m.conv.is_depthwise(ws);
        let pads = match depthwise {
            true => vec![0; 8],
            false => vec![0, 0, wd.pad_begin(0), wd.pad_begin(1), 0, 0, wd.pad_end(0), wd.pad_end(1)],
        };
        let quantise = Op::Quantize { scale: F32::new(m.s), zp: m.z, pads };
        let x = match &m.gemm {
            Some(p) => eg.add(KNode::op(Op::Reshape { shape: vec![p.rows, p.k, 1, 1] }, vec![m.x])),
            None => m.x,
        };
        let x = eg.add(KNode::op(quantise, vec![x]));
        let mut conv = m.conv.clone();
        if !depthwise {
            conv.window.pads = vec![0; wd.pads.len()];
        }
        conv.algo = ConvAlgo::Direct;
        let qconv = QConv { conv, epi: m.epi, x_scale: F32::new(m.s), x_zp: m.z, out: QOut::Real, res_grid: None };
        let op = Op::QConv(qconv.clone());
        let mut children = vec![x, konst(eg, q), konst(eg, sc), konst(eg, b)];
        let Some(p) = &m.gemm else {
            let mut changed = vec![];
            // the residual on its grid, as u8 (`int8-residual`)
            if let Some(rq) = &m.res_q {
                let quantise = Op::Quantize { scale: F32::new(rq.s), zp: rq.z, pads: vec![0; 8] };
                let r = eg.add(KNode::op(quantise, vec![rq.x]));
                let res_grid = Some(ResGrid { scale: F32::new(rq.s), zp: rq.z });
                let u8_form = Op::QConv(QConv { res_grid, ..qconv.clone() });
                let mut ch = children.clone();
                ch.push(r);
                changed.extend(add_union(eg, class, KNode::op(u8_form, ch)));
            }
            children.extend(m.residual);
            changed.extend(add_union(eg, class, KNode::op(op, children)));
            return changed;
        };
        // the residual as the images' outputs
        let image = vec![p.rows, p.n, 1, 1];
        children.extend(m.residual.map(|r| eg.add(KNode::op(Op::Reshape { shape: image.clone() }, vec![r]))));
        let mut y = eg.add(KNode::op(op, children));
        if let Some(u) = p.after {
            y = eg.add(KNode::op(Op::Unary(u), vec![y]));
        }
        add_union(eg, class, KNode::op(Op::Reshape { shape: p.out.clone() }, vec![y]))
    }
}

/// A product with a constant weight on a per-output int8 grid whose input
/// comes through the quantiser (see the module docs): `Gemm`/`GemmFused`
/// (`alpha = beta = 1`, `a` not transposed) and `MatMul`/`MatMulFused`
/// with a 2-D weight, run as a 1x1 QConv on one-pixel images.
fn product_match(eg: &KEGraph, n: &KNode, class: Id) -> Option<Int8Match> {
    let (layer, mut epi, kn) = match n.kerf_op()? {
        Op::Gemm(g) | Op::GemmFused(g, _) if g.alpha.get() != 1.0 || g.beta.get() != 1.0 || g.trans_a => return None,
        Op::Gemm(g) => (g.layer.clone(), Epilogue::default(), !g.trans_b),
        Op::GemmFused(g, e) => (g.layer.clone(), *e, !g.trans_b),
        Op::MatMul(l) => (l.clone(), Epilogue::default(), true),
        Op::MatMulFused(l, e) => (l.clone(), *e, true),
        _ => return None,
    };
    let ch = &n.children;
    let a = eg[*ch.first()?].data.ty()?;
    let (&k, lead) = a.shape.split_last()?;
    let rows: usize = lead.iter().product();
    if lead.is_empty() || rows == 0 {
        return None;
    }
    let w = eg[*ch.get(1)?].data.constant?;
    let weight = eg.analysis.weights.get(w);
    let [nn, kw] = match (weight.tensor.shape(), kn) {
        (&[kw, nn], true) => [nn, kw],
        (&[nn, kw], false) => [nn, kw],
        _ => return None,
    };
    if kw != k || weight.grid.as_ref().is_none_or(|g| g.axis != usize::from(kn)) {
        return None;
    }
    // several rows: one-pixel images, only where the one-pixel product runs them
    let after = match rows {
        1 => None,
        _ if !eg.analysis.int8_dot.one_pixel_rows() || !kerf_ir::one_pixel_product_fits(k) => return None,
        _ if tiles_apply(epi.act) => None,
        _ => epi.act.take(),
    };
    let b = match ch.get(2) {
        None => None,
        Some(&c) => {
            let c = eg[c].data.constant?;
            let t = &eg.analysis.weights.get(c).tensor;
            // one value per output column: `[N]` or `[.., 1, N]` (not a
            // per-row `[M, 1]`, even where `M = N`)
            let (last, lead) = t.shape().split_last()?;
            (*last == nn && lead.iter().all(|&d| d == 1) && t.dtype() == DType::F32).then_some(c)?;
            Some(c)
        }
    };
    let residual = if epi.residual { Some(*ch.get(3)?) } else { None };
    let out = eg[class].data.ty()?.shape.clone();
    let q = quantiser(eg, *ch.first()?)?;
    let window =
        kerf_ir::op::Window { kernel: vec![1, 1], strides: vec![1, 1], dilations: vec![1, 1], pads: vec![0; 4] };
    let conv = kerf_ir::op::Conv { window, group: 1, layer, algo: ConvAlgo::Direct };
    let gemm = Some(Product { rows, k, n: nn, out, kn, after });
    Some(Int8Match { conv, gemm, epi, x: q.x, s: q.s, z: q.z, w, b, residual, res_q: None })
}

/// Whether every output channel's sum `Σ (u8 − z)·q` fits the integer
/// kernels' i32 accumulators for any input: `max(z, 255 − z) · Σ|q| < 2³¹`
/// per row of the codes `q` (`[M, ..]`). The f32 layer cannot overflow, so
/// a layer past it (a reduction of more than about 65,800 worst-case
/// codes) stays f32; kernels that sum raw bytes and subtract `z·Σq` after
/// (VNNI, `sdot`) wrap modulo 2³² on the way and land on the same sum.
fn sums_fit_i32(q: &Tensor, z: u8) -> bool {
    let most = u64::from(z.max(255 - z));
    let per_row = q.numel() / q.shape().first().copied().unwrap_or(1).max(1);
    q.bytes().chunks(per_row.max(1)).all(|row| {
        let abs: u64 = row.iter().map(|&c| u64::from((c as i8).unsigned_abs())).sum();
        most * abs < 1 << 31
    })
}

/// The codes, steps and bias of a match (memoized by the source weights).
fn weights(eg: &mut KEGraph, m: &Int8Match) -> Option<[WeightId; 3]> {
    let mut inputs = vec![m.w];
    inputs.extend(m.b);
    let key = MemoKey { rule: "int8-conv", ops: vec![], inputs };
    super::memoized(eg, key, |eg| make_weights(eg, m).map(Vec::from))?.try_into().ok()
}

fn make_weights(eg: &mut KEGraph, m: &Int8Match) -> Option<[WeightId; 3]> {
    let weight = eg.analysis.weights.get(m.w);
    let grid = weight.grid.as_ref()?;
    let mut shape = weight.tensor.shape().to_vec();
    let mut codes = grid.codes(&weight.tensor).ok()?;
    if let Some(p) = &m.gemm {
        // the product's [N, K] (or [K, N], transposed) as the 1x1 conv's [N, K, 1, 1]
        if p.kn {
            codes = (0..p.n * p.k).map(|i| codes[(i % p.k) * p.n + i / p.k]).collect();
        }
        shape = vec![p.n, p.k, 1, 1];
    }
    let bytes: Vec<u8> = codes.iter().map(|&c| c as u8).collect();
    let q = Tensor::from_bytes(DType::I8, shape.clone(), bytes).ok()?;
    let scales = Tensor::from_f32(vec![shape[0]], &grid.scales).ok()?;
    let (name, is_param, sparsity) = (weight.name.clone(), weight.is_param, weight.sparsity.clone());
    let w = &mut eg.analysis.weights;
    let qid = w.add(format!("{name}.int8"), q, Origin::Derived);
    w.get_mut(qid).is_param = is_param;
    w.get_mut(qid).sparsity = sparsity;
    let sid = w.add(format!("{name}.int8_scale"), scales, Origin::Derived);
    let bid = match m.b {
        // a product's bias of shape [.., 1, N] as the conv's [N]
        Some(b) if w.tensor(b).shape() != [shape[0]] => {
            let t = Tensor::from_f32(vec![shape[0]], &w.tensor(b).to_f32_vec()).ok()?;
            w.add(format!("{name}.int8_bias"), t, Origin::Derived)
        }
        Some(b) => b,
        None => {
            let zeros = Tensor::from_f32(vec![shape[0]], &vec![0.0; shape[0]]).ok()?;
            w.add(format!("{name}.int8_bias"), zeros, Origin::Derived)
        }
    };
    Some([qid, sid, bid])
}

/// The group's rules.
pub fn rules() -> Vec<KRewrite> {
    vec![rewrite(Int8Conv)]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use kerf_ir::{text, Graph, Tensor};

    /// The i32 bound: a row of K codes of −128 with the input zero point
    /// 0 (|u8 − z| up to 255) fits up to K = 65,793 and not one more; a zero
    /// point of 128 halves the input's reach; one row past the bound is
    /// enough to keep the layer f32.
    #[test]
    fn integer_sums_must_fit_i32() {
        let codes = |rows: &[usize]| {
            let bytes: Vec<u8> = rows
                .iter()
                .flat_map(|&k| std::iter::repeat_n(0x80u8, k).chain(std::iter::repeat_n(0, 70_000 - k)))
                .collect();
            Tensor::from_bytes(kerf_ir::DType::I8, vec![rows.len(), 70_000, 1, 1], bytes).unwrap()
        };
        assert!(super::sums_fit_i32(&codes(&[65_793, 10]), 0));
        assert!(!super::sums_fit_i32(&codes(&[10, 65_794]), 0));
        assert!(!super::sums_fit_i32(&codes(&[65_794]), 255));
        assert!(super::sums_fit_i32(&codes(&[65_794]), 128), "|u8 − 128| ≤ 128: 2^31 / (128·128) = 131,072 codes");
    }

    use crate::testutil::{interpret, random};
    use crate::{Int8Dot, PassOptions};

    /// A conv (pads, stride, bias, Relu, `m` channels) whose input goes
    /// through the quantiser and whose weight is on a per-channel grid.
    fn graph(group: usize, m: usize, pads: usize, stride: usize) -> String {
        graph_pruned(group, m, pads, stride, Pruning::None)
    }

    /// How [`graph_pruned`] prunes the weight.
    #[derive(Clone, Copy, PartialEq)]
    enum Pruning {
        None,
        /// Each kernel keeping the centre and a corner of its own (22% of
        /// the weights; each quad of input channels keeps five taps: 56%).
        PerKernel,
        /// Every other kernel removed, the others keeping the same two
        /// taps (11%; a quad keeps 22%: the integer pattern kernel's
        /// layout).
        Quads,
        /// Every kernel keeping those two taps (22%): two 8-bit codes of
        /// a channel pair at one tap may saturate `vpmaddubsw`.
        WholeQuads,
    }

    /// [`graph`], with the weight pruned as `pruning` says.
    fn graph_pruned(group: usize, m: usize, pads: usize, stride: usize, pruning: Pruning) -> String {
        let (c, k) = (4usize, 3usize);
        let cg = c / group;
        let scales: Vec<f32> = (0..m).map(|i| 0.01 + 0.002 * i as f32).collect();
        let mut codes = random(7, m * cg * k * k, -127.0, 127.0);
        if pruning != Pruning::None {
            for (i, q) in codes.iter_mut().enumerate() {
                let (kernel, tap) = (i / 9, i % 9);
                let keep = match pruning {
                    Pruning::Quads => kernel % 2 == 0 && [1, 4].contains(&tap),
                    Pruning::WholeQuads => [1, 4].contains(&tap),
                    _ => [[0, 2, 6, 8][kernel % 4], 4].contains(&tap),
                };
                if !keep {
                    *q = 0.0;
                }
            }
        }
        let w: Vec<String> =
            codes.iter().enumerate().map(|(i, q)| format!("{:?}", q.round() * scales[i / (cg * k * k)])).collect();
        let b: Vec<String> = random(8, m, -0.5, 0.5).iter().map(|v| format!("{v:?}")).collect();
        let s: Vec<String> = scales.iter().map(|v| format!("{v:?}")).collect();
        let o = (12 + 2 * pads - k) / stride + 1;
        format!(
            r#"graph "g"
  input %0 "x": f32[2,{c},12,12]
  const %1 "w": f32[{m},{cg},3,3] = [{}] grid=int8(axis=0, scales=[{}])
  const %2 "b": f32[{m}] = [{}]
  const %3 "s": f32[] = [0.02]
  %4 = Div(%0, %3): f32[2,{c},12,12] @"d"
  %5 = Round(%4): f32[2,{c},12,12] @"r"
  %6 = Clip{{min=-100.0, max=155.0}}(%5): f32[2,{c},12,12] @"c"
  %7 = Mul(%6, %3): f32[2,{c},12,12] @"q"
  %8 = Conv{{kernel=[3,3], strides=[{stride},{stride}], dilations=[1,1], pads=[{pads},{pads},{pads},{pads}], group={group}, layer="conv"}}(%7, %1, %2): f32[2,{m},{o},{o}] @"conv"
  %9 = Relu(%8): f32[2,{m},{o},{o}] @"relu"
  output "y" = %9
"#,
            w.join(","),
            s.join(","),
            b.join(",")
        )
    }

    fn run(src: &str) -> (String, f32) {
        let g = text::parse(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
        let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &PassOptions::default()).unwrap();
        let x = Tensor::from_f32(vec![2, 4, 12, 12], &random(3, 1152, -2.0, 3.0)).unwrap();
        let want = interpret(&g, std::slice::from_ref(&x)).remove(0).to_f32_vec();
        let got = interpret(&out, &[x]).remove(0).to_f32_vec();
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        let err = got.iter().zip(&want).fold(0f32, |a, (g, w)| a.max((g - w).abs()));
        (text::print(&out), err / scale)
    }

    #[test]
    fn quantised_convs_become_integer_convs_with_the_same_values() {
        for (group, m, pads, stride) in [(1, 8, 1, 1), (1, 5, 0, 1), (2, 8, 1, 1)] {
            let (out, rel) = run(&graph(group, m, pads, stride));
            assert!(out.contains("QConv{"), "{out}");
            // the quantiser and the padding in one pass, no f32 pad copy
            let padded = format!("pads=[0,0,{pads},{pads},0,0,{pads},{pads}]");
            assert!(out.contains("Quantize{") && out.contains(&padded), "{out}");
            assert!(!out.contains("Pad{") && !out.contains("Cast"), "{out}");
            assert!(!out.contains("= Conv"), "{out}");
            // f32 rounding only: the integer sums are exact
            assert!(rel < 1e-5, "group {group} m {m}: relative error {rel}");
        }
    }

    /// A depthwise conv becomes an integer conv only where the code
    /// generator has the integer depthwise pass and its output rows hold 8
    /// pixels (12 at stride 1; 6 at stride 2 stay f32) or its plane suits
    /// the flat pass (25x5), or any rows with VNNI's quad pass
    /// (`Int8Dot::Bytes`); then the QConv keeps the
    /// padding (its padded taps add nothing) and its quantiser is
    /// unpadded, with the f32 conv's values (f32 rounding only).
    #[test]
    fn depthwise_convs_become_padded_integer_convs_with_the_pass() {
        for stride in [1, 2] {
            let g = text::parse(&graph(4, 4, 1, stride)).unwrap();
            for (int8_depthwise, int8_dot) in [(false, Int8Dot::Pairs), (true, Int8Dot::Pairs), (true, Int8Dot::Bytes)]
            {
                let opts = PassOptions { int8_depthwise, int8_dot, ..PassOptions::default() };
                let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
                let printed = text::print(&out);
                let qconv = int8_depthwise && (stride == 1 || int8_dot == Int8Dot::Bytes);
                assert_eq!(printed.contains("QConv{"), qconv, "stride {stride}: {printed}");
                if !qconv {
                    continue;
                }
                assert!(printed.contains("pads=[0,0,0,0,0,0,0,0]") && printed.contains("pads=[1,1,1,1]"), "{printed}");
                let x = Tensor::from_f32(vec![2, 4, 12, 12], &random(3, 1152, -2.0, 3.0)).unwrap();
                let want = interpret(&g, std::slice::from_ref(&x)).remove(0).to_f32_vec();
                let got = interpret(&out, &[x]).remove(0).to_f32_vec();
                let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
                let err = got.iter().zip(&want).fold(0f32, |a, (g, w)| a.max((g - w).abs()));
                assert!(err / scale < 1e-5, "stride {stride}: relative error {}", err / scale);
            }
        }
        // rows of 5 pixels: integer on the flat pass's small stride-1
        // "same" planes (25x5), not on a 70x5 plane (350 pixels), without VNNI
        for (h, qconv) in [(25, true), (70, false)] {
            let g = text::parse(&graph(4, 4, 1, 1).replace(",12,12]", &format!(",{h},5]"))).unwrap();
            let opts = PassOptions { int8_depthwise: true, ..PassOptions::default() };
            let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
            assert_eq!(text::print(&out).contains("QConv{"), qconv, "{h}x5: {}", text::print(&out));
        }
        // an activation the pass does not apply: stays f32 (not the scalar kernel)
        let leaky = graph(4, 4, 1, 1).replace("Relu(%8)", "LeakyRelu{alpha=0.1}(%8)");
        let g = text::parse(&leaky).unwrap();
        let opts = PassOptions { int8_depthwise: true, ..PassOptions::default() };
        let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
        assert!(!text::print(&out).contains("QConv{"), "{}", text::print(&out));
    }

    /// A one-row Gemm head (`[1, 24] × [10, 24]ᵀ + b`, Relu) through the
    /// quantiser becomes the 1x1 QConv between reshapes with the same
    /// values (f32 rounding only); with two rows, or `w` not transposed, it
    /// stays a Gemm.
    #[test]
    fn one_row_gemm_heads_become_integer_convs() {
        let gemm = |rows: usize, trans_b: bool| {
            let (k, n) = (24usize, 10usize);
            let scales: Vec<f32> = (0..n).map(|i| 0.01 + 0.002 * i as f32).collect();
            let codes = random(7, n * k, -127.0, 127.0);
            let w: Vec<String> =
                codes.iter().enumerate().map(|(i, q)| format!("{:?}", q.round() * scales[i / k])).collect();
            let b: Vec<String> = random(8, n, -0.5, 0.5).iter().map(|v| format!("{v:?}")).collect();
            let s: Vec<String> = scales.iter().map(|v| format!("{v:?}")).collect();
            let (wsh, tb) = if trans_b { (format!("{n},{k}"), "true") } else { (format!("{k},{n}"), "false") };
            let grid = if trans_b { format!(" grid=int8(axis=0, scales=[{}])", s.join(",")) } else { String::new() };
            format!(
                r#"graph "g"
  input %0 "x": f32[{rows},{k}]
  const %1 "w": f32[{wsh}] = [{}]{grid}
  const %2 "b": f32[{n}] = [{}]
  const %3 "s": f32[] = [0.02]
  %4 = Div(%0, %3): f32[{rows},{k}] @"d"
  %5 = Round(%4): f32[{rows},{k}] @"r"
  %6 = Clip{{min=-100.0, max=155.0}}(%5): f32[{rows},{k}] @"c"
  %7 = Mul(%6, %3): f32[{rows},{k}] @"q"
  %8 = Gemm{{alpha=1.0, beta=1.0, trans_a=false, trans_b={tb}, layer="fc"}}(%7, %1, %2): f32[{rows},{n}] @"fc"
  %9 = Relu(%8): f32[{rows},{n}] @"relu"
  output "y" = %9
"#,
                w.join(","),
                b.join(",")
            )
        };
        let run = |src: &str, rows: usize| {
            let g = text::parse(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
            let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &PassOptions::default()).unwrap();
            let x = Tensor::from_f32(vec![rows, 24], &random(3, rows * 24, -2.0, 3.0)).unwrap();
            let want = interpret(&g, std::slice::from_ref(&x)).remove(0).to_f32_vec();
            let got = interpret(&out, &[x]).remove(0).to_f32_vec();
            let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
            let err = got.iter().zip(&want).fold(0f32, |a, (g, w)| a.max((g - w).abs()));
            (text::print(&out), err / scale)
        };
        let (out, rel) = run(&gemm(1, true), 1);
        assert!(out.contains("QConv{") && out.contains("Reshape{shape=[1,24,1,1]}"), "{out}");
        assert!(out.contains("Reshape{shape=[1,10]}") && !out.contains("= Gemm"), "{out}");
        assert!(rel < 1e-5, "relative error {rel}");
        assert!(!run(&gemm(2, true), 2).0.contains("QConv"));
        assert!(!run(&gemm(1, false), 1).0.contains("QConv"));
    }

    /// The i32 bound at rule level: a one-row Gemm head whose codes are all
    /// ±127 on a quantiser with zero point 100 (`max(z, 255 − z)` = 155)
    /// can reach `155 · 127 · K`, past 2³¹ from K = 109,100: at K = 120,000
    /// it stays f32 (and computes the reference's value); the same codes
    /// at K = 24 become the integer conv.
    #[test]
    fn products_whose_integer_sums_could_overflow_stay_f32() {
        let head = |k: usize| {
            let w: Vec<String> = (0..k).map(|i| format!("{:?}", if i % 2 == 0 { 1.27f32 } else { -1.27 })).collect();
            format!(
                r#"graph "g"
  input %0 "x": f32[1,{k}]
  const %1 "w": f32[1,{k}] = [{}] grid=int8(axis=0, scales=[0.01])
  const %2 "b": f32[1] = [0.5]
  const %3 "s": f32[] = [0.02]
  %4 = Div(%0, %3): f32[1,{k}] @"d"
  %5 = Round(%4): f32[1,{k}] @"r"
  %6 = Clip{{min=-100.0, max=155.0}}(%5): f32[1,{k}] @"c"
  %7 = Mul(%6, %3): f32[1,{k}] @"q"
  %8 = Gemm{{alpha=1.0, beta=1.0, trans_a=false, trans_b=true, layer="fc"}}(%7, %1, %2): f32[1,1] @"fc"
  output "y" = %8
"#,
                w.join(",")
            )
        };
        let int8 = |k: usize| {
            let g = text::parse(&head(k)).unwrap();
            let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &PassOptions::default()).unwrap();
            // the worst case: +3.1 on the codes of +127, -2.0 on the others
            let x: Vec<f32> = (0..k).map(|i| if i % 2 == 0 { 3.1 } else { -2.0 }).collect();
            let x = Tensor::from_f32(vec![1, k], &x).unwrap();
            let want = interpret(&g, std::slice::from_ref(&x)).remove(0).to_f32_vec()[0];
            let got = interpret(&out, &[x]).remove(0).to_f32_vec()[0];
            assert!((got - want).abs() <= 1e-4 * want.abs(), "K = {k}: {got} against {want}");
            text::print(&out).contains("QConv{")
        };
        assert!(int8(24), "a short head becomes the integer conv");
        assert!(!int8(120_000), "a head whose sums could pass 2^31 stays f32");
    }

    /// A multi-row product `x[2, 3, 8] · w[8, 12] + b (+ r)` through the
    /// quantiser, `w` on a per-column grid, fused with an activation: on
    /// `Int8Dot::Bytes` (VNNI) and `ExactBytes` (AVX2) it becomes the 1x1
    /// QConv over six one-pixel images (the codes transposed, the residual
    /// reshaped, Gelu after the QConv, Relu inside it) with the same values
    /// up to f32 rounding, and likewise with `Sdot` (AArch64 `dotprod`); on
    /// targets without a one-pixel product (`Pairs`), or with K = 6 (not
    /// whole quads), it stays f32.
    #[test]
    fn multi_row_products_become_integer_convs_on_one_pixel_images() {
        let graph = |k: usize, act: &str| {
            let n = 12usize;
            let scales: Vec<f32> = (0..n).map(|i| 0.01 + 0.002 * i as f32).collect();
            let codes = random(7, n * k, -127.0, 127.0);
            // [K, N]: the column's step
            let w: Vec<String> =
                codes.iter().enumerate().map(|(i, q)| format!("{:?}", q.round() * scales[i % n])).collect();
            let b: Vec<String> = random(8, n, -0.5, 0.5).iter().map(|v| format!("{v:?}")).collect();
            let s: Vec<String> = scales.iter().map(|v| format!("{v:?}")).collect();
            format!(
                r#"graph "g"
  input %0 "x": f32[2,3,{k}]
  input %9 "r": f32[2,3,{n}]
  const %1 "w": f32[{k},{n}] = [{}] grid=int8(axis=1, scales=[{}])
  const %2 "b": f32[{n}] = [{}]
  const %3 "s": f32[] = [0.02]
  %4 = Div(%0, %3): f32[2,3,{k}] @"d"
  %5 = Round(%4): f32[2,3,{k}] @"r"
  %6 = Clip{{min=-100.0, max=155.0}}(%5): f32[2,3,{k}] @"c"
  %7 = Mul(%6, %3): f32[2,3,{k}] @"q"
  %8 = MatMul{{layer="fc"}}(%7, %1): f32[2,3,{n}] @"fc"
  %10 = Add(%8, %2): f32[2,3,{n}] @"bias"
  %11 = Add(%10, %9): f32[2,3,{n}] @"res"
  %12 = {act}(%11): f32[2,3,{n}] @"act"
  output "y" = %12
"#,
                w.join(","),
                s.join(","),
                b.join(",")
            )
        };
        let run = |src: &str, k: usize, int8_dot: Int8Dot| {
            let g = text::parse(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
            let opts = PassOptions { int8_dot, ..PassOptions::default() };
            let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
            let x = Tensor::from_f32(vec![2, 3, k], &random(3, 6 * k, -2.0, 3.0)).unwrap();
            let r = Tensor::from_f32(vec![2, 3, 12], &random(4, 72, -1.0, 1.0)).unwrap();
            let want = interpret(&g, &[x.clone(), r.clone()]).remove(0).to_f32_vec();
            let got = interpret(&out, &[x, r]).remove(0).to_f32_vec();
            let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
            let err = got.iter().zip(&want).fold(0f32, |a, (g, w)| a.max((g - w).abs()));
            (text::print(&out), err / scale)
        };
        for (act, inside, dot) in [
            ("Gelu{tanh=false}", false, Int8Dot::Bytes),
            ("Relu", true, Int8Dot::Bytes),
            ("Relu", true, Int8Dot::ExactBytes),
            ("Relu", true, Int8Dot::Sdot),
        ] {
            let (out, rel) = run(&graph(8, act), 8, dot);
            assert!(out.contains("QConv{") && out.contains("Reshape{shape=[6,8,1,1]}"), "{out}");
            assert!(out.contains("Reshape{shape=[6,12,1,1]}") && out.contains("Reshape{shape=[2,3,12]}"), "{out}");
            assert!(!out.contains("= MatMul"), "{out}");
            let qconv = out.lines().find(|l| l.contains("QConv{")).unwrap();
            assert_eq!(qconv.contains(&format!("act={act}")), inside, "{qconv}");
            assert!(rel < 1e-5, "{act}: relative error {rel}");
        }
        assert!(!run(&graph(8, "Gelu{tanh=false}"), 8, Int8Dot::Pairs).0.contains("QConv"));
        assert!(!run(&graph(6, "Gelu{tanh=false}"), 6, Int8Dot::Bytes).0.contains("QConv"));
    }

    /// A Gemm `x[4, 8] · w[8, 4] + C` with `w` not transposed (a
    /// per-column grid): with `C: [1, 4]` (one bias per column) it becomes
    /// the QConv over four one-pixel images with the same values; with `C:
    /// [4, 1]` (one bias per row, here as many as the columns) it stays a
    /// Gemm.
    #[test]
    fn gemm_biases_must_be_per_column() {
        let graph = |c_shape: &str| {
            let (k, n) = (8usize, 4usize);
            let scales: Vec<f32> = (0..n).map(|i| 0.02 + 0.01 * i as f32).collect();
            let w: Vec<String> = random(5, k * n, -127.0, 127.0)
                .iter()
                .enumerate()
                .map(|(i, q)| format!("{:?}", q.round() * scales[i % n]))
                .collect();
            let s: Vec<String> = scales.iter().map(|v| format!("{v:?}")).collect();
            format!(
                r#"graph "g"
  input %0 "x": f32[4,{k}]
  const %1 "w": f32[{k},{n}] = [{}] grid=int8(axis=1, scales=[{}])
  const %2 "c": f32[{c_shape}] = [0.5,-0.25,1.0,0.125]
  const %3 "s": f32[] = [0.03]
  %4 = Div(%0, %3): f32[4,{k}] @"d"
  %5 = Round(%4): f32[4,{k}] @"r"
  %6 = Clip{{min=-128.0, max=127.0}}(%5): f32[4,{k}] @"c"
  %7 = Mul(%6, %3): f32[4,{k}] @"q"
  %8 = Gemm{{alpha=1.0, beta=1.0, trans_a=false, trans_b=false, layer="fc"}}(%7, %1, %2): f32[4,{n}] @"fc"
  output "y" = %8
"#,
                w.join(","),
                s.join(",")
            )
        };
        let opts = PassOptions { int8_dot: Int8Dot::Bytes, ..PassOptions::default() };
        for (c_shape, integer) in [("1,4", true), ("4,1", false)] {
            let g = text::parse(&graph(c_shape)).unwrap_or_else(|e| panic!("{e}"));
            let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
            let printed = text::print(&out);
            assert_eq!(printed.contains("QConv{"), integer, "C: [{c_shape}]\n{printed}");
            let x = Tensor::from_f32(vec![4, 8], &random(6, 32, -2.0, 2.0)).unwrap();
            let want = interpret(&g, std::slice::from_ref(&x)).remove(0).to_f32_vec();
            let got = interpret(&out, &[x]).remove(0).to_f32_vec();
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "C: [{c_shape}]: {a} vs {b}");
            }
        }
    }

    /// A 3x3 stride-1 conv on a plane where Winograd is the f32 choice:
    /// once the `winograd` group has picked it, the `int8` group still offers
    /// the QConv, and the cost of the integer kernel decides: kept Winograd
    /// with the 16-bit-pair kernel's price, QConv with byte dot products
    /// (VNNI's for any weight, AVX2's for 7-bit ones).
    #[test]
    fn winograd_convs_are_weighed_against_the_integer_conv() {
        let src = graph(1, 64, 1, 1).replace("f32[2,4,", "f32[2,64,").replace(",4,3,3]", ",64,3,3]");
        // 14x14 and 56x56 planes: AVX2's byte tile beats f32 Winograd on
        // both (measured in resnet18 and squeezenet1_1, docs/compression.md)
        for plane in ["14,14]", "56,56]"] {
            let src = src.replace("12,12]", plane);
            assert!(src.contains(plane), "the graph's plane is not {plane}");
            // 64 input channels: the weight list grows with the channel count
            let g = |m: usize, qmax: f32| {
                let scales: Vec<f32> = (0..m).map(|i| 0.01 + 0.002 * i as f32).collect();
                let codes = random(7, m * 64 * 9, -qmax, qmax);
                let w: Vec<String> =
                    codes.iter().enumerate().map(|(i, q)| format!("{:?}", q.round() * scales[i / 576])).collect();
                let s: Vec<String> = scales.iter().map(|v| format!("{v:?}")).collect();
                let (head, tail) = src.split_once("const %1").unwrap();
                let tail = tail.split_once('\n').unwrap().1;
                format!(
                    "{head}const %1 \"w\": f32[{m},64,3,3] = [{}] grid=int8(axis=0, scales=[{}])\n{tail}",
                    w.join(","),
                    s.join(",")
                )
            };
            let [g8, g7] = [127.0, 63.0].map(|q| text::parse(&g(64, q)).unwrap_or_else(|e| panic!("{e}")));
            let groups = ["winograd", "fusion", "int8"];
            let picked = |g: &Graph, int8_dot: Int8Dot| {
                let opts = PassOptions { int8_dot, ..PassOptions::default() };
                let out = text::print(&crate::run_groups(g, &groups, &opts).unwrap().0);
                match (out.contains("QConv{"), out.contains("winograd=")) {
                    (true, false) => "integer",
                    (false, true) => "winograd",
                    _ => panic!("{out}"),
                }
            };
            assert_eq!(picked(&g8, Int8Dot::Pairs), "winograd", "{plane}");
            assert_eq!(picked(&g8, Int8Dot::Bytes), "integer", "{plane}");
            assert_eq!(picked(&g8, Int8Dot::Sdot), "integer", "{plane}");
            // AVX2's byte tile: only for weights whose byte pairs cannot saturate
            assert_eq!(picked(&g8, Int8Dot::ExactBytes), "winograd", "{plane}");
            assert_eq!(picked(&g7, Int8Dot::ExactBytes), "integer", "{plane}");
            assert_eq!(picked(&g7, Int8Dot::Pairs), "winograd", "{plane}");
        }
    }

    #[test]
    fn convs_off_a_grid_or_without_the_quantiser_stay_f32() {
        let src = graph(1, 8, 1, 1);
        let no_grid = src.replace(" grid=int8(", " ; (").replace(")]\n  const %2", "]\n  const %2");
        let no_grid: String = no_grid.lines().map(|l| l.split(" ; ").next().unwrap_or(l).to_string() + "\n").collect();
        assert!(!run(&no_grid).0.contains("QConv"));
        // a clip that is not [-z, 255 - z] is not the quantiser
        let other_clip = src.replace("max=155.0", "max=150.0");
        assert!(!run(&other_clip).0.contains("QConv"));
        // depthwise: stays on the f32 kernel without the integer depthwise pass
        let dw = graph(4, 4, 1, 1);
        assert!(!run(&dw).0.contains("QConv"));
        // pattern-pruned: the f32 pattern kernel skips the removed weights
        let (text, err) = run(&graph_pruned(1, 8, 1, 1, Pruning::PerKernel));
        assert!(!text.contains("QConv") && err == 0.0, "{text}");
        // stride 2: the pattern kernel takes it only with the assembled tiles
        let g = text::parse(&graph_pruned(1, 8, 1, 2, Pruning::PerKernel)).unwrap();
        for (wide, qconv) in [(true, false), (false, true)] {
            let opts = PassOptions { wide_patterns: wide, ..PassOptions::default() };
            let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
            assert_eq!(text::print(&out).contains("QConv"), qconv, "stride 2, wide patterns {wide}");
        }
    }

    /// A conv pruned with the pattern shared by each quad of input
    /// channels becomes an integer conv where the assembled quad tiles run
    /// it (the integer pattern kernel), at stride 1 and 2; with f32 tiles
    /// only (AArch64 `baseline`) it stays on the f32 pattern kernel at
    /// either stride, without tiles at stride 1 (the rule's exactness
    /// test, `channel_pairs_exact`, is the IR's, tested there).
    #[test]
    fn quad_patterns_become_integer_convs_on_the_wide_tiles() {
        for stride in [1, 2] {
            let src = graph_pruned(1, 8, 1, stride, Pruning::Quads);
            let g = text::parse(&src).unwrap();
            // (AVX2: f32 and quad tiles; AArch64 baseline: f32 tiles only; neither)
            for (wide, dot) in [(true, Int8Dot::ExactBytes), (true, Int8Dot::Pairs), (false, Int8Dot::Pairs)] {
                let opts = PassOptions { wide_patterns: wide, int8_dot: dot, ..PassOptions::default() };
                let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
                // with quad tiles the integer pattern kernel; with f32 tiles
                // only, the f32 pattern kernel at either stride; without
                // tiles stride 2 has no pattern kernel at all: the integer GEMM
                let qconv = wide && dot.byte_quads() || !wide && stride == 2;
                assert_eq!(text::print(&out).contains("QConv"), qconv, "stride {stride}, wide {wide}, {dot:?}");
            }
        }
    }

    /// Quads of 8-bit codes whose channel pairs can saturate AVX2's
    /// `vpmaddubsw` become integer convs only where the dot product does
    /// not saturate (VNNI's `vpdpbusd`, `Int8Dot::Bytes`); with AVX2's
    /// they stay on the f32 pattern kernel.
    #[test]
    fn saturating_quads_become_integer_convs_only_with_vnni() {
        let g = text::parse(&graph_pruned(1, 8, 1, 1, Pruning::WholeQuads)).unwrap();
        for (dot, qconv) in [(Int8Dot::Bytes, true), (Int8Dot::ExactBytes, false)] {
            let opts = PassOptions { wide_patterns: true, int8_dot: dot, ..PassOptions::default() };
            let (out, _) = crate::run_groups(&g, &["fusion", "int8"], &opts).unwrap();
            assert_eq!(text::print(&out).contains("QConv"), qconv, "{dot:?}");
        }
    }
}
