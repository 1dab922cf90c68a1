# The Python oracle tools (onnxruntime, onnx, numpy, gguf, …) for the dev
# shell and the oracle tests.
#
# Pinned by: toolchains/python-oracles.txt — exact versions — the one list
# `.ci/run` installs with pip. Nix does
# not re-declare the versions: this file builds a virtual environment from
# that list on first entry to `nix develop` (pip reads its own configuration,
# so an index mirror or a wheelhouse works unchanged). Outside the dev shell nothing here is used: builds never
# call Python.
#
# Update: edit python-oracles.txt (version and hash), run the oracle tests
# (`cargo test --release --test oracles`), commit both.
{ python3, writeShellScript }:
{
  python = python3;
  requirements = ./python-oracles.txt;
  # Sourced by the dev shell: a venv under .venv-oracles keyed by the list's hash.
  setup = writeShellScript "avac-python-oracles" ''
    set -eu
    want=$(sha256sum ${./python-oracles.txt} | cut -d' ' -f1)
    venv=''${AVAC_ORACLES_VENV:-$PWD/.venv-oracles}
    if [ "$(cat "$venv/.avac-requirements" 2>/dev/null)" != "$want" ]; then
      ${python3}/bin/python3 -m venv "$venv"
      "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check -r ${./python-oracles.txt}
      echo "$want" > "$venv/.avac-requirements"
    fi
    export PATH="$venv/bin:$PATH"
  '';
}
