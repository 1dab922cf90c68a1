//! Calibrated `q4bf16_1`: GPTQ over the whole Gemma 3 model, layer by layer.
//!
//! # Calibration set
//!
//! The calibration text (a declared source, never the evaluation text) is
//! encoded once with the checkpoint's own tokenizer. Each of the
//! `calibration_samples` sequences is `<bos>` followed by `seq_len - 1`
//! consecutive tokens starting at an offset drawn from [`crate::rng::Rng`]
//! seeded with the declared `seed`: the same set on every machine.
//!
//! # Order
//!
//! As in GPTQ's sequential mode, layers are quantized in order, each fed
//! the hidden states the already-quantized layers before it produce
//! ([`LayerwiseRun`]); inside a layer, `q`/`k`/`v` (one input, three MLC
//! tensors quantized separately), then `o`, then the fused `gate_up`, then
//! `down`, each calibrated on inputs computed with the projections
//! quantized before it. Only one layer's weights and one projection's
//! second moments are in memory at a time.
//!
//! # The tied embedding
//!
//! Gemma 3's embedding is also its LM head, and it holds most of the
//! model's weights (170M of 268M in the 270M). It is quantized last, by
//! GPTQ against the second moments of the *head's* input — the final-norm
//! hidden states of the quantized model on the calibration set — because
//! that is where its error reaches every logit. The rows then serve the
//! embedding lookup unchanged (one table, as MLC stores it); the lookup
//! side cannot be calibrated the same way (its "input" is a one-hot
//! vector), and calibrating layers 0.. on the source embedding keeps their
//! statistics free of the head's rounding.

use std::collections::BTreeMap;

use super::checkpoint::Checkpoint;
use super::quantize::{read_stacked, EmbeddingMethod, GptqSettings, QuantizeError};
use crate::formats::tokenizer::Tokenizer;
use crate::model::gemma3::calibrate::{LayerHook, LayerwiseRun, Tap};
use crate::model::gemma3::names::{Field, Name};
use crate::model::gemma3::{Gemma3Config, Gemma3Error, Gemma3Weights};
use crate::quant::gptq::{Factor, GptqParams, Hessian};
use crate::quant::q4::{self, Q4Spec, Q4Tensor};

/// The calibration sequences: `samples` windows of `seq_len` tokens, each
/// `<bos>` then consecutive tokens of `text` (see the module docs).
pub fn calibration_set(tok: &Tokenizer, bos: Option<u32>, text: &str, s: &GptqSettings) -> Result<Vec<Vec<u32>>, QuantizeError> {
    let mut ids = tok.encode(text).map_err(|e| QuantizeError::Calibration { why: e.to_string() })?.ids;
    if let (Some(b), Some(&first)) = (bos, ids.first()) {
        if first == b {
            ids.remove(0);
        }
    }
    let body = s.seq_len - usize::from(bos.is_some());
    if ids.len() < body {
        return Err(QuantizeError::Calibration { why: format!("the calibration text has {} tokens, fewer than one sequence of {}", ids.len(), s.seq_len) });
    }
    let mut rng = crate::rng::Rng::new(s.seed);
    let starts = (ids.len() - body + 1) as u64;
    Ok((0..s.calibration_samples)
        .map(|_| {
            let at = (rng.next_u64() % starts) as usize;
            bos.into_iter().chain(ids[at..at + body].iter().copied()).collect()
        })
        .collect())
}

/// GPTQ-quantizes every weight of `ckpt` on the sequences `seqs`: the MLC
/// parameter name → its `q4bf16_1` tensor. `progress` is told each finished
/// step (layer or head) and how many there are.
pub fn gptq_model(
    ckpt: &dyn Checkpoint,
    cfg: &Gemma3Config,
    spec: Q4Spec,
    s: &GptqSettings,
    seqs: &[Vec<u32>],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BTreeMap<String, Q4Tensor>, QuantizeError> {
    let src_err = |source: Gemma3Error| QuantizeError::Tensor { checkpoint: ckpt.display().to_string(), source };
    let layers = cfg.num_hidden_layers;
    let embed = Field::EmbedTokens.model();
    let mut hook = Hook { ckpt, cfg, spec, params: GptqParams { damp: s.damp, act_order: s.act_order }, h: None, out: BTreeMap::new() };
    let mut run = match s.embedding {
        EmbeddingMethod::HeadGptq => LayerwiseRun::new(cfg, ckpt, seqs).map_err(src_err)?,
        first => {
            // Quantized first, so that every layer calibrates on the rows
            // the package will look up.
            let (w, out, inp) = read_stacked(ckpt, cfg, &[embed])?;
            let t = match first {
                EmbeddingMethod::RoundToNearest => q4::quantize_groups_with(&w, out, inp, spec).map_err(|source| QuantizeError::Quantize {
                    checkpoint: ckpt.display().to_string(),
                    tensor: embed.hf(),
                    source,
                })?,
                _ => {
                    // The head's statistics from the unquantized model.
                    let mut src_run = LayerwiseRun::new(cfg, ckpt, seqs).map_err(src_err)?;
                    let mut keep = Keep(ckpt);
                    for i in 0..layers {
                        src_run.layer(ckpt, i, &mut keep)?;
                    }
                    let hess = head_hessian(&src_run, ckpt, cfg).map_err(src_err)?;
                    drop(src_run);
                    let params = GptqParams { damp: s.head_damp.unwrap_or(s.damp), act_order: s.act_order };
                    let factor = Factor::new(&hess, params).map_err(|e| QuantizeError::Gptq { checkpoint: ckpt.display().to_string(), tensor: embed.hf(), source: e.into() })?;
                    q4::quantize_gptq(&w, out, inp, spec, &factor).map_err(|source| QuantizeError::Gptq { checkpoint: ckpt.display().to_string(), tensor: embed.hf(), source })?
                }
            };
            drop(w);
            let values = q4::dequantize(&t);
            hook.out.insert(embed.mlc().expect("the embedding has an MLC name"), t);
            let src = WithTensor { src: ckpt, name: embed.hf(), shape: vec![out, inp], values };
            LayerwiseRun::new(cfg, &src, seqs).map_err(src_err)?
        }
    };
    for i in 0..layers {
        run.layer(ckpt, i, &mut hook)?;
        progress(i + 1, layers + 1);
    }
    if s.embedding != EmbeddingMethod::HeadGptq {
        progress(layers + 1, layers + 1);
        return Ok(hook.out);
    }
    // The tied head: second moments of the final-norm hidden states.
    let hess = head_hessian(&run, ckpt, cfg).map_err(src_err)?;
    drop(run);
    hook.params.damp = s.head_damp.unwrap_or(s.damp);
    hook.quantize(&[embed], &hess, false)?;
    progress(layers + 1, layers + 1);
    Ok(hook.out)
}

/// Second moments of the head's inputs (the final-norm hidden states).
fn head_hessian(run: &LayerwiseRun, src: &dyn Gemma3Weights, cfg: &Gemma3Config) -> Result<Hessian, Gemma3Error> {
    let x = run.head_inputs(src)?;
    let h = cfg.hidden_size;
    let mut hess = Hessian::new(h);
    for seq in x.chunks(run.seq_len() * h) {
        hess.add(seq, seq.len() / h);
    }
    Ok(hess)
}

/// A hook that keeps the source's weights (the unquantized model's run).
struct Keep<'a>(&'a dyn Checkpoint);

