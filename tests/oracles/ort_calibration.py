"""ONNX Runtime's calibration ranges and int8 weights for avac's tests in
src/quant/observers/tests.rs and src/quant/int8.rs.

The data is drawn exactly as `testdata` in src/quant/mod.rs draws it: the
project's RNG (src/rng.rs: xoshiro256** seeded through SplitMix64),
`uniform = (next_u64 >> 40) / 2^24` (exact in both languages) and
`gauss = sum of 12 uniforms - 6` (Irwin-Hall, exact in f64), each value
rounded to float32 at the end. Run by hand with the pinned oracle tools
(toolchains/python-oracles.txt); it prints the values the tests assert, as
float32 bits.

    python3 tests/oracles/ort_calibration.py
"""

import numpy as np
from onnxruntime.quantization.calibrate import HistogramCollector
from onnxruntime.quantization.quant_utils import quantize_data
from onnx import TensorProto

M = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return state, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M


class Rng:
    """src/rng.rs's `Rng::new(seed)` and `next_u64`."""

    def __init__(self, seed):
        s = []
        for _ in range(4):
            seed, z = splitmix64(seed)
            s.append(z)
        self.s = s

    def next_u64(self):
        s = self.s
        result = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next_u64() >> 40) / 16777216.0

    def gauss(self):
        acc = 0.0
        for _ in range(12):
            acc += self.uniform()
        return acc - 6.0


def f32(values):
    return np.array(values, dtype=np.float64).astype(np.float32)


def uniform_data():
    r = Rng(1)
    return f32([-1.0 + 4.0 * r.uniform() for _ in range(100_000)])


def gauss_outliers():
    r = Rng(2)
    v = [r.gauss() for _ in range(1_000_000)]
    return np.concatenate([f32(v), f32([30.0, 25.0, -28.0, -22.0])])


def squared():
    r = Rng(3)
    out = []
    for _ in range(200_000):
        g = r.gauss()
        out.append(g * g * 0.5)
    return f32(out)


def skewed():
    r = Rng(4)
    out = []
    for _ in range(300_000):
        g = r.gauss()
        out.append(1.5 * g if g > 0.0 else 0.25 * g)
    return f32(out)


def weights():
    r = Rng(5)
    return f32([r.gauss() * 0.05 for _ in range(64 * 48)])


def bits(x):
    return f"0x{int(np.float32(x).view(np.uint32)):08x}"


def pair(lo_hi):
    return f"({bits(lo_hi[0])}, {bits(lo_hi[1])})"


def collector_range(data, method, percentile=99.999, quantized_bins=128):
    c = HistogramCollector(method, symmetric=False, num_bins=2048, num_quantized_bins=quantized_bins, percentile=percentile, scenario="same")
    c.collect({"t": data})
    lo, hi = c.compute_collection_result()["t"][:2]
    return lo, hi


def entropy_near_ties(data, quantized_bins=128, count=4):
    """The lowest KL divergences of ONNX Runtime's entropy search, relative to
    its minimum, with each candidate's lower threshold."""
    from onnxruntime.quantization import calibrate

    c = HistogramCollector("entropy", symmetric=False, num_bins=2048, num_quantized_bins=quantized_bins, percentile=99.999, scenario="same")
    c.collect({"t": data})
    hist = c.histogram_dict["t"]
    kl = []
    entropy = calibrate.entropy

    def recording(p, q, *args, **kwargs):
        v = entropy(p, q, *args, **kwargs)
        kl.append(float(v))
        return v

    calibrate.entropy = recording
    try:
        c.get_entropy_threshold(hist, quantized_bins)
    finally:
        calibrate.entropy = entropy
    kl = np.array(kl)
    zero = hist[0].size // 2
    best = kl.min()
    return [(float(hist[1][zero - (i + quantized_bins // 2)]), float((kl[i] - best) / best)) for i in np.argsort(kl, kind="stable")[:count]]


def fnv(byte_values):
    h = 0xCBF29CE484222325
    for b in byte_values:
        h = ((h ^ int(b)) * 0x100000001B3) & M
    return f"0x{h:016x}"


def main():
    for name, data in [("uniform", uniform_data()), ("gauss_outliers", gauss_outliers()), ("squared", squared()), ("skewed", skewed())]:
        print(f"== {name}")
        print(f"  min-max        {pair((data.min(), data.max()))}")
        print(f"  percentile     {pair(collector_range(data, 'percentile'))}")
        print(f"  percentile 99.99 {pair(collector_range(data, 'percentile', percentile=99.99))}")
        for q in (128, 255):
            lo, hi = collector_range(data, "entropy", quantized_bins=q)
            print(f"  entropy {q}    {pair((lo, hi))}  = ({float(lo)!r}, {float(hi)!r})")
        if name == "gauss_outliers":
            print(f"  entropy 128 lowest KL (lower threshold, relative excess): {entropy_near_ties(data)}")
    w = weights()
    _, scale, q = quantize_data(w, TensorProto.INT8, True)
    print("== weights")
    print(f"  per tensor     scale {bits(scale)} fnv {fnv(q.astype(np.int8).view(np.uint8))} min {q.min()} max {q.max()}")
    rows = w.reshape(64, 48)
    qs, scales = [], []
    for row in rows:
        _, s, qr = quantize_data(row, TensorProto.INT8, True)
        qs.append(qr.astype(np.int8))
        scales.append(np.float32(s))
    scale_bytes = np.array(scales, dtype="<f4").view(np.uint8)
    print(f"  per row        fnv {fnv(np.concatenate(qs).view(np.uint8))} scales fnv {fnv(scale_bytes)}")


if __name__ == "__main__":
    main()
