//! kerf's e-graph passes.
//!
//! A [`Graph`] is turned into an egg e-graph over one hand-written language
//! ([`lang::KNode`]: a typed kerf op plus child classes), with one typed
//! analysis ([`analysis::KerfAnalysis`]: output types and constness per
//! class, the weight table, applier memo tables). Rule groups
//! ([`rule_groups`]) run in phases: each phase rebuilds the e-graph from the
//! previous phase's extracted graph, runs one group with explicit limits and
//! extracts the cheapest program with a DAG-aware extractor
//! ([`extract`], cost model in [`cost`]).
//!
//! Contracts: the output graph validates and is compacted; it computes the
//! same function as the input (rules are equalities; lossy transforms are not
//! here); layer identities survive; the same input gives byte-identical
//! printed text on every run (egg's `deterministic` feature, sorted
//! iteration everywhere, no hash-order leaks). A limit stop is reported in
//! [`GroupReport::stop`], never hidden.
#![warn(missing_docs)]
#![warn(unreachable_pub)]

use std::collections::BTreeMap;
use std::time::Duration;

use kerf_ir::{Graph, IrError};
use thiserror::Error;

pub mod analysis;
pub mod convert;
pub mod cost;
pub mod extract;
pub mod lang;
pub mod rules;
pub mod runner;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

/// Limits for each rule group's runner.
#[derive(Clone, Debug)]
pub struct PassOptions {
    /// Most runner iterations per group ([`Stop::IterationLimit`]).
    pub iter_limit: usize,
    /// Most e-nodes in a group's e-graph ([`Stop::NodeLimit`]); egg checks it between rule
    /// applications, so one rule's additions may overshoot it.
    pub node_limit: usize,
    /// Most wall-clock time per group's runner ([`Stop::TimeLimit`]).
    pub time_limit: Duration,
    /// Whether [`optimize`] runs the `int8` group (convs on int8 grids onto
    /// the integer conv kernel where the cost model prices it cheaper). On
    /// by default; off keeps such layers in f32 on the dequantised grid
    /// (docs/compression.md, "Integer kernels").
    pub int8_kernels: bool,
    /// Whether [`optimize`] runs the `winograd` group (3x3 convs onto
    /// Winograd where the cost model prices it cheaper). On by default; off
    /// keeps every conv on the direct kernels, for comparisons (`kerf bench
    /// --no-winograd`).
    pub winograd: bool,
    /// Whether the code generator has the assembled pattern tiles
    /// (AVX2 + FMA micro-kernels, or AArch64's NEON ones; the prices are
    /// x86's, measured): pattern-pruned convs then stay on the
    /// pattern kernel on more planes than the 128-bit one wins on
    /// ([`kerf_ir::Sparsity::pattern_beats_winograd`]). The pipeline sets
    /// it from the target.
    pub wide_patterns: bool,
    /// What the code generator's integer conv multiplies with, for the
    /// price of `QConv` ([`Int8Dot::rate`]). The pipeline sets it from the
    /// target.
    pub int8_dot: Int8Dot,
    /// Whether the code generator has the integer depthwise passes of AVX2
    /// targets (the padded-plane pass over `x − zp`, and the flat pass,
    /// which stores u8 itself, on `kerf_ir::DepthwisePlane::flat_fits`
    /// planes): depthwise convs on an int8 grid then become `QConv`s too.
    /// The pipeline sets it from the target.
    pub int8_depthwise: bool,
}

/// How the code generator's integer conv (`QConv`) multiplies, which sets
/// its price against the f32 forms (Winograd in particular).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Int8Dot {
    /// 16-bit pairs (`pmaddwd`): two multiply-adds per i32 lane and
    /// instruction (the baseline; Cranelift's 128-bit tile or AVX2's).
    /// AArch64 without `dotprod` is priced so too, though its conv GEMM
    /// now runs the assembled `smull`/`sadalp` tile on byte quads (about
    /// 2.6x fewer instructions than the pair tile under qemu; unmeasured
    /// on hardware).
    #[default]
    Pairs,
    /// Byte quads through AVX2's saturating `vpmaddubsw` where the weights'
    /// byte pairs cannot saturate it ([`kerf_ir::byte_pairs_exact`], every
    /// 7-bit grid), pairs otherwise.
    ExactBytes,
    /// Byte quads for every weight (AVX-512 VNNI's `vpdpbusd`).
    Bytes,
    /// Byte quads for every weight through AArch64 `dotprod`'s `sdot`: the
    /// conv GEMM and the one-pixel product (the depthwise quad pass is
    /// VNNI's).
    Sdot,
}

