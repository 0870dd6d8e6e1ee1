//! The pattern-sparse convs' register tile ([`pattern_tile`]), f32 or byte
//! quads, run by `lower::conv_pattern` and `lower::qconv_pattern`.

use iced_x86::code_asm::*;

use super::{activation, int_to_real, load_lanes, store_lanes, TileEpi};

/// A register tile of the pattern-sparse conv
/// ([`crate::lower::conv_pattern`]): `rows` output rows × `vecs` 8-pixel
/// vectors of one output channel held in `ymm` accumulators (at most
/// [`Elem::max_accs`]) while every kept kernel of the channel adds its
/// taps. The output is stored once, after the last kernel (no accumulator
/// traffic per kernel), the last vector of each row only its `last_lanes`
/// pixels.
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
    /// 8-pixel vectors per row.
    pub vecs: usize,
    /// Pixels stored from each row's last vector (1..=8).
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

    /// The weight registers of a column entry's taps or, rotating, of a
    /// whole kernel's (f32 kernels have the input register too).
    fn wregs(self, column: bool) -> &'static [AsmRegisterYmm] {
        match (self, column) {
            (Elem::F32, true) => &[ymm12, ymm13, ymm14],
            (Elem::F32, false) => &[ymm12, ymm13, ymm14, ymm15],
            (Elem::Quads, _) => &[ymm10, ymm11, ymm12],
            (Elem::QuadsVnni, _) => &[ymm12, ymm13, ymm14],
        }
    }

    /// The input vector's register (f32 column entries; quads always).
    fn x(self) -> AsmRegisterYmm {
        match self {
            Elem::F32 | Elem::QuadsVnni => ymm15,
            Elem::Quads => ymm13,
        }
    }

    fn broadcast(self, a: &mut CodeAssembler, w: AsmRegisterYmm, at: AsmMemoryOperand) -> Result<(), IcedError> {
        match self {
            Elem::F32 => a.vbroadcastss(w, at),
            Elem::Quads | Elem::QuadsVnni => a.vpbroadcastd(w, at),
        }
    }

    /// Loads the input vector at `at` into [`Elem::x`] (in the float or
    /// the integer domain, as its multiply-adds use it).
    fn load_x(self, a: &mut CodeAssembler, at: AsmMemoryOperand) -> Result<(), IcedError> {
        match self {
            Elem::F32 => a.vmovups(self.x(), at),
            Elem::Quads | Elem::QuadsVnni => a.vmovdqu(self.x(), at),
        }
    }

    /// `acc += w · x` with `x` in its register.
    fn mac(self, a: &mut CodeAssembler, acc: AsmRegisterYmm, w: AsmRegisterYmm) -> Result<(), IcedError> {
        match self {
            Elem::F32 => a.vfmadd231ps(acc, w, self.x()),
            Elem::Quads => {
                let (prod, ones) = (ymm14, ymm15);
                a.vpmaddubsw(prod, self.x(), w)?;
                a.vpmaddwd(prod, prod, ones)?;
                a.vpaddd(acc, acc, prod)
            }
            Elem::QuadsVnni => a.vpdpbusd(acc, self.x(), w),
        }
    }

    /// `acc += w · [at]`: f32 takes the input as a memory operand, quads
    /// load it first (`vpmaddubsw`'s unsigned operand is a register).
    fn mac_at(
        self,
        a: &mut CodeAssembler,
        acc: AsmRegisterYmm,
        w: AsmRegisterYmm,
        at: AsmMemoryOperand,
    ) -> Result<(), IcedError> {
        match self {
            Elem::F32 => a.vfmadd231ps(acc, w, at),
            Elem::Quads | Elem::QuadsVnni => {
                self.load_x(a, at)?;
                self.mac(a, acc, w)
            }
        }
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
        (1..=self.elem.max_accs()).contains(&accs)
            && (1..=8).contains(&self.last_lanes)
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
/// one quad's dot product), then `epi`.
pub fn pattern_tile(t: &PatternTile) -> Result<Vec<u8>, IcedError> {
    let accs = [ymm0, ymm1, ymm2, ymm3, ymm4, ymm5, ymm6, ymm7, ymm8, ymm9, ymm10, ymm11];
    let lows = [xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7, xmm8, xmm9, xmm10, xmm11];
    let (out_p, prog, bias, res_p, n) = (rdi, rdx, rcx, r11, r8);
    let mut a = CodeAssembler::new(64)?;
    // vpdpbusd's VEX form is AVX-VNNI, which AVX-512 VNNI CPUs lack
    a.set_prefer_vex(t.elem != Elem::QuadsVnni);
    // the residual arrives in r8, the kind loops' counter
    a.mov(res_p, r8)?;
    let tile = |r: usize, v: usize| {
        let lanes = if v + 1 == t.vecs { t.last_lanes } else { 8 };
        ((r * t.out_row + 32 * v) as i64, lanes, r * t.vecs + v)
    };
    for r in 0..t.rows {
        for v in 0..t.vecs {
            let (at, lanes, i) = tile(r, v);
            match (t.accumulate, t.elem) {
                (true, _) => load_lanes(&mut a, (accs[i], lows[i]), out_p, at, lanes)?,
                (false, Elem::F32) => a.vbroadcastss(accs[i], dword_ptr(bias))?,
                (false, Elem::Quads | Elem::QuadsVnni) => a.vpxor(accs[i], accs[i], accs[i])?,
            }
        }
    }
    if t.elem == Elem::Quads {
        // ones in every i16 lane (after the loads: `load_lanes` borrows xmm15)
        a.vpcmpeqw(ymm15, ymm15, ymm15)?;
        a.vpsrlw(ymm15, ymm15, 15)?;
    }
    for kind in &t.kinds {
        a.mov(n, qword_ptr(prog))?;
        a.add(prog, 8)?;
        super::super::counted_loop(&mut a, n, |a| {
            match kind {
                EntryKind::Column(rows) => column_entry(a, t, rows, &accs)?,
                EntryKind::Kernel(nt) => kernel_entry(a, t, *nt, &accs)?,
            }
            a.add(prog, kind.entry_bytes() as i32)
        })?;
    }
    let accs = &accs[..t.rows * t.vecs];
    if let Some(epi) = &t.epi {
        if t.elem.quads() {
            for &ac in accs {
                int_to_real(&mut a, ac, ymm12, (bias, 0))?;
            }
        }
        if epi.residual {
            for r in 0..t.rows {
                for v in 0..t.vecs {
                    let (at, lanes, i) = tile(r, v);
                    if lanes == 8 {
                        a.vaddps(accs[i], accs[i], ymmword_ptr(res_p + at))?;
                    } else {
                        load_lanes(&mut a, (ymm12, xmm12), res_p, at, lanes)?;
                        a.vaddps(accs[i], accs[i], ymm12)?;
                    }
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

/// One column entry of [`pattern_tile`] at `rdx` (see
/// [`EntryKind::Column`]): weights in [`Elem::wregs`], input rows through
/// [`Elem::x`].
fn column_entry(
    a: &mut CodeAssembler,
    t: &PatternTile,
    rows: &[usize],
    accs: &[AsmRegisterYmm],
) -> Result<(), IcedError> {
    let (e, src, prog) = (t.elem, rsi, rdx);
    let wregs = e.wregs(true);
    let nt = rows.len();
    // the entry's one offset: the 32-bit load zero-extends into rax
    a.mov(eax, dword_ptr(prog))?;
    for (j, &w) in wregs.iter().enumerate().take(nt) {
        e.broadcast(a, w, dword_ptr(prog + (4 * (1 + j)) as i64))?;
    }
    // input row `ir` below the first tap feeds tap j's output row ir - rows[j]
    for ir in 0..t.rows + rows[nt - 1] {
        let taps: Vec<(usize, usize)> =
            (0..nt).filter(|&j| ir >= rows[j] && ir - rows[j] < t.rows).map(|j| (j, ir - rows[j])).collect();
        for v in 0..t.vecs {
            let at = ymmword_ptr(src + rax + (ir * t.in_row + 32 * v) as i64);
            match taps[..] {
                [] => {}
                [(j, r)] => e.mac_at(a, accs[r * t.vecs + v], wregs[j], at)?,
                _ => {
                    e.load_x(a, at)?;
                    for &(j, r) in &taps {
                        e.mac(a, accs[r * t.vecs + v], wregs[j])?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// One whole-kernel entry of [`pattern_tile`] at `rdx` of `nt` taps (see
/// [`EntryKind::Kernel`]): weights rotating through [`Elem::wregs`],
/// offsets through eax, r9d and r10d.
fn kernel_entry(a: &mut CodeAssembler, t: &PatternTile, nt: usize, accs: &[AsmRegisterYmm]) -> Result<(), IcedError> {
    let (e, src, prog) = (t.elem, rsi, rdx);
    let wregs = e.wregs(false);
    let offs = [(eax, rax), (r9d, r9), (r10d, r10)];
    for j in 0..nt {
        let (w, (off32, off)) = (wregs[j % wregs.len()], offs[j % offs.len()]);
        a.mov(off32, dword_ptr(prog + (4 * j) as i64))?;
        e.broadcast(a, w, dword_ptr(prog + (4 * (nt + j)) as i64))?;
        for r in 0..t.rows {
            for v in 0..t.vecs {
                let at = (r * t.in_row + 32 * v) as i64;
                e.mac_at(a, accs[r * t.vecs + v], w, ymmword_ptr(src + off + at))?;
            }
        }
    }
    Ok(())
}
