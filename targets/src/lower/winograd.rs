//! Winograd convolution F(m×m, 3×3) for 2-D 3×3 stride-1 convs with one
//! group (`Conv.algo = Winograd { tile: m }`, m ∈ {2, 4}; chosen per layer
//! by the `winograd` rule group and the cost model).
//!
//! With `n = m + 2`, each m×m output tile is `Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A`
//! for the n×n input tile `d` it reads, summed over input channels. The
//! sum over channels of the element-wise product is, for each of the n²
//! positions ξ, a matrix product `M[ξ] (K×T) = U[ξ] (K×C) · V[ξ] (C×T)` over
//! tiles T, so the kernel is
//!
//! 1. the weight transform `U = G g Gᵀ`, done at compile time (f64, rounded
//!    once to f32) into a blob holding, per ξ, `U[ξ]` (K×C) packed as the A
//!    operand of the conv GEMM engine ([`super::gemm`]: row blocks of 12
//!    output channels stored `[c][12]`, so a k step's broadcasts come from
//!    one cache line);
//! 2. per block of tiles (sized so V and a chunk of M stay within the
//!    target's L2, [`crate::isa::CacheParams`]), the
//!    input transform `V = Bᵀ d B`, vectorised over `L` tiles (one lane per
//!    tile, `L` = 4 with SIMD, 1 without), written straight into the GEMM's
//!    B panel layout `V[ξ][tile/L][c][L]`;
//! 3. n² GEMMs `M[ξ] = U[ξ] · V[ξ]`;
//! 4. the output transform `Y = Aᵀ M A` plus the bias, then the fused
//!    epilogue (residual add, activation: `ConvFused`), again over `L`
//!    tiles, stored to the NCHW output; tiles crossing the right or bottom
//!    edge redirect their out-of-range stores to a dummy slot.
//!
//! The transforms move values a lane at a time, except for quads of four
//! consecutive tiles of one tile row, which move whole vectors
//! (`quads`: transposes of vector loads, vector stores).
//!
//! Steps 3-4 run per chunk of at most [`MC`](plan::MC) output channels. Threads split
//! the blocks and, when there are fewer blocks than
//! [`super::gemm::SPLIT_UNITS`], the output channels too (GEMM row blocks).
//!
//! The input is first copied into a zero-padded scratch image covering every
//! tile, so the input transform needs no bounds checks.
//!
//! Code map: this file holds the transforms (construction, weight
//! transform, the constant-coefficient `sandwich`) and [`conv`], which
//! reads like the list above; `plan` decides the numbers (blocks, buffer
//! strides, task split) before any code is emitted; `block` emits what one
//! task runs for one block (strip, steps 2–4); `quads` the whole-vector
//! moves of four tiles of one row.
//!
//! Transform matrices come from the Toom-Cook construction on the points
//! [`points`] (plus ∞): `Aᵀ` and `G` in closed form, `Bᵀ` solved exactly
//! from the defining identity. F(4×4, 3×3) uses 0, ±1, ±1/2 (powers of two
//! in `Aᵀ`). Measured f32 error relative to max|ref| on a 256-channel layer
//! (`f32_error_of_each_variant`): F(2×2) 6.4e-7, F(4×4) 9.3e-6 (the classic
//! ±2 points: 9.8e-6), an order of magnitude inside the codegen tolerance
//! 1e-4; on resnet18 end to end, max|kerf − ORT| is 1.4e-5 direct, 1.5e-5
//! with Winograd (max|ref| 17).

use cranelift_codegen::ir::{InstBuilder, Type, Value};
use kerf_ir::op::{Conv, ConvAlgo};

use super::epilogue::Epilogue;
use super::gemm::{pack_a, MR};
use super::{Kernel, LResult};

mod block;
mod plan;
mod quads;
use plan::Plan;

/// The interpolation points (besides ∞) of F(m×m, 3×3).
pub fn points(m: usize) -> &'static [f64] {
    match m {
        2 => &[0.0, 1.0, -1.0],
        _ => &[0.0, 1.0, -1.0, 0.5, -0.5],
    }
}

