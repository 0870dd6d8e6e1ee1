//! Filter kernel reordering (PatDNN's FKR) for the pattern conv: the
//! order in which the output channels ("filters") run, and how threads
//! share them out.
//!
//! After connectivity pruning the filters of a layer keep different
//! numbers of kernels, and so of taps: on resnet18's pruned layers the
//! busiest filter has several times the taps of the idlest. Two things
//! follow, and [`Order`] answers both:
//!
//! - **Similar filters together.** Filters run in order of their length
//!   (kept taps, most first), then of their *shape* (per channel block
//!   and entry kind, the number of entries: the trip counts of the
//!   register tile's loops), then of their index. Consecutive calls of a
//!   tile then run loops of the same or nearly the same trip counts, and
//!   filters that read the same kernels' inputs sit side by side.
//! - **Threads by work, not by count.** A task is given a range of *work
//!   units* (a filter's kept taps plus a fixed price per tile call,
//!   [`CALL_TAPS`] per channel block) and runs the filters whose first
//!   unit falls in it. Equal numbers of filters per task would give the
//!   task holding the long filters most of the work.
//!
//! **Exact.** Each filter still computes its own output plane with its own
//! program, in the same order of multiply-adds: the order only moves whole
//! filters between calls and tasks, so any order gives the same bits
//! (`targets/tests/threads.rs`, `targets/tests/conv_pattern.rs`).

/// A tile call's fixed cost in taps: loading or storing its accumulators,
/// and one loop per entry kind.
pub(crate) const CALL_TAPS: u64 = 4;

/// The filters of a layer in the order they run, with their work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Order {
    /// Position → output channel.
    pub channels: Vec<u32>,
    /// Per position its first work unit (prefix sums of the work in
    /// [`Order::channels`]' order), then the total: `channels.len() + 1`
    /// entries.
    pub starts: Vec<u64>,
}

/// One filter as [`Order::new`] sorts it: its kept taps, and its shape
/// (per channel block and entry kind, the number of entries).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    pub taps: u64,
    pub shape: Vec<u32>,
}

impl Order {
    /// The order of `filters` (output channel `o` is `filters[o]`), each
    /// run in `blocks` tile calls per tile.
    pub(crate) fn new(filters: &[Filter], blocks: usize) -> Order {
        let mut channels: Vec<u32> = (0..filters.len() as u32).collect();
        channels.sort_by(|&a, &b| {
            let (fa, fb) = (&filters[a as usize], &filters[b as usize]);
            fb.taps.cmp(&fa.taps).then_with(|| fa.shape.cmp(&fb.shape)).then(a.cmp(&b))
        });
        let mut starts = Vec::with_capacity(filters.len() + 1);
        let mut at = 0u64;
        for &o in &channels {
            starts.push(at);
            at += filters[o as usize].taps + CALL_TAPS * blocks as u64;
        }
        starts.push(at);
        Order { channels, starts }
    }

    /// Work units of the whole layer.
    pub(crate) fn units(&self) -> u64 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// The positions a task given work units `lo..hi` runs: those whose
    /// first unit is in the range (what [`super::Frame`]'s scan computes).
    #[cfg(test)]
    fn positions(&self, lo: u64, hi: u64) -> std::ops::Range<usize> {
        let count = |u: u64| self.starts[..self.channels.len()].iter().filter(|&&s| s < u).count();
        count(lo)..count(hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(taps: u64, shape: &[u32]) -> Filter {
        Filter { taps, shape: shape.to_vec() }
    }

    #[test]
    fn long_filters_first_then_alike_shapes_then_index() {
        let f = [filter(8, &[2, 0]), filter(20, &[1, 6]), filter(8, &[0, 2]), filter(20, &[1, 6]), filter(12, &[3, 0])];
        let o = Order::new(&f, 2);
        assert_eq!(o.channels, [1, 3, 4, 2, 0]);
        assert_eq!(o.starts, [0, 28, 56, 76, 92, 108]);
        assert_eq!(o.units(), 108);
    }

    /// Every split of the units into contiguous task ranges (as the
    /// runtime cuts them: `n` near-equal ranges) runs each filter exactly
    /// once, and no task's work exceeds its share by more than one filter.
    #[test]
    fn task_ranges_cover_each_filter_once_and_balance_work() {
        // a pruned layer's lengths: a few long filters, many short ones
        let f: Vec<Filter> = (0..37u64).map(|o| filter(if o % 9 == 0 { 400 } else { 30 + 7 * (o % 5) }, &[])).collect();
        let o = Order::new(&f, 3);
        let work = |p: usize| o.starts[p + 1] - o.starts[p];
        let longest = (0..f.len()).map(work).max().unwrap();
        for n in 1..=16u64 {
            let mut seen = vec![0; f.len()];
            for t in 0..n {
                let (lo, hi) = (o.units() * t / n, o.units() * (t + 1) / n);
                let r = o.positions(lo, hi);
                let w: u64 = r.clone().map(work).sum();
                assert!(w <= hi - lo + longest, "{n} tasks: task {t} has {w} units for a share of {}", hi - lo);
                for p in r {
                    seen[o.channels[p] as usize] += 1;
                }
            }
            assert!(seen.iter().all(|&s| s == 1), "{n} tasks: {seen:?}");
        }
    }

    #[test]
    fn no_filters() {
        let o = Order::new(&[], 4);
        assert_eq!((o.channels.len(), o.starts.as_slice(), o.units()), (0, &[0u64][..], 0));
    }
}
