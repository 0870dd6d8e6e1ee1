//! The assembled tiles of one integer conv kernel ([`Assembled`]): which
//! variants (full and last row blocks; with or without their own epilogue;
//! the tail products of a plane's few last pixels) the kernel calls, each
//! assembled only where some unit needs it.

use cranelift_codegen::ir::{SigRef, Value};

use super::super::{Family, Kernel};
use super::pack::QuadPack;
use super::{pairs, Dims};
use crate::ukernel::avx2::{qbyte_tile, qgemm_tile, ymm_qdot_tail, ymm_tail_lanes, QdotEpi, YMM_TAIL_PIXELS};
use crate::ukernel::avx512::{qdot_tail, qdot_tile, qdot_tile_tail, QDOT_TAIL_PIXELS};
use crate::ukernel::neon::{mull_tile, sdot_tile};

/// The assembled tiles of one kernel (AVX2 pairs, or VNNI, AVX2, `sdot`
/// or `smull` quads): their
/// addresses for full and last row blocks (`None` where a block size does
/// not occur or is not needed, or an AVX2 tile did not assemble: the
/// Cranelift tile runs there; quads have no Cranelift tile, so there it is
/// an error), the tiles with their own epilogue (whole units run one at a
/// time: none where [`Dims::paired`] leaves no whole unit alone),
/// their call signature, and the task scratch the sums-only tiles write
/// their `rows × px` i32 sums to. With VNNI and a last unit of at most
/// [`QDOT_TAIL_PIXELS`] pixels, the tail products (`ukernel::avx512::qdot_tail`)
/// that write those sums for it instead, and their row-offset table; with
/// AVX2 and no VNNI, for a last unit of at most [`YMM_TAIL_PIXELS`], AVX2's
/// (`ukernel::avx2::ymm_qdot_tail`, pairs or quads as the tiles) and its
/// lane table. With listed steps (`Dims::listed`) no tail products: the
/// sums-only listed tile takes a last partial unit. Where units run in
/// chunks (VNNI, dense), the fused tile with that tail riding along
/// (`ukernel::avx512::qdot_tile_tail`) for a chunk holding both.
pub(super) struct Assembled {
    pub(super) code: [Option<Value>; 2],
    pub(super) fused: [Option<Value>; 2],
    pub(super) tail: [Option<Value>; 2],
    /// The fused tile with a tail riding along (a seventh argument:
    /// `Kernel::ukernel_sig(7)`).
    pub(super) ride: [Option<Value>; 2],
    pub(super) index: Option<Value>,
    /// Byte quads at strides 1 and 2: the assembled packer of whole units.
    pub(super) pack: Option<QuadPack>,
    pub(super) sig: SigRef,
    pub(super) sums: Value,
}

impl Assembled {
    /// `tail`: the last unit's pixels; fewer than `px` take the sums-only
    /// tile (or the tail products) and the Cranelift epilogue even when
    /// `epi` is given. `chunked`: units run in chunks ([`super::chunks`]).
    pub(super) fn new(
        k: &mut Kernel,
        d: &Dims,
        epi: Option<&QdotEpi>,
        tail: usize,
        chunked: bool,
        taps: &[i32],
    ) -> Result<Assembled, String> {
        let partial = tail != d.px;
        let (mut code, mut fused, mut tails, mut ride) = ([None, None], [None, None], [None, None], [None, None]);
        // a size no block has is not assembled (its bytes would sit unused in the object)
        let full = if d.mg >= d.rows { d.rows } else { 0 };
        let (vnni, dotprod, neon) = (k.caps.vnni, k.caps.dotprod, k.caps.neon);
        let steps = super::listed::steps(d);
        let quads = |r: usize, e: Option<&QdotEpi>| match (vnni, dotprod, neon) {
            (true, ..) => {
                qdot_tile(r, e, steps).map(|c| (Family::Avx512, c)).map_err(|e| format!("internal: VNNI tile: {e}"))
            }
            // sums only: the Cranelift epilogue does the rest
            (_, true, _) => sdot_tile(r, steps).map(|c| (Family::Neon, c)).map_err(|e| format!("internal: {e}")),
            (.., true) => mull_tile(r, steps).map(|c| (Family::Neon, c)).map_err(|e| format!("internal: {e}")),
            _ => qbyte_tile(r, e, steps).map(|c| (Family::Avx2, c)).map_err(|e| format!("internal: byte tile: {e}")),
        };
        // AVX2's tail products (without VNNI) take pairs and AVX2's byte quads
        // (listed steps: the sums-only tile takes the last unit)
        let dense = d.listed.is_none();
        let ymm_tail = dense && !vnni && k.caps.avx2 && tail <= YMM_TAIL_PIXELS;
        let tail_products = (dense && vnni && tail <= QDOT_TAIL_PIXELS) || ymm_tail;
        for (i, r) in [full, d.mg % d.rows].into_iter().enumerate() {
            if r == 0 {
                continue;
            }
            if partial && tail_products {
                let (family, bytes) = match ymm_tail {
                    true => (
                        Family::Avx2,
                        ymm_qdot_tail(r, tail, d.quads).map_err(|e| format!("internal: AVX2 tail: {e}"))?,
                    ),
                    false => (Family::Avx512, qdot_tail(r, tail).map_err(|e| format!("internal: VNNI tail: {e}"))?),
                };
                tails[i] = Some(k.code(family, bytes));
                if let Some(e) = epi.filter(|_| vnni && chunked) {
                    let bytes = qdot_tile_tail(r, e, tail).map_err(|e| format!("internal: VNNI tile and tail: {e}"))?;
                    ride[i] = Some(k.code(Family::Avx512, bytes));
                }
            }
            if let Some(e) = epi {
                // whole units all in pairs (the wide tiles) need no tile of their own
                if pairs::single_whole_units(d) {
                    let (family, bytes) = match d.quads {
                        true => quads(r, Some(e))?,
                        false => {
                            (Family::Avx2, qgemm_tile(r, Some(e)).map_err(|e| format!("internal: pair tile: {e}"))?)
                        }
                    };
                    fused[i] = Some(k.code(family, bytes));
                }
                // the last unit takes the tail products, or there is none
                if !partial || tail_products {
                    continue;
                }
            }
            let bytes = match d.quads {
                true => Some(quads(r, None)?),
                false => qgemm_tile(r, None).ok().map(|c| (Family::Avx2, c)),
            };
            code[i] = bytes.map(|(f, c)| k.code(f, c));
        }
        let index = tails.iter().any(Option::is_some).then(|| match ymm_tail {
            true => k.blob(ymm_tail_lanes()),
            false => k.blob((0..16i32).flat_map(|r| (16 * r).to_le_bytes()).collect()),
        });
        let sig = k.ukernel_sig(6);
        let pack = QuadPack::new(k, d, taps)?;
        let sums = k.task_scratch(d.rows * 4 * d.px);
        Ok(Assembled { code, fused, tail: tails, ride, index, pack, sig, sums })
    }
}
