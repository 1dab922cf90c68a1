//! A miniature of `aon::export`'s graph for end-to-end pass tests: same
//! node sequence and naming, tiny dims (vocab 20, hidden 8, 2 heads, FFN 16,
//! 10 positions, 3 classes), weights from a fixed LCG.

use crate::graph::{Attr, Builder, DType, Dim, Graph, Model, Tensor, ValueInfo};
use std::collections::BTreeMap;

#[derive(Clone, Copy)]
pub enum Act {
    Erf,
    Tanh,
}

#[derive(Clone, Copy)]
pub enum Pool {
    Pooler,
    Mean,
}

const V: i64 = 20;
const H: i64 = 8;
const HEADS: i64 = 2;
const FFN: i64 = 16;
const POS: i64 = 10;
const CLASSES: i64 = 3;

struct Ex<'g> {
    b: Builder<'g>,
    seed: u64,
}

impl Ex<'_> {
    fn rand(&mut self, dims: &[i64]) -> Tensor {
        let n = dims.iter().product::<i64>() as usize;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                self.seed = self.seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((self.seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        Tensor::f32(dims, &v)
    }
    fn scalar(&mut self, v: f32) -> String {
        let key = format!("const/f32_{:08x}", v.to_bits());
        self.b.init(&key, Tensor::scalar_f32(v))
    }
    fn i64s(&mut self, v: &[i64]) -> String {
        let key = format!("const/i64_{}", v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("_")).replace('-', "m");
        self.b.init(&key, Tensor::i64(&[v.len() as i64], v))
    }
    fn linear(&mut self, scope: &str, x: &str, name: &str, inp: i64, out: i64) -> String {
        let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
        if !self.b.graph.initializers.contains_key(&w) {
            let t = self.rand(&[out, inp]);
            self.b.init(&w, t);
            let t = self.rand(&[out]);
            self.b.init(&b, t);
        }
        let wt = self.b.op(scope, "Transpose", &[&w], &[("perm", Attr::Ints(vec![1, 0]))]);
        let y = self.b.op(scope, "MatMul", &[x, &wt], &[]);
        self.b.op(scope, "Add", &[&y, &b], &[])
    }
    fn layer_norm(&mut self, scope: &str, x: &str, name: &str) -> String {
        let (g, bb) = (format!("{name}.weight"), format!("{name}.bias"));
        if !self.b.graph.initializers.contains_key(&g) {
            let t = self.rand(&[H]);
            self.b.init(&g, t);
            let t = self.rand(&[H]);
            self.b.init(&bb, t);
        }
        let eps = self.scalar(1e-12);
        let ax = || [("axes", Attr::Ints(vec![-1])), ("keepdims", Attr::Int(1))];
        let mean = self.b.op(scope, "ReduceMean", &[x], &ax());
        let d = self.b.op(scope, "Sub", &[x, &mean], &[]);
        let sq = self.b.op(scope, "Mul", &[&d, &d], &[]);
        let var = self.b.op(scope, "ReduceMean", &[&sq], &ax());
        let ve = self.b.op(scope, "Add", &[&var, &eps], &[]);
        let sd = self.b.op(scope, "Sqrt", &[&ve], &[]);
        let nrm = self.b.op(scope, "Div", &[&d, &sd], &[]);
        let sc = self.b.op(scope, "Mul", &[&nrm, &g], &[]);
        self.b.op(scope, "Add", &[&sc, &bb], &[])
    }
    fn gelu(&mut self, scope: &str, x: &str, act: Act) -> String {
        let (half, one) = (self.scalar(0.5), self.scalar(1.0));
        let a = match act {
            Act::Erf => {
                let s2 = self.scalar(std::f32::consts::SQRT_2);
                let d = self.b.op(scope, "Div", &[x, &s2], &[]);
                let e = self.b.op(scope, "Erf", &[&d], &[]);
                self.b.op(scope, "Add", &[&e, &one], &[])
            }
            Act::Tanh => {
                let (c, k) = (self.scalar(0.797_884_6), self.scalar(0.044715));
                let x2 = self.b.op(scope, "Mul", &[x, x], &[]);
                let x3 = self.b.op(scope, "Mul", &[&x2, x], &[]);
                let kx3 = self.b.op(scope, "Mul", &[&x3, &k], &[]);
                let inner = self.b.op(scope, "Add", &[x, &kx3], &[]);
                let ci = self.b.op(scope, "Mul", &[&inner, &c], &[]);
                let t = self.b.op(scope, "Tanh", &[&ci], &[]);
                self.b.op(scope, "Add", &[&t, &one], &[])
            }
        };
        let m = self.b.op(scope, "Mul", &[x, &a], &[]);
        self.b.op(scope, "Mul", &[&m, &half], &[])
    }
}

/// The exported graph of a `layers`-layer encoder; `shared` names every
/// layer's weights alike, as ALBERT's export does.
pub fn tiny_encoder(act: Act, pool: Pool, layers: usize, shared: bool) -> Model {
    let (batch, seq) = (Dim::Sym("batch".into()), Dim::Sym("seq".into()));
    let io = |name: &str, dtype, dims: &[Dim]| ValueInfo { name: name.into(), dtype, shape: Some(dims.to_vec()) };
    let mut graph = Graph { name: "tiny".into(), ..Default::default() };
    graph.inputs = vec![io("input_ids", DType::I64, &[batch.clone(), seq.clone()]), io("attention_mask", DType::I64, &[batch.clone(), seq])];
    graph.outputs = vec![io("logits", DType::F32, &[batch, Dim::Fixed(CLASSES)])];
    let mut x = Ex { b: Builder::new(&mut graph), seed: 7 };

    let s = "embeddings";
    let t = x.rand(&[V, H]);
    let word = x.b.init("embeddings.word_embeddings.weight", t);
    let t = x.rand(&[POS, H]);
    let pos = x.b.init("embeddings.position_embeddings.weight", t);
    let t = x.rand(&[H]);
    let ty = x.b.init("embeddings.token_type_embeddings.row0", t);
    let words = x.b.op(s, "Gather", &[&word, "input_ids"], &[("axis", Attr::Int(0))]);
    let pos_type = x.b.op(s, "Add", &[&pos, &ty], &[]);
    let shape = x.b.op(s, "Shape", &["input_ids"], &[]);
    let (c1, c2, c0) = (x.i64s(&[1]), x.i64s(&[2]), x.i64s(&[0]));
    let seq_len = x.b.op(s, "Slice", &[&shape, &c1, &c2, &c0], &[]);
    let pos_s = x.b.op(s, "Slice", &[&pos_type, &c0, &seq_len, &c0], &[]);
    let emb = x.b.op(s, "Add", &[&words, &pos_s], &[]);
    let mut hid = x.layer_norm(s, &emb, "embeddings.LayerNorm");

    let s = "mask";
    let mf = x.b.op(s, "Cast", &["attention_mask"], &[("to", Attr::Int(DType::F32.code() as i64))]);
    let one = x.scalar(1.0);
    let inv = x.b.op(s, "Sub", &[&one, &mf], &[]);
    let big = x.scalar(-10000.0);
    let madd = x.b.op(s, "Mul", &[&inv, &big], &[]);
    let ax12 = x.i64s(&[1, 2]);
    let mask4 = x.b.op(s, "Unsqueeze", &[&madd, &ax12], &[]);

    let hd = H / HEADS;
    let sqrt_d = x.scalar((hd as f32).sqrt());
    let split = x.i64s(&[0, 0, HEADS, hd]);
    let merge = x.i64s(&[0, 0, H]);
    let perm = |p: &[i64]| [("perm", Attr::Ints(p.to_vec()))];
    for i in 0..layers {
        let scope = format!("layer.{i}");
        let n = if shared { "encoder.albert_layer.shared".to_string() } else { format!("encoder.layer.{i}") };
        let q = x.linear(&scope, &hid, &format!("{n}.attention.query"), H, H);
        let k = x.linear(&scope, &hid, &format!("{n}.attention.key"), H, H);
        let v = x.linear(&scope, &hid, &format!("{n}.attention.value"), H, H);
        let q = x.b.op(&scope, "Reshape", &[&q, &split], &[]);
        let q = x.b.op(&scope, "Transpose", &[&q], &perm(&[0, 2, 1, 3]));
        let k = x.b.op(&scope, "Reshape", &[&k, &split], &[]);
        let k = x.b.op(&scope, "Transpose", &[&k], &perm(&[0, 2, 3, 1]));
        let v = x.b.op(&scope, "Reshape", &[&v, &split], &[]);
        let v = x.b.op(&scope, "Transpose", &[&v], &perm(&[0, 2, 1, 3]));
        let sc = x.b.op(&scope, "MatMul", &[&q, &k], &[]);
        let sc = x.b.op(&scope, "Div", &[&sc, &sqrt_d], &[]);
        let sc = x.b.op(&scope, "Add", &[&sc, &mask4], &[]);
        let p = x.b.op(&scope, "Softmax", &[&sc], &[("axis", Attr::Int(-1))]);
        let ctx = x.b.op(&scope, "MatMul", &[&p, &v], &[]);
        let ctx = x.b.op(&scope, "Transpose", &[&ctx], &perm(&[0, 2, 1, 3]));
        let ctx = x.b.op(&scope, "Reshape", &[&ctx, &merge], &[]);
        let o = x.linear(&scope, &ctx, &format!("{n}.attention.output"), H, H);
        let r = x.b.op(&scope, "Add", &[&o, &hid], &[]);
        let y = x.layer_norm(&scope, &r, &format!("{n}.attention.LayerNorm"));
        let f = x.linear(&scope, &y, &format!("{n}.ffn"), H, FFN);
        let f = x.gelu(&scope, &f, act);
        let f = x.linear(&scope, &f, &format!("{n}.ffn_output"), FFN, H);
        let r = x.b.op(&scope, "Add", &[&f, &y], &[]);
        hid = x.layer_norm(&scope, &r, &format!("{n}.output.LayerNorm"));
    }

    let s = "pool";
    let pooled = match pool {
        Pool::Mean => {
            let (ax2, ax1) = (x.i64s(&[2]), x.i64s(&[1]));
            let m3 = x.b.op(s, "Unsqueeze", &[&mf, &ax2], &[]);
            let xm = x.b.op(s, "Mul", &[&hid, &m3], &[]);
            let sum = x.b.op(s, "ReduceSum", &[&xm, &ax1], &[("keepdims", Attr::Int(0))]);
            let cnt = x.b.op(s, "ReduceSum", &[&m3, &ax1], &[("keepdims", Attr::Int(0))]);
            let tiny = x.scalar(1e-9);
            let cnt = x.b.op(s, "Max", &[&cnt, &tiny], &[]);
            x.b.op(s, "Div", &[&sum, &cnt], &[])
        }
        Pool::Pooler => {
            let zero = x.b.init("const/i64_scalar_0", Tensor::i64(&[], &[0]));
            let cls = x.b.op(s, "Gather", &[&hid, &zero], &[("axis", Attr::Int(1))]);
            let y = x.linear(s, &cls, "pooler", H, H);
            x.b.op(s, "Tanh", &[&y], &[])
        }
    };
    let logits = x.linear("classifier", &pooled, "classifier", H, CLASSES);
    x.b.graph.nodes.push(crate::graph::Node {
        name: "classifier/Identity_out".into(),
        op: "Identity".into(),
        domain: String::new(),
        inputs: vec![logits],
        outputs: vec!["logits".into()],
        attrs: BTreeMap::new(),
    });
    Model { graph, opsets: BTreeMap::from([(String::new(), 17)]), metadata: BTreeMap::new() }
}

/// A dense array for the reference evaluator (f64 throughout, so the only
/// differences between a graph and its optimized form are the rewrites').
#[derive(Clone, Debug)]
pub struct Arr {
    pub d: Vec<usize>,
    pub v: Vec<f64>,
}

fn for_each(dims: &[usize], mut f: impl FnMut(&[usize])) {
    if dims.contains(&0) {
        return;
    }
    let mut idx = vec![0; dims.len()];
    loop {
        f(&idx);
        let mut k = dims.len();
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            idx[k] += 1;
            if idx[k] < dims[k] {
                break;
            }
            idx[k] = 0;
        }
    }
}

