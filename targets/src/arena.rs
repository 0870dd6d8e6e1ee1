//! Static arena planning from tensor lifetimes over the node order.
//!
//! Every activation (a node output that is not a graph output) gets an
//! offset in one caller-provided arena, 64-byte aligned. Graph inputs and
//! outputs live in caller buffers; constants in read-only data.
//!
//! Two decisions come first, in [`decide_aliases`]:
//! - *Aliasing*: Reshape, Identity and Dropout produce no code: their output
//!   is their input's memory (unless the output is a graph output or the
//!   input a constant, which need a copy).
//! - *In place*: an elementwise node whose input has the output's shape and
//!   element size, lives in the arena and dies at this node writes its output
//!   over that input.
//! - *Concat in place*: a Concat whose inputs are contiguous slices of its
//!   output (every axis before the concat axis has extent 1) and whose
//!   inputs are arena values of distinct groups, each starting at its
//!   group's memory, produces no code: each input's group moves into the
//!   output's buffer at the input's byte offset, so the producers write the
//!   slices (SqueezeNet's fire modules: their eight Concats copied 0.7 ms of
//!   14 ms).
//!
//! Aliased values form groups that share one buffer, live from the first
//! definition to the last use of any member; a value sits at its byte
//! offset in the group's buffer (0 except for Concat inputs). Groups (plus per-node scratch)
//! are then placed greedily by size, best fit among the gaps left by
//! buffers whose lifetimes overlap ([`place`]).
//!
//! Contract: two buffers whose closed step intervals `[first, last]`
//! intersect never overlap in memory (checked exhaustively by the tests).

use kerf_ir::{Graph, Op, ValueDef, ValueId};

/// Alignment of every arena buffer (and of the arena itself).
pub const ALIGN: usize = kerf_runtime::ARENA_ALIGN;

/// One buffer to place: live during steps `first..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    /// Size in bytes (placement rounds it up to [`ALIGN`]; 0 takes no space).
    pub bytes: usize,
    /// First step (node index) at which the buffer is live.
    pub first: usize,
    /// Last step at which the buffer is live (inclusive, `>= first`).
    pub last: usize,
}

/// Offsets (parallel to the buffers) and the total arena size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Byte offset of each buffer in the arena, a multiple of [`ALIGN`].
    pub offsets: Vec<usize>,
    /// Arena size in bytes: the end of the highest placed buffer.
    pub total: usize,
}

fn round_up(x: usize) -> usize {
    x.div_ceil(ALIGN) * ALIGN
}

/// Best-fit placement, greedy in two orders — largest buffer first, and
/// largest *lifetime × size* first — keeping the smaller arena (the first on
/// ties). Greedy by size alone leaves gaps where a long-lived small buffer
/// lands between short-lived large ones (DS-CNN with its first conv's B
/// panels: 160000 against 129536 bytes live at most). Deterministic: ties
/// break by first step, then index.
pub fn place(bufs: &[Buffer]) -> Placement {
    let mut by_size: Vec<usize> = (0..bufs.len()).collect();
    by_size.sort_by(|&a, &b| bufs[b].bytes.cmp(&bufs[a].bytes).then(bufs[a].first.cmp(&bufs[b].first)).then(a.cmp(&b)));
    let area = |b: &Buffer| b.bytes as u128 * (b.last - b.first + 1) as u128;
    let mut by_area: Vec<usize> = (0..bufs.len()).collect();
    by_area
        .sort_by(|&a, &b| area(&bufs[b]).cmp(&area(&bufs[a])).then(bufs[a].first.cmp(&bufs[b].first)).then(a.cmp(&b)));
    let first = place_in_order(bufs, &by_size);
    let second = place_in_order(bufs, &by_area);
    if second.total < first.total {
        second
    } else {
        first
    }
}

/// Best fit in the given order: each buffer takes the smallest gap between
/// already placed buffers whose lifetimes overlap its own, else the end.
fn place_in_order(bufs: &[Buffer], order: &[usize]) -> Placement {
    let mut offsets = vec![0usize; bufs.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut total = 0;
    for &i in order {
        let b = bufs[i];
        let size = round_up(b.bytes);
        if size == 0 {
            continue;
        }
        // Memory ranges of placed buffers alive at the same time, by offset.
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| bufs[j].first <= b.last && b.first <= bufs[j].last)
            .map(|&j| (offsets[j], offsets[j] + round_up(bufs[j].bytes)))
            .collect();
        busy.sort();
        let mut best: Option<(usize, usize)> = None; // (gap size, offset)
        let mut cursor = 0;
        for &(s, e) in &busy {
            if s > cursor && s - cursor >= size && best.is_none_or(|(g, _)| s - cursor < g) {
                best = Some((s - cursor, cursor));
            }
            cursor = cursor.max(e);
        }
        let off = best.map_or(cursor, |(_, o)| o);
        offsets[i] = off;
        total = total.max(off + size);
        placed.push(i);
    }
    Placement { offsets, total }
}

