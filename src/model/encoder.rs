//! BERT and ALBERT encoders: the reference forward.
//!
//! Per token: `e = word[id] + (pos[t] + type[0])`, LayerNorm, (ALBERT: a
//! projection from the embedding width to the hidden width), then layers of
//! `x = LN(attn(x)·Woᵀ + bo + x)`, `x = LN(act(x·W1ᵀ + b1)·W2ᵀ + b2 + x)`.
//! Sequences are processed at their own length (no padding), so a masked
//! position never enters a sum; exported graphs mask padding with an
//! additive `-10000`, whose softmax weight is exactly zero in f32.
//! ALBERT keeps one [`Layer`] and a schedule that applies it `num_layers`
//! times: shared weights are shared in memory and in every export.

use super::weights::{ModelError, Weights};
use crate::formats::hf_config::{Activation, EncoderConfig, Family};
use crate::kernels::{gelu_erf, gelu_tanh, layer_norm_in_place, linear, softmax_in_place, PackedLinear};
use rayon::prelude::*;

/// A dense layer `y = x·Wᵀ + b` (torch layout `[out, in]`).
#[derive(Clone, Debug)]
pub struct Dense {
    /// Weights `[out, in]`.
    pub w: Vec<f32>,
    /// Bias `[out]`.
    pub b: Vec<f32>,
    /// Output width.
    pub out: usize,
    /// Input width.
    pub inp: usize,
    packed: PackedLinear,
}

impl Dense {
    /// Builds a dense layer from `[out, in]` weights and a bias.
    pub fn new(w: Vec<f32>, b: Vec<f32>, out: usize, inp: usize) -> Self {
        let packed = PackedLinear::new(&w, out, inp, Some(&b));
        Dense { w, b, out, inp, packed }
    }

    fn load(src: &dyn Weights, prefixes: &[&str], name: &str, out: usize, inp: usize) -> Result<Self, ModelError> {
        let w = src.expect(prefixes, &format!("{name}.weight"), &[out, inp])?;
        let b = src.expect(prefixes, &format!("{name}.bias"), &[out])?;
        Ok(Self::new(w, b, out, inp))
    }

    /// Applies the layer to `rows` rows of `x`.
    pub fn apply(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut y = vec![0.0; rows * self.out];
        linear(x, rows, &self.packed, &mut y);
        y
    }
}

/// LayerNorm parameters.
#[derive(Clone, Debug)]
pub struct Norm {
    /// Scale.
    pub gamma: Vec<f32>,
    /// Shift.
    pub beta: Vec<f32>,
}

impl Norm {
    fn load(src: &dyn Weights, prefixes: &[&str], name: &str, width: usize) -> Result<Self, ModelError> {
        Ok(Norm { gamma: src.expect(prefixes, &format!("{name}.weight"), &[width])?, beta: src.expect(prefixes, &format!("{name}.bias"), &[width])? })
    }

    fn apply(&self, x: &mut [f32], eps: f32) {
        let w = self.gamma.len();
        x.par_chunks_mut(w).for_each(|row| layer_norm_in_place(row, &self.gamma, &self.beta, eps));
    }
}

/// One transformer layer's parameters.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Query projection.
    pub query: Dense,
    /// Key projection.
    pub key: Dense,
    /// Value projection.
    pub value: Dense,
    /// Attention output projection.
    pub attn_out: Dense,
    /// LayerNorm after attention.
    pub attn_norm: Norm,
    /// Feed-forward up projection.
    pub ffn_in: Dense,
    /// Feed-forward down projection.
    pub ffn_out: Dense,
    /// LayerNorm after the feed-forward block.
    pub out_norm: Norm,
    qkv: PackedLinear,
}

impl Layer {
    fn new(query: Dense, key: Dense, value: Dense, rest: (Dense, Norm, Dense, Dense, Norm)) -> Self {
        let (attn_out, attn_norm, ffn_in, ffn_out, out_norm) = rest;
        let h = query.out;
        let w: Vec<f32> = [&query.w, &key.w, &value.w].into_iter().flatten().copied().collect();
        let b: Vec<f32> = [&query.b, &key.b, &value.b].into_iter().flatten().copied().collect();
        let qkv = PackedLinear::new(&w, 3 * h, query.inp, Some(&b));
        Layer { query, key, value, attn_out, attn_norm, ffn_in, ffn_out, out_norm, qkv }
    }
}