impl LayerHook for Keep<'_> {
    type Error = QuantizeError;

    fn weights_error(&self, source: Gemma3Error) -> QuantizeError {
        QuantizeError::Tensor { checkpoint: self.0.display().to_string(), source }
    }

    fn observe(&mut self, _layer: usize, _tap: Tap, _inputs: &[f32]) -> Result<(), QuantizeError> {
        Ok(())
    }

    fn replace(&mut self, _layer: usize, _tap: Tap) -> Result<Option<Vec<f32>>, QuantizeError> {
        Ok(None)
    }
}

/// Weights with one tensor replaced.
struct WithTensor<'a> {
    src: &'a dyn Checkpoint,
    name: String,
    shape: Vec<usize>,
    values: Vec<f32>,
}

impl Gemma3Weights for WithTensor<'_> {
    fn tensor(&self, hf_name: &str) -> Result<(Vec<usize>, Vec<f32>), Gemma3Error> {
        if hf_name == self.name {
            Ok((self.shape.clone(), self.values.clone()))
        } else {
            self.src.tensor(hf_name)
        }
    }
}

/// Accumulates each projection's second moments and replaces it by its
/// GPTQ-quantized weights.
struct Hook<'a> {
    ckpt: &'a dyn Checkpoint,
    cfg: &'a Gemma3Config,
    spec: Q4Spec,
    params: GptqParams,
    /// The second moments of the projection being observed.
    h: Option<Hessian>,
    out: BTreeMap<String, Q4Tensor>,
}

impl Hook<'_> {
    /// Quantizes the MLC parameters made of `names` (consecutive names
    /// sharing an MLC name are stacked, as `gate_up_proj`) and returns their
    /// dequantized weights, stacked in `names` order.
    fn quantize(&mut self, names: &[Name], h: &Hessian, dequantize: bool) -> Result<Vec<f32>, QuantizeError> {
        let gptq_err = |tensor: String, source| QuantizeError::Gptq { checkpoint: self.ckpt.display().to_string(), tensor, source };
        let hf = |parts: &[Name]| parts.iter().map(|n| n.hf()).collect::<Vec<_>>().join(" + ");
        let factor = Factor::new(h, self.params).map_err(|e| gptq_err(hf(names), e.into()))?;
        let mut stacked = Vec::new();
        let mut i = 0;
        while i < names.len() {
            let mlc = names[i].mlc().expect("quantized tensors have MLC names");
            let mut j = i + 1;
            while j < names.len() && names[j].mlc().as_deref() == Some(mlc.as_str()) {
                j += 1;
            }
            let parts = &names[i..j];
            let (w, out, inp) = read_stacked(self.ckpt, self.cfg, parts)?;
            let t = q4::quantize_gptq(&w, out, inp, self.spec, &factor).map_err(|e| gptq_err(hf(parts), e))?;
            if dequantize {
                stacked.extend(q4::dequantize(&t));
            }
            self.out.insert(mlc, t);
            i = j;
        }
        Ok(stacked)
    }
}

impl LayerHook for Hook<'_> {
    type Error = QuantizeError;

    fn weights_error(&self, source: Gemma3Error) -> QuantizeError {
        QuantizeError::Tensor { checkpoint: self.ckpt.display().to_string(), source }
    }

    fn observe(&mut self, _layer: usize, tap: Tap, inputs: &[f32]) -> Result<(), QuantizeError> {
        let k = tap.input_width(self.cfg);
        self.h.get_or_insert_with(|| Hessian::new(k)).add(inputs, inputs.len() / k);
        Ok(())
    }

    fn replace(&mut self, layer: usize, tap: Tap) -> Result<Option<Vec<f32>>, QuantizeError> {
        let h = self.h.take().expect("observed before replaced");
        let names: Vec<Name> = tap.fields().iter().map(|f| f.at(layer)).collect();
        self.quantize(&names, &h, true).map(Some)
    }
}
