"""TensorIR kernels of the Gemma 3 forward, with their CPU schedules.

Every kernel is a `PrimFunc` built for one set of sizes (the sizes are
Python ints baked in; only the token count is symbolic) and already
scheduled, so the Relax pipeline needs no DLight or MetaSchedule pass.

Conventions (`src/model/gemma3/mod.rs`, the reference forward):

- `q4bf16_1`: `q_weight` uint32 `[out, in/8]`, element `r` of a word in bits
  `[4r, 4r+4)`; `q_scale` bfloat16 `[out, in/group]`; the weight is
  `(nibble - 7) * scale`, in f32.
- RMSNorm: `ss = sum(x^2)` left to right, `r = 1 / sqrt(ss / n + eps)`,
  `y = (x * r) * s` with `s` the stored `1 + w` (bfloat16 widened).
- RoPE: rotate-half; `inv_freq[i] = 1 / f32(base ** f32(2i / d))` (the power
  in f64, rounded once), divided by the linear factor when set; the angle is
  `f32(pos) * inv_freq[i]`.
- Attention: scores `(q . k) * query_pre_attn_scalar^-0.5`, optional
  softcapping, softmax over keys `lo..=pos` (`lo = pos + 1 - window` on
  sliding layers), computed online (running max and sum) in one pass over
  the keys. This differs from the reference's two-pass softmax only by
  rounding.

Every output element is computed by one thread in a fixed order (parallel
loops span independent rows or output columns only), so results do not
depend on the thread count.
"""

from __future__ import annotations

import math

from tvm import s_tir, tirx
from tvm.script import tirx as T

#: Output columns per tile of the dequantizing matmul (one tile is dequantized once
#: into a `[K, NT]` f32 buffer, then reused by every row).
NT = 16
#: Rows per register tile of the dequantizing matmul in prefill (decode has one row).
MT = 4
#: Finite stand-in for -inf as the initial running max.
NEG_INF = -3.4028234663852886e38


