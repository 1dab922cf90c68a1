#!/usr/bin/env python3
"""Measurements for llama.cpp's own quantizers (llama-imatrix + llama-quantize)
on Gemma 3 270M, driven by llama_cpp.sh beside this file. Reuses bench.py's
GGUF helpers; nothing here writes into the repository except the final table.

  f32-gguf   the source GGUF dequantized (gguf.quants.dequantize) to an F32
             GGUF, every metadata pair kept: llama-imatrix's and
             llama-quantize's input, the same float32 weights as every other row
  avac-readable  the GGUF to score: the file itself, or a copy with the tensor
             types avac does not read (Q4_1) dequantized to F32
  gguf-info  a quantized GGUF's tensor types, bits per weight (bytes of the 2-D
             weights x 8 / their elements, as bench.py counts them) and
             relative RMSE against the float32 source
  table      the Markdown fragment and rows.json
"""

import argparse
import hashlib
import json
import os
import platform
import re
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import EMBEDDING, ErrAcc, KindErr, bf16_round, cpu_model, sha256_file, weight_kind, write_gguf, write_json  # noqa: E402


def cmd_f32_gguf(a):
    import numpy as np
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(a.gguf)
    out, digest_lines = [], []
    for t in reader.tensors:
        w = np.ascontiguousarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        digest_lines.append(f"{t.name} {hashlib.sha256(memoryview(w).cast('B')).hexdigest()}\n")
        out.append((t.name, w, None))
    write_gguf(reader, a.out, out, gguf.LlamaFileType.ALL_F32)
    write_json(a.info, {
        "out_bytes": os.path.getsize(a.out),
        "out_sha256": sha256_file(a.out),
        # As tests/oracles/gguf_dequant.py digests it: equal to bench.py's and avac's.
        "source_dequantized_all_sha256": hashlib.sha256("".join(digest_lines).encode()).hexdigest(),
        "tensors": len(out),
    })


def cmd_gguf_info(a):
    import numpy as np
    import gguf
    from gguf.quants import dequantize

    src = {t.name: t for t in gguf.GGUFReader(a.source).tensors}
    q = gguf.GGUFReader(a.gguf)
    elements = q_bytes = 0
    types, types_by_kind = Counter(), {}
    err_f32, err_bf16 = ErrAcc(), KindErr()
    emb_type, emb_elements = None, 0
    for t in q.tensors:
        if len(t.shape) != 2:
            continue
        elements += int(t.n_elements)
        q_bytes += int(t.n_bytes)
        types[t.tensor_type.name] += 1
        types_by_kind.setdefault(weight_kind(t.name), Counter())[t.tensor_type.name] += 1
        if t.name == EMBEDDING:
            emb_type = t.tensor_type.name
            emb_elements = int(t.n_elements)
        deq = np.ascontiguousarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(int(t.shape[1]), int(t.shape[0]))
        s = src[t.name]
        ref = np.ascontiguousarray(dequantize(s.data, s.tensor_type), dtype=np.float32).reshape(deq.shape)
        err_f32.add(ref, deq, t.name == EMBEDDING)
        err_bf16.add(t.name, bf16_round(ref), deq)
    write_json(a.out, {
        "out_bytes": os.path.getsize(a.gguf),
        "out_sha256": sha256_file(a.gguf),
        "elements_2d": elements,
        "quantized_bytes_2d": q_bytes,
        "bits_per_weight": 8 * q_bytes / elements,
        "file_bits_per_weight_2d": 8 * os.path.getsize(a.gguf) / elements,
        "types_2d": dict(sorted(types.items())),
        "types_by_kind": {k: dict(sorted(v.items())) for k, v in types_by_kind.items()},
        "embedding_type": emb_type,
        "embedding_elements": emb_elements,
        "relative_rmse": err_f32.relative(True),
        "relative_rmse_without_embedding": err_f32.relative(False),
        "vs_bf16": err_bf16.summary(),
    })


def cmd_avac_readable(a):
    """Prints the GGUF avac should score: the input if avac reads all its
    tensor types, else a copy at --out with the others dequantized to F32."""
    import numpy as np
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(a.gguf)
    ok = set(a.supported.split(","))
    bad = {t.name: t.tensor_type.name for t in reader.tensors if t.tensor_type.name not in ok}
    if bad:
        out = []
        for t in reader.tensors:
            if t.name in bad:
                w = np.ascontiguousarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
                out.append((t.name, w, None))
            else:
                out.append((t.name, np.asarray(t.data), t.tensor_type))
        write_gguf(reader, a.out, out, gguf.LlamaFileType.GUESSED)
    write_json(a.info, {"dequantized": bad, "scored": a.out if bad else a.gguf})
    print(a.out if bad else a.gguf)


