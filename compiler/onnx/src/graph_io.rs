//! The model's boundary: graph inputs (runtime inputs with fixed shapes,
//! inputs bound to constants, sequence and optional inputs) and graph
//! outputs, with their declared types checked.

use std::collections::{BTreeMap, HashMap, HashSet};

use kerf_ir::{DType, Graph, Origin, TensorType, ValueId};

use crate::error::TypeSite;
use crate::import::{Env, Val};
use crate::proto::Dim;
use crate::{tensor, ImportError, ImportOptions};

/// The graph inputs that are not initializers: runtime inputs with their
/// fixed shapes, inputs bound to constants (checked against the declared
/// type), sequence/optional inputs; an option naming no input is an error.
#[allow(clippy::type_complexity)] // the two halves of the environment
pub(crate) fn graph_inputs(
    g: &mut Graph,
    gd: &crate::proto::GraphDef,
    init_names: &HashSet<&str>,
    opts: &ImportOptions,
) -> Result<(HashMap<String, ValueId>, Vec<(String, Val)>), ImportError> {
    let real_inputs: Vec<&crate::proto::ValueInfo> =
        gd.inputs.iter().filter(|i| !init_names.contains(i.name.as_str())).collect();
    for key in opts.input_shapes.keys().chain(opts.constant_inputs.keys()) {
        if !real_inputs.iter().any(|i| &i.name == key) {
            let names: Vec<&str> = real_inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(ImportError::model(format!(
                "input shape or constant given for '{key}', which is not a model input (inputs: {})",
                names.join(", ")
            )));
        }
    }
    // A bound constant gives its input's shape unless one is given.
    let mut shapes = opts.input_shapes.clone();
    for (k, t) in &opts.constant_inputs {
        shapes.entry(k.clone()).or_insert_with(|| t.shape().to_vec());
    }
    let mut values = HashMap::new();
    let mut structured: Vec<(String, Val)> = Vec::new();
    for inp in real_inputs {
        if inp.non_tensor.is_some() {
            if let Some(t) = opts.structured_inputs.get(&inp.name) {
                let v = structured_input(g, &inp.name, t)?;
                structured.push((inp.name.clone(), v));
                continue;
            }
        }
        let ty = input_type(inp, &shapes)?;
        let v = match opts.constant_inputs.get(&inp.name) {
            Some(t) => {
                // A bound input must be what the model declares, so the
                // specialised graph computes what the general one would.
                if t.dtype() != ty.dtype || t.shape() != ty.shape.as_slice() {
                    let given = TensorType::new(t.dtype(), t.shape().to_vec());
                    return Err(ImportError::model(format!(
                        "constant for input '{}' is {given}, but the input is {ty}",
                        inp.name
                    )));
                }
                g.add_const(inp.name.clone(), t.clone(), Origin::Derived)
            }
            None => g.add_input(inp.name.clone(), ty),
        };
        values.insert(inp.name.clone(), v);
    }
    Ok((values, structured))
}

/// Adds the graph outputs; one no node produced is an error saying why
/// (`unavailable`: outputs a converter could not provide).
pub(crate) fn graph_outputs(
    g: &mut Graph,
    gd: &crate::proto::GraphDef,
    env: &Env,
    unavailable: &HashMap<String, String>,
) -> Result<(), ImportError> {
    for o in &gd.outputs {
        match env.get(&o.name) {
            Some(v) => add_structured_output(g, &o.name, v),
            None => {
                let msg = match unavailable.get(&o.name) {
                    Some(why) => format!("graph output '{}' {why}", o.name),
                    None => format!("graph output '{}' is not produced by any node", o.name),
                };
                return Err(ImportError::model(msg));
            }
        }
    }
    if g.outputs.is_empty() {
        return Err(ImportError::model("model has no outputs"));
    }
    Ok(())
}

