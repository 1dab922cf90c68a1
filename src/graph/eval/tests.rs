//! One-op tests on small hand-computed cases. Every case runs twice: inputs
//! fed at run time, and inputs as initializers (so the node is evaluated as
//! a constant in `Evaluator::new`); the two must agree bit for bit.
//!
//! The QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear and
//! MatMulInteger expectations come from onnxruntime 1.31.1 (CPU, x86-64),
//! printed by `tests/oracles/eval_int8_ops.py` (one-node opset-17 models,
//! graph optimizations off; random inputs from the same [`lcg`]).

use super::*;
use crate::graph::{Graph, Node, Tensor};

/// `n` floats in `[lo, hi)` from a 64-bit LCG (the oracle script's generator).
pub(super) fn lcg(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * (hi - lo) + lo
        })
        .collect()
}

/// dtype, dims and the bits of every element.
pub(super) fn bits(v: &Value) -> (DType, Vec<usize>, Vec<u64>) {
    let b: Vec<u64> = match v {
        Value::F32(a) => a.data.iter().map(|x| x.to_bits() as u64).collect(),
        Value::I64(a) => a.data.iter().map(|&x| x as u64).collect(),
        Value::I32(a) => a.data.iter().map(|&x| x as u64).collect(),
        Value::I8(a) => a.data.iter().map(|&x| x as u64).collect(),
        Value::U8(a) => a.data.iter().map(|&x| x as u64).collect(),
    };
    (v.dtype(), v.dims().to_vec(), b)
}

pub(super) fn fixed(v: &Value) -> ValueInfo {
    ValueInfo { name: String::new(), dtype: v.dtype(), shape: Some(v.dims().iter().map(|&d| Dim::Fixed(d as i64)).collect()) }
}

/// A model of one node; inputs `None` are omitted (`""`), those at
/// positions in `consts` become initializers, the rest graph inputs.
fn one_node(domain: &str, op: &str, inputs: &[Option<Value>], consts: &[usize], attrs: &[(&str, Attr)], outputs: usize) -> Model {
    let mut g = Graph { name: "one".into(), ..Default::default() };
    let mut names = Vec::new();
    for (k, v) in inputs.iter().enumerate() {
        let Some(v) = v else {
            names.push(String::new());
            continue;
        };
        let name = format!("x{k}");
        if consts.contains(&k) {
            g.initializers.insert(name.clone(), v.to_tensor());
        } else {
            g.inputs.push(ValueInfo { name: name.clone(), ..fixed(v) });
        }
        names.push(name);
    }
    let outs: Vec<String> = (0..outputs).map(|k| format!("y{k}")).collect();
    g.outputs = outs.iter().map(|o| ValueInfo { name: o.clone(), dtype: DType::F32, shape: None }).collect();
    g.nodes.push(Node {
        name: format!("n/{op}"),
        op: op.into(),
        domain: domain.into(),
        inputs: names,
        outputs: outs,
        attrs: attrs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
    });
    Model { graph: g, opsets: BTreeMap::from([(String::new(), 17)]), metadata: BTreeMap::new() }
}

/// Runs one node in domain `domain` with `outputs` outputs, fed and folded.
pub(super) fn eval_in(domain: &str, op: &str, inputs: &[Option<Value>], attrs: &[(&str, Attr)], outputs: usize) -> Result<Vec<Value>, EvalError> {
    let run_model = |consts: &[usize]| -> Result<Vec<Value>, EvalError> {
        let m = one_node(domain, op, inputs, consts, attrs, outputs);
        let feeds: Vec<(String, Value)> =
            inputs.iter().enumerate().filter(|(k, v)| v.is_some() && !consts.contains(k)).map(|(k, v)| (format!("x{k}"), v.clone().unwrap())).collect();
        let feeds: Vec<(&str, Value)> = feeds.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
        let out = run(&m, &feeds, &mut |_, _| {})?;
        Ok((0..outputs).map(|k| out[&format!("y{k}")].clone()).collect())
    };
    let fed = run_model(&[]);
    let folded = run_model(&(0..inputs.len()).collect::<Vec<_>>());
    match (&fed, &folded) {
        (Ok(a), Ok(b)) => assert_eq!(a.iter().map(bits).collect::<Vec<_>>(), b.iter().map(bits).collect::<Vec<_>>(), "{op}: fed and folded differ"),
        (Err(a), Err(b)) => assert_eq!(a, b, "{op}: fed and folded fail differently"),
        _ => panic!("{op}: fed {fed:?} but folded {folded:?}"),
    }
    fed
}

/// Runs one ai.onnx node with one output.
pub(super) fn eval1(op: &str, inputs: &[Option<Value>], attrs: &[(&str, Attr)]) -> Result<Value, EvalError> {
    eval_in("", op, inputs, attrs, 1).map(|mut v| v.remove(0))
}

pub(super) fn f32s(v: &Value) -> &[f32] {
    &v.as_f32().expect("f32").data
}

fn fv(dims: &[usize], data: &[f32]) -> Option<Value> {
    Some(Value::f32(dims, data.to_vec()))
}
fn iv(dims: &[usize], data: &[i64]) -> Option<Value> {
    Some(Value::i64(dims, data.to_vec()))
}
fn ints(v: &[i64]) -> Attr {
    Attr::Ints(v.to_vec())
}

