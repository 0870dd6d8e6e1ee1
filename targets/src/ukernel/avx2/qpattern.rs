//! The integer pattern conv's register tile ([`qpattern_tile`]), run by
//! `lower::qconv_pattern`.

use iced_x86::code_asm::*;

use super::{activation, load_lanes, store_lanes, EntryKind, TileEpi};

/// A register tile of the integer pattern conv
/// ([`crate::lower::qconv_pattern`]): `rows` output rows × `vecs` 8-pixel
/// vectors of one output channel's i32 sums held in `ymm` accumulators (at
/// most [`QPatternTile::MAX_ACCS`]) while every kept tap of one channel
/// block adds into them.
///
/// The input is a *quad image*: four consecutive input channels
/// interleaved, 4 bytes per pixel (`[quad][row][column][4]` u8), so eight
/// pixels of a quad are one 32-byte load and a tap's four weights one
/// broadcast dword. Per tap and vector: `vpmaddubsw` (u8 × s8 products of
/// channel pairs into saturating i16: exact for weights
/// [`kerf_ir::channel_pairs_exact`] accepts), `vpmaddwd` by ones (the two
/// pairs into the i32 lane) and `vpaddd`: four multiply-adds per lane.
///
/// The program has the pattern tile's form
/// ([`super::PatternTile`]): per kind an `i64` count, then per entry each
/// tap's byte offset (`u32`; a column entry reads its first only) and its
/// weight quad (`4 × i8`). A column entry's input rows are loaded once for
/// all of its taps (PatDNN's load redundancy elimination); a whole-kernel
/// entry (stride 2, on a phase-split quad image) loads each tap's rows.
#[derive(Clone, Debug, PartialEq)]
pub struct QPatternTile {
    /// The kinds of entry, in program order.
    pub kinds: Vec<EntryKind>,
    /// Output rows of the tile.
    pub rows: usize,
    /// 8-pixel vectors per row.
    pub vecs: usize,
    /// Pixels stored from each row's last vector (1..=8).
    pub last_lanes: usize,
    /// Bytes between output rows (f32 outputs and i32 partial sums alike).
    pub out_row: usize,
    /// Bytes between quad-image rows.
    pub in_row: usize,
    /// Start from the partial sums in the output (a later block of input
    /// channels) instead of zero.
    pub accumulate: bool,
    /// The f32 epilogue of the last channel block; `None` stores the i32
    /// sums for the next block. The epilogue is `QConv`'s
    /// (`lower::qconv`'s byte tiles' `int_store`): per output
    /// `f32(acc − corr) · scale + bias (+ residual)`, then the clamp or
    /// HardSwish, `corr`, `scale` and `bias` from the channel's 12-byte
    /// table row (i32, f32, f32). `TileEpi::scale` and `addend` are unused.
    pub finish: Option<TileEpi>,
}

impl QPatternTile {
    /// Most accumulators: the other six registers hold up to three
    /// broadcast weight quads, an input vector, a product and the ones.
    pub const MAX_ACCS: usize = 10;

    /// Most taps of a column entry.
    pub const MAX_TAPS: usize = 3;

    /// Whether the tile fits the registers and its shape is well formed.
    pub fn fits(&self) -> bool {
        let accs = self.rows * self.vecs;
        let kind_ok = |k: &EntryKind| match k {
            EntryKind::Column(r) => {
                (1..=Self::MAX_TAPS).contains(&r.len()) && r[0] == 0 && r.windows(2).all(|w| w[0] < w[1])
            }
            EntryKind::Kernel(n) => *n > 0,
        };
        let epi_ok = self.finish.is_none_or(|e| e.scale.is_none() && e.addend.is_none());
        (1..=Self::MAX_ACCS).contains(&accs)
            && (1..=8).contains(&self.last_lanes)
            && self.kinds.iter().all(kind_ok)
            && epi_ok
    }

    /// Bytes of one entry of `taps` taps.
    pub fn entry_bytes(taps: usize) -> usize {
        8 * taps
    }
}

