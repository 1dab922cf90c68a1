//! Graph-level tests: an attention block against a hand-written
//! computation, QDQ and dynamic-INT8 matmuls, thread-count invariance, the
//! exporter's graph (via the passes' miniature of it) before and after
//! `optimize`, and graph-level errors.

use super::quant::quantize;
use super::tests::{bits, f32s, lcg};
use super::*;
use crate::graph::passes::optimize;
use crate::graph::{Builder, Graph, Node, Tensor};

/// The passes' miniature of the exporter's graph and its f64 evaluator.
/// (`passes::testgraph` is private to `passes`; if it becomes
/// `pub(crate)`, this can be a `use`.)
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../passes/testgraph.rs"]
mod testgraph;

fn input(g: &mut Graph, name: &str, dtype: DType, dims: &[&str]) {
    let shape = dims.iter().map(|d| d.parse().map_or_else(|_| Dim::Sym(d.to_string()), Dim::Fixed)).collect();
    g.inputs.push(ValueInfo { name: name.into(), dtype, shape: Some(shape) });
}

fn output(g: &mut Graph, name: &str, dtype: DType) {
    g.outputs.push(ValueInfo { name: name.into(), dtype, shape: None });
}

fn model(g: Graph) -> Model {
    Model { graph: g, opsets: BTreeMap::from([(String::new(), 17), (MS_DOMAIN.to_string(), 1)]), metadata: BTreeMap::new() }
}

/// Every observed (name, dtype, dims, bits), in order.
type Trace = Vec<(String, (DType, Vec<usize>, Vec<u64>))>;

fn trace(m: &Model, inputs: &[(&str, Value)]) -> (BTreeMap<String, Value>, Trace) {
    let mut seen = Vec::new();
    let out = run(m, inputs, &mut |name, v| seen.push((name.to_string(), bits(v)))).unwrap();
    (out, seen)
}

const H: usize = 4;
const HEADS: usize = 2;
const HD: usize = H / HEADS;

/// One self-attention block as the exporter lays it out after folding:
/// `x [batch, seq, 4]`, `mask [batch, seq]` → `ctx [batch, seq, 4]`.
fn attention(w: &[Vec<f32>; 3], b: &[Vec<f32>; 3]) -> Model {
    let mut g = Graph::default();
    input(&mut g, "x", DType::F32, &["batch", "seq", "4"]);
    input(&mut g, "mask", DType::I64, &["batch", "seq"]);
    let mut bd = Builder::new(&mut g);
    let split = bd.init("split", Tensor::i64(&[4], &[0, 0, HEADS as i64, HD as i64]));
    let merge = bd.init("merge", Tensor::i64(&[3], &[0, 0, H as i64]));
    let ax12 = bd.init("ax12", Tensor::i64(&[2], &[1, 2]));
    let one = bd.init("one", Tensor::scalar_f32(1.0));
    let big = bd.init("big", Tensor::scalar_f32(-10000.0));
    let sqrt_d = bd.init("sqrt_d", Tensor::scalar_f32((HD as f32).sqrt()));
    let perm = |p: &[i64]| [("perm", Attr::Ints(p.to_vec()))];
    let mut proj = Vec::new();
    for (i, p) in ["q", "k", "v"].iter().enumerate() {
        let wn = bd.init(&format!("w{p}"), Tensor::f32(&[H as i64, H as i64], &w[i]));
        let bn = bd.init(&format!("b{p}"), Tensor::f32(&[H as i64], &b[i]));
        let y = bd.op("a", "MatMul", &["x", &wn], &[]);
        let y = bd.op("a", "Add", &[&y, &bn], &[]);
        let y = bd.op("a", "Reshape", &[&y, &split], &[]);
        proj.push(bd.op("a", "Transpose", &[&y], &perm(if *p == "k" { &[0, 2, 3, 1] } else { &[0, 2, 1, 3] })));
    }
    let mf = bd.op("m", "Cast", &["mask"], &[("to", Attr::Int(1))]);
    let inv = bd.op("m", "Sub", &[&one, &mf], &[]);
    let madd = bd.op("m", "Mul", &[&inv, &big], &[]);
    let mask4 = bd.op("m", "Unsqueeze", &[&madd, &ax12], &[]);
    let sc = bd.op("a", "MatMul", &[&proj[0], &proj[1]], &[]);
    let sc = bd.op("a", "Div", &[&sc, &sqrt_d], &[]);
    let sc = bd.op("a", "Add", &[&sc, &mask4], &[]);
    let p = bd.op("a", "Softmax", &[&sc], &[("axis", Attr::Int(-1))]);
    let ctx = bd.op("a", "MatMul", &[&p, &proj[2]], &[]);
    let ctx = bd.op("a", "Transpose", &[&ctx], &perm(&[0, 2, 1, 3]));
    let ctx = bd.op("a", "Reshape", &[&ctx, &merge], &[]);
    g.nodes.last_mut().unwrap().outputs = vec!["ctx".into()];
    let _ = ctx;
    output(&mut g, "ctx", DType::F32);
    model(g)
}