/// The largest sum of bytes live at any step: no placement can be smaller.
pub fn lower_bound(bufs: &[Buffer]) -> usize {
    let steps = bufs.iter().map(|b| b.last + 1).max().unwrap_or(0);
    let mut live = vec![0usize; steps + 1];
    for b in bufs {
        for s in &mut live[b.first..=b.last] {
            *s += b.bytes;
        }
    }
    live.into_iter().max().unwrap_or(0)
}

/// Where a value lives at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    /// The caller's i-th input buffer.
    Input(usize),
    /// The caller's i-th output buffer.
    Output(usize),
    /// Offset into the arena.
    Arena(usize),
    /// Read-only data (a weight).
    Const,
}

/// What [`decide_aliases`] found.
#[derive(Clone, Debug)]
pub struct Aliases {
    /// For each value, the value whose memory it shares (itself if none).
    pub root: Vec<ValueId>,
    /// For each value, its byte offset in `root`'s memory (non-zero only
    /// for a Concat input written in place).
    pub offset: Vec<usize>,
    /// Nodes that need no code because their output aliases their input(s).
    pub free: Vec<bool>,
}

impl Aliases {
    /// The group a value belongs to (the end of its `root` chain) and the
    /// value's byte offset in that group's buffer.
    pub fn group_of(&self, v: ValueId) -> (ValueId, usize) {
        group_of(&self.root, &self.offset, v)
    }
}

/// [`Aliases::group_of`] on the vectors being built.
fn group_of(root: &[ValueId], offset: &[usize], mut v: ValueId) -> (ValueId, usize) {
    let mut off = 0;
    while root[v.0 as usize] != v {
        off += offset[v.0 as usize];
        v = root[v.0 as usize];
    }
    (v, off)
}

fn is_view(op: &Op) -> bool {
    matches!(op, Op::Reshape { .. } | Op::Identity | Op::Dropout)
}

fn find(root: &[ValueId], mut v: ValueId) -> ValueId {
    while root[v.0 as usize] != v {
        v = root[v.0 as usize];
    }
    v
}

/// The graph output slot of each value (first occurrence).
pub fn output_slots(g: &Graph) -> Vec<Option<usize>> {
    let mut slot = vec![None; g.values.len()];
    for (k, o) in g.outputs.iter().enumerate() {
        let s = &mut slot[o.value.0 as usize];
        if s.is_none() && matches!(g.value(o.value).def, ValueDef::Node { .. }) {
            *s = Some(k);
        }
    }
    slot
}

/// Last node index reading each value.
fn last_uses(g: &Graph) -> Vec<Option<usize>> {
    let mut last = vec![None; g.values.len()];
    for (i, n) in g.nodes.iter().enumerate() {
        for &v in &n.inputs {
            last[v.0 as usize] = Some(i);
        }
    }
    last
}

/// Decides view aliasing and in-place reuse (see the module docs).
pub fn decide_aliases(g: &Graph) -> Aliases {
    let slots = output_slots(g);
    let last = last_uses(g);
    let mut root: Vec<ValueId> = (0..g.values.len() as u32).map(ValueId).collect();
    let mut offset = vec![0usize; g.values.len()];
    let mut free = vec![false; g.nodes.len()];
    // group last use, maintained at roots
    let mut group_last: Vec<Option<usize>> = last.clone();
    let arena_resident = |v: ValueId, root: &[ValueId]| {
        let r = find(root, v);
        matches!(g.value(r).def, ValueDef::Node { .. }) && slots[r.0 as usize].is_none()
    };
    for (i, n) in g.nodes.iter().enumerate() {
        let (Some(&out), Some(&inp)) = (n.outputs.first(), n.inputs.first()) else { continue };
        if slots[out.0 as usize].is_some() {
            continue;
        }
        let merge =
            |root: &mut Vec<ValueId>, offset: &mut Vec<usize>, group_last: &mut Vec<Option<usize>>, into: ValueId| {
                let (r, off) = group_of(root, offset, into);
                root[out.0 as usize] = r;
                offset[out.0 as usize] = off;
                let gl = group_last[r.0 as usize].max(last[out.0 as usize]);
                group_last[r.0 as usize] = gl;
            };
        if let Op::Concat { axis } = n.op {
            let slices = concat_slices(g, n, axis, &root, &offset, &arena_resident);
            if let Some(slices) = slices {
                for (r, off) in slices {
                    root[r.0 as usize] = out;
                    offset[r.0 as usize] = off;
                    let gl = group_last[out.0 as usize].max(group_last[r.0 as usize]);
                    group_last[out.0 as usize] = gl;
                }
                free[i] = true;
            }
            continue;
        }
        if is_view(&n.op) && n.outputs.len() == 1 {
            if matches!(g.value(inp).def, ValueDef::Const(_)) {
                continue;
            }
            merge(&mut root, &mut offset, &mut group_last, inp);
            free[i] = true;
            continue;
        }
        if !n.op.is_elementwise() || n.outputs.len() != 1 {
            continue;
        }
        let oty = g.ty(out);
        for &x in &n.inputs {
            let xt = g.ty(x);
            if xt.shape != oty.shape || xt.dtype.size() != oty.dtype.size() || !arena_resident(x, &root) {
                continue;
            }
            let r = find(&root, x);
            if group_last[r.0 as usize] != Some(i) {
                continue;
            }
            // Another input sharing the group under a different view would
            // be read at other positions than the one being written.
            if n.inputs.iter().any(|&y| y != x && find(&root, y) == r) {
                continue;
            }
            merge(&mut root, &mut offset, &mut group_last, x);
            break;
        }
    }
    Aliases { root, offset, free }
}

