//! `int8-convtranspose` (in the `int8` group): a transposed conv that tiles
//! its output exactly runs on the integer conv kernel.
//!
//! Matches a 2-D `ConvTranspose(a, w[, b])` or `ConvTransposeFused(a, w,
//! b)` (an activation, no residual) of one group whose kernel equals its
//! stride, with no dilation, padding or output padding (the 2x2 stride-2
//! upsampling of detection and segmentation heads), where `a`'s class holds
//! the activation quantiser (`Mul(Clip{−z, 255 − z}(Round(Div(x, s))), s)`,
//! as for `int8-conv`) and `w` `[C, M, kh, kw]` is a constant on a
//! per-output-channel int8 grid along axis 1 (what `--quantize int8`
//! writes for a ConvTranspose). It adds
//!
//! `Reshape{[n, M, h·kh, w·kw]}(Transpose{[0, 1, 4, 2, 5, 3]}(Reshape{[n,
//! M, kh, kw, h, w]}(QConv{1x1}(Quantize{s, z}(x), q', sc', b'))))`
//!
//! where the 1x1 `QConv` has `M·kh·kw` output channels, channel `(m, ty,
//! tx)` with the codes `q'[(m, ty, tx), c] = q[c, m, ty, tx]`, the step
//! `sc'[(m, ty, tx)] = sc[m]` and the bias `b'[(m, ty, tx)] = b[m]`, and
//! the conv's activation in its epilogue. Exact up to f32 rounding (as
//! `int8-conv`): with kernel = stride and nothing cropped or added, output
//! pixel `(iy·kh + ty, ix·kw + tx)` of channel `m` receives exactly one
//! tap, `Σ_c x[c, iy, ix]·w[c, m, ty, tx] + b[m]`, which is the 1x1 conv's
//! channel `(m, ty, tx)` at pixel `(iy, ix)`; the reshapes and the
//! transpose only move it there, so the activation may come before them.
//! The QConv sums the products exactly and scales once by `f32(s·sc[m])`.
//!
//! `int8-convtranspose-phases`: a transposed conv whose taps overlap
//! (kernel larger than the stride: the 3x3 and 4x4 stride-2 upsampling of
//! segmentation decoders) splits into its `sy·sx` output phases (sub-pixel
//! convolution): output pixel `(s·m + r)` along an axis receives only the
//! kernel taps `ky ≡ (r + pb) mod s`, from inputs `m + q − t`, so each
//! phase is an ordinary conv of the input with `T = ⌈(k − r')/s⌉` taps
//! (`r' = (r + pb) mod s`, `q = (r + pb) div s`), pads `T − 1 − q` before
//! and `L − len + q` after for `L = ⌈out/s⌉` pixels per phase, and the
//! flipped sub-kernel `K[o, c, j] = w[c, o, s·(T − 1 − j) + r']`
//! ([`Phase`]). Each phase is a `QConv` on the same quantised input (padded
//! per phase), the phases are concatenated on the channel axis and
//! interleaved: `Reshape{[n, M, Ly·sy, Lx·sx]}(Transpose{[0, 3, 4, 1, 5,
//! 2]}(Reshape{[n, sy, sx, M, Ly, Lx]}(Concat{1}(phases))))`, then cropped
//! by a `Slice` to the output when `s` does not divide it (PyTorch's 3x3
//! stride 2 padding 1 without output padding gives `2·len − 1`: the odd
//! phase computes one pixel past the end). Every output pixel gets exactly
//! its taps' products, summed exactly in integers and scaled once by
//! `f32(s·sc[o])` (as `int8-conv`), the activation per element before the
//! moves.
//!
//! The extractor weighs either integer form, its quantiser and the pixel
//! shuffle against the f32 GEMM + col2im; a `Quantize` after it moves
//! before the shuffle (`int8-reshape`) and the conv then stores the bytes
//! itself (`int8-requant`). Directional.

use egg::Id;
use kerf_ir::op::{Conv, ConvAlgo, ConvTranspose, Epilogue, QConv, QOut, Window};
use kerf_ir::UnaryOp;
use kerf_ir::{DType, Op, Origin, Tensor, WeightId, F32};

use super::int8::quantiser;
use super::{add_union, rewrite, KRewrite, Rule};
use crate::analysis::{KEGraph, MemoKey};
use crate::lang::{KNode, NodeOp};

/// `int8-convtranspose` (see the module docs).
pub struct Int8ConvTranspose;

