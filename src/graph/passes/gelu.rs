//! GELU fusion into onnxruntime's contrib operators (domain `com.microsoft`,
//! opset 1), which ai.onnx opset 17 lacks:
//!
//! ```text
//! erf:  y = Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5)                     → Gelu(x)
//! tanh: y = Mul(Mul(x, Add(Tanh(Mul(Add(x, Mul(Mul(Mul(x, x), x), 0.044715)),
//!                                   √(2/π))), 1)), 0.5)                     → FastGelu(x)
//! ```
//!
//! Constants are scalar f32 initializers within 1e-6 relative of the exact
//! values; every intermediate is read only by the next node of the pattern
//! (`x` itself may have other readers). Commutative operands may come in
//! either order. A model using the fused ops gets `com.microsoft: 1` in its
//! opsets.
//!
//! Deliberately not matched: `0.5·x` computed first, `Pow(x, 3)`, a bias
//! folded into `FastGelu`, and sigmoid approximations (`QuickGelu`).

use super::{fresh_node_name, splice, Ctx, PassError};
use crate::graph::{Model, Node};
use std::collections::{BTreeMap, BTreeSet};

/// The contrib domain of the fused ops.
pub const MS_DOMAIN: &str = "com.microsoft";

/// Fuses every matching pattern; returns how many.
pub fn run(model: &mut Model) -> Result<usize, PassError> {
    let g = &model.graph;
    let c = Ctx::new(g);
    let mut remove = BTreeSet::new();
    let mut replace = BTreeMap::new();
    let mut names = BTreeSet::new();
    for i in 0..g.nodes.len() {
        let Some((op, nodes, x)) = match_at(&c, i) else { continue };
        let last = &g.nodes[i];
        let name = fresh_node_name(g, &names, &last.name, op);
        names.insert(name.clone());
        remove.extend(nodes);
        let node = Node { name, op: op.into(), domain: MS_DOMAIN.into(), inputs: vec![x.into()], outputs: last.outputs.clone(), attrs: BTreeMap::new() };
        replace.insert(i, node);
    }
    let fused = replace.len();
    splice(&mut model.graph, &remove, replace);
    if model.graph.nodes.iter().any(|n| n.domain == MS_DOMAIN) {
        model.opsets.entry(MS_DOMAIN.into()).or_insert(1);
    }
    Ok(fused)
}

/// The pattern ending at node `i`: fused op, nodes to remove, and `x`.
fn match_at<'g>(c: &Ctx<'g>, i: usize) -> Option<(&'static str, Vec<usize>, &'g str)> {
    let last = c.node(i);
    if last.op != "Mul" || !super::is_onnx_domain(&last.domain) || last.outputs.len() != 1 {
        return None;
    }
    c.either(last, true, |m, half| {
        c.is_const(half, 0.5).then_some(())?;
        let mul_x = c.sole(m, "Mul")?;
        c.either(c.node(mul_x), true, |x, a| {
            let add_one = c.sole(a, "Add")?;
            c.either(c.node(add_one), true, |act, one| {
                c.is_const(one, 1.0).then_some(())?;
                let mut nodes = vec![i, mul_x, add_one];
                let op = erf_arm(c, act, x, &mut nodes).or_else(|| tanh_arm(c, act, x, &mut nodes))?;
                Some((op, nodes, x))
            })
        })
    })
}

/// `act = Erf(Div(x, √2))`.
fn erf_arm(c: &Ctx, act: &str, x: &str, nodes: &mut Vec<usize>) -> Option<&'static str> {
    let erf = c.sole(act, "Erf")?;
    let div = c.sole(c.node(erf).inputs.first()?, "Div")?;
    let [x2, s2] = c.node(div).inputs.as_slice() else { return None };
    (x2 == x && c.is_const(s2, std::f64::consts::SQRT_2)).then_some(())?;
    nodes.extend([erf, div]);
    Some("Gelu")
}

