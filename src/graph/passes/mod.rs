//! Optimization passes over the IR, run by [`optimize`] in one fixed order:
//!
//! ```text
//! fold → dce → layernorm → gelu → gemm → dedup → dce → shapes
//! ```
//!
//! - [`fold`] turns constant subgraphs (the exporter's `Transpose(W)`, the
//!   position-plus-type-row `Add`) into initializers, so the fusions below
//!   see plain initializers where they expect weights.
//! - [`dce`] drops what folding orphaned (the `[out, in]` weights).
//! - [`layernorm`] and [`gelu`] fuse the exporter's decomposed LayerNorm and
//!   GELU back into single nodes.
//! - [`gemm`] turns rank-2 `MatMul + Add(bias)` into `Gemm`; it asks
//!   [`shapes`] for ranks so the rank-3 encoder projections are left alone.
//! - [`dedup`] merges byte-identical initializers (ALBERT's shared layer is
//!   referenced by every application, so its folded transposes coincide).
//! - [`shapes`] writes `value_info` for every intermediate value and checks
//!   the declared graph outputs; an operator without a rule is an error.
//!
//! Every pass is deterministic: nodes are visited in order, anything keyed
//! lives in a `BTreeMap`, and new names are derived from existing ones. Each
//! pass reports how many rewrites it made; running [`optimize`] on its own
//! output makes none.

pub mod dce;
pub mod dedup;
mod error;
pub mod fold;
pub mod gelu;
pub mod gemm;
pub mod layernorm;
pub mod shapes;
#[cfg(test)]
pub(crate) mod testgraph;

pub use error::PassError;

use crate::graph::{Graph, Model, Node, Tensor};
use std::collections::{BTreeMap, BTreeSet};

/// Size summary of a graph, for reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Number of nodes.
    pub nodes: usize,
    /// Number of initializers.
    pub initializers: usize,
    /// Total bytes of initializer data.
    pub initializer_bytes: usize,
    /// Nodes per operator type (domains are not distinguished: no two
    /// domains avac uses share an operator name).
    pub ops: BTreeMap<String, usize>,
}

impl Counts {
    /// Counts of `graph`.
    pub fn of(graph: &Graph) -> Self {
        let (nodes, initializers, initializer_bytes) = graph.counts();
        let mut ops = BTreeMap::new();
        for n in &graph.nodes {
            *ops.entry(n.op.clone()).or_insert(0) += 1;
        }
        Counts { nodes, initializers, initializer_bytes, ops }
    }
}

/// What [`optimize`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct OptimizeReport {
    /// The graph before the first pass.
    pub before: Counts,
    /// The graph after the last pass.
    pub after: Counts,
    /// Each pass in the order run, with the number of rewrites it made.
    pub passes: Vec<(String, usize)>,
}

/// Runs the fixed pass pipeline on `model` in place.
pub fn optimize(model: &mut Model) -> Result<OptimizeReport, PassError> {
    let before = Counts::of(&model.graph);
    type Pass = fn(&mut Model) -> Result<usize, PassError>;
    let pipeline: [(&str, Pass); 8] = [
        ("fold", fold::run),
        ("dce", dce::run),
        ("layernorm", layernorm::run),
        ("gelu", gelu::run),
        ("gemm", gemm::run),
        ("dedup", dedup::run),
        ("dce", dce::run),
        ("shapes", shapes::run),
    ];
    let mut passes = Vec::with_capacity(pipeline.len());
    for (name, pass) in pipeline {
        passes.push((name.to_string(), pass(model)?));
    }
    Ok(OptimizeReport { before, after: Counts::of(&model.graph), passes })
}

/// True for the ai.onnx domain, which ONNX spells either way.
pub(crate) fn is_onnx_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// Read-only indexes the pattern matchers share: who produces a value and
/// how often it is read (graph outputs count as reads).
pub(crate) struct Ctx<'g> {
    pub g: &'g Graph,
    producer: BTreeMap<&'g str, usize>,
    uses: BTreeMap<&'g str, usize>,
}

impl<'g> Ctx<'g> {
    pub fn new(g: &'g Graph) -> Self {
        let mut producer = BTreeMap::new();
        for (i, n) in g.nodes.iter().enumerate() {
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                producer.entry(o.as_str()).or_insert(i);
            }
        }
        Ctx { g, producer, uses: g.uses() }
    }

    /// Number of reads of `value`.
    pub fn uses(&self, value: &str) -> usize {
        self.uses.get(value).copied().unwrap_or(0)
    }

    /// The ai.onnx node producing `value` as its only output, if its op is `op`.
    pub fn producer(&self, value: &str, op: &str) -> Option<usize> {
        let i = *self.producer.get(value)?;
        let n = &self.g.nodes[i];
        (n.op == op && is_onnx_domain(&n.domain) && n.outputs.len() == 1).then_some(i)
    }

    /// Like [`Ctx::producer`], and `value` has exactly one read.
    pub fn sole(&self, value: &str, op: &str) -> Option<usize> {
        (self.uses(value) == 1).then(|| self.producer(value, op)).flatten()
    }

    /// The node at `i`.
    pub fn node(&self, i: usize) -> &'g Node {
        &self.g.nodes[i]
    }

    /// An initializer.
    pub fn init(&self, name: &str) -> Option<&'g Tensor> {
        self.g.initializers.get(name)
    }

    /// A scalar f32 initializer equal to `want` within 1e-6 relative.
    pub fn is_const(&self, name: &str, want: f64) -> bool {
        self.g.const_scalar(name).is_some_and(|v| (v as f64 - want).abs() <= 1e-6 * want.abs())
    }

    /// Tries `f(a, b)` then, for a commutative binary node, `f(b, a)`.
    pub fn either<T>(&self, n: &'g Node, commutative: bool, mut f: impl FnMut(&'g str, &'g str) -> Option<T>) -> Option<T> {
        let [a, b] = n.inputs.as_slice() else { return None };
        f(a, b).or_else(|| if commutative { f(b, a) } else { None })
    }
}

