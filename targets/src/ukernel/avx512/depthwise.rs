//! The VNNI depthwise pass: one channel's whole output plane of a
//! depthwise `QConv` straight from its u8 input plane, no padded copy, no
//! conversion to floats.
//!
//! **Quads.** `vpdpbusd` adds four u8 × s8 products into each i32 lane.
//! A row of up to four taps is one quad: lane `p` of a block of 16 output
//! pixels gets the bytes `x[iy, s·p + t·d − pw]` for `t < kw` (a zero index
//! for the rest, whose weight is 0 too), and the row's weights are one
//! broadcast quad. So an output row costs, per input row of the window
//! and block of 16 pixels, one masked load, one `vpermq` (each 128-bit
//! lane gets the 16 input bytes its four pixels read) and one `vpshufb`
//! (the quads), then one `vpdpbusd`: 16 · kw multiply-adds.
//!
//! **Padding.** The input plane is read in place. Bytes left or right of
//! the row are masked out of the load (`vmovdqu8` with a byte mask: no
//! fault, no read) and merged from a vector of zero-point bytes; an input
//! row above or below the plane is that vector whole. So a padded tap
//! reads the zero point and adds `zp·w`, which the epilogue's `zp·Σ w`
//! (over every tap) takes out: the sums are `Σ (x − zp)·w` exactly.
//!
//! **Epilogue.** `QConv`'s operations in their order, as in the integer
//! tiles (`int_to_real`): `f32(acc − corr) · scale + bias`, the residual,
//! the activation, then the f32 store or the requantising one
//! (`int_tile::requantise`, then `vpmovdb`): the reference's bits and
//! bytes.
//!
//! The row loop runs the rows whose window lies inside the plane; the
//! rows at the top and bottom (a padded window) are emitted one by one.
//! Every CPU with AVX-512 VNNI has AVX-512BW, whose byte instructions
//! (`vmovdqu8`, `vpshufb` on `zmm`, `kmovq`) this kernel uses.

use iced_x86::code_asm::*;

use super::super::avx2::{activation, requantise, requantise_setup};
use super::super::epi::TileEpi;
use super::AsmRegisterZmm as Z;

/// Most accumulators in flight (blocks of 16 pixels per pass over a row).
const ACC: [Z; 12] = [zmm0, zmm1, zmm2, zmm3, zmm4, zmm5, zmm6, zmm7, zmm8, zmm9, zmm10, zmm11];
/// Quads being built, in turn.
const TMP: [Z; 4] = [zmm12, zmm13, zmm14, zmm15];
/// The rows' weight quads (`zmm16 + ky`, below [`CORR`]).
const W0: usize = 16;
/// Most rows of taps.
pub const DW_QUAD_MAX_KH: usize = 5;
/// Byte offsets in a channel's table: the rows' weight quads, then the
/// i32 `zp·Σ w`, the f32 scale and the f32 bias.
pub const DW_QUAD_CORR: usize = 4 * DW_QUAD_MAX_KH;
/// Bytes per channel in the table.
pub const DW_QUAD_TABLE: usize = 64;

/// A depthwise plane's geometry and epilogue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DwQuad {
    /// The plane's geometry (kernel bounds: `kh` up to [`DW_QUAD_MAX_KH`],
    /// `kw` up to 4, `sw` 1 or 2, `ow` up to 1024; the whole fit is
    /// [`kerf_ir::DepthwisePlane::quads_fit`]).
    pub plane: kerf_ir::DepthwisePlane,
    /// The input's zero point (what padded taps read).
    pub zp: u8,
    /// Residual and activation.
    pub epi: TileEpi,
    /// Store u8 through this grid (`factor`, `zp`; `kerf_ir::op::QOut::grid`) instead of f32.
    pub quant: Option<(f32, u8)>,
}

