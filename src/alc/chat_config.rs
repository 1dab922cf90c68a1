//! `mlc-chat-config.json`: what an MLC-style runtime reads first.
//!
//! # Fields (MLC's `MLCChatConfig`, `python/mlc_llm/protocol/mlc_chat_config.py`,
//! filled as `python/mlc_llm/interface/gen_config.py` does; read at commit `00c44c3c`)
//!
//! ```text
//! version "0.1.0", model_type, quantization, model_config, vocab_size,
//! active_vocab_size, context_window_size, sliding_window_size,
//! prefill_chunk_size, attention_sink_size, tensor_parallel_shards,
//! pipeline_parallel_stages, disaggregation, temperature, presence_penalty,
//! frequency_penalty, repetition_penalty, top_p, tokenizer_files,
//! tokenizer_info, conv_template, pad_token_id, bos_token_id, eos_token_id
//! ```
//!
//! - `model_type` is `gemma3_text`; `model_config` is MLC's `Gemma3Config`
//!   shape (`text_config`, `vocab_size`, `context_window_size`,
//!   `sliding_window_size`, `prefill_chunk_size`, `is_text_model`, …). Its
//!   `text_config` carries MLC's names (`position_embedding_base`,
//!   `sliding_window_size`, …) *and* every Hugging Face `gemma3_text` field the
//!   forward needs under its HF name (MLC's `ConfigBase.from_dict` keeps
//!   unknown keys in `kwargs`), so [`parse`] rebuilds the exact
//!   [`Gemma3Config`] with the same strict reader as `config.json`.
//! - `context_window_size` and `prefill_chunk_size` follow MLC's Gemma 3
//!   rule: `max(sliding_window, 8192)` and `min(context, 8192)`.
//! - `conv_template` is the registry entry `gemma3_instruction`
//!   (`conversation_template/gemma.py`) expanded as `Conversation.to_json_dict`
//!   does: stop ids `[1, 106]`, system prefix `[2]` (`<bos>`).
//! - `model_lib` names the compiled model library (MLC's app config field,
//!   carried here so the package says which library runs it): MLC's rule
//!   `{model_type}_{quantization}`, [`model_lib`]. Its system-lib symbol
//!   prefix is that name plus `_` ([`system_lib_prefix`]); `avac alc
//!   compile` compiles with it and `avac alc package` refuses a library
//!   compiled for another name.
//! - Sampling defaults are MLC's system defaults (temperature 1.0, top_p
//!   1.0, penalties 0/0/1.0); avac's own runtime decodes greedily.
//!
//! Serialization is `serde_json`'s pretty printer (2-space indent, keys in
//! the order above) plus a newline: the same bytes on every machine.

use super::checkpoint::SpecialIds;
use super::quantize::AlcQuantizeParams;
use crate::model::gemma3::{Gemma3Config, Gemma3Error, LayerType};
use serde_json::{json, Value};

/// The file name.
pub const FILE: &str = "mlc-chat-config.json";

/// Tokenizer files a package may carry (MLC's `TOKENIZER_FILES` subset that
/// Gemma uses).
pub const TOKENIZER_FILES: &[&str] = &["tokenizer.json", "tokenizer.model", "tokenizer_config.json"];

/// MLC's cap on the default context and prefill chunk for Gemma 3.
const MLC_CONTEXT: usize = 8192;

/// The `text_config` object: HF `gemma3_text` fields plus MLC's names.
fn text_config(cfg: &Gemma3Config, context: usize, prefill: usize) -> Value {
    let layer_types: Vec<&str> = cfg
        .layer_types
        .iter()
        .map(|t| match t {
            LayerType::SlidingAttention => "sliding_attention",
            LayerType::FullAttention => "full_attention",
        })
        .collect();
    let rope_scaling = cfg.rope_scaling_factor.map(|f| json!({ "rope_type": "linear", "factor": f }));
    json!({
        "model_type": "gemma3_text",
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "attention_bias": false,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": cfg.head_dim,
        "rms_norm_eps": cfg.rms_norm_eps,
        "hidden_activation": "gelu_pytorch_tanh",
        "position_embedding_base": cfg.rope_theta,
        "rope_theta": cfg.rope_theta,
        "rope_local_base_freq": cfg.rope_local_base_freq,
        "rope_scaling": rope_scaling,
        "context_window_size": context,
        "prefill_chunk_size": prefill,
        "query_pre_attn_scalar": cfg.query_pre_attn_scalar,
        "sliding_window_size": cfg.sliding_window,
        "sliding_window": cfg.sliding_window,
        "sliding_window_pattern": cfg.sliding_window_pattern,
        "layer_types": layer_types,
        "max_position_embeddings": cfg.max_position_embeddings,
        "vocab_size": cfg.vocab_size,
        "final_logit_softcapping": cfg.final_logit_softcapping,
        "attn_logit_softcapping": cfg.attn_logit_softcapping,
    })
}

/// The `gemma3_instruction` conversation template.
fn conv_template() -> Value {
    json!({
        "name": "gemma3_instruction",
        "system_template": "{system_message}",
        "system_message": "",
        "system_prefix_token_ids": [2],
        "add_role_after_system_message": true,
        "roles": { "user": "<start_of_turn>user", "assistant": "<start_of_turn>model" },
        "role_templates": { "user": "{user_message}", "assistant": "{assistant_message}", "tool": "{tool_message}" },
        "messages": [],
        "seps": ["<end_of_turn>\n"],
        "role_content_sep": "\n",
        "role_empty_sep": "\n",
        "stop_str": ["<end_of_turn>"],
        "stop_token_ids": [1, 106],
        "function_string": "",
        "use_function_calling": false,
    })
}

