//! The pattern-sparse convs' register tile ([`pattern_tile`]), f32 or byte
//! quads, on `ymm` (8 pixels per vector) or, where the target has
//! AVX-512, `zmm` (16), run by `lower::conv_pattern` and
//! `lower::qconv_pattern`. One body for both widths ([`PatReg`]: the
//! registers and the few instructions that differ).

use iced_x86::code_asm::asm_traits::CodeAsmVfmadd231ps;
use iced_x86::code_asm::*;

use super::{activation, int_to_real, load_lanes, store_lanes, IntOps, IntVreg, TileEpi};

/// A register tile of the pattern-sparse conv
/// ([`crate::lower::conv_pattern`]): `rows` output rows × `vecs` vectors
/// of `lanes` pixels (8: `ymm`; 16: `zmm`, AVX-512F) of one output channel
/// held in accumulators (at most [`Elem::max_accs`]) while every kept
/// kernel of the channel adds its taps. The output is stored once, after
/// the last kernel (no accumulator traffic per kernel), the last vector of
/// each row only its `last_lanes` pixels.
///
/// The taps come from the channel's *program* as entries of a few
/// [`EntryKind`]s: for each kind an `i64` count, then per entry its byte
/// offsets from `src` (`u32`: a column entry only its first tap's, a whole
/// kernel each tap's, [`EntryKind::offsets`]) and each tap's weight (4
/// bytes: an `f32`, or a quad of `i8`), [`EntryKind::entry_bytes`] in
/// all. One loop per kind,
/// not per mask: a block's few kernels of each mask made per-mask loops'
/// exits mispredict (measured 15% slower on a 512-channel 7x7 layer).
#[derive(Clone, Debug, PartialEq)]
pub struct PatternTile {
    /// What the tile multiplies (see [`Elem`]).
    pub elem: Elem,
    /// The kinds of entry, in program order.
    pub kinds: Vec<EntryKind>,
    /// Output rows of the tile.
    pub rows: usize,
    /// Vectors per row.
    pub vecs: usize,
    /// Pixels per vector: 8 (`ymm`) or 16 (`zmm`; not [`Elem::Quads`]).
    pub lanes: usize,
    /// Pixels stored from each row's last vector (1..=`lanes`).
    pub last_lanes: usize,
    /// Bytes between output rows (f32 outputs and i32 partial sums alike).
    pub out_row: usize,
    /// Bytes between the input rows the tile's output rows start at (and
    /// a kind's rows are apart).
    pub in_row: usize,
    /// Start from the partial sums in the output (a later block of input
    /// channels) instead of the bias (f32) or zero (quads).
    pub accumulate: bool,
    /// The epilogue applied before the store (the last block of input
    /// channels): for quads first the sums made real
    /// (`f32(acc − corr) · scale + bias` from the channel's 12-byte table
    /// row, [`super::int_to_real`]; `None` stores the i32 sums for the next
    /// block), then the residual (`residual` argument, output layout) and
    /// the clamp or HardSwish; no `scale` or `addend`.
    pub epi: Option<TileEpi>,
}

/// The element type of a pattern tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    /// f32 input and weights, one fused multiply-add per tap and vector;
    /// accumulators start from the bias (the `bias` argument).
    F32,
    /// A *quad image*: four consecutive input channels interleaved, 4 u8
    /// per pixel (`[quad][row][column][4]`), so eight pixels of a quad are
    /// one 32-byte load and a tap's four i8 weights one broadcast dword.
    /// Per tap and vector: `vpmaddubsw` (u8 × s8 products of channel pairs
    /// into saturating i16: exact for weights
    /// [`kerf_ir::channel_pairs_exact`] accepts), `vpmaddwd` by ones (the
    /// two pairs into the i32 lane) and `vpaddd`: four multiply-adds per
    /// lane. i32 accumulators start from zero; the `bias` argument is the
    /// channel's epilogue-table row.
    Quads,
    /// [`Elem::Quads`]' layout and contract through AVX-512 VNNI's
    /// `vpdpbusd` (EVEX on `ymm`, [`crate::isa::Caps::vnni`]): one
    /// instruction per tap and vector, without saturation (any i8
    /// weights), so the same exact sums.
    QuadsVnni,
}

impl Elem {
    /// Most accumulators: f32 and VNNI quads leave four registers to an
    /// entry's broadcast weights and an input vector; AVX2's quads six, to
    /// three weight quads, the input, a product and the ones.
    pub fn max_accs(self) -> usize {
        match self {
            Elem::F32 | Elem::QuadsVnni => 12,
            Elem::Quads => 10,
        }
    }

    /// Whether the element is a quad of bytes (i32 sums, the integer
    /// epilogue).
    pub fn quads(self) -> bool {
        self != Elem::F32
    }
}