impl DwQuad {
    /// Bytes of input each block's load covers, from the block's first
    /// column: whole qwords through the last 128-bit lane's window.
    fn span(&self) -> usize {
        8 * (self.lane_base(3) / 8 + 2)
    }
    /// Byte offset (from the block's first column) of 128-bit lane `j`'s
    /// window: the qword its first pixel's first tap falls in.
    fn lane_base(&self, j: usize) -> usize {
        (self.plane.sw * 4 * j) / 8 * 8
    }
    /// The `vpshufb` index of lane `j`'s pixel `i` and tap `t` (0x80: a
    /// zero byte past the row's taps).
    fn index(&self, j: usize, i: usize, t: usize) -> u8 {
        if t >= self.plane.kw {
            return 0x80;
        }
        (self.plane.sw * (4 * j + i) + t * self.plane.dw - self.lane_base(j)) as u8
    }
    /// Whether the kernel takes this geometry
    /// ([`kerf_ir::DepthwisePlane::quads_fit`], the fit the rules share:
    /// each output row whose window leaves the plane is emitted on its own).
    pub fn fits(&self) -> bool {
        self.plane.quads_fit()
    }
    /// Block `b`'s load mask: the bytes of its span inside the row.
    fn mask(&self, b: usize) -> u64 {
        let c0 = (16 * b * self.plane.sw) as i64 - self.plane.pw as i64;
        (0..self.span()).filter(|&i| (0..self.plane.w as i64).contains(&(c0 + i as i64))).fold(0, |m, i| m | 1 << i)
    }
    /// The residual's address over the output's (f32 against the
    /// output's element).
    fn res_scale(&self) -> i32 {
        4 / self.out_size() as i32
    }
    /// The pass's `indices` argument: the `vpermq` qword indices that give
    /// each 128-bit lane its window, then the `vpshufb` byte indices that
    /// make its four pixels' quads (64 bytes each).
    pub fn indices(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(128);
        for j in 0..4 {
            let q = (self.lane_base(j) / 8) as u64;
            bytes.extend(q.to_le_bytes());
            bytes.extend((q + 1).to_le_bytes());
        }
        for j in 0..4 {
            bytes.extend((0..16).map(|e| self.index(j, e / 4, e % 4)));
        }
        bytes
    }
    /// The distinct non-empty load masks of the row's blocks: at most
    /// [`MAX_MASKS`] (a span of at most 40 bytes and blocks 16·`sw` apart
    /// give at most two blocks cut by the left edge, two by the right, and
    /// the whole ones); [`dw_quad`] refuses more.
    pub fn masks(&self) -> Vec<u64> {
        let mut masks: Vec<u64> = Vec::new();
        for m in (0..self.plane.ow.div_ceil(16)).map(|b| self.mask(b)) {
            if m != 0 && !masks.contains(&m) {
                masks.push(m);
            }
        }
        masks
    }
    /// Bytes per output element.
    fn out_size(&self) -> i64 {
        if self.quant.is_some() {
            1
        } else {
            4
        }
    }
}

/// Machine code of the VNNI depthwise pass (see the module docs) over
/// `count` channel planes: arguments (System V order) `x` (the first
/// plane's u8, planes `h·w` bytes apart), `out` (its outputs, f32 or u8,
/// planes `oh·ow` elements apart), `table` (per plane [`DW_QUAD_TABLE`]
/// bytes: per row of taps its four s8 weights, then at [`DW_QUAD_CORR`]
/// the i32 `zp·Σ w`, the f32 scale and the f32 bias), `residual` (f32, the
/// output's layout: passed as `residual − out·(4 / output element size)`
/// so that one register addresses it from the output's; read only with
/// `epi.residual`), `count` (≥ 0) and `indices` ([`DwQuad::indices`]).
/// `None` for a geometry [`DwQuad::fits`] refuses.
pub fn dw_quad(g: &DwQuad) -> Option<Vec<u8>> {
    (g.fits() && g.masks().len() <= MAX_MASKS).then(|| assemble(g).ok()).flatten()
}

fn assemble(g: &DwQuad) -> Result<Vec<u8>, IcedError> {
    let mut a = CodeAssembler::new(64)?;
    a.set_prefer_vex(false);
    let p = Pass::setup(&mut a, g)?;
    let (x, out, table, count) = (rdi, rsi, rdx, r8);
    super::super::counted_loop(&mut a, count, |a| {
        p.plane(a)?;
        a.add(x, (g.plane.h * g.plane.w) as i32)?;
        a.add(out, (g.plane.oh as i64 * p.out_row) as i32)?;
        a.add(table, DW_QUAD_TABLE as i32)
    })?;
    for r in (W0..32).filter_map(upper) {
        a.vpxord(r, r, r)?;
    }
    super::super::leaf_end(a)
}