/// A match: the transposed conv, its activation, the quantiser's input and
/// grid, the weight and bias, and `[n, M, kh, kw, h, w]`.
pub struct Match {
    c: ConvTranspose,
    act: Option<UnaryOp>,
    x: Id,
    s: f32,
    z: u8,
    w: WeightId,
    b: Option<WeightId>,
    dims: [usize; 6],
}

/// Whether every output pixel of `c` receives exactly one tap: 2-D, one
/// group, kernel = stride, no dilation, pads or output padding.
fn tiles_exactly(c: &ConvTranspose) -> bool {
    let w = &c.window;
    c.group == 1
        && w.rank() == 2
        && w.kernel == w.strides
        && w.dilations.iter().all(|&d| d == 1)
        && w.pads.iter().all(|&p| p == 0)
        && c.output_padding.iter().all(|&p| p == 0)
}

impl Rule for Int8ConvTranspose {
    type Match = Match;
    fn name(&self) -> &'static str {
        "int8-convtranspose"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Match>) {
        out.extend(matches(eg, class).into_iter().filter(|m| tiles_exactly(&m.c)));
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &Match) -> Vec<Id> {
        let Some([q, sc, b]) = weights(eg, m) else { return vec![] };
        let [n, ch, kh, kw, h, w] = m.dims;
        let window = Window { kernel: vec![1, 1], strides: vec![1, 1], dilations: vec![1, 1], pads: vec![0; 4] };
        let conv = Conv { window, group: 1, layer: m.c.layer.clone(), algo: ConvAlgo::Direct };
        let epi = Epilogue { act: m.act, residual: false };
        let qconv = QConv { conv, epi, x_scale: F32::new(m.s), x_zp: m.z, out: QOut::Real, res_grid: None };
        let quantise = Op::Quantize { scale: F32::new(m.s), zp: m.z, pads: vec![0; 8] };
        let x = eg.add(KNode::op(quantise, vec![m.x]));
        let konst = |eg: &mut KEGraph, w: WeightId| eg.add(KNode::leaf(NodeOp::Const(w)));
        let children = vec![x, konst(eg, q), konst(eg, sc), konst(eg, b)];
        let y = eg.add(KNode::op(Op::QConv(qconv), children));
        let y = eg.add(KNode::op(Op::Reshape { shape: vec![n, ch, kh, kw, h, w] }, vec![y]));
        let y = eg.add(KNode::op(Op::Transpose { perm: vec![0, 1, 4, 2, 5, 3] }, vec![y]));
        add_union(eg, class, KNode::op(Op::Reshape { shape: vec![n, ch, h * kh, w * kw] }, vec![y]))
    }
}

/// The transposed convs in `class` (one group, 2-D, an activation at
/// most) whose input's class holds the activation quantiser and whose
/// weight `[C, M, kh, kw]` is a constant on a per-output-channel int8
/// grid along axis 1, with `[n, M, kh, kw, h, w]`.
fn matches(eg: &KEGraph, class: Id) -> Vec<Match> {
    let mut out = Vec::new();
    for n in &eg[class].nodes {
        let (c, act) = match n.kerf_op() {
            Some(Op::ConvTranspose(c)) => (c, None),
            Some(Op::ConvTransposeFused(c, e)) if !e.residual => (c, e.act),
            _ => continue,
        };
        if c.group != 1 || c.window.rank() != 2 {
            continue;
        }
        let (a, w, b) = match n.children.as_slice() {
            [a, w] => (*a, *w, None),
            [a, w, b] => (*a, *w, Some(*b)),
            _ => continue,
        };
        let Some(q) = quantiser(eg, a) else { continue };
        let Some(w) = eg[w].data.constant else { continue };
        let b = match b.map(|b| eg[b].data.constant) {
            Some(None) => continue,
            b => b.flatten(),
        };
        let weight = eg.analysis.weights.get(w);
        let on_grid = weight.grid.as_ref().is_some_and(|g| g.axis == 1);
        let Some(t) = eg[q.x].data.ty().filter(|t| t.dtype == DType::F32) else { continue };
        let (&[n_, _, h, wd], &[_, m, kh, kw]) = (t.shape.as_slice(), weight.tensor.shape()) else { continue };
        if on_grid && b.is_none_or(|b| eg.analysis.weights.tensor(b).shape() == [m]) {
            let dims = [n_, m, kh, kw, h, wd];
            out.push(Match { c: c.clone(), act, x: q.x, s: q.s, z: q.z, w, b, dims });
        }
    }
    out
}

