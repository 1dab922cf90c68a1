//! Gemma 3's weights, one row per tensor: the one place that says what each
//! tensor is called in Hugging Face, GGUF and MLC, what shape the config
//! gives it, and how each layout stores it.
//!
//! Loading ([`super::Gemma3::load`]), the GGUF mapping ([`super::gguf`]),
//! the MLC parameter plan and package reader (`crate::alc`) and the test
//! fixtures (`crate::fixtures::gemma3`) all read [`TENSORS`]; none spells a
//! name, a shape or the norm rule again.
//!
//! # Sources of the names
//!
//! - **Hugging Face** `gemma3_text` (`modeling_gemma3.py`): model-level
//!   names as written, layer names under `model.layers.N.`.
//! - **GGUF** (llama.cpp's gguf-py, `constants.py` `TENSOR_NAMES` and
//!   `tensor_mapping.py`): layer names under `blk.N.`. Gemma 2/3 reuse
//!   `ffn_norm` for the *pre*-FFN norm and call the post-FFN norm
//!   `post_ffw_norm`. `output.weight` (an untied head) does not occur in
//!   Gemma 3 but maps like every `lm_head`.
//! - **MLC** (`mlc_llm/model/gemma3/gemma3_model.py`, read at `01ced331`):
//!   [`MLC_PREFIX`] + the HF stem, parameters declared in module order,
//!   which is the order of [`TENSORS`]. Rows that share an MLC name are
//!   stacked along the output axis in table order: `gate_proj` then
//!   `up_proj` make `mlp.gate_up_proj` (`np.concatenate([gate, up],
//!   axis=0)`). MLC's Gemma 3 attention has no fused `qkv_proj`.
//!
//! # The norm rule
//!
//! HF stores each RMSNorm weight as `w` and multiplies by `1 + w`; llama.cpp's
//! converter (`norm_shift = 1.0` on every name ending in `norm.weight`) and
//! MLC's loader ("Gemma model adds 1 to the weights") store the effective
//! scale `1 + w`. [`norm_scale`] and [`norm_weight`] are the two directions,
//! each one f32 operation, so `1 + (v - 1) == v` for every stored bfloat16
//! `v` of magnitude 2^-16 or more.

use super::Gemma3Config;

/// The prefix of the text model's parameters in an MLC package.
pub const MLC_PREFIX: &str = "language_model.";

/// A dimension taken from the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    /// `vocab_size`.
    Vocab,
    /// `hidden_size`.
    Hidden,
    /// `intermediate_size`.
    Intermediate,
    /// `num_attention_heads · head_dim`: the query projection's width.
    Queries,
    /// `num_key_value_heads · head_dim`: a key or value projection's width.
    KeyValues,
    /// `head_dim`.
    Head,
}

impl Dim {
    /// Its value in `cfg`.
    pub fn of(self, cfg: &Gemma3Config) -> usize {
        match self {
            Dim::Vocab => cfg.vocab_size,
            Dim::Hidden => cfg.hidden_size,
            Dim::Intermediate => cfg.intermediate_size,
            Dim::Queries => cfg.num_attention_heads * cfg.head_dim,
            Dim::KeyValues => cfg.num_key_value_heads * cfg.head_dim,
            Dim::Head => cfg.head_dim,
        }
    }
}

/// What a tensor is, and so how every layout stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The token embedding `[vocab, hidden]`, also the tied LM head; MLC
    /// quantizes it along `hidden` (`quantize_embedding=True`).
    Embedding,
    /// A projection weight `[out, in]` (no bias); MLC quantizes it along `in`.
    Linear {
        /// Output features.
        out: Dim,
        /// Input features.
        inp: Dim,
    },
    /// An RMSNorm weight of one width: HF `w`, GGUF and MLC `1 + w` (MLC as
    /// bfloat16, not quantized).
    Norm(Dim),
    /// An untied LM head `[vocab, hidden]`: tolerated in a source, never
    /// read (Gemma 3 ties the head to the embedding) and not in MLC.
    TiedHead,
}