# ---------------------------------------------------------------- table


def parse_time_v(path):
    """(wall seconds, max RSS bytes) from /usr/bin/time -v output."""
    text = Path(path).read_text()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) * 1024
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", text)
    wall = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return wall, rss


def parse_perplexity(path):
    """llama-perplexity's final estimate and, with --kl-divergence, its KL and top-1 ('Same top p') lines."""
    text = Path(path).read_text(errors="replace")
    out = {}
    m = re.search(r"Final estimate: PPL = ([\d.]+) \+/- ([\d.]+)", text)
    if m:
        out["ppl"], out["ppl_err"] = float(m.group(1)), float(m.group(2))
    m = re.search(r"Mean\s+PPL\(Q\)\s*:\s*([\d.]+)", text)
    if m:
        out["ppl"] = float(m.group(1))
    m = re.search(r"Mean\s+PPL\(base\)\s*:\s*([\d.]+)", text)
    if m:
        out["ppl_base"] = float(m.group(1))
    m = re.search(r"Mean\s+KLD:\s*([\d.]+)", text)
    if m:
        out["kld"] = float(m.group(1))
    m = re.search(r"Same top p:\s*([\d.]+)", text)
    if m:
        out["same_top_p"] = float(m.group(1)) / 100
    return out


def agreement(s, src):
    if s["ids"] != src["ids"]:
        sys.exit("scored different token ids than the source (tokenizer differs)")
    return sum(1 for x, y in zip(s["argmax"], src["argmax"]) if x == y) / len(src["argmax"])


