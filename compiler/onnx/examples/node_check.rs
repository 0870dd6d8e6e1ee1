//! Imports ONNX backend node-test cases (`<case>/model.onnx` +
//! `test_data_set_0/{input,output}_*.pb`) and, where the IR's reference
//! evaluator covers every op, runs them and compares with the expected
//! outputs. Prints one line per case and a summary; never panics on a case.
//!
//! `cargo run -p kerf-onnx --example node_check -- DIR/node/test_*`

use std::collections::HashMap;
use std::path::Path;

use kerf_ir::{Graph, Tensor, ValueDef, ValueId};

fn read_pb(path: &Path) -> Option<Tensor> {
    let bytes = std::fs::read(path).ok()?;
    kerf_onnx::read_tensor_proto(&bytes).ok().map(|(_, t)| t)
}

fn run(g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
    let mut vals: HashMap<ValueId, Tensor> = HashMap::new();
    for (i, &v) in g.inputs.iter().enumerate() {
        vals.insert(v, inputs.get(i).cloned().ok_or("missing input")?);
    }
    let get = |vals: &HashMap<ValueId, Tensor>, v: ValueId| -> Result<Tensor, String> {
        match g.value(v).def {
            ValueDef::Const(w) => Ok(g.weights.tensor(w).clone()),
            _ => vals.get(&v).cloned().ok_or_else(|| format!("value {v:?} not computed")),
        }
    };
    for n in &g.nodes {
        let ins: Vec<Tensor> = n.inputs.iter().map(|&v| get(&vals, v)).collect::<Result<_, _>>()?;
        let refs: Vec<&Tensor> = ins.iter().collect();
        let outs = match kerf_ir::eval::eval(&n.op, &refs) {
            Ok(o) => o,
            Err(e) => extra_eval(&n.op, &refs).ok_or_else(|| format!("eval: {e}"))?,
        };
        for (&o, t) in n.outputs.iter().zip(outs) {
            vals.insert(o, t);
        }
    }
    g.outputs.iter().map(|o| get(&vals, o.value)).collect()
}

/// Local references for a few ops the IR evaluator lacks (f32 only), so
/// lowerings that use them can be checked numerically too.
fn extra_eval(op: &kerf_ir::Op, ins: &[&Tensor]) -> Option<Vec<Tensor>> {
    use kerf_ir::Op;
    let x = ins.first()?;
    let s = x.shape().to_vec();
    let v = x.to_f64_vec();
    let out = match op {
        Op::InstanceNorm { epsilon } if s.len() >= 3 => {
            let (n, c) = (s[0], s[1]);
            let rest: usize = s[2..].iter().product();
            let (sc, b) = (ins.get(1)?.to_f64_vec(), ins.get(2)?.to_f64_vec());
            let mut o = vec![0.0; v.len()];
            for i in 0..n * c {
                let seg = &v[i * rest..(i + 1) * rest];
                let m = seg.iter().sum::<f64>() / rest as f64;
                let var = seg.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / rest as f64;
                for k in 0..rest {
                    o[i * rest + k] = (seg[k] - m) / (var + epsilon.get() as f64).sqrt() * sc[i % c] + b[i % c];
                }
            }
            Tensor::from_f64_values(x.dtype(), s.clone(), &o).ok()?
        }
        Op::ArgMax { axis, keepdims: true, select_last: false } => {
            let a = *axis;
            let outer: usize = s[..a].iter().product();
            let d = s[a];
            let inner: usize = s[a + 1..].iter().product();
            let mut o = Vec::new();
            for i in 0..outer {
                for k in 0..inner {
                    let mut best = 0;
                    for j in 0..d {
                        if v[(i * d + j) * inner + k] > v[(i * d + best) * inner + k] {
                            best = j;
                        }
                    }
                    o.push(best as i64);
                }
            }
            let mut os = s.clone();
            os[a] = 1;
            Tensor::from_i64(os, &o).ok()?
        }
        Op::AveragePool(p) if p.count_include_pad && s.len() == 4 && !p.ceil_mode => {
            let w = &p.window;
            let (n, c, h, wd) = (s[0], s[1], s[2], s[3]);
            let oh = (h + w.pads[0] + w.pads[2] - w.kernel[0]) / w.strides[0] + 1;
            let ow = (wd + w.pads[1] + w.pads[3] - w.kernel[1]) / w.strides[1] + 1;
            let mut o = Vec::new();
            for b in 0..n * c {
                for y in 0..oh {
                    for xx in 0..ow {
                        let mut acc = 0.0;
                        for ky in 0..w.kernel[0] {
                            for kx in 0..w.kernel[1] {
                                let iy = (y * w.strides[0] + ky) as i64 - w.pads[0] as i64;
                                let ix = (xx * w.strides[1] + kx) as i64 - w.pads[1] as i64;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    acc += v[(b * h + iy as usize) * wd + ix as usize];
                                }
                            }
                        }
                        o.push(acc / (w.kernel[0] * w.kernel[1]) as f64);
                    }
                }
            }
            Tensor::from_f64_values(x.dtype(), vec![n, c, oh, ow], &o).ok()?
        }
        _ => return None,
    };
    Some(vec![out])
}

