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
        let n = self.c * self.c / self.group * self.k * self.k;
        let codes: Vec<f32> = random(7 + i as u64, n, -127.0, 127.0).iter().map(|q| q.round()).collect();
        self.text_codes(i, input, &codes)
    }

    /// [`QLayer::text`] pruned with patterns shared by quads of input
    /// channels (a 3x3 conv of one group): per (output channel, quad) one
    /// of four 4-tap masks, or (a third of them) none; 7-bit codes, so the
    /// integer pattern kernel takes the layer on AVX2 as well.
    pub(crate) fn pattern_text(&self, i: usize, input: &str) -> String {
        const MASKS: [u32; 4] = [0b000_111_010, 0b010_110_010, 0b000_011_011, 0b010_010_011];
        assert!(self.k == 3 && self.group == 1, "pattern layers are 3x3 convs of one group");
        let c = self.c;
        let codes = random(7 + i as u64, c * c * 9, -63.0, 63.0);
        let codes: Vec<f32> = (0..c * c * 9)
            .map(|j| {
                let unit = j / 9 / c * c.div_ceil(4) + j / 9 % c / 4;
                let mask = if unit.is_multiple_of(3) { 0 } else { MASKS[unit * 7 % 4] };
                let q = codes[j].round();
                match mask & (1 << (j % 9)) {
                    0 => 0.0,
                    _ if q == 0.0 => 1.0,
                    _ => q,
                }
            })
            .collect();
        self.text_codes(i, input, &codes)
    }

    /// Layer `i` over `input` with these weight codes.
    fn text_codes(&self, i: usize, input: &str, codes: &[f32]) -> String {
        let QLayer { c, group, k, pads: p, side, clip: (lo, hi) } = *self;
        let cg = c / group;
        let w: Vec<String> = codes.iter().map(|q| format!("{:?}", q * 0.01)).collect();
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