def cmd_table(a):
    work = Path(a.work)
    facts = json.loads(Path(a.facts).read_text())
    rows = json.loads((work / "variants.json").read_text())
    src = json.loads((work / "scores" / "source.json").read_text())
    f32info = json.loads((work / "gguf" / "source-f32.info.json").read_text())
    ppl_src = src["perplexity"]
    imx_wall, imx_rss = parse_time_v(work / "logs" / "imatrix.time")
    f32_bytes_2d = None
    out_rows = []
    for r in rows:
        info = json.loads((work / "gguf" / f"{r['name']}.info.json").read_text())
        s = json.loads((work / "scores" / f"{r['name']}.json").read_text())
        wall, rss = parse_time_v(work / "logs" / f"quantize-{r['name']}.time")
        f32_bytes_2d = info["elements_2d"] * 4
        row = {
            **r,
            "kind": "llama.cpp",
            "bits_per_weight": info["bits_per_weight"],
            "file_bytes": info["out_bytes"],
            "file_sha256": info["out_sha256"],
            "types_2d": info["types_2d"],
            "types_by_kind": info["types_by_kind"],
            "relative_rmse": info["relative_rmse"],
            "relative_rmse_without_embedding": info["relative_rmse_without_embedding"],
            "vs_bf16": info["vs_bf16"],
            "quantize_seconds": wall,
            "quantize_mb_per_s": f32_bytes_2d / 1e6 / wall,
            "peak_rss_bytes": rss,
            "perplexity": s["perplexity"],
            "ppl_ratio_vs_source": s["perplexity"] / ppl_src,
            "agreement": agreement(s, src),
            "positions": len(src["argmax"]),
        }
        if r.get("imatrix"):
            row["imatrix_seconds"] = imx_wall
        ar = work / "gguf" / f"{r['name']}.avac.json"
        if ar.exists():
            row["avac_readable"] = json.loads(ar.read_text())
        lp = work / "logs" / f"perplexity-{r['name']}.log"
        if lp.exists():
            row["llama_perplexity"] = parse_perplexity(lp)
        out_rows.append(row)
    write_json(work / "rows.json", out_rows)
    # The same rows in the columns of benches/results/q4_gemma.md's main table, for run.sh to append.
    main_rows = []
    for r in out_rows:
        group = "32" if set(r["types_2d"]) <= {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"} else "32/256"
        main_rows.append(
            f"| {r['label']} | {group} | {r['bits_per_weight']:.3f} | {r['quantize_mb_per_s']:,.0f} | {r['peak_rss_bytes'] / 1e6:,.0f} | "
            f"{r['relative_rmse']:.4f} | {r['relative_rmse_without_embedding']:.4f} | {r['perplexity']:.3f} | {r['ppl_ratio_vs_source']:.3f} | "
            f"{r['agreement']:.4f} |"
        )
    (work / "rows-main-table.md").write_text("\n".join(main_rows) + "\n")
    by = {r["name"]: r for r in out_rows}
    lp_src = work / "logs" / "perplexity-source.log"
    src_lp = parse_perplexity(lp_src) if lp_src.exists() else None

    L = []
    L.append("# llama.cpp's own importance-matrix quantization of Gemma 3 270M (peers of benches/q4_gemma)")
    L.append("")
    L.append("Generated by `bash benches/q4_gemma/llama_cpp.sh` (see the comment at its top). Do not edit by hand.")
    L.append("")
    L.append("```sh")
    L.append(facts["command"])
    L.append("```")
    L.append("")
    L.append("| fact | value |")
    L.append("| --- | --- |")
    L.append(f"| date (UTC) | {facts['date']} |")
    L.append(f"| CPU | {cpu_model()} |")
    L.append(f"| cores | {facts['nproc']} (`nproc`); other jobs may share them (load average below) |")
    L.append(f"| memory | {facts['mem_total_gb']:.1f} GB |")
    L.append(f"| OS / Python | {platform.system()} {platform.release()} / Python {platform.python_version()} |")
    L.append(
        f"| llama.cpp | vendored in PyPI's `llama-cpp-python` {facts['llama_cpp_python']} sdist (sha256 `{facts['llama_cpp_python_sha256']}`), "
        f"{facts['llama_cpp_version']}; built with {facts['build_tools']} (PyPI wheels), {facts['compiler']}, "
        f"flags `{facts['cmake_flags']}`, -march=native, OpenMP |"
    )
    L.append(f"| gguf / numpy (PyPI) | {facts['gguf_version']} / {facts['numpy_version']} |")
    L.append(f"| avac (scorer) | `{facts['avac_version']}`, sha256 `{facts['avac_sha256'][:16]}…`, commit `{facts['commit']}`{' (working tree modified)' if facts.get('dirty') else ''} |")
    L.append(
        f"| source | Gemma 3 270M Q4_K_M GGUF (avac source `gemma3-270m-gguf`), {facts['gguf_bytes']:,} bytes, sha256 `{facts['gguf_sha256'][:16]}…`; "
        f"dequantized to an F32 GGUF of {f32info['out_bytes']:,} bytes (float32 weights digest `{f32info['source_dequantized_all_sha256'][:16]}…`) |"
    )
    L.append(
        f"| calibration | `data/alc/calibration-text.txt` (avac's calibration corpus), {facts['imatrix_tokens']:,} tokens in {facts['imatrix_chunks']} chunks of "
        f"{facts['imatrix_ctx']} (llama-imatrix); avac's GPTQ draws 512 windows of 32 tokens (16,384 tokens) from the same text |"
    )
    trunc = " (truncated by --max-tokens)" if facts.get("max_tokens") else ""
    L.append(f"| eval text | `data/alc/eval-text.txt`, {len(src['ids']):,} tokens with BOS, {len(src['argmax']):,} scored positions{trunc} |")
    L.append(
        f"| load average (1/5/15 min) | start {'/'.join(f'{x:.1f}' for x in facts['loadavg_start'])}, "
        f"end {'/'.join(f'{x:.1f}' for x in facts['loadavg_end'])} |"
    )
    L.append(f"| build of the tools | {facts['build_seconds']} |")
    L.append(f"| total time (this run) | {facts['total_seconds'] / 60:.1f} min |")
    L.append("")
    L.append(
        "Every row is `llama-quantize` of the same F32 GGUF (the source dequantized with `gguf.quants.dequantize`, bit-identical to avac's "
        "float32 weights), scored by `avac alc score --source X.gguf` on the eval text: perplexity, its ratio to the source's, and top-1 "
        "agreement (arg-max equal to the source's at each position), the definitions of `benches/results/q4_gemma.md`. Bits/weight: bytes "
        "of the quantized 2-D weights × 8 ÷ their element count (token_embd, the tied LM head, included), as there. "
        f"imatrix s: wall time of `llama-imatrix` (once, {imx_rss / 1e6:,.0f} MB peak RSS); quantize s: wall time of the `llama-quantize` "
        "process (reading the F32 GGUF, quantizing on all cores, writing), from `/usr/bin/time -v`."
    )
    L.append("")
    L.append("| method | bits/weight | file MB | perplexity | ppl ratio vs source | top-1 agreement | rel. RMSE | rel. RMSE w/o embedding | imatrix s | quantize s |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    L.append(f"| source (Q4_K_M GGUF, dequantized) | – | {facts['gguf_bytes'] / 1e6:.1f} | {ppl_src:.3f} | 1.000 | 1.0000 | – | – | – | – |")
    for r in out_rows:
        imx = f"{r['imatrix_seconds']:.1f}" if r.get("imatrix") else "–"
        L.append(
            f"| {r['label']} | {r['bits_per_weight']:.3f} | {r['file_bytes'] / 1e6:.1f} | {r['perplexity']:.3f} | {r['ppl_ratio_vs_source']:.3f} | "
            f"{r['agreement']:.4f} | {r['relative_rmse']:.4f} | {r['relative_rmse_without_embedding']:.4f} | {imx} | {r['quantize_seconds']:.1f} |"
        )
    L.append("")
    pairs = [(a_, b_) for a_, b_ in (("imx-q4_0", "q4_0"), ("imx-q4_k_m", "q4_k_m")) if a_ in by and b_ in by]
    if pairs:
        L.append("The importance matrix, same file type with and without it:")
        L.append("")
        for a_, b_ in pairs:
            ra, rb = by[a_], by[b_]
            L.append(
                f"- {rb['label']} → {ra['label']}: perplexity ratio {rb['ppl_ratio_vs_source']:.3f} → {ra['ppl_ratio_vs_source']:.3f} "
                f"({ra['perplexity'] / rb['perplexity']:.3f}×), top-1 agreement {rb['agreement']:.4f} → {ra['agreement']:.4f}, "
                f"rel. RMSE {rb['relative_rmse']:.4f} → {ra['relative_rmse']:.4f}."
            )
        L.append("")
    L.append("Tensor types of the 2-D weights (llama-quantize's choice per tensor; 640-wide rows are not a multiple of 256, so k-quants fall back there):")
    L.append("")
    kinds = list(out_rows[0]["types_by_kind"]) if out_rows else []
    L.append("| method | " + " | ".join(kinds) + " |")
    L.append("|---|" + "---|" * len(kinds))
    for r in out_rows:
        L.append(f"| {r['label']} | " + " | ".join(", ".join(f"{t}×{n}" for t, n in r["types_by_kind"][k].items()) for k in kinds) + " |")
    L.append("")
    if src_lp:
        L.append(
            f"Cross-check with llama.cpp's own forward, `llama-perplexity -c {facts['ppl_ctx']}` on the eval text "
            f"({facts['ppl_chunks']} chunks; it scores only the second half of each chunk, so its perplexities are not avac's, "
            "only the ratios compare); KL divergence and top-1 agreement ('Same top p') against the source's logits saved with "
            "`--kl-divergence-base`, then `--kl-divergence`:"
        )
        L.append("")
        L.append("| method | llama.cpp PPL | ratio vs source | mean KLD | top-1 agreement (llama.cpp) | avac ratio | avac top-1 |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        L.append(f"| source (Q4_K_M GGUF) | {src_lp.get('ppl', float('nan')):.3f} | 1.000 | – | – | 1.000 | 1.0000 |")
        if "source-f32" in facts.get("ppl_extra", []):
            e = parse_perplexity(work / "logs" / "perplexity-source-f32.log")
            L.append(f"| source as F32 GGUF | {e.get('ppl', float('nan')):.3f} | {e.get('ppl', float('nan')) / src_lp['ppl']:.3f} | {e.get('kld', float('nan')):.5f} | {e.get('same_top_p', float('nan')):.4f} | – | – |")
        for r in out_rows:
            p = r.get("llama_perplexity")
            if not p:
                continue
            L.append(
                f"| {r['label']} | {p.get('ppl', float('nan')):.3f} | {p.get('ppl', float('nan')) / src_lp['ppl']:.3f} | {p.get('kld', float('nan')):.5f} | "
                f"{p.get('same_top_p', float('nan')):.4f} | {r['ppl_ratio_vs_source']:.3f} | {r['agreement']:.4f} |"
            )
        L.append("")
    L.append("Commands (the script runs exactly these; `$B` is the cached tools directory, `$W` the work directory):")
    L.append("")
    L.append("```sh")
    for c in facts["commands"]:
        L.append(c)
    L.append("```")
    L.append("")
    L.append("Files:")
    L.append("")
    for r in out_rows:
        L.append(f"- {r['label']}: {r['file_bytes']:,} bytes, sha256 `{r['file_sha256'][:16]}…`, peak RSS of llama-quantize {r['peak_rss_bytes'] / 1e6:,.0f} MB.")
    L.append("")
    notes = []
    import gguf

    t2d = [t for t in gguf.GGUFReader(work / "gguf" / "source-f32.gguf").tensors if len(t.shape) == 2]
    emb_share = sum(int(t.n_elements) for t in t2d if t.name == EMBEDDING) / sum(int(t.n_elements) for t in t2d)
    for r in out_rows:
        log = (work / "logs" / f"quantize-{r['name']}.log").read_text(errors="replace")
        m = re.search(r"have importance matrix data with (\d+) entries", log)
        missing = sorted(set(re.findall(r"did not find weights for (\S+)", log)))
        fb = re.search(r"(\d+) of (\d+) tensor\(s\) required fallback", log)
        bits = [f"embedding (token_embd, the tied LM head) {', '.join(r['types_by_kind'].get('token_embd', {})) or '?'}"]
        if m:
            bits.append(f"importance matrix entries used {m.group(1)}" + (f", none for {', '.join(missing)} (quantized without it)" if missing else ""))
        if fb:
            bits.append(f"{fb.group(1)} of {fb.group(2)} tensors fell back to another type (row length 640 not a multiple of 256)")
        notes.append(f"- {r['label']}: " + "; ".join(bits) + ".")
    notes.append(
        "- llama-imatrix collects statistics only for the matrix products inside the blocks: the tied embedding/LM head gets none by default "
        "(`--process-output` is off), so every row quantizes token_embd without an importance matrix. llama-quantize's default Q4_0 and Q4_K_M "
        "keep it at Q8_0 (they ask Q6_K for the output tensor, which falls back because 640 is not a multiple of 256); the embedding is "
        f"{emb_share:.0%} of the 2-D weights, hence their bits/weight. The `--pure` rows put it in Q4_0 too (4.5 bits/weight, like avac's g32 and gguf-py Q4_0)."
    )
    if "q4_k_m" in by and by["q4_k_m"]["relative_rmse"] < 0.01:
        notes.append(
            f"- The source is itself Q4_K_M: requantizing its dequantized weights to Q4_K_M lands on the same types and almost the same grid "
            f"(rel. RMSE {by['q4_k_m']['relative_rmse']:.5f} against the source, {by.get('imx-q4_k_m', by['q4_k_m'])['relative_rmse']:.5f} with the imatrix), "
            "so the Q4_K_M rows measure little more than the source itself; they cannot show what Q4_K_M (or its imatrix) does to the original bfloat16 weights."
        )
    for r in out_rows:
        conv = r.get("avac_readable", {}).get("dequantized", {})
        if conv:
            notes.append(
                f"- {r['label']}: avac's GGUF reader does not read {', '.join(sorted(set(conv.values())))} "
                f"({', '.join(sorted(conv))}), so avac scored a copy of the GGUF with those tensors dequantized to F32 by gguf-py "
                "(the same values the forward would compute with; bits/weight and file size are the original file's)."
            )
    notes.extend(l for l in (Path(a.notes).read_text().splitlines() if a.notes and Path(a.notes).exists() else []) if l.strip())
    if notes:
        L.append("Notes:")
        L.append("")
        L.extend(notes)
        L.append("")
    Path(a.out).write_text("\n".join(L))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("f32-gguf")
    s.add_argument("--gguf", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--info", required=True)
    s.set_defaults(fn=cmd_f32_gguf)
    s = sub.add_parser("gguf-info")
    s.add_argument("--gguf", required=True)
    s.add_argument("--source", required=True, help="the F32 GGUF (the reference weights)")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_gguf_info)
    s = sub.add_parser("avac-readable")
    s.add_argument("--gguf", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--info", required=True)
    s.add_argument("--supported", default="F32,F16,BF16,Q4_0,Q8_0,Q5_0,Q4_K,Q6_K", help="tensor types avac's GGUF reader dequantizes")
    s.set_defaults(fn=cmd_avac_readable)
    s = sub.add_parser("table")
    s.add_argument("--work", required=True)
    s.add_argument("--facts", required=True)
    s.add_argument("--notes")
    s.add_argument("--out", required=True)
    s.set_defaults(fn=cmd_table)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
