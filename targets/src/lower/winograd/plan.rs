//! The numbers of one Winograd conv: geometry, blocks of tile rows, the
//! V and M buffer layouts and the task split, decided at compile time
//! before any code is emitted (see the parent module for the algorithm).

use kerf_ir::op::Conv;

use super::super::gemm::{panel_group, Panels, MR, SPLIT_UNITS, TASK_SCRATCH_BUDGET};
use super::super::Kernel;

/// What a Winograd conv's code is built from.
pub(super) struct Plan {
    /// Output tile size m, input tile size n = m + 2, and n².
    pub m: usize,
    pub n: usize,
    pub nn: usize,
    /// Input: images, channels, rows, columns; its top and left padding.
    pub batch: usize,
    pub cin: usize,
    pub h: usize,
    pub wd: usize,
    pub ph: usize,
    pub pw: usize,
    /// Output channels, rows, columns.
    pub kout: usize,
    pub oh: usize,
    pub ow: usize,
    /// Tile columns of the output, and tiles in all.
    pub tw: usize,
    pub tiles: usize,
    /// Lanes per vector (tiles per panel).
    pub l: usize,
    /// Rows of M per chunk (a multiple of MR, or all of them).
    pub mc: usize,
    /// Tile rows per block, blocks per image, tiles every block computes
    /// (a multiple of `l`: surplus lanes recompute the block's last tile)
    /// and panels per block.
    pub rows: usize,
    pub nblk: usize,
    pub tb: usize,
    pub nq: usize,
    /// V's panels per position ξ (single panels, or quads where the
    /// 512-bit tiles run) and the byte strides between positions of V and
    /// of M.
    pub vpan: Panels,
    pub vstride: usize,
    pub mstride: usize,
    /// A block's zero-padded input strip: rows, columns, floats.
    pub sh: usize,
    pub sw: usize,
    pub strip: usize,
    /// Whether some tile crosses the output's right or bottom edge.
    pub edge: bool,
    /// Tasks split output-channel row blocks too (`rbu` per block).
    pub chan_split: bool,
    pub rbu: usize,
    /// Cost of one unit of the split, and the most tasks the task-private
    /// buffers allow.
    pub unit_cost: u64,
    pub max_tasks: usize,
}

impl Plan {
    /// The plan of `cv` with tile `m` on `k`'s node; `None` when the output
    /// is empty (nothing to compute).
    pub(super) fn new(k: &Kernel, cv: &Conv, m: usize) -> Option<Plan> {
        let n = m + 2;
        let nn = n * n;
        let (x, o) = (k.in_shape(0), k.out_shape(0));
        let (batch, cin, h, wd) = (x[0], x[1], x[2], x[3]);
        let (kout, oh, ow) = (o[1], o[2], o[3]);
        let (ph, pw) = (cv.window.pad_begin(0), cv.window.pad_begin(1));
        if oh == 0 || ow == 0 || batch == 0 || kout == 0 {
            return None;
        }
        let (th, tw) = (oh.div_ceil(m), ow.div_ceil(m));
        let tiles = th * tw;
        let l = k.lanes();
        let mc = kout.min(MC);
        // Blocks of whole tile rows, balanced, sized so V and a chunk of M
        // stay within the L2 budget (at least one tile row). Every block
        // computes `tb` tiles, so pick the block height, between half the
        // budget's and the budget's, that computes the fewest tiles in all
        // (the larger on ties): 14 tile rows of 4 at most are 7 blocks of
        // 2 (196 tiles), not 4 blocks of 4 (224).
        let per_tile = nn * (cin + mc) * 4;
        let rows_max = (k.caps.cache.l2 / per_tile / tw).clamp(1, th);
        let computed = |r: usize| th.div_ceil(r) * (r * tw).div_ceil(l) * l;
        let rows = (rows_max.div_ceil(2)..=rows_max).rev().min_by_key(|&r| computed(r)).unwrap_or(rows_max);
        let nblk = th.div_ceil(rows);
        let tb = (rows * tw).div_ceil(l) * l;
        let nq = tb / l;
        // V's panels per position ξ: single panels, or quads where the
        // 512-bit tiles run (they need them; the last group's panels past
        // `nq`, if any, are never written: only the lanes the tiles drop
        // read them). Not pairs for the 256-bit tiles: the transform writes
        // a panel's K steps for all channels before the next panel, so a
        // pair's line is filled half at a time, and on resnet18's 56²
        // layers (V past L2) that cost more than the join saves (`--cpu
        // haswell`, 1.41 → 1.72 ms).
        let group = if panel_group(k) == 4 { 4 } else { 1 };
        let vpan = Panels::new(l, cin, group);
        let vstride = odd_lines(vpan.bytes(1, nq));
        let mstride = odd_lines(mc * tb * 4);
        let (sh, sw) = (rows * m + 2, tw * m + 2);
        let strip = cin * sh * sw;
        // Tasks: blocks (over the batch too) and, when there are too few of
        // them for the threads (the late 7×7 / 14×14 layers), also GEMM row
        // blocks of output channels. A task transforms the input of each
        // block it touches once, then computes and transforms its channels'
        // products (every output the same sums whichever task computes it).
        // Each task has private strip, V and M buffers (ResNet's
        // 512-channel 7×7 layers: ~0.8 MiB per task, at most 10 tasks).
        let chan_split = batch * nblk < SPLIT_UNITS && kout >= 4 * MR;
        let rbu = if chan_split { kout.div_ceil(MR) } else { 1 };
        let per_block = 2 * nn * kout * cin * tb + nn * tb * (6 * cin + 4 * kout);
        let scratch = strip * 4 + nn * mstride + nn * vstride + 16;
        Some(Plan {
            m,
            n,
            nn,
            batch,
            cin,
            h,
            wd,
            ph,
            pw,
            kout,
            oh,
            ow,
            tw,
            tiles,
            l,
            mc,
            rows,
            nblk,
            tb,
            nq,
            vpan,
            vstride,
            mstride,
            sh,
            sw,
            strip,
            edge: oh % m != 0 || ow % m != 0,
            chan_split,
            rbu,
            unit_cost: per_block.div_ceil(rbu) as u64,
            max_tasks: (TASK_SCRATCH_BUDGET / scratch).max(2),
        })
    }

    /// Units of the task split: (image, block, row block).
    pub(super) fn units(&self) -> usize {
        self.batch * self.nblk * self.rbu
    }
}

/// Rows of the products `M` computed and transformed at a time: bounds
/// the per-task `M` buffer (`n² · MC · tiles` floats) independently of the
/// output channel count.
pub(super) const MC: usize = 8 * MR;

/// `bytes` rounded up to an odd number of 64-byte lines: the stride
/// between the n² positions ξ of V and of M. The output transform reads a
/// vector at each of the n² positions, the input transform writes one;
/// with a stride of an even number of lines those addresses fall into a
/// fraction of L1's 64 sets (a 16 → 64 conv on 55x55 had M's 7168-byte
/// stride: its 36 loads went to 4 sets of 8 ways, 8.2 µs per output
/// channel where 60 or 72 channels took 6.5; Zen 4); with an odd number
/// they cycle through all 64.
fn odd_lines(bytes: usize) -> usize {
    let lines = bytes.div_ceil(64);
    64 * (lines | 1)
}