/// Rebuilds the node list: node `i` is replaced by `replace[i]`, dropped if
/// in `remove`, kept otherwise. Replacements sit at the position of the node
/// whose output they keep, which is after every node they read from.
pub(crate) fn splice(g: &mut Graph, remove: &BTreeSet<usize>, mut replace: BTreeMap<usize, Node>) {
    let nodes = std::mem::take(&mut g.nodes);
    g.nodes = nodes.into_iter().enumerate().filter_map(|(i, n)| replace.remove(&i).or_else(|| (!remove.contains(&i)).then_some(n))).collect();
}

/// A node name `<anchor>/<op>` not yet used in `g` (nor in `taken`), with
/// `_2`, `_3`… appended on collision.
pub(crate) fn fresh_node_name(g: &Graph, taken: &BTreeSet<String>, anchor: &str, op: &str) -> String {
    let base = format!("{anchor}/{op}");
    let used = |s: &str| taken.contains(s) || g.nodes.iter().any(|n| n.name == s);
    if !used(&base) {
        return base;
    }
    (2..).map(|k| format!("{base}_{k}")).find(|s| !used(s)).expect("unbounded range")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::passes::testgraph::{evaluate, sample_inputs, tiny_encoder, Act, Pool};

    #[test]
    fn optimize_is_idempotent_and_reports_each_pass() {
        for (act, pool, shared) in [(Act::Erf, Pool::Pooler, false), (Act::Tanh, Pool::Mean, true)] {
            let mut m = tiny_encoder(act, pool, 2, shared);
            let r1 = optimize(&mut m).unwrap();
            let names: Vec<_> = r1.passes.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["fold", "dce", "layernorm", "gelu", "gemm", "dedup", "dce", "shapes"]);
            let once = m.clone();
            let r2 = optimize(&mut m).unwrap();
            assert_eq!(m, once, "second run changed the model");
            assert!(r2.passes.iter().all(|(_, k)| *k == 0), "{:?}", r2.passes);
            assert_eq!(r2.before, r1.after);
        }
    }

    #[test]
    fn optimize_fuses_an_exported_encoder() {
        let mut m = tiny_encoder(Act::Erf, Pool::Pooler, 2, false);
        let r = optimize(&mut m).unwrap();
        let ops = &r.after.ops;
        assert_eq!(ops.get("LayerNormalization"), Some(&5));
        assert_eq!(ops.get("Gelu"), Some(&2));
        // pooler and classifier are rank 2; the 12 encoder projections stay MatMul+Add.
        assert_eq!(ops.get("Gemm"), Some(&2));
        assert_eq!(ops.get("MatMul"), Some(&(2 * 6 + 2 * 2)));
        assert_eq!(ops.get("Transpose"), Some(&(2 * 4)), "only activation transposes remain");
        for gone in ["ReduceMean", "Erf", "Sqrt"] {
            assert_eq!(ops.get(gone), None, "{gone}");
        }
        assert_eq!(m.opsets.get("com.microsoft"), Some(&1));
        // The embedding add is folded: one position table, no token-type row.
        assert!(!m.graph.initializers.contains_key("embeddings.position_embeddings.weight"));
        assert!(!m.graph.initializers.contains_key("embeddings.token_type_embeddings.row0"));
        assert!(r.after.initializers < r.before.initializers);
        // Every intermediate value has a type and shape.
        for n in &m.graph.nodes {
            for o in n.outputs.iter().filter(|o| *o != "logits") {
                assert!(m.graph.value_info[o].shape.is_some(), "{o}");
            }
        }
    }

    #[test]
    fn optimized_graphs_compute_what_exported_ones_do() {
        for (act, pool, shared) in [(Act::Erf, Pool::Pooler, false), (Act::Tanh, Pool::Mean, true)] {
            let exported = tiny_encoder(act, pool, 2, shared);
            let mut m = exported.clone();
            optimize(&mut m).unwrap();
            let (want, got) = (evaluate(&exported, &sample_inputs()), evaluate(&m, &sample_inputs()));
            assert_eq!(want.d, [2, 3]);
            assert_eq!(got.d, want.d);
            for (a, b) in want.v.iter().zip(&got.v) {
                // Folding rounds W^T and pos+type to f32; the rest is exact rewriting.
                assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{want:?} vs {got:?}");
            }
        }
    }

    #[test]
    fn shared_layers_keep_one_copy_of_each_weight() {
        let mut m = tiny_encoder(Act::Tanh, Pool::Mean, 3, true);
        optimize(&mut m).unwrap();
        let g = &m.graph;
        // q, k, v, o [8, 8], ffn in [8, 16], ffn out [16, 8]: once each, read by all three layers.
        let weights = g.initializers.values().filter(|t| [[8, 8], [8, 16], [16, 8]].iter().any(|d| t.dims == d)).count();
        assert_eq!(weights, 6);
        assert_eq!(Counts::of(g).ops.get("FastGelu"), Some(&3));
    }
}
