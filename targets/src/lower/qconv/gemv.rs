//! The one-pixel integer product's lowering: a `QConv` on one-pixel
//! planes whose window is the whole input (a classifier head as a 1x1
//! conv, a product's rows as images), output channels in the lanes: on
//! VNNI's `ukernel::avx512::qdot_gemv` (16 channels per `zmm`), or without
//! VNNI on AVX2's `ukernel::avx2::ymm_gemv` (8 per `ymm`, 16-bit pairs or,
//! for weights whose byte pairs cannot saturate, byte quads), or on
//! AArch64's `dotprod` `ukernel::neon::sdot_gemv` (4 per register, sums
//! only: the epilogue is Cranelift's, [`sums_epilogue`]).

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, Value};

use super::super::epilogue::Act;
use super::super::gemm_wide::act_epi;
use super::super::{Family, Kernel, LResult};
use super::store::{finish, Store};
use super::{finite, zero_point_sums, Dims, QDOT_ROWS};
use crate::ukernel::avx2::{GemvStep, QdotGemv, YMM_GEMV_ACCS, YMM_GEMV_IMAGES_MAX};
use crate::ukernel::epi::TileEpi;
use crate::ukernel::neon::{SDOT_GEMV_ACCS, SDOT_GEMV_IMAGES_MAX};
use crate::ukernel::KSteps;

/// The one-pixel product a target has: VNNI's on `zmm`, AVX2's on `ymm`
/// with its K step, or `dotprod`'s `sdot` (sums only).
#[derive(Clone, Copy, Debug)]
pub(super) enum Form {
    Zmm,
    Ymm(GemvStep),
    Sdot,
}

impl Form {
    /// The form for `k`'s target and `d`'s weights and a K of `kk`, if it
    /// has one: VNNI's or `dotprod`'s (byte quads for every weight), or
    /// AVX2's byte quads where the weights allow them and K is whole quads,
    /// else its pairs where K is whole pairs.
    fn of(k: &Kernel, d: &Dims, kk: usize) -> Option<Form> {
        let whole = |f: Form| kk > 0 && kk.is_multiple_of(f.step_k());
        let forms = match (k.caps.vnni, k.caps.avx2, k.caps.dotprod) {
            (true, ..) => [d.quads.then_some(Form::Zmm), None],
            (false, true, _) => [d.quads.then_some(Form::Ymm(GemvStep::Bytes)), Some(Form::Ymm(GemvStep::Pairs))],
            (.., true) => [d.quads.then_some(Form::Sdot), None],
            _ => [None, None],
        };
        forms.into_iter().flatten().find(|&f| whole(f))
    }
    /// Output channels per block (vector lanes).
    fn lanes(self) -> usize {
        match self {
            Form::Zmm => 16,
            Form::Ymm(_) => 8,
            Form::Sdot => 4,
        }
    }
    /// K values per step.
    fn step_k(self) -> usize {
        match self {
            Form::Zmm | Form::Sdot => 4,
            Form::Ymm(s) => s.k(),
        }
    }
    /// Images per call and blocks per chunk for a batch of `images`: as
    /// many images as the form takes (they share each weight load; Zen 4,
    /// tiny_transformer's int8 products on VNNI: one image per call 0.030
    /// / 0.041 / 0.038 ms, two 0.015 / 0.019 / 0.019, four 0.014 / 0.019 /
    /// 0.018), and as many blocks as their accumulators allow, at most
    /// [`QDOT_ROWS`] on x86 (its epilogue table's blocks).
    fn shape(self, images: usize) -> (usize, usize) {
        use crate::ukernel::avx512::{GEMV_ACCS, GEMV_IMAGES_MAX};
        let (most, accs, blocks) = match self {
            Form::Zmm => (GEMV_IMAGES_MAX, GEMV_ACCS, QDOT_ROWS),
            Form::Ymm(_) => (YMM_GEMV_IMAGES_MAX, YMM_GEMV_ACCS, QDOT_ROWS),
            Form::Sdot => (SDOT_GEMV_IMAGES_MAX, SDOT_GEMV_ACCS, SDOT_GEMV_ACCS),
        };
        let per = images.clamp(1, most);
        (per, blocks.min(accs / per))
    }
    /// The machine code of variant `g`.
    fn code(self, g: &QdotGemv) -> Result<Vec<u8>, String> {
        match self {
            Form::Zmm => crate::ukernel::avx512::qdot_gemv(g),
            Form::Ymm(step) => crate::ukernel::avx2::ymm_gemv(g, step),
            Form::Sdot => crate::ukernel::neon::sdot_gemv(g.blocks, g.images, g.x_stride, g.steps),
        }
    }
    fn family(self) -> Family {
        match self {
            Form::Zmm => Family::Avx512,
            Form::Ymm(_) => Family::Avx2,
            Form::Sdot => Family::Neon,
        }
    }
}