impl Kind {
    /// The HF (PyTorch) shape `cfg` gives it.
    pub fn shape(self, cfg: &Gemma3Config) -> Vec<usize> {
        match self {
            Kind::Embedding | Kind::TiedHead => vec![cfg.vocab_size, cfg.hidden_size],
            Kind::Linear { out, inp } => vec![out.of(cfg), inp.of(cfg)],
            Kind::Norm(d) => vec![d.of(cfg)],
        }
    }

    /// Whether GGUF and MLC store it as `1 + w` (see the module docs).
    pub fn stored_plus_one(self) -> bool {
        matches!(self, Kind::Norm(_))
    }
}

/// Which tensor of the model: the index of its row in [`TENSORS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(missing_docs)]
pub enum Field {
    EmbedTokens,
    QProj,
    KProj,
    VProj,
    OProj,
    QNorm,
    KNorm,
    GateProj,
    UpProj,
    DownProj,
    InputLayernorm,
    PostAttentionLayernorm,
    PreFeedforwardLayernorm,
    PostFeedforwardLayernorm,
    Norm,
    LmHead,
}

/// Whether a tensor exists once or once per decoder layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Once: the names are the full names.
    Model,
    /// In every layer `N`: HF `model.layers.N.<hf>`, GGUF `blk.N.<gguf>`,
    /// MLC `model.layers.N.<mlc>`.
    Layer,
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Which tensor.
    pub field: Field,
    /// Model-level or per layer.
    pub scope: Scope,
    /// Hugging Face name (per layer: after `model.layers.N.`).
    pub hf: &'static str,
    /// GGUF name (per layer: after `blk.N.`).
    pub gguf: &'static str,
    /// MLC parameter without [`MLC_PREFIX`] (per layer: after
    /// `model.layers.N.`): a quantized weight's stem (`{mlc}.q_weight`,
    /// `{mlc}.q_scale`) or a norm's full name; `None` if MLC has none.
    pub mlc: Option<&'static str>,
    /// What it is.
    pub kind: Kind,
}

const fn spec(field: Field, scope: Scope, hf: &'static str, gguf: &'static str, mlc: Option<&'static str>, kind: Kind) -> Spec {
    Spec { field, scope, hf, gguf, mlc, kind }
}

use Dim::{Hidden, Intermediate, KeyValues, Queries};
use Scope::{Layer, Model};

/// Every tensor of Gemma 3 (text), in MLC's record order, indexed by [`Field`].
pub const TENSORS: [Spec; 16] = [
    spec(Field::EmbedTokens, Model, "model.embed_tokens.weight", "token_embd.weight", Some("model.embed_tokens"), Kind::Embedding),
    spec(Field::QProj, Layer, "self_attn.q_proj.weight", "attn_q.weight", Some("self_attn.q_proj"), Kind::Linear { out: Queries, inp: Hidden }),
    spec(Field::KProj, Layer, "self_attn.k_proj.weight", "attn_k.weight", Some("self_attn.k_proj"), Kind::Linear { out: KeyValues, inp: Hidden }),
    spec(Field::VProj, Layer, "self_attn.v_proj.weight", "attn_v.weight", Some("self_attn.v_proj"), Kind::Linear { out: KeyValues, inp: Hidden }),
    spec(Field::OProj, Layer, "self_attn.o_proj.weight", "attn_output.weight", Some("self_attn.o_proj"), Kind::Linear { out: Hidden, inp: Queries }),
    spec(Field::QNorm, Layer, "self_attn.q_norm.weight", "attn_q_norm.weight", Some("self_attn.q_norm.weight"), Kind::Norm(Dim::Head)),
    spec(Field::KNorm, Layer, "self_attn.k_norm.weight", "attn_k_norm.weight", Some("self_attn.k_norm.weight"), Kind::Norm(Dim::Head)),
    spec(Field::GateProj, Layer, "mlp.gate_proj.weight", "ffn_gate.weight", Some("mlp.gate_up_proj"), Kind::Linear { out: Intermediate, inp: Hidden }),
    spec(Field::UpProj, Layer, "mlp.up_proj.weight", "ffn_up.weight", Some("mlp.gate_up_proj"), Kind::Linear { out: Intermediate, inp: Hidden }),
    spec(Field::DownProj, Layer, "mlp.down_proj.weight", "ffn_down.weight", Some("mlp.down_proj"), Kind::Linear { out: Hidden, inp: Intermediate }),
    spec(Field::InputLayernorm, Layer, "input_layernorm.weight", "attn_norm.weight", Some("input_layernorm.weight"), Kind::Norm(Hidden)),
    spec(
        Field::PostAttentionLayernorm,
        Layer,
        "post_attention_layernorm.weight",
        "post_attention_norm.weight",
        Some("post_attention_layernorm.weight"),
        Kind::Norm(Hidden),
    ),
    spec(
        Field::PreFeedforwardLayernorm,
        Layer,
        "pre_feedforward_layernorm.weight",
        "ffn_norm.weight",
        Some("pre_feedforward_layernorm.weight"),
        Kind::Norm(Hidden),
    ),
    spec(
        Field::PostFeedforwardLayernorm,
        Layer,
        "post_feedforward_layernorm.weight",
        "post_ffw_norm.weight",
        Some("post_feedforward_layernorm.weight"),
        Kind::Norm(Hidden),
    ),
    spec(Field::Norm, Model, "model.norm.weight", "output_norm.weight", Some("model.norm.weight"), Kind::Norm(Hidden)),
    spec(Field::LmHead, Model, "lm_head.weight", "output.weight", None, Kind::TiedHead),
];

