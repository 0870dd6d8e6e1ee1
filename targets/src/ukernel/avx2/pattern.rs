//! The pattern-sparse convs' register tile ([`pattern_tile`]), f32 or byte
//! quads, on `ymm` (8 pixels per vector) or, where the target has
//! AVX-512, `zmm` (16), run by `lower::conv_pattern` and
//! `lower::qconv_pattern`. One body for both widths ([`PatReg`]: the
//! registers and the few instructions that differ).

use iced_x86::code_asm::asm_traits::CodeAsmVfmadd231ps;
use iced_x86::code_asm::*;

use super::{activation, int_to_real, load_lanes, requantise, store_lanes, store_prefix, IntOps, IntVreg, Lane};
use crate::ukernel::pattern::{Elem, EntryKind, PatternTile};

/// Machine code of `t` with the arguments (System V order) `out` (the
/// tile's first output pixel), `src` (the input's origin for that pixel,
/// channel or quad 0), `prog` (the output channel's program), `bias` (its
/// bias, or for quads its epilogue-table row) and `residual` (the residual
/// at `out`'s pixel, read with `epi.residual`; with `quant`, where the
/// bytes go instead, `out` then holding only partial sums), and a sixth,
/// a u8 residual's address where the tile has both `quant` and `res_u8`
/// (`r9`, which the column entries leave alone). Per pixel it computes
/// `acc = bias` (f32), `0` (quads) or the output (`accumulate`)`; for
/// kind, for entry, for tap: acc += w·x` (one fused multiply-add each, or
/// one quad's dot product), then `epi`: the same operations in the same
/// order at either width, so the same bits; with `quant` the requantising
/// store (`int_tile::requantise`, the integer GEMM tiles' operations) and
/// bytes. `t` must fit
/// ([`PatternTile::fits`]) on 8 or 16 lanes (AArch64's 4-lane tiles are
/// `ukernel::neon::pattern_tile`'s).
pub fn pattern_tile(t: &PatternTile) -> Result<Vec<u8>, String> {
    let code = match t.lanes {
        _ if !t.fits() || t.elem == Elem::QuadsSdot => return Err(format!("x86 pattern tile: {t:?} does not fit")),
        16 => tile::<AsmRegisterZmm>(t),
        8 => tile::<AsmRegisterYmm>(t),
        _ => return Err(format!("x86 pattern tile: {} lanes", t.lanes)),
    };
    code.map_err(|e| format!("x86 pattern tile: {e}"))
}

