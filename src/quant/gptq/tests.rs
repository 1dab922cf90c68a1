use super::*;
use crate::quant::q4::{self, Q4Spec, ScaleRule};
use crate::quant::testdata::gauss;
use crate::rng::Rng;

/// `m` correlated inputs of dimension `k`: a shared factor plus noise, with
/// some columns much larger than others (as real activations have).
fn inputs(m: usize, k: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    let mut x = vec![0.0f32; m * k];
    for row in x.chunks_exact_mut(k) {
        let f = gauss(&mut r);
        for (c, v) in row.iter_mut().enumerate() {
            let amp = if c % 7 == 0 { 4.0 } else { 1.0 };
            *v = (amp * (0.8 * f + 0.6 * gauss(&mut r))) as f32;
        }
    }
    x
}

fn weights(n: usize, k: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..n * k).map(|_| (0.05 * gauss(&mut r)) as f32).collect()
}

/// `Σ ‖(W − Ŵ) x‖²` over the rows of `x`, in f64.
fn output_error(w: &[f32], wq: &[f32], n: usize, k: usize, x: &[f32]) -> f64 {
    let mut e = 0.0f64;
    for xr in x.chunks_exact(k) {
        for j in 0..n {
            let mut d = 0.0f64;
            for c in 0..k {
                d += f64::from(w[j * k + c] - wq[j * k + c]) * f64::from(xr[c]);
            }
            e += d * d;
        }
    }
    e
}

fn hessian(x: &[f32], k: usize) -> Hessian {
    let mut h = Hessian::new(k);
    for sample in x.chunks(64 * k) {
        h.add(sample, sample.len() / k);
    }
    h
}

const PLAIN: GptqParams = GptqParams { damp: 0.01, act_order: false };

#[test]
fn hessian_is_the_sum_of_outer_products() {
    let (m, k) = (300, 9);
    let x = inputs(m, k, 1);
    let h = hessian(&x, k);
    assert_eq!(h.rows(), m as u64);
    for i in 0..k {
        for j in 0..k {
            let want: f64 = x.chunks_exact(k).map(|r| f64::from(r[i]) * f64::from(r[j])).sum();
            let got = h.matrix()[i * k + j];
            assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0), "[{i},{j}] {got} vs {want}");
        }
    }
}

#[test]
fn uncorrelated_inputs_give_round_to_nearest() {
    // With H diagonal, U is diagonal: no error is propagated and every code
    // is the nearest one, exactly as the plain quantizer picks it.
    let (n, k) = (10, 64);
    let w = weights(n, k, 2);
    let mut h = Hessian::new(k);
    let mut eye = vec![0.0f32; k * k];
    for i in 0..k {
        eye[i * k + i] = 1.0 + (i % 3) as f32;
    }
    h.add(&eye, k);
    let spec = Q4Spec::mlc(32);
    let g = q4::quantize_gptq(&w, n, k, spec, &Factor::new(&h, PLAIN).unwrap()).unwrap();
    assert_eq!(g, q4::quantize_groups(&w, n, k, 32).unwrap());
}

#[test]
fn compensation_lowers_the_output_error() {
    let (n, k, m) = (24, 128, 1024);
    let w = weights(n, k, 3);
    let x = inputs(m, k, 4);
    let h = hessian(&x, k);
    for rule in [ScaleRule::MaxAbs, ScaleRule::MseSearch] {
        let spec = Q4Spec { group: 32, scale_rule: rule };
        let rtn = q4::dequantize(&q4::quantize_groups_with(&w, n, k, spec).unwrap());
        let e_rtn = output_error(&w, &rtn, n, k, &x);
        for act_order in [false, true] {
            let g = q4::dequantize(&q4::quantize_gptq(&w, n, k, spec, &Factor::new(&h, GptqParams { damp: 0.01, act_order }).unwrap()).unwrap());
            let e = output_error(&w, &g, n, k, &x);
            assert!(e < 0.75 * e_rtn, "{rule:?} act_order={act_order}: GPTQ {e} vs nearest {e_rtn}");
        }
    }
}

#[test]
fn same_bits_for_any_thread_count() {
    let (n, k, m) = (37, 64, 300);
    let w = weights(n, k, 5);
    let x = inputs(m, k, 6);
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let h = hessian(&x, k);
            q4::quantize_gptq(&w, n, k, Q4Spec::mlc(32), &Factor::new(&h, GptqParams { damp: 0.01, act_order: true }).unwrap()).unwrap()
        })
    };
    assert_eq!(run(1), run(3));
}

#[test]
fn dead_columns_are_rounded_as_zero() {
    let (n, k, m) = (4, 32, 100);
    let w = weights(n, k, 7);
    let mut x = inputs(m, k, 8);
    for row in x.chunks_exact_mut(k) {
        row[5] = 0.0;
    }
    let h = hessian(&x, k);
    let g = q4::dequantize(&q4::quantize_gptq(&w, n, k, Q4Spec::mlc(32), &Factor::new(&h, PLAIN).unwrap()).unwrap());
    assert!((0..n).all(|r| g[r * k + 5] == 0.0));
}

#[test]
fn refuses_bad_statistics() {
    let w = weights(2, 32, 9);
    let spec = Q4Spec::mlc(32);
    assert_eq!(Factor::new(&Hessian::new(32), PLAIN).unwrap_err(), GptqError::NoData);
    let f = Factor::new(&hessian(&inputs(10, 64, 1), 64), PLAIN).unwrap();
    assert!(matches!(q4::quantize_gptq(&w, 2, 32, spec, &f).unwrap_err(), q4::Q4GptqError::Gptq(GptqError::Dimension { expected: 32, found: 64 })));
    let h = hessian(&inputs(10, 32, 1), 32);
    assert!(matches!(Factor::new(&h, GptqParams { damp: f64::NAN, act_order: false }).unwrap_err(), GptqError::Damping(_)));
}
