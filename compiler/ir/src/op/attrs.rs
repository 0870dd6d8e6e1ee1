//! The text-format view of an [`Op`]: its attributes in a fixed print order
//! and the inverse, building an op from a name and attributes (used by the
//! IR text parser and by the e-graph's printers). Kept apart from the op
//! definitions so that `mod.rs` reads as the operator set.

use super::*;
use crate::attr::{Attr, AttrMap, F32};
use crate::{DType, IrError};

fn ints(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

fn ident(s: &str) -> Attr {
    Attr::Ident(s.to_string())
}

impl Epilogue {
    /// `act=<name>` (`None` for no activation), the activation's own
    /// attributes prefixed with `act_`, then `residual`.
    pub(super) fn attrs(&self, out: &mut Vec<(&'static str, Attr)>) {
        out.push(("act", ident(self.act.map_or("None", |u| u.name()))));
        match self.act {
            Some(UnaryOp::Clip { min, max }) => {
                out.push(("act_min", Attr::Float(min.get())));
                out.push(("act_max", Attr::Float(max.get())));
            }
            Some(UnaryOp::LeakyRelu { alpha }) => out.push(("act_alpha", Attr::Float(alpha.get()))),
            Some(UnaryOp::Gelu { tanh }) => out.push(("act_tanh", Attr::Bool(tanh))),
            _ => {}
        }
        out.push(("residual", Attr::Bool(self.residual)));
    }
    /// The inverse of [`Epilogue::attrs`]; the activation must be one the
    /// kernels fuse ([`Epilogue::fusable`]).
    pub(super) fn from_attrs(m: &mut AttrMap) -> Result<Epilogue, IrError> {
        let name = m.ident("act")?;
        let act = match name.as_str() {
            "None" => None,
            "Clip" => Some(UnaryOp::Clip { min: m.float("act_min")?, max: m.float("act_max")? }),
            "LeakyRelu" => Some(UnaryOp::LeakyRelu { alpha: m.float("act_alpha")? }),
            "Gelu" => Some(UnaryOp::Gelu { tanh: m.bool("act_tanh")? }),
            other => Some(
                UnaryOp::SIMPLE
                    .iter()
                    .copied()
                    .find(|u| u.name() == other)
                    .ok_or_else(|| m.error(format!("act must be None or a fusable activation, got {other}")))?,
            ),
        };
        if let Some(u) = act.filter(|&u| !Epilogue::fusable(u)) {
            return Err(m.error(format!("{} cannot be fused into an epilogue", u.name())));
        }
        Ok(Epilogue { act, residual: m.bool("residual")? })
    }
}

impl ConvAlgo {
    /// `exact=true` or `winograd=<tile>`; nothing for a direct conv.
    fn attrs(&self, out: &mut Vec<(&'static str, Attr)>) {
        match self {
            ConvAlgo::Direct => {}
            ConvAlgo::Exact => out.push(("exact", Attr::Bool(true))),
            ConvAlgo::Winograd { tile } => out.push(("winograd", Attr::Int(i64::from(*tile)))),
        }
    }
}

impl Conv {
    /// A conv's own attributes (window, group, layer, algorithm) of a
    /// `Conv` or `ConvFused`.
    fn from_attrs(m: &mut AttrMap) -> Result<Conv, IrError> {
        let (window, group, layer) = (Window::from_attrs(m)?, m.usize("group")?, Layer(m.string("layer")?));
        let algo = match (m.opt_int("winograd")?, m.opt_bool("exact")?.unwrap_or(false)) {
            (None, false) => ConvAlgo::Direct,
            (None, true) => ConvAlgo::Exact,
            (Some(_), true) => return Err(m.error("a conv is either exact or winograd, not both")),
            (Some(t @ (2 | 4)), false) => ConvAlgo::Winograd { tile: t as u8 },
            (Some(t), false) => return Err(m.error(format!("winograd tile must be 2 or 4, got {t}"))),
        };
        let c = Conv { window, group, layer, algo };
        if matches!(c.algo, ConvAlgo::Winograd { .. }) && !c.winograd_eligible() {
            return Err(m.error("winograd needs a 2-D 3x3 stride-1 dilation-1 conv with one group"));
        }
        Ok(c)
    }
}

impl ConvTranspose {
    /// A transposed conv's own attributes (window, group, output padding,
    /// layer) of a `ConvTranspose` or `ConvTransposeFused`.
    fn attrs(&self, out: &mut Vec<(&'static str, Attr)>) {
        self.window.attrs(out);
        out.push(("group", Attr::Int(self.group as i64)));
        out.push(("output_padding", ints(&self.output_padding)));
        out.push(("layer", Attr::Str(self.layer.0.clone())));
    }
    fn from_attrs(m: &mut AttrMap) -> Result<ConvTranspose, IrError> {
        Ok(ConvTranspose {
            window: Window::from_attrs(m)?,
            group: m.usize("group")?,
            output_padding: m.usizes("output_padding")?,
            layer: Layer(m.string("layer")?),
        })
    }
}

impl Window {
    pub(super) fn attrs(&self, out: &mut Vec<(&'static str, Attr)>) {
        out.push(("kernel", ints(&self.kernel)));
        out.push(("strides", ints(&self.strides)));
        out.push(("dilations", ints(&self.dilations)));
        out.push(("pads", ints(&self.pads)));
    }
    pub(super) fn from_attrs(m: &mut AttrMap) -> Result<Window, IrError> {
        let w = Window {
            kernel: m.usizes("kernel")?,
            strides: m.usizes("strides")?,
            dilations: m.usizes("dilations")?,
            pads: m.usizes("pads")?,
        };
        let r = w.kernel.len();
        if w.strides.len() != r || w.dilations.len() != r || w.pads.len() != 2 * r {
            return Err(m.error("kernel, strides, dilations and pads (2 per axis) must agree in rank"));
        }
        if w.strides.contains(&0) || w.dilations.contains(&0) || w.kernel.contains(&0) {
            return Err(m.error("kernel, strides and dilations must be positive"));
        }
        Ok(w)
    }
}

impl Op {
    /// The attributes in their fixed print order.
    pub fn attrs(&self) -> Vec<(&'static str, Attr)> {
        let mut a = Vec::new();
        match self {
            Op::Unary(u) => match *u {
                UnaryOp::LeakyRelu { alpha } | UnaryOp::Elu { alpha } => a.push(("alpha", Attr::Float(alpha.get()))),
                UnaryOp::HardSigmoid { alpha, beta } => {
                    a.push(("alpha", Attr::Float(alpha.get())));
                    a.push(("beta", Attr::Float(beta.get())));
                }
                UnaryOp::Selu { alpha, gamma } => {
                    a.push(("alpha", Attr::Float(alpha.get())));
                    a.push(("gamma", Attr::Float(gamma.get())));
                }
                UnaryOp::Clip { min, max } => {
                    a.push(("min", Attr::Float(min.get())));
                    a.push(("max", Attr::Float(max.get())));
                }
                UnaryOp::Gelu { tanh } => a.push(("tanh", Attr::Bool(tanh))),
                _ => {}
            },
            Op::Cast(d) | Op::BitCast(d) => a.push(("to", ident(d.name()))),
            Op::Quantize { scale, zp, pads } => {
                a.push(("scale", Attr::Float(scale.get())));
                a.push(("zp", Attr::Int(i64::from(*zp))));
                a.push(("pads", ints(pads)));
            }
            Op::Requantize { axis, zp, out } => {
                a.push(("axis", Attr::Int(*axis as i64)));
                a.push(("zp", Attr::Int(i64::from(*zp))));
                a.push(("out", ident(out.name())));
            }
            Op::CastF8 { to, saturate, round } => {
                a.push(("to", ident(to.name())));
                a.push(("saturate", Attr::Bool(*saturate)));
                a.push(("round", ident(round.name())));
            }
            Op::Conv(c) => {
                c.window.attrs(&mut a);
                a.push(("group", Attr::Int(c.group as i64)));
                a.push(("layer", Attr::Str(c.layer.0.clone())));
                c.algo.attrs(&mut a);
            }
            Op::ConvFused(c, e) => {
                c.window.attrs(&mut a);
                a.push(("group", Attr::Int(c.group as i64)));
                a.push(("layer", Attr::Str(c.layer.0.clone())));
                c.algo.attrs(&mut a);
                e.attrs(&mut a);
            }
            Op::QConv(q) => {
                let c = &q.conv;
                c.window.attrs(&mut a);
                a.push(("group", Attr::Int(c.group as i64)));
                a.push(("layer", Attr::Str(c.layer.0.clone())));
                q.epi.attrs(&mut a);
                a.push(("x_scale", Attr::Float(q.x_scale.get())));
                a.push(("x_zp", Attr::Int(i64::from(q.x_zp))));
                match q.out {
                    QOut::Real => {}
                    QOut::Acc => a.push(("out", Attr::Ident("acc".into()))),
                    QOut::Quant { scale, zp } => {
                        a.push(("out", Attr::Ident("quant".into())));
                        a.push(("out_scale", Attr::Float(scale.get())));
                        a.push(("out_zp", Attr::Int(i64::from(zp))));
                    }
                }
                if let Some(r) = q.res_grid {
                    a.push(("res_scale", Attr::Float(r.scale.get())));
                    a.push(("res_zp", Attr::Int(i64::from(r.zp))));
                }
            }
            Op::MatMulFused(l, e) => {
                a.push(("layer", Attr::Str(l.0.clone())));
                e.attrs(&mut a);
            }
            Op::GemmFused(g, e) => {
                a.push(("alpha", Attr::Float(g.alpha.get())));
                a.push(("beta", Attr::Float(g.beta.get())));
                a.push(("trans_a", Attr::Bool(g.trans_a)));
                a.push(("trans_b", Attr::Bool(g.trans_b)));
                a.push(("layer", Attr::Str(g.layer.0.clone())));
                e.attrs(&mut a);
            }
            Op::ConvTranspose(c) => c.attrs(&mut a),
            Op::ConvTransposeFused(c, e) => {
                c.attrs(&mut a);
                e.attrs(&mut a);
            }
            Op::Gemm(g) => {
                a.push(("alpha", Attr::Float(g.alpha.get())));
                a.push(("beta", Attr::Float(g.beta.get())));
                a.push(("trans_a", Attr::Bool(g.trans_a)));
                a.push(("trans_b", Attr::Bool(g.trans_b)));
                a.push(("layer", Attr::Str(g.layer.0.clone())));
            }
            Op::MatMul(l) => a.push(("layer", Attr::Str(l.0.clone()))),
            Op::BatchNorm { epsilon } | Op::InstanceNorm { epsilon } => a.push(("epsilon", Attr::Float(epsilon.get()))),
            Op::LayerNorm { axis, epsilon } => {
                a.push(("axis", Attr::Int(*axis as i64)));
                a.push(("epsilon", Attr::Float(epsilon.get())));
            }
            Op::Softmax { axis } | Op::LogSoftmax { axis } | Op::Concat { axis } | Op::Gather { axis } => {
                a.push(("axis", Attr::Int(*axis as i64)))
            }
            Op::MaxPool(p) | Op::AveragePool(p) => {
                p.window.attrs(&mut a);
                a.push(("ceil_mode", Attr::Bool(p.ceil_mode)));
                if matches!(self, Op::AveragePool(_)) {
                    a.push(("count_include_pad", Attr::Bool(p.count_include_pad)));
                }
            }
            Op::Reduce { axes, keepdims, .. } => {
                a.push(("axes", ints(axes)));
                a.push(("keepdims", Attr::Bool(*keepdims)));
            }
            Op::ArgMax { axis, keepdims, select_last } | Op::ArgMin { axis, keepdims, select_last } => {
                a.push(("axis", Attr::Int(*axis as i64)));
                a.push(("keepdims", Attr::Bool(*keepdims)));
                a.push(("select_last", Attr::Bool(*select_last)));
            }
            Op::Reshape { shape } | Op::Expand { shape } => a.push(("shape", ints(shape))),
            Op::Transpose { perm } => a.push(("perm", ints(perm))),
            Op::Split { axis, sizes } => {
                a.push(("axis", Attr::Int(*axis as i64)));
                a.push(("sizes", ints(sizes)));
            }
            Op::Slice { starts, ends, steps } => {
                a.push(("starts", Attr::Ints(starts.clone())));
                a.push(("ends", Attr::Ints(ends.clone())));
                a.push(("steps", Attr::Ints(steps.clone())));
            }
            Op::Tile { repeats } => a.push(("repeats", ints(repeats))),
            Op::Pad { pads, mode, value } => {
                a.push(("pads", ints(pads)));
                a.push(("mode", ident(pad_mode_name(*mode))));
                a.push(("value", Attr::Float(value.get())));
            }
            Op::Resize(r) => {
                a.push(("mode", ident(resize_mode_name(r.mode))));
                a.push(("coord", ident(coord_mode_name(r.coord))));
                a.push(("cubic_coeff", Attr::Float(r.cubic_coeff.get())));
                a.push(("exclude_outside", Attr::Bool(r.exclude_outside)));
                a.push(("scales", Attr::Floats(r.scales.iter().map(|s| s.get()).collect())));
                a.push(("sizes", ints(&r.sizes)));
            }
            Op::Lstm(r) | Op::Gru(r) | Op::Rnn(r) => {
                a.push(("hidden", Attr::Int(r.hidden as i64)));
                a.push(("direction", ident(direction_name(r.direction))));
                let acts: Vec<String> = r.activations.iter().map(activation_text).collect();
                a.push(("activations", Attr::Str(acts.join(","))));
                a.push(("clip", Attr::Float(r.clip.map_or(0.0, |c| c.get()))));
                if matches!(self, Op::Gru(_)) {
                    a.push(("linear_before_reset", Attr::Bool(r.linear_before_reset)));
                } else if matches!(self, Op::Lstm(_)) {
                    a.push(("input_forget", Attr::Bool(r.input_forget)));
                }
                a.push(("layer", Attr::Str(r.layer.0.clone())));
            }
            Op::Binary(_) | Op::Where | Op::Identity | Op::Dropout | Op::GlobalAveragePool | Op::GlobalMaxPool => {}
            Op::Chain(steps) => a.push(("steps", Attr::Str(super::chain::print(steps)))),
        }
        a
    }

    /// Builds an op from its text-format name and attributes.
    pub fn from_parts(name: &str, attrs: Vec<(String, Attr)>) -> Result<Op, IrError> {
        let mut m = AttrMap::new(name, attrs);
        let op = Op::from_map(name, &mut m)?;
        m.finish()?;
        Ok(op)
    }

    fn from_map(name: &str, m: &mut AttrMap) -> Result<Op, IrError> {
        if let Some(u) = UnaryOp::SIMPLE.iter().find(|u| u.name() == name) {
            return Ok(Op::Unary(*u));
        }
        if let Some(b) = BinaryOp::ALL.iter().find(|b| b.name() == name) {
            return Ok(Op::Binary(*b));
        }
        if let Some(k) = ReduceKind::ALL.iter().find(|k| k.name() == name) {
            return Ok(Op::Reduce { kind: *k, axes: m.usizes("axes")?, keepdims: m.bool("keepdims")? });
        }
        let layer = |m: &mut AttrMap| m.string("layer").map(Layer);
        Ok(match name {
            "LeakyRelu" => Op::Unary(UnaryOp::LeakyRelu { alpha: m.float("alpha")? }),
            "Elu" => Op::Unary(UnaryOp::Elu { alpha: m.float("alpha")? }),
            "HardSigmoid" => Op::Unary(UnaryOp::HardSigmoid { alpha: m.float("alpha")?, beta: m.float("beta")? }),
            "Selu" => Op::Unary(UnaryOp::Selu { alpha: m.float("alpha")?, gamma: m.float("gamma")? }),
            "Clip" => Op::Unary(UnaryOp::Clip { min: m.float("min")?, max: m.float("max")? }),
            "Gelu" => Op::Unary(UnaryOp::Gelu { tanh: m.bool("tanh")? }),
            "Where" => Op::Where,
            "Chain" => Op::Chain(super::chain::parse(&m.string("steps")?).map_err(|e| m.error(e))?),
            "BitCast" => {
                let t = m.ident("to")?;
                Op::BitCast(DType::from_name(&t).ok_or_else(|| m.error(format!("unknown dtype '{t}'")))?)
            }
            "Cast" => {
                let t = m.ident("to")?;
                Op::Cast(DType::from_name(&t).ok_or_else(|| m.error(format!("unknown dtype '{t}'")))?)
            }
            "Quantize" => {
                let z = m.int("zp")?;
                let zp = u8::try_from(z).map_err(|_| m.error(format!("zp {z} is not a u8")))?;
                Op::Quantize { scale: m.float("scale")?, zp, pads: m.usizes("pads")? }
            }
            "Requantize" => {
                let axis = m.usize("axis")?;
                let z = m.int("zp")?;
                let zp = i32::try_from(z).map_err(|_| m.error(format!("zp {z} is not an i32")))?;
                let t = m.ident("out")?;
                let out = DType::from_name(&t).ok_or_else(|| m.error(format!("unknown dtype '{t}'")))?;
                Op::Requantize { axis, zp, out }
            }
            "CastF8" => {
                let t = m.ident("to")?;
                let to = DType::from_name(&t).ok_or_else(|| m.error(format!("unknown dtype '{t}'")))?;
                let saturate = m.bool("saturate")?;
                let r = m.ident("round")?;
                let round = crate::narrow::CastRound::from_name(&r)
                    .ok_or_else(|| m.error(format!("unknown round mode '{r}' (up, down, nearest)")))?;
                Op::CastF8 { to, saturate, round }
            }
            "Identity" => Op::Identity,
            "Dropout" => Op::Dropout,
            "Conv" => Op::Conv(Conv::from_attrs(m)?),
            "ConvFused" => Op::ConvFused(Conv::from_attrs(m)?, Epilogue::from_attrs(m)?),
            "QConv" => {
                let conv = Conv::from_attrs(m)?;
                let epi = Epilogue::from_attrs(m)?;
                let x_scale = m.float("x_scale")?;
                let zp = m.int("x_zp")?;
                let x_zp = u8::try_from(zp).map_err(|_| m.error(format!("x_zp {zp} is not a u8")))?;
                if !(x_scale.get() > 0.0 && x_scale.get().is_finite()) {
                    return Err(m.error(format!("x_scale {} must be positive and finite", x_scale.get())));
                }
                let out = match m.opt_ident("out")?.as_deref() {
                    None => QOut::Real,
                    Some("acc") => QOut::Acc,
                    Some("quant") => {
                        let scale = m.float("out_scale")?;
                        let zp = m.int("out_zp")?;
                        let zp = u8::try_from(zp).map_err(|_| m.error(format!("out_zp {zp} is not a u8")))?;
                        if !(scale.get() > 0.0 && scale.get().is_finite()) {
                            return Err(m.error(format!("out_scale {} must be positive and finite", scale.get())));
                        }
                        QOut::Quant { scale, zp }
                    }
                    Some(o) => {
                        return Err(m.error(format!("unknown QConv output '{o}' (acc, quant, or none for real)")))
                    }
                };
                let res_grid = match m.opt_float("res_scale")? {
                    None => None,
                    Some(scale) => {
                        let zp = m.int("res_zp")?;
                        let zp = u8::try_from(zp).map_err(|_| m.error(format!("res_zp {zp} is not a u8")))?;
                        if !(scale.get() > 0.0 && scale.get().is_finite()) {
                            return Err(m.error(format!("res_scale {} must be positive and finite", scale.get())));
                        }
                        Some(ResGrid { scale, zp })
                    }
                };
                Op::QConv(QConv { conv, epi, x_scale, x_zp, out, res_grid })
            }
            "MatMulFused" => Op::MatMulFused(layer(m)?, Epilogue::from_attrs(m)?),
            "GemmFused" => Op::GemmFused(
                Gemm {
                    alpha: m.float("alpha")?,
                    beta: m.float("beta")?,
                    trans_a: m.bool("trans_a")?,
                    trans_b: m.bool("trans_b")?,
                    layer: layer(m)?,
                },
                Epilogue::from_attrs(m)?,
            ),
            "ConvTranspose" => Op::ConvTranspose(ConvTranspose::from_attrs(m)?),
            "ConvTransposeFused" => Op::ConvTransposeFused(ConvTranspose::from_attrs(m)?, Epilogue::from_attrs(m)?),
            "Gemm" => Op::Gemm(Gemm {
                alpha: m.float("alpha")?,
                beta: m.float("beta")?,
                trans_a: m.bool("trans_a")?,
                trans_b: m.bool("trans_b")?,
                layer: layer(m)?,
            }),
            "MatMul" => Op::MatMul(layer(m)?),
            "BatchNormalization" => Op::BatchNorm { epsilon: m.float("epsilon")? },
            "InstanceNormalization" => Op::InstanceNorm { epsilon: m.float("epsilon")? },
            "LayerNormalization" => Op::LayerNorm { axis: m.usize("axis")?, epsilon: m.float("epsilon")? },
            "Softmax" => Op::Softmax { axis: m.usize("axis")? },
            "LogSoftmax" => Op::LogSoftmax { axis: m.usize("axis")? },
            "MaxPool" => Op::MaxPool(Pool {
                window: Window::from_attrs(m)?,
                ceil_mode: m.bool("ceil_mode")?,
                count_include_pad: false,
            }),
            "AveragePool" => Op::AveragePool(Pool {
                window: Window::from_attrs(m)?,
                ceil_mode: m.bool("ceil_mode")?,
                count_include_pad: m.bool("count_include_pad")?,
            }),
            "GlobalAveragePool" => Op::GlobalAveragePool,
            "GlobalMaxPool" => Op::GlobalMaxPool,
            "ArgMax" | "ArgMin" => {
                let (axis, keepdims, select_last) = (m.usize("axis")?, m.bool("keepdims")?, m.bool("select_last")?);
                if name == "ArgMax" {
                    Op::ArgMax { axis, keepdims, select_last }
                } else {
                    Op::ArgMin { axis, keepdims, select_last }
                }
            }
            "Reshape" => Op::Reshape { shape: m.usizes("shape")? },
            "Expand" => Op::Expand { shape: m.usizes("shape")? },
            "Transpose" => Op::Transpose { perm: m.usizes("perm")? },
            "Concat" => Op::Concat { axis: m.usize("axis")? },
            "Gather" => Op::Gather { axis: m.usize("axis")? },
            "Split" => Op::Split { axis: m.usize("axis")?, sizes: m.usizes("sizes")? },
            "Slice" => Op::Slice { starts: m.ints("starts")?, ends: m.ints("ends")?, steps: m.ints("steps")? },
            "Tile" => Op::Tile { repeats: m.usizes("repeats")? },
            "Pad" => {
                let pads = m.usizes("pads")?;
                let mode = m.ident("mode")?;
                let mode = [PadMode::Constant, PadMode::Reflect, PadMode::Edge, PadMode::Wrap]
                    .into_iter()
                    .find(|p| pad_mode_name(*p) == mode)
                    .ok_or_else(|| m.error(format!("unknown pad mode '{mode}'")))?;
                Op::Pad { pads, mode, value: m.float("value")? }
            }
            "Resize" => {
                let mode = m.ident("mode")?;
                let mode = parse_resize_mode(&mode).ok_or_else(|| m.error(format!("unknown resize mode '{mode}'")))?;
                let coord = m.ident("coord")?;
                let coord =
                    parse_coord_mode(&coord).ok_or_else(|| m.error(format!("unknown coordinate mode '{coord}'")))?;
                Op::Resize(Resize {
                    mode,
                    coord,
                    cubic_coeff: m.float("cubic_coeff")?,
                    exclude_outside: m.bool("exclude_outside")?,
                    scales: m.floats("scales")?,
                    sizes: m.usizes("sizes")?,
                })
            }
            "LSTM" | "GRU" | "RNN" => {
                let hidden = m.usize("hidden")?;
                let d = m.ident("direction")?;
                let direction = [Direction::Forward, Direction::Reverse, Direction::Bidirectional]
                    .into_iter()
                    .find(|x| direction_name(*x) == d)
                    .ok_or_else(|| m.error(format!("unknown direction '{d}'")))?;
                let acts = m.string("activations")?;
                let activations = acts
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(parse_activation_text)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| m.error(format!("bad activations '{acts}'")))?;
                let clip = m.float("clip")?;
                let clip = (clip.get() != 0.0).then_some(clip);
                let (linear_before_reset, input_forget) = if name == "GRU" {
                    (m.bool("linear_before_reset")?, false)
                } else if name == "LSTM" {
                    (false, m.bool("input_forget")?)
                } else {
                    (false, false)
                };
                let r =
                    Rnn { hidden, direction, activations, clip, linear_before_reset, input_forget, layer: layer(m)? };
                match name {
                    "GRU" => Op::Gru(r),
                    "RNN" => Op::Rnn(r),
                    _ => Op::Lstm(r),
                }
            }
            _ => return Err(IrError::UnknownOp(name.to_string())),
        })
    }
}

/// The ONNX `mode` spelling of a pad mode (`constant`, `reflect`, `edge`, `wrap`).
pub fn pad_mode_name(m: PadMode) -> &'static str {
    match m {
        PadMode::Constant => "constant",
        PadMode::Reflect => "reflect",
        PadMode::Edge => "edge",
        PadMode::Wrap => "wrap",
    }
}

fn resize_mode_name(m: ResizeMode) -> &'static str {
    match m {
        ResizeMode::Nearest(NearestMode::RoundPreferFloor) => "nearest_round_prefer_floor",
        ResizeMode::Nearest(NearestMode::RoundPreferCeil) => "nearest_round_prefer_ceil",
        ResizeMode::Nearest(NearestMode::Floor) => "nearest_floor",
        ResizeMode::Nearest(NearestMode::Ceil) => "nearest_ceil",
        ResizeMode::Linear => "linear",
        ResizeMode::Cubic => "cubic",
    }
}

fn parse_resize_mode(s: &str) -> Option<ResizeMode> {
    [
        ResizeMode::Nearest(NearestMode::RoundPreferFloor),
        ResizeMode::Nearest(NearestMode::RoundPreferCeil),
        ResizeMode::Nearest(NearestMode::Floor),
        ResizeMode::Nearest(NearestMode::Ceil),
        ResizeMode::Linear,
        ResizeMode::Cubic,
    ]
    .into_iter()
    .find(|m| resize_mode_name(*m) == s)
}

/// The ONNX `coordinate_transformation_mode` spelling of a coordinate mode.
pub fn coord_mode_name(m: CoordMode) -> &'static str {
    match m {
        CoordMode::HalfPixel => "half_pixel",
        CoordMode::PytorchHalfPixel => "pytorch_half_pixel",
        CoordMode::AlignCorners => "align_corners",
        CoordMode::Asymmetric => "asymmetric",
        CoordMode::TfCropAndResize => "tf_crop_and_resize",
        CoordMode::HalfPixelSymmetric => "half_pixel_symmetric",
    }
}

/// The coordinate mode spelled `s` (see [`coord_mode_name`]).
pub fn parse_coord_mode(s: &str) -> Option<CoordMode> {
    [
        CoordMode::HalfPixel,
        CoordMode::PytorchHalfPixel,
        CoordMode::AlignCorners,
        CoordMode::Asymmetric,
        CoordMode::TfCropAndResize,
        CoordMode::HalfPixelSymmetric,
    ]
    .into_iter()
    .find(|m| coord_mode_name(*m) == s)
}

fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Forward => "forward",
        Direction::Reverse => "reverse",
        Direction::Bidirectional => "bidirectional",
    }
}

