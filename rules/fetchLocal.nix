# fetchLocal: a local file as a fixed-output derivation pinned by its sha256.
#
# Injected:
#   avac    derivation or path  avac, whose `build-step fetch-local` copies the file
#   system  string              e.g. "x86_64-linux"
#
# Arguments:
#   name    string  the source's name in rules/targets.toml (names the output
#                   and the fix in the error message)
#   file    path    the file (copied to the store when evaluated)
#   sha256  string  64 lowercase hex digits: the pin
#
# A file whose digest is not the pin fails with Nix's own "hash mismatch in
# fixed-output derivation" error; the build log (`-L`) also says which pin
# to fix and how (`avac lock NAME`).
{ avac, system }:
{ name, file, sha256 }:
derivation {
  inherit name system;
  builder = "${avac}/bin/avac";
  args = [ "build-step" "fetch-local" name "--file" "${file}" "--sha256" sha256 "--out" (builtins.placeholder "out") ];
  outputHashMode = "flat";
  outputHashAlgo = "sha256";
  outputHash = sha256;
}
