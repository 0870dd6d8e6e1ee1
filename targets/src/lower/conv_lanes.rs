//! Pointwise convs on small planes, and block-sparse pointwise convs on
//! any plane, with the output channels in the vector lanes: `Sᵀ = Xᵀ · Wᵀ`
//! on the MatMul engine, then a transposing pass into the NCHW output.
//!
//! The conv engine ([`super::conv_packed`]) puts output pixels in the lanes.
//! A 7×7 plane (49 pixels) then fills four 16-lane vectors to 77% (seven
//! 8-lane ones to 88%), and MobileNetV2's last 1x1 convs ran at 55–60% of
//! the FMA peak. With the channels in the lanes (Cout a multiple of the
//! vector width) every lane is useful; the pixels are the tile's rows,
//! broadcast from the input as it lies in memory (`A[p, c] = X[c·hw + p]`;
//! the MatMul engine repacks tall A into row blocks).
//!
//! Block-sparse weights (each block of 16 output channels keeps the same
//! input channels: block-shared N:M, `--prune-nm 2:4/16`) take this form
//! on any plane ([`fits_block_sparse`]): `Wᵀ` is then a product weight
//! whose 16-column blocks skip the same K rows, and the MatMul engine's
//! block-sparse tiles run only the kept input channels, reading each
//! pixel's input in place at the listed channel offsets. The conv engine
//! keeps pixels in the lanes and has no such tiles.
//!
//! Contract: `Y[b, j, p] = act(Σ_c X[b, c, p] · W[j, c] + bias[j] +
//! R[b, j, p])`, each output one multiply-add chain over `c` in order from
//! zero, the bias added after it (the MatMul engine's per-column addend,
//! not the conv engine's bias-first chain: the bits differ from the conv
//! engine's, within the op battery's tolerances). Without a residual the
//! activation runs in the product's store and the pass only transposes;
//! with one it runs in the pass, after the residual. Threads split the
//! pixels; each task transposes the rows it computed.

use cranelift_codegen::ir::{types, InstBuilder, Type, Value};

use super::conv_geo::Geo;
use super::epilogue::{apply_act, Act, Epilogue};
use super::matmul::{by_weights, AView, ByWeights};
use super::{Kernel, LResult};

/// Largest plane taken: beyond it the pixel lanes fill well enough
/// (14×14 = 196 pixels fill 13 16-lane vectors to 94%).
const MAX_PIXELS: usize = 64;

/// Largest product `[hw, m]` (bytes of scratch, per image) a block-sparse
/// conv takes: a 56×56 plane of 256 channels. Larger planes stay on the
/// conv engine, dense: the scratch is arena memory the device must hold.
const MAX_SPARSE_SCRATCH: usize = 4 << 20;

/// A one-group, unpadded, unit-stride 1x1 conv, on SIMD targets.
fn pointwise(g: &Geo, caps: &crate::isa::Caps) -> bool {
    caps.simd
        && g.group == 1
        && (g.kh, g.kw, g.sh, g.sw, g.ph, g.pw) == (1, 1, 1, 1, 0, 0)
        && (g.oh, g.ow) == (g.h, g.w)
}

/// Whether the conv runs here for its plane: a [`pointwise`] conv on a
/// plane of 2..=[`MAX_PIXELS`] pixels that 16-lane vectors would fill
/// badly, whole 16-channel vectors of output channels. The choice does
/// not depend on the assembled tiles, so a model gives the same bits with
/// micro-kernels on and off (the MatMul engine's contract).
pub(super) fn fits(g: &Geo, caps: &crate::isa::Caps) -> bool {
    let hw = g.oh * g.ow;
    pointwise(g, caps)
        && (2..=MAX_PIXELS).contains(&hw)
        && !hw.is_multiple_of(16)
        && g.oc >= 16
        && g.oc.is_multiple_of(16)
}

/// Fewest kept input channels a block-sparse conv takes: below them the
/// transposing pass costs more than the skipped steps save (56x56, 2:4/16,
/// Zen 4: 16 → 96 channels, 8 kept, 0.097 ms dense against 0.104; 24 →
/// 144, 12 kept, 0.207 / 0.188; 32 → 96, 16 kept, 0.183 / 0.144;
/// MobileNetV2's 16 → 96 on 112x112 0.43 → 0.87 ms).
const MIN_SPARSE_STEPS: usize = 12;

