//! Einsum as a composition: each operand's repeated labels are reduced to
//! their diagonal (`Where(eye, x, 0)` summed over the second copy), its axes
//! are transposed into one global label order (output labels first, then
//! the summed ones) and reshaped with size-1 axes for labels it lacks; the
//! operands are multiplied with broadcasting and the summed labels reduced.
//!
//! Exact up to the summation order, any numeric dtype (f16/bf16 computed in
//! f32). The broadcast product materialises every label's extent at once, so
//! memory is the product of all label sizes: right for the small contractions
//! Einsum is used for in practice (and the ONNX tests), not a replacement for
//! MatMul on large operands.

use std::collections::BTreeMap;

use kerf_ir::op::{BinaryOp, ReduceKind};
use kerf_ir::{DType, Op, Tensor, ValueId};

use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("Einsum", einsum));
}

/// Labels of the broadcast (`...`) axes: code points no equation letter uses.
fn ellipsis_label(i: usize) -> char {
    char::from_u32(0x100 + i as u32).unwrap_or('?')
}

/// The labels of one operand term, with `...` expanded to its `e` axes
/// (right-aligned among the `total` ellipsis labels).
fn expand(cx: &Cx, term: &str, rank: usize, total: &mut usize) -> Result<Vec<char>, ImportError> {
    let letters = term.replace("...", "");
    if !letters.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(cx.err(format!("bad einsum term '{term}'")));
    }
    let n = letters.chars().count();
    if !term.contains("...") {
        if n != rank {
            return Err(cx.err(format!("term '{term}' has {n} labels for an operand of rank {rank}")));
        }
        return Ok(letters.chars().collect());
    }
    let e = rank.checked_sub(n).ok_or_else(|| cx.err(format!("term '{term}' has more labels than rank {rank}")))?;
    *total = (*total).max(e);
    let (pre, post) = term.split_once("...").unwrap_or((term, ""));
    let mut v: Vec<char> = pre.chars().collect();
    // placeholders, fixed up once every operand's ellipsis rank is known
    v.extend((0..e).map(|i| char::from_u32(0x10000 + (e - i) as u32).unwrap_or('?')));
    v.extend(post.chars());
    Ok(v)
}

fn einsum(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let eq: String = cx.attrs().string("equation", "")?.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let Operands { mut xs, labels, total } = operands(cx, &eq, lhs)?;
    let n_in = xs.len();
    let dtype = cx.ty(xs[0]).dtype;
    if xs.iter().any(|&x| cx.ty(x).dtype != dtype) || !(dtype.is_int() || dtype.is_float()) {
        return Err(cx.err("operands must share one numeric type"));
    }
    let half = matches!(dtype, DType::F16 | DType::BF16);
    if half {
        for x in &mut xs {
            *x = cx.add1(Op::Cast(DType::F32), vec![*x])?;
        }
    }
    let work = if half { DType::F32 } else { dtype };
    let size = label_sizes(cx, &xs, &labels)?;
    let out = output_labels(cx, rhs, &labels, &size, total)?;
    // every label: the output's first, then the summed ones
    let mut order = out.clone();
    for l in &labels {
        for &c in l {
            if !order.contains(&c) {
                order.push(c);
            }
        }
    }
    let mut prod: Option<ValueId> = None;
    for (x, mut l) in xs.into_iter().zip(labels) {
        let x = diagonal(cx, x, &mut l, work)?;
        let x = aligned(cx, x, &l, &order)?;
        prod = Some(match prod {
            None => x,
            Some(p) => cx.add1(Op::Binary(BinaryOp::Mul), vec![p, x])?,
        });
    }
    let mut r = prod.ok_or_else(|| cx.err("Einsum needs at least one operand"))?;
    let summed: Vec<usize> = (out.len()..order.len()).collect();
    if !summed.is_empty() {
        r = cx.add1(Op::Reduce { kind: ReduceKind::Sum, axes: summed, keepdims: false }, vec![r])?;
    }
    // output labels of size 1 in every operand but broadcast: expand to the full size
    let want: Vec<usize> = out.iter().map(|c| size[c]).collect();
    if cx.shape(r) != want {
        r = cx.add1(Op::Expand { shape: want }, vec![r])?;
    }
    if half {
        r = cx.add1(Op::Cast(dtype), vec![r])?;
    } else if n_in == 1 && cx.opt_input(0) == Some(r) {
        r = cx.add1(Op::Identity, vec![r])?;
    }
    Ok(vec![r])
}

/// The node's operands with their labels.
struct Operands {
    xs: Vec<ValueId>,
    /// Per operand, one label per axis (`...` expanded, right-aligned among
    /// the `total` ellipsis labels).
    labels: Vec<Vec<char>>,
    /// Axes the ellipsis stands for in the widest operand.
    total: usize,
}

