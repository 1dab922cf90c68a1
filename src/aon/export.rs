//! `avac aon export`: the converted classifier as an ONNX opset 17 graph.
//!
//! The graph is emitted the way a framework exporter emits it — LayerNorm and
//! GELU decomposed into primitive ops, linear weights in torch's `[out, in]`
//! layout behind a `Transpose` — so that `optimize` has real work to do and
//! its passes are exercised on every build. ALBERT's shared layer is emitted
//! once as initializers and referenced by every application.
//!
//! Interface: inputs `input_ids` and `attention_mask`, int64
//! `[batch, seq]`; output `logits`, float `[batch, classes]`. Token types are
//! always 0 for single-sentence intents, so the type-0 embedding row is
//! folded into the position table and no `token_type_ids` input is needed.

use super::classifier::Classifier;
use crate::formats::hf_config::{Activation, Family};
use crate::graph::{Attr, Builder, DType, Dim, Graph, Model, Tensor, ValueInfo};
use crate::model::encoder::{Dense, Norm};
use crate::model::Pooling;
use std::collections::BTreeMap;

/// Opset of the ai.onnx domain.
pub const OPSET: i64 = 17;
/// The contrib domain used for fused GELU (understood by onnxruntime and tract).
pub const MS_DOMAIN: &str = "com.microsoft";
/// Additive mask value for padded positions.
pub const MASK_VALUE: f32 = -10000.0;

fn ints(v: &[i64]) -> Attr {
    Attr::Ints(v.to_vec())
}

struct Ex<'g> {
    b: Builder<'g>,
    consts: BTreeMap<String, String>,
}

impl Ex<'_> {
    fn scalar(&mut self, v: f32) -> String {
        let key = format!("const/f32_{:08x}", v.to_bits());
        if !self.consts.contains_key(&key) {
            self.b.init(&key, Tensor::scalar_f32(v));
            self.consts.insert(key.clone(), key.clone());
        }
        key
    }

    fn i64s(&mut self, v: &[i64]) -> String {
        let key = format!("const/i64_{}", v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("_")).replace('-', "m");
        if !self.consts.contains_key(&key) {
            self.b.init(&key, Tensor::i64(&[v.len() as i64], v));
            self.consts.insert(key.clone(), key.clone());
        }
        key
    }

    /// Registers a dense layer's parameters once (shared layers share names).
    fn dense_params(&mut self, name: &str, d: &Dense) -> (String, String) {
        let w = format!("{name}.weight");
        let b = format!("{name}.bias");
        if !self.b.graph.initializers.contains_key(&w) {
            self.b.init(&w, Tensor::f32(&[d.out as i64, d.inp as i64], &d.w));
            self.b.init(&b, Tensor::f32(&[d.out as i64], &d.b));
        }
        (w, b)
    }

    fn linear(&mut self, scope: &str, x: &str, name: &str, d: &Dense) -> String {
        let (w, b) = self.dense_params(name, d);
        let wt = self.b.op(scope, "Transpose", &[&w], &[("perm", ints(&[1, 0]))]);
        let y = self.b.op(scope, "MatMul", &[x, &wt], &[]);
        self.b.op(scope, "Add", &[&y, &b], &[])
    }

    fn layer_norm(&mut self, scope: &str, x: &str, name: &str, n: &Norm, eps: f32) -> String {
        let g = format!("{name}.weight");
        let bb = format!("{name}.bias");
        if !self.b.graph.initializers.contains_key(&g) {
            let w = n.gamma.len() as i64;
            self.b.init(&g, Tensor::f32(&[w], &n.gamma));
            self.b.init(&bb, Tensor::f32(&[w], &n.beta));
        }
        let eps = self.scalar(eps);
        let mean = self.b.op(scope, "ReduceMean", &[x], &[("axes", ints(&[-1])), ("keepdims", Attr::Int(1))]);
        let d = self.b.op(scope, "Sub", &[x, &mean], &[]);
        let sq = self.b.op(scope, "Mul", &[&d, &d], &[]);
        let var = self.b.op(scope, "ReduceMean", &[&sq], &[("axes", ints(&[-1])), ("keepdims", Attr::Int(1))]);
        let ve = self.b.op(scope, "Add", &[&var, &eps], &[]);
        let sd = self.b.op(scope, "Sqrt", &[&ve], &[]);
        let nrm = self.b.op(scope, "Div", &[&d, &sd], &[]);
        let sc = self.b.op(scope, "Mul", &[&nrm, &g], &[]);
        self.b.op(scope, "Add", &[&sc, &bb], &[])
    }

    fn gelu(&mut self, scope: &str, x: &str, act: Activation) -> String {
        let half = self.scalar(0.5);
        let one = self.scalar(1.0);
        match act {
            Activation::GeluErf => {
                let s2 = self.scalar(std::f32::consts::SQRT_2);
                let d = self.b.op(scope, "Div", &[x, &s2], &[]);
                let e = self.b.op(scope, "Erf", &[&d], &[]);
                let a = self.b.op(scope, "Add", &[&e, &one], &[]);
                let m = self.b.op(scope, "Mul", &[x, &a], &[]);
                self.b.op(scope, "Mul", &[&m, &half], &[])
            }
            Activation::GeluTanh => {
                let c = self.scalar(0.797_884_6);
                let k = self.scalar(0.044715);
                let x2 = self.b.op(scope, "Mul", &[x, x], &[]);
                let x3 = self.b.op(scope, "Mul", &[&x2, x], &[]);
                let kx3 = self.b.op(scope, "Mul", &[&x3, &k], &[]);
                let inner = self.b.op(scope, "Add", &[x, &kx3], &[]);
                let ci = self.b.op(scope, "Mul", &[&inner, &c], &[]);
                let t = self.b.op(scope, "Tanh", &[&ci], &[]);
                let a = self.b.op(scope, "Add", &[&t, &one], &[]);
                let m = self.b.op(scope, "Mul", &[x, &a], &[]);
                self.b.op(scope, "Mul", &[&m, &half], &[])
            }
        }
    }
}