fn tile<R: PatReg>(t: &PatternTile) -> Result<Vec<u8>, IcedError>
where
    CodeAssembler: PatOps<R>,
{
    let accs = &R::ACC[..t.rows * t.vecs];
    let (out_p, prog, bias, res_p, n) = (rdi, rdx, rcx, r11, r8);
    let mut a = CodeAssembler::new(64)?;
    R::begin(&mut a, t)?;
    // the residual arrives in r8, the kind loops' counter
    a.mov(res_p, r8)?;
    let tile = |r: usize, v: usize| {
        let lanes = if v + 1 == t.vecs { t.last_lanes } else { R::LANES };
        ((r * t.out_row + 4 * t.start(v)) as i64, lanes, r * t.vecs + v)
    };
    for r in 0..t.rows {
        for v in 0..t.vecs {
            let (at, lanes, i) = tile(r, v);
            match (t.accumulate, t.elem) {
                (true, _) => R::load_part(&mut a, accs[i], (out_p, at), lanes)?,
                (false, Elem::F32) => a.vbroadcastss(accs[i], dword_ptr(bias))?,
                (false, _) => R::zero(&mut a, accs[i])?,
            }
        }
    }
    R::setup(&mut a, t.elem)?;
    for kind in &t.kinds {
        a.mov(n, qword_ptr(prog))?;
        a.add(prog, 8)?;
        super::super::counted_loop(&mut a, n, |a| {
            match kind {
                EntryKind::Column(rows) => column_entry::<R>(a, t, rows, accs)?,
                EntryKind::Kernel(nt) => kernel_entry::<R>(a, t, *nt, accs)?,
            }
            a.add(prog, kind.entry_bytes() as i32)
        })?;
    }
    if let Some(epi) = &t.epi {
        let scratch = R::wregs(t.elem, true)[0];
        if t.elem.quads() {
            for &ac in accs {
                int_to_real(&mut a, ac, scratch, (bias, 0))?;
            }
        }
        match (epi.residual, t.res_u8) {
            (true, None) => {
                for r in 0..t.rows {
                    for v in 0..t.vecs {
                        let (at, lanes, i) = tile(r, v);
                        add_part::<R>(&mut a, accs[i], (res_p, at), lanes, scratch)?;
                    }
                }
            }
            // `f32(r − zp) · step` (the integer GEMM tiles' operations);
            // with `quant` the sixth argument's address
            (true, Some((step, zp))) => {
                let base = if t.quant.is_some() { r9 } else { res_p };
                let [_, s, z, _] = R::SCRATCH;
                R::splat(&mut a, s, step)?;
                R::splat(&mut a, z, f32::from_bits(u32::from(zp)))?;
                for r in 0..t.rows {
                    for v in 0..t.vecs {
                        let (_, lanes, i) = tile(r, v);
                        let at = (r * t.out_row / 4 + t.start(v)) as i64;
                        R::load_bytes_part(&mut a, scratch, (base, at), lanes)?;
                        a.vpsubd(scratch, scratch, z)?;
                        a.vcvtdq2ps(scratch, scratch)?;
                        a.vmulps(scratch, scratch, s)?;
                        a.vaddps(accs[i], accs[i], scratch)?;
                    }
                }
            }
            (false, _) => {}
        }
        if let Some(grid) = t.quant {
            // the requantised bytes, at the residual argument's address
            requantise(&mut a, epi, accs, grid, false)?;
            for r in 0..t.rows {
                for v in 0..t.vecs {
                    let (_, lanes, i) = tile(r, v);
                    let at = (r * t.out_row / 4 + t.start(v)) as i64;
                    R::store_bytes_part(&mut a, accs[i], (res_p, at), lanes)?;
                }
            }
            return finish::<R>(a);
        }
        activation(&mut a, epi, accs)?;
    }
    for r in 0..t.rows {
        for v in 0..t.vecs {
            let (at, lanes, i) = tile(r, v);
            R::store_part(&mut a, accs[i], (out_p, at), lanes)?;
        }
    }
    finish::<R>(a)
}

/// The tile's end: no upper state outlives the call.
fn finish<R: PatReg>(mut a: CodeAssembler) -> Result<Vec<u8>, IcedError>
where
    CodeAssembler: PatOps<R>,
{
    for &z in R::UPPER {
        R::zero(&mut a, z)?;
    }
    super::super::leaf_end(a)
}