/// The one-pixel product's form and tile epilogue where it applies: a
/// target with one for K in whole steps of it (it reads the input a step
/// at a time; [`Form::of`]), one group, a one-pixel output plane whose
/// window is the whole input plane (so an image's K values are its `kk`
/// consecutive bytes) and an activation the tile applies.
pub(super) fn gemv_fits(
    k: &Kernel,
    d: &Dims,
    (kk, kh, kw): (usize, usize, usize),
    act: Act,
    residual: bool,
) -> Option<(Form, TileEpi, Act)> {
    let whole = d.pixels == 1 && d.h == kh && d.w == kw;
    let form = Form::of(k, d, kk)?;
    let fits = d.groups == 1 && whole && d.mg > 0;
    fits.then(|| act_epi(act, residual).map(|e| (form, e, act))).flatten()
}

/// A `QConv` on one-pixel planes (a classifier head as a 1x1 conv, a
/// product's rows as images) on the one-pixel product of `form`: output
/// channels in the lanes, chunks of `lanes · blocks` channels per call,
/// and per call a group of images sharing each weight load
/// ([`Form::shape`]); each (chunk, group) a task, chunk-major so that
/// consecutive tasks reuse a chunk's weights. The weights are packed per
/// chunk as `[k step][channel][4 bytes]`, the epilogue table per block as
/// the i32 zero-point terms, the scales and the biases (zeros past the
/// last channel); the sums are exact and the epilogue is the op's, so the
/// bits are the unit tiles'. `sdot`'s product stores its sums in task
/// scratch and [`sums_epilogue`] finishes each call.
pub(super) fn gemv(
    k: &mut Kernel,
    d: &Dims,
    (form, epi, act): (Form, TileEpi, Act),
    (w, kk): (&[f64], usize),
    (scales, bias): (&[f32], &[f32]),
    quant: Option<(f32, u8)>,
) -> LResult {
    let epi = TileEpi { finite: finite(scales, bias), ..epi };
    let (m, steps, images, lanes) = (d.mg, kk / form.step_k(), k.in_shape(0)[0], form.lanes());
    let (per_call, blocks) = form.shape(images);
    // block-sparse weights: each block's listed quads (`listed`); `sdot`'s
    // in groups of four blocks (one offset per 16 channels)
    let listed = match form {
        Form::Zmm | Form::Ymm(GemvStep::Bytes) => {
            super::listed::gemv_layout(k, d, (w, kk), (lanes, blocks)).map(|l| (l, blocks, 64 + 4 * lanes * blocks))
        }
        Form::Sdot => {
            let b4 = blocks / 4 * 4;
            super::listed::sdot_gemv_layout(k, d, (w, kk), b4).map(|l| (l, b4, 17 * b4))
        }
        _ => None,
    };
    let blocks = listed.as_ref().map_or(blocks, |l| l.1);
    let chunk = lanes * blocks;
    let (wb, tb) = gemv_pack(d, form, (w, kk), (scales, bias), chunk);
    let (steps, step_bytes, wb, ksteps) = match listed {
        Some(((kept, wb), _, step_bytes)) => (kept, step_bytes, wb, KSteps::Listed),
        None => (steps, chunk * 4, wb, KSteps::Dense),
    };
    let full = QdotGemv {
        blocks,
        last_lanes: lanes,
        epi,
        quant,
        images: per_call,
        x_stride: d.c * d.h * d.w,
        out_stride: d.groups * d.mg,
        steps: ksteps,
    };
    let v = Variants::new(k, form, full, (m, images))?;
    let [chunks, groups] = v.counts;
    let (wp, tp) = (k.blob(wb), k.blob(tb));
    let (x, out) = (k.input(0), k.output(0));
    let res = if epi.residual { Some(k.input(4)) } else { None };
    let sig = k.ukernel_sig(6);
    let ob = if quant.is_some() { 1 } else { 4 };
    let sums = matches!(form, Form::Sdot).then(|| k.task_scratch(4 * chunk * per_call));
    let (lo, hi) = k.parallel_range(chunks * groups, 1, (kk * chunk * per_call) as u64)?;
    let mut result: LResult = Ok(());
    k.for_dyn(lo, hi, 1, |k, u| {
        let (c, g) = (k.b.ins().udiv_imm_u(u, groups as i64), k.b.ins().urem_imm_u(u, groups as i64));
        let wc = k.addr(wp, c, (steps * step_bytes) as i64);
        let n = k.b.ins().imul_imm_s(g, per_call as i64);
        let xn = k.addr(x, n, (d.c * d.h * d.w) as i64);
        let e = k.b.ins().imul_imm_s(n, m as i64);
        let c0 = k.b.ins().imul_imm_s(c, chunk as i64);
        let e = k.b.ins().iadd(e, c0);
        let o = k.addr(out, e, ob);
        let r = match res {
            Some(r) => k.addr(r, e, 4),
            None => o,
        };
        let t = k.addr(tp, c, (blocks * 12 * lanes) as i64);
        let steps_v = k.ic(steps as i64);
        match sums {
            Some(sums) => {
                let ptrs =
                    SumsPtrs { sums, table: t, store: Store { out: o, res: res.map(|_| r), res_grid: None, quant } };
                let call = |k: &mut Kernel, code: Value, shape: &QdotGemv| {
                    k.b.ins().call_indirect(sig, code, &[wc, xn, sums, steps_v, sums, sums]);
                    sums_epilogue(k, shape, act, &ptrs, m)
                };
                result = result.clone().and(v.branch(k, [c, g], call));
            }
            None => {
                let variant = v.select(k, [c, g]);
                k.b.ins().call_indirect(sig, variant, &[wc, xn, o, steps_v, t, r]);
            }
        }
    });
    result
}

