"""Digests of MLC's q4bf16_1 (run under TVM) for avac's `matches_mlc_tvm_oracle` test.

The input is the same integer recipe as `oracle_input` in
src/quant/q4/tests.rs: a 64-bit LCG, 24-bit signed mantissas, per-row powers
of two (exact in float32 in both languages).
"""

import hashlib
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def row_exponent(row):
    r = row % 16
    if r == 5:
        return None  # all-zero row
    if r == 11:
        return -126  # subnormal-sized values: the scale underflows to subnormal/zero
    if r == 13:
        return 100
    return (r % 9) - 4


def oracle_input(out, inp):
    s = 0x853C49E6748FEA9B
    w = np.zeros((out, inp), dtype=np.float32)
    for k in range(out * inp):
        s = (s * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        m = (s >> 40) - (1 << 23)
        row, col = divmod(k, inp)
        e = row_exponent(row)
        if e is not None:
            w[row, col] = np.ldexp(np.float32(m), e - 23).astype(np.float32)
    return w


def main():
    out, inp = 64, 256
    w = oracle_input(out, inp)
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "w.f32")
        w.astype("<f4").tofile(src)
        print("input sha256", hashlib.sha256(w.astype("<f4").tobytes()).hexdigest())
        for group in (32, 128):
            prefix = os.path.join(d, f"g{group}")
            subprocess.check_call([sys.executable, os.path.join(HERE, "mlc_q4.py"), src, str(out), str(inp), str(group), prefix])
            for part in ("q_weight", "q_scale"):
                data = open(f"{prefix}.{part}", "rb").read()
                print(f"group {group} {part} sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
