//! Rewrite rules, one file per group.
//!
//! Rules match typed ops, which egg's pattern language cannot express, so a
//! rule is Rust code implementing [`Rule`]: `find` looks at one e-class of a
//! clean e-graph and returns matches; `apply` adds nodes and unions them with
//! the class. [`Adapter`] turns a [`Rule`] into an egg [`Rewrite`] so egg's
//! `Runner` drives it: the searcher stores the matches in a side table and
//! binds one variable to the match's index; the applier reads it back.
//!
//! Rule conventions (after Cranelift's mid-end rules): every rule is named,
//! directional (it adds a cheaper or simpler form; it never adds the inverse
//! rewrite), has no blanket commutativity/associativity, states in its doc
//! comment what it matches, what it produces and why that is sound, and has
//! its own test. Appliers that create weights memoize by source in
//! [`crate::analysis::KerfAnalysis::memo`].

use std::sync::{Arc, Mutex, PoisonError};

use egg::{Applier, Id, PatternAst, Rewrite, SearchMatches, Searcher, Subst, Symbol, Var};

use crate::analysis::{KEGraph, KerfAnalysis};
use crate::lang::KNode;

pub mod bn_fold;
pub mod chain;
pub mod cleanup;
pub mod const_fold;
pub mod fusion;
pub mod gelu;
pub mod hardswish;
pub mod int8;
pub mod int8_transposed;
pub mod pointwise;
pub mod quant_move;
pub mod requant;
pub mod reshape;
pub mod winograd;

/// An egg rewrite over kerf's language and analysis (made from a [`Rule`] by [`rewrite`]).
pub type KRewrite = Rewrite<KNode, KerfAnalysis>;

/// A typed rewrite rule.
pub trait Rule: Send + Sync + 'static {
    /// What `find` records about one match for `apply` (matches are kept in a side table
    /// until the iteration's apply step).
    type Match: Send + 'static;
    /// The rule's name, as reported in [`crate::GroupReport::rules_fired`].
    fn name(&self) -> &'static str;
    /// Appends the matches rooted at `class` (the e-graph is clean).
    fn find(&self, eg: &KEGraph, class: Id, out: &mut Vec<Self::Match>);
    /// Applies one match to `class`; returns the classes a union changed.
    fn apply(&self, eg: &mut KEGraph, class: Id, m: &Self::Match) -> Vec<Id>;
}

/// Unions `a` and `b`; returns the merged class if anything changed.
pub fn union(eg: &mut KEGraph, a: Id, b: Id) -> Vec<Id> {
    if eg.union(a, b) {
        vec![eg.find(a)]
    } else {
        vec![]
    }
}

/// Adds `node` and unions it with `class`.
pub fn add_union(eg: &mut KEGraph, class: Id, node: KNode) -> Vec<Id> {
    let id = eg.add(node);
    union(eg, class, id)
}

/// The weights `make` derives for `key`, made once per e-graph: a rule
/// finds its match again in every iteration, and new weights each time
/// would be new e-nodes each time. `None` (nothing to derive) is
/// remembered too.
pub fn memoized(
    eg: &mut KEGraph,
    key: crate::analysis::MemoKey,
    make: impl FnOnce(&mut KEGraph) -> Option<Vec<kerf_ir::WeightId>>,
) -> Option<Vec<kerf_ir::WeightId>> {
    if let Some(r) = eg.analysis.memo.get(&key) {
        return r.clone();
    }
    let made = make(eg);
    eg.analysis.memo.insert(key, made.clone());
    made
}

/// Wraps a [`Rule`] as both egg searcher and applier.
pub struct Adapter<R: Rule> {
    rule: Arc<R>,
    table: Arc<Mutex<Vec<R::Match>>>,
}

impl<R: Rule> Clone for Adapter<R> {
    fn clone(&self) -> Self {
        Adapter { rule: self.rule.clone(), table: self.table.clone() }
    }
}

fn match_var() -> Var {
    Var::from(0u32)
}

/// Builds the egg rewrite for a rule.
pub fn rewrite<R: Rule>(rule: R) -> KRewrite {
    let name = rule.name();
    let a = Adapter { rule: Arc::new(rule), table: Arc::new(Mutex::new(Vec::new())) };
    // Rewrite::new only fails when the applier needs variables the searcher
    // does not bind; both sides are this adapter, so it cannot.
    match Rewrite::new(name, a.clone(), a) {
        Ok(r) => r,
        Err(e) => unreachable!("adapter rewrite '{name}': {e}"),
    }
}

impl<R: Rule> Searcher<KNode, KerfAnalysis> for Adapter<R> {
    fn search_eclass_with_limit(&self, eg: &KEGraph, eclass: Id, limit: usize) -> Option<SearchMatches<'_, KNode>> {
        let mut found = Vec::new();
        self.rule.find(eg, eclass, &mut found);
        found.truncate(limit);
        if found.is_empty() {
            return None;
        }
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let substs = found
            .into_iter()
            .map(|m| {
                let mut s = Subst::with_capacity(1);
                s.insert(match_var(), Id::from(table.len()));
                table.push(m);
                s
            })
            .collect();
        Some(SearchMatches { eclass, substs, ast: None })
    }

    /// One call per iteration: starts a fresh match table and visits classes
    /// in id order.
    fn search_with_limit(&self, eg: &KEGraph, mut limit: usize) -> Vec<SearchMatches<'_, KNode>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner).clear();
        let mut ids: Vec<Id> = eg.classes().map(|c| c.id).collect();
        ids.sort();
        let mut out = Vec::new();
        for id in ids {
            if limit == 0 {
                break;
            }
            if let Some(m) = self.search_eclass_with_limit(eg, id, limit) {
                limit = limit.saturating_sub(m.substs.len());
                out.push(m);
            }
        }
        out
    }

    fn vars(&self) -> Vec<Var> {
        vec![match_var()]
    }
}

