//! N:M sparsity of products and convs (SparseGPT's structured form): of
//! every `m` consecutive input channels of an output channel (for a conv,
//! at each kernel tap), `n` weights are kept.
//!
//! Where pattern pruning ([`crate::prune`]) gives 3x3 convs their PatDNN
//! structure, this is the structure the issue asks for Gemm/MatMul and 1x1
//! convs: a fixed fraction `n/m` of every row is kept, in groups small
//! enough that the kept positions cost `⌈log₂ m⌉` bits each.
//!
//! With `unit` > 1 the group's members are runs of that many consecutive
//! input channels (byte quads for the integer kernels), kept or dropped
//! whole.
//!
//! - **Choice**: for each group, the kept subset whose dropped weights `D`
//!   have the least Optimal-Brain-Surgeon cost `w_Dᵀ([H⁻¹]_DD)⁻¹w_D` (the
//!   output error when the rest of the group adapts; the same saliency as
//!   the patterns' choice), or the `n` largest magnitudes (`magnitude`, the
//!   uncompensated baseline). Every subset is tried: `C(m, n)` of them.
//! - **Compensation** is the patterns' own: each row's kept weights re-solved
//!   by least squares against the FP32 layer's output
//!   ([`crate::prune::compensate`]).
//!
//! Contract: the returned mask keeps exactly `n` runs of every group; the
//! layer needs input channels (per conv group) divisible by `m · unit`.

use faer::Mat;

use crate::layer::Site;
use crate::linalg;
use crate::plan::NmSparsity;
use crate::CompressError;

/// Whether N:M applies to the layer: its input channels per group are a
/// multiple of `m · unit` (products: `K`).
pub fn applies(site: &Site, nm: NmSparsity) -> bool {
    let channels = site.cols / site.kernel_area().max(1);
    channels > 0 && channels.is_multiple_of(nm.span())
}

/// Every `n`-subset of `0..m`, as bitmasks in increasing order.
fn subsets(nm: NmSparsity) -> Vec<u32> {
    (0u32..1 << nm.m).filter(|s| s.count_ones() as usize == nm.n).collect()
}

/// The kept weights (`[rows][cols]`) of an N:M layer, chosen from each conv
/// group's `H⁻¹` (OBS) or by magnitude; with `nm.block` > 1 each block of
/// that many consecutive output channels (within a conv group; the last
/// one shorter) keeps the subset whose summed cost over its rows is least.
pub fn choose(
    site: &Site,
    rows: &[Vec<f64>],
    hinv: &[Mat<f64>],
    nm: NmSparsity,
    magnitude: bool,
) -> Result<Vec<Vec<bool>>, CompressError> {
    let area = site.kernel_area().max(1);
    let channels = site.cols / area;
    let rows_per_group = (site.rows / site.groups()).max(1);
    let subsets = subsets(nm);
    let mut keep = vec![vec![false; site.cols]; rows.len()];
    let mut o0 = 0;
    while o0 < rows.len() {
        // a block: `nm.block` rows, not past the end of its conv group
        let group_end = (o0 / rows_per_group + 1) * rows_per_group;
        let o1 = (o0 + nm.block).min(group_end).min(rows.len());
        let hi = &hinv[o0 / rows_per_group];
        for c0 in (0..channels).step_by(nm.span()) {
            for t in 0..area {
                let cols: Vec<usize> = (0..nm.span()).map(|i| (c0 + i) * area + t).collect();
                let best = best_subset(&cols, &rows[o0..o1], hi, &subsets, nm, magnitude)?;
                for row in &mut keep[o0..o1] {
                    for (i, &j) in cols.iter().enumerate() {
                        row[j] = best & (1 << (i / nm.unit)) != 0;
                    }
                }
            }
        }
        o0 = o1;
    }
    Ok(keep)
}

/// The subset of the group `cols` (`nm.m` runs of `nm.unit` columns)
/// whose dropped runs cost least, summed over `rows` (ties: the lowest
/// mask).
fn best_subset(
    cols: &[usize],
    rows: &[Vec<f64>],
    hinv: &Mat<f64>,
    subsets: &[u32],
    nm: NmSparsity,
    magnitude: bool,
) -> Result<u32, CompressError> {
    let mut best = (f64::INFINITY, subsets[0]);
    for &s in subsets {
        // the dropped columns: every column of each run not in `s`
        let dropped: Vec<usize> = (0..cols.len()).filter(|i| s & (1 << (i / nm.unit)) == 0).map(|i| cols[i]).collect();
        let mut cost = 0.0;
        for w in rows {
            cost += if magnitude {
                dropped.iter().map(|&c| w[c] * w[c]).sum()
            } else {
                linalg::obs_cost_of(dropped.len(), |i, j| hinv[(dropped[i], dropped[j])], |i| w[dropped[i]])?
            };
        }
        if cost < best.0 {
            best = (cost, s);
        }
    }
    Ok(best.1)
}