fn close(a: &Tensor, b: &Tensor) -> bool {
    if a.shape() != b.shape() || a.dtype() != b.dtype() {
        return false;
    }
    a.to_f64_vec()
        .iter()
        .zip(b.to_f64_vec())
        .all(|(&x, y)| (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= 1e-4 + 1e-3 * y.abs())
}

fn main() {
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    for arg in std::env::args().skip(1) {
        let dir = Path::new(&arg);
        let model = dir.join("model.onnx");
        let res = std::panic::catch_unwind(|| -> (&'static str, String) {
            let g = match kerf_onnx::load_model(&model, &Default::default()) {
                Ok(g) => g,
                Err(e) => {
                    let m = e.to_string();
                    let k = if m.starts_with("unsupported operators") { "unsupported" } else { "import-error" };
                    return (k, m);
                }
            };
            let data = dir.join("test_data_set_0");
            let mut inputs = Vec::new();
            let mut i = 0;
            while let Some(t) = read_pb(&data.join(format!("input_{i}.pb"))) {
                inputs.push(t);
                i += 1;
            }
            let mut expected = Vec::new();
            let mut i = 0;
            while let Some(t) = read_pb(&data.join(format!("output_{i}.pb"))) {
                expected.push(t);
                i += 1;
            }
            if inputs.len() != g.inputs.len() {
                return ("skip", format!("{} inputs in data, {} in graph", inputs.len(), g.inputs.len()));
            }
            match run(&g, &inputs) {
                Err(e) => {
                    // Without a reference, still check the inferred output shapes.
                    let shapes_ok = g.outputs.len() == expected.len()
                        && g.outputs.iter().zip(&expected).all(|(o, t)| g.ty(o.value).shape == t.shape());
                    if shapes_ok {
                        ("no-eval", e)
                    } else {
                        let got: Vec<Vec<usize>> = g.outputs.iter().map(|o| g.ty(o.value).shape.clone()).collect();
                        let want: Vec<Vec<usize>> = expected.iter().map(|t| t.shape().to_vec()).collect();
                        ("SHAPE-MISMATCH", format!("got {got:?} want {want:?}"))
                    }
                }
                Ok(outs) => {
                    if outs.len() == expected.len() && outs.iter().zip(&expected).all(|(a, b)| close(a, b)) {
                        ("pass", String::new())
                    } else {
                        let got: Vec<String> = outs.iter().map(|t| format!("{}{:?}", t.dtype(), t.shape())).collect();
                        let want: Vec<String> =
                            expected.iter().map(|t| format!("{}{:?}", t.dtype(), t.shape())).collect();
                        ("MISMATCH", format!("got {got:?} want {want:?}"))
                    }
                }
            }
        });
        let (kind, msg) = res.unwrap_or(("PANIC", String::new()));
        *counts.entry(kind).or_default() += 1;
        println!("{kind:12} {} {msg}", dir.file_name().and_then(|s| s.to_str()).unwrap_or(""));
    }
    let mut c: Vec<_> = counts.into_iter().collect();
    c.sort();
    println!("summary: {c:?}");
}