impl Field {
    /// Its row of [`TENSORS`].
    pub fn spec(self) -> &'static Spec {
        &TENSORS[self as usize]
    }

    /// The tensor in layer `layer` (ignored for model-level tensors).
    pub fn at(self, layer: usize) -> Name {
        Name { field: self, layer: (self.spec().scope == Layer).then_some(layer) }
    }

    /// A model-level tensor.
    pub fn model(self) -> Name {
        Name { field: self, layer: None }
    }
}

/// The effective RMSNorm scale `1 + w` of an HF norm weight `w`: what the
/// forward multiplies by, and what GGUF and MLC store.
pub fn norm_scale(w: f32) -> f32 {
    1.0 + w
}

/// HF's norm weight `w` from a stored scale `1 + w`.
pub fn norm_weight(scale: f32) -> f32 {
    scale - 1.0
}

/// One tensor of a model: a row of the table and, per layer, its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name {
    /// Which tensor.
    pub field: Field,
    /// Its layer (`None` for model-level tensors).
    pub layer: Option<usize>,
}

impl Name {
    /// The table row.
    pub fn spec(self) -> &'static Spec {
        self.field.spec()
    }

    /// What it is.
    pub fn kind(self) -> Kind {
        self.spec().kind
    }

    /// The Hugging Face name, e.g. `model.layers.3.self_attn.q_proj.weight`.
    pub fn hf(self) -> String {
        match self.layer {
            Some(i) => format!("model.layers.{i}.{}", self.spec().hf),
            None => self.spec().hf.to_string(),
        }
    }

    /// The GGUF name, e.g. `blk.3.attn_q.weight`.
    pub fn gguf(self) -> String {
        match self.layer {
            Some(i) => format!("blk.{i}.{}", self.spec().gguf),
            None => self.spec().gguf.to_string(),
        }
    }

    /// The MLC parameter with [`MLC_PREFIX`] (a quantized weight's stem or a
    /// norm's name), `None` if MLC has none.
    pub fn mlc(self) -> Option<String> {
        let m = self.spec().mlc?;
        Some(match self.layer {
            Some(i) => format!("{MLC_PREFIX}model.layers.{i}.{m}"),
            None => format!("{MLC_PREFIX}{m}"),
        })
    }

    /// The HF shape `cfg` gives it.
    pub fn shape(self, cfg: &Gemma3Config) -> Vec<usize> {
        self.kind().shape(cfg)
    }

    /// The tensors stacked with it into its MLC parameter, itself included,
    /// in stacking order (one for every tensor but `gate_proj`/`up_proj`).
    pub fn mlc_group(self) -> Vec<Name> {
        let m = self.spec().mlc;
        TENSORS.iter().filter(|s| m.is_some() && s.mlc == m && s.scope == self.spec().scope).map(|s| Name { field: s.field, layer: self.layer }).collect()
    }

    /// The tensor whose Hugging Face name is `hf`; layer numbers must be
    /// canonical decimals so the mapping is one-to-one.
    pub fn from_hf(hf: &str) -> Option<Name> {
        parse(hf, "model.layers.", |s| s.hf)
    }

    /// The tensor whose GGUF name is `gguf` (canonical layer numbers:
    /// `blk.7`, not `blk.07`).
    pub fn from_gguf(gguf: &str) -> Option<Name> {
        parse(gguf, "blk.", |s| s.gguf)
    }
}

