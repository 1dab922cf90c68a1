//! Layer-wise runs over calibration sequences, for quantizers that need the
//! inputs of each projection (GPTQ) and that replace a layer's weights
//! before the next stage sees them.
//!
//! A [`LayerwiseRun`] holds the hidden states of every calibration sequence
//! between two layers. [`LayerwiseRun::layer`] loads one layer from the
//! weights and runs it stage by stage ([`Tap`] order): for each projection
//! it first shows the hook that projection's inputs, sequence by sequence
//! ([`LayerHook::observe`]), then asks for replacement weights
//! ([`LayerHook::replace`]), and only then computes the stage's outputs with
//! them. So each projection is calibrated on inputs produced by every
//! projection replaced before it, as sequential GPTQ does; only one layer's
//! weights are in memory at a time.
//!
//! Every sequence starts at position 0 with its own KV cache. The
//! arithmetic is the forward's ([`super::layer`]): a sequence's values are
//! the bits [`super::Gemma3::forward`] gives it, whatever the batching.

use super::attention::LayerCache;
use super::layer::{Layer, Ropes};
use super::linear::{rms_norm_rows, Linear};
use super::names::Field;
use super::{load, Gemma3Config, Gemma3Error, Gemma3Weights};

/// A projection of a decoder layer, in the order a layer runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tap {
    /// `q_proj`, `k_proj`, `v_proj` (stacked in that order); input `input_norm(x)`.
    Qkv,
    /// `o_proj`; input the attention's output.
    O,
    /// `gate_proj`, `up_proj` (stacked); input `pre_ffn_norm(x)`.
    GateUp,
    /// `down_proj`; input `gelu_tanh(gate) * up`.
    Down,
}

impl Tap {
    /// Every projection, in layer order.
    pub const ALL: [Tap; 4] = [Tap::Qkv, Tap::O, Tap::GateUp, Tap::Down];

    /// Width of the projection's input rows.
    pub fn input_width(self, cfg: &Gemma3Config) -> usize {
        match self {
            Tap::Qkv | Tap::GateUp => cfg.hidden_size,
            Tap::O => cfg.num_attention_heads * cfg.head_dim,
            Tap::Down => cfg.intermediate_size,
        }
    }

    /// The weights stacked (along the output axis) into this projection.
    pub fn fields(self) -> &'static [Field] {
        match self {
            Tap::Qkv => &[Field::QProj, Field::KProj, Field::VProj],
            Tap::O => &[Field::OProj],
            Tap::GateUp => &[Field::GateProj, Field::UpProj],
            Tap::Down => &[Field::DownProj],
        }
    }
}

/// What a calibrating quantizer does at each projection of a layer.
pub trait LayerHook {
    /// The hook's error.
    type Error;
    /// The hook's error for a failure reading the layer's weights.
    fn weights_error(&self, e: Gemma3Error) -> Self::Error;
    /// The inputs of `tap`'s projection for one sequence (`seq_len` rows of
    /// the projection's input width), for every sequence in order.
    fn observe(&mut self, layer: usize, tap: Tap, inputs: &[f32]) -> Result<(), Self::Error>;
    /// After every sequence was observed: the weights (`[n, k]`, the
    /// [`Tap::fields`] stacked) the projection uses from now on, or `None`
    /// to keep the source's.
    fn replace(&mut self, layer: usize, tap: Tap) -> Result<Option<Vec<f32>>, Self::Error>;
}

/// Rows per batch of sequences pushed through a stage together.
const BATCH_ROWS: usize = 512;

/// Hidden states of the calibration sequences between two layers.
pub struct LayerwiseRun {
    cfg: Gemma3Config,
    ropes: Ropes,
    seq_len: usize,
    /// `[sequences · seq_len, hidden]`.
    x: Vec<f32>,
}

impl LayerwiseRun {
    /// Embeds `seqs` (each of the same length, at least 1) with the
    /// embedding table of `src`: the hidden states entering layer 0.
    pub fn new(cfg: &Gemma3Config, src: &dyn Gemma3Weights, seqs: &[Vec<u32>]) -> Result<Self, Gemma3Error> {
        cfg.validate()?;
        let seq_len = seqs.first().map_or(0, Vec::len);
        assert!(seq_len > 0 && seqs.iter().all(|s| s.len() == seq_len), "calibration sequences must share one positive length");
        if let Some(&id) = seqs.iter().flatten().find(|&&id| id as usize >= cfg.vocab_size) {
            return Err(Gemma3Error::TokenOutOfRange { id, vocab: cfg.vocab_size });
        }
        let h = cfg.hidden_size;
        let embed = load(src, cfg, Field::EmbedTokens.model())?;
        let normalizer = (h as f64).sqrt() as f32;
        let mut x = Vec::with_capacity(seqs.len() * seq_len * h);
        for &id in seqs.iter().flatten() {
            x.extend(embed[id as usize * h..(id as usize + 1) * h].iter().map(|&e| e * normalizer));
        }
        Ok(LayerwiseRun { cfg: cfg.clone(), ropes: Ropes::new(cfg), seq_len, x })
    }

