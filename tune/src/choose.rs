//! The choice rules of the search, over measured rows and plans (nothing
//! here measures): what a variant buys over the baseline ([`benefit`]),
//! the best set of per-layer variants under the budget ([`knapsack`]),
//! which chosen layer to revert when the plan misses it
//! ([`revert_choice`]), and whether the chosen plan still beats the
//! baseline and the single-technique plans timed together
//! ([`keep_the_best`]).

use crate::options::{Evaluated, Objective, NOISE};
use crate::variants::Variant;

/// The plan to keep after `search::retime`: the search's `chosen` plan unless,
/// under the latency objective, the baseline or a single-technique plan
/// (`singles`) that `meets` the budget buys strictly more ([`benefit`]
/// over the baseline, with the latencies timed together). The search adds
/// up per-layer gains; timed together, their sum can still lose to FP32
/// (on a microsecond model, say, each layer's gain within its noise). A
/// size search keeps its plan: bytes do not move between timings.
pub(crate) fn keep_the_best(
    objective: Objective,
    evaluated: &[Evaluated],
    chosen: usize,
    singles: std::ops::Range<usize>,
    meets: &dyn Fn(f64) -> bool,
) -> usize {
    if objective != Objective::Latency {
        return chosen;
    }
    let base = &evaluated[0];
    let gain = |i: usize| benefit(objective, base, &evaluated[i]);
    let rivals = std::iter::once(0).chain(singles.filter(|&i| meets(evaluated[i].metric)));
    rivals.fold(chosen, |best, i| if gain(i) > gain(best) { i } else { best })
}

pub(crate) type Row = (String, Variant, Evaluated);

/// What `e` buys over the baseline `b` under `objective`: relative latency
/// saved plus a tenth of the relative weight bytes saved, where a variant
/// within [`NOISE`] of the baseline is a tie (bytes alone decide) and one
/// measurably slower is never taken; or the bytes saved alone. Only
/// variants with a positive benefit are considered.
pub(crate) fn benefit(objective: Objective, b: &Evaluated, e: &Evaluated) -> f64 {
    let bytes = (b.weight_bytes as f64 - e.weight_bytes as f64) / b.weight_bytes.max(1) as f64;
    match objective {
        Objective::Size => bytes,
        Objective::Latency => {
            let saved = (b.latency_ms - e.latency_ms) / b.latency_ms;
            if saved <= -NOISE {
                saved // measurably slower: never taken, however small
            } else if saved < NOISE {
                0.1 * bytes // a tie: the smaller wins
            } else {
                saved + 0.1 * bytes
            }
        }
    }
}

/// Resolution of the budget in the dynamic programme: costs are counted
/// in `1 / BUDGET_STEPS` of the budget, rounded up (so the chosen set's
/// summed cost never exceeds the budget).
const BUDGET_STEPS: usize = 1000;

/// The set of rows, at most one per layer, with the largest summed
/// benefit whose summed cost fits `budget`: a multiple-choice knapsack
/// solved exactly by dynamic programming over the discretised budget (the
/// SPDY-style search of OBC, over measured latencies). Rows with no
/// benefit are never chosen; ties keep the earlier (layer, variant) order.
pub(crate) fn knapsack(
    rows: &[Row],
    benefit: &dyn Fn(&Evaluated) -> f64,
    cost: &dyn Fn(&Evaluated) -> f64,
    budget: f64,
) -> Vec<usize> {
    let weight = |i: usize| -> Option<usize> {
        let c = cost(&rows[i].2);
        if c <= 0.0 {
            return Some(0);
        }
        if budget <= 0.0 || c > budget * (1.0 + 1e-12) {
            return None;
        }
        Some(((c / budget) * BUDGET_STEPS as f64 - 1e-9).ceil().max(1.0) as usize)
    };
    // layers in first-seen order, each with its candidates (row, weight, benefit)
    type Candidates = Vec<(usize, usize, f64)>;
    let mut layers: Vec<(&str, Candidates)> = Vec::new();
    for (i, (layer, _, e)) in rows.iter().enumerate() {
        let (b, Some(w)) = (benefit(e), weight(i)) else { continue };
        if b <= 0.0 || w > BUDGET_STEPS {
            continue;
        }
        match layers.iter_mut().find(|(l, _)| *l == layer) {
            Some((_, c)) => c.push((i, w, b)),
            None => layers.push((layer, vec![(i, w, b)])),
        }
    }
    // best[c]: the largest benefit (and its rows) with summed weight <= c
    let mut best: Vec<(f64, Vec<usize>)> = vec![(0.0, Vec::new()); BUDGET_STEPS + 1];
    for (_, cands) in &layers {
        let prev = best.clone();
        for c in 0..=BUDGET_STEPS {
            for &(i, w, b) in cands {
                if w <= c && prev[c - w].0 + b > best[c].0 {
                    let mut set = prev[c - w].1.clone();
                    set.push(i);
                    best[c] = (prev[c - w].0 + b, set);
                }
            }
        }
    }
    best.pop().map(|(_, s)| s).unwrap_or_default()
}

