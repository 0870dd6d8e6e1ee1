//! Running one rule group as one phase: build the e-graph from a graph, run
//! egg's runner with explicit limits, extract, convert back.
//!
//! The report always says why the runner stopped; a phase that hit a limit
//! still returns its (valid, possibly less optimised) graph, and the caller
//! sees [`Stop`] in the report. A contradiction in the analysis aborts the
//! phase with [`PassError::Contradiction`].
//!
//! The scheduler is egg's `SimpleScheduler` (every rule every iteration):
//! rules here are guarded and directional, so growth is bounded without
//! backoff banning, and "saturated" simply means an iteration changed
//! nothing. egg checks limits between rule applications, so a node limit can
//! be overshot by one rule's worth of additions. A `TimeLimit` stop makes the
//! result depend on machine speed; the other stops are deterministic.

use std::collections::BTreeMap;

use egg::{Runner, SimpleScheduler, StopReason};
use kerf_ir::Graph;

use crate::analysis::KerfAnalysis;
use crate::convert::{self, Meta};
use crate::extract;
use crate::rules::KRewrite;
use crate::{GroupReport, PassError, PassOptions, Stop};

/// The result of one phase.
#[derive(Debug)]
pub struct Phase {
    /// The extracted graph, validated and compacted.
    pub graph: Graph,
    /// What the group did, including why the runner stopped.
    pub report: GroupReport,
    /// Weights in the e-graph's table at the end (before compaction).
    pub weights_in_egraph: usize,
}

/// Runs `rules` as group `group` on `g`. `strict = false` turns off the
/// contradiction `debug_assert!` (tests that provoke contradictions).
pub fn run_phase(
    g: &Graph,
    group: &'static str,
    rules: &[KRewrite],
    opts: &PassOptions,
    strict: bool,
) -> Result<Phase, PassError> {
    let (mut eg, meta) = convert::to_egraph(g, strict)?;
    eg.analysis.wide_patterns = opts.wide_patterns;
    eg.analysis.int8_dot = opts.int8_dot;
    eg.analysis.int8_depthwise = opts.int8_depthwise;
    let runner: Runner<_, KerfAnalysis, ()> = Runner::new(KerfAnalysis::new(Default::default(), vec![]))
        .with_egraph(eg)
        .with_scheduler(SimpleScheduler)
        .with_iter_limit(opts.iter_limit)
        .with_node_limit(opts.node_limit)
        .with_time_limit(opts.time_limit)
        .with_hook(|r| match &r.egraph.analysis.contradiction {
            Some(m) => Err(format!("contradiction: {m}")),
            None => Ok(()),
        })
        .run(rules.iter());
    let mut eg = runner.egraph;
    check_contradiction(&eg, &meta, group)?;
    // A runner stopped by a limit may leave the e-graph dirty.
    eg.rebuild();
    check_contradiction(&eg, &meta, group)?;
    let stop = match runner.stop_reason {
        Some(StopReason::Saturated) => Stop::Saturated,
        Some(StopReason::IterationLimit(_)) => Stop::IterationLimit,
        Some(StopReason::NodeLimit(_)) => Stop::NodeLimit,
        Some(StopReason::TimeLimit(_)) => Stop::TimeLimit,
        Some(StopReason::Other(m)) => return Err(PassError::Runner { group, msg: m }),
        None => return Err(PassError::Runner { group, msg: "runner did not report why it stopped".into() }),
    };
    let mut rules_fired: BTreeMap<&'static str, usize> = BTreeMap::new();
    for rw in rules {
        let name = rw.name.as_str();
        let n: usize = runner.iterations.iter().filter_map(|it| it.applied.get(&rw.name)).sum();
        rules_fired.insert(name, n);
    }
    let roots = convert::roots(&eg, &meta);
    let ex = extract::extract(&eg, &roots).map_err(|msg| PassError::Extract { group, msg })?;
    let graph = convert::to_graph(&eg, &meta, &ex)?;
    let report = GroupReport {
        group,
        stop,
        iterations: runner.iterations.len(),
        enodes: eg.total_number_of_nodes(),
        eclasses: eg.number_of_classes(),
        rules_fired,
    };
    Ok(Phase { graph, report, weights_in_egraph: eg.analysis.weights.len() })
}

fn check_contradiction(eg: &crate::analysis::KEGraph, meta: &Meta, group: &'static str) -> Result<(), PassError> {
    match &eg.analysis.contradiction {
        None => Ok(()),
        Some(msg) => {
            let classes = match eg.analysis.contradiction_classes {
                Some((a, b)) if eg.find(a) == eg.find(b) => meta.describe(eg, a),
                Some((a, b)) => format!("{} and {}", meta.describe(eg, a), meta.describe(eg, b)),
                None => "unknown classes".into(),
            };
            Err(PassError::Contradiction { group, classes, msg: msg.clone() })
        }
    }
}
