//! Errors of code generation.

use std::fmt;

/// One node the backend cannot compile, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedNode {
    /// Name of the node in the graph.
    pub node: String,
    /// Name of the node's operator.
    pub op: String,
    /// Why the backend cannot compile it.
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

/// Errors of target lookup, code generation and artifact writing.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The triple is not one of the supported targets.
    #[error("unknown target triple '{0}' (supported: {help})", help = crate::isa::targets_help())]
    UnknownTriple(String),
    /// The CPU preset is unknown for this triple (or `native` for a non-host triple).
    #[error("unknown CPU '{cpu}' for {triple} (supported: {supported})")]
    UnknownCpu {
        /// The resolved target triple.
        triple: String,
        /// The CPU name as given.
        cpu: String,
        /// Help text listing the presets (and aliases) of this ISA.
        supported: String,
    },
    /// Cranelift could not look up or configure the ISA (triple, settings, CPU features).
    #[error("target setup failed: {0}")]
    Isa(String),
    /// Every node the backend cannot compile (all of them, not just the first).
    #[error("{} unsupported node(s): {}", .0.len(), list(.0))]
    Unsupported(Vec<UnsupportedNode>),
    /// The graph failed validation.
    #[error("invalid graph: {0}")]
    Graph(String),
    /// The model name is not a valid C identifier (it prefixes the exported symbols).
    #[error("invalid model name '{0}': use [A-Za-z_][A-Za-z0-9_]*")]
    BadName(String),
    /// Cranelift failed to declare or define a function or data object.
    #[error("Cranelift failed on '{func}': {msg}")]
    Codegen {
        /// Name of the function or data object being built.
        func: String,
        /// Cranelift's error message.
        msg: String,
    },
    /// Writing the object file failed.
    #[error("object emission failed: {0}")]
    Object(String),
    /// Writing the static archive failed.
    #[error("archive writing failed: {0}")]
    Archive(String),
    /// More read-only data than the target's relocation model can address.
    #[error("model too large: {bytes} bytes of weights and packed data exceed the {limit}-byte limit of PC-relative addressing in an object file")]
    TooLarge {
        /// Read-only data the object would hold, in bytes.
        bytes: u64,
        /// Largest addressable amount, in bytes ([`crate::codegen::PCREL_DATA_LIMIT`]).
        limit: u64,
    },
    /// JIT compilation failed, or the target is not the host.
    #[error("JIT compilation is only available for the host; {0}")]
    Jit(String),
}
