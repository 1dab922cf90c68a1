//! One decoder layer, cut into the stages between its projections so that
//! the forward ([`super::Gemma3`]) and the layer-wise calibration
//! ([`super::calibrate`]) run the same arithmetic:
//!
//! ```text
//! t   = input_norm(x)                               attn_input
//! ctx = attend(rope(qk_norm(qkv · t)))              attention      (qkv projection)
//! x  += post_attn_norm(o · ctx)                     attn_residual  (o projection)
//! t   = pre_ffn_norm(x)                             mlp_input
//! act = gelu_tanh(gate · t) * (up · t)              mlp_act        (gate_up projection)
//! x  += post_ffn_norm(down · act)                   mlp_residual   (down projection)
//! ```

use rayon::prelude::*;

use super::attention::{self, LayerCache, Rope};
use super::linear::{rms_norm_rows, Linear};
use super::names::Field;
use super::{load, Gemma3Config, Gemma3Error, Gemma3Weights};

/// The two rotary embeddings: local (sliding layers) and global.
#[derive(Clone, Debug)]
pub(super) struct Ropes {
    local: Rope,
    global: Rope,
}

impl Ropes {
    pub(super) fn new(cfg: &Gemma3Config) -> Self {
        let d = cfg.head_dim;
        Ropes { local: Rope::new(d, cfg.rope_local_base_freq, None), global: Rope::new(d, cfg.rope_theta, cfg.rope_scaling_factor) }
    }
}

/// One decoder layer.
#[derive(Clone, Debug)]
pub(super) struct Layer {
    /// `q_proj`, `k_proj`, `v_proj` stacked: `[(heads + 2·kv_heads)·d, hidden]`.
    pub(super) qkv: Linear,
    pub(super) o: Linear,
    /// `gate_proj` and `up_proj` stacked: `[2·intermediate, hidden]`.
    pub(super) gate_up: Linear,
    pub(super) down: Linear,
    /// Effective scales `1 + w` of the six norms ([`super::names::norm_scale`]).
    q_norm: Vec<f32>,
    k_norm: Vec<f32>,
    input_norm: Vec<f32>,
    post_attn_norm: Vec<f32>,
    pre_ffn_norm: Vec<f32>,
    post_ffn_norm: Vec<f32>,
    sliding: bool,
}

impl Layer {
    /// Layer `i` of `src`, every shape checked against `cfg`.
    pub(super) fn load(src: &dyn Gemma3Weights, cfg: &Gemma3Config, i: usize) -> Result<Self, Gemma3Error> {
        let (h, d, f) = (cfg.hidden_size, cfg.head_dim, cfg.intermediate_size);
        let (nq, nkv) = (cfg.num_attention_heads * d, cfg.num_key_value_heads * d);
        let t = |field: Field| load(src, cfg, field.at(i));
        let mut qkv = t(Field::QProj)?;
        qkv.extend(t(Field::KProj)?);
        qkv.extend(t(Field::VProj)?);
        let mut gate_up = t(Field::GateProj)?;
        gate_up.extend(t(Field::UpProj)?);
        Ok(Layer {
            qkv: Linear::new(&qkv, nq + 2 * nkv, h),
            o: Linear::new(&t(Field::OProj)?, h, nq),
            gate_up: Linear::new(&gate_up, 2 * f, h),
            down: Linear::new(&t(Field::DownProj)?, h, f),
            q_norm: t(Field::QNorm)?,
            k_norm: t(Field::KNorm)?,
            input_norm: t(Field::InputLayernorm)?,
            post_attn_norm: t(Field::PostAttentionLayernorm)?,
            pre_ffn_norm: t(Field::PreFeedforwardLayernorm)?,
            post_ffn_norm: t(Field::PostFeedforwardLayernorm)?,
            sliding: cfg.is_sliding(i),
        })
    }

    /// The whole layer on `x` (positions `start..`), appending to `lc`.
    pub(super) fn forward(&self, cfg: &Gemma3Config, ropes: &Ropes, lc: &mut LayerCache, x: &mut [f32], start: usize) {
        let t = self.attn_input(cfg, x);
        let ctx = self.attention(cfg, ropes, lc, &t, start);
        self.attn_residual(cfg, &ctx, x);
        let t = self.mlp_input(cfg, x);
        let act = self.mlp_act(cfg, &t);
        self.mlp_residual(cfg, &act, x);
    }

    /// The input of the `q`/`k`/`v` projections: `input_norm(x)`.
    pub(super) fn attn_input(&self, cfg: &Gemma3Config, x: &[f32]) -> Vec<f32> {
        let mut t = x.to_vec();
        rms_norm_rows(&mut t, &self.input_norm, cfg.rms_norm_eps as f32);
        t
    }

