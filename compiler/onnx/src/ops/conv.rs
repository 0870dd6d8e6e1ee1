//! Convolutions and pools. `auto_pad` (SAME_UPPER, SAME_LOWER, VALID) is
//! resolved to explicit pads here, so the IR only sees explicit windows.

use kerf_ir::op::{BinaryOp, Conv, ConvTranspose, Pool, UnaryOp, Window};
use kerf_ir::{Op, ValueId};

use super::Converter;
use crate::import::Cx;
use crate::ImportError;

pub(super) fn register(r: &mut Vec<(&'static str, Converter)>) {
    r.push(("Conv", conv));
    r.push(("ConvTranspose", conv_transpose));
    r.push(("MaxPool", pool));
    r.push(("AveragePool", pool));
    r.push(("LpPool", lp_pool));
    r.push(("GlobalAveragePool", global_pool));
    r.push(("GlobalMaxPool", global_pool));
}

/// Reads kernel/strides/dilations/pads/auto_pad for a window of `rank`
/// spatial axes over the input spatial dims `spatial`. SAME pads follow the
/// ONNX formula `total = (ceil(in/stride) - 1) * stride + eff_kernel - in`.
pub(crate) fn window(cx: &Cx, kernel: Vec<usize>, spatial: &[usize]) -> Result<Window, ImportError> {
    let a = cx.attrs();
    let r = kernel.len();
    let strides = a.usizes_opt("strides")?.unwrap_or_else(|| vec![1; r]);
    let dilations = a.usizes_opt("dilations")?.unwrap_or_else(|| vec![1; r]);
    if strides.len() != r || dilations.len() != r {
        return Err(cx.err(format!("strides {strides:?} / dilations {dilations:?} do not match kernel {kernel:?}")));
    }
    if strides.contains(&0) || dilations.contains(&0) || kernel.contains(&0) {
        return Err(cx.err("kernel, strides and dilations must be positive"));
    }
    let auto_pad = a.string("auto_pad", "NOTSET")?;
    let pads = match auto_pad.as_str() {
        "NOTSET" => {
            let p = a.usizes_opt("pads")?.unwrap_or_else(|| vec![0; 2 * r]);
            if p.len() != 2 * r {
                return Err(cx.err(format!("pads {p:?} must hold 2 values per spatial axis ({r})")));
            }
            p
        }
        "VALID" => vec![0; 2 * r],
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut p = vec![0; 2 * r];
            for i in 0..r {
                let input = spatial.get(i).copied().unwrap_or(0);
                // Saturating: absurd attributes must end in an error from
                // inference, not an overflow here.
                let out = input.div_ceil(strides[i]);
                let eff = (kernel[i] - 1).saturating_mul(dilations[i]).saturating_add(1);
                let total = (out.max(1) - 1).saturating_mul(strides[i]).saturating_add(eff).saturating_sub(input);
                let small = total / 2;
                let (b, e) = if auto_pad == "SAME_UPPER" { (small, total - small) } else { (total - small, small) };
                p[i] = b;
                p[r + i] = e;
            }
            p
        }
        other => return Err(cx.err(format!("unknown auto_pad '{other}'"))),
    };
    Ok(Window { kernel, strides, dilations, pads })
}

pub(crate) fn kernel_from(cx: &Cx, w_shape: &[usize]) -> Result<Vec<usize>, ImportError> {
    let inferred = w_shape.get(2..).map(<[usize]>::to_vec).unwrap_or_default();
    match cx.attrs().usizes_opt("kernel_shape")? {
        Some(k) => {
            if k != inferred {
                return Err(cx.err(format!("kernel_shape {k:?} does not match weight shape {w_shape:?}")));
            }
            Ok(k)
        }
        None => Ok(inferred),
    }
}

