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
    pub iter_limit: usize,
    pub node_limit: usize,
    pub time_limit: Duration,
}

impl Default for PassOptions {
    fn default() -> PassOptions {
        PassOptions { iter_limit: 30, node_limit: 200_000, time_limit: Duration::from_secs(20) }
    }
}

/// Why a group's runner stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Saturated,
    IterationLimit,
    NodeLimit,
    TimeLimit,
}

/// What one rule group did.
#[derive(Clone, Debug)]
pub struct GroupReport {
    pub group: &'static str,
    pub stop: Stop,
    pub iterations: usize,
    /// e-nodes and e-classes at the end of the run.
    pub enodes: usize,
    pub eclasses: usize,
    /// Unions that changed the e-graph, per rule (every rule of the group is listed).
    pub rules_fired: BTreeMap<&'static str, usize>,
}

#[derive(Debug, Error)]
pub enum PassError {
    #[error("unknown rule group '{0}' (known: {known})", known = rule_groups().join(", "))]
    UnknownGroup(String),
    /// A rule equated values with different facts: a compiler bug.
    #[error("group '{group}': contradiction in {classes}: {msg}")]
    Contradiction { group: &'static str, classes: String, msg: String },
    #[error("group '{group}': runner stopped: {msg}")]
    Runner { group: &'static str, msg: String },
    #[error("group '{group}': extraction failed: {msg}")]
    Extract { group: &'static str, msg: String },
    #[error("e-graph conversion: {0}")]
    Convert(String),
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
        let (next, mut rs) = run_groups(&cur, &rule_groups(), opts)?;
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