/// One column entry of [`pattern_tile`] at `rdx` (see
/// [`EntryKind::Column`]): weights in [`PatReg::wregs`], input rows through
/// [`PatReg::x`].
fn column_entry<R: PatReg>(a: &mut CodeAssembler, t: &PatternTile, rows: &[usize], accs: &[R]) -> Result<(), IcedError>
where
    CodeAssembler: PatOps<R>,
{
    let (e, src, prog) = (t.elem, rsi, rdx);
    let wregs = R::wregs(e, true);
    let nt = rows.len();
    // the entry's one offset: the 32-bit load zero-extends into rax
    a.mov(eax, dword_ptr(prog))?;
    for (j, &w) in wregs.iter().enumerate().take(nt) {
        broadcast::<R>(a, e, w, dword_ptr(prog + (4 * (1 + j)) as i64))?;
    }
    // input row `ir` below the first tap feeds tap j's output row ir - rows[j]
    for ir in 0..t.rows + rows[nt - 1] {
        let taps: Vec<(usize, usize)> =
            (0..nt).filter(|&j| ir >= rows[j] && ir - rows[j] < t.rows).map(|j| (j, ir - rows[j])).collect();
        for v in 0..t.vecs {
            let at = src + rax + (ir * t.in_row + 4 * t.start(v)) as i64;
            match taps[..] {
                [] => {}
                [(j, r)] => mac_at::<R>(a, e, accs[r * t.vecs + v], wregs[j], at)?,
                _ => {
                    load_x::<R>(a, e, at)?;
                    for &(j, r) in &taps {
                        R::mac(a, e, accs[r * t.vecs + v], wregs[j])?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// One whole-kernel entry of [`pattern_tile`] at `rdx` of `nt` taps (see
/// [`EntryKind::Kernel`]): weights rotating through [`PatReg::wregs`],
/// offsets through eax, r9d and r10d.
fn kernel_entry<R: PatReg>(a: &mut CodeAssembler, t: &PatternTile, nt: usize, accs: &[R]) -> Result<(), IcedError>
where
    CodeAssembler: PatOps<R>,
{
    let (e, src, prog) = (t.elem, rsi, rdx);
    let wregs = R::wregs(e, false);
    let offs = [(eax, rax), (r9d, r9), (r10d, r10)];
    for j in 0..nt {
        let (w, (off32, off)) = (wregs[j % wregs.len()], offs[j % offs.len()]);
        a.mov(off32, dword_ptr(prog + (4 * j) as i64))?;
        broadcast::<R>(a, e, w, dword_ptr(prog + (4 * (nt + j)) as i64))?;
        for r in 0..t.rows {
            for v in 0..t.vecs {
                let at = (r * t.in_row + 4 * t.start(v)) as i64;
                mac_at::<R>(a, e, accs[r * t.vecs + v], w, src + off + at)?;
            }
        }
    }
    Ok(())
}

/// What differs between the `ymm` and `zmm` pattern tiles: the registers
/// each [`Elem`] uses, its register multiply-add, and how a row's partial
/// last vector is read and written (`ymm`: its lanes one by one through
/// the low half, nothing past them touched; `zmm`: through the mask `k1`,
/// set up by [`PatReg::begin`]). The rest is one code for both
/// ([`PatOps`]: [`broadcast`], [`load_x`], [`mac_at`], [`add_part`]).
pub(crate) trait PatReg: IntVreg {
    /// Code before the tile: `zmm` selects EVEX and loads `k1`.
    fn begin(a: &mut CodeAssembler, t: &PatternTile) -> Result<(), IcedError>;
    /// Code after the accumulators' first values and before the entries
    /// (AVX2's quads: the i16 ones).
    fn setup(a: &mut CodeAssembler, e: Elem) -> Result<(), IcedError>;
    /// The weight registers of a column entry's taps or, rotating, of a
    /// whole kernel's (f32 kernels have the input register too).
    fn wregs(e: Elem, column: bool) -> &'static [Self];
    /// The input vector's register (f32 column entries; quads always).
    fn x(e: Elem) -> Self;
    /// `acc += w · x` with `x` in its register.
    fn mac(a: &mut CodeAssembler, e: Elem, acc: Self, w: Self) -> Result<(), IcedError>;
    /// `acc = ` the first `lanes` values at `base + at`, the others zero.
    fn load_part(a: &mut CodeAssembler, acc: Self, at: (AsmRegister64, i64), lanes: usize) -> Result<(), IcedError>;
    /// Stores the first `lanes` values of `acc` at `base + at`.
    fn store_part(a: &mut CodeAssembler, acc: Self, at: (AsmRegister64, i64), lanes: usize) -> Result<(), IcedError>;
    /// Stores the low bytes of the first `lanes` i32 lanes of `acc`
    /// (whole numbers in `0..=255`) at `base + at`, nothing past them;
    /// clobbers `acc`.
    fn store_bytes_part(
        a: &mut CodeAssembler,
        acc: Self,
        at: (AsmRegister64, i64),
        lanes: usize,
    ) -> Result<(), IcedError>;
    /// Loads the first `lanes` bytes at `base + at`, each zero-extended
    /// into an i32 lane (the others zero), reading nothing past them.
    fn load_bytes_part(
        a: &mut CodeAssembler,
        dst: Self,
        at: (AsmRegister64, i64),
        lanes: usize,
    ) -> Result<(), IcedError>;
}

/// The assembler's operations the pattern tile's shared code uses on
/// register class `R`: the integer tiles' ([`IntOps`]) and an FMA with a
/// memory operand.
pub(crate) trait PatOps<R>: IntOps<R> + CodeAsmVfmadd231ps<R, R, AsmMemoryOperand> {}

impl<R, T> PatOps<R> for T where T: IntOps<R> + CodeAsmVfmadd231ps<R, R, AsmMemoryOperand> {}

/// `w = ` the tap's weight at `at` in every lane: an f32, or a quad of i8.
fn broadcast<R: PatReg>(a: &mut CodeAssembler, e: Elem, w: R, at: AsmMemoryOperand) -> Result<(), IcedError>
where
    CodeAssembler: PatOps<R>,
{
    match e {
        Elem::F32 => a.vbroadcastss(w, at),
        _ => a.vpbroadcastd(w, at),
    }
}

/// Loads the input vector at `at` into [`PatReg::x`] (floats or bytes
/// alike: a plain load).
fn load_x<R: PatReg>(a: &mut CodeAssembler, e: Elem, at: AsmMemoryOperand) -> Result<(), IcedError>
where
    CodeAssembler: PatOps<R>,
{
    a.vmovups(R::x(e), R::ptr(at))
}

/// `acc += w · [at]`: f32 takes the input as a memory operand, quads load
/// it first.
fn mac_at<R: PatReg>(a: &mut CodeAssembler, e: Elem, acc: R, w: R, at: AsmMemoryOperand) -> Result<(), IcedError>
where
    CodeAssembler: PatOps<R>,
{
    match e {
        Elem::F32 => a.vfmadd231ps(acc, w, R::ptr(at)),
        _ => {
            load_x::<R>(a, e, at)?;
            R::mac(a, e, acc, w)
        }
    }
}

/// `acc += ` the first `lanes` floats at `base + at` (`tmp` scratch).
fn add_part<R: PatReg>(
    a: &mut CodeAssembler,
    acc: R,
    at: (AsmRegister64, i64),
    lanes: usize,
    tmp: R,
) -> Result<(), IcedError>
where
    CodeAssembler: PatOps<R>,
{
    if lanes == R::LANES {
        return a.vaddps(acc, acc, R::ptr(at.0 + at.1));
    }
    R::load_part(a, tmp, at, lanes)?;
    a.vaddps(acc, acc, tmp)
}

impl PatReg for AsmRegisterYmm {
    fn begin(a: &mut CodeAssembler, t: &PatternTile) -> Result<(), IcedError> {
        // vpdpbusd's VEX form is AVX-VNNI, which AVX-512 VNNI CPUs lack
        a.set_prefer_vex(t.elem != Elem::QuadsVnni);
        Ok(())
    }
    fn setup(a: &mut CodeAssembler, e: Elem) -> Result<(), IcedError> {
        if e == Elem::Quads {
            // ones in every i16 lane (after the loads: `load_lanes` borrows xmm15)
            a.vpcmpeqw(ymm15, ymm15, ymm15)?;
            a.vpsrlw(ymm15, ymm15, 15)?;
        }
        Ok(())
    }
    fn wregs(e: Elem, column: bool) -> &'static [Self] {
        match (e, column) {
            (Elem::F32, true) => &[ymm12, ymm13, ymm14],
            (Elem::F32, false) => &[ymm12, ymm13, ymm14, ymm15],
            (Elem::Quads, _) => &[ymm10, ymm11, ymm12],
            (_, _) => &[ymm12, ymm13, ymm14],
        }
    }
    fn x(e: Elem) -> Self {
        match e {
            Elem::Quads => ymm13,
            _ => ymm15,
        }
    }
    fn mac(a: &mut CodeAssembler, e: Elem, acc: Self, w: Self) -> Result<(), IcedError> {
        match e {
            Elem::F32 => a.vfmadd231ps(acc, w, Self::x(e)),
            Elem::Quads => {
                let (prod, ones) = (ymm14, ymm15);
                a.vpmaddubsw(prod, Self::x(e), w)?;
                a.vpmaddwd(prod, prod, ones)?;
                a.vpaddd(acc, acc, prod)
            }
            // (`pattern_tile` leaves `sdot` quads to AArch64)
            Elem::QuadsVnni | Elem::QuadsSdot => a.vpdpbusd(acc, Self::x(e), w),
        }
    }
    fn load_part(
        a: &mut CodeAssembler,
        acc: Self,
        (base, at): (AsmRegister64, i64),
        lanes: usize,
    ) -> Result<(), IcedError> {
        load_lanes(a, acc, base, at, lanes)
    }
    fn store_part(
        a: &mut CodeAssembler,
        acc: Self,
        (base, at): (AsmRegister64, i64),
        lanes: usize,
    ) -> Result<(), IcedError> {
        store_lanes(a, acc, base, at, lanes)
    }
    fn store_bytes_part(
        a: &mut CodeAssembler,
        acc: Self,
        (base, at): (AsmRegister64, i64),
        lanes: usize,
    ) -> Result<(), IcedError> {
        store_prefix(a, acc, base + at, lanes, Lane::Byte)
    }
    fn load_bytes_part(
        a: &mut CodeAssembler,
        dst: Self,
        (base, at): (AsmRegister64, i64),
        lanes: usize,
    ) -> Result<(), IcedError> {
        if lanes == Self::LANES {
            return Self::load_bytes(a, dst, base + at);
        }
        // byte by byte: nothing past the row's last pixel is read
        let low = super::low_half(dst);
        a.vpxor(low, low, low)?;
        for i in 0..lanes {
            a.vpinsrb(low, low, byte_ptr(base + (at + i as i64)), i as i32)?;
        }
        a.vpmovzxbd(dst, low)
    }
}

impl PatReg for AsmRegisterZmm {
    fn begin(a: &mut CodeAssembler, t: &PatternTile) -> Result<(), IcedError> {
        a.set_prefer_vex(false);
        if t.last_lanes < 16 {
            a.mov(eax, (1u32 << t.last_lanes) - 1)?;
            a.kmovw(k1, eax)?;
        }
        Ok(())
    }
    fn setup(_: &mut CodeAssembler, _: Elem) -> Result<(), IcedError> {
        Ok(())
    }
    fn wregs(e: Elem, column: bool) -> &'static [Self] {
        match (e, column) {
            (Elem::F32, false) => &[zmm12, zmm13, zmm14, zmm15],
            _ => &[zmm12, zmm13, zmm14],
        }
    }
    fn x(_: Elem) -> Self {
        zmm15
    }
    fn mac(a: &mut CodeAssembler, e: Elem, acc: Self, w: Self) -> Result<(), IcedError> {
        match e {
            Elem::F32 => a.vfmadd231ps(acc, w, Self::x(e)),
            // (`PatternTile::fits` keeps AVX2's byte quads on `ymm`)
            _ => a.vpdpbusd(acc, Self::x(e), w),
        }
    }
    fn load_part(
        a: &mut CodeAssembler,
        acc: Self,
        (base, at): (AsmRegister64, i64),
        lanes: usize,
    ) -> Result<(), IcedError> {
        match lanes {
            16 => a.vmovups(acc, zmmword_ptr(base + at)),
            _ => a.vmovups(acc.k1().z(), zmmword_ptr(base + at)),
        }
    }
    fn store_part(
        a: &mut CodeAssembler,
        acc: Self,
        (base, at): (AsmRegister64, i64),
        lanes: usize,
    ) -> Result<(), IcedError> {
        match lanes {
            16 => a.vmovups(zmmword_ptr(base + at), acc),
            _ => a.vmovups(zmmword_ptr(base + at).k1(), acc),
        }
    }
    fn store_bytes_part(
        a: &mut CodeAssembler,
        acc: Self,
        (base, at): (AsmRegister64, i64),
        lanes: usize,
    ) -> Result<(), IcedError> {
        match lanes {
            16 => a.vpmovdb(xmmword_ptr(base + at), acc),
            _ => a.vpmovdb(xmmword_ptr(base + at).k1(), acc),
        }
    }
    fn load_bytes_part(
        a: &mut CodeAssembler,
        dst: Self,
        (base, at): (AsmRegister64, i64),
        lanes: usize,
    ) -> Result<(), IcedError> {
        if lanes == 16 {
            return Self::load_bytes(a, dst, base + at);
        }
        // the masked byte load reads (and faults on) none past the row's last pixel
        const XMM: [AsmRegisterXmm; 32] = [
            xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14, xmm15,
            xmm16, xmm17, xmm18, xmm19, xmm20, xmm21, xmm22, xmm23, xmm24, xmm25, xmm26, xmm27, xmm28, xmm29, xmm30,
            xmm31,
        ];
        let low = XMM[iced_x86::Register::from(dst) as usize - iced_x86::Register::ZMM0 as usize];
        a.vmovdqu8(low.k1().z(), xmmword_ptr(base + at))?;
        a.vpmovzxbd(dst, low)
    }
}
