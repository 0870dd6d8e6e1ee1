//! [`Op::Chain`](super::Op::Chain): a short program of f32 elementwise ops
//! applied in one pass over one streaming input.
//!
//! Inputs: `x` (input 0, the stream) and operands `y1, y2, ...`. The result
//! has `x`'s type; the accumulator starts as `x` and each [`ChainStep`]
//! replaces it: `u(acc)`, `op(acc, in[k])` or `op(in[k], acc)`. An operand
//! `in[k]` broadcasts into `x`'s shape (it never grows it); `k = 0` names `x`
//! itself (GELU-like chains reuse their input). By definition a chain equals
//! the same steps as separate nodes, each rounded to f32 ([`eval`] runs them
//! through the reference evaluator one by one), so fusing never changes a
//! value. Produced only by the `chain` rule group.
//!
//! Text: `Chain{steps="Div(@,$1) Erf Add(@,$2) Mul($0,@) Clip{min=0.0,max=6.0}"}`:
//! space-separated steps, `@` the accumulator, `$k` input k, unary ops with
//! their attributes in braces (no spaces).

use crate::attr::{fmt_f32, Attr};
use crate::tensor::Tensor;
use crate::{DType, IrError, TensorType};

use super::{BinaryOp, Op, UnaryOp};

/// Most steps a chain may hold (the rule stops growing chains there).
pub const MAX_STEPS: usize = 16;

/// Most [`heavy`] steps the `chain` rule puts in one chain. Fusing cheap,
/// memory-bound steps pays (5 cheap steps over 1 MiB: 0.25 -> 0.075 ms on
/// x86-64), but two inlined transcendental routines in one loop body run
/// out of the 16 vector registers and spill (Sigmoid + Tanh + 4 cheap steps:
/// 1.5 ms as separate kernels, 2.0 ms as one chain).
pub const MAX_HEAVY: usize = 1;

/// Whether a step is a transcendental routine (exp/erf/tanh-like, tens of
/// vector instructions with their own constants) rather than a few
/// arithmetic instructions.
pub fn heavy(s: &ChainStep) -> bool {
    match s {
        ChainStep::Binary { .. } => false,
        ChainStep::Unary(u) => !u.is_cheap(),
    }
}

/// One step of an [`Op::Chain`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChainStep {
    /// `acc = u(acc)`.
    Unary(UnaryOp),
    /// `acc = op(acc, in[arg])`, or `op(in[arg], acc)` when `swap`.
    Binary {
        /// The binary op.
        op: BinaryOp,
        /// Index of the node input used as the other operand (0 is `x` itself).
        arg: usize,
        /// Whether the accumulator is the right operand rather than the left.
        swap: bool,
    },
}

/// Whether a chain may hold this unary op: float → float.
pub fn unary_ok(u: UnaryOp) -> bool {
    !matches!(u, UnaryOp::Not | UnaryOp::BitwiseNot)
}

/// Whether a chain may hold this binary op: float arithmetic whose kernel
/// needs nothing but the two operands.
pub fn binary_ok(b: BinaryOp) -> bool {
    matches!(b, BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Max | BinaryOp::Min)
}