/// Machine code of `t` with the arguments (System V order) `out` (the
/// tile's first output pixel), `src` (the quad image's origin for that
/// pixel, quad 0), `prog` (the output channel's program), `table` (its
/// epilogue row) and `residual` (the residual at `out`'s pixel). Per pixel
/// it computes `acc = 0` (or the partial sums, `accumulate`)`; for kind,
/// for entry, for tap: acc += Σ x·w` over the quad, then stores the sums
/// or the `finish` epilogue's f32 values.
pub fn qpattern_tile(t: &QPatternTile) -> Result<Vec<u8>, IcedError> {
    let accs = [ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7, ymm8, ymm9];
    let lows = [xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9];
    let (out_p, prog, table, res_p, n) = (rdi, rdx, rcx, r11, r8);
    let ones = ymm15;
    let mut a = CodeAssembler::new(64)?;
    // the residual arrives in r8, the kind loops' counter
    a.mov(res_p, r8)?;
    let tile = |r: usize, v: usize| {
        let lanes = if v + 1 == t.vecs { t.last_lanes } else { 8 };
        ((r * t.out_row + 32 * v) as i64, lanes, r * t.vecs + v)
    };
    for r in 0..t.rows {
        for v in 0..t.vecs {
            let (at, lanes, i) = tile(r, v);
            if t.accumulate {
                load_lanes(&mut a, (accs[i], lows[i]), out_p, at, lanes)?;
            } else {
                a.vpxor(accs[i], accs[i], accs[i])?;
            }
        }
    }
    // ones in every i16 lane (after the loads: `load_lanes` borrows xmm15)
    a.vpcmpeqw(ones, ones, ones)?;
    a.vpsrlw(ones, ones, 15)?;
    for kind in &t.kinds {
        a.mov(n, qword_ptr(prog))?;
        a.add(prog, 8)?;
        super::super::counted_loop(&mut a, n, |a| {
            match kind {
                EntryKind::Column(rows) => column_entry(a, t, rows, &accs)?,
                EntryKind::Kernel(nt) => kernel_entry(a, t, *nt, &accs)?,
            }
            a.add(prog, QPatternTile::entry_bytes(kind.taps()) as i32)
        })?;
    }
    let accs = &accs[..t.rows * t.vecs];
    if let Some(epi) = &t.finish {
        let tmp = ymm12;
        for &ac in accs {
            a.vpbroadcastd(tmp, dword_ptr(table))?;
            a.vpsubd(ac, ac, tmp)?;
            a.vcvtdq2ps(ac, ac)?;
            a.vbroadcastss(tmp, dword_ptr(table + 4))?;
            a.vmulps(ac, ac, tmp)?;
            a.vbroadcastss(tmp, dword_ptr(table + 8))?;
            a.vaddps(ac, ac, tmp)?;
        }
        if epi.residual {
            for r in 0..t.rows {
                for v in 0..t.vecs {
                    let (at, lanes, i) = tile(r, v);
                    load_lanes(&mut a, (tmp, xmm12), res_p, at, lanes)?;
                    a.vaddps(accs[i], accs[i], tmp)?;
                }
            }
        }
        activation(&mut a, epi, accs)?;
    }
    for r in 0..t.rows {
        for v in 0..t.vecs {
            let (at, lanes, i) = tile(r, v);
            store_lanes(&mut a, (accs[i], lows[i]), out_p, at, lanes)?;
        }
    }
    super::super::leaf_end(a)
}

/// One column entry of [`qpattern_tile`] at `rdx` (see
/// [`EntryKind::Column`]): weight quads in ymm10–12, the input row in
/// ymm13, the product in ymm14, ones in ymm15.
fn column_entry(
    a: &mut CodeAssembler,
    t: &QPatternTile,
    rows: &[usize],
    accs: &[AsmRegisterYmm],
) -> Result<(), IcedError> {
    let (wregs, x, prod, ones, (src, prog)) = ([ymm10, ymm11, ymm12], ymm13, ymm14, ymm15, (rsi, rdx));
    let nt = rows.len();
    // the first tap's offset: the 32-bit load zero-extends into rax
    a.mov(eax, dword_ptr(prog))?;
    for (j, &w) in wregs.iter().enumerate().take(nt) {
        a.vpbroadcastd(w, dword_ptr(prog + (4 * (nt + j)) as i64))?;
    }
    // input row `ir` below the first tap feeds tap j's output row ir - rows[j]
    for ir in 0..t.rows + rows[nt - 1] {
        let taps: Vec<(usize, usize)> =
            (0..nt).filter(|&j| ir >= rows[j] && ir - rows[j] < t.rows).map(|j| (j, ir - rows[j])).collect();
        if taps.is_empty() {
            continue;
        }
        for v in 0..t.vecs {
            a.vmovdqu(x, ymmword_ptr(src + rax + (ir * t.in_row + 32 * v) as i64))?;
            for &(j, r) in &taps {
                let acc = accs[r * t.vecs + v];
                a.vpmaddubsw(prod, x, wregs[j])?;
                a.vpmaddwd(prod, prod, ones)?;
                a.vpaddd(acc, acc, prod)?;
            }
        }
    }
    Ok(())
}

/// One whole-kernel entry of [`qpattern_tile`] at `rdx` of `nt` taps (see
/// [`EntryKind::Kernel`]): per tap its offset in eax, r9d or r10d and its
/// weight quad in ymm10–12 (rotating), the input in ymm13, the product in
/// ymm14.
fn kernel_entry(a: &mut CodeAssembler, t: &QPatternTile, nt: usize, accs: &[AsmRegisterYmm]) -> Result<(), IcedError> {
    let (wregs, x, prod, ones, (src, prog)) = ([ymm10, ymm11, ymm12], ymm13, ymm14, ymm15, (rsi, rdx));
    let offs = [(eax, rax), (r9d, r9), (r10d, r10)];
    for j in 0..nt {
        let (w, (off32, off)) = (wregs[j % wregs.len()], offs[j % offs.len()]);
        a.mov(off32, dword_ptr(prog + (4 * j) as i64))?;
        a.vpbroadcastd(w, dword_ptr(prog + (4 * (nt + j)) as i64))?;
        for r in 0..t.rows {
            for v in 0..t.vecs {
                let acc = accs[r * t.vecs + v];
                a.vmovdqu(x, ymmword_ptr(src + off + (r * t.in_row + 32 * v) as i64))?;
                a.vpmaddubsw(prod, x, w)?;
                a.vpmaddwd(prod, prod, ones)?;
                a.vpaddd(acc, acc, prod)?;
            }
        }
    }
    Ok(())
}