/// Offset in `d` of the (right-aligned, broadcast) index `idx`.
fn at(d: &[usize], idx: &[usize]) -> usize {
    let skip = idx.len() - d.len();
    d.iter().zip(&idx[skip..]).fold(0, |o, (&n, &i)| o * n + if n == 1 { 0 } else { i })
}

fn bshape(a: &[usize], b: &[usize]) -> Vec<usize> {
    let r = a.len().max(b.len());
    let g = |s: &[usize], k: usize| if k + s.len() >= r { s[k + s.len() - r] } else { 1 };
    (0..r).map(|k| g(a, k).max(g(b, k))).collect()
}

fn zip(a: &Arr, b: &Arr, f: impl Fn(f64, f64) -> f64) -> Arr {
    let d = bshape(&a.d, &b.d);
    let mut v = Vec::new();
    for_each(&d, |i| v.push(f(a.v[at(&a.d, i)], b.v[at(&b.d, i)])));
    Arr { d, v }
}

fn map(a: &Arr, f: impl Fn(f64) -> f64) -> Arr {
    Arr { d: a.d.clone(), v: a.v.iter().map(|&x| f(x)).collect() }
}

fn transpose(a: &Arr, perm: &[usize]) -> Arr {
    let d: Vec<usize> = perm.iter().map(|&p| a.d[p]).collect();
    let mut v = Vec::new();
    for_each(&d, |i| {
        let mut src = vec![0; i.len()];
        for (k, &p) in perm.iter().enumerate() {
            src[p] = i[k];
        }
        v.push(a.v[at(&a.d, &src)]);
    });
    Arr { d, v }
}

