//! Test helpers: run a group on IR text, interpret graphs.

use kerf_ir::{eval, text, Graph, Tensor};

use crate::{rules, runner, PassOptions};

/// Parses `src`, runs `group` with default limits, prints the result.
pub(crate) fn run_text(group: &str, src: &str) -> String {
    let g = text::parse(src).unwrap();
    let (out, reports) = crate::run_groups(&g, &[group], &PassOptions::default()).unwrap();
    assert_eq!(reports[0].stop, crate::Stop::Saturated, "{reports:?}");
    text::print(&out)
}

/// Runs one group; returns the e-graph's weight count and the printed graph.
pub(crate) fn run_graph(g: &Graph, group: &'static str, opts: &PassOptions) -> (usize, String) {
    let (_, rules) = rules::group(group).unwrap();
    let p = runner::run_phase(g, group, &rules, opts, true).unwrap();
    (p.weights_in_egraph, text::print(&p.graph))
}

/// Evaluates a graph with the reference evaluator.
pub(crate) fn interpret(g: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
    eval::eval_graph(g, inputs).unwrap_or_else(|e| panic!("{e}"))
}

/// Deterministic pseudo-random floats in [lo, hi).
pub(crate) fn random(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * u
        })
        .collect()
}