/// For a Concat written in place (see the module docs): each input's group
/// and the input's byte offset in the output, or `None` when the inputs
/// are not contiguous slices of the output, or one is not an arena value
/// whose group it starts and fills, or two share a group.
fn concat_slices(
    g: &Graph,
    n: &kerf_ir::Node,
    axis: usize,
    root: &[ValueId],
    offset: &[usize],
    arena_resident: &dyn Fn(ValueId, &[ValueId]) -> bool,
) -> Option<Vec<(ValueId, usize)>> {
    let out = *n.outputs.first()?;
    if n.outputs.len() != 1 || g.ty(out).shape.iter().take(axis).product::<usize>() != 1 {
        return None;
    }
    let mut slices: Vec<(ValueId, usize)> = Vec::with_capacity(n.inputs.len());
    let mut at = 0;
    for &x in &n.inputs {
        let (r, off) = group_of(root, offset, x);
        let bytes = g.ty(x).bytes();
        let fills = off == 0 && g.ty(r).bytes() == bytes;
        if !arena_resident(x, root) || !fills || slices.iter().any(|&(s, _)| s == r) {
            return None;
        }
        slices.push((r, at));
        at += bytes;
    }
    (at == g.ty(out).bytes()).then_some(slices)
}

/// The arena plan of a graph.
#[derive(Clone, Debug)]
pub struct GraphPlan {
    /// The view aliasing and in-place decisions the plan is built on.
    pub aliases: Aliases,
    /// Location of every value.
    pub loc: Vec<Loc>,
    /// Arena offset of each node's scratch buffer (when it asked for one).
    pub scratch: Vec<Option<usize>>,
    /// Total arena size in bytes the caller must provide.
    pub arena_bytes: usize,
    /// Largest sum of live arena bytes at any step (a lower bound).
    pub lower_bound: usize,
}