fn conv(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let w = cx.input(1)?;
    let xs = cx.shape(x);
    let ws = cx.shape(w);
    if ws.len() < 3 {
        return Err(cx.err(format!("weight must have rank >= 3, got {}", cx.ty(w))));
    }
    let kernel = kernel_from(cx, &ws)?;
    let win = window(cx, kernel, xs.get(2..).unwrap_or(&[]))?;
    let group = usize::try_from(cx.attrs().int("group", 1)?).map_err(|_| cx.err("group must be positive"))?;
    let mut ins = vec![x, w];
    ins.extend(cx.opt_input(2));
    let layer = cx.layer();
    // Half-precision convolutions run on the f32 kernels: inputs widened
    // exactly, one rounding back to the half type at the end.
    let dt = cx.ty(x).dtype;
    let half = matches!(dt, kerf_ir::DType::F16 | kerf_ir::DType::BF16);
    if half {
        ins = ins.into_iter().map(|v| cx.add1(Op::Cast(kerf_ir::DType::F32), vec![v])).collect::<Result<_, _>>()?;
    }
    let y = cx.add1(Op::Conv(Conv { window: win, group, layer, algo: kerf_ir::op::ConvAlgo::Direct }), ins)?;
    if half {
        return Ok(vec![cx.add1(Op::Cast(dt), vec![y])?]);
    }
    Ok(vec![y])
}

fn conv_transpose(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let w = cx.input(1)?;
    let xs = cx.shape(x);
    let ws = cx.shape(w);
    if ws.len() < 3 {
        return Err(cx.err(format!("weight must have rank >= 3, got {}", cx.ty(w))));
    }
    let a = cx.attrs();
    let kernel = kernel_from(cx, &ws)?;
    let r = kernel.len();
    let strides = a.usizes_opt("strides")?.unwrap_or_else(|| vec![1; r]);
    let dilations = a.usizes_opt("dilations")?.unwrap_or_else(|| vec![1; r]);
    let mut output_padding = a.usizes_opt("output_padding")?.unwrap_or_else(|| vec![0; r]);
    if strides.len() != r || dilations.len() != r || output_padding.len() != r || xs.len() != r + 2 {
        return Err(cx.err(format!("strides/dilations/output_padding must have {r} values for input {}", cx.ty(x))));
    }
    if strides.contains(&0) || dilations.contains(&0) {
        return Err(cx.err("strides and dilations must be positive"));
    }
    let auto_pad = a.string("auto_pad", "NOTSET")?;
    let output_shape = a.usizes_opt("output_shape")?;
    let full = |i: usize, op: &[usize]| {
        strides[i]
            .saturating_mul(xs[2 + i].max(1) - 1)
            .saturating_add(op[i])
            .saturating_add((kernel[i] - 1).saturating_mul(dilations[i]))
            .saturating_add(1)
    };
    let split = |total: usize, lower: bool| {
        let small = total / 2;
        if lower {
            (total - small, small)
        } else {
            (small, total - small)
        }
    };
    let pads = if let Some(os) = output_shape {
        // output_shape may include N and C; only the trailing spatial dims count.
        let os = os.get(os.len().saturating_sub(r)..).unwrap_or(&[]).to_vec();
        if os.len() != r {
            return Err(cx.err(format!("output_shape must give {r} spatial dims")));
        }
        let mut p = vec![0; 2 * r];
        for i in 0..r {
            let f = full(i, &output_padding);
            if f < os[i] {
                // Larger than the full output: the extra cells at the end
                // get no contributions, which is what output padding means.
                output_padding[i] = output_padding[i].saturating_add(os[i] - f);
                continue;
            }
            // As the ONNX spec: only SAME_UPPER puts the odd cell at the end.
            let (b, e) = split(f - os[i], auto_pad != "SAME_UPPER");
            p[i] = b;
            p[r + i] = e;
        }
        p
    } else {
        match auto_pad.as_str() {
            "NOTSET" => {
                let p = a.usizes_opt("pads")?.unwrap_or_else(|| vec![0; 2 * r]);
                if p.len() != 2 * r {
                    return Err(cx.err(format!("pads {p:?} must hold 2 values per spatial axis ({r})")));
                }
                p
            }
            "VALID" => vec![0; 2 * r],
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut p = vec![0; 2 * r];
                for i in 0..r {
                    let total = full(i, &output_padding).saturating_sub(xs[2 + i].saturating_mul(strides[i]));
                    let (b, e) = split(total, auto_pad == "SAME_LOWER");
                    p[i] = b;
                    p[r + i] = e;
                }
                p
            }
            other => return Err(cx.err(format!("unknown auto_pad '{other}'"))),
        }
    };
    let group = usize::try_from(a.int("group", 1)?).map_err(|_| cx.err("group must be positive"))?;
    let mut ins = vec![x, w];
    ins.extend(cx.opt_input(2));
    let layer = cx.layer();
    let op = ConvTranspose { window: Window { kernel, strides, dilations, pads }, group, output_padding, layer };
    Ok(vec![cx.add1(Op::ConvTranspose(op), ins)?])
}

