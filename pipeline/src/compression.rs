//! The compress stage: calibration data in, a compressed graph and its
//! per-layer report out (the transforms are `kerf-compress`'s).
//!
//! Calibration runs the model many times per layer, so layer inputs are
//! probed with JIT-compiled code ([`JitProbe`]), not the f64 reference
//! evaluator. The probed values are the kernels' f32 results: within the
//! codegen tolerance of the reference, and deterministic for a given CPU
//! preset (`baseline` is used, the same code on every x86-64 machine).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use kerf_compress::probe::{truncated, ProbeFn};
use kerf_compress::{CompressError, Probe};
use kerf_ir::{Graph, Tensor, ValueId};
use kerf_targets::CompileOptions;

use crate::dataset;
use crate::{npy, PipelineError};

/// Probes by compiling the part of the graph a value depends on with the
/// JIT, for the host's baseline CPU; with a [`ProbeMemo`], values it has
/// seen are read back instead (and the part is compiled only on a miss).
#[derive(Clone, Debug, Default)]
pub struct JitProbe {
    /// Probed values shared with other sessions.
    pub memo: Option<ProbeMemo>,
}

impl Probe for JitProbe {
    fn prepare(&mut self, g: &Graph, v: ValueId) -> Result<ProbeFn, CompressError> {
        let part = truncated(g, v);
        let Some(memo) = self.memo.clone() else {
            return compiled(&part);
        };
        // the part's text names its weights by content hash: equal text,
        // equal function (digested once: a prefix of a large model prints
        // to tens of kilobytes)
        let key = format!("{:x}", Sha256::digest(kerf_ir::text::print(&part).as_bytes()));
        let mut run: Option<ProbeFn> = None;
        Ok(Box::new(move |inputs: &[Tensor]| {
            let at = (key.clone(), inputs.iter().map(Tensor::content_hash).collect::<Vec<_>>().join(" "));
            if let Some(v) = memo.get(&at) {
                return Ok(v);
            }
            let f = match &mut run {
                Some(f) => f,
                None => run.insert(compiled(&part)?),
            };
            let v = f(inputs)?;
            memo.put(at, &v);
            Ok(v)
        }))
    }
}

/// `part`'s only output as a function of its inputs, JIT-compiled.
fn compiled(part: &Graph) -> Result<ProbeFn, CompressError> {
    let opts = CompileOptions::new(kerf_targets::Target::host_baseline(), "kerf_probe");
    let jit = kerf_targets::jit_compile(part, &opts).map_err(|e| CompressError::Run(e.to_string()))?;
    let memory = |e: kerf_runtime::RuntimeError| CompressError::Run(e.to_string());
    let mut arena = jit.model().new_arena().map_err(memory)?;
    let mut out = jit.model().output_buffers().map_err(memory)?.into_iter().next().unwrap_or_default();
    Ok(Box::new(move |inputs: &[Tensor]| {
        let ins: Vec<&[u8]> = inputs.iter().map(Tensor::bytes).collect();
        jit.model().run(&ins, &mut [out.as_mut_slice()], &mut arena).map_err(|e| CompressError::Run(e.to_string()))?;
        Ok(out.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }))
}

/// Probed values by (truncated graph, sample), shared by the sessions it is
/// given to ([`crate::Session::probe_memo`]): `kerf tune` compresses one
/// layer at a time with many variants, and each variant probes the same
/// FP32 prefix on the same samples. Holds at most [`ProbeMemo::CAPACITY`]
/// bytes of values; past that, new values are computed and not kept. The
/// values are the compiled probe's own, so results do not depend on
/// whether they came from the memo.
#[derive(Clone, Default)]
pub struct ProbeMemo(Arc<Mutex<MemoInner>>);

type MemoKey = (String, String);

#[derive(Default)]
struct MemoInner {
    values: HashMap<MemoKey, Vec<f32>>,
    bytes: usize,
    hits: usize,
}

impl ProbeMemo {
    /// Bytes of probed values kept at most.
    pub const CAPACITY: usize = 2 << 30;

    /// How many values are kept, and how many times one was read back.
    pub fn stats(&self) -> (usize, usize) {
        self.0.lock().map(|m| (m.values.len(), m.hits)).unwrap_or_default()
    }

    fn get(&self, k: &MemoKey) -> Option<Vec<f32>> {
        let mut m = self.0.lock().ok()?;
        let v = m.values.get(k).cloned()?;
        m.hits += 1;
        Some(v)
    }

    fn put(&self, k: MemoKey, v: &[f32]) {
        let Ok(mut m) = self.0.lock() else { return };
        let size = 4 * v.len();
        if m.bytes + size <= Self::CAPACITY && !m.values.contains_key(&k) {
            m.bytes += size;
            m.values.insert(k, v.to_vec());
        }
    }
}

impl fmt::Debug for ProbeMemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, bytes, hits) = self.0.lock().map(|m| (m.values.len(), m.bytes, m.hits)).unwrap_or_default();
        write!(f, "ProbeMemo({n} values, {bytes} bytes, {hits} hits)")
    }
}