impl Int8Dot {
    /// Whether the integer conv multiplies byte quads (AVX2's, VNNI's or
    /// `dotprod`'s tiles), whose targets also have the integer pattern
    /// kernel's tiles.
    pub fn byte_quads(self) -> bool {
        self != Int8Dot::Pairs
    }
    /// Whether byte quads go through a saturating product (AVX2's
    /// `vpmaddubsw`), so only weights whose byte pairs fit i16 take them.
    pub fn saturates(self) -> bool {
        !matches!(self, Int8Dot::Bytes | Int8Dot::Sdot)
    }
    /// Whether the integer conv's tiles store requantised u8 in their own
    /// assembled epilogue: the x86 tiles (AVX2's, VNNI's; the targets of
    /// `ExactBytes` and `Bytes`). Elsewhere (`Pairs`: x86-64 `baseline`,
    /// AArch64 without `dotprod`, RISC-V; `Sdot`, whose tile leaves its
    /// sums to Cranelift) the Cranelift epilogue would quantise each 4-lane
    /// vector, which measured slower than storing f32 and running the
    /// separate quantiser: x86-64 `baseline` on Zen 3, MobileNetV2's
    /// QConvs and quantisers 17.1–17.8 ms with the u8 stores against
    /// 16.3–16.9 ms without, three alternating `kerf bench --profile`
    /// rounds (docs/compression.md).
    pub fn tiles_store_u8(self) -> bool {
        matches!(self, Int8Dot::Bytes | Int8Dot::ExactBytes)
    }
    /// Whether the code generator has a one-pixel integer product that
    /// runs several one-pixel images per call (output channels in the
    /// lanes): VNNI's on `zmm`, AVX2's on `ymm` (the targets of `Bytes` and
    /// `ExactBytes`), `dotprod`'s `sdot` on AArch64. Elsewhere each image
    /// would take a whole pixel unit of the integer tiles.
    pub fn one_pixel_rows(self) -> bool {
        matches!(self, Int8Dot::Bytes | Int8Dot::ExactBytes | Int8Dot::Sdot)
    }
    /// `QConv`'s multiply-adds per f32 multiply-add of the same time, for
    /// a weight whose byte pairs are `exact` or not: the pair tiles 2
    /// (measured 1.5x the f32 kernel per layer on AVX2), AVX2's byte tile
    /// 4 (1.45x the pair tile on a 64-channel 3x3 layer; in resnet18 on
    /// Zen 3 its 3x3 layers run 1.35–1.6 ms on 56x56 and 28x28 planes
    /// where f32 Winograd takes 1.7–2.5, and the whole model is faster with
    /// every 3x3 layer on it: docs/compression.md), VNNI 4 (2x the pair
    /// tile on Zen 4); `sdot` 4 by instruction counts, not measured (16
    /// multiply-adds per instruction where `fmla` does 4, both two per
    /// cycle on Neoverse N1/V1; here only qemu runs AArch64).
    pub fn rate(self, exact: bool) -> f64 {
        match self {
            Int8Dot::Bytes | Int8Dot::Sdot => 4.0,
            Int8Dot::ExactBytes if exact => 4.0,
            _ => 2.0,
        }
    }
}

impl Default for PassOptions {
    fn default() -> PassOptions {
        PassOptions {
            iter_limit: 30,
            node_limit: 200_000,
            time_limit: Duration::from_secs(20),
            int8_kernels: true,
            winograd: true,
            wide_patterns: false,
            int8_dot: Int8Dot::Pairs,
            int8_depthwise: false,
        }
    }
}

/// Why a group's runner stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// An iteration changed nothing: no rule has anything left to add.
    Saturated,
    /// [`PassOptions::iter_limit`] iterations ran.
    IterationLimit,
    /// The e-graph grew past [`PassOptions::node_limit`] e-nodes.
    NodeLimit,
    /// [`PassOptions::time_limit`] elapsed; the result then depends on machine speed.
    TimeLimit,
}

/// What one rule group did.
#[derive(Clone, Debug)]
pub struct GroupReport {
    /// The group's name (one of [`rule_groups`]).
    pub group: &'static str,
    /// Why the runner stopped.
    pub stop: Stop,
    /// Runner iterations performed (a saturated run counts the final one that changed nothing).
    pub iterations: usize,
    /// e-nodes at the end of the run.
    pub enodes: usize,
    /// e-classes at the end of the run.
    pub eclasses: usize,
    /// Unions that changed the e-graph, per rule (every rule of the group is listed).
    pub rules_fired: BTreeMap<&'static str, usize>,
}

