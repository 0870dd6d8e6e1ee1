//! The pattern-sparse convs' register tile: what one call computes
//! ([`PatternTile`]), shared by its machine code for x86-64
//! ([`crate::ukernel::avx2::pattern_tile`]: `ymm` or `zmm`) and AArch64
//! ([`crate::ukernel::neon::pattern_tile`]), which perform the same
//! operations in the same order, so every form gives the same bits.

use super::epi::TileEpi;

/// A register tile of the pattern-sparse conv
/// ([`crate::lower::conv_pattern`]): `rows` output rows × `vecs` vectors
/// of `lanes` pixels (8: `ymm`; 16: `zmm`, AVX-512F; 4: AArch64's `v`
/// registers) of one output channel
/// held in accumulators (at most [`max_accs`]) while every kept
/// kernel of the channel adds its taps. The output is stored once, after
/// the last kernel (no accumulator traffic per kernel), the last vector of
/// each row only its `last_lanes` pixels (or, starting early, all of
/// them: [`PatternTile::back`]).
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
    /// Pixels per vector: 8 (`ymm`), 16 (`zmm`; f32 and VNNI quads) or 4
    /// (AArch64; f32 and `sdot` quads).
    pub lanes: usize,
    /// Pixels stored from each row's last vector (1..=`lanes`).
    pub last_lanes: usize,
    /// Pixels each row's last vector starts before `(vecs − 1) · lanes`
    /// (0..`lanes`; then it is whole, `last_lanes == lanes`, and `vecs ≥
    /// 2`; x86 only): a row of 14 pixels as vectors at 0 and 6 rather than
    /// at 0 and 8 with 6 lanes stored, so that on an image of 16-float
    /// rows no tap's load crosses a cache line and no store is partial
    /// ([`PatternTile::start`]). The pixels both vectors hold are computed
    /// by the same operations in the same order from the same values, so
    /// storing them twice stores the same bits.
    pub back: usize,
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
    /// row, `avx2::int_to_real`; `None` stores the i32 sums for the next
    /// block), then the residual (`residual` argument, output layout) and
    /// the clamp or HardSwish; no `scale` or `addend`.
    pub epi: Option<TileEpi>,
    /// Store bytes on this grid (`(factor, zp)`: `kerf_ir::op::QOut::grid`,
    /// the requantising store of the integer tiles, `avx2::requantise`)
    /// instead of floats: quads only, with an epilogue, and a residual only
    /// a u8 one (`res_u8`). The bytes go to the `residual` argument's
    /// address, rows `out_row / 4` bytes apart; partial sums (`accumulate`)
    /// still come from `out`.
    pub quant: Option<(f32, u8)>,
    /// The residual is u8 on this grid (`(scale, zp)`:
    /// `kerf_ir::op::QConv::res_grid`), added as `f32(r − zp) · scale`,
    /// rows `out_row / 4` bytes apart: x86 quads only. At the `residual`
    /// argument's address, or with `quant` (whose bytes take that one) at
    /// a sixth argument's, which only column entries leave free (the whole
    /// kernels' offsets take every spare register).
    pub res_u8: Option<(f32, u8)>,
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
    /// [`Elem::Quads`]' layout with every byte offset by −128 (the quad
    /// image holds `x ^ 0x80`, which is `x − 128` as an i8:
    /// AArch64 `dotprod`'s `sdot` multiplies signed bytes only), one `sdot`
    /// by element per tap and vector, exact for any i8 weights. The sums
    /// are `Σ (x − 128)·w`; the epilogue table's correction carries the
    /// offset ([`crate::ukernel::neon::SDOT_INPUT_OFFSET`]).
    QuadsSdot,
}

impl Elem {
    /// Whether the element is a quad of bytes (i32 sums, the integer
    /// epilogue).
    pub fn quads(self) -> bool {
        self != Elem::F32
    }
}

/// Most accumulators of a tile of `elem` on `lanes`-pixel vectors. x86:
/// f32 and VNNI quads leave four registers to an entry's broadcast weights
/// and an input vector; AVX2's quads six, to three weight quads, the
/// input, a product and the ones. AArch64 (4 lanes): `v16`–`v31`, with
/// `v0`–`v7` for the weights, the input and the epilogue (the low halves
/// of `v8`–`v15` are callee-saved).
pub fn max_accs(elem: Elem, lanes: usize) -> usize {
    match (elem, lanes) {
        (_, 4) => 16,
        (Elem::Quads, _) => 10,
        _ => 12,
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

    /// The first pixel of vector `v` of a row: `v · lanes`, the last
    /// vector `back` pixels earlier.
    pub fn start(&self, v: usize) -> usize {
        let back = if v + 1 == self.vecs { self.back } else { 0 };
        v * self.lanes - back
    }

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
        let residual = self.epi.is_some_and(|e| e.residual);
        let quant_ok = self.quant.is_none()
            || self.elem.quads()
                && self.epi.is_some()
                && (!residual || self.res_u8.is_some())
                && self.out_row.is_multiple_of(4);
        let columns = self.kinds.iter().all(|k| matches!(k, EntryKind::Column(_)));
        // (x86 only: AArch64's 4-lane tiles take none)
        let res_ok = self.res_u8.is_none()
            || self.elem.quads()
                && self.lanes != 4
                && residual
                && self.out_row.is_multiple_of(4)
                && (self.quant.is_none() || columns);
        let width_ok = match self.lanes {
            4 => matches!(self.elem, Elem::F32 | Elem::QuadsSdot),
            8 => self.elem != Elem::QuadsSdot,
            16 => matches!(self.elem, Elem::F32 | Elem::QuadsVnni),
            _ => false,
        };
        let back_ok = self.back == 0
            || self.lanes != 4 && self.vecs >= 2 && self.last_lanes == self.lanes && self.back < self.lanes;
        width_ok
            && back_ok
            && (1..=max_accs(self.elem, self.lanes)).contains(&accs)
            && (1..=self.lanes).contains(&self.last_lanes)
            && self.kinds.iter().all(kind_ok)
            && epi_ok
            && quant_ok
            && res_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An early last vector is whole, within one vector's lanes, after
    /// another vector of its row, and x86's only.
    #[test]
    fn early_last_vectors_are_well_formed() {
        let t = PatternTile {
            elem: Elem::F32,
            kinds: vec![EntryKind::Column(vec![0, 1]), EntryKind::Kernel(4)],
            rows: 6,
            vecs: 2,
            lanes: 8,
            last_lanes: 8,
            back: 2,
            out_row: 56,
            in_row: 64,
            accumulate: true,
            epi: None,
            quant: None,
            res_u8: None,
        };
        assert!(t.fits());
        assert_eq!((t.start(0), t.start(1)), (0, 6));
        assert!(PatternTile { back: 0, last_lanes: 6, ..t.clone() }.fits());
        for bad in [
            PatternTile { vecs: 1, rows: 12, ..t.clone() },
            PatternTile { last_lanes: 6, ..t.clone() },
            PatternTile { back: 8, ..t.clone() },
            PatternTile { lanes: 4, ..t.clone() },
        ] {
            assert!(!bad.fits(), "{bad:?}");
        }
    }
}
