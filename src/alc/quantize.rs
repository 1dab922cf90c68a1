//! `avac alc quantize`: a Gemma 3 [`Checkpoint`] to MLC's `q4bf16_1`
//! parameter layout.
//!
//! # Parameters, in record order
//!
//! MLC's `Gemma3ForCausalLM` (`python/mlc_llm/model/gemma3/gemma3_model.py`,
//! read at commit `01ced331`) declares its parameters in this module order,
//! which is the order of `tensor-cache.json` records here (fixed, not
//! sorted), and the order of the names table
//! [`crate::model::gemma3::names::TENSORS`] this plan is read from:
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

use super::calibrate;
use super::chat_config;
use super::checkpoint::{Checkpoint, CheckpointError};
use crate::model::gemma3::names::{self, Kind, Name};
use crate::model::gemma3::{Gemma3Config, Gemma3Error};
use crate::package::tensor_cache::{Dtype, ShardWriter, TensorCacheError, DEFAULT_SHARD_CAP};
use crate::quant::q4::{self, Q4Error, Q4Spec, Q4Tensor, ScaleRule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Failures of `avac alc quantize`; each names the checkpoint, the tensor or
/// the file.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// A quantize parameter is out of range.
    #[error("quantize.{param}: {why}")]
    Param {
        /// The parameter.
        param: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The checkpoint's config is not one the forward runs.
    #[error("{checkpoint}: {source}")]
    Config {
        /// The checkpoint.
        checkpoint: String,
        /// The config error.
        source: Gemma3Error,
    },
    /// The checkpoint holds a tensor the Gemma 3 text model does not have.
    #[error("{checkpoint}: tensor {tensor} is not part of the Gemma 3 text model (layers 0..{layers})")]
    UnknownTensor {
        /// The checkpoint.
        checkpoint: String,
        /// The tensor's HF name.
        tensor: String,
        /// Layers of the config.
        layers: usize,
    },
    /// The output directory already exists.
    #[error("{}: already exists; quantize writes a new directory", path.display())]
    OutputExists {
        /// The output directory.
        path: PathBuf,
    },
    /// A source tensor could not be read or has the wrong shape.
    #[error("{checkpoint}: {source}")]
    Tensor {
        /// The checkpoint.
        checkpoint: String,
        /// The tensor error (names the tensor).
        source: Gemma3Error,
    },
    /// A weight could not be quantized.
    #[error("{checkpoint}: {tensor}: {source}")]
    Quantize {
        /// The checkpoint.
        checkpoint: String,
        /// The HF tensor names stacked into the weight, joined by ` + `.
        tensor: String,
        /// The quantizer's error.
        source: Q4Error,
    },
    /// Writing the tensor cache failed.
    #[error("{checkpoint}: {source}")]
    Cache {
        /// The checkpoint.
        checkpoint: String,
        /// The writer's error.
        source: TensorCacheError,
    },
    /// The checkpoint's tokenizer could not be read (the error names the file).
    #[error(transparent)]
    Tokenizer(#[from] CheckpointError),
    /// The checkpoint offers a tokenizer file a package may not carry.
    #[error("{checkpoint}: unexpected tokenizer file {name:?}")]
    TokenizerFile {
        /// The checkpoint.
        checkpoint: String,
        /// The file name.
        name: String,
    },
    /// GPTQ could not quantize a weight.
    #[error("{checkpoint}: {tensor}: {source}")]
    Gptq {
        /// The checkpoint.
        checkpoint: String,
        /// The HF tensor names stacked into the weight, joined by ` + `.
        tensor: String,
        /// The quantizer's error.
        source: q4::Q4GptqError,
    },
    /// The calibration text cannot serve (too short, not encodable).
    #[error("calibration text: {why}")]
    Calibration {
        /// What is wrong.
        why: String,
    },
    /// `gptq` is asked for but no calibration text was given.
    #[error("quantize.gptq needs a calibration text (--calibration FILE; a target's `calibration` source)")]
    MissingCalibration,
    /// Writing a file of the output failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

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
    /// Calibrated codes by GPTQ ([`super::calibrate`]); absent: each
    /// weight's nearest code (round to nearest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gptq: Option<GptqSettings>,
}

/// How GPTQ calibrates (a target's `quantize.gptq` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptqSettings {
    /// Calibration sequences (the seed's 512).
    pub calibration_samples: usize,
    /// Tokens per sequence, `<bos>` included.
    pub seq_len: usize,
    /// Damping of the second moments, relative to their mean diagonal.
    pub damp: f64,
    /// Visit columns by decreasing input energy, scales fixed up front.
    pub act_order: bool,
    /// Seed of the sequences' offsets in the text.
    #[serde(default)]
    pub seed: u64,
    /// How the tied embedding (also the LM head) is quantized.
    #[serde(default)]
    pub embedding: EmbeddingMethod,
    /// Damping of the head's second moments (default: `damp`); larger
    /// values trade the head's output error for the lookup's weight error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_damp: Option<f64>,
}

/// How the tied embedding is quantized under GPTQ ([`super::calibrate`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingMethod {
    /// GPTQ against the head's input statistics, last.
    #[default]
    HeadGptq,
    /// Nearest codes, first: the layers calibrate on the quantized lookup.
    RoundToNearest,
    /// GPTQ against the *unquantized* model's head statistics, first (one
    /// more pass over the calibration set): the layers then calibrate on
    /// the quantized lookup.
    HeadGptqFirst,
}

