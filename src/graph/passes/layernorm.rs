//! LayerNorm fusion: the exporter's decomposition
//!
//! ```text
//! mean = ReduceMean(x, axes=[-1], keepdims=1)
//! d    = Sub(x, mean)
//! sq   = Mul(d, d)
//! var  = ReduceMean(sq, axes=[-1], keepdims=1)
//! sd   = Sqrt(Add(var, eps))
//! y    = Add(Mul(Div(d, sd), gamma), beta)
//! ```
//!
//! becomes `y = LayerNormalization(x, gamma, beta, axis=-1, epsilon=eps)`
//! (ai.onnx, opset 17+). Every intermediate must be read only inside the
//! pattern (`d` exactly three times: twice by `sq`, once by the `Div`);
//! `eps` a scalar f32 initializer; `gamma`, `beta` 1-D f32 initializers of
//! one length. The commutative `Add`/`Mul` may have their operands in
//! either order.
//!
//! Deliberately not matched: reductions over other axes or written as
//! positive axes (the rank is not known here), opset-18 `axes` inputs,
//! `Pow(d, 2)` for the square, RMSNorm, and models importing ai.onnx below
//! opset 17 (which has no `LayerNormalization`).

use super::{fresh_node_name, splice, Ctx, PassError};
use crate::graph::{Attr, DType, Model, Node};
use std::collections::{BTreeMap, BTreeSet};

/// Fuses every matching pattern; returns how many.
pub fn run(model: &mut Model) -> Result<usize, PassError> {
    if model.opsets.get("").or(model.opsets.get("ai.onnx")).is_none_or(|&v| v < 17) {
        return Ok(0);
    }
    let g = &model.graph;
    let c = Ctx::new(g);
    let mut remove = BTreeSet::new();
    let mut replace = BTreeMap::new();
    let mut names = BTreeSet::new();
    for i in 0..g.nodes.len() {
        let Some((nodes, x, gamma, beta, eps)) = match_at(&c, i) else { continue };
        let last = &g.nodes[i];
        let name = fresh_node_name(g, &names, &last.name, "LayerNormalization");
        names.insert(name.clone());
        remove.extend(nodes);
        replace.insert(
            i,
            Node {
                name,
                op: "LayerNormalization".into(),
                domain: String::new(),
                inputs: vec![x.into(), gamma.into(), beta.into()],
                outputs: last.outputs.clone(),
                attrs: BTreeMap::from([("axis".to_string(), Attr::Int(-1)), ("epsilon".to_string(), Attr::Float(eps))]),
            },
        );
    }
    let fused = replace.len();
    splice(&mut model.graph, &remove, replace);
    Ok(fused)
}

/// A reduction over the last axis that keeps it.
fn reduces_last(n: &Node) -> bool {
    n.ints("axes") == Some(&[-1]) && n.inputs.len() == 1 && n.int("keepdims").unwrap_or(1) == 1
}

fn vector<'g>(c: &Ctx<'g>, name: &str) -> Option<i64> {
    let t = c.init(name)?;
    (t.dtype == DType::F32 && t.dims.len() == 1).then(|| t.dims[0])
}