#[test]
fn binary_ops_broadcast_like_numpy() {
    let y = eval1("Add", &[fv(&[2, 3], &[1., 2., 3., 4., 5., 6.]), fv(&[3], &[10., 20., 30.])], &[]).unwrap();
    assert_eq!((y.dims(), f32s(&y)), (&[2, 3][..], &[11., 22., 33., 14., 25., 36.][..]));
    let y = eval1("Sub", &[fv(&[2, 1], &[1., 2.]), fv(&[1, 3], &[1., 2., 3.])], &[]).unwrap();
    assert_eq!((y.dims(), f32s(&y)), (&[2, 3][..], &[0., -1., -2., 1., 0., -1.][..]));
    let y = eval1("Mul", &[fv(&[], &[0.5]), fv(&[2, 1, 2], &[1., 2., 3., 4.])], &[]).unwrap();
    assert_eq!((y.dims(), f32s(&y)), (&[2, 1, 2][..], &[0.5, 1., 1.5, 2.][..]));
    let y = eval1("Div", &[fv(&[2, 2], &[1., 2., 3., 4.]), fv(&[2, 1], &[2., 4.])], &[]).unwrap();
    assert_eq!(f32s(&y), [0.5, 1., 0.75, 1.]);
    let y = eval1("Max", &[fv(&[3], &[1., f32::NAN, -2.]), fv(&[], &[0.]), fv(&[1], &[-1.])], &[]).unwrap();
    assert_eq!(f32s(&y)[0], 1.);
    assert!(f32s(&y)[1].is_nan());
    assert_eq!(f32s(&y)[2], 0.);
    let y = eval1("Max", &[fv(&[2], &[3., -3.])], &[]).unwrap();
    assert_eq!(f32s(&y), [3., -3.]);
    let y = eval1("Add", &[iv(&[2], &[1, 2]), iv(&[], &[40])], &[]).unwrap();
    assert_eq!(y.as_i64().unwrap().data, [41, 42]);

    let e = eval1("Add", &[fv(&[2, 3], &[0.; 6]), fv(&[2], &[0.; 2])], &[]).unwrap_err();
    assert_eq!(e, EvalError::ShapeMismatch { node: "n/Add".into(), detail: "[2, 3] and `x1` [2] do not broadcast".into() });
    let e = eval1("Div", &[iv(&[1], &[4]), iv(&[1], &[2])], &[]).unwrap_err();
    assert!(matches!(e, EvalError::WrongDType { index: 0, got: DType::I64, .. }), "{e}");
    let e = eval1("Sub", &[fv(&[1], &[4.]), iv(&[1], &[2])], &[]).unwrap_err();
    assert!(matches!(e, EvalError::WrongDType { index: 1, got: DType::I64, .. }), "{e}");
}

