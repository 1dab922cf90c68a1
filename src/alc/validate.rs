//! `avac alc validate`: the package against its unquantized source, on a
//! fixed text kept in the repository.
//!
//! Both models run through the same reference forward
//! ([`crate::model::gemma3`]): the source dequantized to f32 from its own
//! file, the package dequantized from `q4bf16_1` by [`Package`]. The text is
//! fed with BOS in chunks of [`CHUNK`] tokens to both models in lockstep, so
//! only one chunk of logits per model is held at a time. Per position `i`
//! (predicting token `i + 1`):
//!
//! - `log p(t[i+1])` under each model → perplexity `exp(-mean)`;
//! - top-1 agreement: the two arg-maxes (lowest id on ties) are equal;
//! - `KL(P_source ‖ P_package) = Σ_v p_s(v) (log p_s(v) − log p_p(v))`,
//!   in f64 with `libm`, summed over the vocabulary left to right.
//!
//! Positions are computed in parallel and reduced in position order, so
//! every figure but the timings is the same for any thread count. Then the
//! package alone generates greedily from each fixed prompt (tokens/s), and
//! the process's peak RSS is read after the package-only phase and at the
//! end. Gates ([`AlcValidateParams`]) decide the exit status; the report
//! ([`ValidationReport`]) is written either way.

use super::checkpoint::Checkpoint;
use super::compile::{CompileError, HostLib};
use super::package::{Package, PackageError};
use crate::model::gemma3::{argmax, perplexity, Gemma3, Gemma3Error};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Tokens per forward call during the comparison.
pub const CHUNK: usize = 32;

/// Gates and fixed prompts, declared per target under `validate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlcValidateParams {
    /// Largest allowed `perplexity(package) / perplexity(source)`.
    #[serde(default = "default_ppl_ratio")]
    pub max_ppl_ratio: f64,
    /// Smallest allowed top-1 agreement with the source.
    #[serde(default = "default_agreement")]
    pub min_top1_agreement: f64,
    /// Largest allowed mean KL divergence (nats), if set.
    #[serde(default)]
    pub max_mean_kl: Option<f64>,
    /// Minimum tokens the text must have (the 2,000).
    #[serde(default = "default_min_tokens")]
    pub min_tokens: usize,
    /// Prompts for greedy samples.
    #[serde(default = "default_prompts")]
    pub prompts: Vec<String>,
    /// New tokens per sample.
    #[serde(default = "default_max_new")]
    pub max_new: usize,
    /// With a compiled model library: the least top-1 agreement of TVM's
    /// host build with the reference forward of the same package.
    #[serde(default = "default_tvm_agreement")]
    pub tvm_min_top1_agreement: f64,
    /// With a compiled model library: the largest relative difference of
    /// TVM's perplexity from the reference forward's.
    #[serde(default = "default_tvm_ppl")]
    pub tvm_max_ppl_rel_diff: f64,
}

fn default_ppl_ratio() -> f64 {
    1.25
}
fn default_agreement() -> f64 {
    0.80
}
fn default_min_tokens() -> usize {
    2000
}
fn default_prompts() -> Vec<String> {
    ["The capital of France is", "Here is a recipe for bread:", "def fibonacci(n):"].iter().map(|s| s.to_string()).collect()
}
fn default_max_new() -> usize {
    24
}
fn default_tvm_agreement() -> f64 {
    0.99
}
fn default_tvm_ppl() -> f64 {
    0.005
}

impl Default for AlcValidateParams {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("all fields have defaults")
    }
}