/// Most calibration sequences accepted (memory grows with their total length).
pub const MAX_CALIBRATION_TOKENS: usize = 1 << 20;

fn default_cap() -> u64 {
    DEFAULT_SHARD_CAP
}

impl Default for AlcQuantizeParams {
    fn default() -> Self {
        AlcQuantizeParams { group_size: 128, scale: ScaleRule::MaxAbs, shard_cap: DEFAULT_SHARD_CAP, gptq: None }
    }
}

impl AlcQuantizeParams {
    /// MLC's quantization name for these parameters.
    pub fn quantization_name(&self) -> &'static str {
        "q4bf16_1"
    }

    fn check(&self) -> Result<(), QuantizeError> {
        if self.group_size == 0 || !self.group_size.is_multiple_of(q4::ELEMS_PER_WORD) {
            return Err(QuantizeError::Param { param: "group_size", why: format!("{} is not a positive multiple of 8", self.group_size) });
        }
        if self.shard_cap == 0 {
            return Err(QuantizeError::Param { param: "shard_cap", why: "must be positive".into() });
        }
        if let Some(g) = &self.gptq {
            let param = |param, why: &str| Err(QuantizeError::Param { param, why: why.into() });
            if g.calibration_samples == 0 {
                return param("gptq.calibration_samples", "must be positive");
            }
            if g.seq_len < 2 {
                return param("gptq.seq_len", "must be at least 2 (<bos> and one token)");
            }
            if g.calibration_samples.checked_mul(g.seq_len).is_none_or(|t| t > MAX_CALIBRATION_TOKENS) {
                return param("gptq.calibration_samples", &format!("samples × seq_len must be at most {MAX_CALIBRATION_TOKENS} tokens"));
            }
            if !(g.damp > 0.0 && g.damp <= 1.0) {
                return param("gptq.damp", "must be a number in (0, 1]");
            }
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
    /// How codes were chosen: `round_to_nearest` or `gptq`.
    pub method: &'static str,
    /// Calibration positions (sequences × length), 0 without calibration.
    pub calibration_tokens: u64,
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

/// One parameter of the MLC model: the source tensors stacked into it
/// along axis 0, in table order (two for `gate_up_proj`, else one).
struct Param {
    mlc: String,
    parts: Vec<Name>,
}

/// The MLC parameters of a `layers`-layer Gemma 3, in record order (the
/// names table's order).
fn plan(layers: usize) -> Vec<Param> {
    let mut v: Vec<Param> = Vec::new();
    for n in names::all(layers) {
        let Some(mlc) = n.mlc() else { continue };
        match v.last_mut() {
            Some(p) if p.mlc == mlc => p.parts.push(n),
            _ => v.push(Param { mlc, parts: vec![n] }),
        }
    }
    v
}

/// Quantizes `ckpt` into the directory `out` (created; it must not exist):
/// `tensor-cache.json`, `params_shard_*.bin`, `mlc-chat-config.json` and the
/// tokenizer files. Nothing is left at `out` on error.
///
/// With `params.gptq`, `calibration` is the calibration text and `progress`
/// hears of each calibrated layer (done, total).
pub fn run(
    ckpt: &dyn Checkpoint,
    params: &AlcQuantizeParams,
    calibration: Option<&str>,
    out: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<AlcQuantizeReport, QuantizeError> {
    params.check()?;
    let checkpoint = || ckpt.display().to_string();
    let cfg = ckpt.config().clone();
    cfg.validate().map_err(|source| QuantizeError::Config { checkpoint: checkpoint(), source })?;
    // Every source tensor must be one this layout uses (the tied head is
    // tolerated): an unknown tensor means a model this quantizer does not
    // understand.
    let layers = cfg.num_hidden_layers;
    let used: std::collections::BTreeSet<String> = names::all(layers).map(Name::hf).collect();
    if let Some(extra) = ckpt.tensor_names().into_iter().find(|n| !used.contains(n)) {
        return Err(QuantizeError::UnknownTensor { checkpoint: checkpoint(), tensor: extra, layers });
    }
    if out.exists() {
        return Err(QuantizeError::OutputExists { path: out.to_path_buf() });
    }
    let spec = Q4Spec { group: params.group_size, scale_rule: params.scale };
    // Calibrated tensors are computed first (the embedding, first in MLC's
    // order, is calibrated last), then written in order with the rest.
    let (calibrated, calibration_tokens) = match &params.gptq {
        None => (BTreeMap::new(), 0),
        Some(g) => {
            let text = calibration.ok_or(QuantizeError::MissingCalibration)?;
            let tok = tokenizer(ckpt)?;
            let seqs = calibrate::calibration_set(&tok, ckpt.special_ids().bos, text, g)?;
            let tokens = seqs.iter().map(|s| s.len() as u64).sum();
            (calibrate::gptq_model(ckpt, &cfg, spec, g, &seqs, progress)?, tokens)
        }
    };
    // `atomic::dir` reports its own I/O errors; the step's error is kept aside.
    let (mut report, mut failed) = (None, None);
    crate::atomic::dir(out, |tmp: &Path| match write_package_dir(ckpt, params, &cfg, &calibrated, tmp) {
        Ok(mut r) => {
            r.calibration_tokens = calibration_tokens;
            report = Some(r);
            Ok(())
        }
        Err(e) => {
            failed = Some(e);
            Err(std::io::Error::other("quantize failed"))
        }
    })
    .map_err(|source| failed.take().unwrap_or_else(|| QuantizeError::Io { path: out.to_path_buf(), source }))?;
    Ok(report.expect("set on success"))
}

/// `name` from `ckpt`, its shape checked against the config.
fn read(ckpt: &dyn Checkpoint, cfg: &Gemma3Config, name: Name) -> Result<Vec<f32>, QuantizeError> {
    let tensor = |source: Gemma3Error| QuantizeError::Tensor { checkpoint: ckpt.display().to_string(), source };
    let hf = name.hf();
    let (shape, v) = ckpt.tensor(&hf).map_err(tensor)?;
    let expected = name.shape(cfg);
    if shape != expected {
        return Err(tensor(Gemma3Error::Shape { name: hf, expected, found: shape }));
    }
    Ok(v)
}

/// The checkpoint's `tokenizer.json`, through the bounded loader.
fn tokenizer(ckpt: &dyn Checkpoint) -> Result<crate::formats::tokenizer::Tokenizer, QuantizeError> {
    let files = ckpt.tokenizer_files()?;
    let (_, bytes) = files
        .into_iter()
        .find(|(n, _)| n == "tokenizer.json")
        .ok_or_else(|| QuantizeError::Calibration { why: format!("{} has no tokenizer.json", ckpt.display()) })?;
    crate::formats::tokenizer::Tokenizer::from_bytes(format!("{}/tokenizer.json", ckpt.display()), bytes)
        .map_err(|e| QuantizeError::Calibration { why: e.to_string() })
}

/// The source tensors `parts` stacked along the output axis: the weight,
/// its output and input dimensions.
pub(super) fn read_stacked(ckpt: &dyn Checkpoint, cfg: &Gemma3Config, parts: &[Name]) -> Result<(Vec<f32>, usize, usize), QuantizeError> {
    let mut w = Vec::new();
    let mut out_dim = 0;
    for &n in parts {
        let v = read(ckpt, cfg, n)?;
        out_dim += n.shape(cfg)[0];
        if w.is_empty() {
            w = v;
        } else {
            w.extend_from_slice(&v);
        }
    }
    Ok((w, out_dim, parts[0].shape(cfg)[1]))
}

fn write_package_dir(
    ckpt: &dyn Checkpoint,
    params: &AlcQuantizeParams,
    cfg: &Gemma3Config,
    calibrated: &BTreeMap<String, Q4Tensor>,
    dir: &Path,
) -> Result<AlcQuantizeReport, QuantizeError> {
    let checkpoint = || ckpt.display().to_string();
    let cache_err = |source: TensorCacheError| QuantizeError::Cache { checkpoint: checkpoint(), source };
    let spec = Q4Spec { group: params.group_size, scale_rule: params.scale };
    let mut writer = ShardWriter::new(dir, params.shard_cap).map_err(cache_err)?;
    let mut source_params = 0u64;
    let mut err = ErrAcc::default();
    for p in plan(cfg.num_hidden_layers) {
        let kind = p.parts[0].kind();
        if let Kind::Norm(_) = kind {
            let n = p.parts[0];
            let v = read(ckpt, cfg, n)?;
            source_params += v.len() as u64;
            let bytes: Vec<u8> = v.iter().flat_map(|&w| q4::f32_to_bf16(names::norm_scale(w)).to_le_bytes()).collect();
            writer.add(&p.mlc, &n.shape(cfg), Dtype::BF16, &bytes).map_err(cache_err)?;
            continue;
        }
        let (w, out_dim, in_dim) = read_stacked(ckpt, cfg, &p.parts)?;
        source_params += w.len() as u64;
        let t = match calibrated.get(&p.mlc) {
            Some(t) => t.clone(),
            None => q4::quantize_groups_with(&w, out_dim, in_dim, spec).map_err(|source| QuantizeError::Quantize {
                checkpoint: checkpoint(),
                tensor: p.parts.iter().map(|n| n.hf()).collect::<Vec<_>>().join(" + "),
                source,
            })?,
        };
        err.add(&w, &t, kind == Kind::Embedding);
        drop(w);
        writer.add(&format!("{}.q_weight", p.mlc), &t.q_weight_shape(), Dtype::U32, &t.q_weight_le_bytes()).map_err(cache_err)?;
        writer.add(&format!("{}.q_scale", p.mlc), &t.q_scale_shape(), Dtype::BF16, &t.q_scale_le_bytes()).map_err(cache_err)?;
    }
    let cache = writer.finish(source_params).map_err(cache_err)?;
    let mut tokenizer_files = Vec::new();
    for (name, bytes) in ckpt.tokenizer_files()? {
        if !chat_config::TOKENIZER_FILES.contains(&name.as_str()) {
            return Err(QuantizeError::TokenizerFile { checkpoint: checkpoint(), name });
        }
        let path = dir.join(&name);
        std::fs::write(&path, &bytes).map_err(|source| QuantizeError::Io { path, source })?;
        tokenizer_files.push(name);
    }
    let chat = chat_config::render(cfg, params, &ckpt.special_ids(), &tokenizer_files);
    let chat_path = dir.join(chat_config::FILE);
    std::fs::write(&chat_path, chat).map_err(|source| QuantizeError::Io { path: chat_path, source })?;
    let param_bytes = cache.metadata.param_bytes as u64;
    Ok(AlcQuantizeReport {
        quantization: params.quantization_name().into(),
        group_size: params.group_size,
        method: if params.gptq.is_some() { "gptq" } else { "round_to_nearest" },
        calibration_tokens: 0,
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
