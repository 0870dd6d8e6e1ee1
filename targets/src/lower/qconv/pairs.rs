//! Byte quads on AVX2 without VNNI, whole units in pairs: the wide byte
//! tile (`ukernel::avx2::qbyte_wide_tile`, `QBYTE_WIDE_ROWS` output
//! channels × 16 pixels) broadcasts each row's weights once for two units,
//! where the byte tile broadcasts them per unit of 8 pixels.
//!
//! A work item is a pair index `j` of an image and group: units `2j` and
//! `2j + 1` are packed one after the other into the task's B buffer and
//! every row block runs the wide tile over both. Units left over run one
//! at a time in the last item (`unit_body`), on the same row blocks: an odd
//! whole unit on the byte tile, the image's partial last unit on the tail
//! products or the sums-only tile and the Cranelift epilogue. Which
//! tile computes a pixel depends on its unit's index alone, and every
//! tile's sums are exact with the same epilogue, so the split over tasks
//! changes no bit.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{InstBuilder, SigRef, Value};

use super::super::epilogue::Act;
use super::super::{Family, Kernel, LResult};
use super::pack::pack_b;
use super::{call_fused, row_blocks, unit_body, unit_input, Dims, Ptrs, Unit};
use crate::isa::Caps;
use crate::ukernel::avx2::{qbyte_wide_tile, QdotEpi};

/// Whether a QConv's whole units run in pairs: byte quads on AVX2 without
/// VNNI (whose tile is one `zmm` of 16 pixels already), with the tiles'
/// own epilogue (`fused`), at least two whole units per image, and at
/// least [`MIN_ITEMS`] work items over the `planes` (images × groups).
pub(super) fn applies(caps: Caps, d: &Dims, fused: bool, planes: usize) -> bool {
    let enough = planes * items(d) >= MIN_ITEMS;
    d.quads && caps.avx2 && !caps.vnni && !caps.dotprod && fused && whole_units(d) >= 2 && enough
}

/// Fewest work items a paired kernel keeps: pairing halves them, and the
/// work is split over items only, so a small plane would leave the threads
/// of an 8-core device idle (ResNet-18's 7x7 planes: 7 units, 4 pairs; they
/// stay unpaired, 14x14 planes pair into 13 items).
const MIN_ITEMS: usize = 8;

/// Whole units (`d.px` pixels) per image.
fn whole_units(d: &Dims) -> usize {
    d.pixels / d.px
}

/// Whether some whole unit runs alone on the byte tile: always unless
/// [`Dims::paired`], then where an image has an odd number of them.
pub(super) fn single_whole_units(d: &Dims) -> bool {
    !d.paired || whole_units(d) % 2 == 1
}

/// Work items per image and group: pairs, the last one holding what is
/// left (possibly a single unit).
pub(super) fn items(d: &Dims) -> usize {
    d.units.div_ceil(2)
}

/// The wide tiles of one kernel, for full row blocks and the last, shorter
/// one (`None` where a block size does not occur), and their signature.
pub(super) struct Wide {
    code: [Option<Value>; 2],
    sig: SigRef,
}

impl Wide {
    pub(super) fn new(k: &mut Kernel, d: &Dims, epi: &QdotEpi) -> Result<Wide, String> {
        let full = if d.mg >= d.rows { d.rows } else { 0 };
        let mut code = [None, None];
        for (slot, rows) in code.iter_mut().zip([full, d.mg % d.rows]) {
            if rows > 0 {
                let c = qbyte_wide_tile(rows, epi).map_err(|e| format!("internal: {e}"))?;
                *slot = Some(k.code(Family::Avx2, c.bytes));
            }
        }
        Ok(Wide { code, sig: k.ukernel_sig(6) })
    }
}

/// Work item `u` (`u.jp` a pair index): a pair of whole units on the wide
/// tile, or the units left over one at a time (`tail` pixels in the last).
pub(super) fn item(k: &mut Kernel, d: &Dims, act: Act, p: &Ptrs, u: &Unit, tail: usize) -> LResult {
    let pairs = whole_units(d) / 2;
    let mut result = Ok(());
    let is_pair = k.b.ins().icmp_imm_s(IntCC::SignedLessThan, u.jp, pairs as i64);
    k.if_then(is_pair, |k| {
        let jp = k.b.ins().imul_imm_s(u.jp, 2);
        result = pair(k, d, p, &Unit { jp, ..*u });
    });
    if 2 * pairs == d.units {
        return result;
    }
    let last = k.b.ins().icmp_imm_s(IntCC::Equal, u.jp, pairs as i64);
    k.if_then(last, |k| {
        for j in 2 * pairs..d.units {
            let valid = if j + 1 == d.units { tail } else { d.px };
            let jp = k.ic(j as i64);
            result = result.clone().and(unit_body(k, d, act, p, &Unit { jp, ..*u }, valid));
        }
    });
    result
}

/// Whole units `u.jp` and `u.jp + 1`: both packed, then the wide tile on
/// every row block.
fn pair(k: &mut Kernel, d: &Dims, p: &Ptrs, u: &Unit) -> LResult {
    let w = p.wide.as_ref().ok_or("internal: paired QConv without its wide tiles")?;
    let table = p.table.ok_or("internal: paired QConv without its epilogue table")?;
    let xb = unit_input(k, d, p, u);
    pack_b(k, d, p, u, xb, d.px, p.bbuf);
    let second = Unit { jp: k.b.ins().iadd_imm_s(u.jp, 1), ..*u };
    let dst = k.add_c(p.bbuf, (d.steps * d.step_bytes()) as i64);
    pack_b(k, d, p, &second, xb, d.px, dst);
    row_blocks(k, d, p, u, |k, a_blk, m0, rows| {
        let code = w.code[usize::from(rows != d.rows)].ok_or("internal: no wide tile for the row block")?;
        call_fused(k, d, p, u, (code, w.sig), table, (a_blk, m0), &[]);
        Ok(())
    })
}
