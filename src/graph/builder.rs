//! A small helper to emit nodes with deterministic names.

use super::ir::{Attr, Graph, Node, Tensor};
use std::collections::BTreeMap;

/// Appends nodes to a graph, naming values `<prefix>/<op>_<n>`.
pub struct Builder<'g> {
    /// The graph being built.
    pub graph: &'g mut Graph,
    counter: usize,
}

impl<'g> Builder<'g> {
    /// Starts appending to `graph`.
    pub fn new(graph: &'g mut Graph) -> Self {
        Builder { graph, counter: 0 }
    }

    /// Adds an initializer and returns its name.
    pub fn init(&mut self, name: &str, t: Tensor) -> String {
        self.graph.initializers.insert(name.to_string(), t);
        name.to_string()
    }

    /// Adds a single-output node in domain ai.onnx and returns its output name.
    pub fn op(&mut self, scope: &str, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        self.op_in("", scope, op, inputs, attrs)
    }

    /// Adds a single-output node in `domain`.
    pub fn op_in(&mut self, domain: &str, scope: &str, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        self.counter += 1;
        let name = format!("{scope}/{op}_{}", self.counter);
        let out = format!("{name}:0");
        self.graph.nodes.push(Node {
            name,
            op: op.into(),
            domain: domain.into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![out.clone()],
            attrs: attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<BTreeMap<_, _>>(),
        });
        out
    }
}