/// A one-pixel product's variants: per (last chunk, last group) its code
/// and shape where that pair occurs. A dimension's `kinds` say whether
/// full (`.0`) and last (`.1`) indices occur; `counts` are the chunks and
/// the image groups.
struct Variants {
    code: [[Option<Value>; 2]; 2],
    /// Some variant's code (the one [`Variants::select`] gives pairs that
    /// do not occur).
    any: Value,
    shapes: [[QdotGemv; 2]; 2],
    kinds: [(bool, bool); 2],
    counts: [usize; 2],
}

impl Variants {
    /// The variants of `full` (a full chunk of a full image group) for
    /// `m` channels and `images` images, assembled.
    fn new(k: &mut Kernel, form: Form, full: QdotGemv, (m, images): (usize, usize)) -> Result<Variants, String> {
        let (lanes, chunk, per_call) = (form.lanes(), form.lanes() * full.blocks, full.images);
        let (rest, last_group) = (m % chunk, images % per_call);
        let kinds = [(m >= chunk, rest != 0), (images >= per_call, last_group != 0)];
        let (mut code, mut shapes) = ([[None; 2]; 2], [[full; 2]; 2]);
        for (lc, lg) in [(false, false), (false, true), (true, false), (true, true)] {
            let occurs = |(whole, part): (bool, bool), last: bool| if last { part } else { whole };
            if !(occurs(kinds[0], lc) && occurs(kinds[1], lg)) {
                continue;
            }
            let mut g = full;
            if lc {
                (g.blocks, g.last_lanes) = (rest.div_ceil(lanes), (rest - 1) % lanes + 1);
            }
            if lg {
                g.images = last_group;
            }
            let bytes = form.code(&g).map_err(|e| format!("internal: one-pixel product: {e}"))?;
            code[usize::from(lc)][usize::from(lg)] = Some(k.code(form.family(), bytes));
            shapes[usize::from(lc)][usize::from(lg)] = g;
        }
        let any = code.iter().flatten().flatten().copied().next().ok_or("internal: one-pixel product: no variant")?;
        Ok(Variants { code, any, shapes, kinds, counts: [m.div_ceil(chunk), images.div_ceil(per_call)] })
    }

    /// The variant of chunk `c` and group `g` as a value: a dimension with
    /// both kinds picks by a select on its last index, one with a single
    /// kind takes it.
    fn select(&self, k: &mut Kernel, [c, g]: [Value; 2]) -> Value {
        let pick = |k: &mut Kernel, v: Value, n: usize, kinds: (bool, bool), [full, last]: [Value; 2]| match is_last(
            k, v, n, kinds,
        ) {
            Some(end) => k.b.ins().select(end, last, full),
            None if kinds.0 => full,
            None => last,
        };
        let rows = self.code.map(|row| row.map(|v| v.unwrap_or(self.any)));
        let in_chunk = rows.map(|row| pick(k, g, self.counts[1], self.kinds[1], row));
        pick(k, c, self.counts[0], self.kinds[0], in_chunk)
    }