/// Plans the arena. `scratch[i]` is the scratch size node `i` needs.
pub fn plan_graph(g: &Graph, scratch: &[usize]) -> GraphPlan {
    let aliases = decide_aliases(g);
    let slots = output_slots(g);
    let last = last_uses(g);
    let mut loc = vec![Loc::Const; g.values.len()];
    for (k, &v) in g.inputs.iter().enumerate() {
        loc[v.0 as usize] = Loc::Input(k);
    }
    // Groups of arena-resident values: root -> (bytes, first, last).
    let mut groups: Vec<(ValueId, Buffer)> = Vec::new();
    let mut group_of = vec![usize::MAX; g.values.len()];
    let mut value_at = vec![0usize; g.values.len()];
    for (i, n) in g.nodes.iter().enumerate() {
        for &o in &n.outputs {
            let (r, at) = aliases.group_of(o);
            let ri = r.0 as usize;
            if let Some(k) = slots[ri] {
                loc[o.0 as usize] = Loc::Output(k);
                continue;
            }
            match g.value(r).def {
                ValueDef::Input(k) => {
                    loc[o.0 as usize] = Loc::Input(k);
                    continue;
                }
                ValueDef::Const(_) => continue,
                ValueDef::Node { .. } => {}
            }
            let l = last[o.0 as usize].unwrap_or(i).max(i);
            if group_of[ri] == usize::MAX {
                group_of[ri] = groups.len();
                groups.push((r, Buffer { bytes: at + g.ty(o).bytes(), first: i, last: l }));
            }
            let gb = &mut groups[group_of[ri]].1;
            gb.bytes = gb.bytes.max(at + g.ty(o).bytes());
            value_at[o.0 as usize] = at;
            gb.last = gb.last.max(l);
            group_of[o.0 as usize] = group_of[ri];
        }
    }
    let mut bufs: Vec<Buffer> = groups.iter().map(|(_, b)| *b).collect();
    let mut scratch_idx = vec![None; g.nodes.len()];
    for (i, &s) in scratch.iter().enumerate() {
        if s > 0 {
            scratch_idx[i] = Some(bufs.len());
            bufs.push(Buffer { bytes: s, first: i, last: i });
        }
    }
    let p = place(&bufs);
    for (v, l) in loc.iter_mut().enumerate() {
        if group_of[v] != usize::MAX {
            *l = Loc::Arena(p.offsets[group_of[v]] + value_at[v]);
        }
    }
    let scratch = scratch_idx.iter().map(|s| s.map(|k| p.offsets[k])).collect();
    GraphPlan { aliases, loc, scratch, arena_bytes: p.total, lower_bound: lower_bound(&bufs) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_no_overlap(bufs: &[Buffer], p: &Placement) {
        for i in 0..bufs.len() {
            assert_eq!(p.offsets[i] % ALIGN, 0);
            assert!(p.offsets[i] + bufs[i].bytes <= p.total);
            for j in 0..i {
                let (a, b) = (bufs[i], bufs[j]);
                let time = a.first <= b.last && b.first <= a.last;
                let mem = p.offsets[i] < p.offsets[j] + b.bytes && p.offsets[j] < p.offsets[i] + a.bytes;
                assert!(!(time && mem && a.bytes > 0 && b.bytes > 0), "buffers {i} and {j} collide: {a:?} {b:?} {p:?}");
            }
        }
    }

    /// Deterministic pseudo-random buffers.
    fn lcg(seed: &mut u64) -> usize {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*seed >> 33) as usize
    }

    #[test]
    fn random_plans_never_overlap() {
        let mut seed = 7;
        for _case in 0..300 {
            let n = 1 + lcg(&mut seed) % 30;
            let bufs: Vec<Buffer> = (0..n)
                .map(|_| {
                    let first = lcg(&mut seed) % 20;
                    let len = lcg(&mut seed) % 6;
                    Buffer { bytes: 1 + lcg(&mut seed) % 5000, first, last: first + len }
                })
                .collect();
            let p = place(&bufs);
            check_no_overlap(&bufs, &p);
            assert!(p.total >= lower_bound(&bufs));
        }
    }

    #[test]
    fn chain_reuses_memory() {
        // a -> b -> c -> d, each 1 KiB: only two are ever live together.
        let bufs: Vec<Buffer> = (0..4).map(|i| Buffer { bytes: 1024, first: i, last: i + 1 }).collect();
        let p = place(&bufs);
        check_no_overlap(&bufs, &p);
        assert_eq!(p.total, 2048);
        assert_eq!(lower_bound(&bufs), 2048);
    }

    #[test]
    fn views_and_in_place() {
        let g = kerf_ir::text::parse(
            r#"graph "t"
  input %0 "x": f32[2,8]
  %1 = Relu(%0): f32[2,8] @"r1"
  %2 = Reshape{shape=[16]}(%1): f32[16] @"rs"
  %3 = Neg(%2): f32[16] @"neg"
  %4 = Abs(%3): f32[16] @"abs"
  output "y" = %4
"#,
        )
        .unwrap();
        let p = plan_graph(&g, &[0, 0, 0, 0]);
        assert_eq!(p.aliases.free, vec![false, true, false, false]);
        // r1, rs and neg share one buffer (neg runs in place); abs writes the output.
        assert_eq!(p.loc[1], Loc::Arena(0));
        assert_eq!(p.loc[2], Loc::Arena(0));
        assert_eq!(p.loc[3], Loc::Arena(0));
        assert_eq!(p.loc[4], Loc::Output(0));
        assert_eq!(p.arena_bytes, 64);
        assert_eq!(p.lower_bound, 64);
    }

    #[test]
    fn view_of_input_is_not_written_in_place() {
        let g = kerf_ir::text::parse(
            r#"graph "t"
  input %0 "x": f32[16]
  %1 = Reshape{shape=[2,8]}(%0): f32[2,8] @"rs"
  %2 = Relu(%1): f32[2,8] @"r"
  %3 = Neg(%2): f32[2,8] @"n"
  output "y" = %3
"#,
        )
        .unwrap();
        let p = plan_graph(&g, &[0, 0, 0]);
        assert_eq!(p.loc[1], Loc::Input(0));
        assert!(matches!(p.loc[2], Loc::Arena(_)), "relu must not overwrite the caller's input");
    }
}