/// The model library a package of quantization `quantization` runs with
/// (MLC's `{model_type}_{quantization}`).
pub fn model_lib(quantization: &str) -> String {
    format!("gemma3_text_{quantization}").replace('-', "_")
}

/// The symbol prefix of the system library named `model_lib`.
pub fn system_lib_prefix(model_lib: &str) -> String {
    format!("{model_lib}_")
}

/// The file's bytes.
pub fn render(cfg: &Gemma3Config, params: &AlcQuantizeParams, ids: &SpecialIds, tokenizer_files: &[String]) -> Vec<u8> {
    let context = cfg.sliding_window.max(MLC_CONTEXT);
    let prefill = context.min(MLC_CONTEXT);
    let eos: Value = match ids.eos.as_slice() {
        [one] => json!(one),
        many => json!(many),
    };
    let v = json!({
        "version": "0.1.0",
        "model_type": "gemma3_text",
        "quantization": params.quantization_name(),
        "model_lib": model_lib(&params.quantization_name()),
        "model_config": {
            "text_config": text_config(cfg, context, prefill),
            "vocab_size": cfg.vocab_size,
            "tensor_parallel_shards": 1,
            "max_batch_size": 1,
            "context_window_size": context,
            "sliding_window_size": cfg.sliding_window,
            "prefill_chunk_size": prefill,
            "is_text_model": true,
        },
        "vocab_size": cfg.vocab_size,
        "active_vocab_size": cfg.vocab_size,
        "context_window_size": context,
        "sliding_window_size": cfg.sliding_window,
        "prefill_chunk_size": prefill,
        "attention_sink_size": 0,
        "tensor_parallel_shards": 1,
        "pipeline_parallel_stages": 1,
        "disaggregation": false,
        "temperature": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "repetition_penalty": 1.0,
        "top_p": 1.0,
        "tokenizer_files": tokenizer_files,
        "tokenizer_info": { "token_postproc_method": "byte_fallback", "prepend_space_in_encode": false, "strip_space_in_decode": false },
        "conv_template": conv_template(),
        "pad_token_id": ids.pad,
        "bos_token_id": ids.bos,
        "eos_token_id": eos,
    });
    let mut b = serde_json::to_vec_pretty(&v).expect("serialisable");
    b.push(b'\n');
    b
}

/// What a runtime needs from `mlc-chat-config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatConfig {
    /// The model's hyper-parameters.
    pub model: Gemma3Config,
    /// `quantization`.
    pub quantization: String,
    /// BOS, EOS and padding ids.
    pub ids: SpecialIds,
    /// `tokenizer_files`.
    pub tokenizer_files: Vec<String>,
    /// `model_lib`: the model library it runs with, when it names one.
    pub model_lib: Option<String>,
}

/// Why `mlc-chat-config.json` is not one avac's runtime reads.
#[derive(Debug, thiserror::Error)]
pub enum ChatConfigError {
    /// The file is not JSON.
    #[error("{FILE}: {source}")]
    Json {
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A field is missing or has a value the runtime does not take.
    #[error("{FILE}: field {field}: {why}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// `model_config.text_config` is not a model the forward runs.
    #[error("{FILE}: model_config.text_config: {source}")]
    Model {
        /// The config reader's error (names the field).
        source: Gemma3Error,
    },
}

fn field_err(field: &'static str, why: impl Into<String>) -> ChatConfigError {
    ChatConfigError::Field { field, why: why.into() }
}

fn id(v: &Value, field: &'static str) -> Result<Option<u32>, ChatConfigError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x.as_u64().and_then(|n| u32::try_from(n).ok()).map(Some).ok_or_else(|| field_err(field, format!("expected a token id, found {x}"))),
    }
}

/// Parses the file (strictly: the model config through the same reader as HF `config.json`).
pub fn parse(bytes: &[u8]) -> Result<ChatConfig, ChatConfigError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|source| ChatConfigError::Json { source })?;
    match v.get("model_type").and_then(Value::as_str) {
        Some("gemma3_text") | Some("gemma3") => {}
        other => return Err(field_err("model_type", format!("expected \"gemma3_text\", found {other:?}"))),
    }
    let quantization = v.get("quantization").and_then(Value::as_str).ok_or_else(|| field_err("quantization", "missing"))?.to_string();
    if quantization != "q4bf16_1" {
        return Err(field_err("quantization", format!("avac's runtime reads q4bf16_1, found {quantization:?}")));
    }
    let text = v.pointer("/model_config/text_config").ok_or_else(|| field_err("model_config.text_config", "missing"))?;
    let model = Gemma3Config::from_value(text).map_err(|source| ChatConfigError::Model { source })?;
    let eos = match v.get("eos_token_id") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| field_err("eos_token_id", format!("bad id {x}"))))
            .collect::<Result<_, _>>()?,
        Some(_) => id(&v, "eos_token_id")?.into_iter().collect(),
    };
    let ids = SpecialIds { bos: id(&v, "bos_token_id")?, eos, pad: id(&v, "pad_token_id")? };
    let tokenizer_files = match v.get("tokenizer_files") {
        Some(Value::Array(a)) => {
            a.iter().map(|x| x.as_str().map(str::to_string).ok_or_else(|| field_err("tokenizer_files", format!("bad entry {x}")))).collect::<Result<_, _>>()?
        }
        _ => return Err(field_err("tokenizer_files", "missing")),
    };
    let model_lib = match v.get("model_lib") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => Some(s.clone()),
        Some(x) => return Err(field_err("model_lib", format!("expected a library name of letters, digits and _, found {x}"))),
    };
    Ok(ChatConfig { model, quantization, ids, tokenizer_files, model_lib })
}