/// The node's operands and their labels from the equation's left side.
fn operands(cx: &Cx, eq: &str, lhs: &str) -> Result<Operands, ImportError> {
    let terms: Vec<&str> = lhs.split(',').collect();
    let n_in = cx.node.inputs.len();
    if terms.len() != n_in {
        return Err(cx.err(format!("equation '{eq}' has {} operands, the node {n_in}", terms.len())));
    }
    let mut xs = Vec::with_capacity(n_in);
    let mut labels = Vec::with_capacity(n_in);
    let mut total = 0;
    for (i, t) in terms.iter().enumerate() {
        let x = cx.input(i)?;
        let rank = cx.ty(x).rank();
        labels.push(expand(cx, t, rank, &mut total)?);
        xs.push(x);
    }
    // ellipsis placeholder (distance from the ellipsis end) -> right-aligned label
    for l in &mut labels {
        for c in l.iter_mut() {
            if let Some(d) = (*c as u32).checked_sub(0x10000).filter(|&d| d > 0) {
                *c = ellipsis_label(total - d as usize);
            }
        }
    }
    Ok(Operands { xs, labels, total })
}

/// Each label's size (1 broadcasts against the others).
fn label_sizes(cx: &Cx, xs: &[ValueId], labels: &[Vec<char>]) -> Result<BTreeMap<char, usize>, ImportError> {
    let mut size: BTreeMap<char, usize> = BTreeMap::new();
    for (x, l) in xs.iter().zip(labels) {
        for (&c, &d) in l.iter().zip(&cx.shape(*x)) {
            let s = size.entry(c).or_insert(d);
            if *s == 1 {
                *s = d;
            } else if d != 1 && d != *s {
                return Err(cx.err(format!("label '{c}' has sizes {s} and {d}")));
            }
        }
    }
    Ok(size)
}

/// The output's labels: the equation's right-hand side, or without one the
/// ellipsis labels then every letter used once, alphabetically.
fn output_labels(
    cx: &Cx,
    rhs: Option<&str>,
    labels: &[Vec<char>],
    size: &BTreeMap<char, usize>,
    total: usize,
) -> Result<Vec<char>, ImportError> {
    let ell: Vec<char> = (0..total).map(ellipsis_label).collect();
    let Some(r) = rhs else {
        let mut count: BTreeMap<char, usize> = BTreeMap::new();
        for l in labels {
            for &c in l {
                *count.entry(c).or_default() += 1;
            }
        }
        let mut v = ell;
        v.extend(count.iter().filter(|(c, &n)| n == 1 && c.is_ascii_alphabetic()).map(|(&c, _)| c));
        return Ok(v);
    };
    let mut v = Vec::new();
    let (pre, post) = r.split_once("...").unwrap_or((r, ""));
    v.extend(pre.chars());
    if r.contains("...") {
        v.extend(&ell);
    }
    v.extend(post.chars());
    if v.iter().any(|c| !size.contains_key(c)) {
        return Err(cx.err(format!("output '{r}' names a label no operand has")));
    }
    Ok(v)
}

/// `x` with each repeated label reduced to its diagonal (`l` loses the
/// second copy): `Where(eye, x, 0)` summed over that axis.
fn diagonal(cx: &mut Cx, mut x: ValueId, l: &mut Vec<char>, work: DType) -> Result<ValueId, ImportError> {
    while let Some((p, q)) = repeated(l) {
        let shape = cx.shape(x);
        let n = shape[p];
        let mut eye_shape = vec![1; shape.len()];
        eye_shape[p] = n;
        eye_shape[q] = n;
        let eye: Vec<i64> = (0..n * n).map(|k| i64::from(k / n == k % n)).collect();
        let eye = Tensor::from_i64_values(DType::Bool, eye_shape, &eye).map_err(|e| cx.err(e.to_string()))?;
        let eye = cx.derived("diagonal", eye);
        let zero = Tensor::from_f64_values(work, vec![], &[0.0]).map_err(|e| cx.err(e.to_string()))?;
        let zero = cx.derived("zero", zero);
        let masked = cx.add1(Op::Where, vec![eye, x, zero])?;
        x = cx.add1(Op::Reduce { kind: ReduceKind::Sum, axes: vec![q], keepdims: false }, vec![masked])?;
        l.remove(q);
    }
    Ok(x)
}

/// `x` (labels `l`, each once) transposed into `order` and reshaped with a
/// size-1 axis for every label of `order` it lacks.
fn aligned(cx: &mut Cx, mut x: ValueId, l: &[char], order: &[char]) -> Result<ValueId, ImportError> {
    let mut perm: Vec<usize> = (0..l.len()).collect();
    perm.sort_by_key(|&a| order.iter().position(|&c| c == l[a]).unwrap_or(usize::MAX));
    if perm.iter().enumerate().any(|(a, &p)| a != p) {
        x = cx.add1(Op::Transpose { perm: perm.clone() }, vec![x])?;
    }
    let shape = cx.shape(x);
    let sorted: Vec<char> = perm.iter().map(|&p| l[p]).collect();
    let full: Vec<usize> = order.iter().map(|c| sorted.iter().position(|d| d == c).map_or(1, |k| shape[k])).collect();
    // leading size-1 axes are implied by broadcasting; keep rank explicit anyway
    if full != shape {
        x = cx.add1(Op::Reshape { shape: full }, vec![x])?;
    }
    Ok(x)
}

/// The first label that appears twice: (first position, second position).
fn repeated(l: &[char]) -> Option<(usize, usize)> {
    for q in 0..l.len() {
        if let Some(p) = l[..q].iter().position(|&c| c == l[q]) {
            return Some((p, q));
        }
    }
    None
}