/// The 1x1 conv's codes, steps and bias, made once per weight and bias.
fn weights(eg: &mut KEGraph, m: &Match) -> Option<[WeightId; 3]> {
    let mut inputs = vec![m.w];
    inputs.extend(m.b);
    let key = MemoKey { rule: "int8-convtranspose", ops: vec![], inputs };
    super::memoized(eg, key, |eg| make_weights(eg, m).map(Vec::from))?.try_into().ok()
}

fn make_weights(eg: &mut KEGraph, m: &Match) -> Option<[WeightId; 3]> {
    let weight = eg.analysis.weights.get(m.w);
    let grid = weight.grid.as_ref()?;
    let codes = grid.codes(&weight.tensor).ok()?;
    let &[c, ch, kh, kw] = weight.tensor.shape() else { return None };
    let (area, rows) = (kh * kw, ch * kh * kw);
    // row (m, t) of the 1x1 conv reads input channel i at codes[i, m, t]
    let bytes: Vec<u8> =
        (0..rows * c).map(|k| codes[((k % c) * ch + (k / c) / area) * area + (k / c) % area] as u8).collect();
    let q = Tensor::from_bytes(DType::I8, vec![rows, c, 1, 1], bytes).ok()?;
    let steps: Vec<f32> = (0..rows).map(|r| grid.scales[r / area]).collect();
    let bias = bias_of(eg, m, ch);
    let bias: Vec<f32> = (0..rows).map(|r| bias[r / area]).collect();
    let tag = format!("{}.int8", weight.name);
    add_derived(eg, m.w, &tag, q, &steps, &bias)
}

/// The transposed conv's bias (zeros without one), `ch` values.
fn bias_of(eg: &KEGraph, m: &Match, ch: usize) -> Vec<f32> {
    match m.b {
        Some(b) => eg.analysis.weights.tensor(b).to_f32_vec(),
        None => vec![0.0; ch],
    }
}

/// The derived integer conv's codes `q` (a parameter where `w` is), its
/// per-row steps and bias, named after `tag`.
fn add_derived(
    eg: &mut KEGraph,
    w: WeightId,
    tag: &str,
    q: Tensor,
    steps: &[f32],
    bias: &[f32],
) -> Option<[WeightId; 3]> {
    let is_param = eg.analysis.weights.get(w).is_param;
    let rows = steps.len();
    let (steps, bias) = (Tensor::from_f32(vec![rows], steps).ok()?, Tensor::from_f32(vec![rows], bias).ok()?);
    let table = &mut eg.analysis.weights;
    let qid = table.add(tag.to_string(), q, Origin::Derived);
    table.get_mut(qid).is_param = is_param;
    let sid = table.add(format!("{tag}_scale"), steps, Origin::Derived);
    let bid = table.add(format!("{tag}_bias"), bias, Origin::Derived);
    Some([qid, sid, bid])
}

/// `int8-convtranspose-phases` (see the module docs).
pub struct Int8ConvTransposePhases;

/// One output phase of one axis of a transposed conv ([`phases`]): the
/// phase conv's taps and pads, and its tap `j`'s index in the transposed
/// conv's kernel, `s·(taps − 1 − j) + first`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phase {
    taps: usize,
    pad_begin: usize,
    pad_end: usize,
    first: usize,
    stride: usize,
}

impl Phase {
    fn kernel_index(&self, j: usize) -> usize {
        self.stride * (self.taps - 1 - j) + self.first
    }
}

/// The `s` output phases of an axis with kernel `k`, stride `s`, pads
/// `pb`/`pe` and output padding `op` over an input of `len`, each an
/// ordinary conv (at least one tap, no negative pad) of `⌈out/s⌉` pixels,
/// and the axis' output length `out`; `None` otherwise. When `s` does not
/// divide `out`, the last `s·⌈out/s⌉ − out` phases compute one pixel past
/// the output (the same transposed conv with that much more output padding,
/// which leaves the first `out` pixels as they are), cropped afterwards.
pub fn phases(k: usize, s: usize, (pb, pe, op): (usize, usize, usize), len: usize) -> Option<(Vec<Phase>, usize)> {
    let out = (s * (len.checked_sub(1)?) + k + op).checked_sub(pb + pe)?;
    if s < 2 || out == 0 {
        return None;
    }
    let per_phase = out.div_ceil(s);
    let phases = (0..s)
        .map(|r| {
            let (first, q) = ((r + pb) % s, (r + pb) / s);
            let taps = k.checked_sub(first)?.div_ceil(s);
            let pad_begin = (taps.checked_sub(1)?).checked_sub(q)?;
            let pad_end = (per_phase + q).checked_sub(len)?;
            Some(Phase { taps, pad_begin, pad_end, first, stride: s })
        })
        .collect::<Option<_>>()?;
    Some((phases, out))
}

