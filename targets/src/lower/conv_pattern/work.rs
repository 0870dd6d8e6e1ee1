//! How threads share a pattern conv's output channels ("filters"): by
//! work, not by count.
//!
//! After connectivity pruning the filters of a layer keep very different
//! numbers of kernels: in resnet18 pruned by OBS saliency (patterns 8,
//! 50% connectivity) a layer's filters keep from 0 to 1,857 taps. Equal
//! numbers of filters per task then give unequal work: cut into four
//! ranges of filters, the busiest range of those layers holds 3–13% more
//! than its share (into two, up to 7%). So a task is given a range of
//! *work units* (per filter its kept taps, plus [`CALL_TAPS`] per channel
//! block for the tile call's own cost) and runs the filters whose first
//! unit falls in it: no task holds more than its share plus one filter.
//!
//! The filters keep their channel order. Running them longest first,
//! alike shapes side by side (PatDNN's filter kernel reordering, for
//! lockstep GPU threads), measured 6% *slower* on that resnet18 at two
//! threads and no faster at one (docs/compression.md, "Filter order").
//!
//! **Exact.** Each filter computes its own output plane with its own
//! program, whichever task runs it, so any split gives the serial bits
//! (`targets/tests/threads.rs`).

/// A tile call's fixed cost in taps: loading or storing its accumulators,
/// and one loop per entry kind.
pub(crate) const CALL_TAPS: u64 = 4;

/// Per filter its first work unit (prefix sums of the filters' work in
/// channel order), then the total: one entry more than filters.
pub(crate) fn starts(taps: &[u64], blocks: usize) -> Vec<u64> {
    let mut starts = Vec::with_capacity(taps.len() + 1);
    let mut at = 0u64;
    for t in taps {
        starts.push(at);
        at += t + CALL_TAPS * blocks as u64;
    }
    starts.push(at);
    starts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The filters a task given work units `lo..hi` runs: those whose first
    /// unit is in the range (what `conv_pattern`'s scan computes).
    fn filters(starts: &[u64], lo: u64, hi: u64) -> std::ops::Range<usize> {
        let count = |u: u64| starts[..starts.len() - 1].iter().filter(|&&s| s < u).count();
        count(lo)..count(hi)
    }

    #[test]
    fn prefix_sums_with_the_call_cost() {
        assert_eq!(starts(&[20, 0, 8], 2), [0, 28, 36, 52]);
        assert_eq!(starts(&[], 3), [0]);
    }

    /// Every split of the units into contiguous task ranges (as the
    /// runtime cuts them: `n` near-equal ranges) runs each filter exactly
    /// once, and no task's work exceeds its share by more than one filter.
    #[test]
    fn task_ranges_cover_each_filter_once_and_balance_work() {
        // a pruned layer's lengths: a few long filters, many short ones
        let taps: Vec<u64> = (0..37u64).map(|o| if o % 9 == 0 { 400 } else { 30 + 7 * (o % 5) }).collect();
        let s = starts(&taps, 3);
        let total = *s.last().unwrap();
        let work = |f: usize| s[f + 1] - s[f];
        let longest = (0..taps.len()).map(work).max().unwrap();
        for n in 1..=16u64 {
            let mut seen = vec![0; taps.len()];
            for t in 0..n {
                let (lo, hi) = (total * t / n, total * (t + 1) / n);
                let r = filters(&s, lo, hi);
                let w: u64 = r.clone().map(work).sum();
                assert!(w <= hi - lo + longest, "{n} tasks: task {t} has {w} units for a share of {}", hi - lo);
                for f in r {
                    seen[f] += 1;
                }
            }
            assert!(seen.iter().all(|&c| c == 1), "{n} tasks: {seen:?}");
        }
    }
}