/// Transform matrices of F(m, 3) in row-major f64: `at` is m×n, `g` is n×3,
/// `bt` is n×n (n = m + 2).
#[derive(Clone, Debug)]
pub struct Transform {
    /// Output tile size.
    pub m: usize,
    /// Input tile size, `m + 2`.
    pub n: usize,
    /// Output transform `Aᵀ`, m×n.
    pub at: Vec<f64>,
    /// Filter transform `G`, n×3.
    pub g: Vec<f64>,
    /// Input transform `Bᵀ`, n×n.
    pub bt: Vec<f64>,
}

/// Builds F(m, 3) from m + 1 finite points and ∞ (Toom-Cook). `Aᵀ[i][j] =
/// a_jⁱ`, `G[j][k] = a_jᵏ / Π_{l≠j}(a_j − a_l)`; the ∞ column/row pick the
/// leading coefficients. `Bᵀ` is the unique solution of the identity
/// `Σ_j Aᵀ[i][j] G[j][k] Bᵀ[j][l] = [l = i + k]` (for all i < m, k < 3),
/// solved column by column (normal equations, Gaussian elimination with
/// partial pivoting). Returns `None` if the points are not distinct or the
/// identity does not hold to 1e-9 (which a unit test rules out).
pub fn transform(m: usize, pts: &[f64]) -> Option<Transform> {
    let n = m + 2;
    if pts.len() != n - 1 {
        return None;
    }
    let mut at = vec![0.0; m * n];
    for i in 0..m {
        for (j, &a) in pts.iter().enumerate() {
            at[i * n + j] = a.powi(i as i32);
        }
        at[i * n + n - 1] = if i == m - 1 { 1.0 } else { 0.0 };
    }
    let mut g = vec![0.0; n * 3];
    for (j, &a) in pts.iter().enumerate() {
        let f: f64 = pts.iter().enumerate().filter(|&(l, _)| l != j).map(|(_, &b)| a - b).product();
        if f == 0.0 {
            return None;
        }
        for k in 0..3 {
            g[j * 3 + k] = a.powi(k as i32) / f;
        }
    }
    g[(n - 1) * 3 + 2] = 1.0;
    // rows (i, k) of the system, columns j: Aᵀ[i][j] G[j][k]
    let rows: Vec<Vec<f64>> = (0..m)
        .flat_map(|i| (0..3).map(move |k| (i, k)))
        .map(|(i, k)| (0..n).map(|j| at[i * n + j] * g[j * 3 + k]).collect())
        .collect();
    let mut bt = vec![0.0; n * n];
    for l in 0..n {
        let rhs: Vec<f64> = (0..m).flat_map(|i| (0..3).map(move |k| f64::from(u8::from(l == i + k)))).collect();
        // normal equations: (RᵀR) x = Rᵀ rhs
        let mut a = vec![vec![0.0; n + 1]; n];
        for p in 0..n {
            for q in 0..n {
                a[p][q] = rows.iter().map(|r| r[p] * r[q]).sum();
            }
            a[p][n] = rows.iter().zip(&rhs).map(|(r, y)| r[p] * y).sum();
        }
        let x = solve(a)?;
        for (j, v) in x.into_iter().enumerate() {
            bt[j * n + l] = v;
        }
    }
    // exact identity check, then snap the solve's rounding noise
    for v in &mut bt {
        let r = (*v * 4096.0).round() / 4096.0;
        if (r - *v).abs() < 1e-9 {
            *v = r;
        }
    }
    for i in 0..m {
        for k in 0..3 {
            for l in 0..n {
                let s: f64 = (0..n).map(|j| at[i * n + j] * g[j * 3 + k] * bt[j * n + l]).sum();
                let want = f64::from(u8::from(l == i + k));
                if (s - want).abs() > 1e-9 {
                    return None;
                }
            }
        }
    }
    Some(Transform { m, n, at, g, bt })
}

/// Solves an augmented n×(n+1) system; `None` if singular.
fn solve(mut a: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let n = a.len();
    for c in 0..n {
        let p = (c..n).max_by(|&x, &y| a[x][c].abs().total_cmp(&a[y][c].abs()))?;
        if a[p][c].abs() < 1e-12 {
            return None;
        }
        a.swap(c, p);
        let pivot = a[c].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != c {
                let f = row[c] / pivot[c];
                for (x, p) in row.iter_mut().zip(&pivot).skip(c) {
                    *x -= f * p;
                }
            }
        }
    }
    Some((0..n).map(|r| a[r][n] / a[r][r]).collect())
}