/// The phases of both axes of `m`'s transposed conv (no dilation, taps
/// overlapping on at least one axis), or `None`.
fn both_phases(m: &Match) -> Option<[(Vec<Phase>, usize); 2]> {
    let (w, [_, _, kh, kw, h, wd]) = (&m.c.window, m.dims);
    let op = |i: usize| m.c.output_padding.get(i).copied().unwrap_or(0);
    if w.dilations.iter().any(|&d| d != 1) || tiles_exactly(&m.c) {
        return None;
    }
    let y = phases(kh, w.strides[0], (w.pad_begin(0), w.pad_end(0), op(0)), h)?;
    let x = phases(kw, w.strides[1], (w.pad_begin(1), w.pad_end(1), op(1)), wd)?;
    Some([y, x])
}

impl Rule for Int8ConvTransposePhases {
    type Match = Match;
    fn name(&self) -> &'static str {
        "int8-convtranspose-phases"
    }
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Match>) {
        out.extend(matches(eg, class).into_iter().filter(|m| both_phases(m).is_some()));
    }
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &Match) -> Vec<Id> {
        let Some([(py, out_h), (px, out_w)]) = both_phases(m) else { return vec![] };
        let [n, ch, ..] = m.dims;
        let (sy, sx) = (py.len(), px.len());
        let (h, w) = (out_h.div_ceil(sy), out_w.div_ceil(sx));
        let konst = |eg: &mut KEGraph, w: WeightId| eg.add(KNode::leaf(NodeOp::Const(w)));
        let Some(ws) = phase_weights(eg, m, &py, &px) else { return vec![] };
        let mut parts = Vec::with_capacity(sy * sx);
        for (iy, y) in py.iter().enumerate() {
            for (ix, x) in px.iter().enumerate() {
                let [q, sc, b] = ws[iy * sx + ix];
                let pads = vec![0, 0, y.pad_begin, x.pad_begin, 0, 0, y.pad_end, x.pad_end];
                let quantise = Op::Quantize { scale: F32::new(m.s), zp: m.z, pads };
                let xq = eg.add(KNode::op(quantise, vec![m.x]));
                let window = Window {
                    kernel: vec![y.taps, x.taps],
                    strides: vec![1, 1],
                    dilations: vec![1, 1],
                    pads: vec![0; 4],
                };
                let conv = Conv { window, group: 1, layer: m.c.layer.clone(), algo: ConvAlgo::Direct };
                let epi = Epilogue { act: m.act, residual: false };
                let qconv = QConv { conv, epi, x_scale: F32::new(m.s), x_zp: m.z, out: QOut::Real, res_grid: None };
                let children = vec![xq, konst(eg, q), konst(eg, sc), konst(eg, b)];
                parts.push(eg.add(KNode::op(Op::QConv(qconv), children)));
            }
        }
        let y = eg.add(KNode::op(Op::Concat { axis: 1 }, parts));
        let y = eg.add(KNode::op(Op::Reshape { shape: vec![n, sy, sx, ch, h, w] }, vec![y]));
        let y = eg.add(KNode::op(Op::Transpose { perm: vec![0, 3, 4, 1, 5, 2] }, vec![y]));
        let shuffled = KNode::op(Op::Reshape { shape: vec![n, ch, h * sy, w * sx] }, vec![y]);
        if (h * sy, w * sx) == (out_h, out_w) {
            return add_union(eg, class, shuffled);
        }
        let y = eg.add(shuffled);
        let ends = [n, ch, out_h, out_w].map(|e| e as i64).to_vec();
        add_union(eg, class, KNode::op(Op::Slice { starts: vec![0; 4], ends, steps: vec![1; 4] }, vec![y]))
    }
}

/// Every phase's codes `[M, C, Ty, Tx]`, steps and bias (row-major over
/// `(iy, ix)`), made once per weight and bias.
fn phase_weights(eg: &mut KEGraph, m: &Match, py: &[Phase], px: &[Phase]) -> Option<Vec<[WeightId; 3]>> {
    let mut inputs = vec![m.w];
    inputs.extend(m.b);
    let key = MemoKey { rule: "int8-convtranspose-phases", ops: vec![], inputs };
    let ids = super::memoized(eg, key, |eg| {
        // the codes, decoded once for every phase
        let weight = eg.analysis.weights.get(m.w);
        let codes = weight.grid.as_ref()?.codes(&weight.tensor).ok()?;
        let mut ids = Vec::with_capacity(3 * py.len() * px.len());
        for y in py {
            for x in px {
                ids.extend(make_phase_weights(eg, m, &codes, y, x)?);
            }
        }
        Some(ids)
    })?;
    Some(ids.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect())
}