def _nibble(qw, n, k):
    """Element `k` of row `n` of a packed `q_weight`, as f32 (0..15)."""
    return T.Cast(
        "float32",
        T.bitwise_and(T.shift_right(qw[n, k // 8], T.Cast("uint32", (k % 8) * 4)), T.uint32(15)),
    )


def dequant_matmul(n_out: int, k_in: int, group: int, rows: int | None):
    """`y[m, n] = sum_k x[m, k] * W[n, k]` with `W` dequantized from `q4bf16_1`, scheduled.

    `rows` is the static row count, or None for a symbolic one; one row (decode)
    takes `dequant_gemv` instead. Schedule: output columns split into tiles of
    `NT`, tiles in parallel; per tile the weights are dequantized once into a
    `[K, NT]` buffer (vectorized along the tile), then rows go by register
    tiles of `MT x NT` accumulators (`MT` unrolled, `NT` vectorized) over `K`
    in order, so every `y[m, n]` is the sum over `k` from 0 up, whatever the
    tiling and the row count.
    """
    if rows == 1:
        return dequant_gemv(n_out, k_in, group)
    kw, kg = k_in // 8, k_in // group
    m = tirx.Var("m", "int64") if rows is None else rows

    @T.prim_func(s_tir=True)
    def dequant_matmul(var_x: T.handle, qw: T.Buffer((n_out, kw), "uint32"), qs: T.Buffer((n_out, kg), "bfloat16"), var_y: T.handle):
        T.func_attr({"tir.noalias": True})
        x = T.match_buffer(var_x, (m, k_in), "float32")
        y = T.match_buffer(var_y, (m, n_out), "float32")
        w = T.sblock_alloc_buffer((k_in, n_out), "float32")
        for n, k in T.grid(n_out, k_in):
            with T.sblock("dequant"):
                vn, vk = T.axis.remap("SS", [n, k])
                w[vk, vn] = (_nibble(qw, vn, vk) - T.float32(7)) * T.Cast("float32", qs[vn, vk // group])
        for i, n, k in T.grid(m, n_out, k_in):
            with T.sblock("matmul"):
                vi, vn, vk = T.axis.remap("SSR", [i, n, k])
                with T.init():
                    y[vi, vn] = T.float32(0)
                y[vi, vn] = y[vi, vn] + x[vi, vk] * w[vk, vn]

    return _schedule_dequant_matmul(dequant_matmul, MT)


def _schedule_dequant_matmul(func, mt: int):
    sch = s_tir.Schedule(func)
    mm = sch.get_sblock("matmul")
    dq = sch.get_sblock("dequant")
    i, n, k = sch.get_loops(mm)
    n0, n1 = sch.split(n, [None, NT])
    i0, i1 = sch.split(i, [None, mt])
    sch.reorder(n0, i0, k, i1, n1)
    sch.parallel(n0)
    sch.compute_at(dq, n0)
    dl = sch.get_loops(dq)
    sch.reorder(dl[-1], dl[-2])
    sch.vectorize(sch.get_loops(dq)[-1])
    acc = sch.cache_write(mm, 0, "local")
    sch.reverse_compute_at(acc, i0)
    sch.vectorize(n1)
    sch.unroll(i1)
    sch.decompose_reduction(mm, k)
    sch.vectorize(sch.get_loops(acc)[-1])
    return sch.mod["main"]


#: Output rows per parallel task of the decode matrix-vector product.
GEMV_NT = 8


def dequant_gemv(n_out: int, k_in: int, group: int):
    """One row of `dequant_matmul` for decode, where the weights are read once and dequantizing dominates.

    Schedule: `rfactor` over the 8 nibbles of a word, so each output keeps 8
    lane sums (lane `r` sums `k = 8j + r` over `j` in order) computed with one
    vector per word (broadcast word, per-lane shift, mask, convert, scale,
    multiply-add), then adds the 8 lanes in order; outputs go by tasks of
    `GEMV_NT` in parallel. The sums are grouped differently from the prefill
    kernel's, so decode logits differ from prefill logits by rounding.
    """
    kw, kg = k_in // 8, k_in // group

    @T.prim_func(s_tir=True)
    def dequant_gemv(x: T.Buffer((1, k_in), "float32"), qw: T.Buffer((n_out, kw), "uint32"), qs: T.Buffer((n_out, kg), "bfloat16"), y: T.Buffer((1, n_out), "float32")):
        T.func_attr({"tir.noalias": True})
        for i, n, ko, ki in T.grid(1, n_out, kw, 8):
            with T.sblock("gemv"):
                vi, vn, vko, vki = T.axis.remap("SSRR", [i, n, ko, ki])
                with T.init():
                    y[vi, vn] = T.float32(0)
                y[vi, vn] = y[vi, vn] + x[vi, vko * 8 + vki] * (
                    (_nibble(qw, vn, vko * 8 + vki) - T.float32(7)) * T.Cast("float32", qs[vn, (vko * 8 + vki) // group])
                )

    sch = s_tir.Schedule(dequant_gemv)
    b = sch.get_sblock("gemv")
    rf = sch.rfactor(sch.get_loops(b)[3], 0)
    i, n, ko, ki = sch.get_loops(rf)
    n0, n1 = sch.split(n, [None, GEMV_NT])
    sch.reorder(n0, i, n1, ko, ki)
    sch.parallel(n0)
    sch.vectorize(ki)
    sch.reverse_compute_at(b, n0)
    return sch.mod["main"]


def embed(vocab: int, hidden: int, group: int, normalizer: float):
    """`y[i] = ((nibble - 7) * scale) * normalizer` of row `ids[i]`; an id outside the vocabulary fails."""
    kw, kg = hidden // 8, hidden // group

    @T.prim_func(s_tir=True)
    def embed(var_ids: T.handle, qw: T.Buffer((vocab, kw), "uint32"), qs: T.Buffer((vocab, kg), "bfloat16"), var_y: T.handle):
        T.func_attr({"tir.noalias": True})
        n = T.int64()
        ids = T.match_buffer(var_ids, (n,), "int32")
        y = T.match_buffer(var_y, (n, hidden), "float32")
        for i in range(n):
            assert 0 <= ids[i] and ids[i] < vocab, "embed: token id outside the vocabulary"
        for i in T.parallel(n):
            for c in range(hidden):
                with T.sblock("embed"):
                    vi, vc = T.axis.remap("SS", [i, c])
                    y[vi, vc] = ((_nibble(qw, ids[vi], vc) - T.float32(7)) * T.Cast("float32", qs[ids[vi], vc // group])) * T.float32(normalizer)

    return embed


def rms_norm(width: int, eps: float):
    """`y = (x * r) * s` per row, `r = 1 / sqrt(sum(x^2) / width + eps)`."""

    @T.prim_func(s_tir=True)
    def rms_norm(var_x: T.handle, s: T.Buffer((width,), "bfloat16"), var_y: T.handle):
        T.func_attr({"tir.noalias": True})
        n = T.int64()
        x = T.match_buffer(var_x, (n, width), "float32")
        y = T.match_buffer(var_y, (n, width), "float32")
        for i in T.parallel(n):
            with T.sblock("row"):
                vi = T.axis.spatial(n, i)
                ss = T.sblock_alloc_buffer((1,), "float32")
                ss[0] = T.float32(0)
                for c in range(width):
                    ss[0] = ss[0] + x[vi, c] * x[vi, c]
                ss[0] = T.float32(1) / T.sqrt(ss[0] / T.float32(width) + T.float32(eps))
                for c in range(width):
                    y[vi, c] = x[vi, c] * ss[0] * T.Cast("float32", s[c])

    return rms_norm


def add_rms_norm(width: int, eps: float):
    """`y = x + rms_norm(a) * s`: a sub-layer's output normed and added to the residual."""

    @T.prim_func(s_tir=True)
    def add_rms_norm(var_x: T.handle, var_a: T.handle, s: T.Buffer((width,), "bfloat16"), var_y: T.handle):
        T.func_attr({"tir.noalias": True})
        n = T.int64()
        x = T.match_buffer(var_x, (n, width), "float32")
        a = T.match_buffer(var_a, (n, width), "float32")
        y = T.match_buffer(var_y, (n, width), "float32")
        for i in T.parallel(n):
            with T.sblock("row"):
                vi = T.axis.spatial(n, i)
                ss = T.sblock_alloc_buffer((1,), "float32")
                ss[0] = T.float32(0)
                for c in range(width):
                    ss[0] = ss[0] + a[vi, c] * a[vi, c]
                ss[0] = T.float32(1) / T.sqrt(ss[0] / T.float32(width) + T.float32(eps))
                for c in range(width):
                    y[vi, c] = x[vi, c] + a[vi, c] * ss[0] * T.Cast("float32", s[c])

    return add_rms_norm


def _inv_freq(r, base, head_dim):
    """`1 / f32(base ** f32(2r / head_dim))`, the power evaluated in f64."""
    return T.float32(1) / T.Cast("float32", T.pow(T.float64(base), T.Cast("float64", T.Cast("float32", r * 2) / T.float32(head_dim))))


def rope_table(head_dim: int, base: float, factor: float | None):
    """`cs[i, 0, r] = cos(a)`, `cs[i, 1, r] = sin(a)` with `a = f32(start + i) * inv_freq[r]`."""
    half = head_dim // 2
    div = 1.0 if factor is None else factor  # x / 1.0 == x: the same bits as no division

    @T.prim_func(s_tir=True)
    def rope_table(start: T.int64, var_cs: T.handle):
        T.func_attr({"tir.noalias": True})
        n = T.int64()
        cs = T.match_buffer(var_cs, (n, 2, half), "float32")
        for i in T.parallel(n):
            for r in range(half):
                with T.sblock("rope"):
                    vi, vr = T.axis.remap("SS", [i, r])
                    cs[vi, 0, vr] = T.cos(T.Cast("float32", start + vi) * (_inv_freq(vr, base, head_dim) / T.float32(div)))
                    cs[vi, 1, vr] = T.sin(T.Cast("float32", start + vi) * (_inv_freq(vr, base, head_dim) / T.float32(div)))

    return rope_table


def q_norm_rope(heads: int, head_dim: int, eps: float):
    """Per head of `q`: RMSNorm over the head with `q_norm`, then rotate-half RoPE from `cs`."""
    half = head_dim // 2
    width = heads * head_dim

    @T.prim_func(s_tir=True)
    def q_norm_rope(var_q: T.handle, s: T.Buffer((head_dim,), "bfloat16"), var_cs: T.handle, var_y: T.handle):
        T.func_attr({"tir.noalias": True})
        n = T.int64()
        q = T.match_buffer(var_q, (n, width), "float32")
        cs = T.match_buffer(var_cs, (n, 2, half), "float32")
        y = T.match_buffer(var_y, (n, width), "float32")
        for ih in T.parallel(n * heads):
            with T.sblock("head"):
                vi = T.axis.spatial(n, ih // heads)
                vh = T.axis.spatial(heads, ih % heads)
                t = T.sblock_alloc_buffer((head_dim,), "float32")
                ss = T.sblock_alloc_buffer((1,), "float32")
                _norm_head(q, vi, vh * head_dim, s, t, ss, head_dim, eps)
                for r in range(half):
                    y[vi, vh * head_dim + r] = t[r] * cs[vi, 0, r] + -t[r + half] * cs[vi, 1, r]
                    y[vi, vh * head_dim + r + half] = t[r + half] * cs[vi, 0, r] + t[r] * cs[vi, 1, r]

    return q_norm_rope


@T.macro(hygienic=False)
def _norm_head(src, row, off, s, t, ss, head_dim, eps):
    ss[0] = T.float32(0)
    for c in range(head_dim):
        ss[0] = ss[0] + src[row, off + c] * src[row, off + c]
    ss[0] = T.float32(1) / T.sqrt(ss[0] / T.float32(head_dim) + T.float32(eps))
    for c in range(head_dim):
        t[c] = src[row, off + c] * ss[0] * T.Cast("float32", s[c])


def kv_append(kv_heads: int, head_dim: int, eps: float, layers: int):
    """Writes positions `start..start+n` of one layer into the cache, in place.

    Keys: RMSNorm with `k_norm` per head, then RoPE; values as they are.
    Cache layout `[layers, 2, capacity, kv_heads, head_dim]` f32 (0 keys, 1 values).
    """
    half = head_dim // 2
    width = kv_heads * head_dim

    @T.prim_func(s_tir=True)
    def kv_append(var_k: T.handle, var_v: T.handle, s: T.Buffer((head_dim,), "bfloat16"), var_cs: T.handle, var_cache: T.handle, layer: T.int64, start: T.int64):
        T.func_attr({"tir.noalias": True})
        n = T.int64()
        cap = T.int64()
        k = T.match_buffer(var_k, (n, width), "float32")
        v = T.match_buffer(var_v, (n, width), "float32")
        cs = T.match_buffer(var_cs, (n, 2, half), "float32")
        cache = T.match_buffer(var_cache, (layers, 2, cap, kv_heads, head_dim), "float32")
        assert start + n <= cap, "kv_append: the KV cache is full (start + tokens > capacity)"
        for ig in T.parallel(n * kv_heads):
            with T.sblock("head"):
                vi = T.axis.spatial(n, ig // kv_heads)
                vg = T.axis.spatial(kv_heads, ig % kv_heads)
                t = T.sblock_alloc_buffer((head_dim,), "float32")
                ss = T.sblock_alloc_buffer((1,), "float32")
                _norm_head(k, vi, vg * head_dim, s, t, ss, head_dim, eps)
                for r in range(half):
                    cache[layer, 0, start + vi, vg, r] = t[r] * cs[vi, 0, r] + -t[r + half] * cs[vi, 1, r]
                    cache[layer, 0, start + vi, vg, r + half] = t[r + half] * cs[vi, 0, r] + t[r] * cs[vi, 1, r]
                for c in range(head_dim):
                    cache[layer, 1, start + vi, vg, c] = v[vi, vg * head_dim + c]

    return kv_append


def attention(heads: int, kv_heads: int, head_dim: int, layers: int, scaling: float, window: int | None, softcap: float | None):
    """Causal grouped-query attention of `n` queries at `start..` over the cached keys.

    Query `i` (position `p = start + i`) of head `h` reads KV head
    `h / (heads / kv_heads)` at keys `lo..=p`, `lo = max(0, p + 1 - window)`
    on a sliding layer, else 0. One pass over the keys keeps the running max
    `mx`, the running sum `s` and the unnormalised output `o`; when a score
    exceeds `mx`, `s` and `o` are rescaled by `exp(mx - score)` first.
    """
    group = heads // kv_heads
    width = heads * head_dim
    win = window if window is not None else 1 << 62  # a window longer than any cache: every key

    @T.prim_func(s_tir=True)
    def attention(var_q: T.handle, var_cache: T.handle, layer: T.int64, start: T.int64, var_o: T.handle):
        T.func_attr({"tir.noalias": True})
        n = T.int64()
        cap = T.int64()
        q = T.match_buffer(var_q, (n, width), "float32")
        cache = T.match_buffer(var_cache, (layers, 2, cap, kv_heads, head_dim), "float32")
        out = T.match_buffer(var_o, (n, width), "float32")
        for ih in T.parallel(n * heads):
            with T.sblock("head"):
                vi = T.axis.spatial(n, ih // heads)
                vh = T.axis.spatial(heads, ih % heads)
                o = T.sblock_alloc_buffer((head_dim,), "float32")
                st = T.sblock_alloc_buffer((4,), "float32")  # 0 max, 1 sum, 2 score, 3 weight
                for c in range(head_dim):
                    o[c] = T.float32(0)
                st[0] = T.float32(NEG_INF)
                st[1] = T.float32(0)
                for j in range(T.max(start + vi + 1 - win, T.int64(0)), start + vi + 1):
                    st[2] = T.float32(0)
                    for c in range(head_dim):
                        st[2] = st[2] + q[vi, vh * head_dim + c] * cache[layer, 0, j, vh // group, c]
                    st[2] = st[2] * T.float32(scaling)
                    if softcap is not None:
                        st[2] = T.tanh(st[2] / T.float32(softcap)) * T.float32(softcap)
                    if st[2] > st[0]:
                        st[3] = T.exp(st[0] - st[2])
                        st[1] = st[1] * st[3]
                        for c in range(head_dim):
                            o[c] = o[c] * st[3]
                        st[0] = st[2]
                    st[3] = T.exp(st[2] - st[0])
                    st[1] = st[1] + st[3]
                    for c in range(head_dim):
                        o[c] = o[c] + st[3] * cache[layer, 1, j, vh // group, c]
                for c in range(head_dim):
                    out[vi, vh * head_dim + c] = o[c] / st[1]

    return attention


def gelu_mul(inter: int):
    """`y = gelu_tanh(gate) * up` over the fused `gate_up` output (gate columns first)."""

    @T.prim_func(s_tir=True)
    def gelu_mul(var_gu: T.handle, var_y: T.handle):
        T.func_attr({"tir.noalias": True})
        n = T.int64()
        gu = T.match_buffer(var_gu, (n, inter * 2), "float32")
        y = T.match_buffer(var_y, (n, inter), "float32")
        for i in T.parallel(n):
            for c in range(inter):
                with T.sblock("gelu"):
                    vi, vc = T.axis.remap("SS", [i, c])
                    y[vi, vc] = (
                        T.float32(0.5)
                        * gu[vi, vc]
                        * (
                            T.float32(1)
                            + T.tanh(T.float32(0.7978846) * (gu[vi, vc] + T.float32(0.044715) * (gu[vi, vc] * gu[vi, vc] * gu[vi, vc])))
                        )
                        * gu[vi, vc + inter]
                    )

    return gelu_mul


def softcap(width: int, cap: float):
    """`y = tanh(x / cap) * cap` (final logit softcapping)."""

    @T.prim_func(s_tir=True)
    def softcap(var_x: T.handle, var_y: T.handle):
        T.func_attr({"tir.noalias": True})
        n = T.int64()
        x = T.match_buffer(var_x, (n, width), "float32")
        y = T.match_buffer(var_y, (n, width), "float32")
        for i in T.parallel(n):
            for c in range(width):
                with T.sblock("softcap"):
                    vi, vc = T.axis.remap("SS", [i, c])
                    y[vi, vc] = T.tanh(x[vi, vc] / T.float32(cap)) * T.float32(cap)

    return softcap


def attention_scaling(query_pre_attn_scalar: float) -> float:
    """`query_pre_attn_scalar ** -0.5` in f64, as the reference (`libm::pow`) before its f32 cast."""
    return math.pow(query_pre_attn_scalar, -0.5)
