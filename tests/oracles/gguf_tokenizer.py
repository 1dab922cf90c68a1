"""Record what independent tokenizers make of a fixed list of texts, for the
tokenizer that a Gemma 3 GGUF embeds.

    python gguf_tokenizer.py ORACLE GGUF FIXTURE

ORACLE is one of

- `llama_cpp`: llama.cpp itself through llama-cpp-python,
  `Llama(GGUF, vocab_only=True).tokenize(text, add_bos=True, special=True)`.
  The reference: these are the GGUF's own token ids.
- `transformers`: transformers' GGUF tokenizer conversion, the two functions
  `AutoTokenizer.from_pretrained(dir, gguf_file=name)` runs
  (`get_gguf_tokenizer`, `convert_gguf_tokenizer`), called directly since
  `AutoTokenizer`'s GGUF path also reads the model config, which needs torch.

The fixture (JSON) keeps one entry per text; each run writes its oracle's ids
and version into it, leaving the other oracle's alone, so the two can be run
from different virtual environments. The texts are listed here, once.
avac's `hf_tokenizer` tests compare against the recorded ids.
"""

import hashlib
import json
import os
import sys

TEXTS = [
    "The capital of France is",
    "Hello, world!",
    "",
    " leading space",
    "trailing space ",
    "  two leading spaces",
    "multiple     spaces   inside",
    "line one\nline two\n\nline four",
    "tabs\tand\t\ttabs",
    "\r\nWindows line\r\n",
    "1234567890 3.14159 1,000,000",
    "2024-06-01T12:34:56Z",
    "Emoji: \U0001f600\U0001f389\U0001f44d\U0001f3fd \U0001f980",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002",
    "\u4e2d\u6587\u5206\u8bcd\u6d4b\u8bd5\uff1a\u4f60\u597d\uff0c\u4e16\u754c\uff01",
    "\ud55c\uad6d\uc5b4 \ubb38\uc7a5\uc785\ub2c8\ub2e4.",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0401\u0436\u0438\u043a.",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03ba\u03b5\u03af\u03bc\u03b5\u03bd\u03b1",
    "\u0939\u093f\u0928\u094d\u0926\u0940 \u092a\u093e\u0920",
    'fn main() {\n    println!("hi");\n}\n',
    "def f(x):\n\treturn x ** 2  # square",
    "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
    "<bos>explicit bos and <eos> eos",
    "<unused0><unused123><mask><pad>",
    "<table><tr><td>cell</td></tr></table>",
    "<b>bold</b> and <i>italic</i> <strong>x</strong>",
    "[multimodal]<start_of_image><end_of_image>",
    "rare bytes: \x01\x02\x7f",
    "private use \ue000\U000f0000",
    "ancient \U00013000 \U00010330 \ua66e",
    "combining: e\u0301 a\u0308 \u00c5",
    "zero\u200bwidth\u200djoiner",
    "URL: https://example.com/path?query=1&x=y#frag",
    "email@example.com, @handle, #hashtag",
    "ALL CAPS SHOUTING AND lowercase",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "<0x41> literal byte token spelling",
    "\u2581 literal lower one eighth block \u2581\u2581",
    "end with newline\n",
    "   \n\t  \n",
    "hahahahahahahahahahaha",
    "<start_of_turn partial special",
    "Mixed: na\u00efve caf\u00e9 r\u00e9sum\u00e9 co\u00f6perate",
]


def llama_cpp(gguf):
    import llama_cpp as lc

    llm = lc.Llama(model_path=gguf, vocab_only=True, verbose=False)
    encode = lambda text: llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
    about = {
        "package": f"llama-cpp-python {lc.__version__}",
        "call": "Llama(gguf, vocab_only=True).tokenize(text.encode(), add_bos=True, special=True)",
    }
    return encode, about


def transformers(gguf):
    import tokenizers
    import transformers as tf

    _stub_torch()
    from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer, get_gguf_tokenizer

    architecture, tokenizer_dict, config = get_gguf_tokenizer(gguf)
    backend, _ = convert_gguf_tokenizer(architecture, tokenizer_dict)
    bos = [tokenizer_dict["tokens"].index(config["bos_token"])] if config.get("add_bos_token") else []

    def encode(text):
        ids = backend.encode(text, add_special_tokens=False).ids
        return bos + ids

    about = {
        "package": f"transformers {tf.__version__}, tokenizers {tokenizers.__version__}",
        "call": "transformers.integrations.gguf.gguf_tokenizer_mapping: convert_gguf_tokenizer(*get_gguf_tokenizer(gguf)[:2])"
        ".encode(text, add_special_tokens=False), BOS prepended when the file's add_bos_token holds "
        "(AutoTokenizer.from_pretrained(gguf_file=...) runs these two but needs torch for the model config)",
    }
    return encode, about


def _stub_torch():
    """transformers' GGUF reader imports torch at module level for its tensor
    dtypes; reading the tokenizer never touches a tensor. Without torch
    installed (it is not needed otherwise), a stub satisfies that import."""
    import types

    try:
        import torch  # noqa: F401
    except ImportError:

        class Stub(types.ModuleType):
            def __getattr__(self, name):
                return type(name, (), {})

        sys.modules["torch"] = Stub("torch")


ORACLES = {"llama_cpp": llama_cpp, "transformers": transformers}


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def main():
    oracle, gguf, fixture = sys.argv[1:4]
    encode, about = ORACLES[oracle](gguf)
    digest = sha256(gguf)
    if os.path.exists(fixture):
        with open(fixture, encoding="utf-8") as f:
            doc = json.load(f)
        if doc["gguf_sha256"] != digest:
            sys.exit(f"{fixture} was recorded for GGUF {doc['gguf_sha256']}, not {digest}")
    else:
        doc = {
            "about": "Token ids of a Gemma 3 GGUF's embedded tokenizer (with BOS), recorded by "
            "tests/oracles/gguf_tokenizer.py. llama_cpp is the reference.",
            "gguf_sha256": digest,
            "oracles": {},
            "cases": [],
        }
    doc["oracles"][oracle] = about
    recorded = {case["text"]: case for case in doc["cases"]}
    doc["cases"] = [recorded.get(text, {"text": text}) for text in TEXTS]
    for case in doc["cases"]:
        case[oracle] = [int(i) for i in encode(case["text"])]
    os.makedirs(os.path.dirname(os.path.abspath(fixture)), exist_ok=True)
    with open(fixture, "w", encoding="utf-8") as f:
        f.write(render(doc))


def render(doc):
    """Indented JSON with one line per case, so a diff shows which text changed."""
    head = {k: v for k, v in doc.items() if k != "cases"}
    text = json.dumps(head, ensure_ascii=False, indent=1)[:-2]
    cases = ",\n".join("  " + json.dumps(case, ensure_ascii=False) for case in doc["cases"])
    return f'{text},\n "cases": [\n{cases}\n ]\n}}\n'



if __name__ == "__main__":
    main()
