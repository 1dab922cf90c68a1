//! `avac alc quantize`: a Gemma 3 [`Checkpoint`] to MLC's `q4bf16_1`
//! parameter layout.
//!
//! # Parameters, in record order
//!
//! MLC's `Gemma3ForCausalLM` (`python/mlc_llm/model/gemma3/gemma3_model.py`,
//! read at commit `01ced331`) declares its parameters in this module order,
//! which is the order of `tensor-cache.json` records here (fixed, not
//! sorted):
//!
//! ```text
//! language_model.model.embed_tokens.{q_weight,q_scale}          [vocab, hidden]
//! for each layer N:
//!   language_model.model.layers.N.self_attn.{q,k,v,o}_proj.{q_weight,q_scale}
//!   language_model.model.layers.N.self_attn.{q,k}_norm.weight    bfloat16, 1 + w
//!   language_model.model.layers.N.mlp.gate_up_proj.{q_weight,q_scale}   [2·inter, hidden]
//!   language_model.model.layers.N.mlp.down_proj.{q_weight,q_scale}
//!   language_model.model.layers.N.{input,post_attention,pre_feedforward,post_feedforward}_layernorm.weight
//! language_model.model.norm.weight
//! ```
//!
//! # Conventions (MLC's Gemma 3 loader, `gemma3_loader.py`)
//!
//! - **Norms**: every RMSNorm weight (the four per layer, `q_norm`, `k_norm`
//!   and the final norm) is stored as `1 + w` ("Gemma model adds 1 to the
//!   weights … for efficiency"), cast to the model dtype, bfloat16 (rounded
//!   to nearest-even from the f32 sum). They are not quantized.
//! - **Fused MLP input**: `gate_proj` and `up_proj` are concatenated along
//!   the output axis into `gate_up_proj` (`np.concatenate([gate, up],
//!   axis=0)`), gate rows first, then quantized as one weight. `q`, `k`, `v`
//!   stay separate: MLC's Gemma 3 attention has no fused `qkv_proj`.
//! - **Linear weights** are `[out, in]` (NK) and quantized along `in` with
//!   [`crate::quant::q4`]; the **embedding** `[vocab, hidden]` the same way
//!   along `hidden` (`quantize_embedding=True`), and it doubles as the tied
//!   LM head. An `lm_head.weight` in the source is not written (Gemma 3 ties
//!   it; MLC's model has no such parameter).
//!
//! # Memory
//!
//! One source tensor is converted at a time (the fused `gate_up` is two),
//! quantized and handed to the streaming [`ShardWriter`], so peak memory is
//! about the largest f32 tensor plus its quantized form plus one shard
//! writer buffer, whatever the model size. The report records the peak RSS
//! the process reached (Linux `VmHWM`).

use super::chat_config;
use super::checkpoint::Checkpoint;
use crate::model::gemma3::Gemma3Error;
use crate::package::tensor_cache::{Dtype, ShardWriter, DEFAULT_SHARD_CAP};
use crate::quant::q4::{self, Q4Spec, ScaleRule};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The MLC prefix of the text model's parameters.
pub const PREFIX: &str = "language_model.";

/// What `avac alc quantize` is asked to do (a target's `quantize` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlcQuantizeParams {
    /// Elements per group: 32 (MLC's `q4bf16_1`) or 128 (the seed's).
    pub group_size: usize,
    /// How each group's scale is chosen.
    #[serde(default)]
    pub scale: ScaleRule,
    /// Shard size cap in bytes (MLC's 32 MiB by default).
    #[serde(default = "default_cap")]
    pub shard_cap: u64,
}

fn default_cap() -> u64 {
    DEFAULT_SHARD_CAP
}

impl Default for AlcQuantizeParams {
    fn default() -> Self {
        AlcQuantizeParams { group_size: 128, scale: ScaleRule::MaxAbs, shard_cap: DEFAULT_SHARD_CAP }
    }
}

impl AlcQuantizeParams {
    /// MLC's quantization name for these parameters.
    pub fn quantization_name(&self) -> &'static str {
        "q4bf16_1"
    }

    fn check(&self) -> Result<(), Gemma3Error> {
        if self.group_size == 0 || !self.group_size.is_multiple_of(q4::ELEMS_PER_WORD) {
            return Err(Gemma3Error::Config { field: "quantize.group_size".into(), why: format!("{} is not a positive multiple of 8", self.group_size) });
        }
        if self.shard_cap == 0 {
            return Err(Gemma3Error::Config { field: "quantize.shard_cap".into(), why: "must be positive".into() });
        }
        Ok(())
    }
}

/// What the quantizer did (written as `quantize.json`).
#[derive(Clone, Debug, Serialize)]
pub struct AlcQuantizeReport {
    /// `q4bf16_1`.
    pub quantization: String,
    /// Group size used.
    pub group_size: usize,
    /// Source tensor elements (before fusing or quantizing).
    pub source_params: u64,
    /// Bytes of the source tensors as f32 (the benchmark's throughput base).
    pub source_f32_bytes: u64,
    /// Records written.
    pub records: u64,
    /// Bytes of all records.
    pub param_bytes: u64,
    /// Shard files.
    pub shards: usize,
    /// `param_bytes * 8 / source_params`.
    pub bits_per_param: f64,
    /// Quantized weights: RMS of (dequantized − bfloat16 source) over RMS of the source, all weights pooled.
    pub relative_rmse: f64,
    /// The same without the embedding table.
    pub relative_rmse_without_embedding: f64,
}

