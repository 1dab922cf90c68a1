//! Smoothing before quantization (SmoothQuant, Xiao et al. 2023): an exact
//! FP32 rewrite that moves per-channel magnitude between each weight
//! product's activation and its weight, so that *per-tensor* scales fit both.
//!
//! For a product `X · W` (`W` is `[K, N]`), input channel `j` gets a factor
//! `s_j = max|X_j|^α / max|W_j,:|^(1-α)`; the graph computes
//! `(X · diag(1/s)) · (diag(s) · W)`, which equals `X · W` up to rounding.
//! `max|X_j|` comes from the calibration text, run in the reference
//! evaluator. The `1/s` factor is a float `Mul` on the activation (before
//! its QuantizeLinear); `diag(s)` is folded into the stored weight.
//!
//! Activations and weights that meet in any product share one `s` (they
//! form a group): Q, K and V read one activation, and ALBERT's shared layer
//! reads twelve different activations with one weight, so the factor must
//! suit them all and is computed from the maxima over the whole group.
//! Without this step MiniLM's FFN output weights quantize per tensor with a
//! 20–40% relative error (one input row carries values 100× the rest).

use super::{QuantizeError, Selection};
use crate::graph::{Model, Node, Tensor};
use std::collections::BTreeMap;

/// Limits of a smoothing factor.
const MIN_FACTOR: f32 = 1e-4;
const MAX_FACTOR: f32 = 1e4;

/// Per-input-channel maximum |x| of each activation over the calibration text.
fn channel_maxima(m: &Model, acts: &[&str], calibration: &[Vec<u32>]) -> Result<BTreeMap<String, Vec<f32>>, QuantizeError> {
    let mut max: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    super::calibrate::for_each_channel_row(m, acts, calibration, &mut |name, row| {
        let e = max.entry(name.to_string()).or_insert_with(|| vec![0.0; row.len()]);
        if e.len() == row.len() {
            for (m, x) in e.iter_mut().zip(row) {
                *m = m.max(x.abs());
            }
        }
    })?;
    Ok(max)
}

