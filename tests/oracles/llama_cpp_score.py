"""llama.cpp's per-position arg-max and perplexity on the token ids avac scored.

Usage: python llama_cpp_score.py MODEL.gguf AVAC_SCORE.json TEXT OUT.json

Feeds avac's ids (so both sides score the same sequence; llama.cpp's own
tokenization of the text is compared too) through llama-cpp-python with
logits for every position, and writes {"argmax", "perplexity", "tokenized_same"}.
"""
import json
import math
import sys

import numpy as np
from llama_cpp import Llama

model, ours_path, text_path, out_path = sys.argv[1:5]
ours = json.load(open(ours_path))
ids = ours["ids"]
llm = Llama(model_path=model, n_ctx=max(4096, len(ids) + 8), logits_all=True, n_threads=2, n_batch=512, verbose=False)
text = open(text_path, encoding="utf-8").read()
tokenized_same = llm.tokenize(text.encode(), add_bos=True, special=False) == ids
llm.reset()
llm.eval(ids)
scores = np.array(llm.scores[: len(ids)], dtype=np.float64)
top, lp = [], []
for i in range(len(ids) - 1):
    row = scores[i]
    m = row.max()
    lse = m + math.log(np.exp(row - m).sum())
    lp.append(row[ids[i + 1]] - lse)
    top.append(int(row.argmax()))
json.dump({"argmax": top, "perplexity": math.exp(-sum(lp) / len(lp)), "tokenized_same": tokenized_same}, open(out_path, "w"))
