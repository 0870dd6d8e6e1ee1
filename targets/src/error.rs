//! Errors of code generation.

use std::fmt;

/// One node the backend cannot compile, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedNode {
    pub node: String,
    pub op: String,
    pub reason: String,
}

impl fmt::Display for UnsupportedNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node '{}' ({}): {}", self.node, self.op, self.reason)
    }
}

fn list(nodes: &[UnsupportedNode]) -> String {
    nodes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("; ")
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("unknown target triple '{0}' (supported: {help})", help = crate::isa::targets_help())]
    UnknownTriple(String),
    #[error("unknown CPU '{cpu}' for {triple} (supported: {supported})")]
    UnknownCpu { triple: String, cpu: String, supported: String },
    #[error("target setup failed: {0}")]
    Isa(String),
    /// Every node the backend cannot compile (all of them, not just the first).
    #[error("{} unsupported node(s): {}", .0.len(), list(.0))]
    Unsupported(Vec<UnsupportedNode>),
    #[error("invalid graph: {0}")]
    Graph(String),
    #[error("invalid model name '{0}': use [A-Za-z_][A-Za-z0-9_]*")]
    BadName(String),
    #[error("Cranelift failed on '{func}': {msg}")]
    Codegen { func: String, msg: String },
    #[error("object emission failed: {0}")]
    Object(String),
    #[error("archive writing failed: {0}")]
    Archive(String),
    /// More read-only data than the target's relocation model can address.
    #[error("model too large: {bytes} bytes of weights and packed data exceed the {limit}-byte limit of PC-relative addressing in an object file")]
    TooLarge { bytes: u64, limit: u64 },
    #[error("JIT compilation is only available for the host; {0}")]
    Jit(String),
}
