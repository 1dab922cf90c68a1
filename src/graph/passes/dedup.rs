//! Initializer deduplication: initializers with the same dtype, dims and
//! bytes are merged into the lexicographically smallest name and every read
//! is rewritten to it. This keeps ALBERT's shared layer one set of weights
//! after folding gave each application its own transposed copy (ONNX
//! Runtime's INT8 ALBERT grows past its FP32 model for lack of this).
//!
//! Bytes are hashed with FNV-1a (fixed, platform-independent) and compared
//! in full on a hash match, so a collision can never merge different
//! tensors. Initializers named like a graph input or output are left as
//! they are: their names are part of the interface.

use super::PassError;
use crate::graph::{DType, Model};
use std::collections::{BTreeMap, BTreeSet};

/// Merges identical initializers; returns how many were merged away.
pub fn run(model: &mut Model) -> Result<usize, PassError> {
    let g = &mut model.graph;
    let interface: BTreeSet<&str> = g.inputs.iter().chain(&g.outputs).map(|v| v.name.as_str()).collect();
    let mut buckets: BTreeMap<(DType, &[i64], u64), Vec<&str>> = BTreeMap::new();
    let mut renames: BTreeMap<String, String> = BTreeMap::new();
    // BTreeMap order: the first of each class seen is its smallest name.
    for (name, t) in &g.initializers {
        if interface.contains(name.as_str()) {
            continue;
        }
        let bucket = buckets.entry((t.dtype, &t.dims, fnv1a(&t.data))).or_default();
        match bucket.iter().find(|c| g.initializers[**c].data == t.data) {
            Some(canonical) => {
                renames.insert(name.clone(), canonical.to_string());
            }
            None => bucket.push(name),
        }
    }
    for n in &mut g.nodes {
        for i in n.inputs.iter_mut() {
            if let Some(to) = renames.get(i.as_str()) {
                *i = to.clone();
            }
        }
    }
    for name in renames.keys() {
        g.initializers.remove(name);
    }
    Ok(renames.len())
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Builder, Graph, Tensor, ValueInfo};

    #[test]
    fn merges_identical_initializers_into_the_smallest_name() {
        let mut g = Graph::default();
        g.inputs.push(ValueInfo { name: "x".into(), dtype: DType::F32, shape: None });
        let mut b = Builder::new(&mut g);
        let w = Tensor::f32(&[2, 2], &[1., 2., 3., 4.]);
        let zb = b.init("z.weight", w.clone());
        let ab = b.init("a.weight", w.clone());
        // Same bytes, other dims; and same dims, other bytes: both stay.
        let flat = b.init("flat", Tensor::f32(&[4], &[1., 2., 3., 4.]));
        let other = b.init("other", Tensor::f32(&[2, 2], &[1., 2., 3., 5.]));
        let y1 = b.op("s", "MatMul", &["x", &zb], &[]);
        let y2 = b.op("s", "MatMul", &[&y1, &ab], &[]);
        let y3 = b.op("s", "MatMul", &[&y2, &other], &[]);
        let y4 = b.op("s", "Add", &[&y3, &flat], &[]);
        g.outputs.push(ValueInfo { name: y4, dtype: DType::F32, shape: None });
        let mut m = Model { graph: g, ..Default::default() };
        assert_eq!(run(&mut m).unwrap(), 1);
        let g = &m.graph;
        assert_eq!(g.initializers.keys().collect::<Vec<_>>(), ["a.weight", "flat", "other"]);
        assert_eq!(g.nodes[0].inputs[1], "a.weight");
        assert_eq!(g.nodes[1].inputs[1], "a.weight");
        assert_eq!(run(&mut m).unwrap(), 0);
    }
}