/// `zmm16`–`zmm31` by number.
fn upper(n: usize) -> Option<Z> {
    [zmm16, zmm17, zmm18, zmm19, zmm20, zmm21, zmm22, zmm23, zmm24, zmm25, zmm26, zmm27, zmm28, zmm29, zmm30, zmm31]
        .get(n.checked_sub(16)?)
        .copied()
}

/// Where a row's operands are: a base register and a displacement each
/// (the residual's: `rcx` plus the output's address times
/// [`DwQuad::res_scale`]).
struct Rows {
    /// The input row of the window's first tap row (may be outside the
    /// plane when that row is not read).
    x: (AsmRegister64, i64),
    out: (AsmRegister64, i64),
}

/// The pass's compile-time plan and its registers.
struct Pass<'g> {
    g: &'g DwQuad,
    /// Per block the mask register of its loads (`k1`..=`k5`, one per
    /// distinct mask), `None` where its span lies outside the row.
    block_mask: Vec<Option<AsmRegisterK>>,
    /// Bytes between output rows.
    out_row: i64,
    /// The requantiser's constants are loaded once, in `setup`.
    requant_set: bool,
}

/// The epilogue's per-channel i32 `zp·Σ w`, f32 scale and bias.
const CORR: Z = zmm21;
const SCALE: Z = zmm22;
const BIAS: Z = zmm23;
const PERM: Z = zmm24;
const SHUF: Z = zmm25;
const ZP: Z = zmm26;

