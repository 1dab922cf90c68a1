//! MLC-LLM's `q4bf16_1`: 4-bit group quantization with bfloat16 scales.
//!
//! # Layout
//!
//! A weight `W` of shape `[out, in]` (PyTorch `nn.Linear` order, "NK") is
//! cut along `in` into groups of `group` consecutive elements (32 is MLC's
//! default, 128 the seed's). It becomes two tensors:
//!
//! ```text
//! {name}.q_weight  uint32    [out, in / 8]      8 nibbles per word
//! {name}.q_scale   bfloat16  [out, in / group]  one scale per group
//!
//! q_weight[i][j] = sum over r in 0..8 of  q[i][8j + r] << 4r
//!                  (element 8j + r sits in bits [4r, 4r + 4))
//! W'[i][k]       = (q[i][k] - 7) * scale[i][k / group]      q in 0..=14
//! ```
//!
//! Embeddings (`[vocab, hidden]`) use the same layout, grouped along
//! `hidden`; MLC quantizes them too (`quantize_embedding=True`).
//!
//! # Arithmetic, step by step
//!
//! For each group, in this order, with IEEE binary32 operations and no
//! fused multiply-add:
//!
//! 1. `w = bf16(w_f32)`: the weight is rounded to bfloat16 first
//!    (round-to-nearest-even). MLC's loaders cast every parameter to the
//!    model dtype, bfloat16, before quantizing; a source already in
//!    bfloat16 is unchanged.
//! 2. `m = max |w|` over the group (exact).
//! 3. `scale = bf16(m / 7)`: one f32 division, rounded to nearest-even
//!    bfloat16. This is what [`ScaleRule::MaxAbs`] returns.
//! 4. `q = min(max(round_half_even(w / scale + 7), 0), 14)` with the
//!    *rounded* scale from step 3, so `(q - 7) * scale` is the value nearest
//!    to `w` that the stored scale can express. `max` and `min` are
//!    `a > b ? a : b` and `a < b ? a : b`: a NaN becomes 0.
//! 5. Dequantization `(q - 7) * scale` is exact in f32 (a 3-bit integer
//!    times an 8-bit significand).
//!
//! Consequences worth knowing:
//!
//! - An all-zero group gets `scale = 0` and `q = 0` (0/0 is NaN, and
//!   `max(NaN, 0)` is 0), not 7. It still dequantizes to zero (`-7 * 0`,
//!   i.e. -0.0).
//! - A group whose largest magnitude is below `7 * 2^-134` gets a scale
//!   that underflows to 0: its nonzero elements saturate to 0 or 14 and
//!   dequantize to ±0. The error is then below the smallest bfloat16
//!   subnormal times 7.
//! - Because the scale is rounded (step 3) before the division (step 4),
//!   `|w| = m` can give `w / scale` slightly above 7 (by at most 2^-8
//!   relative); it still rounds to 7, so the clamp never changes a finite
//!   result. Every element satisfies `|W' - w| <= scale / 2` for the
//!   bfloat16-rounded `w` of step 1 (up to two f32 roundings, about
//!   `scale * 2^-20`).
//! - Non-finite weights (or finite f32 weights that overflow bfloat16) are
//!   refused with an error naming the element; MLC would write garbage.
//!
//! # What MLC does, and where that was read
//!
//! Read with the `search` tool in `mlc-ai/mlc-llm` and `apache/tvm`, then
//! checked by running MLC's tensor expression under TVM itself:
//!
//! - `python/mlc_llm/quantization/quantization.py` (commit `16c3dc4a`,
//!   the `QUANTIZATION` entry at lines 101-111): `"q4bf16_1": GroupQuantize(group_size=32,
//!   quantize_dtype="int4", storage_dtype="uint32", model_dtype="bfloat16",
//!   linear_weight_layout="NK", quantize_embedding=True,
//!   quantize_final_fc=True)`.
//! - `python/mlc_llm/quantization/group_quantization.py` (commit
//!   `01ced331`): `GroupQuantize.__post_init__` sets
//!   `num_elem_per_storage = 32 // 4 = 8`, raises `ValueError` when
//!   `group_size % 8 != 0`, and `max_int_value = 2**(4-1) - 1 = 7`.
//!   `GroupQuantize._quantize` computes `max_abs` (a `te.max` of `te.abs`),
//!   `scale = max_abs.astype(model_dtype) / max_int`, and
//!   `tir.min(tir.max(tir.round(weight / scale + max_int), 0), max_int * 2)
//!   .astype(storage_dtype)`: `round(w / scale + 7)`, not
//!   `round(w / scale) + 7`. `GroupQuantizeLinear.__init__` declares, for
//!   NK, `q_weight (out, num_storage_per_group * num_group)` uint32 and
//!   `q_scale (out, num_group)` in the model dtype; `_dequantize` is
//!   `(float(q) - max_int) * scale`. `GroupQuantizeEmbedding` is the same
//!   along the embedding dimension.
//! - `python/mlc_llm/quantization/utils.py` (commit `00c44c3c`):
//!   `pack_weight` sums `q << (r * 4)` over `r in 0..8`;
//!   `convert_uint_to_float` reads `(word >> (k % 8) * 4) & 0xF`.
//!   `compile_quantize_func` runs `relax.transform.LegalizeOps` and
//!   `relax.build(target="llvm")` on CPU; GPUs get dlight schedules.
//! - `python/mlc_llm/model/gemma3/gemma3_loader.py` (commit `01ced331`):
//!   every mapped parameter ends in `.astype(dtype)` with the model's
//!   bfloat16 dtype (step 1 above); RMSNorm weights are stored as `x + 1`;
//!   `gate_proj` and `up_proj` are concatenated on axis 0 into
//!   `gate_up_proj`. `gemma3_quantization.py`'s `group_quant` casts the
//!   model to bfloat16 and applies the same `GroupQuantize`.
//! - `apache/tvm` `src/tir/transforms/unsupported_dtype_legalize.cc`:
//!   bfloat16 arithmetic is legalized to f32; internal bfloat16 buffers are
//!   promoted to f32 but "buffers on function boundary" are not. The scale
//!   is an output of the quantize function, so it is stored as bfloat16
//!   (`DTypeConversion`, round half to even by default, per
//!   `dtype_conversion.h`) and the division reads that stored value (step
//!   4). `src/target/llvm/codegen_llvm.cc` lowers `Max`/`Min` to
//!   `select(a > b, a, b)` / `select(a < b, a, b)`.
//! - Rounding of `tir.round` depends on the TVM release and the device.
//!   Current TVM (`tirx`, `src/target/llvm/intrin_rule_llvm.cc`) lowers it
//!   to `llvm.nearbyint` on CPU (ties to even; nvptx is redirected the same
//!   way, Vulkan uses `RoundEven`); older releases lowered it to
//!   `llvm.round` (ties away from zero), and the CUDA/Metal/OpenCL backends
//!   call C `round` (ties away). avac follows current TVM on CPU: ties to
//!   even. Only exact `.5` ties can differ.
//! - Oracle: PyPI `apache-tvm` 0.27.0.post1 compiling MLC's `_quantize` and
//!   `pack_weight` (transcribed; `tir` renamed `tirx`) for `llvm` gives
//!   exactly this module's bits on the tests below (ties, the zero group,
//!   and the digests in `matches_mlc_tvm_oracle`).
//!
//! # Where avac differs from MLC
//!
//! - MLC pads a ragged last group (`ceildiv`); avac requires `in` to be a
//!   multiple of `group` and refuses otherwise, so that no padding
//!   convention has to be agreed with a runtime.
//! - The scale is a [`ScaleRule`], so a better per-group choice (e.g. a
//!   search over bfloat16 scales minimising the group's error) can replace
//!   `max|w| / 7` without touching the layout or the dequantizer.
//! - The codes need not be each weight's nearest: [`quantize_gptq`] picks
//!   them by GPTQ from calibration statistics. The layout, the code range
//!   0..=14 and the dequantizer are MLC's either way.

