//! Discovery of the ONNX backend cases written by
//! `testsuite/scripts/make_onnx_node_tests.py`.
//!
//! Layout: `ROOT/<suite>/<case>/model.onnx` with
//! `test_data_set_0/{input_*.pb, output_*.pb}`, plus `ROOT/index.json`
//! (per case: the op it tests, all op types, opset, the graph's I/O element
//! types, declared tolerances). Cases are returned sorted by id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// Facts about a case from `index.json`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct CaseInfo {
    /// The op a node case tests (also for `_expanded` cases, whose graph is
    /// the op's function body), or the only op type of a model.
    pub op: Option<String>,
    /// All op types in the graph, domain-qualified unless ai.onnx.
    #[serde(default)]
    pub ops: Vec<String>,
    #[serde(default)]
    pub opset: i64,
    /// ONNX element type names (`FLOAT`, `STRING`, ...) of graph inputs and
    /// outputs, or `sequence` / `map` / `optional` / `sparse`.
    #[serde(default)]
    pub io: Vec<String>,
    #[serde(default)]
    pub expanded: bool,
    pub rtol: Option<f64>,
    pub atol: Option<f64>,
}

#[derive(Deserialize)]
struct Index {
    onnx: String,
    cases: BTreeMap<String, CaseInfo>,
}

/// One case.
#[derive(Clone, Debug)]
pub struct Case {
    /// `suite/case`.
    pub id: String,
    pub suite: String,
    pub dir: PathBuf,
    pub info: CaseInfo,
}

impl Case {
    pub fn model(&self) -> PathBuf {
        self.dir.join("model.onnx")
    }
    pub fn data_set(&self) -> PathBuf {
        self.dir.join("test_data_set_0")
    }
}

#[derive(Debug, Error)]
pub enum CaseError {
    #[error(
        "no ONNX backend cases at '{}': generate them with \
         `.venv/bin/python testsuite/scripts/make_onnx_node_tests.py testsuite/generated/onnx` \
         (testsuite/run-all.sh does it), or point KERF_ONNX_CASES at a folder holding them",
        .0.display()
    )]
    Missing(PathBuf),
    #[error("cannot read '{}': {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("'{}' is not a valid case index: {msg} (regenerate the cases)", path.display())]
    Index { path: PathBuf, msg: String },
    #[error("case folders and index.json disagree (regenerate the cases): {0}")]
    Inconsistent(String),
}

/// The pinned onnx version the cases come from.
pub const ONNX_VERSION: &str = "1.23.2";

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CaseError + '_ {
    move |source| CaseError::Io { path: path.to_path_buf(), source }
}

fn sorted_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, CaseError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        let p = e.path();
        if p.is_dir() {
            if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                out.push((name.to_string(), p.clone()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Finds every case under `root`. Each case folder must be in the index and
/// each indexed case must exist.
pub fn discover(root: &Path) -> Result<Vec<Case>, CaseError> {
    let index_path = root.join("index.json");
    if !index_path.is_file() {
        return Err(CaseError::Missing(root.to_path_buf()));
    }
    let text = std::fs::read_to_string(&index_path).map_err(io_err(&index_path))?;
    let index: Index =
        serde_json::from_str(&text).map_err(|e| CaseError::Index { path: index_path.clone(), msg: e.to_string() })?;
    if index.onnx != ONNX_VERSION {
        return Err(CaseError::Index {
            path: index_path,
            msg: format!("generated with onnx {}, expected {ONNX_VERSION}", index.onnx),
        });
    }
    let mut infos = index.cases;
    let mut cases = Vec::new();
    for (suite, sdir) in sorted_dirs(root)? {
        for (name, dir) in sorted_dirs(&sdir)? {
            if !dir.join("model.onnx").is_file() {
                continue;
            }
            let id = format!("{suite}/{name}");
            let info = infos
                .remove(&id)
                .ok_or_else(|| CaseError::Inconsistent(format!("case folder {id} is not in index.json")))?;
            cases.push(Case { id, suite: suite.clone(), dir, info });
        }
    }
    if let Some(id) = infos.keys().next() {
        return Err(CaseError::Inconsistent(format!("{} indexed cases have no folder, e.g. {id}", infos.len())));
    }
    if cases.is_empty() {
        return Err(CaseError::Missing(root.to_path_buf()));
    }
    Ok(cases)
}
