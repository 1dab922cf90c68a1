//! Bias correction (Nagel et al. 2019, §4.2, with empirical means): int8
//! weights shift each product's output by `E[x] · (Ŵ − W)` on average;
//! subtracting that from the product's bias removes the systematic part of
//! the weight quantization error.
//!
//! `E[x]` is the per-channel mean of the product's input over every token
//! of the calibration text (reference evaluator). A bias read by several
//! products (ALBERT's shared layer) gets the token-weighted mean of their
//! corrections. The bias is the Gemm's `C`, or the initializer a MatMul's
//! only consumer `Add`s to it; a product without one is left alone.

use super::{QuantizeError, Selection};
use crate::graph::{DType, Model, Tensor};
use crate::quant::int8;
use std::collections::BTreeMap;

/// Per-channel sums and token counts of each activation over the calibration text.
fn channel_sums(m: &Model, acts: &[&str], calibration: &[Vec<u32>]) -> Result<BTreeMap<String, (Vec<f64>, usize)>, QuantizeError> {
    let mut sums: BTreeMap<String, (Vec<f64>, usize)> = BTreeMap::new();
    super::calibrate::for_each_channel_row(m, acts, calibration, &mut |name, row| {
        let e = sums.entry(name.to_string()).or_insert_with(|| (vec![0.0; row.len()], 0));
        if e.0.len() == row.len() {
            for (s, x) in e.0.iter_mut().zip(row) {
                *s += f64::from(*x);
            }
            e.1 += 1;
        }
    })?;
    Ok(sums)
}

/// The bias initializer added to product `i`'s output, if any.
fn bias_of(m: &Model, i: usize, n_out: usize) -> Option<String> {
    let g = &m.graph;
    let n = &g.nodes[i];
    let is_bias = |name: &str| g.initializers.get(name).is_some_and(|t| t.dtype == DType::F32 && t.dims == [n_out as i64]);
    if n.op == "Gemm" {
        return n.inputs.get(2).filter(|b| is_bias(b)).cloned();
    }
    let users = g.consumers(&n.outputs[0]);
    let [u] = users[..] else { return None };
    let add = &g.nodes[u];
    if add.op != "Add" || add.inputs.len() != 2 {
        return None;
    }
    let other = if add.inputs[0] == n.outputs[0] { &add.inputs[1] } else { &add.inputs[0] };
    is_bias(other).then(|| other.clone())
}

/// Corrects the biases of `m`'s weight products; returns the model and the biases changed.
pub(super) fn correct(m: &Model, sel: &Selection, calibration: &[Vec<u32>], per_column: bool) -> Result<(Model, Vec<String>), QuantizeError> {
    let g = &m.graph;
    let products = sel.weight_products(m);
    let mut acts: Vec<&str> = products.iter().map(|p| p.1).collect();
    acts.sort_unstable();
    acts.dedup();
    let sums = channel_sums(m, &acts, calibration)?;
    // Weight quantization error ΔW = Ŵ − W, once per weight.
    let mut delta_w: BTreeMap<&str, Vec<f32>> = BTreeMap::new();
    // bias → (Σ tokens · correction, Σ tokens)
    let mut corrections: BTreeMap<String, (Vec<f64>, usize)> = BTreeMap::new();
    for &(i, a, w) in &products {
        let t = &g.initializers[w];
        let (k, n) = (t.dims[0] as usize, t.dims[1] as usize);
        let Some(bias) = bias_of(m, i, n) else { continue };
        let Some((sum, tokens)) = sums.get(a).filter(|s| s.0.len() == k && s.1 > 0) else { continue };
        if !delta_w.contains_key(w) {
            let v = t.to_f32().expect("selected as F32");
            let shape: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
            let deq = int8::quantize_int8_weight(w, &v, &shape, per_column)?.dequantize();
            delta_w.insert(w, deq.iter().zip(&v).map(|(q, x)| q - x).collect());
        }
        let dw = &delta_w[w];
        // Σ_k Σ_tokens x_k · ΔW[k, :] = Σ_k sum_k · ΔW[k, :]
        let e = corrections.entry(bias).or_insert_with(|| (vec![0.0; n], 0));
        for (r, s) in sum.iter().enumerate() {
            for (c, d) in e.0.iter_mut().zip(&dw[r * n..(r + 1) * n]) {
                *c += s * f64::from(*d);
            }
        }
        e.1 += tokens;
    }
    let mut out = m.clone();
    let mut changed = Vec::new();
    for (bias, (c, tokens)) in corrections {
        let b = out.graph.initializers[&bias].to_f32().expect("F32 bias");
        let fixed: Vec<f32> = b.iter().zip(&c).map(|(x, d)| (f64::from(*x) - d / tokens as f64) as f32).collect();
        let dims = out.graph.initializers[&bias].dims.clone();
        out.graph.initializers.insert(bias.clone(), Tensor::f32(&dims, &fixed));
        changed.push(bias);
    }
    Ok((out, changed))
}