/// Failures of `avac alc validate` (a failed gate is not one: see
/// [`ValidationReport::gates`]); each names the package or source.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The package's tokenizer cannot be loaded.
    #[error(transparent)]
    Tokenizer(#[from] PackageError),
    /// A text could not be tokenized, or generated ids detokenized.
    #[error("{what}: {why}")]
    Tokenize {
        /// What was being encoded or decoded.
        what: String,
        /// The tokenizer's message.
        why: String,
    },
    /// The validation text is shorter than the target asks.
    #[error("the validation text has {tokens} tokens; the target asks for at least {min}")]
    TextTooShort {
        /// Tokens of the text (with BOS).
        tokens: usize,
        /// The target's minimum.
        min: usize,
    },
    /// The package was made from another model than the source.
    #[error("{package}: mlc-chat-config.json's model config differs from the source {source_name}'s")]
    ConfigMismatch {
        /// The package.
        package: String,
        /// The source checkpoint.
        source_name: String,
    },
    /// Running the compiled model library in TVM failed.
    #[error(transparent)]
    Tvm(#[from] CompileError),
    /// A model could not be loaded or run.
    #[error("{model}: {source}")]
    Model {
        /// The package or source checkpoint.
        model: String,
        /// The error.
        source: Gemma3Error,
    },
}

/// The report `avac alc validate` writes (JSON, keys in field order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    /// The package as given.
    pub package: String,
    /// The source checkpoint as given.
    pub source: String,
    /// The package's quantization (`q4bf16_1`).
    pub quantization: String,
    /// Its group size.
    pub group_size: usize,
    /// Tokens of the text, BOS included.
    pub text_tokens: usize,
    /// Positions compared (`text_tokens - 1`).
    pub positions: usize,
    /// Perplexity of the text under each model.
    pub perplexity: Perplexity,
    /// Share of positions whose arg-max agrees.
    pub top1_agreement: f64,
    /// `KL(P_source ‖ P_package)` over the positions, nats.
    pub kl: Kl,
    /// The gates and their outcome.
    pub gates: Gates,
    /// Greedy samples of each model from the fixed prompts.
    pub samples: Samples,
    /// TVM's host build of the compiled model library against the
    /// reference forward of the same package (with a model library).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tvm: Option<TvmComparison>,
    /// Measurements of this run (not deterministic; not in any digest).
    pub timing_not_deterministic: Timing,
}

/// The compiled model library (host build, TVM's Relax VM, the package's
/// own parameter shards) against avac's reference forward of the package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TvmComparison {
    /// Positions compared.
    pub positions: usize,
    /// Share of positions where the two arg-maxes agree.
    pub top1_agreement: f64,
    /// Perplexity of the text: `reference` (avac's forward), `tvm`, and `tvm / reference - 1`.
    pub perplexity_reference: f64,
    /// Under TVM.
    pub perplexity_tvm: f64,
    /// `tvm / reference - 1`.
    pub perplexity_rel_diff: f64,
    /// Largest `|log p_tvm(t) - log p_ref(t)|` over the positions.
    pub max_abs_log_prob_diff: f64,
    /// The gates applied (`tvm_min_top1_agreement`, `tvm_max_ppl_rel_diff`).
    pub min_top1_agreement: f64,
    /// The perplexity gate.
    pub max_ppl_rel_diff: f64,
}

/// Perplexities and their ratio.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Perplexity {
    /// Of the source.
    pub source: f64,
    /// Of the package.
    pub package: f64,
    /// `package / source`.
    pub ratio: f64,
}

/// KL divergence statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kl {
    /// Mean over the positions.
    pub mean: f64,
    /// Largest.
    pub max: f64,
}

/// The gates of [`AlcValidateParams`] and what they decided.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gates {
    /// [`AlcValidateParams::max_ppl_ratio`].
    pub max_ppl_ratio: f64,
    /// [`AlcValidateParams::min_top1_agreement`].
    pub min_top1_agreement: f64,
    /// [`AlcValidateParams::max_mean_kl`].
    pub max_mean_kl: Option<f64>,
    /// Whether every gate passed (`failures` is empty).
    pub passed: bool,
    /// One line per failed gate.
    pub failures: Vec<String>,
}

/// Greedy samples of both models.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Samples {
    /// From the package.
    pub package: Vec<Sample>,
    /// From the source.
    pub source: Vec<Sample>,
}

/// One greedy continuation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The prompt.
    pub prompt: String,
    /// The new token ids.
    pub ids: Vec<u32>,
    /// Their text.
    pub text: String,
}

