//! Node order: ONNX requires a graph's nodes in topological order, but
//! ONNX Runtime accepts files that are not, and exporters do write them. The
//! importer therefore sorts them (stably: an already ordered graph keeps its
//! order, and a graph out of order keeps its original relative order
//! wherever dependencies allow) and rejects only a real cycle, naming the
//! nodes on it. A node's reads include the outer values its subgraphs (If
//! branches, Loop bodies) capture.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

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
pub fn topological(
    nodes: &[NodeDef],
    node_of: &HashMap<&str, usize>,
    name: impl Fn(usize) -> String,
) -> Result<Option<Vec<usize>>, ImportError> {
    let mut g: DiGraph<usize, ()> = DiGraph::with_capacity(nodes.len(), nodes.len());
    let ids: Vec<NodeIndex> = (0..nodes.len()).map(|i| g.add_node(i)).collect();
    let mut ordered = true;
    for (i, n) in nodes.iter().enumerate() {
        let mut r = Vec::new();
        reads(n, &mut r);
        for s in r {
            if let Some(&p) = node_of.get(s) {
                ordered &= p < i;
                g.update_edge(ids[p], ids[i], ());
            }
        }
    }
    if ordered {
        return Ok(None);
    }
    // Kahn's algorithm, always taking the lowest original index that is ready
    let mut indegree: Vec<usize> = ids.iter().map(|&v| g.neighbors_directed(v, petgraph::Incoming).count()).collect();
    let mut ready: BinaryHeap<Reverse<usize>> = (0..nodes.len()).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for m in g.neighbors_directed(ids[i], petgraph::Outgoing) {
            let j = g[m];
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    if order.len() == nodes.len() {
        return Ok(Some(order));
    }
    // a cycle: the first strongly connected component with more than one
    // node, or a node reading its own output
    let mut cycle: Vec<usize> = tarjan_scc(&g)
        .into_iter()
        .find(|c| c.len() > 1 || g.contains_edge(c[0], c[0]))
        .map(|c| c.iter().map(|v| g[*v]).collect())
        .unwrap_or_default();
    cycle.sort_unstable();
    let first = cycle.first().copied().unwrap_or(0);
    let names: Vec<String> = cycle.iter().map(|&i| format!("'{}'", name(i))).collect();
    Err(ImportError::Node {
        node: name(first),
        op: nodes.get(first).map(|n| n.op_type.clone()).unwrap_or_default(),
        msg: format!("is on a cycle of nodes {} (each needs another's output)", names.join(", ")),
    })
}