impl<'g> Pass<'g> {
    /// Loads the indices, the zero-point vector and the masks.
    fn setup(a: &mut CodeAssembler, g: &'g DwQuad) -> Result<Pass<'g>, IcedError> {
        a.vmovdqu64(PERM, zmmword_ptr(r9))?;
        a.vmovdqu64(SHUF, zmmword_ptr(r9 + 64))?;
        a.mov(eax, u32::from(g.zp) * 0x0101_0101)?;
        a.vpbroadcastd(ZP, eax)?;
        let blocks = g.plane.ow.div_ceil(16);
        let masks = g.masks();
        for (&m, &k) in masks.iter().zip(&MASK_REGS) {
            a.mov(rax, m)?;
            a.kmovq(k, rax)?;
        }
        let block_mask =
            (0..blocks).map(|b| masks.iter().zip(&MASK_REGS).find(|(&m, _)| m == g.mask(b)).map(|(_, &k)| k)).collect();
        let lanes = g.plane.ow - 16 * (blocks - 1);
        if lanes < 16 {
            a.mov(eax, (1u32 << lanes) - 1)?;
            a.kmovw(k7, eax)?;
        }
        let out_row = g.plane.ow as i64 * g.out_size();
        // the requantiser's constants once (`zmm28`–`zmm31` hold nothing else here)
        let requant_set = match g.quant {
            Some(grid) => requantise_setup::<Z>(a, &g.epi, grid)?,
            None => false,
        };
        Ok(Pass { g, block_mask, out_row, requant_set })
    }

    /// Byte offset in the plane of output row `oy`'s first window row, column 0.
    fn x_row(&self, oy: usize) -> i64 {
        ((oy * self.g.plane.sh) as i64 - self.g.plane.ph as i64) * self.g.plane.w as i64
    }

    /// One channel's plane (`x` in `rdi`, `out` in `rsi`, its table at
    /// `rdx`): the rows with a padded window one by one, the others in
    /// groups in a loop (`r9`, `r10`: the group's input and output rows,
    /// `r11` the count).
    fn plane(&self, a: &mut CodeAssembler) -> Result<(), IcedError> {
        let g = self.g;
        for ky in 0..g.plane.kh {
            a.vpbroadcastd(weights(ky), dword_ptr(rdx + (4 * ky) as i64))?;
        }
        a.vpbroadcastd(CORR, dword_ptr(rdx + DW_QUAD_CORR as i64))?;
        a.vbroadcastss(SCALE, dword_ptr(rdx + (DW_QUAD_CORR + 4) as i64))?;
        a.vbroadcastss(BIAS, dword_ptr(rdx + (DW_QUAD_CORR + 8) as i64))?;
        let r0 = (0..g.plane.oh).find(|&oy| g.plane.inside(oy)).unwrap_or(g.plane.oh);
        let r1 = (r0..g.plane.oh).find(|&oy| !g.plane.inside(oy)).unwrap_or(g.plane.oh);
        for oy in (0..r0).chain(r1..g.plane.oh) {
            let at = Rows { x: (rdi, self.x_row(oy)), out: (rsi, oy as i64 * self.out_row) };
            self.rows(a, &at, 1, &|_, ky| self.g.plane.row_ok(oy, ky))?;
        }
        let group = self.group();
        let (groups, rest) = ((r1 - r0) / group, (r1 - r0) % group);
        let (x, out, n) = (r9, r10, r11);
        a.lea(x, rdi + self.x_row(r0))?;
        a.lea(out, rsi + r0 as i64 * self.out_row)?;
        let at = Rows { x: (x, 0), out: (out, 0) };
        if groups > 0 {
            a.mov(n, groups as u64)?;
            super::super::counted_loop(a, n, |a| {
                self.rows(a, &at, group, &|_, _| true)?;
                a.add(x, (group * g.plane.sh * g.plane.w) as i32)?;
                a.add(out, (group as i64 * self.out_row) as i32)
            })?;
        }
        if rest > 0 {
            self.rows(a, &at, rest, &|_, _| true)?;
        }
        Ok(())
    }

    /// Output rows computed together in the row loop: each input row's
    /// quads are built once for all of them (stride 1: 5 builds for 3
    /// rows instead of 9).
    fn group(&self) -> usize {
        if self.g.plane.sh == 1 {
            3
        } else {
            2
        }
    }

    /// `n` consecutive output rows from `at` (`ok(r, ky)`: whether row
    /// `r`'s tap row `ky` lies inside the plane): their blocks of 16
    /// pixels, `12 / n` blocks per pass.
    fn rows(
        &self,
        a: &mut CodeAssembler,
        at: &Rows,
        n: usize,
        ok: &dyn Fn(usize, usize) -> bool,
    ) -> Result<(), IcedError> {
        let blocks: Vec<usize> = (0..self.g.plane.ow.div_ceil(16)).collect();
        for chunk in blocks.chunks(ACC.len() / n) {
            self.sums(a, at, n, ok, chunk)?;
            for r in 0..n {
                let at = Rows { x: at.x, out: (at.out.0, at.out.1 + r as i64 * self.out_row) };
                self.store(a, &at, r * chunk.len(), chunk)?;
            }
        }
        Ok(())
    }

    /// The i32 sums of `n` rows' `blocks` (row `r`'s block `i` in
    /// `ACC[r·len + i]`): per input row the window reads, its quads once,
    /// each taken by every (row, tap row) that reads it.
    fn sums(
        &self,
        a: &mut CodeAssembler,
        at: &Rows,
        n: usize,
        ok: &dyn Fn(usize, usize) -> bool,
        blocks: &[usize],
    ) -> Result<(), IcedError> {
        let g = self.g;
        let len = blocks.len();
        for &r in &ACC[..n * len] {
            a.vpxord(r, r, r)?;
        }
        // input rows (from the first row's window top) and their readers
        let mut reads: Vec<(usize, Vec<(usize, usize)>)> = Vec::new();
        for r in 0..n {
            for ky in 0..g.plane.kh {
                let d = r * g.plane.sh + ky * g.plane.dh;
                match reads.iter_mut().find(|(e, _)| *e == d) {
                    Some((_, users)) => users.push((r, ky)),
                    None => reads.push((d, vec![(r, ky)])),
                }
            }
        }
        reads.sort_by_key(|(d, _)| *d);
        let mut turn = 0;
        for (d, users) in &reads {
            let inside = ok(users[0].0, users[0].1);
            for (i, &b) in blocks.iter().enumerate() {
                let q = if inside {
                    let q = TMP[turn % TMP.len()];
                    turn += 1;
                    let col = (16 * b * g.plane.sw) as i64 - g.plane.pw as i64;
                    let mem = zmmword_ptr(at.x.0 + (at.x.1 + (d * g.plane.w) as i64 + col));
                    self.load(a, q, mem, b)?;
                    a.vpermq(q, PERM, q)?;
                    a.vpshufb(q, q, SHUF)?;
                    q
                } else {
                    ZP
                };
                for &(r, ky) in users {
                    a.vpdpbusd(ACC[r * len + i], q, weights(ky))?;
                }
            }
        }
        Ok(())
    }

    /// `q` = block `b`'s span at `mem`, bytes outside the row the zero point.
    fn load(&self, a: &mut CodeAssembler, q: Z, mem: AsmMemoryOperand, b: usize) -> Result<(), IcedError> {
        let Some(k) = self.block_mask[b] else {
            return a.vmovdqa64(q, ZP);
        };
        if self.g.mask(b).count_ones() as usize == self.g.span() {
            a.vmovdqu8(masked(q, k).z(), mem)
        } else {
            a.vmovdqa64(q, ZP)?;
            a.vmovdqu8(masked(q, k), mem)
        }
    }

    /// The epilogue and the stores of one row's `blocks` from the
    /// accumulators from `ACC[first]` on (the last block's lanes past the
    /// row through `k7`).
    fn store(&self, a: &mut CodeAssembler, at: &Rows, first: usize, blocks: &[usize]) -> Result<(), IcedError> {
        let g = self.g;
        let acc = &ACC[first..first + blocks.len()];
        let partial = |b: usize| 16 * (b + 1) > g.plane.ow;
        for (&ac, &b) in acc.iter().zip(blocks) {
            // `int_to_real`'s operations, the table's values held in registers
            a.vpsubd(ac, ac, CORR)?;
            a.vcvtdq2ps(ac, ac)?;
            a.vmulps(ac, ac, SCALE)?;
            a.vaddps(ac, ac, BIAS)?;
            if g.epi.residual {
                let s = g.res_scale();
                let m = zmmword_ptr(rcx + at.out.0 * s + (at.out.1 + 16 * b as i64 * g.out_size()) * s as i64);
                match partial(b) {
                    true => a.vaddps(ac.k7(), ac, m)?,
                    false => a.vaddps(ac, ac, m)?,
                }
            }
        }
        match g.quant {
            Some(grid) => requantise(a, &g.epi, acc, grid, self.requant_set)?,
            None => activation(a, &g.epi, acc)?,
        }
        for (&ac, &b) in acc.iter().zip(blocks) {
            let off = at.out.1 + 16 * b as i64 * g.out_size();
            match (g.quant.is_some(), partial(b)) {
                (true, true) => a.vpmovdb(xmmword_ptr(at.out.0 + off).k7(), ac)?,
                (true, false) => a.vpmovdb(xmmword_ptr(at.out.0 + off), ac)?,
                (false, true) => a.vmovups(zmmword_ptr(at.out.0 + off).k7(), ac)?,
                (false, false) => a.vmovups(zmmword_ptr(at.out.0 + off), ac)?,
            }
        }
        Ok(())
    }
}

/// Row `ky`'s weight quads, broadcast.
fn weights(ky: usize) -> Z {
    [zmm16, zmm17, zmm18, zmm19, zmm20][ky]
}

/// Most distinct load masks ([`DwQuad::masks`]; no geometry has more:
/// the check in [`dw_quad`] only guards that argument).
const MAX_MASKS: usize = 5;

/// The load masks' registers ([`DwQuad::masks`]).
const MASK_REGS: [AsmRegisterK; MAX_MASKS] = [k1, k2, k3, k4, k5];

/// `q{k}`.
fn masked(q: Z, k: AsmRegisterK) -> Z {
    match k {
        k if k == k1 => q.k1(),
        k if k == k2 => q.k2(),
        k if k == k3 => q.k3(),
        k if k == k4 => q.k4(),
        _ => q.k5(),
    }
}
