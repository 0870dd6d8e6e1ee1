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
        let outs = kerf_ir::eval::eval(&n.op, &refs).map_err(|e| format!("eval: {e}"))?;
        for (&o, t) in n.outputs.iter().zip(outs) {
            vals.insert(o, t);
        }
    }
    g.outputs.iter().map(|o| get(&vals, o.value)).collect()
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
