//! `MatMul(A, B) + Add(C)` → `Gemm(A, B, C)` (alpha 1, beta 1, no
//! transposes) where `A` is rank 2, `B` a 2-D f32 initializer `[K, N]`, the
//! `MatMul` output is read only by the `Add`, and `C` a 1-D f32 initializer
//! of length `N`.
//!
//! `Gemm` is rank-2 only, so ranks come from [`shapes::infer`](super::shapes::infer):
//! the pooler and the classifier head (`[batch, hidden]`) are rewritten, the
//! encoder's `[batch, seq, hidden]` projections are not.
//!
//! Deliberately not rewritten: a `B` that is not an initializer (attention's
//! activation × activation products), bias shapes other than `[N]`, and
//! `MatMul` without a bias.

use super::{fresh_node_name, shapes, splice, Ctx, PassError};
use crate::graph::{Attr, DType, Model, Node};
use std::collections::{BTreeMap, BTreeSet};

/// Rewrites every matching pair; returns how many.
pub fn run(model: &mut Model) -> Result<usize, PassError> {
    let g = &model.graph;
    let c = Ctx::new(g);
    let mut candidates = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if n.op != "Add" || !super::is_onnx_domain(&n.domain) || n.outputs.len() != 1 {
            continue;
        }
        let found = c.either(n, true, |y, bias| {
            let mm = c.sole(y, "MatMul")?;
            let [a, b] = c.node(mm).inputs.as_slice() else { return None };
            let (w, c_t) = (c.init(b)?, c.init(bias)?);
            let shaped = w.dtype == DType::F32 && c_t.dtype == DType::F32 && w.dims.len() == 2 && c_t.dims == [w.dims[1]];
            shaped.then(|| (mm, a.as_str(), b.as_str(), bias.to_string()))
        });
        if let Some((mm, a, b, bias)) = found {
            candidates.push((i, mm, a, b, bias));
        }
    }
    if candidates.is_empty() {
        return Ok(0);
    }
    let types = shapes::infer(g)?;
    let mut remove = BTreeSet::new();
    let mut replace = BTreeMap::new();
    let mut names = BTreeSet::new();
    for (i, mm, a, b, bias) in candidates {
        if types.get(a).and_then(|v| v.shape.as_ref()).is_none_or(|s| s.len() != 2) {
            continue;
        }
        let last = &g.nodes[i];
        let name = fresh_node_name(g, &names, &last.name, "Gemm");
        names.insert(name.clone());
        remove.insert(mm);
        let attrs = BTreeMap::from([
            ("alpha".to_string(), Attr::Float(1.0)),
            ("beta".to_string(), Attr::Float(1.0)),
            ("transA".to_string(), Attr::Int(0)),
            ("transB".to_string(), Attr::Int(0)),
        ]);
        let node = Node { name, op: "Gemm".into(), domain: String::new(), inputs: vec![a.into(), b.into(), bias], outputs: last.outputs.clone(), attrs };
        replace.insert(i, node);
    }
    let fused = replace.len();
    splice(&mut model.graph, &remove, replace);
    Ok(fused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{Builder, Dim, Graph, Tensor, ValueInfo};

    fn linear(rank3: bool) -> Model {
        let mut dims = vec![Dim::Sym("batch".into()), Dim::Fixed(3)];
        if rank3 {
            dims.insert(1, Dim::Sym("seq".into()));
        }
        let mut out = dims.clone();
        *out.last_mut().unwrap() = Dim::Fixed(2);
        let mut g = Graph::default();
        g.inputs.push(ValueInfo { name: "x".into(), dtype: DType::F32, shape: Some(dims) });
        let mut b = Builder::new(&mut g);
        let w = b.init("w", Tensor::f32(&[3, 2], &[1.; 6]));
        let c = b.init("c", Tensor::f32(&[2], &[0.5, 0.25]));
        let y = b.op("fc", "MatMul", &["x", &w], &[]);
        let z = b.op("fc", "Add", &[&c, &y], &[]);
        g.outputs.push(ValueInfo { name: z, dtype: DType::F32, shape: Some(out) });
        Model { graph: g, opsets: BTreeMap::from([(String::new(), 17)]), ..Default::default() }
    }

    #[test]
    fn rewrites_rank_2_linear() {
        let mut m = linear(false);
        assert_eq!(run(&mut m).unwrap(), 1);
        let n = &m.graph.nodes;
        assert_eq!(n.len(), 1);
        assert_eq!((n[0].op.as_str(), &n[0].inputs[..]), ("Gemm", &["x".to_string(), "w".into(), "c".into()][..]));
        assert_eq!(n[0].outputs, [m.graph.outputs[0].name.clone()]);
        assert_eq!(run(&mut m).unwrap(), 0);
    }

    #[test]
    fn leaves_rank_3_linear() {
        let mut m = linear(true);
        let before = m.clone();
        assert_eq!(run(&mut m).unwrap(), 0);
        assert_eq!(m, before);
    }
}