/// Which of the chosen rows to revert when the chosen plan misses the
/// budget (NNCF's accuracy control, with output errors for its ranking
/// metric): the samples on which the plan's output strays furthest from
/// FP32 (`plan_error`; the worst quarter, at least one) are the ranking
/// subset, and the row whose layer alone strays furthest on them goes,
/// whatever it cost on average (a top-1 drop counts whole samples, so many
/// layers tie at none). When any row lacks per-sample errors, the row
/// that cost the most on its own (`costs`) goes. Returns the position in
/// the rows given and how it was ranked.
pub(crate) fn revert_choice(plan_error: &[f64], errors: &[&[f64]], costs: &[f64]) -> (usize, String) {
    let n = plan_error.len();
    let argmax =
        |v: &[f64]| v.iter().enumerate().fold(0, |best, (k, x)| if x.total_cmp(&v[best]).is_gt() { k } else { best });
    if n == 0 || errors.iter().any(|e| e.len() != n) {
        return (argmax(costs), "the largest loss alone".into());
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| plan_error[y].total_cmp(&plan_error[x]).then(x.cmp(&y)));
    let subset = &order[..n.div_ceil(4)];
    let score: Vec<f64> =
        errors.iter().map(|e| subset.iter().map(|&s| e[s]).sum::<f64>() / subset.len() as f64).collect();
    let k = argmax(&score);
    (k, format!("output error {:.3e} alone on the plan's worst {} samples", score[k], subset.len()))
}

#[cfg(test)]
mod tests {
    use kerf_compress::Plan;

    use super::*;
    use crate::variants::variant;

    fn row(layer: &str, metric: f64, latency_ms: f64) -> Row {
        let e = Evaluated {
            label: String::new(),
            plan: Plan::default(),
            metric,
            latency_ms,
            layer_delta_ms: None,
            layer_error: None,
            weight_bytes: 100,
            macs: 0,
            sample_error: Vec::new(),
        };
        (layer.to_string(), variant("v", true, 0, 0.0, 0.0), e)
    }

    #[test]
    fn the_latency_objective_takes_only_what_measurably_pays() {
        let at = |layer: &str, ms: f64, bytes: usize| {
            let mut r = row(layer, 1.0, ms);
            r.2.weight_bytes = bytes;
            r
        };
        let base = at("base", 1.0, 100).2;
        // faster; within noise but smaller (a tie decided by bytes); within
        // noise and no smaller; measurably slower even though much smaller
        let rows = [at("a", 0.90, 120), at("b", 1.02, 50), at("c", 0.99, 100), at("d", 1.05, 10)];
        let pick = |o: Objective| knapsack(&rows, &|e| benefit(o, &base, e), &|_| 0.0, 1.0);
        assert_eq!(pick(Objective::Latency), vec![0, 1]);
        // by size alone, every smaller variant
        assert_eq!(pick(Objective::Size), vec![1, 3]);
    }

