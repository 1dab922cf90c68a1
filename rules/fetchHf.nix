# fetchHf: one file of a Hugging Face repository at a pinned commit, as a
# fixed-output derivation (`{endpoint}/{repo}/resolve/{revision}/{file}`,
# the URL `avac fetch` uses). Gated repositories need a token: give Nix a
# netrc file (`--option netrc-file`) for the endpoint's host.
#
# Injected:
#   fetchUrl  function  rules/fetchUrl.nix
#
# Arguments:
#   name      string  the source's name
#   repo      string  "owner/name"
#   revision  string  40 hex digits: a commit, never a branch
#   file      string  path inside the repository
#   sha256    string  64 lowercase hex digits: the pin
#   endpoint  string  default: the hub (avac's DEFAULT_HF_ENDPOINT); a mirror's
#                     URL to use one (like HF_ENDPOINT for `avac fetch`)
{ fetchUrl }:
{ name, repo, revision, file, sha256, endpoint ? "https://huggingface.co" }:
if builtins.match "[0-9a-f]{40}" revision == null
then throw "rules: source ${name}: revision must be a 40-hex commit id, got \"${revision}\" (set it in rules/targets.toml, then run `avac lock ${name}`)"
else fetchUrl { inherit name sha256; url = "${endpoint}/${repo}/resolve/${revision}/${file}"; }