/// Measurements of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Seconds to load the package model.
    pub package_load_s: f64,
    /// Seconds to load the source model.
    pub source_load_s: f64,
    /// Greedy decoding speed of the package model.
    pub package_decode_tokens_per_s: f64,
    /// Seconds of the lockstep comparison.
    pub comparison_s: f64,
    /// Positions per second of the comparison (both models).
    pub comparison_tokens_per_s_both_models: f64,
    /// Worker threads.
    pub threads: usize,
    /// Peak RSS after the package-only phase.
    pub peak_rss_package_only_bytes: Option<u64>,
    /// Peak RSS at the end.
    pub peak_rss_bytes: Option<u64>,
    /// TVM's host build: `tvm/run.py`'s timing at 1 and 2 threads (prefill
    /// and decode tokens/s), with a model library.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tvm: Vec<serde_json::Value>,
}

impl ValidationReport {
    /// Whether every gate passed.
    pub fn passed(&self) -> bool {
        self.gates.passed
    }
}

/// Per-position comparison figures.
struct Pos {
    lp_src: f64,
    lp_pkg: f64,
    top_pkg: u32,
    agree: bool,
    kl: f64,
}

fn compare(src: &[f32], pkg: &[f32], next: usize) -> Pos {
    // log Σ exp(l): the max, then the sum left to right with `libm::exp`.
    let lse = |l: &[f32]| {
        let max = l.iter().fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m }) as f64;
        let mut s = 0.0f64;
        for &x in l {
            s += libm::exp(f64::from(x) - max);
        }
        max + libm::log(s)
    };
    let (zs, zp) = (lse(src), lse(pkg));
    let mut kl = 0.0f64;
    for (&a, &b) in src.iter().zip(pkg) {
        let ls = f64::from(a) - zs;
        kl += libm::exp(ls) * (ls - (f64::from(b) - zp));
    }
    let top_pkg = argmax(pkg);
    Pos { lp_src: f64::from(src[next]) - zs, lp_pkg: f64::from(pkg[next]) - zp, top_pkg, agree: argmax(src) == top_pkg, kl }
}

/// Peak resident set size of this process (Linux `VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Encodes `text` (with BOS) to ids.
fn encode(tok: &tokenizers::Tokenizer, text: &str, what: impl Fn() -> String) -> Result<Vec<u32>, ValidateError> {
    Ok(tok.encode(text, true).map_err(|e| ValidateError::Tokenize { what: what(), why: e.to_string() })?.get_ids().to_vec())
}

/// Greedy samples from `model` (named `name` in errors), and its decoding speed.
fn samples(model: &Gemma3, name: &str, tok: &tokenizers::Tokenizer, p: &AlcValidateParams, eos: &[u32]) -> Result<(Vec<Sample>, f64), ValidateError> {
    let mut out = Vec::new();
    let (mut n, mut secs) = (0usize, 0f64);
    for prompt in &p.prompts {
        let ids = encode(tok, prompt, || format!("encoding {prompt:?}"))?;
        let t = Instant::now();
        let new = model.greedy(&ids, p.max_new, eos).map_err(|source| ValidateError::Model { model: name.to_string(), source })?;
        secs += t.elapsed().as_secs_f64();
        n += new.len();
        let text = tok.decode(&new, true).map_err(|e| ValidateError::Tokenize { what: "decoding".into(), why: e.to_string() })?;
        out.push(Sample { prompt: prompt.clone(), ids: new, text });
    }
    Ok((out, if secs > 0.0 { n as f64 / secs } else { 0.0 }))
}

