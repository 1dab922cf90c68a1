"""The Relax pipeline the library is built with, and its determinism pass.

The kernels come scheduled (`kernels.py`), so the pipeline is TVM 0.27's
`relax.pipeline.default_build_pipeline` without CUDA graphs, plus
`SortShapeFuncStores` right after `VMShapeLower`:

`VMShapeLower` computes symbolic shapes in generated `shape_func` PrimFuncs
whose stores `H[slot] = expr` it emits by iterating an `unordered_map` keyed
by pointer, so their order, and the bytes of the object code, change from
run to run. The stores of one run are independent (each reads only slots no
store of the run writes: the input shape values), so sorting them by slot
changes no value and makes the order a function of the program alone. The
pass checks that independence and fails rather than reorder anything it
cannot prove safe.
"""

from __future__ import annotations

import tvm
from tvm import relax, tirx


class DeterminismError(Exception):
    """The determinism pass met IR it cannot put in a canonical order."""


def _walk_expr(e, loads: set, buf) -> None:
    """Adds to `loads` every constant slot of `buf` that `e` reads; raises on a variable index or an unknown node."""
    if isinstance(e, (tirx.IntImm, tirx.FloatImm, tirx.Var, tvm.ir.StringImm)):
        return
    if isinstance(e, tvm.ir.TensorLoad):  # what `tirx.BufferLoad` builds in TVM 0.27
        for i in e.indices:
            _walk_expr(i, loads, buf)
        if e.source.same_as(buf):
            if len(e.indices) != 1 or not isinstance(e.indices[0], tirx.IntImm):
                raise DeterminismError("shape_func reads its heap at a non-constant index")
            loads.add(int(e.indices[0].value))
        return
    if isinstance(e, tirx.Cast):
        _walk_expr(e.value, loads, buf)
        return
    if isinstance(e, tirx.Not):
        _walk_expr(e.a, loads, buf)
        return
    if isinstance(e, tirx.Select):
        for x in (e.condition, e.true_value, e.false_value):
            _walk_expr(x, loads, buf)
        return
    if isinstance(e, tvm.ir.Call):
        for x in e.args:
            _walk_expr(x, loads, buf)
        return
    if hasattr(e, "a") and hasattr(e, "b"):  # every binary operator and comparison
        _walk_expr(e.a, loads, buf)
        _walk_expr(e.b, loads, buf)
        return
    raise DeterminismError(f"shape_func holds an expression the pass does not know: {type(e).__name__}")


def _sorted_stmt(s):
    if isinstance(s, tirx.SeqStmt):
        items = [_sorted_stmt(x) for x in s.seq]
        out, run = [], []

        def flush():
            if len(run) > 1:
                buf = run[0].buffer
                written, read = set(), set()
                for st in run:
                    if not st.buffer.same_as(buf) or len(st.indices) != 1 or not isinstance(st.indices[0], tirx.IntImm):
                        raise DeterminismError("shape_func stores to a non-constant slot")
                    written.add(int(st.indices[0].value))
                    _walk_expr(st.value, read, buf)
                if len(written) != len(run) or written & read:
                    raise DeterminismError("shape_func stores depend on each other; refusing to reorder them")
                run.sort(key=lambda st: int(st.indices[0].value))
            out.extend(run)
            run.clear()

        for x in items:
            if isinstance(x, tirx.BufferStore):
                run.append(x)
            else:
                flush()
                out.append(x)
        flush()
        return tirx.SeqStmt(out)
    return s


@tvm.transform.module_pass(opt_level=0, name="SortShapeFuncStores")
def SortShapeFuncStores(mod: tvm.IRModule, _ctx) -> tvm.IRModule:  # noqa: N802 (TVM pass naming)
    """Sorts the independent heap stores of every `shape_func` by slot (see the module docs)."""
    updates = {}
    for gv, func in mod.functions.items():
        if isinstance(func, tirx.PrimFunc) and gv.name_hint.startswith("shape_func"):
            updates[gv] = func.with_body(_sorted_stmt(func.body))
    for gv, func in updates.items():
        mod[gv] = func
    return mod


def relax_pipeline() -> tvm.transform.Pass:
    """TVM 0.27's default build pipeline (no CUDA graph rewrite) with the determinism pass."""
    t = relax.transform
    return tvm.transform.Sequential(
        [
            t.LegalizeOps(),
            t.RewriteDataflowReshape(),
            t.ToNonDataflow(),
            t.RemovePurityChecking(),
            t.CallTIRRewrite(),
            t.StaticPlanBlockMemory(),
            t.LowerAllocTensor(),
            t.KillAfterLastUse(),
            t.LowerRuntimeBuiltin(),
            t.ComputePrimValue(),
            t.VMShapeLower(),
            SortShapeFuncStores,
            t.AttachGlobalSymbol(),
        ],
        name="avac_gemma3",
    )