/// Bytes of an N:M weight's stored form: `kept` values of `value_bytes`
/// each plus `⌈log₂ m⌉` bits of position per kept run of `nm.unit`
/// values, shared by a block's `nm.block` rows.
pub fn stored_bytes(kept: usize, value_bytes: usize, nm: NmSparsity) -> usize {
    let bits = usize::BITS - (nm.m - 1).leading_zeros();
    kept * value_bytes + (kept.div_ceil(nm.unit) * bits as usize).div_ceil(8 * nm.block)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MatMul layer with weight `[K = cols, N = rows]`.
    fn site(rows: usize, cols: usize) -> Site {
        let src = format!(
            "graph \"g\"\n  input %0 \"x\": f32[1,{cols}]\n  const %1 \"w\": f32[{cols},{rows}] = [{}]\n  \
             %2 = MatMul{{layer=\"fc\"}}(%0, %1): f32[1,{rows}] @\"fc\"\n  output \"y\" = %2\n",
            vec!["0.5"; rows * cols].join(",")
        );
        let g = kerf_ir::text::parse(&src).unwrap_or_else(|e| panic!("{e}"));
        crate::layer::sites(&g).remove(0)
    }

    /// A `rows × cols` product layer with uniform random weights and the
    /// `H⁻¹` of 200 uniform random input columns (seed `seed`).
    fn random_layer(rows: usize, cols: usize, seed: u64) -> (Site, Vec<Vec<f64>>, Mat<f64>) {
        let mut rnd = crate::testutil::uniform(seed);
        let w: Vec<Vec<f64>> = (0..rows).map(|_| (0..cols).map(|_| rnd()).collect()).collect();
        let x = Mat::from_fn(cols, 200, |_, _| rnd());
        let hinv =
            linalg::inverse_spd(&linalg::dampened(&(&x * x.transpose()), 0.01)).unwrap_or_else(|e| panic!("{e}"));
        (site(rows, cols), w, hinv)
    }

    #[test]
    fn every_group_keeps_exactly_n() {
        let (s, w, hinv) = random_layer(5, 16, 7);
        for nm in [NmSparsity::per_row(2, 4), NmSparsity::per_row(1, 4), NmSparsity::per_row(3, 8)] {
            for magnitude in [false, true] {
                let keep = choose(&s, &w, std::slice::from_ref(&hinv), nm, magnitude).unwrap_or_else(|e| panic!("{e}"));
                for row in &keep {
                    for group in row.chunks(nm.m) {
                        assert_eq!(group.iter().filter(|&&k| k).count(), nm.n, "{nm} magnitude={magnitude}");
                    }
                }
            }
        }
    }

    /// Blocks of `nm.block` consecutive output channels (the last one
    /// shorter) keep the same positions, `n` of every group; storage counts
    /// a block's positions once.
    #[test]
    fn blocks_share_their_positions() {
        let (s, w, hinv) = random_layer(20, 16, 11);
        let nm: NmSparsity = "2:4/8".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(nm.to_string(), "2:4/8");
        let keep = choose(&s, &w, std::slice::from_ref(&hinv), nm, false).unwrap_or_else(|e| panic!("{e}"));
        for (b, block) in keep.chunks(8).enumerate() {
            assert!(block.iter().all(|r| r == &block[0]), "block {b} rows differ");
            for group in block[0].chunks(4) {
                assert_eq!(group.iter().filter(|&&k| k).count(), 2, "block {b}");
            }
        }
        // per-row choices differ between rows of a block on random weights
        let own = choose(&s, &w, std::slice::from_ref(&hinv), NmSparsity::per_row(2, 4), false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(own[..8].iter().any(|r| r != &own[0]), "per-row choices are not all alike");
        assert_eq!(stored_bytes(64, 1, nm), 64 + 16 / 8);
        for bad in ["2:4/0", "2:4/65", "2:4/x", "2:4/"] {
            assert!(bad.parse::<NmSparsity>().is_err(), "{bad}");
        }
    }

    /// With runs (`2:4x4/16`), each block keeps two of every four runs of
    /// four input channels, each run whole; the text round-trips, and
    /// layers whose channels are not whole groups of runs are refused.
    #[test]
    fn runs_are_kept_and_dropped_whole() {
        let (s, w, hinv) = random_layer(32, 64, 13);
        let nm: NmSparsity = "2:4x4/16".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((nm.n, nm.m, nm.unit, nm.block, nm.span()), (2, 4, 4, 16, 16));
        assert_eq!(nm.to_string(), "2:4x4/16");
        assert_eq!("1:2x2".parse::<NmSparsity>().map(|n| n.to_string()), Ok("1:2x2".to_string()));
        for magnitude in [false, true] {
            let keep = choose(&s, &w, std::slice::from_ref(&hinv), nm, magnitude).unwrap_or_else(|e| panic!("{e}"));
            for block in keep.chunks(16) {
                assert!(block.iter().all(|r| r == &block[0]));
                for group in block[0].chunks(16) {
                    let runs: Vec<&[bool]> = group.chunks(4).collect();
                    assert!(runs.iter().all(|r| r.iter().all(|&k| k == r[0])), "a run split: {group:?}");
                    assert_eq!(runs.iter().filter(|r| r[0]).count(), 2, "{group:?}");
                }
            }
        }
        assert!(applies(&s, nm));
        assert!(!applies(&site(4, 24), nm), "24 channels are not whole groups of 16");
        // positions: one 2-bit index per kept run, shared by the block
        assert_eq!(stored_bytes(32, 1, nm), 32 + (8 * 2usize).div_ceil(8 * 16));
        for bad in ["2:4x0", "2:4x9", "2:4x", "2:4xq/16"] {
            assert!(bad.parse::<NmSparsity>().is_err(), "{bad}");
        }
    }

    /// On correlated inputs, the OBS choice with the least-squares refit
    /// leaves less output error than keeping the largest weights unrefitted
    /// and than the largest weights refitted (the choice matters, not only
    /// the refit).
    #[test]
    fn obs_choice_beats_magnitude() {
        let (rows, cols, n) = (6, 32, 800);
        let s = site(rows, cols);
        let mut rnd = crate::testutil::uniform(0x5eed);
        // inputs with correlated neighbours and uneven scales
        let base = Mat::from_fn(cols, n, |_, _| rnd());
        let x = Mat::from_fn(cols, n, |i, j| (1.0 + (i % 5) as f64) * (base[(i, j)] + 0.8 * base[((i + 1) % cols, j)]));
        let h = &x * x.transpose();
        let hinv = linalg::inverse_spd(&linalg::dampened(&h, 0.01)).unwrap_or_else(|e| panic!("{e}"));
        let w: Vec<Vec<f64>> = (0..rows).map(|_| (0..cols).map(|_| rnd()).collect()).collect();
        let nm = NmSparsity::per_row(2, 4);
        let err = |wh: &[Vec<f64>]| -> f64 {
            let mut e = 0.0;
            for (r, rh) in w.iter().zip(wh) {
                let d: Vec<f64> = r.iter().zip(rh).map(|(a, b)| a - b).collect();
                for i in 0..cols {
                    for j in 0..cols {
                        e += d[i] * h[(i, j)] * d[j];
                    }
                }
            }
            e
        };
        let refit = |keep: &[Vec<bool>]| {
            crate::prune::refit(&s, &w, keep, std::slice::from_ref(&h), std::slice::from_ref(&h))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let obs = choose(&s, &w, std::slice::from_ref(&hinv), nm, false).unwrap_or_else(|e| panic!("{e}"));
        let mag = choose(&s, &w, std::slice::from_ref(&hinv), nm, true).unwrap_or_else(|e| panic!("{e}"));
        let masked: Vec<Vec<f64>> = w
            .iter()
            .zip(&mag)
            .map(|(r, k)| r.iter().zip(k).map(|(&v, &kp)| if kp { v } else { 0.0 }).collect())
            .collect();
        let (e_obs, e_mag_refit, e_mag) = (err(&refit(&obs)), err(&refit(&mag)), err(&masked));
        eprintln!("output error: obs+refit {e_obs:.1}, magnitude+refit {e_mag_refit:.1}, magnitude {e_mag:.1}");
        assert!(e_obs < e_mag_refit, "OBS choice {e_obs} vs magnitude choice refitted {e_mag_refit}");
        assert!(e_obs * 2.0 < e_mag, "OBS + refit {e_obs} vs magnitude alone {e_mag}");
    }

    #[test]
    fn storage_counts_position_bits() {
        let nm = |n, m| NmSparsity::per_row(n, m);
        // 2:4: 2 bits per kept value (NVIDIA's metadata)
        assert_eq!(stored_bytes(8, 1, nm(2, 4)), 8 + 2);
        assert_eq!(stored_bytes(3, 4, nm(1, 2)), 12 + 1);
        assert_eq!(stored_bytes(16, 1, nm(4, 8)), 16 + 6);
    }
}