/// Where calibration (or evaluation) samples come from: one `.npy` file for
/// a one-input model, `NAME=FILE.npy` per input, or a folder of `.npy`
/// files named after the inputs (`<input>.npy`).
pub fn data_files(specs: &[String], inputs: &[String]) -> Result<Vec<(String, PathBuf)>, PipelineError> {
    if let [one] = specs {
        let p = Path::new(one);
        if p.is_dir() {
            return inputs
                .iter()
                .map(|n| {
                    let f = p.join(format!("{n}.npy"));
                    if f.is_file() {
                        Ok((n.clone(), f))
                    } else {
                        Err(PipelineError::Input {
                            input: n.clone(),
                            msg: format!("no calibration file '{}' in the folder ({})", f.display(), npy_files(p)),
                        })
                    }
                })
                .collect();
        }
    }
    let files = crate::inputs::assign("input", specs, inputs)?;
    inputs
        .iter()
        .zip(files)
        .map(|(n, f)| {
            f.map(|f| (n.clone(), f)).ok_or_else(|| PipelineError::Input {
                input: n.clone(),
                msg: format!("no data given: pass {n}=FILE.npy (samples stacked on a leading axis)"),
            })
        })
        .collect()
}

/// What `.npy` files folder `dir` holds, sorted, for a message: "it holds
/// a.npy, b.npy" or "it holds no .npy file".
fn npy_files(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".npy"))
        .collect();
    names.sort();
    match names.len() {
        0 => "it holds no .npy file".into(),
        1..=8 => format!("it holds {}", names.join(", ")),
        n => format!("it holds {}, ... ({n} .npy files)", names[..8].join(", ")),
    }
}

/// Reads stacked samples, one file per input.
pub fn read_stacked(files: &[(String, PathBuf)]) -> Result<Vec<(String, Tensor)>, PipelineError> {
    files.iter().map(|(n, p)| Ok((n.clone(), npy::read(p)?))).collect()
}

/// Splits stacked data into per-sample input lists for `g`'s inputs; every
/// input must give the same number of samples.
pub fn samples_for(g: &Graph, stacked: &[(String, Tensor)]) -> Result<Vec<Vec<Tensor>>, PipelineError> {
    let mut per_input = Vec::new();
    for &v in &g.inputs {
        let name = &g.value(v).name;
        let (_, x) = stacked
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| PipelineError::Input { input: name.clone(), msg: "no data given for it".into() })?;
        let ty = g.ty(v);
        if x.dtype() != ty.dtype {
            return Err(PipelineError::Input {
                input: name.clone(),
                msg: format!("data is {}, the model takes {}", x.dtype(), ty.dtype),
            });
        }
        per_input.push(dataset::split(x, &ty.shape, name)?);
    }
    let n = per_input.first().map_or(0, Vec::len);
    if let Some((k, _)) = per_input.iter().enumerate().find(|(_, v)| v.len() != n) {
        return Err(PipelineError::Input {
            input: g.value(g.inputs[k]).name.clone(),
            msg: format!("{} samples, the first input has {n}", per_input[k].len()),
        });
    }
    Ok((0..n).map(|i| per_input.iter().map(|v| v[i].clone()).collect()).collect())
}