/// The transform for F(m×m, 3×3), `m` ∈ {2, 4}.
pub fn transform_for(m: usize) -> LResult<Transform> {
    if m != 2 && m != 4 {
        return Err(format!("Winograd tile {m} is not supported (2 and 4 are)"));
    }
    transform(m, points(m)).ok_or_else(|| format!("Winograd F({m},3): transform construction failed"))
}

/// `U[ξ = a*n + b][k][c] = Σ_{i,j} G[a][i] w[k][c][i][j] G[b][j]` (f64, then f32).
pub fn weight_transform(t: &Transform, w: &[f32], kout: usize, cin: usize) -> Vec<f32> {
    let n = t.n;
    let mut u = vec![0f32; n * n * kout * cin];
    for ko in 0..kout {
        for ci in 0..cin {
            let g = &w[(ko * cin + ci) * 9..][..9];
            // tmp = G g (n×3)
            let mut tmp = vec![0f64; n * 3];
            for a in 0..n {
                for j in 0..3 {
                    tmp[a * 3 + j] = (0..3).map(|i| t.g[a * 3 + i] * f64::from(g[i * 3 + j])).sum();
                }
            }
            for a in 0..n {
                for b in 0..n {
                    let v: f64 = (0..3).map(|j| tmp[a * 3 + j] * t.g[b * 3 + j]).sum();
                    u[((a * n + b) * kout + ko) * cin + ci] = v as f32;
                }
            }
        }
    }
    u
}

/// `out[r] = Σ_c coef[r*cols + c] · xs[c]` with constant coefficients:
/// zeros skipped, ±1 as add/subtract, others as multiply-add.
fn combine(k: &mut Kernel, ty: Type, coef: &[f64], rows: usize, cols: usize, xs: &[Value]) -> Vec<Value> {
    (0..rows)
        .map(|r| {
            let mut acc: Option<Value> = None;
            for (c, &x) in xs.iter().enumerate().take(cols) {
                let w = coef[r * cols + c] as f32;
                if w == 0.0 {
                    continue;
                }
                acc = Some(match (acc, w) {
                    (None, 1.0) => x,
                    (None, -1.0) => k.b.ins().fneg(x),
                    (None, _) => {
                        let s = k.fsplat(ty, w);
                        k.b.ins().fmul(x, s)
                    }
                    (Some(a), 1.0) => k.b.ins().fadd(a, x),
                    (Some(a), -1.0) => k.b.ins().fsub(a, x),
                    (Some(a), _) => {
                        let s = k.fsplat(ty, w);
                        k.fmadd(x, s, a)
                    }
                });
            }
            acc.unwrap_or_else(|| k.fsplat(ty, 0.0))
        })
        .collect()
}

/// `Y = P X Pᵀ` for an `n`×`n` block `X` (row-major values) and a `p`×`n`
/// coefficient matrix `P`: columns first, then rows. Returns p×p values.
fn sandwich(k: &mut Kernel, ty: Type, p_mat: &[f64], p: usize, n: usize, x: &[Value]) -> Vec<Value> {
    // tmp[a][j] = Σ_i P[a][i] X[i][j]
    let mut tmp = vec![x[0]; p * n];
    for j in 0..n {
        let col: Vec<Value> = (0..n).map(|i| x[i * n + j]).collect();
        for (a, v) in combine(k, ty, p_mat, p, n, &col).into_iter().enumerate() {
            tmp[a * n + j] = v;
        }
    }
    // Y[a][b] = Σ_j tmp[a][j] P[b][j]
    let mut y = Vec::with_capacity(p * p);
    for a in 0..p {
        y.extend(combine(k, ty, p_mat, p, n, &tmp[a * n..(a + 1) * n]));
    }
    y
}