/// One parameter of the MLC model and how it is made from the source.
enum Param {
    /// A quantized linear or embedding weight from one or more HF tensors stacked on axis 0.
    Quantized { mlc: String, hf: Vec<String>, embedding: bool },
    /// An RMSNorm weight, stored as bfloat16 `1 + w`.
    Norm { mlc: String, hf: String },
}

/// The MLC parameters of a `layers`-layer Gemma 3, in record order.
fn plan(layers: usize) -> Vec<Param> {
    let q = |mlc: &str, hf: &[&str]| Param::Quantized { mlc: format!("{PREFIX}{mlc}"), hf: hf.iter().map(|s| s.to_string()).collect(), embedding: false };
    let norm = |name: String| Param::Norm { mlc: format!("{PREFIX}{name}"), hf: name };
    let mut v = vec![Param::Quantized {
        mlc: format!("{PREFIX}model.embed_tokens"),
        hf: vec!["model.embed_tokens.weight".into()],
        embedding: true,
    }];
    for i in 0..layers {
        let p = format!("model.layers.{i}");
        for proj in ["q_proj", "k_proj", "v_proj", "o_proj"] {
            v.push(q(&format!("{p}.self_attn.{proj}"), &[&format!("{p}.self_attn.{proj}.weight")]));
        }
        v.push(norm(format!("{p}.self_attn.q_norm.weight")));
        v.push(norm(format!("{p}.self_attn.k_norm.weight")));
        v.push(q(&format!("{p}.mlp.gate_up_proj"), &[&format!("{p}.mlp.gate_proj.weight"), &format!("{p}.mlp.up_proj.weight")]));
        v.push(q(&format!("{p}.mlp.down_proj"), &[&format!("{p}.mlp.down_proj.weight")]));
        for n in ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"] {
            v.push(norm(format!("{p}.{n}.weight")));
        }
    }
    v.push(norm("model.norm.weight".into()));
    v
}

/// The HF tensors [`plan`] reads (plus the tolerated `lm_head.weight`).
fn used_names(layers: usize) -> std::collections::BTreeSet<String> {
    let mut s: std::collections::BTreeSet<String> = plan(layers)
        .into_iter()
        .flat_map(|p| match p {
            Param::Quantized { hf, .. } => hf,
            Param::Norm { hf, .. } => vec![hf],
        })
        .collect();
    s.insert("lm_head.weight".into());
    s
}

fn shape2(name: &str, shape: &[usize]) -> Result<(usize, usize), Gemma3Error> {
    match shape {
        [o, i] => Ok((*o, *i)),
        _ => Err(Gemma3Error::Read { name: name.into(), why: format!("expected a 2-D weight, found shape {shape:?}") }),
    }
}

/// Quantizes `ckpt` into the directory `out` (created; it must not exist):
/// `tensor-cache.json`, `params_shard_*.bin`, `mlc-chat-config.json` and the
/// tokenizer files. Nothing is left at `out` on error.
pub fn quantize(ckpt: &dyn Checkpoint, params: &AlcQuantizeParams, out: &Path) -> Result<AlcQuantizeReport, Box<dyn std::error::Error>> {
    params.check()?;
    let cfg = ckpt.config().clone();
    cfg.validate()?;
    // Every source tensor must be one this layout uses: an unknown tensor
    // means a model this quantizer does not understand.
    let used = used_names(cfg.num_hidden_layers);
    if let Some(extra) = ckpt.tensor_names().into_iter().find(|n| !used.contains(n)) {
        return Err(format!("{}: tensor {extra} is not part of the Gemma 3 text model (layers 0..{})", ckpt.display(), cfg.num_hidden_layers).into());
    }
    if out.exists() {
        return Err(format!("{}: already exists; quantize writes a new directory", out.display()).into());
    }
    let mut report = None;
    crate::atomic::dir(out, |tmp: &Path| -> Result<(), Box<dyn std::error::Error>> {
        // Every message names the checkpoint (some errors already do).
        let r = write_package_dir(ckpt, params, &cfg, tmp).map_err(|e| -> Box<dyn std::error::Error> {
            let m = e.to_string();
            if m.contains(ckpt.display()) {
                m.into()
            } else {
                format!("{}: {m}", ckpt.display()).into()
            }
        })?;
        report = Some(r);
        Ok(())
    })?;
    Ok(report.expect("set on success"))
}