/// Output types: `x`'s type when every input is f32, every operand
/// broadcasts into `x` and every step is valid.
pub fn infer(steps: &[ChainStep], ins: &[&TensorType]) -> Result<Vec<TensorType>, String> {
    let Some(x) = ins.first() else { return Err("Chain needs at least its streaming input".into()) };
    if steps.is_empty() || steps.len() > MAX_STEPS {
        return Err(format!("Chain needs 1 to {MAX_STEPS} steps, got {}", steps.len()));
    }
    for (i, t) in ins.iter().enumerate() {
        if t.dtype != DType::F32 {
            return Err(format!("Chain input {i} must be f32, got {t}"));
        }
        let fits = t.shape.len() <= x.shape.len()
            && t.shape.iter().rev().zip(x.shape.iter().rev()).all(|(&a, &b)| a == b || a == 1);
        if !fits {
            return Err(format!("Chain input {i} ({t}) does not broadcast into the streaming input {x}"));
        }
    }
    for s in steps {
        match *s {
            ChainStep::Unary(u) if !unary_ok(u) => return Err(format!("{} cannot be a chain step", u.name())),
            ChainStep::Binary { op, .. } if !binary_ok(op) => {
                return Err(format!("{} cannot be a chain step", op.name()))
            }
            ChainStep::Binary { arg, .. } if arg >= ins.len() => {
                return Err(format!("chain step reads input {arg} of {}", ins.len()))
            }
            _ => {}
        }
    }
    Ok(vec![(*x).clone()])
}

/// Reference semantics: the steps as separate ops through [`crate::eval::eval`].
pub fn eval(steps: &[ChainStep], inputs: &[&Tensor]) -> Result<Tensor, IrError> {
    let mut acc = inputs[0].clone();
    for s in steps {
        let mut out = match *s {
            ChainStep::Unary(u) => crate::eval::eval(&Op::Unary(u), &[&acc])?,
            ChainStep::Binary { op, arg, swap } => {
                let y = inputs[arg];
                let args = if swap { [y, &acc] } else { [&acc, y] };
                crate::eval::eval(&Op::Binary(op), &args)?
            }
        };
        acc = out.remove(0);
    }
    Ok(acc)
}

/// The `steps` attribute text.
pub fn print(steps: &[ChainStep]) -> String {
    let mut parts = Vec::with_capacity(steps.len());
    for s in steps {
        parts.push(match *s {
            ChainStep::Unary(u) => {
                let attrs: Vec<String> = Op::Unary(u)
                    .attrs()
                    .into_iter()
                    .map(|(n, a)| match a {
                        Attr::Float(v) => format!("{n}={}", fmt_f32(v)),
                        other => format!("{n}={other}"),
                    })
                    .collect();
                if attrs.is_empty() {
                    u.name().to_string()
                } else {
                    format!("{}{{{}}}", u.name(), attrs.join(","))
                }
            }
            ChainStep::Binary { op, arg, swap } => {
                if swap {
                    format!("{}(${arg},@)", op.name())
                } else {
                    format!("{}(@,${arg})", op.name())
                }
            }
        });
    }
    parts.join(" ")
}