impl<R: Rule> Applier<KNode, KerfAnalysis> for Adapter<R> {
    fn apply_one(
        &self,
        eg: &mut KEGraph,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<KNode>>,
        _rule: Symbol,
    ) -> Vec<Id> {
        let Some(i) = subst.get(match_var()) else { return vec![] };
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(m) = table.get(usize::from(*i)) else { return vec![] };
        eg.analysis.current_rule = Some(self.rule.name());
        let changed = self.rule.apply(eg, eclass, m);
        eg.analysis.current_rule = None;
        changed
    }

    fn vars(&self) -> Vec<Var> {
        vec![match_var()]
    }
}

fn int8_group() -> Vec<KRewrite> {
    int8::rules()
        .into_iter()
        .chain(int8_transposed::rules())
        .chain(requant::rules())
        .chain(quant_move::rules())
        .collect()
}

fn bn_fold_group() -> Vec<KRewrite> {
    bn_fold::rules().into_iter().chain(pointwise::rules()).collect()
}

fn cleanup_group() -> Vec<KRewrite> {
    cleanup::rules().into_iter().chain(gelu::rules()).chain(hardswish::rules()).collect()
}

/// A rule group: its name and the function making its rules.
pub type Group = (&'static str, fn() -> Vec<KRewrite>);

/// The rule groups in pipeline order, each with its rules: the one list.
pub const GROUPS: &[Group] = &[
    ("cleanup", cleanup_group),
    ("reshape", reshape::rules),
    ("bn-fold", bn_fold_group),
    ("const-fold", const_fold::rules),
    ("winograd", winograd::rules),
    ("fusion", fusion::rules),
    ("int8", int8_group),
    ("chain", chain::rules),
];

/// A group's static name and rules, or `None` for an unknown group name.
pub fn group(name: &str) -> Option<(&'static str, Vec<KRewrite>)> {
    GROUPS.iter().find(|g| g.0 == name).map(|g| (g.0, (g.1)()))
}

/// Whether the f32 pattern kernel computes the conv `c` of `class` with
/// weight `w`: one group, its weight pattern-pruned and sparse enough for
/// the output plane to beat the dense kernels
/// ([`kerf_ir::Sparsity::pattern_beats_winograd`]), and a stride the
/// kernel takes (2 only with the assembled tiles). The `winograd` group
/// leaves such a conv direct and the `int8` group leaves it f32: the
/// pattern kernel does only the kept multiply-adds, Winograd and the
/// integer GEMM all of them. Pointwise (1x1) convs are never left f32:
/// the pattern kernel takes them only at most 40% kept
/// ([`kerf_ir::Sparsity::pattern_beats_dense`]), where the dense
/// integer GEMM is faster still (256 channels on 28x28 with a quarter
/// kept, AMD EPYC Zen 4 with VNNI, 1 thread: f32 pattern kernel 0.62 ms,
/// dense int8 0.26 ms).
pub(crate) fn on_pattern_kernel(eg: &KEGraph, class: Id, c: &kerf_ir::op::Conv, w: kerf_ir::WeightId) -> bool {
    let wide = eg.analysis.wide_patterns;
    let strides = |v: usize| c.window.strides.iter().all(|&s| s == v);
    let plane = eg[class].data.ty().map_or(0, |t| t.shape.iter().skip(2).product());
    let pointwise = c.window.kernel.iter().all(|&k| k == 1);
    c.group == 1
        && !pointwise
        && (strides(1) || wide && strides(2))
        && kerf_ir::Sparsity::detect(eg.analysis.weights.tensor(w))
            .is_some_and(|sp| sp.pattern_beats_winograd(plane, wide))
}

/// Whether the integer pattern kernel would compute the conv `c` with
/// weight `w` once quantised (the code generator's
/// `lower::qconv_pattern`): the assembled quad tiles
/// ([`crate::analysis::KerfAnalysis::quad_tiles`]) and the grid's
/// codes as [`kerf_ir::ChannelQuads::of_integer_conv`] asks (pattern
/// pruning with `pattern_group = 4`). The `int8` group then offers the
/// integer conv for a pattern-pruned conv too.
pub(crate) fn on_quad_kernel(eg: &KEGraph, c: &kerf_ir::op::Conv, w: kerf_ir::WeightId) -> bool {
    let weight = eg.analysis.weights.get(w);
    if !eg.analysis.quad_tiles() {
        return false;
    }
    let Some(codes) = weight.grid.as_ref().and_then(|g| g.codes(&weight.tensor).ok()) else { return false };
    let codes: Vec<i64> = codes.into_iter().map(i64::from).collect();
    kerf_ir::Tensor::from_i64_values(kerf_ir::DType::I8, weight.tensor.shape().to_vec(), &codes)
        .is_ok_and(|t| kerf_ir::ChannelQuads::of_integer_conv(c, &t, eg.analysis.int8_dot.saturates()).is_some())
}

/// The class's only parent class is `parent` (no other user among the
/// e-graph's nodes; graph outputs are not parents, so for a value that is
/// also a graph output the DAG-aware extraction cost is what keeps it from
/// being computed twice). Fusion and chaining rules require it of the
/// producer they absorb.
pub(crate) fn single_user(eg: &KEGraph, class: Id, parent: Id) -> bool {
    let parents: std::collections::BTreeSet<Id> = eg[class].parents().map(|p| eg.find(p)).collect();
    parents.len() == 1 && parents.contains(&eg.find(parent))
}