    #[test]
    fn a_plan_slower_than_fp32_timed_together_gives_way() {
        let at = |label: &str, metric: f64, ms: f64, bytes: usize| Evaluated {
            label: label.into(),
            plan: Plan::default(),
            metric,
            latency_ms: ms,
            layer_delta_ms: None,
            layer_error: None,
            weight_bytes: bytes,
            macs: 0,
            sample_error: Vec::new(),
        };
        let all = |chosen: Evaluated| {
            vec![at("fp32", 0.97, 1.0, 100), at("int8", 0.96, 2.0, 25), at("patterns", 0.90, 0.5, 60), chosen]
        };
        let meets = |m: f64| m >= 0.95;
        let keep = |e: &[Evaluated], o| keep_the_best(o, e, 3, 1..3, &meets);
        // measurably slower than FP32: FP32 is kept (the faster patterns
        // plan misses the budget)
        let slow = all(at("chosen", 0.97, 1.5, 30));
        assert_eq!(keep(&slow, Objective::Latency), 0);
        // a size search keeps its plan
        assert_eq!(keep(&slow, Objective::Size), 3);
        // faster: kept; a tie in time: kept for its bytes
        assert_eq!(keep(&all(at("chosen", 0.97, 0.7, 30)), Objective::Latency), 3);
        assert_eq!(keep(&all(at("chosen", 0.97, 1.01, 30)), Objective::Latency), 3);
        // a single-technique plan within the budget and faster than the chosen one
        let mut e = all(at("chosen", 0.96, 0.9, 30));
        e[2].metric = 0.96;
        assert_eq!(keep(&e, Objective::Latency), 2);
    }

    #[test]
    fn reverts_rank_layers_by_their_error_on_the_plans_worst_samples() {
        // eight samples: the plan strays most on samples 5 and 2 (the worst quarter)
        let plan = [0.01, 0.02, 0.5, 0.01, 0.03, 0.9, 0.02, 0.01];
        // a: worse on average and alone costlier, but harmless on 5 and 2; b: the cause there
        let a = [0.2, 0.2, 0.01, 0.2, 0.2, 0.01, 0.2, 0.2];
        let b = [0.0, 0.0, 0.3, 0.0, 0.0, 0.6, 0.0, 0.0];
        let (k, how) = revert_choice(&plan, &[&a, &b], &[0.02, 0.01]);
        assert_eq!(k, 1, "{how}");
        assert!(how.contains("worst 2 samples"), "{how}");
        // rows measured without per-sample errors: the costlier alone goes
        assert_eq!(revert_choice(&plan, &[&a, &[]], &[0.02, 0.01]).0, 0);
        assert_eq!(revert_choice(&[], &[&a, &b], &[0.01, 0.02]).0, 1);
    }

    #[test]
    fn the_knapsack_finds_the_best_set_where_greedy_does_not() {
        // benefit = latency saved (of 1.0), cost = metric lost (of 1.0); budget 1.0.
        // Greedy by benefit per cost takes a (0.5 for 0.6) and then nothing
        // fits; the best set is b + c (0.8 for 1.0).
        let rows = [row("a", 0.4, 0.5), row("b", 0.5, 0.6), row("c", 0.5, 0.6), row("b", 1.0, 0.95)];
        let benefit = |e: &Evaluated| 1.0 - e.latency_ms;
        let cost = |e: &Evaluated| 1.0 - e.metric;
        assert_eq!(knapsack(&rows, &benefit, &cost, 1.0), vec![1, 2]);
        // one variant per layer: b's free variant (row 3) and a fit together
        assert_eq!(knapsack(&rows, &benefit, &cost, 0.6), vec![0, 3]);
        // a budget of zero takes only what costs nothing
        assert_eq!(knapsack(&rows, &benefit, &cost, 0.0), vec![3]);
        // nothing with a benefit: nothing chosen
        assert!(knapsack(&rows, &|_| 0.0, &cost, 1.0).is_empty());
    }
}