use rayon::prelude::*;

use crate::quant::gptq::{gptq, Factor, GptqCodes, GptqError, GroupQuantizer};

/// Nibbles per `uint32` word of `q_weight`.
pub const ELEMS_PER_WORD: usize = 8;
/// The zero point: a stored nibble `q` means `(q - 7) * scale`.
pub const ZERO_POINT: u32 = 7;
/// MLC's group size for `q4bf16_1`.
pub const MLC_GROUP_SIZE: usize = 32;

const MAX_INT: f32 = 7.0;
const MAX_Q: f32 = 14.0;

/// Why a weight could not be quantized or a quantized tensor is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Q4Error {
    /// The group size cannot be packed into whole `uint32` words.
    #[error("group size {group} is not a positive multiple of 8 (8 nibbles per uint32 word)")]
    BadGroup {
        /// The requested group size.
        group: usize,
    },
    /// The input dimension is not a whole number of groups.
    #[error("input dimension {inp} is not a multiple of the group size {group}; q4bf16_1 here does not pad ragged groups")]
    RaggedGroup {
        /// The input (K) dimension.
        inp: usize,
        /// The group size.
        group: usize,
    },
    /// One of the dimensions is zero.
    #[error("empty weight of shape [{out}, {inp}]")]
    Empty {
        /// The output (N) dimension.
        out: usize,
        /// The input (K) dimension.
        inp: usize,
    },
    /// `out * inp` does not fit in `usize`.
    #[error("shape [{out}, {inp}] overflows the address space")]
    ShapeOverflow {
        /// The output (N) dimension.
        out: usize,
        /// The input (K) dimension.
        inp: usize,
    },
    /// The data does not have the declared number of elements.
    #[error("{what} has {got} elements, but shape [{out}, {inp}] with group {group} needs {expected}")]
    LenMismatch {
        /// Which buffer: "weight", "q_weight" or "q_scale".
        what: &'static str,
        /// Its length.
        got: usize,
        /// The length the shape implies.
        expected: usize,
        /// The output (N) dimension.
        out: usize,
        /// The input (K) dimension.
        inp: usize,
        /// The group size.
        group: usize,
    },
    /// A weight is NaN or infinite.
    #[error("weight [{row}, {col}] is {value}: only finite weights can be quantized")]
    NonFinite {
        /// Row (output index).
        row: usize,
        /// Column (input index).
        col: usize,
        /// The offending value.
        value: f32,
    },
    /// A finite f32 weight rounds to infinity in bfloat16.
    #[error("weight [{row}, {col}] = {value:e} overflows bfloat16 (largest finite is about 3.3895e38)")]
    Bf16Overflow {
        /// Row (output index).
        row: usize,
        /// Column (input index).
        col: usize,
        /// The offending value.
        value: f32,
    },
    /// A stored nibble is 15, which the quantizer never writes.
    #[error("q_weight element [{row}, {col}] is 15; q4bf16_1 codes are 0..=14")]
    BadCode {
        /// Row (output index).
        row: usize,
        /// Column (input index, unpacked).
        col: usize,
    },
    /// A stored scale is negative, NaN or infinite.
    #[error("q_scale [{row}, {group_index}] = bfloat16 0x{bits:04x} is not a finite non-negative scale")]
    BadScale {
        /// Row (output index).
        row: usize,
        /// Group index along the input dimension.
        group_index: usize,
        /// The bfloat16 bits.
        bits: u16,
    },
}