#[test]
fn unary_ops_use_libm() {
    let x = [-1.5f32, -0.25, 0.0, 0.7, 3.0];
    type Case = (&'static str, fn(f32) -> f32);
    let cases: [Case; 4] = [("Erf", libm::erff), ("Tanh", libm::tanhf), ("Exp", libm::expf), ("Sqrt", f32::sqrt)];
    for (op, f) in cases {
        let y = eval1(op, &[fv(&[5], &x)], &[]).unwrap();
        let want: Vec<u32> = x.iter().map(|&v| f(v).to_bits()).collect();
        assert_eq!(f32s(&y).iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want, "{op}");
    }
    assert_eq!(f32s(&eval1("Sqrt", &[fv(&[2], &[4., 2.25])], &[]).unwrap()), [2., 1.5]);
    let e = eval1("Erf", &[iv(&[1], &[1])], &[]).unwrap_err();
    assert_eq!(e, EvalError::WrongDType { node: "n/Erf".into(), index: 0, value: "x0".into(), expected: "F32".into(), got: DType::I64 });
}

#[test]
fn matmul_2d_batched_and_rank_1() {
    let y = eval1("MatMul", &[fv(&[2, 2], &[1., 2., 3., 4.]), fv(&[2, 2], &[5., 6., 7., 8.])], &[]).unwrap();
    assert_eq!((y.dims(), f32s(&y)), (&[2, 2][..], &[19., 22., 43., 50.][..]));
    // [2] · [2, 3] → [3]; [2, 3] · [3] → [2].
    let y = eval1("MatMul", &[fv(&[2], &[1., 2.]), fv(&[2, 3], &[1., 2., 3., 4., 5., 6.])], &[]).unwrap();
    assert_eq!((y.dims(), f32s(&y)), (&[3][..], &[9., 12., 15.][..]));
    let y = eval1("MatMul", &[fv(&[2, 3], &[1., 2., 3., 4., 5., 6.]), fv(&[3], &[1., 0., -1.])], &[]).unwrap();
    assert_eq!((y.dims(), f32s(&y)), (&[2][..], &[-2., -2.][..]));
    // [2, 1, 2, 3] · [3, 3, 2] → [2, 3, 2, 2], against explicit loops.
    let (a, b) = (lcg(12, 1, -1., 1.), lcg(18, 2, -1., 1.));
    let y = eval1("MatMul", &[fv(&[2, 1, 2, 3], &a), fv(&[3, 3, 2], &b)], &[]).unwrap();
    assert_eq!(y.dims(), [2, 3, 2, 2]);
    let mut want = Vec::new();
    for i in 0..2 {
        for j in 0..3 {
            for r in 0..2 {
                for c in 0..2 {
                    let mut acc = 0.0f32;
                    for k in 0..3 {
                        acc += a[i * 6 + r * 3 + k] * b[j * 6 + k * 2 + c];
                    }
                    want.push(acc);
                }
            }
        }
    }
    assert_eq!(f32s(&y), want);
    let e = eval1("MatMul", &[fv(&[2, 3], &[0.; 6]), fv(&[2, 3], &[0.; 6])], &[]).unwrap_err();
    assert_eq!(e, EvalError::ShapeMismatch { node: "n/MatMul".into(), detail: "`x0` [2, 3] and `x1` [2, 3] do not multiply".into() });
}

#[test]
fn constant_weights_go_through_the_packed_kernel_with_the_same_bits() {
    let (m, k, n) = (3 * 7, 33, 17);
    let (a, b) = (lcg(m * k, 3, -1., 1.), lcg(k * n, 4, -1., 1.));
    let x = Value::f32(&[3, 7, k], a.clone());
    let w = Value::f32(&[k, n], b.clone());
    let packed = one_node("", "MatMul", &[Some(x.clone()), Some(w.clone())], &[1], &[], 1);
    let ev = Evaluator::new(&packed).unwrap();
    assert_eq!(ev.consts.packed.len(), 1, "the constant weight is packed");
    let got = ev.run(&[("x0", x.clone())], &mut |_, _| {}).unwrap().remove("y0").unwrap();
    let plain = one_node("", "MatMul", &[Some(x.clone()), Some(w.clone())], &[], &[], 1);
    let want = run(&plain, &[("x0", x), ("x1", w)], &mut |_, _| {}).unwrap().remove("y0").unwrap();
    assert_eq!(got.dims(), [3, 7, n]);
    assert_eq!(bits(&got), bits(&want));
    // The documented order: acc = 0; acc += a·b over k.
    let y = f32s(&got);
    for i in [0, 5, m - 1] {
        for j in [0, 9, n - 1] {
            let mut acc = 0.0f32;
            for kk in 0..k {
                acc += a[i * k + kk] * b[kk * n + j];
            }
            assert_eq!(y[i * n + j].to_bits(), acc.to_bits());
        }
    }
}

#[test]
fn gemm_attributes_and_bias_shapes() {
    let a = fv(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let b = fv(&[3, 2], &[1., 0., 0., 1., 1., 1.]);
    // A·B = [[4, 5], [10, 11]].
    let y = eval1("Gemm", &[a.clone(), b.clone(), fv(&[2], &[0.5, -1.])], &[]).unwrap();
    assert_eq!((y.dims(), f32s(&y)), (&[2, 2][..], &[4.5, 4., 10.5, 10.][..]));
    let y = eval1("Gemm", &[a.clone(), b.clone(), fv(&[2, 1], &[1., 2.])], &[("alpha", Attr::Float(2.)), ("beta", Attr::Float(0.5))]).unwrap();
    assert_eq!(f32s(&y), [8.5, 10.5, 21., 23.]);
    let y = eval1("Gemm", &[a.clone(), b.clone(), fv(&[], &[1.])], &[]).unwrap();
    assert_eq!(f32s(&y), [5., 6., 11., 12.]);
    let y = eval1("Gemm", &[a.clone(), b.clone(), None], &[("alpha", Attr::Float(-1.))]).unwrap();
    assert_eq!(f32s(&y), [-4., -5., -10., -11.]);
    // Aᵀ given as [3, 2] and Bᵀ as [2, 3].
    let at = fv(&[3, 2], &[1., 4., 2., 5., 3., 6.]);
    let bt = fv(&[2, 3], &[1., 0., 1., 0., 1., 1.]);
    let y = eval1("Gemm", &[at, bt, None], &[("transA", Attr::Int(1)), ("transB", Attr::Int(1))]).unwrap();
    assert_eq!(f32s(&y), [4., 5., 10., 11.]);
    let e = eval1("Gemm", &[a.clone(), b.clone(), fv(&[3], &[0.; 3])], &[]).unwrap_err();
    assert!(matches!(e, EvalError::ShapeMismatch { .. }), "{e}");
    let e = eval1("Gemm", &[a, b, None], &[("alpha", Attr::Int(1))]).unwrap_err();
    assert_eq!(e, EvalError::BadAttr { node: "n/Gemm".into(), attr: "alpha".into(), reason: "not a float".into() });

    // Packed B, transB 0 and 1, against fed B.
    let (m, k, n) = (50, 19, 23);
    let x = Value::f32(&[m, k], lcg(m * k, 5, -1., 1.));
    let c = Value::f32(&[n], lcg(n, 6, -1., 1.));
    for tb in [0, 1] {
        let dims = if tb == 1 { [n, k] } else { [k, n] };
        let w = Value::f32(&dims, lcg(k * n, 7, -1., 1.));
        let attrs = [("transB", Attr::Int(tb))];
        let inputs = [Some(x.clone()), Some(w.clone()), Some(c.clone())];
        let ev_model = one_node("", "Gemm", &inputs, &[1, 2], &attrs, 1);
        let ev = Evaluator::new(&ev_model).unwrap();
        assert_eq!(ev.consts.packed.keys().map(|(_, nk)| *nk).collect::<Vec<_>>(), [tb == 1]);
        let got = ev.run(&[("x0", x.clone())], &mut |_, _| {}).unwrap().remove("y0").unwrap();
        let want = eval1("Gemm", &inputs, &attrs).unwrap();
        assert_eq!(bits(&got), bits(&want), "transB {tb}");
    }
}

#[test]
fn transpose_reshape_unsqueeze_squeeze() {
    let x = fv(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let y = eval1("Transpose", std::slice::from_ref(&x), &[]).unwrap();
    assert_eq!((y.dims(), f32s(&y)), (&[3, 2][..], &[1., 4., 2., 5., 3., 6.][..]));
    let x3 = fv(&[2, 2, 3], &(0..12).map(|v| v as f32).collect::<Vec<_>>());
    let y = eval1("Transpose", std::slice::from_ref(&x3), &[("perm", ints(&[1, 2, 0]))]).unwrap();
    assert_eq!(y.dims(), [2, 3, 2]);
    assert_eq!(f32s(&y), [0., 6., 1., 7., 2., 8., 3., 9., 4., 10., 5., 11.]);
    let e = eval1("Transpose", std::slice::from_ref(&x), &[("perm", ints(&[0, 0]))]).unwrap_err();
    assert!(matches!(&e, EvalError::BadAttr { attr, .. } if attr == "perm"), "{e}");

    let y = eval1("Reshape", &[x3.clone(), iv(&[3], &[0, -1, 2])], &[]).unwrap();
    assert_eq!((y.dims(), f32s(&y)[11]), (&[2, 3, 2][..], 11.));
    let y = eval1("Reshape", &[x3.clone(), iv(&[2], &[-1, 4])], &[]).unwrap();
    assert_eq!(y.dims(), [3, 4]);
    let e = eval1("Reshape", &[x3.clone(), iv(&[2], &[5, -1])], &[]).unwrap_err();
    assert_eq!(e, EvalError::ShapeMismatch { node: "n/Reshape".into(), detail: "`x0` [2, 2, 3] cannot be reshaped to [5, -1]".into() });

    let y = eval1("Unsqueeze", &[x.clone(), iv(&[2], &[1, -1])], &[]).unwrap();
    assert_eq!(y.dims(), [2, 1, 3, 1]);
    let y = eval1("Unsqueeze", std::slice::from_ref(&x), &[("axes", ints(&[0]))]).unwrap();
    assert_eq!(y.dims(), [1, 2, 3]);
    let e = eval1("Unsqueeze", &[x.clone(), iv(&[2], &[1, 1])], &[]).unwrap_err();
    assert!(matches!(&e, EvalError::BadAttr { attr, .. } if attr == "axes"), "{e}");
    let one = fv(&[1, 3, 1], &[1., 2., 3.]);
    assert_eq!(eval1("Squeeze", std::slice::from_ref(&one), &[]).unwrap().dims(), [3]);
    assert_eq!(eval1("Squeeze", &[one.clone(), iv(&[1], &[-1])], &[]).unwrap().dims(), [1, 3]);
    assert!(matches!(eval1("Squeeze", &[one, iv(&[1], &[1])], &[]), Err(EvalError::ShapeMismatch { .. })));
    assert_eq!(bits(&eval1("Identity", std::slice::from_ref(&x), &[]).unwrap()), bits(x.as_ref().unwrap()));
}

#[test]
fn reductions_sum_in_row_major_order() {
    // [2, 3, 2]
    let x = fv(&[2, 3, 2], &[1., 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.]);
    let y = eval1("ReduceMean", std::slice::from_ref(&x), &[("axes", ints(&[-1])), ("keepdims", Attr::Int(1))]).unwrap();
    assert_eq!((y.dims(), f32s(&y)), (&[2, 3, 1][..], &[1.5, 3.5, 5.5, 7.5, 9.5, 11.5][..]));
    let y = eval1("ReduceSum", &[x.clone(), iv(&[1], &[1])], &[("keepdims", Attr::Int(0))]).unwrap();
    assert_eq!((y.dims(), f32s(&y)), (&[2, 2][..], &[9., 12., 27., 30.][..]));
    let y = eval1("ReduceSum", &[x.clone(), iv(&[2], &[0, 2])], &[]).unwrap();
    assert_eq!((y.dims(), f32s(&y)), (&[1, 3, 1][..], &[18., 26., 34.][..]));
    let y = eval1("ReduceMean", std::slice::from_ref(&x), &[("keepdims", Attr::Int(0))]).unwrap();
    assert_eq!((y.dims(), f32s(&y)), (&[][..], &[6.5][..]));
    let y = eval1("ReduceSum", &[x.clone(), iv(&[0], &[])], &[("noop_with_empty_axes", Attr::Int(1))]).unwrap();
    assert_eq!(bits(&y), bits(x.as_ref().unwrap()));
    // Sequential order is visible in f32: (1e8 + 1) + (-1e8) = 0, not 1.
    let y = eval1("ReduceSum", &[fv(&[3], &[1e8, 1., -1e8]), iv(&[1], &[0])], &[]).unwrap();
    assert_eq!(f32s(&y), [0.]);
    let e = eval1("ReduceMean", &[x], &[("axes", ints(&[3]))]).unwrap_err();
    assert!(matches!(&e, EvalError::BadAttr { attr, .. } if attr == "axes"), "{e}");
}

#[test]
fn softmax_layernorm_and_gelu_use_the_encoder_kernels() {
    let x = lcg(24, 8, -3., 3.);
    let y = eval1("Softmax", &[fv(&[2, 3, 4], &x)], &[("axis", Attr::Int(-1))]).unwrap();
    let mut want = x.clone();
    want.chunks_mut(4).for_each(crate::kernels::softmax_in_place);
    assert_eq!(f32s(&y).iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    let y = eval1("Softmax", &[fv(&[3], &[1., 2., 3.])], &[]).unwrap();
    let e: Vec<f32> = [-2f32, -1., 0.].iter().map(|&v| libm::expf(v)).collect();
    let s = e[0] + e[1] + e[2];
    assert_eq!(f32s(&y), [e[0] / s, e[1] / s, e[2] / s]);
    let e = eval1("Softmax", &[fv(&[2, 3, 4], &x)], &[("axis", Attr::Int(1))]).unwrap_err();
    assert!(matches!(e, EvalError::Unsupported { .. }), "{e}");

    let y = eval1("LayerNormalization", &[fv(&[1, 4], &[1., 2., 3., 4.]), fv(&[4], &[1.; 4]), None], &[("epsilon", Attr::Float(0.))]).unwrap();
    // mean 2.5, variance 1.25.
    let sd = 1.25f32.sqrt();
    assert_eq!(f32s(&y), [-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd]);
    let (g, b) = (lcg(4, 9, 0.5, 1.5), lcg(4, 10, -1., 1.));
    let y =
        eval1("LayerNormalization", &[fv(&[2, 3, 4], &x), fv(&[4], &g), fv(&[4], &b)], &[("axis", Attr::Int(-1)), ("epsilon", Attr::Float(1e-12))]).unwrap();
    let mut want = x.clone();
    want.chunks_mut(4).for_each(|r| crate::kernels::layer_norm_in_place(r, &g, &b, 1e-12));
    assert_eq!(f32s(&y).iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    let e = eval1("LayerNormalization", &[fv(&[2, 3, 4], &x), fv(&[3], &[1.; 3])], &[]).unwrap_err();
    assert!(matches!(e, EvalError::ShapeMismatch { .. }), "{e}");
    let e = eval_in("", "LayerNormalization", &[fv(&[2, 3, 4], &x), fv(&[4], &g)], &[], 2).unwrap_err();
    assert_eq!(e, EvalError::Unsupported { node: "n/LayerNormalization".into(), what: "output 1 of LayerNormalization".into() });

    let y = eval_in(MS_DOMAIN, "Gelu", &[fv(&[24], &x)], &[], 1).unwrap();
    assert!(f32s(&y[0]).iter().zip(&x).all(|(y, &x)| y.to_bits() == crate::kernels::gelu_erf(x).to_bits()));
    let y = eval_in(MS_DOMAIN, "FastGelu", &[fv(&[6, 4], &x)], &[], 1).unwrap();
    assert!(f32s(&y[0]).iter().zip(&x).all(|(y, &x)| y.to_bits() == crate::kernels::gelu_tanh(x).to_bits()));
    let y = eval_in(MS_DOMAIN, "FastGelu", &[fv(&[6, 4], &x), fv(&[4], &b)], &[], 1).unwrap();
    assert!(f32s(&y[0]).iter().enumerate().all(|(i, y)| y.to_bits() == crate::kernels::gelu_tanh(x[i] + b[i % 4]).to_bits()));
    let e = eval_in(MS_DOMAIN, "BiasGelu", &[fv(&[1], &[0.])], &[], 1).unwrap_err();
    assert_eq!(e, EvalError::UnknownOp { node: "n/BiasGelu".into(), op: "com.microsoft.BiasGelu".into() });
}

#[test]
fn cast_constant_identity_and_shape() {
    let y = eval1("Cast", &[iv(&[3], &[1, -2, (1 << 24) + 1])], &[("to", Attr::Int(1))]).unwrap();
    assert_eq!(f32s(&y), [1., -2., 16_777_216.]);
    let y = eval1("Cast", &[Some(Value::u8(&[2], vec![0, 255]))], &[("to", Attr::Int(1))]).unwrap();
    assert_eq!(f32s(&y), [0., 255.]);
    let y = eval1("Cast", &[Some(Value::i32(&[2], vec![-7, 9]))], &[("to", Attr::Int(7))]).unwrap();
    assert_eq!(y.as_i64().unwrap().data, [-7, 9]);
    let y = eval1("Cast", &[fv(&[1], &[0.1])], &[("to", Attr::Int(1))]).unwrap();
    assert_eq!(f32s(&y), [0.1]);
    let e = eval1("Cast", &[fv(&[1], &[0.1])], &[("to", Attr::Int(7))]).unwrap_err();
    assert!(matches!(e, EvalError::Unsupported { .. }), "{e}");
    let e = eval1("Cast", &[fv(&[1], &[0.1])], &[("to", Attr::Int(10))]).unwrap_err();
    assert!(matches!(&e, EvalError::BadAttr { attr, .. } if attr == "to"), "{e}");
    let e = eval1("Cast", &[fv(&[1], &[0.1])], &[]).unwrap_err();
    assert_eq!(e, EvalError::BadAttr { node: "n/Cast".into(), attr: "to".into(), reason: "missing".into() });

    let y = eval1("Constant", &[], &[("value", Attr::Tensor(Tensor::i64(&[2], &[3, -4])))]).unwrap();
    assert_eq!(y.as_i64().unwrap().data, [3, -4]);
    let e = eval1("Constant", &[], &[("value_float", Attr::Float(1.))]).unwrap_err();
    assert!(matches!(e, EvalError::Unsupported { .. }), "{e}");

    let x = fv(&[2, 5, 3], &[0.; 30]);
    assert_eq!(eval1("Shape", std::slice::from_ref(&x), &[]).unwrap().as_i64().unwrap().data, [2, 5, 3]);
    let y = eval1("Shape", &[x], &[("start", Attr::Int(1)), ("end", Attr::Int(-1))]).unwrap();
    assert_eq!((y.dims(), &y.as_i64().unwrap().data[..]), (&[1][..], &[5][..]));
}

#[test]
fn gather_rows_and_scalar_index() {
    let table = fv(&[4, 3], &(0..12).map(|v| v as f32).collect::<Vec<_>>());
    let y = eval1("Gather", &[table.clone(), iv(&[2, 2], &[3, 0, -1, 1])], &[("axis", Attr::Int(0))]).unwrap();
    assert_eq!(y.dims(), [2, 2, 3]);
    assert_eq!(f32s(&y), [9., 10., 11., 0., 1., 2., 9., 10., 11., 3., 4., 5.]);
    let h = fv(&[2, 3, 2], &(0..12).map(|v| v as f32).collect::<Vec<_>>());
    let y = eval1("Gather", &[h, iv(&[], &[0])], &[("axis", Attr::Int(1))]).unwrap();
    assert_eq!((y.dims(), f32s(&y)), (&[2, 2][..], &[0., 1., 6., 7.][..]));
    let q = Some(Value::i8(&[3, 2], vec![-1, 2, -3, 4, -5, 6]));
    let y = eval1("Gather", &[q, Some(Value::i32(&[1], vec![2]))], &[]).unwrap();
    assert_eq!(y.as_i8().unwrap().data, [-5, 6]);
    let e = eval1("Gather", &[table, iv(&[1], &[4])], &[]).unwrap_err();
    assert_eq!(e, EvalError::BadValue { node: "n/Gather".into(), index: 1, value: "x1".into(), reason: "index 4 is out of range for axis 0 of size 4".into() });
}

#[test]
fn slice_like_the_exporter_and_with_steps() {
    let x = fv(&[5, 2], &(0..10).map(|v| v as f32).collect::<Vec<_>>());
    // The exporter's position slice: [0, seq) on axis 0.
    let y = eval1("Slice", &[x.clone(), iv(&[1], &[0]), iv(&[1], &[3]), iv(&[1], &[0])], &[]).unwrap();
    assert_eq!((y.dims(), f32s(&y)), (&[3, 2][..], &[0., 1., 2., 3., 4., 5.][..]));
    let shape = iv(&[2], &[2, 7]);
    let y = eval1("Slice", &[shape, iv(&[1], &[1]), iv(&[1], &[2]), iv(&[1], &[0])], &[]).unwrap();
    assert_eq!(y.as_i64().unwrap().data, [7]);
    let y = eval1("Slice", &[x.clone(), iv(&[1], &[-2]), iv(&[1], &[i64::MAX])], &[]).unwrap();
    assert_eq!(f32s(&y), [6., 7., 8., 9.]);
    let y = eval1("Slice", &[x.clone(), iv(&[2], &[0, 1]), iv(&[2], &[5, 2]), iv(&[2], &[0, 1]), iv(&[2], &[2, 1])], &[]).unwrap();
    assert_eq!((y.dims(), f32s(&y)), (&[3, 1][..], &[1., 5., 9.][..]));
    let y = eval1("Slice", &[x.clone(), iv(&[1], &[-1]), iv(&[1], &[i64::MIN]), iv(&[1], &[0]), iv(&[1], &[-2])], &[]).unwrap();
    assert_eq!(f32s(&y), [8., 9., 4., 5., 0., 1.]);
    let y = eval1("Slice", &[x.clone(), iv(&[1], &[4]), iv(&[1], &[2])], &[]).unwrap();
    assert_eq!(y.dims(), [0, 2]);
    let e = eval1("Slice", &[x, iv(&[2], &[0, 0]), iv(&[2], &[1, 1]), iv(&[2], &[1, -1])], &[]).unwrap_err();
    assert!(matches!(e, EvalError::BadValue { index: 3, .. }), "{e}");
}

fn u8s(v: &Value) -> &[u8] {
    &v.as_u8().expect("u8").data
}
fn i8s(v: &Value) -> &[i8] {
    &v.as_i8().expect("i8").data
}
fn from_bits(b: &[u32]) -> Vec<f32> {
    b.iter().map(|&b| f32::from_bits(b)).collect()
}

#[test]
fn quantize_linear_matches_onnxruntime() {
    let x = fv(&[6], &[0., 2., 3., 1000., -254., -1000.]);
    let y = eval1("QuantizeLinear", &[x, fv(&[], &[2.]), Some(Value::u8(&[], vec![128]))], &[]).unwrap();
    assert_eq!(u8s(&y), [128, 129, 130, 255, 1, 0]);
    // Ties to even, saturation, NaN.
    let x = fv(&[12], &[0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 300., -300., 126.5, 127.5, -128.5, f32::NAN]);
    let y = eval1("QuantizeLinear", &[x, fv(&[], &[1.]), Some(Value::i8(&[], vec![0]))], &[]).unwrap();
    assert_eq!(i8s(&y), [0, 2, 2, 0, -2, -2, 127, -128, 126, 127, -128, -128]);
    let r = lcg(64, 3, -4., 4.);
    let y = eval1("QuantizeLinear", &[fv(&[64], &r), fv(&[], &[0.0371]), Some(Value::i8(&[], vec![-3]))], &[]).unwrap();
    #[rustfmt::skip]
    let want = [-86, -41, 48, -36, 23, -29, -2, -6, 9, 41, 98, 78, -56, 52, 84, 73, -58, 55, -15, 59, -61, -16, 85, -6, -69, -12, -21, -47, 49, -12, -53, 65, 28, -50, -52, -48, -108, -12, -103, 32, 0, 67, 6, 67, 44, -22, 100, 36, 89, 70, 57, 79, 100, -94, 7, -38, -56, -5, -18, -46, 67, -54, -106, -30];
    assert_eq!(i8s(&y), want);
    // No zero point: uint8, zero point 0.
    let y = eval1("QuantizeLinear", &[fv(&[64], &r), fv(&[], &[0.0213]), None], &[]).unwrap();
    #[rustfmt::skip]
    let want = [0, 0, 88, 0, 45, 0, 1, 0, 20, 76, 177, 142, 0, 96, 152, 133, 0, 100, 0, 108, 0, 0, 154, 0, 0, 0, 0, 0, 91, 0, 0, 118, 53, 0, 0, 0, 0, 0, 0, 62, 5, 122, 16, 122, 82, 0, 179, 68, 160, 127, 104, 143, 179, 0, 17, 0, 0, 0, 0, 0, 123, 0, 0, 0];
    assert_eq!(u8s(&y), want);
    // Per axis.
    let x = lcg(12, 5, -3., 3.);
    let y = eval1("QuantizeLinear", &[fv(&[2, 3, 2], &x), fv(&[3], &[0.5, 0.03, 0.011]), Some(Value::u8(&[3], vec![0, 128, 255]))], &[("axis", Attr::Int(1))])
        .unwrap();
    assert_eq!(u8s(&y), [4, 0, 192, 90, 224, 124, 0, 5, 81, 69, 89, 101]);
    let y = eval1("QuantizeLinear", &[fv(&[2, 3, 2], &x), fv(&[2], &[0.02, 0.05]), Some(Value::i8(&[2], vec![-5, 7]))], &[("axis", Attr::Int(-1))]).unwrap();
    assert_eq!(i8s(&y), [86, -36, 91, -16, -22, -22, -19, 55, -75, -28, -96, -27]);

    let e = eval1("QuantizeLinear", &[fv(&[1], &[1.]), fv(&[], &[0.])], &[]).unwrap_err();
    assert_eq!(
        e,
        EvalError::BadValue { node: "n/QuantizeLinear".into(), index: 1, value: "x1".into(), reason: "scale 0 is not a positive finite number".into() }
    );
    let e = eval1("QuantizeLinear", &[fv(&[2, 3], &[0.; 6]), fv(&[2], &[1., 1.])], &[]).unwrap_err();
    assert!(matches!(e, EvalError::ShapeMismatch { .. }), "{e}");
    let y = eval1("QuantizeLinear", &[fv(&[2], &[-1., 1.]), fv(&[], &[1.])], &[("output_dtype", Attr::Int(3))]).unwrap();
    assert_eq!(i8s(&y), [-1, 1]);
}

#[test]
fn dequantize_linear_matches_onnxruntime() {
    let q = Some(Value::i8(&[5], vec![-128, -1, 0, 1, 127]));
    let y = eval1("DequantizeLinear", &[q, fv(&[], &[0.0371]), Some(Value::i8(&[], vec![-3]))], &[]).unwrap();
    assert_eq!(f32s(&y), from_bits(&[0xc0946666, 0x3d97f62b, 0x3de3f140, 0x3e17f62b, 0x409a5604]));
    let q = Some(Value::u8(&[2, 3, 2], (0..12).map(|v| v * 21).collect()));
    let y = eval1("DequantizeLinear", &[q, fv(&[3], &[0.5, 0.03, 0.011]), Some(Value::u8(&[3], vec![0, 128, 255]))], &[("axis", Attr::Int(1))]).unwrap();
    #[rustfmt::skip]
    let want = from_bits(&[0x00000000, 0x41280000, 0xc0251eb8, 0xbff99999, 0xbff0c49c, 0xbfd33333, 0x427c0000, 0x42930000, 0x3f999999, 0x3fea3d70, 0xbefd70a4, 0xbe872b02]);
    assert_eq!(f32s(&y), want);
    let q = Some(Value::i32(&[5], vec![-100000, -1, 0, 7, 123456789]));
    let y = eval1("DequantizeLinear", &[q, fv(&[], &[0.00037]), Some(Value::i32(&[], vec![0]))], &[]).unwrap();
    assert_eq!(f32s(&y), from_bits(&[0xc2140000, 0xb9c1fc8f, 0x00000000, 0x3b29bcfd, 0x47326f03]));
    let y = eval1("DequantizeLinear", &[Some(Value::u8(&[2], vec![0, 255])), fv(&[], &[0.5]), None], &[]).unwrap();
    assert_eq!(f32s(&y), [0., 127.5]);
    let e = eval1("DequantizeLinear", &[Some(Value::u8(&[1], vec![0])), fv(&[], &[0.5]), Some(Value::i8(&[], vec![0]))], &[]).unwrap_err();
    assert!(matches!(e, EvalError::WrongDType { index: 2, got: DType::I8, .. }), "{e}");
    let e = eval1("DequantizeLinear", &[fv(&[1], &[0.]), fv(&[], &[0.5])], &[]).unwrap_err();
    assert!(matches!(e, EvalError::WrongDType { index: 0, got: DType::F32, .. }), "{e}");
}

#[test]
fn dynamic_quantize_linear_matches_onnxruntime() {
    /// dims, x, y, scale bits, zero point.
    type Case = (&'static [usize], Vec<f32>, &'static [u8], u32, u8);
    let cases: [Case; 4] = [
        (&[6], vec![0., 2., -3., -2.5, 1.34, 0.5], &[153, 255, 0, 26, 221, 179], 0x3ca0a0a1, 153),
        (&[6], vec![-1.0, -2.1, -1.3, -2.5, -3.34, -4.0], &[191, 121, 172, 96, 42, 0], 0x3c808081, 255),
        (
            &[3, 4],
            vec![1., 2.1, 1.3, 2.5, 3.34, 4.0, 1.5, 2.6, 3.9, 4.0, 3.0, 2.345],
            &[64, 134, 83, 159, 213, 255, 96, 166, 249, 255, 191, 149],
            0x3c808081,
            0,
        ),
        (
            &[50],
            lcg(50, 11, -2.7, 5.3),
            &[
                234, 149, 0, 35, 246, 241, 66, 24, 97, 188, 233, 48, 16, 128, 138, 57, 135, 138, 189, 15, 180, 60, 78, 255, 98, 17, 189, 52, 229, 197, 35, 127,
                250, 44, 34, 113, 232, 144, 12, 5, 174, 145, 201, 181, 55, 244, 18, 24, 146, 112,
            ],
            0x3cde7493,
            76,
        ),
    ];
    for (dims, x, y, scale, zp) in cases {
        let out = eval_in("", "DynamicQuantizeLinear", &[fv(dims, &x)], &[], 3).unwrap();
        assert_eq!((out[0].dims(), u8s(&out[0])), (dims, y));
        assert_eq!((out[1].dims(), f32s(&out[1])[0].to_bits()), (&[][..], scale));
        assert_eq!((out[2].dims(), u8s(&out[2])), (&[][..], &[zp][..]));
    }
    // All zeros: scale 1, zero point 0 (onnxruntime's choice).
    let out = eval_in("", "DynamicQuantizeLinear", &[fv(&[2], &[0., -0.])], &[], 3).unwrap();
    assert_eq!((u8s(&out[0]), f32s(&out[1]), u8s(&out[2])), (&[0, 0][..], &[1.][..], &[0][..]));
}

#[test]
fn matmul_integer_matches_onnxruntime() {
    let a = Some(Value::u8(&[4, 3], vec![11, 7, 3, 10, 6, 2, 9, 5, 1, 8, 4, 0]));
    let b = Some(Value::u8(&[3, 2], vec![1, 4, 2, 5, 3, 6]));
    let y = eval1("MatMulInteger", &[a.clone(), b.clone(), Some(Value::u8(&[], vec![12])), Some(Value::u8(&[], vec![0]))], &[]).unwrap();
    assert_eq!((y.dims(), &y.as_i32().unwrap().data[..]), (&[4, 2][..], &[-38, -83, -44, -98, -50, -113, -56, -128][..]));
    // Batched uint8 × int8 with a per-column B zero point.
    #[rustfmt::skip]
    let a3 = vec![144, 102, 42, 41, 188, 198, 64, 148, 31, 56, 24, 149, 154, 244, 53, 96, 92, 189, 138, 183, 13, 190, 180, 207, 55, 207, 140, 127, 162, 82];
    #[rustfmt::skip]
    let b2 = vec![113, -119, -41, -105, -29, 8, -89, -21, 12, -69, 11, -60, 11, 85, 8, 21, -126, -94, -82, 99];
    let y = eval1(
        "MatMulInteger",
        &[Some(Value::u8(&[2, 3, 5], a3)), Some(Value::i8(&[5, 4], b2)), Some(Value::u8(&[], vec![131])), Some(Value::i8(&[4], vec![1, -2, 0, 5]))],
        &[],
    )
    .unwrap();
    #[rustfmt::skip]
    let want = [-6792, -8922, -4325, 9027, 18226, -11448, 8753, -15383, -1235, 28165, 10338, 4283, -8646, -4356, 1336, 6094, -4035, 24717, 6966, 2333, 14731, -1329, 305, -12444];
    assert_eq!((y.dims(), &y.as_i32().unwrap().data[..]), (&[2, 3, 4][..], &want[..]));
    // Per-row A zero point, by hand: rows minus [11, 10, 9, 8] leave [0, -4, -8] for every row.
    let y = eval1("MatMulInteger", &[a.clone(), b.clone(), Some(Value::u8(&[4], vec![11, 10, 9, 8])), None], &[]).unwrap();
    assert_eq!(y.as_i32().unwrap().data, [-32, -68, -32, -68, -32, -68, -32, -68]);
    let e = eval1("MatMulInteger", &[a.clone(), b.clone(), Some(Value::i8(&[], vec![0])), None], &[]).unwrap_err();
    assert!(matches!(e, EvalError::WrongDType { index: 2, got: DType::I8, .. }), "{e}");
    let e = eval1("MatMulInteger", &[a, fv(&[3, 2], &[0.; 6])], &[]).unwrap_err();
    assert!(matches!(e, EvalError::WrongDType { index: 1, got: DType::F32, .. }), "{e}");
}

#[test]
fn values_round_trip_through_ir_tensors() {
    let vals =
        [Value::f32(&[2], vec![1.5, -0.0]), Value::i64(&[1, 1], vec![-9]), Value::i32(&[], vec![7]), Value::i8(&[2], vec![-128, 127]), Value::u8(&[0], vec![])];
    for v in vals {
        assert_eq!(bits(&Value::from_tensor(&v.to_tensor()).unwrap()), bits(&v));
    }
    let bad = Tensor { dtype: DType::F32, dims: vec![2], data: vec![0; 7] };
    assert_eq!(Value::from_tensor(&bad).unwrap_err(), "7 bytes of data for F32 [2], expected 8");
    assert!(Value::from_tensor(&Tensor { dtype: DType::I8, dims: vec![-1], data: vec![] }).is_err());
}
