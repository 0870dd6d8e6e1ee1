//! Node order: ONNX requires a graph's nodes in topological order, but
//! ONNX Runtime accepts files that are not, and exporters do write them. The
//! importer therefore sorts them (stably: an already ordered graph keeps its
//! order, and a graph out of order keeps its original relative order
//! wherever dependencies allow) and rejects only a real cycle, naming the
//! nodes on it. A node's reads include the outer values its subgraphs (If
//! branches, Loop bodies) capture.

use std::collections::HashMap;

use crate::proto::{AttrValue, NodeDef};
use crate::ImportError;

/// Every value name `n` reads, its subgraphs' reads included.
fn reads<'a>(n: &'a NodeDef, out: &mut Vec<&'a str>) {
    out.extend(n.inputs.iter().filter(|s| !s.is_empty()).map(String::as_str));
    for a in &n.attrs {
        if let AttrValue::Graph(body) = &a.value {
            for inner in &body.nodes {
                reads(inner, out);
            }
        }
    }
}

/// A topological order of `nodes` (indices), or `None` when the given
/// order already is one. `node_of` maps each value to the node producing
/// it; `name` gives a node's display name for the cycle error.
pub(crate) fn topological(
    nodes: &[NodeDef],
    node_of: &HashMap<&str, usize>,
    name: impl Fn(usize) -> String,
) -> Result<Option<Vec<usize>>, ImportError> {
    let mut edges = Vec::new();
    let mut ordered = true;
    for (i, n) in nodes.iter().enumerate() {
        let mut r = Vec::new();
        reads(n, &mut r);
        for s in r {
            if let Some(&p) = node_of.get(s) {
                ordered &= p < i;
                edges.push((p, i));
            }
        }
    }
    if ordered {
        return Ok(None);
    }
    // always the lowest original index that is ready
    let cycle = match kerf_ir::order::toposort_by(nodes.len(), edges, |i| i) {
        Ok(order) => return Ok(Some(order)),
        Err(cycle) => cycle,
    };
    let first = cycle.first().copied().unwrap_or(0);
    let names: Vec<String> = cycle.iter().map(|&i| format!("'{}'", name(i))).collect();
    Err(ImportError::Node {
        node: name(first),
        op: nodes.get(first).map(|n| n.op_type.clone()).unwrap_or_default(),
        msg: format!("is on a cycle of nodes {} (each needs another's output)", names.join(", ")),
    })
}