/// Text form of an activation: `Sigmoid`, `HardSigmoid(0.2;0.5)`, ...
pub fn activation_text(a: &Activation) -> String {
    let two = |n: &str, x: F32, y: F32| format!("{n}({:?};{:?})", x.get(), y.get());
    match *a {
        Activation::Sigmoid => "Sigmoid".into(),
        Activation::Tanh => "Tanh".into(),
        Activation::Relu => "Relu".into(),
        Activation::Softsign => "Softsign".into(),
        Activation::Softplus => "Softplus".into(),
        Activation::HardSigmoid(x, y) => two("HardSigmoid", x, y),
        Activation::Affine(x, y) => two("Affine", x, y),
        Activation::ScaledTanh(x, y) => two("ScaledTanh", x, y),
        Activation::LeakyRelu(x) => format!("LeakyRelu({:?})", x.get()),
        Activation::ThresholdedRelu(x) => format!("ThresholdedRelu({:?})", x.get()),
        Activation::Elu(x) => format!("Elu({:?})", x.get()),
    }
}

fn parse_activation_text(s: &str) -> Option<Activation> {
    let (name, args) = match s.find('(') {
        Some(p) => (&s[..p], s.get(p + 1..s.len().checked_sub(1)?)?),
        None => (s, ""),
    };
    let nums: Vec<F32> = if args.is_empty() {
        vec![]
    } else {
        args.split(';').map(|x| x.parse::<f32>().ok().map(F32::new)).collect::<Option<_>>()?
    };
    Some(match (name, nums.as_slice()) {
        ("Sigmoid", []) => Activation::Sigmoid,
        ("Tanh", []) => Activation::Tanh,
        ("Relu", []) => Activation::Relu,
        ("Softsign", []) => Activation::Softsign,
        ("Softplus", []) => Activation::Softplus,
        ("HardSigmoid", [a, b]) => Activation::HardSigmoid(*a, *b),
        ("Affine", [a, b]) => Activation::Affine(*a, *b),
        ("ScaledTanh", [a, b]) => Activation::ScaledTanh(*a, *b),
        ("LeakyRelu", [a]) => Activation::LeakyRelu(*a),
        ("ThresholdedRelu", [a]) => Activation::ThresholdedRelu(*a),
        ("Elu", [a]) => Activation::Elu(*a),
        _ => return None,
    })
}