/// Why [`run_groups`] or [`optimize`] failed.
#[derive(Debug, Error)]
pub enum PassError {
    /// A group name that is not in [`rule_groups`].
    #[error("unknown rule group '{0}' (known: {known})", known = rule_groups().join(", "))]
    UnknownGroup(String),
    /// A rule equated values with different facts: a compiler bug.
    #[error("group '{group}': contradiction in {classes}: {msg}")]
    Contradiction {
        /// The group whose phase hit it.
        group: &'static str,
        /// The classes involved, described by their source nodes and inputs.
        classes: String,
        /// The analysis' message, naming the rule that was applying.
        msg: String,
    },
    /// egg's runner stopped for a reason other than saturation or a limit: a compiler bug.
    #[error("group '{group}': runner stopped: {msg}")]
    Runner {
        /// The group that was running.
        group: &'static str,
        /// egg's stop reason.
        msg: String,
    },
    /// No program could be extracted for the graph's outputs (e.g. a class without an acyclic
    /// term): a compiler bug.
    #[error("group '{group}': extraction failed: {msg}")]
    Extract {
        /// The group whose e-graph was extracted.
        group: &'static str,
        /// The extractor's message.
        msg: String,
    },
    /// Building the e-graph from a graph, or a graph from an extraction, failed (the input
    /// graph is inconsistent, or the extracted program is cyclic or incomplete).
    #[error("e-graph conversion: {0}")]
    Convert(String),
    /// The input or the rebuilt graph failed IR validation or construction.
    #[error(transparent)]
    Ir(#[from] IrError),
}

/// The rule groups in pipeline order.
pub fn rule_groups() -> Vec<&'static str> {
    rules::GROUPS.iter().map(|g| g.0).collect()
}

/// Runs the named groups in order, one phase each.
pub fn run_groups(g: &Graph, groups: &[&str], opts: &PassOptions) -> Result<(Graph, Vec<GroupReport>), PassError> {
    let mut cur = g.clone();
    let mut reports = Vec::with_capacity(groups.len());
    for name in groups {
        let (group, rules) = rules::group(name).ok_or_else(|| PassError::UnknownGroup(name.to_string()))?;
        let phase = runner::run_phase(&cur, group, &rules, opts, true)?;
        reports.push(phase.report);
        cur = phase.graph;
    }
    Ok((cur, reports))
}

/// Most rounds of the whole pipeline [`optimize`] runs.
pub const MAX_ROUNDS: usize = 3;

/// Runs every group in pipeline order, one phase each, and repeats the
/// pipeline while a round still changes the graph (one group can enable
/// another: const-fold makes a Gemm bias constant, which bn-fold needs), at
/// most [`MAX_ROUNDS`] times. Reports list every phase in order.
pub fn optimize(g: &Graph, opts: &PassOptions) -> Result<(Graph, Vec<GroupReport>), PassError> {
    let mut cur = g.clone();
    let mut reports = Vec::new();
    let mut before = kerf_ir::text::print(&cur);
    for _ in 0..MAX_ROUNDS {
        let groups: Vec<&str> = rule_groups()
            .into_iter()
            .filter(|&g| (g != "int8" || opts.int8_kernels) && (g != "winograd" || opts.winograd))
            .collect();
        let (next, mut rs) = run_groups(&cur, &groups, opts)?;
        reports.append(&mut rs);
        let after = kerf_ir::text::print(&next);
        cur = next;
        if after == before {
            break;
        }
        before = after;
    }
    Ok((cur, reports))
}

/// The cost model's price of a whole graph (usually an optimized one): the
/// sum of [`cost::node_cost`] over its nodes, in the model's crude units
/// (a FLOP and a byte weigh the same). It ranks alternatives of one model
/// for a target nobody can time (`kerf tune` without a runner); it is not
/// a latency.
pub fn graph_cost(g: &Graph) -> f64 {
    g.nodes
        .iter()
        .map(|n| {
            let ins: Vec<Vec<kerf_ir::TensorType>> = n.inputs.iter().map(|&v| vec![g.ty(v).clone()]).collect();
            let ins: Vec<&[kerf_ir::TensorType]> = ins.iter().map(Vec::as_slice).collect();
            let outs: Vec<kerf_ir::TensorType> = n.outputs.iter().map(|&v| g.ty(v).clone()).collect();
            cost::node_cost(&lang::NodeOp::Op(n.op.clone()), &ins, &outs)
        })
        .sum()
}
