//! Dead-code elimination: nodes none of whose outputs reach a graph output
//! (transitively), initializers no live node reads, and `value_info` of
//! values no live node produces.
//!
//! Graph inputs are the model's interface and are never removed, even when
//! unread.

use super::PassError;
use crate::graph::Model;
use std::collections::BTreeSet;

/// Removes dead nodes, initializers and value infos; returns how many
/// nodes and initializers were removed.
pub fn run(model: &mut Model) -> Result<usize, PassError> {
    let g = &mut model.graph;
    let mut live: BTreeSet<String> = g.outputs.iter().map(|o| o.name.clone()).collect();
    let mut keep = vec![false; g.nodes.len()];
    for (i, n) in g.nodes.iter().enumerate().rev() {
        if n.outputs.iter().any(|o| live.contains(o)) {
            keep[i] = true;
            live.extend(n.inputs.iter().filter(|s| !s.is_empty()).cloned());
        }
    }
    let before = g.nodes.len() + g.initializers.len();
    let mut k = keep.into_iter();
    g.nodes.retain(|_| k.next().unwrap_or(false));
    g.initializers.retain(|name, _| live.contains(name));
    let produced: BTreeSet<&str> = g.nodes.iter().flat_map(|n| n.outputs.iter().map(String::as_str)).collect();
    g.value_info.retain(|name, _| produced.contains(name.as_str()));
    Ok(before - g.nodes.len() - g.initializers.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Builder, DType, Graph, Tensor, ValueInfo};

    #[test]
    fn removes_dead_chains_initializers_and_value_info() {
        let mut g = Graph::default();
        g.inputs.push(ValueInfo { name: "x".into(), dtype: DType::F32, shape: None });
        g.inputs.push(ValueInfo { name: "unused".into(), dtype: DType::F32, shape: None });
        let mut b = Builder::new(&mut g);
        let one = b.init("one", Tensor::scalar_f32(1.0));
        let two = b.init("two", Tensor::scalar_f32(2.0));
        b.init("orphan", Tensor::scalar_f32(3.0));
        let live = b.op("s", "Add", &["x", &one], &[]);
        let dead1 = b.op("s", "Mul", &["x", &two], &[]);
        let dead2 = b.op("s", "Sqrt", &[&dead1], &[]);
        g.outputs.push(ValueInfo { name: live.clone(), dtype: DType::F32, shape: None });
        for v in [&dead1, &dead2, &live] {
            g.value_info.insert(v.clone(), ValueInfo { name: v.clone(), dtype: DType::F32, shape: None });
        }
        let mut m = Model { graph: g, ..Default::default() };
        assert_eq!(run(&mut m).unwrap(), 4);
        let g = &m.graph;
        assert_eq!(g.nodes.len(), 1);
        assert_eq!(g.initializers.keys().collect::<Vec<_>>(), ["one"]);
        assert_eq!(g.value_info.keys().collect::<Vec<_>>(), [&live]);
        assert_eq!(g.inputs.len(), 2);
        assert_eq!(run(&mut m).unwrap(), 0);
    }
}