/// What one entry of a pattern tile's program is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// **A column entry**: up to [`PatternTile::MAX_TAPS`] taps of one
    /// kernel that read the same input columns, these input rows below the
    /// first (ascending from 0: `[0]`, `[0, 1]`, `[0, 1, 2]`, ...). The
    /// entry stores the first tap's offset only. It broadcasts the weights
    /// into registers once, loads each input row under the tile once and
    /// multiply-adds it into every accumulator row one of the taps maps it
    /// to (PatDNN's load redundancy elimination: a column of two taps over
    /// three output rows loads four input rows, not six); an f32 row one
    /// tap alone reads stays a memory operand of its FMA. Per accumulator
    /// the taps come in entry order.
    Column(Vec<usize>),
    /// **A whole kernel** of this many taps anywhere: per tap one
    /// broadcast and one multiply-add per accumulator with the input at
    /// the tap's offset.
    Kernel(usize),
}

impl EntryKind {
    /// Taps of one entry.
    pub fn taps(&self) -> usize {
        match self {
            EntryKind::Column(rows) => rows.len(),
            EntryKind::Kernel(n) => *n,
        }
    }

    /// Offsets one entry stores: a column entry its first tap's (the
    /// others read the rows below it), a whole kernel each tap's.
    pub fn offsets(&self) -> usize {
        match self {
            EntryKind::Column(_) => 1,
            EntryKind::Kernel(n) => *n,
        }
    }

    /// Bytes of one entry: its offsets, then its taps' weights.
    pub fn entry_bytes(&self) -> usize {
        4 * (self.offsets() + self.taps())
    }
}

impl PatternTile {
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
        let epi_ok = self.epi.is_none_or(|e| e.scale.is_none() && e.addend.is_none());
        let width_ok = self.lanes == 8 || self.lanes == 16 && self.elem != Elem::Quads;
        width_ok
            && (1..=self.elem.max_accs()).contains(&accs)
            && (1..=self.lanes).contains(&self.last_lanes)
            && self.kinds.iter().all(kind_ok)
            && epi_ok
    }
}

/// Machine code of `t` with the arguments (System V order) `out` (the
/// tile's first output pixel), `src` (the input's origin for that pixel,
/// channel or quad 0), `prog` (the output channel's program), `bias` (its
/// bias, or for quads its epilogue-table row) and `residual` (the residual
/// at `out`'s pixel, read with `epi.residual`). Per pixel it computes
/// `acc = bias` (f32), `0` (quads) or the output (`accumulate`)`; for
/// kind, for entry, for tap: acc += w·x` (one fused multiply-add each, or
/// one quad's dot product), then `epi`: the same operations in the same
/// order at either width, so the same bits.
pub fn pattern_tile(t: &PatternTile) -> Result<Vec<u8>, IcedError> {
    match t.lanes {
        16 => tile::<AsmRegisterZmm>(t),
        _ => tile::<AsmRegisterYmm>(t),
    }
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
        ((r * t.out_row + 4 * R::LANES * v) as i64, lanes, r * t.vecs + v)
    };
    for r in 0..t.rows {
        for v in 0..t.vecs {
            let (at, lanes, i) = tile(r, v);
            match (t.accumulate, t.elem) {
                (true, _) => R::load_part(&mut a, accs[i], (out_p, at), lanes)?,
                (false, Elem::F32) => a.vbroadcastss(accs[i], dword_ptr(bias))?,
                (false, Elem::Quads | Elem::QuadsVnni) => R::zero(&mut a, accs[i])?,
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
        if epi.residual {
            for r in 0..t.rows {
                for v in 0..t.vecs {
                    let (at, lanes, i) = tile(r, v);
                    add_part::<R>(&mut a, accs[i], (res_p, at), lanes, scratch)?;
                }
            }
        }
        activation(&mut a, epi, accs)?;
    }
    for r in 0..t.rows {
        for v in 0..t.vecs {
            let (at, lanes, i) = tile(r, v);
            R::store_part(&mut a, accs[i], (out_p, at), lanes)?;
        }
    }
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
            let at = src + rax + (ir * t.in_row + 4 * R::LANES * v) as i64;
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
                let at = (r * t.in_row + 4 * R::LANES * v) as i64;
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
        Elem::Quads | Elem::QuadsVnni => a.vpbroadcastd(w, at),
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
        Elem::Quads | Elem::QuadsVnni => {
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
            (Elem::QuadsVnni, _) => &[ymm12, ymm13, ymm14],
        }
    }
    fn x(e: Elem) -> Self {
        match e {
            Elem::F32 | Elem::QuadsVnni => ymm15,
            Elem::Quads => ymm13,
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
            Elem::QuadsVnni => a.vpdpbusd(acc, Self::x(e), w),
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
            Elem::Quads | Elem::QuadsVnni => a.vpdpbusd(acc, Self::x(e), w),
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
}