/// How a sequence's hidden states become one feature vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pooling {
    /// Mean over tokens (sentence-transformers' default).
    Mean,
    /// Mean over tokens, then L2-normalised (sentence-transformers' `Normalize`).
    MeanNormalized,
    /// The first (`[CLS]`) token's hidden state.
    Cls,
    /// `tanh(W·h_cls + b)`: BERT/ALBERT's pooler layer.
    Pooler,
}

/// A loaded encoder.
#[derive(Clone, Debug)]
pub struct Encoder {
    /// The configuration it was built from.
    pub cfg: EncoderConfig,
    /// Word embeddings `[vocab, emb]`.
    pub word: Vec<f32>,
    /// Position embeddings `[positions, emb]`.
    pub pos: Vec<f32>,
    /// Token-type embeddings `[types, emb]`; only row 0 is used.
    pub token_type: Vec<f32>,
    /// Embedding LayerNorm.
    pub emb_norm: Norm,
    /// ALBERT's embedding-to-hidden projection.
    pub proj: Option<Dense>,
    /// Distinct layers (ALBERT: one).
    pub layers: Vec<Layer>,
    /// Index into `layers` for each application, in order.
    pub schedule: Vec<usize>,
    /// The pooler, when the checkpoint has one.
    pub pooler: Option<Dense>,
    pos_type: Vec<f32>,
}

/// Hidden states of a batch: rows of all sequences, concatenated.
pub struct Hidden {
    /// `[total_tokens, hidden]`.
    pub data: Vec<f32>,
    /// Start row of each sequence, plus a final end.
    pub offsets: Vec<usize>,
}

const BERT: &[&str] = &["", "bert."];
const ALBERT: &[&str] = &["", "albert."];