    /// Calibration positions (sequences × length).
    pub fn rows(&self) -> usize {
        self.x.len() / self.cfg.hidden_size
    }

    /// Runs layer `i` of `src` over every sequence (see the module docs).
    pub fn layer<H: LayerHook>(&mut self, src: &dyn Gemma3Weights, i: usize, hook: &mut H) -> Result<(), H::Error> {
        let cfg = self.cfg.clone();
        let (h, d, f) = (cfg.hidden_size, cfg.head_dim, cfg.intermediate_size);
        let (nq, nkv) = (cfg.num_attention_heads * d, cfg.num_key_value_heads * d);
        let mut l = Layer::load(src, &cfg, i).map_err(|e| hook.weights_error(e))?;
        let per_batch = (BATCH_ROWS / self.seq_len).max(1) * self.seq_len * h;
        let seq_len = self.seq_len;
        let new_cache = || LayerCache { k: vec![Vec::new(); cfg.num_key_value_heads], v: vec![Vec::new(); cfg.num_key_value_heads] };
        // Attention of a batch of whole sequences, each from position 0.
        let attention = |l: &Layer, x: &[f32]| -> Vec<f32> {
            let t = l.attn_input(&cfg, x);
            let mut ctx = Vec::with_capacity(t.len() / h * nq);
            for seq in t.chunks(seq_len * h) {
                ctx.extend(l.attention(&cfg, &self.ropes, &mut new_cache(), seq, 0));
            }
            ctx
        };

        // q, k, v
        for b in self.x.chunks(per_batch) {
            let t = l.attn_input(&cfg, b);
            observe(hook, i, Tap::Qkv, &t, seq_len * h)?;
        }
        if let Some(w) = hook.replace(i, Tap::Qkv)? {
            l.qkv = Linear::new(&w, nq + 2 * nkv, h);
        }
        // o: its inputs are kept for the residual once o is final.
        let mut ctx = Vec::with_capacity(self.rows() * nq);
        for b in self.x.chunks(per_batch) {
            let c = attention(&l, b);
            observe(hook, i, Tap::O, &c, seq_len * nq)?;
            ctx.extend(c);
        }
        if let Some(w) = hook.replace(i, Tap::O)? {
            l.o = Linear::new(&w, h, nq);
        }
        for (b, c) in self.x.chunks_mut(per_batch).zip(ctx.chunks(per_batch / h * nq)) {
            l.attn_residual(&cfg, c, b);
        }
        drop(ctx);
        // gate, up
        for b in self.x.chunks(per_batch) {
            let t = l.mlp_input(&cfg, b);
            observe(hook, i, Tap::GateUp, &t, seq_len * h)?;
        }
        if let Some(w) = hook.replace(i, Tap::GateUp)? {
            l.gate_up = Linear::new(&w, 2 * f, h);
        }
        // down
        let mut act = Vec::with_capacity(self.rows() * f);
        for b in self.x.chunks(per_batch) {
            let a = l.mlp_act(&cfg, &l.mlp_input(&cfg, b));
            observe(hook, i, Tap::Down, &a, seq_len * f)?;
            act.extend(a);
        }
        if let Some(w) = hook.replace(i, Tap::Down)? {
            l.down = Linear::new(&w, h, f);
        }
        for (b, a) in self.x.chunks_mut(per_batch).zip(act.chunks(per_batch / h * f)) {
            l.mlp_residual(&cfg, a, b);
        }
        Ok(())
    }

    /// The input of the tied head for every calibration position: the final
    /// norm of the hidden states (run after the last layer).
    pub fn head_inputs(&self, src: &dyn Gemma3Weights) -> Result<Vec<f32>, Gemma3Error> {
        let norm = load(src, &self.cfg, Field::Norm.model())?;
        let mut t = self.x.clone();
        rms_norm_rows(&mut t, &norm, self.cfg.rms_norm_eps as f32);
        Ok(t)
    }

    /// Positions per sequence.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }
}

/// Shows `hook` the rows of a batch, one sequence (`per_seq` values) at a time.
fn observe<H: LayerHook>(hook: &mut H, layer: usize, tap: Tap, rows: &[f32], per_seq: usize) -> Result<(), H::Error> {
    for seq in rows.chunks(per_seq) {
        hook.observe(layer, tap, seq)?;
    }
    Ok(())
}