/// The pattern ending at node `i`: its nodes, and `x`, `gamma`, `beta`, `eps`.
#[allow(clippy::type_complexity)]
fn match_at<'g>(c: &Ctx<'g>, i: usize) -> Option<([usize; 9], &'g str, &'g str, &'g str, f32)> {
    let last = c.node(i);
    if last.op != "Add" || !super::is_onnx_domain(&last.domain) || last.outputs.len() != 1 {
        return None;
    }
    c.either(last, true, |scaled, beta| {
        let mul = c.sole(scaled, "Mul")?;
        c.either(c.node(mul), true, |normed, gamma| {
            let n = vector(c, gamma)?;
            (vector(c, beta)? == n).then_some(())?;
            let div = c.sole(normed, "Div")?;
            let [d, sd] = c.node(div).inputs.as_slice() else { return None };
            let sqrt = c.sole(sd, "Sqrt")?;
            let add_eps = c.sole(c.node(sqrt).inputs.first()?, "Add")?;
            c.either(c.node(add_eps), true, |var, eps_name| {
                let eps = c.g.const_scalar(eps_name)?;
                let var_mean = c.sole(var, "ReduceMean")?;
                reduces_last(c.node(var_mean)).then_some(())?;
                let sq = c.sole(&c.node(var_mean).inputs[0], "Mul")?;
                let [d1, d2] = c.node(sq).inputs.as_slice() else { return None };
                (d1 == d && d2 == d && c.uses(d) == 3).then_some(())?;
                let sub = c.producer(d, "Sub")?;
                let [x, mean] = c.node(sub).inputs.as_slice() else { return None };
                let mean_node = c.sole(mean, "ReduceMean")?;
                (reduces_last(c.node(mean_node)) && c.node(mean_node).inputs[0] == *x).then_some(())?;
                Some(([mean_node, sub, sq, var_mean, add_eps, sqrt, div, mul, i], x.as_str(), gamma, beta, eps))
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Builder, Dim, Graph, Tensor, ValueInfo};

    /// `x → LN → y`, optionally with `extra` reading the `Sqrt` output too.
    fn ln_graph(extra_reader: bool) -> (Model, String) {
        let mut g = Graph::default();
        let shape = Some(vec![Dim::Sym("batch".into()), Dim::Fixed(4)]);
        g.inputs.push(ValueInfo { name: "x".into(), dtype: DType::F32, shape: shape.clone() });
        let mut b = Builder::new(&mut g);
        let gamma = b.init("ln.weight", Tensor::f32(&[4], &[1., 2., 3., 4.]));
        let beta = b.init("ln.bias", Tensor::f32(&[4], &[0.; 4]));
        let eps = b.init("eps", Tensor::scalar_f32(1e-12));
        let last = || Attr::Ints(vec![-1]);
        let mean = b.op("ln", "ReduceMean", &["x"], &[("axes", last()), ("keepdims", Attr::Int(1))]);
        let d = b.op("ln", "Sub", &["x", &mean], &[]);
        let sq = b.op("ln", "Mul", &[&d, &d], &[]);
        let var = b.op("ln", "ReduceMean", &[&sq], &[("axes", last()), ("keepdims", Attr::Int(1))]);
        let ve = b.op("ln", "Add", &[&var, &eps], &[]);
        let sd = b.op("ln", "Sqrt", &[&ve], &[]);
        let nrm = b.op("ln", "Div", &[&d, &sd], &[]);
        let sc = b.op("ln", "Mul", &[&nrm, &gamma], &[]);
        let y = b.op("ln", "Add", &[&sc, &beta], &[]);
        let mut out = y.clone();
        if extra_reader {
            out = b.op("tail", "Add", &[&y, &sd], &[]);
        }
        g.outputs.push(ValueInfo { name: out, dtype: DType::F32, shape });
        (Model { graph: g, opsets: BTreeMap::from([(String::new(), 17)]), ..Default::default() }, y)
    }

    #[test]
    fn fuses_the_decomposed_pattern() {
        let (mut m, y) = ln_graph(false);
        assert_eq!(run(&mut m).unwrap(), 1);
        let n = &m.graph.nodes[..];
        assert_eq!(n.len(), 1);
        assert_eq!((n[0].op.as_str(), n[0].domain.as_str()), ("LayerNormalization", ""));
        assert_eq!(n[0].inputs, ["x", "ln.weight", "ln.bias"]);
        assert_eq!(n[0].outputs, [y]);
        assert_eq!(n[0].attrs["epsilon"], Attr::Float(1e-12));
        assert_eq!(n[0].attrs["axis"], Attr::Int(-1));
        assert_eq!(n[0].name, "ln/Add_9/LayerNormalization");
        assert_eq!(run(&mut m).unwrap(), 0);
    }

    #[test]
    fn leaves_a_pattern_whose_intermediate_is_read_elsewhere() {
        let (mut m, _) = ln_graph(true);
        let before = m.clone();
        assert_eq!(run(&mut m).unwrap(), 0);
        assert_eq!(m, before);
    }

    #[test]
    fn needs_opset_17() {
        let (mut m, _) = ln_graph(false);
        m.opsets.insert(String::new(), 16);
        assert_eq!(run(&mut m).unwrap(), 0);
    }
}