impl Encoder {
    /// Builds the encoder from a configuration and its tensors, checking
    /// every shape against the configuration.
    pub fn load(cfg: &EncoderConfig, src: &dyn Weights) -> Result<Self, ModelError> {
        let p = match cfg.family {
            Family::Bert => BERT,
            Family::Albert => ALBERT,
        };
        let (e, h, f) = (cfg.embedding_size, cfg.hidden_size, cfg.intermediate_size);
        let word = src.expect(p, "embeddings.word_embeddings.weight", &[cfg.vocab_size, e])?;
        let pos = src.expect(p, "embeddings.position_embeddings.weight", &[cfg.max_positions, e])?;
        let token_type = src.expect(p, "embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size, e])?;
        let emb_norm = Norm::load(src, p, "embeddings.LayerNorm", e)?;
        let (proj, layers, schedule) = match cfg.family {
            Family::Bert => {
                let layers = (0..cfg.num_layers)
                    .map(|i| {
                        let n = format!("encoder.layer.{i}");
                        Ok(Layer::new(
                            Dense::load(src, p, &format!("{n}.attention.self.query"), h, h)?,
                            Dense::load(src, p, &format!("{n}.attention.self.key"), h, h)?,
                            Dense::load(src, p, &format!("{n}.attention.self.value"), h, h)?,
                            (
                                Dense::load(src, p, &format!("{n}.attention.output.dense"), h, h)?,
                                Norm::load(src, p, &format!("{n}.attention.output.LayerNorm"), h)?,
                                Dense::load(src, p, &format!("{n}.intermediate.dense"), f, h)?,
                                Dense::load(src, p, &format!("{n}.output.dense"), h, f)?,
                                Norm::load(src, p, &format!("{n}.output.LayerNorm"), h)?,
                            ),
                        ))
                    })
                    .collect::<Result<Vec<_>, ModelError>>()?;
                (None, layers, (0..cfg.num_layers).collect())
            }
            Family::Albert => {
                let n = "encoder.albert_layer_groups.0.albert_layers.0";
                let layer = Layer::new(
                    Dense::load(src, p, &format!("{n}.attention.query"), h, h)?,
                    Dense::load(src, p, &format!("{n}.attention.key"), h, h)?,
                    Dense::load(src, p, &format!("{n}.attention.value"), h, h)?,
                    (
                        Dense::load(src, p, &format!("{n}.attention.dense"), h, h)?,
                        Norm::load(src, p, &format!("{n}.attention.LayerNorm"), h)?,
                        Dense::load(src, p, &format!("{n}.ffn"), f, h)?,
                        Dense::load(src, p, &format!("{n}.ffn_output"), h, f)?,
                        Norm::load(src, p, &format!("{n}.full_layer_layer_norm"), h)?,
                    ),
                );
                let proj = Dense::load(src, p, "encoder.embedding_hidden_mapping_in", h, e)?;
                (Some(proj), vec![layer], vec![0; cfg.num_layers])
            }
        };
        let pooler_name = match cfg.family {
            Family::Bert => "pooler.dense",
            Family::Albert => "pooler",
        };
        let pooler = if p.iter().any(|pre| src.has(&format!("{pre}{pooler_name}.weight"))) { Some(Dense::load(src, p, pooler_name, h, h)?) } else { None };
        Ok(Self::assemble(cfg.clone(), word, pos, token_type, emb_norm, proj, layers, schedule, pooler))
    }

    /// Puts an encoder together from parts (conversion rebuilds one after
    /// pruning the vocabulary and capping positions).
    #[allow(clippy::too_many_arguments)]
    pub fn assemble(
        cfg: EncoderConfig,
        word: Vec<f32>,
        pos: Vec<f32>,
        token_type: Vec<f32>,
        emb_norm: Norm,
        proj: Option<Dense>,
        layers: Vec<Layer>,
        schedule: Vec<usize>,
        pooler: Option<Dense>,
    ) -> Self {
        let e = cfg.embedding_size;
        let pos_type = pos.chunks_exact(e).flat_map(|row| row.iter().zip(&token_type[..e]).map(|(a, b)| a + b)).collect();
        Encoder { cfg, word, pos, token_type, emb_norm, proj, layers, schedule, pooler, pos_type }
    }

    /// Hidden states for a batch of token-id sequences.
    pub fn forward(&self, seqs: &[&[u32]]) -> Result<Hidden, ModelError> {
        let cfg = &self.cfg;
        let (e, h) = (cfg.embedding_size, cfg.hidden_size);
        let mut offsets = Vec::with_capacity(seqs.len() + 1);
        let mut total = 0usize;
        for s in seqs {
            if s.len() > cfg.max_positions {
                return Err(ModelError::TooLong { len: s.len(), max: cfg.max_positions });
            }
            if let Some(&id) = s.iter().find(|&&id| id as usize >= cfg.vocab_size) {
                return Err(ModelError::TokenOutOfRange { id, vocab: cfg.vocab_size });
            }
            offsets.push(total);
            total += s.len();
        }
        offsets.push(total);
        let mut x = Vec::with_capacity(total * e);
        for s in seqs {
            for (t, &id) in s.iter().enumerate() {
                let w = &self.word[id as usize * e..(id as usize + 1) * e];
                let pt = &self.pos_type[t * e..(t + 1) * e];
                x.extend(w.iter().zip(pt).map(|(a, b)| a + b));
            }
        }
        self.emb_norm.apply(&mut x, cfg.layer_norm_eps);
        let mut x = match &self.proj {
            Some(p) => p.apply(&x, total),
            None => x,
        };
        for &li in &self.schedule {
            x = self.layer(&self.layers[li], x, &offsets);
        }
        debug_assert_eq!(x.len(), total * h);
        Ok(Hidden { data: x, offsets })
    }

    fn layer(&self, l: &Layer, x: Vec<f32>, offsets: &[usize]) -> Vec<f32> {
        let cfg = &self.cfg;
        let (h, heads, d) = (cfg.hidden_size, cfg.num_heads, cfg.head_dim());
        let rows = x.len() / h;
        let mut qkv = vec![0.0; rows * 3 * h];
        linear(&x, rows, &l.qkv, &mut qkv);
        let mut ctx = vec![0.0f32; rows * h];
        let scale = (d as f32).sqrt();
        // Split the context buffer by sequence; each sequence is one task.
        let mut chunks: Vec<&mut [f32]> = Vec::with_capacity(offsets.len());
        let mut rest = ctx.as_mut_slice();
        for w in offsets.windows(2) {
            let (a, b) = rest.split_at_mut((w[1] - w[0]) * h);
            chunks.push(a);
            rest = b;
        }
        chunks.into_par_iter().enumerate().for_each(|(si, out)| {
            let (start, len) = (offsets[si], offsets[si + 1] - offsets[si]);
            let q = |i: usize, hd: usize| &qkv[(start + i) * 3 * h + hd * d..][..d];
            let k = |j: usize, hd: usize| &qkv[(start + j) * 3 * h + h + hd * d..][..d];
            let v = |j: usize, hd: usize, c: usize| qkv[(start + j) * 3 * h + 2 * h + hd * d + c];
            let mut scores = vec![0.0f32; len];
            for hd in 0..heads {
                for i in 0..len {
                    let qi = q(i, hd);
                    for (j, s) in scores.iter_mut().enumerate() {
                        let mut acc = 0.0f32;
                        for (a, b) in qi.iter().zip(k(j, hd)) {
                            acc += a * b;
                        }
                        *s = acc / scale;
                    }
                    softmax_in_place(&mut scores);
                    let o = &mut out[i * h + hd * d..i * h + (hd + 1) * d];
                    for (c, oc) in o.iter_mut().enumerate() {
                        let mut acc = 0.0f32;
                        for (j, &p) in scores.iter().enumerate() {
                            acc += p * v(j, hd, c);
                        }
                        *oc = acc;
                    }
                }
            }
        });
        let mut y = l.attn_out.apply(&ctx, rows);
        add_in_place(&mut y, &x);
        l.attn_norm.apply(&mut y, cfg.layer_norm_eps);
        let mut f = l.ffn_in.apply(&y, rows);
        let act: fn(f32) -> f32 = match cfg.activation {
            Activation::GeluErf => gelu_erf,
            Activation::GeluTanh => gelu_tanh,
        };
        f.par_chunks_mut(4096).for_each(|c| c.iter_mut().for_each(|v| *v = act(*v)));
        let mut z = l.ffn_out.apply(&f, rows);
        add_in_place(&mut z, &y);
        l.out_norm.apply(&mut z, cfg.layer_norm_eps);
        z
    }

    /// One feature vector per sequence, `[seqs, hidden]`.
    pub fn pool(&self, hidden: &Hidden, pooling: Pooling) -> Vec<f32> {
        let h = self.cfg.hidden_size;
        let n = hidden.offsets.len() - 1;
        let mut out = vec![0.0f32; n * h];
        let cls: Vec<f32> = hidden.offsets[..n].iter().flat_map(|&s| hidden.data[s * h..(s + 1) * h].iter().copied()).collect();
        match pooling {
            Pooling::Cls => out = cls,
            Pooling::Pooler => {
                out = match &self.pooler {
                    Some(p) => p.apply(&cls, n),
                    None => cls,
                };
                out.iter_mut().for_each(|v| *v = libm::tanhf(*v));
            }
            Pooling::Mean | Pooling::MeanNormalized => {
                for (si, o) in out.chunks_exact_mut(h).enumerate() {
                    let (a, b) = (hidden.offsets[si], hidden.offsets[si + 1]);
                    for t in a..b {
                        add_in_place(o, &hidden.data[t * h..(t + 1) * h]);
                    }
                    let count = (b - a) as f32;
                    o.iter_mut().for_each(|v| *v /= count);
                    if pooling == Pooling::MeanNormalized {
                        l2_normalize(o);
                    }
                }
            }
        }
        out
    }

    /// Pooled features for many sequences, in batches of about
    /// `batch_tokens` tokens (results do not depend on the batching).
    pub fn embed(&self, seqs: &[Vec<u32>], pooling: Pooling, batch_tokens: usize) -> Result<Vec<f32>, ModelError> {
        let mut out = Vec::with_capacity(seqs.len() * self.cfg.hidden_size);
        let mut start = 0;
        while start < seqs.len() {
            let mut end = start;
            let mut tokens = 0;
            while end < seqs.len() && (end == start || tokens + seqs[end].len() <= batch_tokens) {
                tokens += seqs[end].len();
                end += 1;
            }
            let batch: Vec<&[u32]> = seqs[start..end].iter().map(|s| s.as_slice()).collect();
            let hidden = self.forward(&batch)?;
            out.extend(self.pool(&hidden, pooling));
            start = end;
        }
        Ok(out)
    }
}

fn add_in_place(acc: &mut [f32], x: &[f32]) {
    acc.iter_mut().zip(x).for_each(|(a, b)| *a += b);
}

/// `x / max(||x||, 1e-12)`, the norm summed left to right.
pub fn l2_normalize(x: &mut [f32]) {
    let mut sq = 0.0f32;
    for v in x.iter() {
        sq += v * v;
    }
    let n = sq.sqrt().max(1e-12);
    x.iter_mut().for_each(|v| *v /= n);
}

impl Encoder {
    /// The encoder's tensors under Hugging Face names (no model prefix), as
    /// `(shape, values)`; ALBERT's shared layer appears once.
    pub fn tensors(&self) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)> {
        let cfg = &self.cfg;
        let e = cfg.embedding_size;
        let mut t = std::collections::BTreeMap::new();
        let mut put = |name: String, shape: Vec<usize>, v: &[f32]| {
            t.insert(name, (shape, v.to_vec()));
        };
        put("embeddings.word_embeddings.weight".into(), vec![self.word.len() / e, e], &self.word);
        put("embeddings.position_embeddings.weight".into(), vec![self.pos.len() / e, e], &self.pos);
        put("embeddings.token_type_embeddings.weight".into(), vec![self.token_type.len() / e, e], &self.token_type);
        let norm = |put: &mut dyn FnMut(String, Vec<usize>, &[f32]), name: &str, n: &Norm| {
            put(format!("{name}.weight"), vec![n.gamma.len()], &n.gamma);
            put(format!("{name}.bias"), vec![n.beta.len()], &n.beta);
        };
        norm(&mut put, "embeddings.LayerNorm", &self.emb_norm);
        let dense = |put: &mut dyn FnMut(String, Vec<usize>, &[f32]), name: &str, d: &Dense| {
            put(format!("{name}.weight"), vec![d.out, d.inp], &d.w);
            put(format!("{name}.bias"), vec![d.out], &d.b);
        };
        if let Some(p) = &self.proj {
            dense(&mut put, "encoder.embedding_hidden_mapping_in", p);
        }
        for (i, l) in self.layers.iter().enumerate() {
            let names: [String; 8] = match cfg.family {
                Family::Bert => {
                    let n = format!("encoder.layer.{i}");
                    [
                        format!("{n}.attention.self.query"),
                        format!("{n}.attention.self.key"),
                        format!("{n}.attention.self.value"),
                        format!("{n}.attention.output.dense"),
                        format!("{n}.attention.output.LayerNorm"),
                        format!("{n}.intermediate.dense"),
                        format!("{n}.output.dense"),
                        format!("{n}.output.LayerNorm"),
                    ]
                }
                Family::Albert => {
                    let n = "encoder.albert_layer_groups.0.albert_layers.0";
                    [
                        format!("{n}.attention.query"),
                        format!("{n}.attention.key"),
                        format!("{n}.attention.value"),
                        format!("{n}.attention.dense"),
                        format!("{n}.attention.LayerNorm"),
                        format!("{n}.ffn"),
                        format!("{n}.ffn_output"),
                        format!("{n}.full_layer_layer_norm"),
                    ]
                }
            };
            dense(&mut put, &names[0], &l.query);
            dense(&mut put, &names[1], &l.key);
            dense(&mut put, &names[2], &l.value);
            dense(&mut put, &names[3], &l.attn_out);
            norm(&mut put, &names[4], &l.attn_norm);
            dense(&mut put, &names[5], &l.ffn_in);
            dense(&mut put, &names[6], &l.ffn_out);
            norm(&mut put, &names[7], &l.out_norm);
        }
        if let Some(p) = &self.pooler {
            let name = match cfg.family {
                Family::Bert => "pooler.dense",
                Family::Albert => "pooler",
            };
            dense(&mut put, name, p);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::safetensors::SafeTensors;

    #[test]
    fn same_bits_for_one_and_three_threads_and_any_batching() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        crate::fixtures::generate("albert", &Default::default(), &m).unwrap();
        let cfg = EncoderConfig::read(&m.join("config.json")).unwrap();
        let st = SafeTensors::read(&m.join("model.safetensors")).unwrap();
        let enc = Encoder::load(&cfg, &st).unwrap();
        let seqs: Vec<Vec<u32>> = (0..23u32).map(|i| (0..(3 + i % 17)).map(|t| (i * 31 + t * 7) % 1800 + 5).collect()).collect();
        let run = |threads: usize, batch: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| enc.embed(&seqs, Pooling::Mean, batch).unwrap())
        };
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        let one = bits(run(1, 1));
        assert_eq!(one, bits(run(3, 4096)));
        assert_eq!(one, bits(run(2, 50)));
    }
}
