//! `ai.onnx.preview` FlexAttention as a composition of existing IR ops,
//! following the ONNX reference
//! (`onnx/reference/ops/aionnx_preview/op_flex_attention.py`):
//!
//! `scores = (Q·√scale)(K·√scale)ᵀ` (K/V heads repeated for grouped-query
//! attention), in the compute type (`softmax_precision`, else f32 for half
//! inputs, else the input type); the optional `score_mod` subgraph is
//! inlined on the scores, then softmax over the keys, the optional
//! `prob_mod` subgraph on the probabilities, `·V` and a cast to V's type.
//! Half-precision Q/K are widened to f32 before the first product (the
//! reference multiplies in half precision and then widens; f32 is at least
//! as accurate).
//!
//! It lives beside the control-flow converters because its subgraph
//! attributes are inlined like If branches.

use kerf_ir::op::BinaryOp;
use kerf_ir::{DType, Op, Tensor, ValueId};

use crate::import::{inline_graph, Env, State, Val};
use crate::proto::NodeDef;
use crate::ImportError;

/// The registry name (domain-qualified).
pub(super) const NAME: &str = "ai.onnx.preview:FlexAttention";

struct Emitter<'n> {
    n: &'n NodeDef,
    name: &'n str,
    k: usize,
}

impl Emitter<'_> {
    fn err(&self, msg: impl Into<String>) -> ImportError {
        ImportError::Node { node: self.name.to_string(), op: self.n.op_type.clone(), msg: msg.into() }
    }

    fn emit(&mut self, st: &mut State, op: Op, inputs: Vec<ValueId>) -> Result<ValueId, ImportError> {
        self.k += 1;
        let name = if self.k == 1 { self.name.to_string() } else { format!("{}/{}", self.name, self.k - 1) };
        let mut cx = st.cx(self.n, &name, Vec::new());
        cx.add1(op, inputs)
    }

    fn matmul(&mut self, st: &mut State, a: ValueId, b: ValueId) -> Result<ValueId, ImportError> {
        let layer = st.cx(self.n, self.name, Vec::new()).layer();
        self.emit(st, Op::MatMul(layer), vec![a, b])
    }

    fn scalar(&mut self, st: &mut State, dt: DType, v: f64) -> Result<ValueId, ImportError> {
        let t = Tensor::from_f64_values(dt, vec![], &[v]).map_err(|e| self.err(e.to_string()))?;
        let mut cx = st.cx(self.n, self.name, Vec::new());
        Ok(cx.derived("scale", t))
    }

    fn cast(&mut self, st: &mut State, x: ValueId, dt: DType) -> Result<ValueId, ImportError> {
        if st.g.ty(x).dtype == dt {
            Ok(x)
        } else {
            self.emit(st, Op::Cast(dt), vec![x])
        }
    }
}

/// ONNX `TensorProto` element codes accepted by `softmax_precision`.
fn precision(code: i64) -> Option<DType> {
    match code {
        1 => Some(DType::F32),
        10 => Some(DType::F16),
        16 => Some(DType::BF16),
        11 => Some(DType::F64),
        _ => None,
    }
}