/// The compressed model as ONNX (QDQ), written by editing the original
/// file `model` with what the compress stage recorded in `report`
/// (`kerf compress`); also the number of layers edited.
pub fn export_onnx(model: &Path, report: &kerf_compress::Report) -> Result<(Vec<u8>, usize), PipelineError> {
    let edits = export_edits(report)?;
    let bytes = kerf_onnx::export::export_edited(model, &edits)
        .map_err(|source| PipelineError::Import { path: model.to_path_buf(), source: Box::new(source) })?;
    Ok((bytes, edits.len()))
}

/// What the compress stage changed, as edits of the original ONNX file; a
/// factored (low-rank or Tucker-2) layer becomes its output side with the
/// input side (and Tucker-2's first 1x1) as a
/// [`kerf_onnx::export::FactorEdit`].
fn export_edits(report: &kerf_compress::Report) -> Result<Vec<kerf_onnx::export::LayerEdit>, PipelineError> {
    use kerf_onnx::export::{FactorEdit, LayerEdit};
    let mut edits = Vec::new();
    for l in report.layers.iter().filter(|l| l.parent.is_none()) {
        if l.is_factored() {
            let (vname, uname) = kerf_compress::rewrite::factor_names(&l.layer);
            let tucker = l.tucker.is_some();
            // a part's own entry (compressed further) or its factor as is
            let part = |name: &str, k: usize| -> Result<(Tensor, Option<&kerf_compress::LayerReport>), PipelineError> {
                let own =
                    report.layers.iter().find(|p| p.layer == name && p.parent.as_deref() == Some(l.layer.as_str()));
                let weight =
                    own.and_then(|p| p.weight.clone()).or_else(|| l.factors.get(k).cloned()).ok_or_else(|| {
                        PipelineError::Config(format!(
                            "layer '{}': the compress report lacks its factor '{name}'",
                            l.layer
                        ))
                    })?;
                Ok((weight, own))
            };
            // the factors: [v, u], or Tucker-2's [t, v, u]
            let k0 = usize::from(tucker);
            let ((vw, vr), (uw, ur)) = (part(&vname, k0)?, part(&uname, k0 + 1)?);
            let pointwise = if tucker {
                let (tw, tr) = part(&kerf_compress::rewrite::tucker_first_name(&l.layer), 0)?;
                Some(Box::new(FactorEdit {
                    weight: tw,
                    weight_quant: tr.and_then(|r| r.weight_quant.clone()),
                    input_quant: tr.and_then(|r| r.input_quant),
                    pointwise: None,
                }))
            } else {
                None
            };
            edits.push(LayerEdit {
                layer: l.layer.clone(),
                weight: uw,
                weight_quant: ur.and_then(|r| r.weight_quant.clone()),
                bias: ur.and_then(|r| r.bias.clone()).or_else(|| l.bias.clone()),
                input_quant: ur.and_then(|r| r.input_quant),
                residual_quant: l.residual_quant,
                factor: Some(FactorEdit {
                    weight: vw,
                    weight_quant: vr.and_then(|r| r.weight_quant.clone()),
                    input_quant: vr.and_then(|r| r.input_quant),
                    pointwise,
                }),
            });
            continue;
        }
        let Some(weight) = &l.weight else { continue };
        edits.push(LayerEdit {
            layer: l.layer.clone(),
            weight: weight.clone(),
            weight_quant: l.weight_quant.clone(),
            bias: l.bias.clone(),
            input_quant: l.input_quant,
            residual_quant: l.residual_quant,
            factor: None,
        });
    }
    Ok(edits)
}