    /// `call` for the variant of chunk `c` and group `g` (its code and
    /// shape), each variant under its own branch: for code whose
    /// epilogue depends on the shape (`sdot`'s sums).
    fn branch(
        &self,
        k: &mut Kernel,
        [c, g]: [Value; 2],
        mut call: impl FnMut(&mut Kernel, Value, &QdotGemv) -> LResult,
    ) -> LResult {
        let ends = [is_last(k, c, self.counts[0], self.kinds[0]), is_last(k, g, self.counts[1], self.kinds[1])];
        let mut result = Ok(());
        for (lc, lg) in [(false, false), (false, true), (true, false), (true, true)] {
            let Some(code) = self.code[usize::from(lc)][usize::from(lg)] else { continue };
            let shape = self.shapes[usize::from(lc)][usize::from(lg)];
            let conds: Vec<Value> = [(ends[0], lc), (ends[1], lg)]
                .into_iter()
                .filter_map(|(end, last)| end.map(|e| if last { e } else { k.b.ins().bxor_imm_u(e, 1) }))
                .collect();
            let mut body = |k: &mut Kernel| result = result.clone().and(call(k, code, &shape));
            match conds.as_slice() {
                [] => body(k),
                [one] => k.if_then(*one, body),
                [a, b] => {
                    let both = k.b.ins().band(*a, *b);
                    k.if_then(both, body)
                }
                _ => unreachable!("two dimensions"),
            }
        }
        result
    }
}

/// Whether index `v` of `n` is the last, as an `i8` (`None` where a
/// dimension has only one kind of index, `(full, last)`, so no test).
fn is_last(k: &mut Kernel, v: Value, n: usize, kinds: (bool, bool)) -> Option<Value> {
    (kinds == (true, true)).then(|| k.b.ins().icmp_imm_s(IntCC::Equal, v, (n - 1) as i64))
}

/// Where [`sums_epilogue`] reads and writes, for one call: the call's
/// sums (task scratch), its chunk's epilogue table, and where its first
/// image's results go.
struct SumsPtrs {
    sums: Value,
    table: Value,
    store: Store,
}

/// The unit tiles' epilogue over one call of the sums-only product `g`
/// (`sdot`'s: `[image][4·blocks]` i32 sums `Σ (x − 128)·w`): per block of
/// 4 channels the sums less the table's zero-point terms (`(zp − 128)·Σ
/// w`), `f32(acc)·s + b`, then [`finish`] (residual, activation, f32 or
/// requantised u8 store; the last block's lanes past `last_lanes` not
/// stored). Images are `m` output elements apart.
fn sums_epilogue(k: &mut Kernel, g: &QdotGemv, act: Act, p: &SumsPtrs, m: usize) -> LResult {
    for i in 0..g.images {
        for b in 0..g.blocks {
            let acc = k.ld(types::I32X4, p.sums, (16 * (i * g.blocks + b)) as i32);
            let corr = k.ld(types::I32X4, p.table, (48 * b) as i32);
            let scale = k.ld(types::F32X4, p.table, (48 * b + 16) as i32);
            let bias = k.ld(types::F32X4, p.table, (48 * b + 32) as i32);
            let acc = k.b.ins().isub(acc, corr);
            let f = k.b.ins().fcvt_from_sint(types::F32X4, acc);
            let f = k.b.ins().fmul(f, scale);
            let f = k.b.ins().fadd(f, bias);
            let live = if b + 1 == g.blocks { g.last_lanes } else { 4 };
            finish(k, act, &p.store, f, live, i * m + 4 * b)?;
        }
    }
    Ok(())
}

/// The one-pixel product's weights per chunk of `chunk` channels (`[k
/// step][channel][4 bytes]`: four s8, or one i16 pair for
/// [`GemvStep::Pairs`]; channels past the last zero) and its epilogue
/// table per block of lanes (zero-point terms, scales, biases).
fn gemv_pack(
    d: &Dims,
    form: Form,
    (w, kk): (&[f64], usize),
    (scales, bias): (&[f32], &[f32]),
    chunk: usize,
) -> (Vec<u8>, Vec<u8>) {
    let (m, sk, lanes) = (d.mg, form.step_k(), form.lanes());
    let zp_terms = zero_point_sums(d, w, kk);
    let (mut wb, mut tb) = (Vec::new(), Vec::new());
    for c in 0..m.div_ceil(chunk) {
        let chans = (c * chunk..m.min((c + 1) * chunk)).collect::<Vec<_>>();
        let width = chans.len().div_ceil(lanes) * lanes;
        for q in 0..kk / sk {
            for l in 0..width {
                let code = |j: usize| chans.get(l).map_or(0, |&r| w[r * kk + sk * q + j] as i8);
                match sk {
                    2 => wb.extend((0..2).flat_map(|j| i16::from(code(j)).to_le_bytes())),
                    _ => wb.extend((0..4).map(|j| code(j) as u8)),
                }
            }
        }
        for blk in 0..width / lanes {
            let at = |l: usize| chans.get(lanes * blk + l).copied();
            tb.extend((0..lanes).flat_map(|l| at(l).map_or(0, |r| zp_terms[r]).to_le_bytes()));
            tb.extend((0..lanes).flat_map(|l| at(l).map_or(0.0, |r| scales[r]).to_le_bytes()));
            tb.extend((0..lanes).flat_map(|l| at(l).map_or(0.0, |r| bias[r]).to_le_bytes()));
        }
    }
    (wb, tb)
}