/// Graph inputs for a sequence/optional input of static type `t` (see
/// `ImportOptions::structured_inputs`): one per tensor inside.
fn structured_input(g: &mut Graph, name: &str, t: &crate::IoType) -> Result<Val, ImportError> {
    let leaf = |g: &mut Graph, n: String, t: &crate::IoType| match t {
        crate::IoType::Tensor(tt) => Ok(g.add_input(n, tt.clone())),
        _ => Err(ImportError::model(format!("input '{name}': sequences of non-tensors are not supported"))),
    };
    Ok(match t {
        crate::IoType::Tensor(tt) => Val::Tensor(g.add_input(name.to_string(), tt.clone())),
        crate::IoType::Sequence(items) => Val::Seq(
            items.iter().enumerate().map(|(i, t)| leaf(g, format!("{name}[{i}]"), t)).collect::<Result<_, _>>()?,
        ),
        crate::IoType::Optional(None) => Val::Opt(None),
        crate::IoType::Optional(Some(inner)) => Val::Opt(Some(Box::new(structured_input(g, name, inner)?))),
    })
}

/// Graph outputs for a value: a tensor is one output; a sequence one per
/// element (`name[i]`); an optional its content, or nothing when empty.
fn add_structured_output(g: &mut Graph, name: &str, v: &Val) {
    match v {
        Val::Tensor(t) => g.add_output(name.to_string(), *t),
        Val::Seq(items) => {
            for (i, t) in items.iter().enumerate() {
                g.add_output(format!("{name}[{i}]"), *t);
            }
        }
        Val::Opt(Some(inner)) => add_structured_output(g, name, inner),
        Val::Opt(None) => {}
    }
}

fn input_type(inp: &crate::proto::ValueInfo, given: &BTreeMap<String, Vec<usize>>) -> Result<TensorType, ImportError> {
    let name = &inp.name;
    if let Some(k) = inp.non_tensor {
        return Err(ImportError::model(format!("input '{name}' is {k}; only tensor inputs are supported")));
    }
    let code = inp.elem_type.ok_or_else(|| ImportError::model(format!("input '{name}' has no type")))?;
    let dtype: DType = tensor::dtype_at(code, name, TypeSite::Input)?;
    let shape = match (&inp.dims, given.get(name)) {
        (None, Some(s)) => s.clone(),
        (None, None) => {
            return Err(ImportError::model(format!(
                "input '{name}' has no declared shape; pass --input-shape {name}=..."
            )));
        }
        (Some(dims), Some(s)) => {
            if s.len() != dims.len() {
                return Err(ImportError::model(format!(
                    "input shape for '{name}' has rank {}, but the model declares rank {}",
                    s.len(),
                    dims.len()
                )));
            }
            for (i, (d, &v)) in dims.iter().zip(s).enumerate() {
                if let Dim::Value(x) = d {
                    if *x >= 0 && *x as usize != v {
                        return Err(ImportError::model(format!(
                            "input shape for '{name}' gives {v} for dimension {i}, but the model fixes it to {x}"
                        )));
                    }
                }
            }
            s.clone()
        }
        (Some(dims), None) => {
            let mut s = Vec::with_capacity(dims.len());
            for (i, d) in dims.iter().enumerate() {
                match d {
                    Dim::Value(x) if *x >= 0 => s.push(*x as usize),
                    other => {
                        let what = match other {
                            Dim::Param(p) if !p.is_empty() => format!(" ('{p}')"),
                            _ => String::new(),
                        };
                        // the form with the dynamic dimensions named, and a
                        // concrete example with 1 for each of them
                        let form: Vec<String> = dims
                            .iter()
                            .enumerate()
                            .map(|(k, d)| match d {
                                Dim::Value(x) if *x >= 0 => x.to_string(),
                                Dim::Param(p) if !p.is_empty() => p.clone(),
                                _ => format!("D{k}"),
                            })
                            .collect();
                        let example: Vec<String> = dims
                            .iter()
                            .map(|d| match d {
                                Dim::Value(x) if *x >= 0 => x.to_string(),
                                _ => "1".to_string(),
                            })
                            .collect();
                        return Err(ImportError::model(format!(
                            "input '{name}' has dynamic dimension {i}{what}; kerf compiles for one shape: pass --input-shape {name}={} with the sizes you will run (e.g. --input-shape {name}={}), or an input file (kerf run) whose shape fixes them",
                            form.join(","),
                            example.join(",")
                        )));
                    }
                }
            }
            s
        }
    };
    if kerf_ir::numel(&shape).is_none() {
        return Err(ImportError::model(format!("input '{name}' shape {shape:?} is too large")));
    }
    Ok(TensorType::new(dtype, shape))
}