    /// Attention of the normed rows `t` (positions `start..`), appending
    /// their keys and values to `lc`: the input of the `o` projection.
    pub(super) fn attention(&self, cfg: &Gemma3Config, ropes: &Ropes, lc: &mut LayerCache, t: &[f32], start: usize) -> Vec<f32> {
        let eps = cfg.rms_norm_eps as f32;
        let (h, d) = (cfg.hidden_size, cfg.head_dim);
        let (heads, kv) = (cfg.num_attention_heads, cfg.num_key_value_heads);
        let rows = t.len() / h;
        let width = (heads + 2 * kv) * d;

        let mut qkv = vec![0.0f32; rows * width];
        self.qkv.apply(t, rows, &mut qkv);
        let rope = if self.sliding { &ropes.local } else { &ropes.global };
        qkv.par_chunks_mut(width).enumerate().for_each(|(r, row)| {
            let (c, s) = rope.cos_sin(start + r);
            let (q, k) = row[..(heads + kv) * d].split_at_mut(heads * d);
            rms_norm_rows(q, &self.q_norm, eps);
            rms_norm_rows(k, &self.k_norm, eps);
            q.chunks_exact_mut(d).chain(k.chunks_exact_mut(d)).for_each(|v| Rope::apply(v, &c, &s));
        });
        for (r, row) in qkv.chunks_exact(width).enumerate() {
            for g in 0..kv {
                let k = &row[(heads + g) * d..(heads + g + 1) * d];
                let v = &row[(heads + kv + g) * d..(heads + kv + g + 1) * d];
                lc.push(g, start + r, k, v);
            }
        }

        let scoring = attention::Scoring { scaling: libm::pow(cfg.query_pre_attn_scalar, -0.5) as f32, softcap: cfg.attn_logit_softcapping.map(|c| c as f32) };
        let window = if self.sliding { Some(cfg.sliding_window) } else { None };
        let group = heads / kv;
        let mut ctx = vec![0.0f32; rows * heads * d];
        let lc: &LayerCache = lc;
        ctx.par_chunks_mut(d).enumerate().for_each(|(i, o)| {
            let (r, hd) = (i / heads, i % heads);
            let pos = start + r;
            let lo = window.map_or(0, |w| (pos + 1).saturating_sub(w));
            let q = &qkv[r * width + hd * d..r * width + (hd + 1) * d];
            attention::attend(lc, hd / group, q, lo..=pos, scoring, o);
        });
        ctx
    }

    /// `x += post_attn_norm(o · ctx)`.
    pub(super) fn attn_residual(&self, cfg: &Gemma3Config, ctx: &[f32], x: &mut [f32]) {
        let h = cfg.hidden_size;
        let rows = x.len() / h;
        let mut a = vec![0.0f32; rows * h];
        self.o.apply(ctx, rows, &mut a);
        rms_norm_rows(&mut a, &self.post_attn_norm, cfg.rms_norm_eps as f32);
        add_rows(x, &a, h);
    }

    /// The input of the `gate`/`up` projections: `pre_ffn_norm(x)`.
    pub(super) fn mlp_input(&self, cfg: &Gemma3Config, x: &[f32]) -> Vec<f32> {
        let mut t = x.to_vec();
        rms_norm_rows(&mut t, &self.pre_ffn_norm, cfg.rms_norm_eps as f32);
        t
    }

    /// `gelu_tanh(gate · t) * (up · t)`: the input of the `down` projection.
    pub(super) fn mlp_act(&self, cfg: &Gemma3Config, t: &[f32]) -> Vec<f32> {
        let (h, f) = (cfg.hidden_size, cfg.intermediate_size);
        let rows = t.len() / h;
        let mut gu = vec![0.0f32; rows * 2 * f];
        self.gate_up.apply(t, rows, &mut gu);
        let mut act = vec![0.0f32; rows * f];
        act.par_chunks_mut(f).zip(gu.par_chunks(2 * f)).for_each(|(o, gu)| {
            let (g, u) = gu.split_at(f);
            o.iter_mut().zip(g.iter().zip(u)).for_each(|(o, (&g, &u))| *o = crate::kernels::gelu_tanh(g) * u);
        });
        act
    }

    /// `x += post_ffn_norm(down · act)`.
    pub(super) fn mlp_residual(&self, cfg: &Gemma3Config, act: &[f32], x: &mut [f32]) {
        let h = cfg.hidden_size;
        let rows = x.len() / h;
        let mut m = vec![0.0f32; rows * h];
        self.down.apply(act, rows, &mut m);
        rms_norm_rows(&mut m, &self.post_ffn_norm, cfg.rms_norm_eps as f32);
        add_rows(x, &m, h);
    }
}

/// `x += a`, row by row.
fn add_rows(x: &mut [f32], a: &[f32], h: usize) {
    x.par_chunks_mut(h).zip(a.par_chunks(h)).for_each(|(x, a)| x.iter_mut().zip(a).for_each(|(x, a)| *x += a));
}