fn matmul(a: &Arr, b: &Arr) -> Arr {
    let (ra, rb) = (a.d.len(), b.d.len());
    let (m, k, n) = (a.d[ra - 2], a.d[ra - 1], b.d[rb - 1]);
    let mut d = bshape(&a.d[..ra - 2], &b.d[..rb - 2]);
    d.extend([m, n]);
    let mut v = Vec::new();
    for_each(&d, |i| {
        let r = i.len();
        let mut s = 0.0;
        for kk in 0..k {
            let mut ia = i[..r - 2].to_vec();
            ia.extend([i[r - 2], kk]);
            let mut ib = i[..r - 2].to_vec();
            ib.extend([kk, i[r - 1]]);
            s += a.v[at(&a.d, &ia)] * b.v[at(&b.d, &ib)];
        }
        v.push(s);
    });
    Arr { d, v }
}

fn reduce(a: &Arr, axes: &[i64], keep: bool, mean: bool) -> Arr {
    let r = a.d.len();
    let ax: Vec<usize> = axes.iter().map(|&x| if x < 0 { (x + r as i64) as usize } else { x as usize }).collect();
    let kd: Vec<usize> = (0..r).map(|k| if ax.contains(&k) { 1 } else { a.d[k] }).collect();
    let mut v = vec![0.0; kd.iter().product()];
    for_each(&a.d, |i| {
        let o: Vec<usize> = i.iter().enumerate().map(|(k, &x)| if ax.contains(&k) { 0 } else { x }).collect();
        v[at(&kd, &o)] += a.v[at(&a.d, i)];
    });
    let n: usize = ax.iter().map(|&k| a.d[k]).product();
    if mean {
        v.iter_mut().for_each(|x| *x /= n as f64);
    }
    let d = if keep { kd } else { (0..r).filter(|k| !ax.contains(k)).map(|k| a.d[k]).collect() };
    Arr { d, v }
}