/// How a group's scale is chosen. The layout and the dequantizer do not
/// depend on the rule: any rule yields a bfloat16 scale per group, and the
/// codes are always the nearest ones for that scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ScaleRule {
    /// MLC's rule: `bf16(max|w| / 7)`.
    #[default]
    MaxAbs,
    /// The bfloat16 scale, among [`MSE_SEARCH_STEPS`] candidates
    /// `bf16(max|w| / 7 · (1 − k/100))` for `k = 0, 2, …, 40`, whose
    /// nearest-code reconstruction has the smallest squared error on the
    /// group (summed in f64 in element order; the first candidate wins
    /// ties). Shrinking the scale clips the group's largest weights to
    /// ±7·scale but refines the grid for the rest; on Gaussian-like weights
    /// the optimum is usually 10–20% below max-abs.
    MseSearch,
}

/// Candidates tried by [`ScaleRule::MseSearch`].
pub const MSE_SEARCH_STEPS: usize = 21;

impl ScaleRule {
    /// The scale (bfloat16 bits) for one group of bfloat16-valued weights.
    pub fn choose(self, group: &[f32]) -> u16 {
        match self {
            ScaleRule::MaxAbs => {
                let mut max = 0.0f32;
                for &w in group {
                    let a = w.abs();
                    if a > max {
                        max = a;
                    }
                }
                f32_to_bf16(max / MAX_INT)
            }
            ScaleRule::MseSearch => {
                let first = ScaleRule::MaxAbs.choose(group);
                let base = bf16_to_f32(first);
                let (mut best, mut best_err) = (first, group_sse(group, base));
                for k in 1..MSE_SEARCH_STEPS {
                    let bits = f32_to_bf16(base * (1.0 - (2 * k) as f32 / 100.0));
                    let err = group_sse(group, bf16_to_f32(bits));
                    if err < best_err {
                        (best, best_err) = (bits, err);
                    }
                }
                best
            }
        }
    }
}