#[test]
fn attention_block_matches_a_hand_written_computation_bit_for_bit() {
    let (batch, seq) = (2, 3);
    let w = [lcg(16, 21, -1., 1.), lcg(16, 22, -1., 1.), lcg(16, 23, -1., 1.)];
    let b = [lcg(4, 24, -0.5, 0.5), lcg(4, 25, -0.5, 0.5), lcg(4, 26, -0.5, 0.5)];
    let x = lcg(batch * seq * H, 27, -2., 2.);
    let mask = [1i64, 1, 1, 1, 1, 0];
    let m = attention(&w, &b);
    let out = run(&m, &[("x", Value::f32(&[batch, seq, H], x.clone())), ("mask", Value::i64(&[batch, seq], mask.to_vec()))], &mut |_, _| {}).unwrap();
    let ctx = &out["ctx"];
    assert_eq!(ctx.dims(), [batch, seq, H]);

    // q, k, v [batch, seq, H]: sequential dot products from 0, then the bias.
    let proj = |p: usize| -> Vec<f32> {
        let mut y = vec![0.0f32; batch * seq * H];
        for r in 0..batch * seq {
            for j in 0..H {
                let mut acc = 0.0f32;
                for k in 0..H {
                    acc += x[r * H + k] * w[p][k * H + j];
                }
                y[r * H + j] = acc + b[p][j];
            }
        }
        y
    };
    let (q, k, v) = (proj(0), proj(1), proj(2));
    let sqrt_d = (HD as f32).sqrt();
    let mut want = vec![0.0f32; batch * seq * H];
    for bi in 0..batch {
        for h in 0..HEADS {
            for i in 0..seq {
                let mut s: Vec<f32> = (0..seq)
                    .map(|t| {
                        let mut acc = 0.0f32;
                        for d in 0..HD {
                            acc += q[(bi * seq + i) * H + h * HD + d] * k[(bi * seq + t) * H + h * HD + d];
                        }
                        acc / sqrt_d + (1.0 - mask[bi * seq + t] as f32) * -10000.0
                    })
                    .collect();
                crate::kernels::softmax_in_place(&mut s);
                for c in 0..HD {
                    let mut acc = 0.0f32;
                    for (t, p) in s.iter().enumerate() {
                        acc += p * v[(bi * seq + t) * H + h * HD + c];
                    }
                    want[(bi * seq + i) * H + h * HD + c] = acc;
                }
            }
        }
    }
    assert_eq!(f32s(ctx).iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    // The padded key gets exactly zero weight: its value row does not matter.
    let mut x2 = x.clone();
    x2[(seq + 2) * H..(seq + 3) * H].copy_from_slice(&[9., -9., 9., -9.]);
    let out2 = run(&m, &[("x", Value::f32(&[batch, seq, H], x2)), ("mask", Value::i64(&[batch, seq], mask.to_vec()))], &mut |_, _| {}).unwrap();
    assert_eq!(f32s(&out2["ctx"])[seq * H..(seq + 2) * H], f32s(ctx)[seq * H..(seq + 2) * H]);
}

/// `x [2, 3, 4]` → Q/DQ (uint8) → MatMul with DQ(int8 W [4, 5]) → Add bias: the
/// static QDQ layout of a weight MatMul.
#[test]
fn static_qdq_matmul_matches_the_simulation_by_hand() {
    let (sx, zx, sw) = (0.021f32, 117u8, 0.0093f32);
    let wq: Vec<i8> = lcg(20, 31, -127., 127.99).iter().map(|&v| v as i8).collect();
    let bias = lcg(5, 32, -1., 1.);
    let mut g = Graph::default();
    input(&mut g, "x", DType::F32, &["2", "3", "4"]);
    let mut bd = Builder::new(&mut g);
    bd.init("sx", Tensor::scalar_f32(sx));
    bd.init("zx", Value::u8(&[], vec![zx]).to_tensor());
    bd.init("sw", Tensor::scalar_f32(sw));
    bd.init("wq", Value::i8(&[4, 5], wq.clone()).to_tensor());
    bd.init("bias", Tensor::f32(&[5], &bias));
    let xq = bd.op("q", "QuantizeLinear", &["x", "sx", "zx"], &[]);
    let xd = bd.op("q", "DequantizeLinear", &[&xq, "sx", "zx"], &[]);
    let wd = bd.op("q", "DequantizeLinear", &["wq", "sw"], &[]);
    let y = bd.op("q", "MatMul", &[&xd, &wd], &[]);
    let y = bd.op("q", "Add", &[&y, "bias"], &[]);
    output(&mut g, &y, DType::F32);
    let m = model(g);
    let ev = Evaluator::new(&m).unwrap();
    assert!(ev.folded[2] && ev.consts.packed.len() == 1, "DQ(W) is a constant, packed once");
    let x = lcg(24, 33, -3., 3.);
    let got = ev.run(&[("x", Value::f32(&[2, 3, 4], x.clone()))], &mut |_, _| {}).unwrap().remove(&y).unwrap();
    let xd: Vec<f32> = x.iter().map(|&v| (quantize(v, sx, zx as i32, 0, 255) - zx as i32) as f32 * sx).collect();
    let wd: Vec<f32> = wq.iter().map(|&q| q as f32 * sw).collect();
    let mut want = Vec::new();
    for r in 0..6 {
        for j in 0..5 {
            let mut acc = 0.0f32;
            for k in 0..4 {
                acc += xd[r * 4 + k] * wd[k * 5 + j];
            }
            want.push(acc + bias[j]);
        }
    }
    assert_eq!(got.dims(), [2, 3, 5]);
    assert_eq!(f32s(&got).iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
}

/// onnxruntime's dynamic INT8 layout: DynamicQuantizeLinear → MatMulInteger
/// → Cast → Mul(scale_x · scale_w) → Add bias.
#[test]
fn dynamic_int8_matmul_matches_the_simulation_by_hand() {
    let sw = 0.0117f32;
    let wq: Vec<i8> = lcg(12, 41, -127., 127.99).iter().map(|&v| v as i8).collect();
    let bias = lcg(3, 42, -1., 1.);
    let mut g = Graph::default();
    input(&mut g, "x", DType::F32, &["5", "4"]);
    let mut bd = Builder::new(&mut g);
    bd.init("wq", Value::i8(&[4, 3], wq.clone()).to_tensor());
    bd.init("sw", Tensor::scalar_f32(sw));
    bd.init("bias", Tensor::f32(&[3], &bias));
    bd.graph.nodes.push(Node {
        name: "d/DynamicQuantizeLinear".into(),
        op: "DynamicQuantizeLinear".into(),
        domain: String::new(),
        inputs: vec!["x".into()],
        outputs: vec!["xq".into(), "xs".into(), "xz".into()],
        attrs: BTreeMap::new(),
    });
    let acc = bd.op("d", "MatMulInteger", &["xq", "wq", "xz"], &[]);
    let accf = bd.op("d", "Cast", &[&acc], &[("to", Attr::Int(1))]);
    let s = bd.op("d", "Mul", &["xs", "sw"], &[]);
    let y = bd.op("d", "Mul", &[&accf, &s], &[]);
    let y = bd.op("d", "Add", &[&y, "bias"], &[]);
    output(&mut g, &y, DType::F32);
    let x = lcg(20, 43, -1.5, 2.5);
    let got = run(&model(g), &[("x", Value::f32(&[5, 4], x.clone()))], &mut |_, _| {}).unwrap().remove(&y).unwrap();

    let (lo, hi) = x.iter().fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let scale = (hi - lo) / 255.0;
    let zp = (-lo / scale).round_ties_even() as i32;
    let xq: Vec<i32> = x.iter().map(|&v| quantize(v, scale, zp, 0, 255)).collect();
    let mut want = Vec::new();
    for r in 0..5 {
        for j in 0..3 {
            let acc: i32 = (0..4).map(|k| (xq[r * 4 + k] - zp) * wq[k * 3 + j] as i32).sum();
            want.push(acc as f32 * (scale * sw) + bias[j]);
        }
    }
    assert_eq!(f32s(&got).iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
}

#[test]
fn an_evaluator_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Evaluator>();
    shareable::<Value>();
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
}

fn token_inputs(batch: usize, seq: usize, vocab: i64) -> Vec<(&'static str, Value)> {
    let ids: Vec<i64> = (0..batch * seq).map(|i| (i as i64 * 7 + 3) % vocab).collect();
    let mask: Vec<i64> = (0..batch * seq).map(|i| i64::from(i % seq < seq - (i / seq) % 3)).collect();
    vec![("input_ids", Value::i64(&[batch, seq], ids)), ("attention_mask", Value::i64(&[batch, seq], mask))]
}

#[test]
fn same_bits_for_one_and_three_threads() {
    // Big enough that every parallel split (linear's 48-row blocks, matmul
    // and softmax rows, 4096-element activation chunks) has several parts.
    let (b, s, d, f) = (4, 60, 32, 48);
    let mut g = Graph::default();
    input(&mut g, "x", DType::F32, &["4", "60", "32"]);
    let mut bd = Builder::new(&mut g);
    bd.init("w", Tensor::f32(&[d as i64, f as i64], &lcg(d * f, 51, -0.3, 0.3)));
    bd.init("g", Tensor::f32(&[f as i64], &lcg(f, 52, 0.5, 1.5)));
    bd.init("beta", Tensor::f32(&[f as i64], &lcg(f, 53, -0.5, 0.5)));
    bd.init("ax", Tensor::i64(&[1], &[1]));
    bd.init("wq", Value::i8(&[f, 8], lcg(f * 8, 54, -127., 127.).iter().map(|&v| v as i8).collect()).to_tensor());
    let y = bd.op("t", "MatMul", &["x", "w"], &[]);
    let y = bd.op("t", "LayerNormalization", &[&y, "g", "beta"], &[("epsilon", Attr::Float(1e-5))]);
    let y = bd.op_in(MS_DOMAIN, "t", "FastGelu", &[&y], &[]);
    let yt = bd.op("t", "Transpose", &[&y], &[("perm", Attr::Ints(vec![0, 2, 1]))]);
    let sc = bd.op("t", "MatMul", &[&y, &yt], &[]);
    let p = bd.op("t", "Softmax", &[&sc], &[]);
    let ctx = bd.op("t", "MatMul", &[&p, &y], &[]);
    let red = bd.op("t", "ReduceSum", &[&ctx, "ax"], &[("keepdims", Attr::Int(0))]);
    bd.graph.nodes.push(Node {
        name: "t/dq".into(),
        op: "DynamicQuantizeLinear".into(),
        domain: String::new(),
        inputs: vec![ctx.clone()],
        outputs: vec!["cq".into(), "cs".into(), "cz".into()],
        attrs: BTreeMap::new(),
    });
    let acc = bd.op("t", "MatMulInteger", &["cq", "wq", "cz"], &[]);
    output(&mut g, &red, DType::F32);
    output(&mut g, &acc, DType::I32);
    let wide = model(g);
    let x = vec![("x", Value::f32(&[b, s, d], lcg(b * s * d, 55, -2., 2.)))];

    let mut enc = testgraph::tiny_encoder(testgraph::Act::Tanh, testgraph::Pool::Mean, 2, true);
    optimize(&mut enc).unwrap();
    let ids = token_inputs(3, 10, 20);
    for (m, inputs) in [(&wide, &x), (&enc, &ids)] {
        let one = in_pool(1, || trace(m, inputs).1);
        let three = in_pool(3, || trace(m, inputs).1);
        assert_eq!(one.len(), m.graph.nodes.iter().map(|n| n.outputs.len()).sum::<usize>());
        assert!(one == three, "thread count changed a value");
    }
}

fn sample() -> Vec<(&'static str, Value)> {
    testgraph::sample_inputs().into_iter().map(|(name, a)| (name, Value::i64(&a.d, a.v.iter().map(|&v| v as i64).collect()))).collect()
}

#[test]
fn exported_and_optimized_encoders_agree_with_the_f64_reference() {
    use testgraph::{evaluate, sample_inputs, tiny_encoder, Act, Pool};
    for (act, pool, shared) in [(Act::Erf, Pool::Pooler, false), (Act::Tanh, Pool::Mean, true)] {
        let exported = tiny_encoder(act, pool, 2, shared);
        let mut optimized = exported.clone();
        optimize(&mut optimized).unwrap();
        let reference = evaluate(&exported, &sample_inputs());
        for m in [&exported, &optimized] {
            let (out, seen) = trace(m, &sample());
            let logits = &out["logits"];
            assert_eq!(logits.dims(), [2, 3]);
            for (a, b) in reference.v.iter().zip(f32s(logits)) {
                assert!((a - *b as f64).abs() <= 1e-5 * (1.0 + a.abs()), "{:?} vs {logits:?}", reference.v);
            }
            // observe sees every node output once, in node order.
            let names: Vec<&str> = m.graph.nodes.iter().flat_map(|n| &n.outputs).map(String::as_str).collect();
            assert_eq!(seen.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), names);
        }
        // The optimized graph's types and shapes are what the shapes pass inferred.
        let (_, seen) = trace(&optimized, &sample());
        let concrete = |d: &Dim| match d {
            Dim::Fixed(v) => *v as usize,
            Dim::Sym(s) if s == "batch" => 2,
            Dim::Sym(_) => 4,
        };
        for (name, (dtype, dims, _)) in seen.iter().filter(|(n, _)| n != "logits") {
            let info = &optimized.graph.value_info[name];
            assert_eq!((info.dtype, info.shape.as_ref().unwrap().iter().map(concrete).collect::<Vec<_>>()), (*dtype, dims.clone()), "{name}");
        }
    }
}

#[test]
fn optimized_gelu_and_layernorm_match_the_decomposed_graph_closely() {
    use testgraph::{tiny_encoder, Act, Pool};
    for act in [Act::Erf, Act::Tanh] {
        let exported = tiny_encoder(act, Pool::Pooler, 2, false);
        let mut optimized = exported.clone();
        optimize(&mut optimized).unwrap();
        let a = trace(&exported, &sample()).0.remove("logits").unwrap();
        let b = trace(&optimized, &sample()).0.remove("logits").unwrap();
        // LayerNorm and the dense layers are the same bits; GELU's fused form
        // orders its multiplications differently.
        for (x, y) in f32s(&a).iter().zip(f32s(&b)) {
            assert!((x - y).abs() <= 1e-6 * (1.0 + x.abs()), "{a:?} vs {b:?}");
        }
    }
}

#[test]
fn shared_constant_nodes_are_evaluated_and_packed_once() {
    use testgraph::{tiny_encoder, Act, Pool};
    let m = tiny_encoder(Act::Tanh, Pool::Mean, 3, true);
    let ev = Evaluator::new(&m).unwrap();
    let transposes = m.graph.nodes.iter().filter(|n| n.op == "Transpose" && m.graph.initializers.contains_key(&n.inputs[0])).count();
    // 6 shared linears × 3 layers + the classifier; the 2 later copies of each shared one are aliases.
    assert_eq!(transposes, 19);
    assert_eq!(ev.consts.alias.len(), 12);
    assert_eq!(ev.consts.packed.len(), 7);
    // Observed in full all the same, and the folded `pos + type` Add too.
    let (_, seen) = trace(&m, &sample());
    assert_eq!(seen.len(), m.graph.nodes.len());
}

fn small_graph() -> Graph {
    let mut g = Graph::default();
    input(&mut g, "ids", DType::I64, &["batch", "seq"]);
    input(&mut g, "mask", DType::I64, &["batch", "seq"]);
    let mut bd = Builder::new(&mut g);
    bd.init("table", Tensor::f32(&[5, 2], &[0.; 10]));
    let e = bd.op("s", "Gather", &["table", "ids"], &[]);
    bd.graph.nodes.last_mut().unwrap().outputs = vec!["emb".into()];
    let _ = e;
    output(&mut g, "emb", DType::F32);
    output(&mut g, "mask", DType::I64);
    g
}

#[test]
fn graph_level_errors_name_what_is_wrong() {
    let m = model(small_graph());
    let ids = Value::i64(&[1, 2], vec![0, 4]);
    let mask = Value::i64(&[1, 2], vec![1, 1]);
    let out = run(&m, &[("ids", ids.clone()), ("mask", mask.clone())], &mut |_, _| {}).unwrap();
    assert_eq!((out["emb"].dims(), out["mask"].dims()), (&[1, 2, 2][..], &[1, 2][..]), "a graph input can be an output");

    let err = |inputs: &[(&str, Value)]| run(&m, inputs, &mut |_, _| {}).unwrap_err();
    assert_eq!(err(&[("ids", ids.clone())]), EvalError::InputMissing { input: "mask".into() });
    assert_eq!(err(&[("ids", ids.clone()), ("mask", mask.clone()), ("x", mask.clone())]), EvalError::UnexpectedInput { input: "x".into() });
    let e = err(&[("ids", Value::f32(&[1, 2], vec![0., 1.])), ("mask", mask.clone())]);
    assert_eq!(e, EvalError::BadInput { input: "ids".into(), reason: "F32 given, I64 declared".into() });
    let e = err(&[("ids", ids.clone()), ("mask", Value::i64(&[1, 3], vec![1; 3]))]);
    assert_eq!(e, EvalError::BadInput { input: "mask".into(), reason: "dim `seq` is 3 here but 2 in `ids`".into() });
    let e = err(&[("ids", Value::i64(&[2], vec![0, 1])), ("mask", mask.clone())]);
    assert_eq!(e, EvalError::BadInput { input: "ids".into(), reason: "rank 1 given, 2 declared".into() });
    let e = err(&[("ids", Value::i64(&[1, 2], vec![0])), ("mask", mask.clone())]);
    assert_eq!(e, EvalError::BadInput { input: "ids".into(), reason: "1 elements for shape [1, 2]".into() });
    let e = err(&[("ids", Value::i64(&[1, 2], vec![0, 5])), ("mask", mask.clone())]);
    assert!(matches!(&e, EvalError::BadValue { node, index: 1, .. } if node == "s/Gather_1"), "{e}");

    let mut g = small_graph();
    g.nodes[0].op = "Relu".into();
    let e = run(&model(g), &[("ids", ids.clone()), ("mask", mask.clone())], &mut |_, _| {}).unwrap_err();
    assert_eq!(e, EvalError::UnknownOp { node: "s/Gather_1".into(), op: "Relu".into() });
    let mut g = small_graph();
    g.nodes[0].inputs[0] = "tabel".into();
    assert_eq!(Evaluator::new(&model(g)).err(), Some(EvalError::MissingValue { node: "s/Gather_1".into(), index: 0, value: "tabel".into() }));
    let mut g = small_graph();
    g.nodes[0].outputs[0] = "mask".into();
    assert_eq!(Evaluator::new(&model(g)).err(), Some(EvalError::DuplicateValue { node: "s/Gather_1".into(), value: "mask".into() }));
    let mut g = small_graph();
    g.initializers.get_mut("table").unwrap().data.pop();
    assert!(matches!(Evaluator::new(&model(g)).err(), Some(EvalError::BadInitializer { name, .. }) if name == "table"));
    let mut g = small_graph();
    g.outputs[0].name = "nothing".into();
    let e = run(&model(g), &[("ids", ids.clone()), ("mask", mask.clone())], &mut |_, _| {}).unwrap_err();
    assert_eq!(e, EvalError::OutputMissing { output: "nothing".into() });
    let mut g = small_graph();
    g.nodes[0].domain = "ai.onnx.ml".into();
    let e = run(&model(g), &[("ids", ids), ("mask", mask)], &mut |_, _| {}).unwrap_err();
    assert_eq!(e, EvalError::UnknownOp { node: "s/Gather_1".into(), op: "ai.onnx.ml.Gather".into() });
}