fn last_axis(a: &Arr, f: impl Fn(&mut [f64])) -> Arr {
    let mut out = a.clone();
    let n = *a.d.last().unwrap();
    out.v.chunks_mut(n).for_each(f);
    out
}

/// Evaluates `m` on `inputs` and returns its first output.
pub fn evaluate(m: &Model, inputs: &[(&str, Arr)]) -> Arr {
    let g = &m.graph;
    let mut env: BTreeMap<String, Arr> = inputs.iter().map(|(k, a)| (k.to_string(), a.clone())).collect();
    for (k, t) in &g.initializers {
        let v: Vec<f64> = match t.dtype {
            DType::F32 => t.to_f32().unwrap().into_iter().map(f64::from).collect(),
            _ => t.to_i64().unwrap().into_iter().map(|x| x as f64).collect(),
        };
        env.insert(k.clone(), Arr { d: t.dims.iter().map(|&x| x as usize).collect(), v });
    }
    let ints = |a: &Arr| a.v.iter().map(|&x| x as i64).collect::<Vec<_>>();
    for n in &g.nodes {
        let x: Vec<&Arr> = n.inputs.iter().map(|i| &env[i]).collect();
        let r = x[0].d.len();
        let y = match n.op.as_str() {
            "Add" => zip(x[0], x[1], |a, b| a + b),
            "Sub" => zip(x[0], x[1], |a, b| a - b),
            "Mul" => zip(x[0], x[1], |a, b| a * b),
            "Div" => zip(x[0], x[1], |a, b| a / b),
            "Max" => zip(x[0], x[1], f64::max),
            "Sqrt" => map(x[0], f64::sqrt),
            "Tanh" => map(x[0], libm::tanh),
            "Erf" => map(x[0], libm::erf),
            "Identity" | "Cast" => x[0].clone(),
            "Gelu" => map(x[0], |v| 0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2))),
            "FastGelu" => map(x[0], |v| 0.5 * v * (1.0 + libm::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))),
            "MatMul" => matmul(x[0], x[1]),
            "Gemm" => zip(&matmul(x[0], x[1]), x[2], |a, b| a + b),
            "Transpose" => transpose(x[0], &n.ints("perm").unwrap().iter().map(|&p| p as usize).collect::<Vec<_>>()),
            "Shape" => Arr { d: vec![r], v: x[0].d.iter().map(|&d| d as f64).collect() },
            "Unsqueeze" => {
                let mut d = x[0].d.clone();
                for a in ints(x[1]) {
                    d.insert(a as usize, 1);
                }
                Arr { d, v: x[0].v.clone() }
            }
            "Reshape" => {
                let t = ints(x[1]);
                let mut d: Vec<usize> = t.iter().enumerate().map(|(k, &s)| if s == 0 { x[0].d[k] } else { s.max(1) as usize }).collect();
                if let Some(k) = t.iter().position(|&s| s == -1) {
                    d[k] = x[0].v.len() / d.iter().product::<usize>();
                }
                Arr { d, v: x[0].v.clone() }
            }
            "ReduceMean" => reduce(x[0], n.ints("axes").unwrap(), n.int("keepdims") != Some(0), true),
            "ReduceSum" => reduce(x[0], &ints(x[1]), n.int("keepdims") != Some(0), false),
            "Softmax" => last_axis(x[0], |row| {
                let mx = row.iter().cloned().fold(f64::MIN, f64::max);
                row.iter_mut().for_each(|v| *v = (*v - mx).exp());
                let s: f64 = row.iter().sum();
                row.iter_mut().for_each(|v| *v /= s);
            }),
            "LayerNormalization" => {
                let Some(Attr::Float(eps)) = n.attrs.get("epsilon") else { panic!("epsilon") };
                let normed = last_axis(x[0], |row| {
                    let mean = row.iter().sum::<f64>() / row.len() as f64;
                    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / row.len() as f64;
                    row.iter_mut().for_each(|v| *v = (*v - mean) / (var + *eps as f64).sqrt());
                });
                zip(&zip(&normed, x[1], |a, b| a * b), x[2], |a, b| a + b)
            }
            "Gather" => {
                let axis = n.int("axis").unwrap_or(0) as usize;
                let (data, idx) = (x[0], x[1]);
                let mut d = data.d[..axis].to_vec();
                d.extend(&idx.d);
                d.extend(&data.d[axis + 1..]);
                let mut v = Vec::new();
                for_each(&d, |i| {
                    let q = idx.d.len();
                    let mut src = i[..axis].to_vec();
                    src.push(idx.v[at(&idx.d, &i[axis..axis + q])] as usize);
                    src.extend(&i[axis + q..]);
                    v.push(data.v[at(&data.d, &src)]);
                });
                Arr { d, v }
            }
            "Slice" => {
                let (s, e, a) = (ints(x[1]), ints(x[2]), ints(x[3]));
                let mut lo = vec![0; r];
                let mut d = x[0].d.clone();
                for k in 0..s.len() {
                    let ax = a[k] as usize;
                    lo[ax] = s[k] as usize;
                    d[ax] = (e[k] as usize).min(x[0].d[ax]) - lo[ax];
                }
                let mut v = Vec::new();
                for_each(&d, |i| {
                    let src: Vec<usize> = i.iter().zip(&lo).map(|(a, b)| a + b).collect();
                    v.push(x[0].v[at(&x[0].d, &src)]);
                });
                Arr { d, v }
            }
            op => panic!("reference evaluator: no {op}"),
        };
        env.insert(n.outputs[0].clone(), y);
    }
    env.remove(&g.outputs[0].name).unwrap()
}

/// Token ids and a mask with one padded position, `[2, 4]`.
pub fn sample_inputs() -> Vec<(&'static str, Arr)> {
    let ids = Arr { d: vec![2, 4], v: [1., 5., 19., 0., 3., 3., 7., 2.].to_vec() };
    let mask = Arr { d: vec![2, 4], v: [1., 1., 1., 0., 1., 1., 1., 1.].to_vec() };
    vec![("input_ids", ids), ("attention_mask", mask)]
}