/// Lowers a Winograd conv (`Conv.algo = Winograd { tile }`) with its fused
/// epilogue `epi` (applied after the output transform and the bias, before
/// the store): the plan ([`plan::Plan`]), the weights transformed and
/// packed at compile time, then per unit of the task split one block's
/// code ([`block::emit`]).
pub fn conv(k: &mut Kernel, cv: &Conv, epi: Epilogue) -> LResult {
    k.require_f32()?;
    let ConvAlgo::Winograd { tile } = cv.algo else { return Err("not a Winograd conv".into()) };
    if !cv.winograd_eligible() {
        return Err("Winograd needs a 2-D 3x3 stride-1 dilation-1 conv with one group".into());
    }
    let t = transform_for(usize::from(tile))?;
    let w = k.const_f32(1).ok_or("Winograd needs constant weights")?;
    let Some(p) = Plan::new(k, cv, t.m) else { return Ok(()) };
    let u = weight_transform(&t, &w, p.kout, p.cin);
    let packed: Vec<f32> = u.chunks(p.kout * p.cin).flat_map(|ux| pack_a(ux, p.kout, p.cin, p.cin)).collect();
    let u = k.blob_f32(&packed);
    // the GEMM engine starts from a per-row bias; the bias is added after
    // the output transform instead (Aᵀ has no constant row sum to fold it)
    let zeros = k.blob_f32(&vec![0.0; p.kout]);
    let bias = match k.node.inputs.len() {
        3.. => match k.const_f32(2) {
            Some(b) => Some(k.blob_f32(&b)),
            None => Some(k.input(2)),
        },
        _ => None,
    };
    let (x, out) = (k.input(0), k.output(0));
    let (lo, hi) = k.parallel_range_capped(p.units(), 1, p.unit_cost, p.max_tasks)?;
    // (16 bytes of slack: the quad loads read past the last window)
    let strip = k.task_scratch(p.strip * 4 + 16);
    let v = k.task_scratch(p.nn * p.vstride);
    let m = k.task_scratch(p.nn * p.mstride);
    let dummy = if p.edge { Some(k.task_scratch(16)) } else { None };
    let bufs = block::Bufs { x, out, u, zeros, bias, strip, v, m, dummy };
    let code = block::Code { p: &p, t: &t, b: &bufs, epi };
    let (b_lo, b_hi) = if p.chan_split { super::conv_packed::unit_items(k, lo, hi, p.rbu) } else { (lo, hi) };
    k.for_dyn(b_lo, b_hi, 1, |k, bi| {
        let channels = if p.chan_split {
            super::conv_packed::unit_rows(k, bi, lo, hi, p.rbu, MR, p.kout)
        } else {
            (k.ic(0), k.ic(p.kout as i64))
        };
        block::emit(k, &code, bi, channels);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1-D check of the identity on random data: y = Aᵀ[(G g) ⊙ (Bᵀ d)].
    fn check_1d(t: &Transform) {
        let (m, n) = (t.m, t.n);
        let g = [0.3, -1.2, 0.7];
        let d: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
        let gg: Vec<f64> = (0..n).map(|a| (0..3).map(|i| t.g[a * 3 + i] * g[i]).sum()).collect();
        let bd: Vec<f64> = (0..n).map(|a| (0..n).map(|i| t.bt[a * n + i] * d[i]).sum()).collect();
        for i in 0..m {
            let y: f64 = (0..n).map(|a| t.at[i * n + a] * gg[a] * bd[a]).sum();
            let want: f64 = (0..3).map(|k| g[k] * d[i + k]).sum();
            assert!((y - want).abs() < 1e-12, "F({m},3) output {i}: {y} vs {want}");
        }
    }

    /// f32 model of the kernel's arithmetic on one conv (1 image, no pad):
    /// U rounded once from f64, V = Bᵀ d B and Y = Aᵀ M A in f32 with the
    /// coefficients rounded to f32, M summed over channels with FMAs.
    /// Returns max|y − ref| / max|ref| against an f64 direct conv.
    fn rel_error(t: &Transform, c: usize, k: usize, hw: usize, seed: u64) -> f64 {
        let mut s = seed;
        let mut rnd = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f64 / (1u64 << 24) as f64) * 2.0 - 1.0
        };
        // ReLU-like activations in [0, 1), Kaiming-scaled weights
        let x: Vec<f32> = (0..c * hw * hw).map(|_| (rnd() * 0.5 + 0.5) as f32).collect();
        let wscale = (2.0 / (9.0 * c as f64)).sqrt() * 1.7;
        let w: Vec<f32> = (0..k * c * 9).map(|_| (rnd() * wscale) as f32).collect();
        let (m, n) = (t.m, t.n);
        let o = hw - 2;
        let tiles = o / m;
        let u = weight_transform(t, &w, k, c);
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let (bt, at) = (f(&t.bt), f(&t.at));
        let mut err: f64 = 0.0;
        let mut max_ref: f64 = 0.0;
        for ty in 0..tiles {
            for tx in 0..tiles {
                // V[ξ][c]
                let mut v = vec![0f32; n * n * c];
                for ci in 0..c {
                    let d = |i: usize, j: usize| x[(ci * hw + ty * m + i) * hw + tx * m + j];
                    let mut tmp = vec![0f32; n * n];
                    for a in 0..n {
                        for j in 0..n {
                            tmp[a * n + j] = (0..n).fold(0f32, |acc, i| bt[a * n + i].mul_add(d(i, j), acc));
                        }
                    }
                    for a in 0..n {
                        for b in 0..n {
                            v[(a * n + b) * c + ci] =
                                (0..n).fold(0f32, |acc, j| bt[b * n + j].mul_add(tmp[a * n + j], acc));
                        }
                    }
                }
                for ko in 0..k {
                    let mm: Vec<f32> = (0..n * n)
                        .map(|xi| (0..c).fold(0f32, |acc, ci| u[(xi * k + ko) * c + ci].mul_add(v[xi * c + ci], acc)))
                        .collect();
                    for r in 0..m {
                        for q in 0..m {
                            let mut tmp = vec![0f32; n];
                            for (b, tb) in tmp.iter_mut().enumerate() {
                                *tb = (0..n).fold(0f32, |acc, a| at[r * n + a].mul_add(mm[a * n + b], acc));
                            }
                            let y = (0..n).fold(0f32, |acc, b| at[q * n + b].mul_add(tmp[b], acc));
                            let (oy, ox) = (ty * m + r, tx * m + q);
                            let mut want = 0f64;
                            for ci in 0..c {
                                for i in 0..3 {
                                    for j in 0..3 {
                                        want += f64::from(w[((ko * c + ci) * 3 + i) * 3 + j])
                                            * f64::from(x[(ci * hw + oy + i) * hw + ox + j]);
                                    }
                                }
                            }
                            err = err.max((f64::from(y) - want).abs());
                            max_ref = max_ref.max(want.abs());
                        }
                    }
                }
            }
        }
        err / max_ref
    }

    /// The error of each variant on a resnet-like layer (256 channels, 4
    /// seeds), relative to max|ref|: all must stay well inside the codegen
    /// tolerance 1e-4. Measured: F(2,3) 6.4e-7, F(4,3) on 0, ±1, ±1/2
    /// 9.3e-6, on 0, ±1, ±2 9.8e-6 (run with --nocapture to print).
    #[test]
    fn f32_error_of_each_variant() {
        let two = transform(4, &[0.0, 1.0, -1.0, 2.0, -2.0]).unwrap();
        let (mut f2, mut f4_half, mut f4_two) = (0f64, 0f64, 0f64);
        for seed in 1..=4 {
            f2 = f2.max(rel_error(&transform_for(2).unwrap(), 256, 8, 14, seed));
            f4_half = f4_half.max(rel_error(&transform_for(4).unwrap(), 256, 8, 14, seed));
            f4_two = f4_two.max(rel_error(&two, 256, 8, 14, seed));
        }
        eprintln!("relative max error: F(2,3) {f2:.2e}, F(4,3) on ±1/2 {f4_half:.2e}, F(4,3) on ±2 {f4_two:.2e}");
        assert!(f2 < 3e-6 && f4_half < 3e-5 && f4_two < 3e-5, "{f2} {f4_half} {f4_two}");
    }

    #[test]
    fn transforms_satisfy_the_identity() {
        for m in [2, 4] {
            let t = transform_for(m).unwrap();
            check_1d(&t);
        }
        // the classic integer points for F(4,3) work too
        check_1d(&transform(4, &[0.0, 1.0, -1.0, 2.0, -2.0]).unwrap());
        // F(2,3) on 0, ±1 gives the textbook Bᵀ up to row signs
        let t = transform_for(2).unwrap();
        for v in &t.bt {
            assert!([0.0, 1.0, -1.0].contains(v), "{:?}", t.bt);
        }
        assert!(transform(4, &[0.0, 1.0, 1.0, 2.0, -2.0]).is_none());
    }
}