/// Squared reconstruction error of a group for one scale, in f64.
fn group_sse(group: &[f32], scale: f32) -> f64 {
    let mut e = 0.0f64;
    for &w in group {
        let q = quantize_value(w, scale) as i32 - ZERO_POINT as i32;
        let d = f64::from(q as f32 * scale) - f64::from(w);
        e += d * d;
    }
    e
}

/// Everything that determines the bits of a `q4bf16_1` tensor besides the
/// weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Q4Spec {
    /// Elements per group along the input dimension (a multiple of 8).
    pub group: usize,
    /// How each group's scale is chosen.
    pub scale_rule: ScaleRule,
}

impl Q4Spec {
    /// MLC's `q4bf16_1` with the given group size.
    pub fn mlc(group: usize) -> Self {
        Q4Spec { group, scale_rule: ScaleRule::MaxAbs }
    }
}

/// A quantized `[out, in]` weight in MLC's `q4bf16_1` layout.
///
/// The fields are private so that every value satisfies the layout's
/// invariants; [`Q4Tensor::from_parts`] checks them for data read back from
/// a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Q4Tensor {
    q_weight: Vec<u32>,
    q_scale: Vec<u16>,
    out: usize,
    inp: usize,
    group: usize,
}

impl Q4Tensor {
    /// Rebuilds a tensor from stored parts, checking lengths, codes (0..=14)
    /// and scales (finite, non-negative).
    pub fn from_parts(q_weight: Vec<u32>, q_scale: Vec<u16>, out: usize, inp: usize, group: usize) -> Result<Self, Q4Error> {
        check_shape(out, inp, group)?;
        let (words, scales) = (out * (inp / ELEMS_PER_WORD), out * (inp / group));
        if q_weight.len() != words {
            return Err(Q4Error::LenMismatch { what: "q_weight", got: q_weight.len(), expected: words, out, inp, group });
        }
        if q_scale.len() != scales {
            return Err(Q4Error::LenMismatch { what: "q_scale", got: q_scale.len(), expected: scales, out, inp, group });
        }
        let words_per_row = inp / ELEMS_PER_WORD;
        for (i, &word) in q_weight.iter().enumerate() {
            for r in 0..ELEMS_PER_WORD {
                if (word >> (4 * r)) & 0xF == 15 {
                    return Err(Q4Error::BadCode { row: i / words_per_row, col: (i % words_per_row) * ELEMS_PER_WORD + r });
                }
            }
        }
        let groups_per_row = inp / group;
        for (i, &bits) in q_scale.iter().enumerate() {
            if bits & 0x8000 != 0 || !bf16_to_f32(bits).is_finite() {
                return Err(Q4Error::BadScale { row: i / groups_per_row, group_index: i % groups_per_row, bits });
            }
        }
        Ok(Q4Tensor { q_weight, q_scale, out, inp, group })
    }

    /// The packed codes, row-major `[out, in / 8]`.
    pub fn q_weight(&self) -> &[u32] {
        &self.q_weight
    }

    /// The scales as bfloat16 bits, row-major `[out, in / group]`.
    pub fn q_scale(&self) -> &[u16] {
        &self.q_scale
    }

    /// Output (N) dimension.
    pub fn out(&self) -> usize {
        self.out
    }

    /// Input (K) dimension, unpacked.
    pub fn inp(&self) -> usize {
        self.inp
    }

    /// Group size.
    pub fn group(&self) -> usize {
        self.group
    }

    /// Shape of `{name}.q_weight`: `[out, in / 8]`.
    pub fn q_weight_shape(&self) -> [usize; 2] {
        [self.out, self.inp / ELEMS_PER_WORD]
    }

    /// Shape of `{name}.q_scale`: `[out, in / group]`.
    pub fn q_scale_shape(&self) -> [usize; 2] {
        [self.out, self.inp / self.group]
    }

