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

/// A quantised conv layer in IR text, as the compress stage writes it: the
/// activation quantiser `Mul(Clip(Round(Div(input, %3))), %3)` (the step
/// `%3` defined by the caller, codes clipped to `clip`), a `k`x`k` conv
/// (`pads` each side, stride 1, `group`s) of `c` channels to `c` on an int8
/// weight grid of step 0.01 (codes from seed `7 + i`, bias from `9 + i`)
/// and Relu; on `side`x`side` planes. Values `%{10 i + 10}` to
/// `%{10 i + 17}`, the Relu last.
pub(crate) struct QLayer {
    pub(crate) c: usize,
    pub(crate) group: usize,
    pub(crate) k: usize,
    pub(crate) pads: usize,
    pub(crate) side: usize,
    pub(crate) clip: (f32, f32),
}

impl QLayer {
    /// Layer `i` over `input`.
    pub(crate) fn text(&self, i: usize, input: &str) -> String {
        let QLayer { c, group, k, pads: p, side, clip: (lo, hi) } = *self;
        let cg = c / group;
        let w: Vec<String> = random(7 + i as u64, c * cg * k * k, -127.0, 127.0)
            .iter()
            .map(|q| format!("{:?}", q.round() * 0.01))
            .collect();
        let b: Vec<String> = random(9 + i as u64, c, -0.5, 0.5).iter().map(|v| format!("{v:?}")).collect();
        let v = |j: usize| 10 * i + 10 + j;
        let t = format!("f32[1,{c},{side},{side}]");
        format!(
            r#"  const %{} "w{i}": f32[{c},{cg},{k},{k}] = [{}] grid=int8(axis=0, scales=[{}])
  const %{} "b{i}": f32[{c}] = [{}]
  %{} = Div({input}, %3): {t} @"d{i}"
  %{} = Round(%{}): {t} @"r{i}"
  %{} = Clip{{min={lo:?}, max={hi:?}}}(%{}): {t} @"c{i}"
  %{} = Mul(%{}, %3): {t} @"q{i}"
  %{} = Conv{{kernel=[{k},{k}], strides=[1,1], dilations=[1,1], pads=[{p},{p},{p},{p}], group={group}, layer="conv{i}"}}(%{}, %{}, %{}): {t} @"conv{i}"
  %{} = Relu(%{}): {t} @"relu{i}"
"#,
            v(0),
            w.join(","),
            vec!["0.01"; c].join(","),
            v(1),
            b.join(","),
            v(2),
            v(3),
            v(2),
            v(4),
            v(3),
            v(5),
            v(4),
            v(6),
            v(5),
            v(0),
            v(1),
            v(7),
            v(6),
        )
    }
}
