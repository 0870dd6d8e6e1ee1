//! The op registry: ONNX op type → converter. One file per op family.
//!
//! A converter reads its node through [`Cx`], emits IR nodes with
//! [`Cx::add`] (which folds constant nodes) and returns one value per ONNX
//! output it provides, in order. Outputs it leaves off are unavailable; a
//! later reader of one gets an error naming it.

use std::sync::OnceLock;

use kerf_ir::ValueId;

use crate::import::Cx;
use crate::ImportError;

mod attention;
mod attention_flex;
mod attention_linear;
mod attention_rotary;
mod col2im;
mod compose;
pub(crate) mod control;
mod conv;
mod data;
mod deform;
mod einsum;
mod elementwise;
mod extra;
mod gather;
mod gridsample;
mod indexing;
mod linalg;
mod loss;
mod maxunpool;
mod norm;
mod pool_indices;
mod quant;
mod quant_int;
mod reduce;
mod resize;
mod resize_matrix;
mod rnn;
mod roialign;
mod scan_like;
mod shape;
mod signal;

pub(crate) type Converter = fn(&mut Cx) -> Result<Vec<ValueId>, ImportError>;

fn registry() -> &'static [(&'static str, Converter)] {
    static REG: OnceLock<Vec<(&'static str, Converter)>> = OnceLock::new();
    REG.get_or_init(|| {
        let mut r: Vec<(&'static str, Converter)> = Vec::new();
        elementwise::register(&mut r);
        attention::register(&mut r);
        attention_linear::register(&mut r);
        attention_rotary::register(&mut r);
        conv::register(&mut r);
        linalg::register(&mut r);
        loss::register(&mut r);
        norm::register(&mut r);
        quant::register(&mut r);
        quant_int::register(&mut r);
        shape::register(&mut r);
        reduce::register(&mut r);
        resize::register(&mut r);
        rnn::register(&mut r);
        scan_like::register(&mut r);
        extra::register(&mut r);
        gather::register(&mut r);
        indexing::register(&mut r);
        einsum::register(&mut r);
        gridsample::register(&mut r);
        col2im::register(&mut r);
        deform::register(&mut r);
        roialign::register(&mut r);
        maxunpool::register(&mut r);
        signal::register(&mut r);
        r.sort_by_key(|(n, _)| *n);
        r
    })
}

pub(crate) fn lookup(op: &str) -> Option<Converter> {
    let r = registry();
    r.binary_search_by_key(&op, |(n, _)| *n).ok().and_then(|i| r.get(i)).map(|(_, f)| *f)
}

/// The ONNX (default-domain) op types with a converter; other domains'
/// ops are registered under `domain:op` and not listed.
pub(crate) fn names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| registry().iter().map(|(n, _)| *n).filter(|n| !n.contains(':')).collect())
}

/// Checks a shaping integer is non-negative.
pub(crate) fn non_neg(cx: &Cx, what: &str, v: &[i64]) -> Result<Vec<usize>, ImportError> {
    v.iter()
        .map(|&x| usize::try_from(x))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| cx.err(format!("{what} must not be negative, got {v:?}")))
}

/// Checks that a result shape's element and byte counts fit in memory
/// arithmetic, so absurd attributes are an error rather than an overflow.
pub(crate) fn fits(cx: &Cx, shape: &[usize]) -> Result<(), ImportError> {
    match kerf_ir::numel(shape).and_then(|n| n.checked_mul(8)) {
        Some(_) => Ok(()),
        None => Err(cx.err(format!("result shape {shape:?} is too large"))),
    }
}
