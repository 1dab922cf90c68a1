"""Compiles the Gemma 3 model library of an avac package with the pinned TVM.

    python tvm/compile.py --package-dir DIR --out-dir OUT --target android-arm64|host
                          [--system-lib-prefix P]

`DIR` is an unpacked package (or a quantize output directory): it needs
`mlc-chat-config.json` and `tensor-cache.json` (shapes only; the shards are
not read). `OUT` must not exist or be an empty directory; on success it
holds exactly

    android-arm64:  model-arm64-v8a.a   model-arm64-v8a.json
    host:           model-x86_64.so     model-x86_64.json

and on failure nothing (the files are written to a sibling scratch
directory and renamed into place). Nothing is printed on success; on failure
one line `error: <file>: <what>` goes to stderr and the exit code is 1 (2 for
a usage error). Every output byte is a function of the two input files, the
target and the prefix (see README.md, "Determinism").
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


class _Quiet:
    """Sends fd 2 to a file while TVM and LLVM run (they log warnings there); keeps the text for errors."""

    def __enter__(self):
        sys.stderr.flush()
        self._saved = os.dup(2)
        self._file = tempfile.TemporaryFile()
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode(errors="replace")
        self._file.close()
        return False


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="compile.py", description=__doc__.split("\n")[0])
    p.add_argument("--package-dir", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--target", required=True, choices=["android-arm64", "host"])
    p.add_argument("--system-lib-prefix", help="symbol prefix of the system library (default: MLC's {model_type}_{quantization}_)")
    args = p.parse_args(argv)
    os.environ.setdefault("TVM_NUM_THREADS", "1")

    out = os.path.abspath(args.out_dir)
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        return _fail(out, "already exists and is not an empty directory")
    parent = os.path.dirname(out)
    if not os.path.isdir(parent):
        return _fail(parent, "no such directory")
    scratch = tempfile.mkdtemp(prefix=".compile-", dir=parent)
    quiet = _Quiet()
    try:
        with quiet:
            from gemma3 import library
            from gemma3.config import CHAT_CONFIG, ConfigError, ModelConfig, _read_json

            try:
                cfg = ModelConfig.from_package(args.package_dir)
                chat = _read_json(os.path.join(args.package_dir, CHAT_CONFIG))
                prefix = args.system_lib_prefix or library.default_prefix(chat)
                if not prefix.replace("_", "a").isalnum() or not prefix.isascii():
                    raise ConfigError(f"--system-lib-prefix {prefix!r}: use letters, digits and _ only")
                library.write(cfg, args.target, prefix, scratch, chat)
            except (ConfigError, library.BuildError) as e:
                raise _Reported(str(e)) from None
            except Exception as e:  # a TVM failure: name the package and the last line TVM gave
                if os.environ.get("AVAC_TVM_DEBUG"):
                    raise
                raise _Reported(f"{os.path.join(args.package_dir, CHAT_CONFIG)}: TVM failed to compile the model: {_last_line(e)}") from None
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(scratch, 0o777 & ~umask)
        if os.path.isdir(out):
            os.rmdir(out)
        os.rename(scratch, out)
        scratch = None
        return 0
    except _Reported as e:
        return _fail(None, str(e))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


class _Reported(Exception):
    pass


def _last_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[-1] if lines else ''}"


def _fail(path: str | None, why: str) -> int:
    print(f"error: {path}: {why}" if path else f"error: {why}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