/// `act = Tanh(Mul(Add(x, Mul(Mul(Mul(x, x), x), 0.044715)), √(2/π)))`.
fn tanh_arm(c: &Ctx, act: &str, x: &str, nodes: &mut Vec<usize>) -> Option<&'static str> {
    let tanh = c.sole(act, "Tanh")?;
    let scale = c.sole(c.node(tanh).inputs.first()?, "Mul")?;
    let sqrt_2_over_pi = (2.0 / std::f64::consts::PI).sqrt();
    let found = c.either(c.node(scale), true, |inner, k| {
        c.is_const(k, sqrt_2_over_pi).then_some(())?;
        let add = c.sole(inner, "Add")?;
        c.either(c.node(add), true, |x0, kx3| {
            (x0 == x).then_some(())?;
            let mul_k = c.sole(kx3, "Mul")?;
            c.either(c.node(mul_k), true, |x3, k| {
                c.is_const(k, 0.044715).then_some(())?;
                let cube = c.sole(x3, "Mul")?;
                c.either(c.node(cube), true, |x2, x1| {
                    (x1 == x).then_some(())?;
                    let square = c.sole(x2, "Mul")?;
                    (c.node(square).inputs.iter().all(|v| v == x)).then_some([tanh, scale, add, mul_k, cube, square])
                })
            })
        })
    })?;
    nodes.extend(found);
    Some("FastGelu")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Builder, DType, Dim, Graph, Tensor, ValueInfo};

    fn model(tanh: bool, half: f32) -> Model {
        let mut g = Graph::default();
        let shape = Some(vec![Dim::Sym("batch".into()), Dim::Fixed(4)]);
        g.inputs.push(ValueInfo { name: "x".into(), dtype: DType::F32, shape: shape.clone() });
        let mut b = Builder::new(&mut g);
        let c = |b: &mut Builder, n: &str, v: f32| b.init(n, Tensor::scalar_f32(v));
        let (half, one) = (c(&mut b, "half", half), c(&mut b, "one", 1.0));
        let act = if tanh {
            let (k, s) = (c(&mut b, "k", 0.044715), c(&mut b, "s", 0.797_884_6));
            let x2 = b.op("g", "Mul", &["x", "x"], &[]);
            let x3 = b.op("g", "Mul", &[&x2, "x"], &[]);
            let kx3 = b.op("g", "Mul", &[&x3, &k], &[]);
            let inner = b.op("g", "Add", &["x", &kx3], &[]);
            let ci = b.op("g", "Mul", &[&inner, &s], &[]);
            b.op("g", "Tanh", &[&ci], &[])
        } else {
            let s2 = c(&mut b, "sqrt2", std::f32::consts::SQRT_2);
            let d = b.op("g", "Div", &["x", &s2], &[]);
            b.op("g", "Erf", &[&d], &[])
        };
        let a = b.op("g", "Add", &[&act, &one], &[]);
        let m = b.op("g", "Mul", &["x", &a], &[]);
        let y = b.op("g", "Mul", &[&m, &half], &[]);
        g.outputs.push(ValueInfo { name: y, dtype: DType::F32, shape });
        Model { graph: g, opsets: BTreeMap::from([(String::new(), 17)]), ..Default::default() }
    }

    type Fused = (usize, Vec<(String, String, Vec<String>)>, Option<i64>);

    fn fused(mut m: Model) -> Fused {
        let k = run(&mut m).unwrap();
        let nodes = m.graph.nodes.iter().map(|n| (n.op.clone(), n.domain.clone(), n.inputs.clone())).collect();
        (k, nodes, m.opsets.get(MS_DOMAIN).copied())
    }

    #[test]
    fn fuses_erf_form_to_gelu() {
        let (k, nodes, ms) = fused(model(false, 0.5));
        assert_eq!(k, 1);
        assert_eq!(nodes, [("Gelu".into(), MS_DOMAIN.into(), vec!["x".into()])]);
        assert_eq!(ms, Some(1));
    }

    #[test]
    fn fuses_tanh_form_to_fast_gelu() {
        let (k, nodes, ms) = fused(model(true, 0.5));
        assert_eq!(k, 1);
        assert_eq!(nodes, [("FastGelu".into(), MS_DOMAIN.into(), vec!["x".into()])]);
        assert_eq!(ms, Some(1));
    }

    #[test]
    fn rejects_a_wrong_constant() {
        let (k, nodes, ms) = fused(model(false, 0.5001));
        assert_eq!((k, nodes.len(), ms), (0, 5, None));
    }
}
