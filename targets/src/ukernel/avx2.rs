//! AVX2 + FMA micro-kernels (256-bit `ymm`, 16 registers).
//!
//! [`gemm_tile`]: the GEMM engine's micro-tile (`lower::gemm`): rows of a
//! packed A block × pairs of 4-pixel B panels, each pair joined into one
//! `ymm` of 8 pixels (12 accumulators: 6 rows × 2 pairs, or 12 rows × 1
//! pair). Per K step, 6 × 2 issues 12 FMAs against 4 + 6 loads (bound by
//! the two FMA ports); 12 × 1 issues 12 FMAs against 2 + 12 loads (FMA-
//! bound with three load ports, at ~85% with two). The two `vinsertf128`
//! per step that join panels go to the shuffle port.

use iced_x86::code_asm::*;

/// A GEMM micro-tile variant: everything but the pointers and the K count
/// is fixed at assembly time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmTile {
    /// Rows of the tile, 1..=[`max_rows`]`(pairs)`.
    pub rows: usize,
    /// Pairs of B panels (8 pixels each), 1 or 2.
    pub pairs: usize,
    /// Bytes between consecutive K steps of A (4 × the A block's height).
    pub a_step: usize,
    /// Bytes between consecutive B panels (4 × K × 4 lanes).
    pub panel: usize,
    /// Bytes between output rows.
    pub ldo: usize,
    /// Start from the bias (else from the partial sums in the output).
    pub first: bool,
    /// Add the residual tensor before the clamp.
    pub residual: bool,
    /// `y = hi < max(lo, x) ? hi : max(lo, x)` per [`Clamp`], or nothing.
    pub clamp: Option<Clamp>,
}

/// The vector Relu/Clip of `lower::epilogue` as compare-selects: `lo`
/// (`x < lo ? lo : x`, then `+ 0.0` when `lo` is zero, so `-0` becomes
/// `+0`) and an optional `hi` (`hi < y ? hi : y`). `vmaxps a, lo, x` and
/// `vminps a, hi, y` are exactly these selects, NaN passing through.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clamp {
    pub lo: f32,
    pub hi: Option<f32>,
}

/// Most rows of a tile of `pairs` panel pairs: 12 accumulators of the 16
/// `ymm` (the others hold the B vectors and the broadcast).
pub fn max_rows(pairs: usize) -> usize {
    12 / pairs.clamp(1, 2)
}

/// Machine code of `t` with the arguments (System V order) `a` (the A
/// block at the tile's first row and K step), `b` (the first of the
/// `2·pairs` panels at that K step), `out` (the output element of the first row and
/// pixel), `bias` (the first row's bias; read when `first`), `residual`
/// (at the same element as `out`; read when `residual`) and `k` (K steps,
/// ≥ 0).
pub fn gemm_tile(t: &GemmTile) -> Result<Vec<u8>, IcedError> {
    let regs = [ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7, ymm8, ymm9, ymm10, ymm11, ymm12, ymm13, ymm14, ymm15];
    let pairs = t.pairs.clamp(1, 2);
    let acc = |r: usize, j: usize| regs[pairs * r + j];
    let bvecs = [(ymm12, xmm12), (ymm13, xmm13)];
    let (av, tmp) = (ymm14, ymm15);
    let (a_p, b_p, out_p, bias_p, res_p, n) = (rdi, rsi, rdx, rcx, r8, r9);
    let rows = t.rows.clamp(1, max_rows(pairs));
    let (ldo, panel) = (t.ldo as i64, t.panel as i64);
    let mut a = CodeAssembler::new(64)?;
    // accumulators: the bias, or the partial sums of an earlier pass
    for r in 0..rows {
        if t.first {
            a.vbroadcastss(acc(r, 0), dword_ptr(bias_p + (4 * r) as i64))?;
            for j in 1..pairs {
                a.vmovaps(acc(r, j), acc(r, 0))?;
            }
        } else {
            for j in 0..pairs {
                a.vmovups(acc(r, j), ymmword_ptr(out_p + (r as i64 * ldo + 32 * j as i64)))?;
            }
        }
    }
    let mut done = a.create_label();
    let mut top = a.create_label();
    a.test(n, n)?;
    a.jz(done)?;
    a.set_label(&mut top)?;
    for (j, &(bvec, bxmm)) in bvecs.iter().enumerate().take(pairs) {
        a.vmovups(bxmm, xmmword_ptr(b_p + 2 * j as i64 * panel))?;
        a.vinsertf128(bvec, bvec, xmmword_ptr(b_p + (2 * j as i64 + 1) * panel), 1)?;
    }
    for r in 0..rows {
        a.vbroadcastss(av, dword_ptr(a_p + (4 * r) as i64))?;
        for (j, &(bvec, _)) in bvecs.iter().enumerate().take(pairs) {
            a.vfmadd231ps(acc(r, j), bvec, av)?;
        }
    }
    a.add(b_p, 16)?;
    a.add(a_p, t.a_step as i32)?;
    a.dec(n)?;
    a.jnz(top)?;
    a.set_label(&mut done)?;
    // epilogue: residual, clamp, store
    if t.residual {
        for r in 0..rows {
            for j in 0..pairs {
                a.vaddps(acc(r, j), acc(r, j), ymmword_ptr(res_p + (r as i64 * ldo + 32 * j as i64)))?;
            }
        }
    }
    if let Some(c) = t.clamp {
        splat(&mut a, av, c.lo)?;
        a.vxorps(tmp, tmp, tmp)?;
        for r in 0..rows {
            for j in 0..pairs {
                a.vmaxps(acc(r, j), av, acc(r, j))?;
                if c.lo == 0.0 {
                    a.vaddps(acc(r, j), acc(r, j), tmp)?;
                }
            }
        }
        if let Some(hi) = c.hi {
            splat(&mut a, av, hi)?;
            for r in 0..rows {
                for j in 0..pairs {
                    a.vminps(acc(r, j), av, acc(r, j))?;
                }
            }
        }
    }
    for r in 0..rows {
        for j in 0..pairs {
            a.vmovups(ymmword_ptr(out_p + (r as i64 * ldo + 32 * j as i64)), acc(r, j))?;
        }
    }
    a.vzeroupper()?;
    a.ret()?;
    a.assemble(0)
}

/// `dst = [v; 8]` through `eax` and `xmm15`.
fn splat(a: &mut CodeAssembler, dst: AsmRegisterYmm, v: f32) -> Result<(), IcedError> {
    a.mov(eax, v.to_bits())?;
    a.vmovd(xmm15, eax)?;
    a.vbroadcastss(dst, xmm15)
}