fn write_package_dir(ckpt: &dyn Checkpoint, params: &AlcQuantizeParams, cfg: &crate::model::gemma3::Gemma3Config, dir: &Path) -> Result<AlcQuantizeReport, Box<dyn std::error::Error>> {
    let spec = Q4Spec { group: params.group_size, scale_rule: params.scale };
    let mut writer = ShardWriter::new(dir, params.shard_cap)?;
    let (h, d) = (cfg.hidden_size, cfg.head_dim);
    let mut source_params = 0u64;
    let mut err = ErrAcc::default();
    for p in plan(cfg.num_hidden_layers) {
        match p {
            Param::Quantized { mlc, hf, embedding } => {
                let mut w = Vec::new();
                let (mut out_dim, mut in_dim) = (0, 0);
                for name in &hf {
                    let (shape, v) = ckpt.tensor(name)?;
                    let (o, i) = shape2(name, &shape)?;
                    if in_dim != 0 && i != in_dim {
                        return Err(format!("{}: {name} has {i} columns, the tensors fused with it {in_dim}", ckpt.display()).into());
                    }
                    in_dim = i;
                    out_dim += o;
                    source_params += v.len() as u64;
                    if w.is_empty() {
                        w = v;
                    } else {
                        w.extend_from_slice(&v);
                    }
                }
                let expect_in = if mlc.ends_with("o_proj") { cfg.num_attention_heads * d } else if mlc.ends_with("down_proj") { cfg.intermediate_size } else { h };
                if in_dim != expect_in {
                    return Err(Gemma3Error::Shape { name: hf[0].clone(), expected: vec![out_dim, expect_in], found: vec![out_dim, in_dim] }.into());
                }
                let t = q4::quantize_groups_with(&w, out_dim, in_dim, spec).map_err(|e| format!("{}: {}: {e}", ckpt.display(), hf.join(" + ")))?;
                err.add(&w, &t, embedding);
                drop(w);
                writer.add(&format!("{mlc}.q_weight"), &t.q_weight_shape(), Dtype::U32, &t.q_weight_le_bytes())?;
                writer.add(&format!("{mlc}.q_scale"), &t.q_scale_shape(), Dtype::BF16, &t.q_scale_le_bytes())?;
            }
            Param::Norm { mlc, hf } => {
                let (shape, v) = ckpt.tensor(&hf)?;
                if shape.len() != 1 {
                    return Err(Gemma3Error::Read { name: hf, why: format!("expected a 1-D norm weight, found shape {shape:?}") }.into());
                }
                source_params += v.len() as u64;
                let bytes: Vec<u8> = v.iter().flat_map(|&w| q4::f32_to_bf16(1.0 + w).to_le_bytes()).collect();
                writer.add(&mlc, &shape, Dtype::BF16, &bytes)?;
            }
        }
    }
    let cache = writer.finish(source_params)?;
    let mut tokenizer_files = Vec::new();
    for (name, bytes) in ckpt.tokenizer_files()? {
        if !chat_config::TOKENIZER_FILES.contains(&name.as_str()) {
            return Err(format!("{}: unexpected tokenizer file {name:?}", ckpt.display()).into());
        }
        std::fs::write(dir.join(&name), &bytes).map_err(|e| format!("{}: {e}", dir.join(&name).display()))?;
        tokenizer_files.push(name);
    }
    let chat = chat_config::render(cfg, params, &ckpt.special_ids(), &tokenizer_files);
    let chat_path = dir.join(chat_config::FILE);
    std::fs::write(&chat_path, chat).map_err(|e| format!("{}: {e}", chat_path.display()))?;
    let param_bytes = cache.metadata.param_bytes as u64;
    Ok(AlcQuantizeReport {
        quantization: params.quantization_name().into(),
        group_size: params.group_size,
        source_params,
        source_f32_bytes: source_params * 4,
        records: cache.metadata.param_size,
        param_bytes,
        shards: cache.records.len(),
        bits_per_param: cache.metadata.bits_per_param,
        relative_rmse: err.relative(true),
        relative_rmse_without_embedding: err.relative(false),
    })
}

/// Squared-error sums for the report, accumulated in f64 in record order.
#[derive(Default)]
struct ErrAcc {
    err: [f64; 2],
    sig: [f64; 2],
}

impl ErrAcc {
    /// Adds one weight and its quantized form, a row at a time (no full dequantized copy).
    fn add(&mut self, w: &[f32], t: &q4::Q4Tensor, embedding: bool) {
        let k = usize::from(embedding);
        let (inp, words, groups) = (t.inp(), t.inp() / q4::ELEMS_PER_WORD, t.inp() / t.group());
        let mut row = vec![0f32; inp];
        for (r, src) in w.chunks_exact(inp).enumerate() {
            q4::dequantize_row(&t.q_weight()[r * words..(r + 1) * words], &t.q_scale()[r * groups..(r + 1) * groups], t.group(), &mut row);
            for (&a, &b) in src.iter().zip(&row) {
                let a = f64::from(q4::round_to_bf16(a));
                self.err[k] += (f64::from(b) - a).powi(2);
                self.sig[k] += a * a;
            }
        }
    }

    fn relative(&self, with_embedding: bool) -> f64 {
        let (e, s) = if with_embedding { (self.err[0] + self.err[1], self.sig[0] + self.sig[1]) } else { (self.err[0], self.sig[0]) };
        if s > 0.0 {
            (e / s).sqrt()
        } else {
            0.0
        }
    }
}
