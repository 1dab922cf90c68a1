"""Oracle for avac's q4bf16_1 quantizer: MLC-LLM's own TE code, compiled by TVM.

`_quantize` and `pack_weight` below are transcribed from mlc-ai/mlc-llm
python/mlc_llm/quantization/group_quantization.py (GroupQuantize._quantize) and
python/mlc_llm/quantization/utils.py (pack_weight, compile_quantize_func's CPU
branch), with the `q4bf16_1` config from quantization.py (int4 in uint32,
model_dtype bfloat16, NK layout). TVM 0.27 renamed `tvm.tir` to `tvm.tirx` and `relax.TensorStructInfo` to
`relax.TensorType`;
nothing else changes.

The weight goes through `numpy.astype(ml_dtypes.bfloat16)` first, as MLC's
loaders do (gemma3_loader.py: `lambda x, dtype: x.astype(dtype)` with the
model's bfloat16 parameter dtype).

usage: mlc_q4.py IN.f32 OUT IN_FEATURES GROUP OUT_PREFIX
  IN.f32: little-endian float32, row-major [out, in]
  writes OUT_PREFIX.q_weight (uint32 LE) and OUT_PREFIX.q_scale (bf16 bits LE)
"""

import sys

import ml_dtypes
import numpy as np
import tvm
from tvm import relax, te
from tvm import tirx as tir
from tvm.runtime import DataType

QUANTIZE_DTYPE = "int4"
STORAGE_DTYPE = "uint32"
MODEL_DTYPE = "bfloat16"
NUM_ELEM_PER_STORAGE = 8
MAX_INT_VALUE = 7


def pack_weight(weight, axis, num_elem_per_storage, weight_dtype, storage_dtype, out_shape=None):
    assert weight.dtype == storage_dtype
    shape = weight.shape
    if axis < 0:
        axis += len(shape)
    k = shape[axis]
    if out_shape is None:
        out_shape = (*shape[:axis], tir.ceildiv(k, num_elem_per_storage), *shape[axis + 1 :])
    r = te.reduce_axis((0, num_elem_per_storage), name="r")
    return te.compute(
        shape=out_shape,
        fcompute=lambda *idx: tir.sum(
            tir.if_then_else(
                idx[axis] * num_elem_per_storage + r < k,
                weight(*idx[:axis], idx[axis] * num_elem_per_storage + r, *idx[axis + 1 :])
                << (r * DataType(weight_dtype).bits),
                tir.const(0, storage_dtype),
            ),
            axis=r,
        ),
        name="packed_weight",
    ).astype(storage_dtype)


def quantize_te(weight, group_size, axis=-1):
    max_int = tir.const(MAX_INT_VALUE, MODEL_DTYPE)
    shape = weight.shape
    axis = axis if axis >= 0 else len(shape) + axis
    k = shape[axis]
    r = te.reduce_axis((0, group_size), name="r")
    num_group = tir.ceildiv(k, group_size)
    scale_shape = (*shape[:axis], num_group, *shape[axis + 1 :])
    max_abs = te.compute(
        shape=scale_shape,
        fcompute=lambda *idx: te.max(
            tir.if_then_else(
                idx[axis] * group_size + r < k,
                te.abs(weight(*idx[:axis], idx[axis] * group_size + r, *idx[axis + 1 :])),
                te.min_value(MODEL_DTYPE),
            ),
            axis=r,
        ),
        name="max_abs_value",
    )
    scale = te.compute(
        scale_shape,
        lambda *idx: max_abs(*idx).astype(MODEL_DTYPE) / max_int,
        name="scale",
    )
    scaled_weight = te.compute(
        shape=weight.shape,
        fcompute=lambda *idx: tir.min(
            tir.max(
                tir.round(
                    weight(*idx) / scale(*idx[:axis], idx[axis] // group_size, *idx[axis + 1 :])
                    + max_int
                ),
                tir.const(0, MODEL_DTYPE),
            ),
            max_int * 2,
        ).astype(STORAGE_DTYPE),
    )
    num_storage = (group_size // NUM_ELEM_PER_STORAGE) * num_group
    quantized_weight_shape = (*shape[:axis], num_storage, *shape[axis + 1 :])
    quantized_weight = pack_weight(
        scaled_weight,
        axis=axis,
        num_elem_per_storage=NUM_ELEM_PER_STORAGE,
        weight_dtype=QUANTIZE_DTYPE,
        storage_dtype=STORAGE_DTYPE,
        out_shape=quantized_weight_shape,
    )
    return quantized_weight, scale


def main():
    src, out_features, in_features, group, prefix = sys.argv[1:6]
    out_features, in_features, group = int(out_features), int(in_features), int(group)
    w32 = np.fromfile(src, dtype="<f4").reshape(out_features, in_features)
    w = w32.astype(ml_dtypes.bfloat16)

    bb = relax.BlockBuilder()
    weight_var = relax.Var("weight", relax.TensorType(w.shape, MODEL_DTYPE))
    with bb.function(name="main", params=[weight_var]):
        with bb.dataflow():
            lv = bb.emit_te(quantize_te, weight_var, group)
            gv = bb.emit_output(lv)
        bb.emit_func_output(gv)
    mod = relax.transform.LegalizeOps()(bb.finalize())
    ex = relax.build(mod, target="llvm")
    vm = relax.VirtualMachine(ex, tvm.cpu())
    q_weight, q_scale = vm["main"](tvm.runtime.tensor(w, tvm.cpu()))
    q_weight = q_weight.numpy()
    q_scale = q_scale.numpy()
    assert q_weight.dtype == np.uint32 and q_weight.shape == (out_features, in_features // 8)
    assert q_scale.shape == (out_features, in_features // group)
    q_weight.astype("<u4").tofile(prefix + ".q_weight")
    q_scale.view(np.uint16).astype("<u2").tofile(prefix + ".q_scale")


if __name__ == "__main__":
    main()