fn parse(name: &str, layer_prefix: &str, col: fn(&Spec) -> &'static str) -> Option<Name> {
    if let Some(s) = TENSORS.iter().find(|s| s.scope == Model && col(s) == name) {
        return Some(Name { field: s.field, layer: None });
    }
    let (layer, suffix) = name.strip_prefix(layer_prefix)?.split_once('.')?;
    let canonical = !layer.is_empty() && layer.len() <= 9 && layer.bytes().all(|b| b.is_ascii_digit()) && (layer == "0" || !layer.starts_with('0'));
    if !canonical {
        return None;
    }
    let s = TENSORS.iter().find(|s| s.scope == Layer && col(s) == suffix)?;
    Some(Name { field: s.field, layer: Some(layer.parse().ok()?) })
}

/// Every tensor of a `layers`-layer model in MLC's record order: the
/// embedding, each layer's tensors, the final norm, the tied head.
pub fn all(layers: usize) -> impl Iterator<Item = Name> {
    let per_layer = (0..layers).flat_map(|i| TENSORS.iter().filter(|s| s.scope == Layer).map(move |s| s.field.at(i)));
    std::iter::once(Field::EmbedTokens.model()).chain(per_layer).chain([Field::Norm.model(), Field::LmHead.model()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_indexed_by_field() {
        for (i, s) in TENSORS.iter().enumerate() {
            assert_eq!(s.field as usize, i, "{s:?}");
        }
    }

    #[test]
    fn names_round_trip_and_non_canonical_layers_are_refused() {
        for n in all(18) {
            assert_eq!(Name::from_hf(&n.hf()), Some(n), "{}", n.hf());
            assert_eq!(Name::from_gguf(&n.gguf()), Some(n), "{}", n.gguf());
        }
        assert_eq!(all(18).count(), 3 + 18 * 13);
        for bad in [
            "blk.01.attn_q.weight",
            "blk.x.attn_q.weight",
            "blk..attn_q.weight",
            "blk.0.attn_qkv.weight",
            "rope_freqs.weight",
            "blk.0.attn_q.bias",
            "blk.1234567890.attn_q.weight",
        ] {
            assert_eq!(Name::from_gguf(bad), None, "{bad}");
        }
        assert_eq!(Name::from_hf("model.layers.07.mlp.up_proj.weight"), None);
    }

    #[test]
    fn gate_and_up_stack_into_gate_up_proj() {
        let g = Field::GateProj.at(4);
        assert_eq!(g.mlc().as_deref(), Some("language_model.model.layers.4.mlp.gate_up_proj"));
        assert_eq!(g.mlc_group(), [Field::GateProj.at(4), Field::UpProj.at(4)]);
        assert_eq!(Field::UpProj.at(4).mlc_group(), g.mlc_group());
        assert_eq!(Field::QProj.at(0).mlc_group(), [Field::QProj.at(0)]);
        assert!(Field::LmHead.model().mlc_group().is_empty());
        assert_eq!(Field::Norm.at(3), Field::Norm.model());
    }
}
