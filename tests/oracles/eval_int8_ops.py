# Expected values for graph::eval's QDQ tests (src/graph/eval/tests.rs), from
# onnxruntime 1.31.1 on x86-64 (CPU EP, graph optimizations off).
# Run: python ort_oracle.py   (needs onnx, onnxruntime, numpy)
import numpy as np, onnx, onnxruntime as ort
from onnx import helper, TensorProto as TP, numpy_helper

def run(op, inputs, attrs=None, n_out=1, consts=()):
    inputs = [None if v is None else np.asarray(v) for v in inputs]
    names = [f"i{k}" if v is not None else "" for k, v in enumerate(inputs)]
    feeds, ins, inits = {}, [], []
    for k, v in enumerate(inputs):
        if v is None: continue
        if k in consts:
            inits.append(numpy_helper.from_array(v, names[k]))
        else:
            ins.append(helper.make_tensor_value_info(names[k], helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)); feeds[names[k]] = v
    outs = [f"o{k}" for k in range(n_out)]
    node = helper.make_node(op, names, outs, **(attrs or {}))
    g = helper.make_graph([node], "g", ins, [helper.make_empty_tensor_value_info(o) for o in outs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]); m.ir_version = 8
    so = ort.SessionOptions(); so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return s.run(None, feeds)

def lcg(n, seed, lo, hi):
    # same generator as the Rust test helper `lcg`
    out = []; s = seed
    for _ in range(n):
        s = (s * 6364136223846793005 + 1442695040888963407) % 2**64
        out.append(np.float32((s >> 40) / float(1 << 24)))
    return (np.array(out, np.float32) * np.float32(hi - lo) + np.float32(lo)).astype(np.float32)

def show(name, a):
    a = np.asarray(a)
    if a.dtype == np.float32:
        body = ", ".join(f"0x{v:08x}" for v in a.view(np.uint32).ravel())
        print(f"// {name}: {list(a.shape)} f32 bits\n[{body}]")
    else:
        print(f"// {name}: {list(a.shape)} {a.dtype}\n[{', '.join(str(int(v)) for v in a.ravel())}]")

x = np.array([0, 2, 3, 1000, -254, -1000], np.float32)
show("q_u8_example", run("QuantizeLinear", [x, np.float32(2), np.uint8(128)])[0])
x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 300, -300, 126.5, 127.5, -128.5, np.nan], np.float32)
show("q_i8_ties", run("QuantizeLinear", [x, np.float32(1), np.int8(0)])[0])
r = lcg(64, 3, -4.0, 4.0)
show("q_i8_random", run("QuantizeLinear", [r, np.float32(0.0371), np.int8(-3)])[0])
show("q_u8_random_nozp", run("QuantizeLinear", [r, np.float32(0.0213), None])[0])
x = lcg(12, 5, -3.0, 3.0).reshape(2, 3, 2)
show("q_axis1", run("QuantizeLinear", [x, np.array([0.5, 0.03, 0.011], np.float32), np.array([0, 128, 255], np.uint8)], {"axis": 1})[0])
show("q_axis2", run("QuantizeLinear", [x, np.array([0.02, 0.05], np.float32), np.array([-5, 7], np.int8)], {"axis": -1})[0])
q = np.array([-128, -1, 0, 1, 127], np.int8)
show("dq_i8", run("DequantizeLinear", [q, np.float32(0.0371), np.int8(-3)])[0])
q = np.arange(12, dtype=np.uint8).reshape(2, 3, 2) * 21
show("dq_u8_axis1", run("DequantizeLinear", [q, np.array([0.5, 0.03, 0.011], np.float32), np.array([0, 128, 255], np.uint8)], {"axis": 1})[0])
q = np.array([-100000, -1, 0, 7, 123456789], np.int32)
show("dq_i32", run("DequantizeLinear", [q, np.float32(0.00037), np.int32(0)])[0])
for name, x in [("dyn_a", np.array([0, 2, -3, -2.5, 1.34, 0.5], np.float32)),
                ("dyn_b", np.array([-1.0, -2.1, -1.3, -2.5, -3.34, -4.0], np.float32)),
                ("dyn_c", np.array([1, 2.1, 1.3, 2.5, 3.34, 4.0, 1.5, 2.6, 3.9, 4.0, 3.0, 2.345], np.float32).reshape(3, 4)),
                ("dyn_random", lcg(50, 11, -2.7, 5.3))]:
    y, s, z = run("DynamicQuantizeLinear", [x], n_out=3)
    show(name + "_y", y); show(name + "_scale", s); show(name + "_zp", z)
A = np.array([[11, 7, 3], [10, 6, 2], [9, 5, 1], [8, 4, 0]], np.uint8)
B = np.array([[1, 4], [2, 5], [3, 6]], np.uint8)
show("mmi_example", run("MatMulInteger", [A, B, np.uint8(12), np.uint8(0)])[0])
A = (lcg(2 * 3 * 5, 13, 0, 255.99)).astype(np.uint8).reshape(2, 3, 5)
B = (lcg(5 * 4, 17, -128, 127.99)).astype(np.int8).reshape(5, 4)
show("mmi_a", A); show("mmi_b", B)
show("mmi_batched_percol", run("MatMulInteger", [A, B, np.uint8(131), np.array([1, -2, 0, 5], np.int8)], consts=(1, 3))[0])