    /// `q_weight` as stored in a params shard (little-endian `uint32`).
    pub fn q_weight_le_bytes(&self) -> Vec<u8> {
        self.q_weight.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// `q_scale` as stored in a params shard (little-endian `bfloat16`).
    pub fn q_scale_le_bytes(&self) -> Vec<u8> {
        self.q_scale.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    /// Consumes the tensor, returning `(q_weight, q_scale)`.
    pub fn into_parts(self) -> (Vec<u32>, Vec<u16>) {
        (self.q_weight, self.q_scale)
    }
}

/// `q4bf16_1` as a [`GroupQuantizer`] for GPTQ: the group's scale by the
/// spec's [`ScaleRule`], codes by [`quantize_value`].
impl GroupQuantizer for Q4Spec {
    type Scale = u16;

    fn group(&self) -> usize {
        self.group
    }

    fn scale(&self, values: &[f32]) -> u16 {
        self.scale_rule.choose(values)
    }

    fn code(&self, w: f32, s: u16) -> (u8, f32) {
        let scale = bf16_to_f32(s);
        let q = quantize_value(w, scale);
        (q as u8, (q as i32 - ZERO_POINT as i32) as f32 * scale)
    }
}

/// Quantizes a row-major `[out, inp]` weight by GPTQ ([`crate::quant::gptq`])
/// into the `q4bf16_1` layout, given the factor of its inputs' second
/// moments ([`Factor`]).
/// The weights are rounded to bfloat16 first, as [`quantize_groups_with`]
/// does; only the choice of codes and scales differs.
pub fn quantize_gptq(w: &[f32], out: usize, inp: usize, spec: Q4Spec, f: &Factor) -> Result<Q4Tensor, Q4GptqError> {
    let len = check_shape(out, inp, spec.group)?;
    if w.len() != len {
        return Err(Q4Error::LenMismatch { what: "weight", got: w.len(), expected: len, out, inp, group: spec.group }.into());
    }
    check_finite(w, inp)?;
    let wb: Vec<f32> = w.par_iter().map(|&x| round_to_bf16(x)).collect();
    let GptqCodes { codes, scales } = gptq(&wb, out, inp, f, &spec)?;
    let q_weight = codes.par_chunks(ELEMS_PER_WORD).map(|c| c.iter().enumerate().fold(0u32, |word, (r, &q)| word | u32::from(q) << (4 * r))).collect();
    Ok(Q4Tensor { q_weight, q_scale: scales, out, inp, group: spec.group })
}

/// Why [`quantize_gptq`] failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Q4GptqError {
    /// The weight itself cannot be quantized.
    #[error(transparent)]
    Q4(#[from] Q4Error),
    /// GPTQ could not run on these statistics.
    #[error(transparent)]
    Gptq(#[from] GptqError),
}

/// Refuses a non-finite weight or one that overflows bfloat16, naming the
/// first in row-major order (independent of scheduling).
fn check_finite(w: &[f32], inp: usize) -> Result<(), Q4Error> {
    if let Some(i) = w.iter().position(|&x| !round_to_bf16(x).is_finite()) {
        let (row, col, value) = (i / inp, i % inp, w[i]);
        return Err(if value.is_finite() { Q4Error::Bf16Overflow { row, col, value } } else { Q4Error::NonFinite { row, col, value } });
    }
    Ok(())
}

/// Quantizes a row-major `[out, inp]` weight with MLC's `q4bf16_1` rule and
/// the given group size.
pub fn quantize_groups(w: &[f32], out: usize, inp: usize, group: usize) -> Result<Q4Tensor, Q4Error> {
    quantize_groups_with(w, out, inp, Q4Spec::mlc(group))
}

/// Quantizes a row-major `[out, inp]` weight. Rows are processed in
/// parallel, each by one thread in a fixed order, so the bits do not depend
/// on the thread count.
pub fn quantize_groups_with(w: &[f32], out: usize, inp: usize, spec: Q4Spec) -> Result<Q4Tensor, Q4Error> {
    let group = spec.group;
    let len = check_shape(out, inp, group)?;
    if w.len() != len {
        return Err(Q4Error::LenMismatch { what: "weight", got: w.len(), expected: len, out, inp, group });
    }
    check_finite(w, inp)?;
    let words_per_row = inp / ELEMS_PER_WORD;
    let groups_per_row = inp / group;
    let mut q_weight = vec![0u32; out * words_per_row];
    let mut q_scale = vec![0u16; out * groups_per_row];
    q_weight
        .par_chunks_mut(words_per_row)
        .zip(q_scale.par_chunks_mut(groups_per_row))
        .zip(w.par_chunks(inp))
        .for_each_init(|| Vec::with_capacity(group), |scratch, ((qw, qs), row)| quantize_row(row, spec, qw, qs, scratch));
    Ok(Q4Tensor { q_weight, q_scale, out, inp, group })
}

fn quantize_row(row: &[f32], spec: Q4Spec, qw: &mut [u32], qs: &mut [u16], scratch: &mut Vec<f32>) {
    let words_per_group = spec.group / ELEMS_PER_WORD;
    for ((g, words), scale_out) in row.chunks_exact(spec.group).zip(qw.chunks_exact_mut(words_per_group)).zip(qs.iter_mut()) {
        scratch.clear();
        scratch.extend(g.iter().map(|&x| round_to_bf16(x)));
        let bits = spec.scale_rule.choose(scratch);
        *scale_out = bits;
        let scale = bf16_to_f32(bits);
        for (word, vals) in words.iter_mut().zip(scratch.chunks_exact(ELEMS_PER_WORD)) {
            let mut packed = 0u32;
            for (r, &v) in vals.iter().enumerate() {
                packed |= quantize_value(v, scale) << (4 * r);
            }
            *word = packed;
        }
    }
}

/// The code of one bfloat16-valued weight for a given (bfloat16-valued)
/// scale: `min(max(round_half_even(w / scale + 7), 0), 14)`, NaN → 0.
#[inline]
pub fn quantize_value(w: f32, scale: f32) -> u32 {
    let x = (w / scale + MAX_INT).round_ties_even();
    let x = if x > 0.0 { x } else { 0.0 };
    let x = if x < MAX_Q { x } else { MAX_Q };
    x as u32
}

/// Dequantizes a whole tensor to row-major `[out, inp]` f32 (exact:
/// `(q - 7) * scale` needs at most 11 significant bits).
pub fn dequantize(t: &Q4Tensor) -> Vec<f32> {
    let mut w = vec![0f32; t.out * t.inp];
    let words_per_row = t.inp / ELEMS_PER_WORD;
    let groups_per_row = t.inp / t.group;
    w.par_chunks_mut(t.inp)
        .zip(t.q_weight.par_chunks(words_per_row))
        .zip(t.q_scale.par_chunks(groups_per_row))
        .for_each(|((row, qw), qs)| dequantize_row(qw, qs, t.group, row));
    w
}

/// Dequantizes one row (e.g. one embedding) into `out`, which must hold
/// `8 * q_weight_row.len()` values; `group` must divide it.
///
/// # Panics
/// If the lengths disagree; rows cut from a [`Q4Tensor`] always agree.
pub fn dequantize_row(q_weight_row: &[u32], q_scale_row: &[u16], group: usize, out: &mut [f32]) {
    assert!(
        out.len() == q_weight_row.len() * ELEMS_PER_WORD && group > 0 && out.len() == q_scale_row.len() * group,
        "dequantize_row: {} words, {} scales, group {group} do not fill {} outputs",
        q_weight_row.len(),
        q_scale_row.len(),
        out.len()
    );
    for (k, (o, word)) in out.chunks_exact_mut(ELEMS_PER_WORD).zip(q_weight_row).enumerate() {
        let scale = bf16_to_f32(q_scale_row[k * ELEMS_PER_WORD / group]);
        for (r, o) in o.iter_mut().enumerate() {
            let q = ((word >> (4 * r)) & 0xF) as i32 - ZERO_POINT as i32;
            *o = q as f32 * scale;
        }
    }
}

pub use crate::kernels::half::{bf16_to_f32, f32_to_bf16, round_to_bf16};

/// Checks the shape and returns `out * inp`.
fn check_shape(out: usize, inp: usize, group: usize) -> Result<usize, Q4Error> {
    if group == 0 || !group.is_multiple_of(ELEMS_PER_WORD) {
        return Err(Q4Error::BadGroup { group });
    }
    if out == 0 || inp == 0 {
        return Err(Q4Error::Empty { out, inp });
    }
    if !inp.is_multiple_of(group) {
        return Err(Q4Error::RaggedGroup { inp, group });
    }
    out.checked_mul(inp).ok_or(Q4Error::ShapeOverflow { out, inp })
}

#[cfg(test)]
mod tests;