/// The inverse of [`print`].
pub fn parse(text: &str) -> Result<Vec<ChainStep>, String> {
    let mut steps = Vec::new();
    for tok in text.split_whitespace() {
        if let Some((name, rest)) = tok.split_once('(') {
            let args = rest.strip_suffix(')').ok_or_else(|| format!("chain step '{tok}': missing ')'"))?;
            let (a, b) = args.split_once(',').ok_or_else(|| format!("chain step '{tok}': needs two operands"))?;
            let index = |s: &str| s.strip_prefix('$').and_then(|k| k.parse::<usize>().ok());
            let (arg, swap) = match (a, b) {
                ("@", k) => (index(k), false),
                (k, "@") => (index(k), true),
                _ => (None, false),
            };
            let arg = arg.ok_or_else(|| format!("chain step '{tok}': operands must be @ and $<input>"))?;
            let op = match Op::from_parts(name, vec![]) {
                Ok(Op::Binary(op)) => op,
                _ => return Err(format!("chain step '{tok}': {name} is not a binary op")),
            };
            steps.push(ChainStep::Binary { op, arg, swap });
        } else {
            let (name, attrs) = match tok.split_once('{') {
                Some((n, r)) => (n, r.strip_suffix('}').ok_or_else(|| format!("chain step '{tok}': missing '}}'"))?),
                None => (tok, ""),
            };
            let mut items = Vec::new();
            for kv in attrs.split(',').filter(|s| !s.is_empty()) {
                let (k, v) = kv.split_once('=').ok_or_else(|| format!("chain step '{tok}': bad attribute '{kv}'"))?;
                let value = match v {
                    "true" => Attr::Bool(true),
                    "false" => Attr::Bool(false),
                    _ => Attr::Float(v.parse::<f32>().map_err(|_| format!("chain step '{tok}': bad value '{v}'"))?),
                };
                items.push((k.to_string(), value));
            }
            match Op::from_parts(name, items) {
                Ok(Op::Unary(u)) => steps.push(ChainStep::Unary(u)),
                Ok(_) => return Err(format!("chain step '{tok}': {name} is not a unary op")),
                Err(e) => return Err(format!("chain step '{tok}': {e}")),
            }
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::attr::F32;

    #[test]
    fn text_round_trips() {
        let steps = vec![
            ChainStep::Binary { op: BinaryOp::Div, arg: 1, swap: false },
            ChainStep::Unary(UnaryOp::Erf),
            ChainStep::Binary { op: BinaryOp::Sub, arg: 0, swap: true },
            ChainStep::Unary(UnaryOp::Clip { min: F32::new(-0.5), max: F32::new(6.0) }),
            ChainStep::Unary(UnaryOp::Gelu { tanh: true }),
            ChainStep::Unary(UnaryOp::LeakyRelu { alpha: F32::new(0.01) }),
        ];
        let t = print(&steps);
        assert_eq!(t, "Div(@,$1) Erf Sub($0,@) Clip{min=-0.5,max=6.0} Gelu{tanh=true} LeakyRelu{alpha=0.01}");
        assert_eq!(parse(&t).unwrap(), steps);
    }

    #[test]
    fn bad_text_is_an_error() {
        for bad in ["Add(@,@)", "Add($1)", "Relu(@,$1)", "Add", "Clip{min=x,max=1.0}", "Foo", "Add(@,$z)"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn eval_equals_the_separate_ops() {
        let x = Tensor::from_f32(vec![2, 3], &[-2.0, -0.5, 0.0, 0.5, 1.0, 3.0]).unwrap();
        let y = Tensor::from_f32(vec![3], &[1.0, 2.0, 4.0]).unwrap();
        let steps = [
            ChainStep::Binary { op: BinaryOp::Mul, arg: 1, swap: false },
            ChainStep::Unary(UnaryOp::Tanh),
            ChainStep::Binary { op: BinaryOp::Sub, arg: 0, swap: true },
        ];
        let got = eval(&steps, &[&x, &y]).unwrap().to_f32_vec();
        let xv = x.to_f32_vec();
        for (i, g) in got.iter().enumerate() {
            let want = xv[i] - (f64::from(xv[i] * [1.0, 2.0, 4.0][i % 3]).tanh() as f32);
            assert!((g - want).abs() <= 1e-6, "{i}: {g} vs {want}");
        }
    }

    #[test]
    fn infer_checks_types_and_steps() {
        let x = TensorType::new(DType::F32, vec![2, 3]);
        let y = TensorType::new(DType::F32, vec![1, 3]);
        let big = TensorType::new(DType::F32, vec![4, 2, 3]);
        let i = TensorType::new(DType::I32, vec![3]);
        let add = [ChainStep::Binary { op: BinaryOp::Add, arg: 1, swap: false }];
        assert_eq!(infer(&add, &[&x, &y]).unwrap(), vec![x.clone()]);
        assert!(infer(&add, &[&x, &big]).is_err());
        assert!(infer(&add, &[&x, &i]).is_err());
        assert!(infer(&add, &[&x]).is_err());
        assert!(infer(&[], &[&x]).is_err());
        assert!(infer(&[ChainStep::Unary(UnaryOp::Not)], &[&x]).is_err());
        assert!(infer(&[ChainStep::Binary { op: BinaryOp::Pow, arg: 0, swap: false }], &[&x]).is_err());
    }
}