pub(super) fn flex_attention(
    st: &mut State,
    n: &NodeDef,
    name: &str,
    ins: &[Option<Val>],
    env: &Env,
) -> Result<Vec<Val>, ImportError> {
    let mut e = Emitter { n, name, k: 0 };
    let tensor = |i: usize, what: &str| match ins.get(i) {
        Some(Some(Val::Tensor(v))) => Ok(*v),
        _ => Err(e.err(format!("input '{what}' must be a tensor"))),
    };
    let (q, k, v) = (tensor(0, "Q")?, tensor(1, "K")?, tensor(2, "V")?);
    let a = crate::attrs::Attrs::new(name, &n.op_type, &n.attrs);
    let scale = a.float_opt("scale")?;
    let sp = a.int_opt("softmax_precision")?;
    let score_mod = if a.has("score_mod") { Some(a.graph_req("score_mod")?) } else { None };
    let prob_mod = if a.has("prob_mod") { Some(a.graph_req("prob_mod")?) } else { None };
    let (qs, ks, vs) = (st.g.ty(q).shape.clone(), st.g.ty(k).shape.clone(), st.g.ty(v).shape.clone());
    let (&[b, hq, l, dq], &[_, hk, s, dk], &[_, hv, sv, dv]) = (qs.as_slice(), ks.as_slice(), vs.as_slice()) else {
        return Err(e.err(format!("Q {qs:?}, K {ks:?} and V {vs:?} must be rank 4")));
    };
    if hk != hv || s != sv || dq != dk || hk == 0 || !hq.is_multiple_of(hk) {
        return Err(e.err(format!("Q {qs:?}, K {ks:?} and V {vs:?} do not fit together")));
    }
    let in_dt = st.g.ty(q).dtype;
    let v_dt = st.g.ty(v).dtype;
    if !in_dt.is_float() {
        return Err(e.err(format!("Q must be floating point, got {in_dt}")));
    }
    let compute = match sp {
        Some(c) => precision(c).ok_or_else(|| e.err(format!("softmax_precision {c} is not a float type")))?,
        None if matches!(in_dt, DType::F16 | DType::BF16) => DType::F32,
        None => in_dt,
    };
    // Products in the wider of the input and compute types.
    let mm_dt = if in_dt.size() >= compute.size() { in_dt } else { compute };
    let (q, k, v) = (e.cast(st, q, mm_dt)?, e.cast(st, k, mm_dt)?, e.cast(st, v, mm_dt)?);
    let rep = hq / hk;
    let (k, v) = if rep == 1 {
        (k, v)
    } else {
        let mut out = Vec::with_capacity(2);
        for (x, d) in [(k, dk), (v, dv)] {
            let r = e.emit(st, Op::Reshape { shape: vec![b, hk, 1, s, d] }, vec![x])?;
            let r = e.emit(st, Op::Expand { shape: vec![b, hk, rep, s, d] }, vec![r])?;
            out.push(e.emit(st, Op::Reshape { shape: vec![b, hq, s, d] }, vec![r])?);
        }
        (out[0], out[1])
    };
    let scale = scale.map_or(1.0 / (dq as f64).sqrt(), f64::from);
    // The reference rounds √scale to f32 first.
    let sq = e.scalar(st, mm_dt, f64::from((scale as f32).sqrt()))?;
    let qsc = e.emit(st, Op::Binary(BinaryOp::Mul), vec![q, sq])?;
    let ksc = e.emit(st, Op::Binary(BinaryOp::Mul), vec![k, sq])?;
    let kt = e.emit(st, Op::Transpose { perm: vec![0, 1, 3, 2] }, vec![ksc])?;
    let mut scores = e.matmul(st, qsc, kt)?;
    scores = e.cast(st, scores, compute)?;
    let apply = |st: &mut State, g: &crate::proto::GraphDef, x: ValueId, what: &str| -> Result<ValueId, ImportError> {
        let scope = format!("{name}/{what}/");
        let outs = inline_graph(st, g, vec![Val::Tensor(x)], env, &scope, name, &n.op_type)?;
        match outs.as_slice() {
            [Val::Tensor(y)] if st.g.ty(*y).shape == st.g.ty(x).shape => Ok(*y),
            _ => Err(ImportError::Node {
                node: name.to_string(),
                op: n.op_type.clone(),
                msg: format!("{what} must return one tensor shaped like its input"),
            }),
        }
    };
    if let Some(g) = score_mod {
        let y = apply(st, g, scores, "score_mod")?;
        scores = e.cast(st, y, compute)?;
    }
    let mut probs = e.emit(st, Op::Softmax { axis: 3 }, vec![scores])?;
    if let Some(g) = prob_mod {
        let y = apply(st, g, probs, "prob_mod")?;
        probs = e.cast(st, y, compute)?;
    }
    let vc = e.cast(st, v, compute)?;
    let y = e.matmul(st, probs, vc)?;
    let y = e.cast(st, y, v_dt)?;
    debug_assert_eq!(st.g.ty(y).shape, vec![b, hq, l, dv]);
    Ok(vec![Val::Tensor(y)])
}