/// Validates `pkg` against `source` on `text`.
pub fn validate(
    pkg: &Package,
    pkg_display: &str,
    source: &dyn Checkpoint,
    text: &str,
    p: &AlcValidateParams,
    tvm: Option<&HostLib>,
) -> Result<ValidationReport, ValidateError> {
    let tok = pkg.tokenizer()?;
    let tok = tok.hf();
    let ids = encode(tok, text, || "encoding the validation text".into())?;
    if ids.len() < p.min_tokens {
        return Err(ValidateError::TextTooShort { tokens: ids.len(), min: p.min_tokens });
    }
    if pkg.chat.model != *source.config() {
        return Err(ValidateError::ConfigMismatch { package: pkg_display.to_string(), source_name: source.display().to_string() });
    }
    let pkg_err = |source: Gemma3Error| ValidateError::Model { model: pkg_display.to_string(), source };
    let src_err = |e: Gemma3Error| ValidateError::Model { model: source.display().to_string(), source: e };
    let t = Instant::now();
    let package_model = Gemma3::load(&pkg.chat.model, pkg).map_err(pkg_err)?;
    let load_pkg = t.elapsed().as_secs_f64();
    let (pkg_samples, tok_per_s) = samples(&package_model, pkg_display, &tok, p, &pkg.chat.ids.eos)?;
    let rss_package = peak_rss_bytes();

    let t = Instant::now();
    let source_model = Gemma3::load(source.config(), source).map_err(src_err)?;
    let load_src = t.elapsed().as_secs_f64();
    let (src_samples, _) = samples(&source_model, source.display(), &tok, p, &pkg.chat.ids.eos)?;

    let t = Instant::now();
    let vocab = pkg.chat.model.vocab_size;
    let (mut cs, mut cp) = (source_model.new_cache(), package_model.new_cache());
    let mut pos: Vec<Pos> = Vec::with_capacity(ids.len());
    for (c, chunk) in ids.chunks(CHUNK).enumerate() {
        let start = c * CHUNK;
        let mut ls = vec![0f32; chunk.len() * vocab];
        let mut lpk = vec![0f32; chunk.len() * vocab];
        source_model.forward(chunk, &mut cs, &mut |i, l| ls[(i - start) * vocab..(i - start + 1) * vocab].copy_from_slice(l)).map_err(src_err)?;
        package_model.forward(chunk, &mut cp, &mut |i, l| lpk[(i - start) * vocab..(i - start + 1) * vocab].copy_from_slice(l)).map_err(pkg_err)?;
        let n = chunk.len().min(ids.len() - 1 - start);
        let got: Vec<Pos> =
            (0..n).into_par_iter().map(|r| compare(&ls[r * vocab..(r + 1) * vocab], &lpk[r * vocab..(r + 1) * vocab], ids[start + r + 1] as usize)).collect();
        pos.extend(got);
    }
    let compare_secs = t.elapsed().as_secs_f64();
    let n = pos.len();
    let lp_src: Vec<f64> = pos.iter().map(|q| q.lp_src).collect();
    let lp_pkg: Vec<f64> = pos.iter().map(|q| q.lp_pkg).collect();
    let (ppl_src, ppl_pkg) = (perplexity(&lp_src), perplexity(&lp_pkg));
    let agreement = pos.iter().filter(|q| q.agree).count() as f64 / n as f64;
    let mut kl_sum = 0.0f64;
    let mut kl_max = 0.0f64;
    for q in &pos {
        kl_sum += q.kl;
        kl_max = kl_max.max(q.kl);
    }
    let mean_kl = kl_sum / n as f64;
    let ratio = ppl_pkg / ppl_src;

    let mut failures = Vec::new();
    if ratio.is_nan() || ratio > p.max_ppl_ratio {
        failures.push(format!("perplexity ratio {ratio:.4} exceeds {}", p.max_ppl_ratio));
    }
    if agreement < p.min_top1_agreement {
        failures.push(format!("top-1 agreement {agreement:.4} is below {}", p.min_top1_agreement));
    }
    if let Some(max) = p.max_mean_kl {
        if mean_kl.is_nan() || mean_kl > max {
            failures.push(format!("mean KL {mean_kl:.5} exceeds {max}"));
        }
    }
    let (mut tvm_cmp, mut tvm_timing) = (None, Vec::new());
    if let Some(host) = tvm {
        let c = compare_tvm(host, pkg, &ids, &pos, p, &mut failures)?;
        tvm_cmp = Some(c);
        // Speed on the first 512 tokens (one prefill chunk) and 32 decoded.
        let head = &ids[..ids.len().min(512)];
        for threads in [1, 2] {
            tvm_timing.push(host.timing(pkg.dir(), head, threads, 33)?);
        }
    }
    Ok(ValidationReport {
        package: pkg_display.to_string(),
        source: source.display().to_string(),
        quantization: pkg.chat.quantization.clone(),
        group_size: pkg.group_size().map_err(pkg_err)?,
        text_tokens: ids.len(),
        positions: n,
        perplexity: Perplexity { source: ppl_src, package: ppl_pkg, ratio },
        top1_agreement: agreement,
        kl: Kl { mean: mean_kl, max: kl_max },
        gates: Gates {
            max_ppl_ratio: p.max_ppl_ratio,
            min_top1_agreement: p.min_top1_agreement,
            max_mean_kl: p.max_mean_kl,
            passed: failures.is_empty(),
            failures,
        },
        samples: Samples { package: pkg_samples, source: src_samples },
        tvm: tvm_cmp,
        timing_not_deterministic: Timing {
            package_load_s: load_pkg,
            source_load_s: load_src,
            package_decode_tokens_per_s: tok_per_s,
            comparison_s: compare_secs,
            comparison_tokens_per_s_both_models: n as f64 / compare_secs,
            threads: rayon::current_num_threads(),
            peak_rss_package_only_bytes: rss_package,
            peak_rss_bytes: peak_rss_bytes(),
            tvm: tvm_timing,
        },
    })
}

