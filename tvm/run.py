"""Runs a host model library in TVM's Relax VM over a package's own parameters.

    python tvm/run.py --package-dir DIR --lib model-x86_64.so --tokens T.json --out O.json
                      [--threads N] [--chunk C] [--max-logits] [--decode K]
                      [--logits F --logits-rows A:B] [--timing TIMING.json]

`T.json` is a JSON array of token ids, or an object with `"ids"` (what
`avac alc score` writes). The ids are prefilled in chunks of `C` tokens
(default: the package's `prefill_chunk_size`, at most 512) and `O.json`
gets, like `avac alc score`:

    {"ids": [...], "argmax": [...], "log_probs": [...], "perplexity": p,
     ["max_logit": [...]], ["greedy": [...]]}

where `argmax[i]` is the arg-max (lowest id on ties) of the logits at
position `i` and `log_probs[i]` is `log softmax(logits_i)[ids[i + 1]]` in
f64, for `i < len(ids) - 1`; `max_logit[i]` (with `--max-logits`) is the
largest logit at position `i` (every position); `greedy` (with `--decode
K`) the `K` tokens decoded greedily after the ids. `O.json` does not depend
on the thread count. `--logits F` writes the raw logits of positions
`A..B` as little-endian float32 `[B - A, vocab]`. `--timing` writes wall
times and tokens/s (prefill: embed + prefill + the last position's logits;
decode: one `decode` call per token). Errors: one line on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="run.py", description=__doc__.split("\n")[0])
    p.add_argument("--package-dir", required=True)
    p.add_argument("--lib", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--chunk", type=int)
    p.add_argument("--max-logits", action="store_true")
    p.add_argument("--decode", type=int, default=0)
    p.add_argument("--logits")
    p.add_argument("--logits-rows", default="0:1")
    p.add_argument("--timing")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be at least 1")
    # The runtime's thread pool reads this once, when it starts.
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    try:
        run(args)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


class RunError(Exception):
    pass


def _read_ids(path: str) -> list[int]:
    try:
        with open(path, "rb") as f:
            v = json.loads(f.read())
    except (OSError, ValueError) as e:
        raise RunError(f"{path}: {e}") from None
    ids = v.get("ids") if isinstance(v, dict) else v
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and i >= 0 for i in ids):
        raise RunError(f"{path}: expected a non-empty JSON array of token ids (or an object with \"ids\")")
    return ids


def _write(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        raise RunError(f"{path}: {e.strerror}") from None


def run(args) -> None:
    import numpy as np

    from gemma3 import params as params_mod
    from gemma3.config import ConfigError, ModelConfig

    ids = _read_ids(args.tokens)
    manifest_path = os.path.splitext(args.lib)[0] + ".json"
    try:
        cfg = ModelConfig.from_package(args.package_dir)
        with open(manifest_path, "rb") as f:
            manifest = json.loads(f.read())
        names = [(r["name"], tuple(r["shape"]), r["dtype"]) for r in manifest["params"]]
        if names != cfg.expected_params():
            raise ConfigError(f"{manifest_path}: the library was compiled for other parameters than {args.package_dir}'s")
        weights = params_mod.load(args.package_dir, names)
    except ConfigError as e:
        raise RunError(str(e)) from None
    except (OSError, ValueError, KeyError) as e:
        raise RunError(f"{manifest_path}: {e}") from None
    if max(ids) >= cfg.vocab_size:
        raise RunError(f"{args.tokens}: token id {max(ids)} is outside the vocabulary of {cfg.vocab_size}")
    chunk = args.chunk or min(cfg.prefill_chunk_size, 512)
    if chunk < 1:
        raise RunError("--chunk must be at least 1")
    lo, hi = (int(x) for x in args.logits_rows.split(":"))

    import tvm
    from tvm import relax

    dev = tvm.cpu()
    try:
        vm = relax.VirtualMachine(tvm.runtime.load_module(os.path.abspath(args.lib)), dev)
    except Exception as e:  # noqa: BLE001 (TVM raises its own error types)
        raise RunError(f"{args.lib}: cannot load: {str(e).strip().splitlines()[-1]}") from None
    tparams = [tvm.runtime.tensor(w, dev) for w in weights]
    shape = tvm.runtime.ShapeTuple
    cache = vm["create_kv_cache"](shape([len(ids) + args.decode]))

    argmax, log_probs, max_logit, dumped = [], [], [], []
    prefill_s = score_s = 0.0
    n = len(ids)
    for start in range(0, n, chunk):
        part = np.asarray(ids[start : start + chunk], dtype=np.int32)
        t0 = time.perf_counter()
        emb = vm["embed"](tvm.runtime.tensor(part, dev), tparams)
        hidden, cache = vm["prefill"](emb, cache, shape([start]), tparams)
        h = hidden.numpy()
        last = vm["lm_head"](tvm.runtime.tensor(h[-1:], dev), tparams).numpy()
        t1 = time.perf_counter()
        prefill_s += t1 - t0
        for r0 in range(0, len(part), 128):
            rows = vm["lm_head"](tvm.runtime.tensor(h[r0 : r0 + 128], dev), tparams).numpy()
            for r, row in enumerate(rows):
                pos = start + r0 + r
                if pos + 1 < n:
                    argmax.append(int(np.argmax(row)))
                    log_probs.append(_log_softmax_at(row, ids[pos + 1]))
                if args.max_logits:
                    max_logit.append(float(row.max()))
                if args.logits and lo <= pos < hi:
                    dumped.append(row.astype("<f4").tobytes())
        score_s += time.perf_counter() - t1
    greedy, decode_s = [], 0.0
    nxt = int(np.argmax(last[0]))
    for k in range(args.decode):
        greedy.append(nxt)
        if k + 1 == args.decode:
            break
        t0 = time.perf_counter()
        emb = vm["embed"](tvm.runtime.tensor(np.asarray([nxt], np.int32), dev), tparams)
        logits, cache = vm["decode"](emb, cache, shape([n + k]), tparams)
        nxt = int(np.argmax(logits.numpy()[0]))
        decode_s += time.perf_counter() - t0

    out = {"ids": ids, "argmax": argmax, "log_probs": log_probs, "perplexity": float(np.exp(-np.mean(log_probs))) if log_probs else None}
    if args.max_logits:
        out["max_logit"] = max_logit
    if args.decode:
        out["greedy"] = greedy
    _write(args.out, json.dumps(out).encode() + b"\n")
    if args.logits:
        _write(args.logits, b"".join(dumped))
    if args.timing:
        timing = {
            "threads": args.threads,
            "chunk": chunk,
            "prefill_tokens": n,
            "prefill_seconds": prefill_s,
            "prefill_tokens_per_s": n / prefill_s if prefill_s else None,
            "score_seconds": score_s,
            "decode_tokens": max(args.decode - 1, 0),
            "decode_seconds": decode_s,
            "decode_tokens_per_s": (args.decode - 1) / decode_s if decode_s else None,
            "peak_rss_bytes": _peak_rss(),
        }
        _write(args.timing, json.dumps(timing, indent=2, sort_keys=True).encode() + b"\n")


def _log_softmax_at(row, i: int) -> float:
    import numpy as np

    x = row.astype(np.float64)
    m = x.max()
    return float(x[i] - m - np.log(np.exp(x - m).sum()))


def _peak_rss() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


if __name__ == "__main__":
    sys.exit(main())