/// Whether the conv (epilogue `epi`) runs here for its weights `w`
/// (`[oc, c]`): a [`pointwise`] conv of at least 16 output channels, whole
/// quads of them (the transposing pass's 4×4 blocks), whose blocks of 16
/// skip the same input channels and keep at least [`MIN_SPARSE_STEPS`]
/// ([`super::matmul::block_sparse_steps`]), with a store the assembled
/// tiles apply ([`super::matmul::block_sparse_store`]: else AVX2 targets
/// would run the product dense, plus the pass), on a plane whose product
/// fits [`MAX_SPARSE_SCRATCH`]. A question of the op and its weights
/// alone, so the same route with the tiles on and off.
pub(super) fn fits_block_sparse(g: &Geo, caps: &crate::isa::Caps, w: &[f32], epi: &Epilogue) -> bool {
    pointwise(g, caps)
        && g.h * g.w >= 2
        && g.oc >= 16
        && g.oc.is_multiple_of(4)
        && g.h * g.w * g.oc * 4 <= MAX_SPARSE_SCRATCH
        && super::matmul::block_sparse_store(acts(epi).0)
        && super::matmul::block_sparse_steps(w, (g.c, g.oc), (1, g.c)).is_some_and(|s| s >= MIN_SPARSE_STEPS)
}

/// Where `epi`'s activation runs: in the product's store without a
/// residual, else in the transposing pass after it (the first, the
/// second).
fn acts(epi: &Epilogue) -> (Act, Act) {
    match epi.residual {
        Some(_) => (Act::None, epi.act),
        None => (epi.act, Act::None),
    }
}

/// Emits the conv (constant weights `w` `[oc, c]`, bias `b`), epilogue
/// `epi` applied.
pub(super) fn conv(k: &mut Kernel, g: &Geo, w: &[f32], b: &[f32], epi: Epilogue) -> LResult {
    let hw = g.h * g.w;
    let (c, m) = (g.c, g.oc);
    let x = k.input(0);
    let y = k.output(0);
    let s = k.scratch(hw * m * 4);
    let bias = b.iter().any(|&v| v != 0.0).then_some(b);
    let (in_store, post) = acts(&epi);
    let p = ByWeights {
        mm: hw,
        kk: c,
        n: m,
        w,
        bias,
        act: in_store,
        batches: g.n,
        a: AView { ptr: x, sm: 1, sk: hw, ro: false },
        a_batch: c * hw,
    };
    by_weights(k, &p, s, &mut |k, bi, lo, hi| {
        let base = k.b.ins().imul_imm_s(bi, (m * hw) as i64);
        let t = Transpose { s, y: k.addr(y, base, 4), r: epi.residual.map(|r| k.addr(r, base, 4)), act: post, hw, m };
        t.emit(k, lo, hi);
    })
}

/// The pass `Y[j, p] = act(S[p, j] + R[j, p])` over the pixels `lo..hi`
/// of one image (`S` `[hw, m]`, `Y` and `R` `[m, hw]`).
struct Transpose {
    s: Value,
    y: Value,
    r: Option<Value>,
    act: Act,
    hw: usize,
    m: usize,
}

impl Transpose {
    /// 4×4 blocks (4 pixels × 4 channels, transposed in registers) over
    /// the whole quads of pixels, one lane at a time over the rest (a task's
    /// `lo` is a multiple of 4, so only the last task has any).
    fn emit(&self, k: &mut Kernel, lo: Value, hi: Value) {
        let span = k.b.ins().isub(hi, lo);
        let quads = k.b.ins().band_imm_s(span, -4);
        let mid = k.b.ins().iadd(lo, quads);
        let m = self.m;
        k.for_n(0, m as i64, 4, |k, j| {
            k.for_dyn(lo, mid, 4, |k, px| {
                let sp = self.s_at(k, px, j);
                let rows: [Value; 4] = std::array::from_fn(|r| k.ld(types::F32X4, sp, (r * m * 4) as i32));
                let cols = k.transpose4(rows);
                for (q, v) in cols.into_iter().enumerate() {
                    self.finish(k, types::F32X4, v, j, q, px);
                }
            });
            k.for_dyn(mid, hi, 1, |k, px| {
                let sp = self.s_at(k, px, j);
                for q in 0..4 {
                    let v = k.ld(types::F32, sp, (q * 4) as i32);
                    self.finish(k, types::F32, v, j, q, px);
                }
            });
        });
    }

    /// Address of `S[px, j]`.
    fn s_at(&self, k: &mut Kernel, px: Value, j: Value) -> Value {
        let row = k.addr(self.s, px, (self.m * 4) as i64);
        k.addr(row, j, 4)
    }

    /// Stores `act(v + R[j + q, px..])` at `Y[j + q, px..]` (`ty`: a vector
    /// of 4 pixels or one).
    fn finish(&self, k: &mut Kernel, ty: Type, v: Value, j: Value, q: usize, px: Value) {
        let ch = k.b.ins().iadd_imm_s(j, q as i64);
        let e = k.b.ins().imul_imm_s(ch, self.hw as i64);
        let e = k.b.ins().iadd(e, px);
        let mut v = v;
        if let Some(r) = self.r {
            let x = k.ld_at(ty, r, e, 4, 0);
            v = k.b.ins().fadd(v, x);
        }
        let v = apply_act(k, ty, self.act, v);
        let yp = k.addr(self.y, e, 4);
        k.st(v, yp, 0);
    }
}
