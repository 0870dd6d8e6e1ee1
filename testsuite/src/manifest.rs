//! The conformance manifest: the expected status of every ONNX backend case.
//!
//! Format (`testsuite/conformance/manifest.txt`): one case per line,
//! `<suite>/<case> pass` or `<suite>/<case> xfail <reason-tag>`; blank lines
//! and lines starting with `#` are ignored. [`Manifest::render`] writes the
//! cases sorted by id after a fixed header, so blessing is deterministic.
//!
//! A line may end with `bound=<in>,<in>`: the case ran with those graph
//! inputs bound to their test-data values at compile time
//! (`ImportOptions::constant_inputs`), because the frontend needs them
//! constant (they shape a result: Reshape's shape, Slice's starts, ...).
//! The binding is part of the expectation, so a case that starts or stops
//! needing it shows up as a change.
//!
//! Reason tags are one word without spaces: `dynamic-shape`, `dtype:float8`,
//! `type:sequence`, `op:Loop`, `training`, `unsupported-op:<Op>`,
//! `import:<Op>`, `codegen:<Op>`, `mismatch`, `panic`, ...

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

/// The expected status of one case.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Expect {
    Pass,
    Xfail(String),
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expect::Pass => f.write_str("pass"),
            Expect::Xfail(tag) => write!(f, "xfail {tag}"),
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest line {line}: {msg}")]
    Line { line: usize, msg: String },
}

/// Case id (`suite/case`) → expected status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub cases: BTreeMap<String, Expect>,
    /// Case id → graph inputs bound to constants (only cases with some).
    pub bound: BTreeMap<String, Vec<String>>,
}

const HEADER: &str = "\
# ONNX backend conformance manifest: `<suite>/<case> pass` or `<suite>/<case> xfail <reason>`.
# Checked by testsuite/tests/onnx_backend.rs; regenerate with
#   KERF_BLESS=1 cargo test -p kerf-testsuite --test onnx_backend
# after reviewing what changed (docs/onnx-coverage.md is regenerated with it).
";

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let mut cases = BTreeMap::new();
        let mut bound = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let err = |msg: String| ManifestError::Line { line, msg };
            let mut words: Vec<&str> = l.split_whitespace().collect();
            let inputs = match words.last().and_then(|w| w.strip_prefix("bound=")) {
                Some(list) => {
                    words.pop();
                    let names: Vec<String> = list.split(',').map(str::to_string).collect();
                    if names.iter().any(String::is_empty) {
                        return Err(err(format!("bad input list in `bound={list}`")));
                    }
                    names
                }
                None => Vec::new(),
            };
            let (id, expect) = match words.as_slice() {
                [id, "pass"] => (*id, Expect::Pass),
                [id, "xfail", tag] => (*id, Expect::Xfail((*tag).to_string())),
                [_, "xfail"] => return Err(err("xfail needs a reason tag".into())),
                _ => return Err(err(format!("expected `<suite>/<case> pass|xfail <reason>`, got `{l}`"))),
            };
            if !id.contains('/') {
                return Err(err(format!("case id `{id}` is not `<suite>/<case>`")));
            }
            if cases.insert(id.to_string(), expect).is_some() {
                return Err(err(format!("case `{id}` is listed twice")));
            }
            if !inputs.is_empty() {
                bound.insert(id.to_string(), inputs);
            }
        }
        Ok(Manifest { cases, bound })
    }

    /// The file text: header, then one sorted line per case.
    pub fn render(&self) -> String {
        let mut s = String::from(HEADER);
        for (id, e) in &self.cases {
            s.push_str(id);
            s.push(' ');
            s.push_str(&e.to_string());
            if let Some(b) = self.bound.get(id).filter(|b| !b.is_empty()) {
                s.push_str(" bound=");
                s.push_str(&b.join(","));
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_sorted() {
        let m = Manifest::parse("node/b xfail mismatch\n# c\n\nnode/a pass\nnode/c pass bound=axes,k\n").unwrap();
        assert_eq!(m.bound.get("node/c"), Some(&vec!["axes".to_string(), "k".to_string()]));
        let text = m.render();
        let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(body, ["node/a pass", "node/b xfail mismatch", "node/c pass bound=axes,k"]);
        assert_eq!(Manifest::parse(&text).unwrap(), m);
    }

    #[test]
    fn rejects_bad_lines() {
        assert_eq!(
            Manifest::parse("node/a pass\nnode/a pass\n").unwrap_err(),
            ManifestError::Line { line: 2, msg: "case `node/a` is listed twice".into() }
        );
        assert_eq!(
            Manifest::parse("node/a xfail\n").unwrap_err(),
            ManifestError::Line { line: 1, msg: "xfail needs a reason tag".into() }
        );
        assert!(Manifest::parse("node/a passes\n").is_err());
        assert!(Manifest::parse("noslash pass\n").is_err());
        assert!(Manifest::parse("node/a pass bound=\n").is_err());
    }
}