fn io(name: &str, dtype: DType, dims: &[Dim]) -> ValueInfo {
    ValueInfo { name: name.into(), dtype, shape: Some(dims.to_vec()) }
}

/// Builds the unoptimized ONNX model of a converted classifier.
/// `metadata` is written into `metadata_props` as given.
pub fn export(c: &Classifier, metadata: BTreeMap<String, String>) -> Model {
    let enc = &c.encoder;
    let cfg = &enc.cfg;
    let (e, h, heads, hd) = (cfg.embedding_size as i64, cfg.hidden_size as i64, cfg.num_heads as i64, cfg.head_dim() as i64);
    let batch = Dim::Sym("batch".into());
    let seq = Dim::Sym("seq".into());
    let mut graph = Graph { name: "malbert_intent_classifier".into(), ..Default::default() };
    graph.inputs = vec![io("input_ids", DType::I64, &[batch.clone(), seq.clone()]), io("attention_mask", DType::I64, &[batch.clone(), seq.clone()])];
    graph.outputs = vec![io("logits", DType::F32, &[batch, Dim::Fixed(c.labels.len() as i64)])];
    let mut x = Ex { b: Builder::new(&mut graph), consts: BTreeMap::new() };

    // Embeddings.
    let s = "embeddings";
    let positions = (enc.pos.len() / cfg.embedding_size) as i64;
    let word = x.b.init("embeddings.word_embeddings.weight", Tensor::f32(&[cfg.vocab_size as i64, e], &enc.word));
    let pos = x.b.init("embeddings.position_embeddings.weight", Tensor::f32(&[positions, e], &enc.pos));
    let ty = x.b.init("embeddings.token_type_embeddings.row0", Tensor::f32(&[e], &enc.token_type[..cfg.embedding_size]));
    let words = x.b.op(s, "Gather", &[&word, "input_ids"], &[("axis", Attr::Int(0))]);
    let pos_type = x.b.op(s, "Add", &[&pos, &ty], &[]);
    let shape = x.b.op(s, "Shape", &["input_ids"], &[]);
    let (c1, c2, c0) = (x.i64s(&[1]), x.i64s(&[2]), x.i64s(&[0]));
    let seq_len = x.b.op(s, "Slice", &[&shape, &c1, &c2, &c0], &[]);
    let pos_s = x.b.op(s, "Slice", &[&pos_type, &c0, &seq_len, &c0], &[]);
    let emb = x.b.op(s, "Add", &[&words, &pos_s], &[]);
    let mut hid = x.layer_norm(s, &emb, "embeddings.LayerNorm", &enc.emb_norm, cfg.layer_norm_eps);
    if let Some(p) = &enc.proj {
        hid = x.linear(s, &hid, "encoder.embedding_hidden_mapping_in", p);
    }

    // Additive attention mask [batch, 1, 1, seq].
    let s = "mask";
    let mf = x.b.op(s, "Cast", &["attention_mask"], &[("to", Attr::Int(DType::F32.code() as i64))]);
    let one = x.scalar(1.0);
    let inv = x.b.op(s, "Sub", &[&one, &mf], &[]);
    let big = x.scalar(MASK_VALUE);
    let madd = x.b.op(s, "Mul", &[&inv, &big], &[]);
    let ax12 = x.i64s(&[1, 2]);
    let mask4 = x.b.op(s, "Unsqueeze", &[&madd, &ax12], &[]);

    let sqrt_d = x.scalar((hd as f32).sqrt());
    let split = x.i64s(&[0, 0, heads, hd]);
    let merge = x.i64s(&[0, 0, h]);
    for (i, &li) in enc.schedule.iter().enumerate() {
        let l = &enc.layers[li];
        let scope = format!("layer.{i}");
        let n = match cfg.family {
            Family::Bert => format!("encoder.layer.{li}"),
            Family::Albert => "encoder.albert_layer.shared".to_string(),
        };
        let q = x.linear(&scope, &hid, &format!("{n}.attention.query"), &l.query);
        let k = x.linear(&scope, &hid, &format!("{n}.attention.key"), &l.key);
        let v = x.linear(&scope, &hid, &format!("{n}.attention.value"), &l.value);
        let q = x.b.op(&scope, "Reshape", &[&q, &split], &[]);
        let q = x.b.op(&scope, "Transpose", &[&q], &[("perm", ints(&[0, 2, 1, 3]))]);
        let k = x.b.op(&scope, "Reshape", &[&k, &split], &[]);
        let k = x.b.op(&scope, "Transpose", &[&k], &[("perm", ints(&[0, 2, 3, 1]))]);
        let v = x.b.op(&scope, "Reshape", &[&v, &split], &[]);
        let v = x.b.op(&scope, "Transpose", &[&v], &[("perm", ints(&[0, 2, 1, 3]))]);
        let sc = x.b.op(&scope, "MatMul", &[&q, &k], &[]);
        let sc = x.b.op(&scope, "Div", &[&sc, &sqrt_d], &[]);
        let sc = x.b.op(&scope, "Add", &[&sc, &mask4], &[]);
        let p = x.b.op(&scope, "Softmax", &[&sc], &[("axis", Attr::Int(-1))]);
        let ctx = x.b.op(&scope, "MatMul", &[&p, &v], &[]);
        let ctx = x.b.op(&scope, "Transpose", &[&ctx], &[("perm", ints(&[0, 2, 1, 3]))]);
        let ctx = x.b.op(&scope, "Reshape", &[&ctx, &merge], &[]);
        let o = x.linear(&scope, &ctx, &format!("{n}.attention.output"), &l.attn_out);
        let r = x.b.op(&scope, "Add", &[&o, &hid], &[]);
        let y = x.layer_norm(&scope, &r, &format!("{n}.attention.LayerNorm"), &l.attn_norm, cfg.layer_norm_eps);
        let f = x.linear(&scope, &y, &format!("{n}.ffn"), &l.ffn_in);
        let f = x.gelu(&scope, &f, cfg.activation);
        let f = x.linear(&scope, &f, &format!("{n}.ffn_output"), &l.ffn_out);
        let r = x.b.op(&scope, "Add", &[&f, &y], &[]);
        hid = x.layer_norm(&scope, &r, &format!("{n}.output.LayerNorm"), &l.out_norm, cfg.layer_norm_eps);
    }

    // Pooling.
    let s = "pool";
    let pooled = match c.pooling {
        Pooling::Mean | Pooling::MeanNormalized => {
            let ax2 = x.i64s(&[2]);
            let ax1 = x.i64s(&[1]);
            let m3 = x.b.op(s, "Unsqueeze", &[&mf, &ax2], &[]);
            let xm = x.b.op(s, "Mul", &[&hid, &m3], &[]);
            let sum = x.b.op(s, "ReduceSum", &[&xm, &ax1], &[("keepdims", Attr::Int(0))]);
            let cnt = x.b.op(s, "ReduceSum", &[&m3, &ax1], &[("keepdims", Attr::Int(0))]);
            let tiny = x.scalar(1e-9);
            let cnt = x.b.op(s, "Max", &[&cnt, &tiny], &[]);
            let mean = x.b.op(s, "Div", &[&sum, &cnt], &[]);
            if c.pooling == Pooling::MeanNormalized {
                let axl = x.i64s(&[-1]);
                let sq = x.b.op(s, "Mul", &[&mean, &mean], &[]);
                let ss = x.b.op(s, "ReduceSum", &[&sq, &axl], &[("keepdims", Attr::Int(1))]);
                let nrm = x.b.op(s, "Sqrt", &[&ss], &[]);
                let eps = x.scalar(1e-12);
                let nrm = x.b.op(s, "Max", &[&nrm, &eps], &[]);
                x.b.op(s, "Div", &[&mean, &nrm], &[])
            } else {
                mean
            }
        }
        Pooling::Cls | Pooling::Pooler => {
            let zero = x.b.init("const/i64_scalar_0", Tensor::i64(&[], &[0]));
            let cls = x.b.op(s, "Gather", &[&hid, &zero], &[("axis", Attr::Int(1))]);
            match (&c.pooling, &enc.pooler) {
                (Pooling::Pooler, Some(p)) => {
                    let y = x.linear(s, &cls, "pooler", p);
                    x.b.op(s, "Tanh", &[&y], &[])
                }
                (Pooling::Pooler, None) => x.b.op(s, "Tanh", &[&cls], &[]),
                _ => cls,
            }
        }
    };
    let logits = x.linear("classifier", &pooled, "classifier", &c.head);
    x.b.graph.nodes.push(crate::graph::Node {
        name: "classifier/Identity_out".into(),
        op: "Identity".into(),
        domain: String::new(),
        inputs: vec![logits],
        outputs: vec!["logits".into()],
        attrs: BTreeMap::new(),
    });
    let mut opsets = BTreeMap::new();
    opsets.insert(String::new(), OPSET);
    Model { graph, opsets, metadata }
}