/// Phase `(py, px)`'s codes `[M, C, Ty, Tx]` from the weight's `codes`,
/// its steps and bias.
fn make_phase_weights(eg: &mut KEGraph, m: &Match, codes: &[i8], py: &Phase, px: &Phase) -> Option<[WeightId; 3]> {
    let weight = eg.analysis.weights.get(m.w);
    let grid = weight.grid.as_ref()?;
    let &[c, ch, kh, kw] = weight.tensor.shape() else { return None };
    let (ty, tx) = (py.taps, px.taps);
    let mut bytes = Vec::with_capacity(ch * c * ty * tx);
    for o in 0..ch {
        for i in 0..c {
            for jy in 0..ty {
                for jx in 0..tx {
                    let (ky, kx) = (py.kernel_index(jy), px.kernel_index(jx));
                    bytes.push(codes[((i * ch + o) * kh + ky) * kw + kx] as u8);
                }
            }
        }
    }
    let q = Tensor::from_bytes(DType::I8, vec![ch, c, ty, tx], bytes).ok()?;
    let steps = grid.scales.clone();
    let tag = format!("{}.int8_phase{}x{}", weight.name, py.first, px.first);
    let bias = bias_of(eg, m, ch);
    add_derived(eg, m.w, &tag, q, &steps, &bias)
}

/// The rules.
pub fn rules() -> Vec<KRewrite> {
    vec![rewrite(Int8ConvTranspose), rewrite(Int8ConvTransposePhases)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each phase's taps, read back through [`Phase::kernel_index`] and
    /// its pads, are exactly the kernel taps that reach its output pixels
    /// by the transposed conv's definition (`oy = iy·s − pb + ky`), for
    /// 3x3 and 4x4 stride 2, 3x3 stride 3, with and without output padding,
    /// for every pixel of outputs the stride divides and of outputs it does
    /// not (the crop keeps the first `out`).
    #[test]
    fn phases_gather_exactly_the_taps_of_their_pixels() {
        let cases = [
            // output s·len
            (3, 2, 1, 1, 1),
            (4, 2, 1, 1, 0),
            (3, 3, 0, 0, 0),
            (5, 2, 2, 2, 1),
            (6, 3, 1, 2, 0),
            // s·len − 1 (PyTorch's k3 s2 p1 without output padding), s·len + 1, s·len − 2,
            // s·len + 2, and FSRCNN's k9 s3 p4 op2
            (3, 2, 1, 1, 0),
            (3, 2, 0, 0, 0),
            (5, 3, 2, 2, 0),
            (4, 2, 0, 0, 0),
            (9, 3, 4, 4, 2),
        ];
        for (k, s, pb, pe, op) in cases {
            let len = 5;
            let (ph, out) =
                phases(k, s, (pb, pe, op), len).unwrap_or_else(|| panic!("k{k} s{s} pads {pb},{pe} op{op}"));
            assert_eq!(out, s * (len - 1) + k + op - pb - pe);
            for oy in 0..out {
                let p = &ph[oy % s];
                let m = oy / s;
                // the phase conv: input m − pad_begin + j for j in 0..taps, in range
                let mut got: Vec<(usize, usize)> = (0..p.taps)
                    .filter_map(|j| {
                        let iy = (m + j).checked_sub(p.pad_begin).filter(|&iy| iy < len)?;
                        Some((iy, p.kernel_index(j)))
                    })
                    .collect();
                let mut want: Vec<(usize, usize)> = (0..len)
                    .flat_map(|iy| (0..k).map(move |ky| (iy, ky)))
                    .filter(|&(iy, ky)| iy * s + ky == oy + pb)
                    .collect();
                got.sort_unstable();
                want.sort_unstable();
                assert_eq!(got, want, "k{k} s{s} pads {pb},{pe} op{op}: output {oy}");
            }
        }
        // a kernel that leaves a phase without taps; pads cropping more than a phase's taps reach
        assert!(phases(1, 2, (0, 0, 1), 5).is_none());
        assert!(phases(3, 2, (3, 3, 0), 5).is_none());
    }
}
