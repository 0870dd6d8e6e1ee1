//! Topological order of a dataflow graph, the one place kerf sorts one
//! (the ONNX importer's node order, the e-graph converter's emission
//! order), on `petgraph`.
//!
//! Contract: [`toposort_by`] returns every node once, each after all its
//! predecessors, always taking the ready node of least key (Kahn's
//! algorithm with a priority queue), so the order is a pure function of the
//! edges and the keys: deterministic, and the identity for a graph already
//! in key order. A cycle is reported with its nodes (a strongly connected
//! component of more than one node, or a node depending on itself), never
//! broken silently.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction::{Incoming, Outgoing};

/// Nodes `0..n` in a topological order of `edges` (`(from, to)`: `to`
/// needs `from`), least `key` first among the ready ones; duplicate edges
/// are allowed. `Err` holds the nodes of one cycle, sorted.
pub fn toposort_by<K: Ord>(
    n: usize,
    edges: impl IntoIterator<Item = (usize, usize)>,
    key: impl Fn(usize) -> K,
) -> Result<Vec<usize>, Vec<usize>> {
    let mut g: DiGraph<usize, ()> = DiGraph::with_capacity(n, n);
    let ids: Vec<NodeIndex> = (0..n).map(|i| g.add_node(i)).collect();
    for (a, b) in edges {
        g.update_edge(ids[a], ids[b], ());
    }
    let mut indegree: Vec<usize> = ids.iter().map(|&v| g.neighbors_directed(v, Incoming).count()).collect();
    let mut ready: BinaryHeap<Reverse<(K, usize)>> =
        (0..n).filter(|&i| indegree[i] == 0).map(|i| Reverse((key(i), i))).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse((_, i))) = ready.pop() {
        order.push(i);
        for m in g.neighbors_directed(ids[i], Outgoing) {
            let j = g[m];
            indegree[j] -= 1;
            if indegree[j] == 0 {
                ready.push(Reverse((key(j), j)));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    let mut cycle: Vec<usize> = tarjan_scc(&g)
        .into_iter()
        .find(|c| c.len() > 1 || g.contains_edge(c[0], c[0]))
        .map(|c| c.iter().map(|v| g[*v]).collect())
        .unwrap_or_default();
    cycle.sort_unstable();
    Err(cycle)
}

#[cfg(test)]
mod tests {
    use super::toposort_by;

    #[test]
    fn least_key_first_among_ready_nodes() {
        // 0 -> 2, 1 -> 2; 3 free. Keys prefer 3, then 1.
        let key = |i: usize| [2, 1, 0, 0][i];
        assert_eq!(toposort_by(4, [(0, 2), (1, 2)], key), Ok(vec![3, 1, 0, 2]));
        assert_eq!(toposort_by(3, [(2, 1), (1, 0), (2, 1)], |i| i), Ok(vec![2, 1, 0]));
    }

    #[test]
    fn cycles_are_named() {
        assert_eq!(toposort_by(4, [(0, 1), (1, 2), (2, 1), (2, 3)], |i| i), Err(vec![1, 2]));
        assert_eq!(toposort_by(2, [(0, 1), (1, 1)], |i| i), Err(vec![1]));
    }
}