/// Smooths `fp32` with strength `alpha`; returns the smoothed model (its
/// products now read `<activation>.smooth`) and the activations smoothed.
pub(super) fn smooth(fp32: &Model, sel: &Selection, calibration: &[Vec<u32>], alpha: f32) -> Result<(Model, Vec<String>), QuantizeError> {
    let g = &fp32.graph;
    let products = sel.weight_products(fp32);
    // Groups: union-find over activation and weight names.
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    fn find<'a>(p: &mut BTreeMap<&'a str, &'a str>, x: &'a str) -> &'a str {
        let mut r = x;
        while let Some(&q) = p.get(r).filter(|&&q| q != r) {
            r = q;
        }
        p.insert(x, r);
        r
    }
    for &(_, a, w) in &products {
        parent.entry(a).or_insert(a);
        parent.entry(w).or_insert(w);
        let (ra, rw) = (find(&mut parent, a), find(&mut parent, w));
        if ra != rw {
            parent.insert(ra.max(rw), ra.min(rw));
        }
    }
    let acts: Vec<&str> = {
        let mut v: Vec<&str> = products.iter().map(|p| p.1).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let amax = channel_maxima(fp32, &acts, calibration)?;
    // Per group: maxima over its activations and its weights' rows.
    let mut group_a: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
    let mut group_w: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
    let mut weights: BTreeMap<&str, (Vec<i64>, Vec<f32>)> = BTreeMap::new();
    let merge = |dst: &mut Vec<f32>, src: &[f32], what: &str| -> Result<(), QuantizeError> {
        if dst.is_empty() {
            dst.resize(src.len(), 0.0);
        }
        if dst.len() != src.len() {
            return Err(QuantizeError::Graph { node: what.to_string(), why: format!("{} channels where its group has {}", src.len(), dst.len()) });
        }
        for (d, s) in dst.iter_mut().zip(src) {
            *d = d.max(*s);
        }
        Ok(())
    };
    for &a in &acts {
        let root = find(&mut parent, a);
        let m = amax.get(a).ok_or_else(|| QuantizeError::Graph { node: a.into(), why: "not computed on the calibration text".into() })?;
        merge(group_a.entry(root).or_default(), m, a)?;
    }
    for &(_, _, w) in &products {
        if weights.contains_key(w) {
            continue;
        }
        let t = &g.initializers[w];
        let v = t.to_f32().expect("selected as F32");
        let (k, n) = (t.dims[0] as usize, t.dims[1] as usize);
        let rows: Vec<f32> = (0..k).map(|r| v[r * n..(r + 1) * n].iter().fold(0.0f32, |m, x| m.max(x.abs()))).collect();
        let root = find(&mut parent, w);
        merge(group_w.entry(root).or_default(), &rows, w)?;
        weights.insert(w, (t.dims.clone(), v));
    }
    let mut factor: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
    for (root, a) in &group_a {
        let w = group_w.get(root).expect("every group has a weight");
        if a.len() != w.len() {
            return Err(QuantizeError::Graph { node: root.to_string(), why: format!("activation has {} channels, weight {} rows", a.len(), w.len()) });
        }
        let s: Vec<f32> = a
            .iter()
            .zip(w)
            .map(|(&am, &wm)| {
                // libm, not f64::powf (the C library's pow, which differs across platforms).
                let s = (libm::pow(f64::from(am), f64::from(alpha)) / libm::pow(f64::from(wm), f64::from(1.0 - alpha))) as f32;
                if s.is_finite() && s > 0.0 {
                    s.clamp(MIN_FACTOR, MAX_FACTOR)
                } else {
                    1.0
                }
            })
            .collect();
        factor.insert(root, s);
    }

    // Rewrite: scale weight rows, insert `Mul(a, 1/s)` after each activation's producer.
    let mut m = fp32.clone();
    for (w, (dims, mut v)) in weights {
        let s = &factor[find(&mut parent, w)];
        let n = dims[1] as usize;
        for (r, row) in v.chunks_exact_mut(n).enumerate() {
            for x in row {
                *x *= s[r];
            }
        }
        m.graph.initializers.insert(w.to_string(), Tensor::f32(&dims, &v));
    }
    let mut after: BTreeMap<&str, Node> = BTreeMap::new();
    for &a in &acts {
        let s = &factor[find(&mut parent, a)];
        let inv: Vec<f32> = s.iter().map(|x| 1.0 / x).collect();
        let (scale, out) = (format!("{a}.smooth_scale"), format!("{a}.smooth"));
        m.graph.initializers.insert(scale.clone(), Tensor::f32(&[inv.len() as i64], &inv));
        let node = Node {
            name: format!("quant/{a}/Mul_smooth"),
            op: "Mul".into(),
            domain: String::new(),
            inputs: vec![a.to_string(), scale],
            outputs: vec![out],
            attrs: Default::default(),
        };
        after.insert(a, node);
    }
    let mut nodes = Vec::with_capacity(g.nodes.len() + after.len());
    for a in &acts {
        if g.producer(a).is_none() {
            nodes.push(after.remove(a).expect("inserted above"));
        }
    }
    for (i, n) in g.nodes.iter().enumerate() {
        let mut n = n.clone();
        if products.iter().any(|p| p.0 == i) {
            n.inputs[0] = format!("{}.smooth", n.inputs[0]);
        }
        let outs = n.outputs.clone();
        nodes.push(n);
        for o in outs {
            if let Some(mul) = after.remove(o.as_str()) {
                nodes.push(mul);
            }
        }
    }
    m.graph.nodes = nodes;
    m.graph.value_info.clear();
    Ok((m, acts.iter().map(|a| a.to_string()).collect()))
}