fn pool(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let xs = cx.shape(x);
    let a = cx.attrs();
    let kernel = a.usizes_opt("kernel_shape")?.ok_or_else(|| cx.err("missing required attribute 'kernel_shape'"))?;
    if xs.len() != kernel.len() + 2 {
        return Err(cx.err(format!("kernel_shape {kernel:?} does not match input {}", cx.ty(x))));
    }
    let ceil_mode = a.bool("ceil_mode", false)?;
    let win = window(cx, kernel, xs.get(2..).unwrap_or(&[]))?;
    if cx.op() == "MaxPool" {
        let column_major = a.int("storage_order", 0)? != 0;
        let p = Pool { window: win.clone(), ceil_mode, count_include_pad: false };
        let y = cx.add1(Op::MaxPool(p), vec![x])?;
        if !cx.output_used(1) {
            return Ok(vec![y]);
        }
        let out = cx.shape(y);
        let idx = super::pool_indices::max_pool_indices(cx, x, &win, &out, column_major)?;
        Ok(vec![y, idx])
    } else {
        let p = Pool { window: win, ceil_mode, count_include_pad: a.bool("count_include_pad", false)? };
        Ok(vec![cx.add1(Op::AveragePool(p), vec![x])?])
    }
}

/// LpPool as `(window sum of |x|^p)^(1/p)`, the window sum being an
/// AveragePool that counts padding, times the kernel size (padding adds 0).
/// p = 1 and p = 2 use Abs and Mul/Sqrt, other p use Pow.
fn lp_pool(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let xs = cx.shape(x);
    let dt = cx.ty(x).dtype;
    let a = cx.attrs();
    let kernel = a.usizes_opt("kernel_shape")?.ok_or_else(|| cx.err("missing required attribute 'kernel_shape'"))?;
    if xs.len() != kernel.len() + 2 {
        return Err(cx.err(format!("kernel_shape {kernel:?} does not match input {}", cx.ty(x))));
    }
    let ceil_mode = a.bool("ceil_mode", false)?;
    let p = a.int("p", 2)?;
    if p < 1 {
        return Err(cx.err(format!("p must be at least 1, got {p}")));
    }
    let count: usize = kernel.iter().product();
    let win = window(cx, kernel, xs.get(2..).unwrap_or(&[]))?;
    let scalar = |cx: &mut Cx, what: &str, v: f64| -> Result<ValueId, ImportError> {
        let t = kerf_ir::Tensor::from_f64_values(dt, vec![], &[v]).map_err(|e| cx.err(e.to_string()))?;
        Ok(cx.derived(what, t))
    };
    let ax = cx.add1(Op::Unary(UnaryOp::Abs), vec![x])?;
    let powed = match p {
        1 => ax,
        2 => cx.add1(Op::Binary(BinaryOp::Mul), vec![ax, ax])?,
        _ => {
            let e = scalar(cx, "p", p as f64)?;
            cx.add1(Op::Binary(BinaryOp::Pow), vec![ax, e])?
        }
    };
    let pool = Pool { window: win, ceil_mode, count_include_pad: true };
    let avg = cx.add1(Op::AveragePool(pool), vec![powed])?;
    let n = scalar(cx, "window_size", count as f64)?;
    let sum = cx.add1(Op::Binary(BinaryOp::Mul), vec![avg, n])?;
    let out = match p {
        1 => sum,
        2 => cx.add1(Op::Unary(UnaryOp::Sqrt), vec![sum])?,
        _ => {
            let e = scalar(cx, "inv_p", 1.0 / p as f64)?;
            cx.add1(Op::Binary(BinaryOp::Pow), vec![sum, e])?
        }
    };
    Ok(vec![out])
}

fn global_pool(cx: &mut Cx) -> Result<Vec<ValueId>, ImportError> {
    let x = cx.input(0)?;
    let op = if cx.op() == "GlobalMaxPool" { Op::GlobalMaxPool } else { Op::GlobalAveragePool };
    Ok(vec![cx.add1(op, vec![x])?])
}