/// Scores `ids` with TVM's host build and compares it with the reference
/// forward's package figures `pos`; gate failures are added to `failures`.
fn compare_tvm(host: &HostLib, pkg: &Package, ids: &[u32], pos: &[Pos], p: &AlcValidateParams, failures: &mut Vec<String>) -> Result<TvmComparison, ValidateError> {
    let score = host.score(pkg.dir(), ids, rayon::current_num_threads().min(2))?;
    let n = pos.len();
    if score.ids != ids || score.argmax.len() != n || score.log_probs.len() != n {
        return Err(CompileError::Tool { what: "tvm/run.py".into(), stderr: format!("scored {} positions of other ids; {n} were asked", score.argmax.len()) }.into());
    }
    let agree = pos.iter().zip(&score.argmax).filter(|(q, &t)| q.top_pkg == t).count() as f64 / n as f64;
    let mut max_diff = 0.0f64;
    for (q, &t) in pos.iter().zip(&score.log_probs) {
        let d = (q.lp_pkg - t).abs();
        if d.is_nan() || d > max_diff {
            max_diff = if d.is_nan() { f64::NAN } else { d };
        }
    }
    let lp_ref: Vec<f64> = pos.iter().map(|q| q.lp_pkg).collect();
    let (ppl_ref, ppl_tvm) = (perplexity(&lp_ref), perplexity(&score.log_probs));
    let rel = ppl_tvm / ppl_ref - 1.0;
    if agree < p.tvm_min_top1_agreement {
        failures.push(format!("TVM's model library: top-1 agreement with the reference forward {agree:.4} is below {}", p.tvm_min_top1_agreement));
    }
    if rel.is_nan() || rel.abs() > p.tvm_max_ppl_rel_diff {
        failures.push(format!("TVM's model library: perplexity {ppl_tvm:.4} differs from the reference forward's {ppl_ref:.4} by {:.3}% (at most {}%)", rel * 100.0, p.tvm_max_ppl_rel_diff * 100.0));
    }
    Ok(TvmComparison {
        positions: n,
        top1_agreement: agree,
        perplexity_reference: ppl_ref,
        perplexity_tvm: ppl_tvm,
        perplexity_rel_diff: rel,
        max_abs_log_prob_diff: max_diff,
        min_top1_agreement: p.tvm_min_top1_agreement,
        max_ppl_rel_diff: p.tvm_max_ppl_rel_diff,
    })
}

/// Per-position scores of `ids` under `model`: the arg-max (lowest id on
/// ties) and `log p(ids[i + 1])` for every position `i` but the last, fed
/// [`CHUNK`] tokens at a time.
pub fn score(model: &Gemma3, ids: &[u32]) -> Result<(Vec<u32>, Vec<f64>), Gemma3Error> {
    let mut cache = model.new_cache();
    let (mut top, mut lp) = (Vec::with_capacity(ids.len()), Vec::with_capacity(ids.len()));
    for chunk in ids.chunks(CHUNK) {
        model.forward(chunk, &mut cache, &mut |i, l| {
            if let Some(&next) = ids.get(i + 1) {
                top.push(argmax(l));
                lp.push(crate::model::gemma3::log_softmax_at(l, next as usize));
            }
        })?;
    }
    Ok((top, lp))
}
