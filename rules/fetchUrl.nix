# fetchUrl: a URL as a fixed-output derivation, fetched by Nix's built-in
# fetcher (`builtin:fetchurl`: no stdenv, no curl package, proxies from the
# usual variables). Used for `url` sources and, through fetchHf, `hf` ones.
#
# Arguments:
#   name    string  the store name (the source's name)
#   url     string  the URL
#   sha256  string  64 lowercase hex digits: the pin
{ }:
{ name, url, sha256 }:
derivation {
  inherit name url;
  builder = "builtin:fetchurl";
  system = "builtin";
  urls = [ url ];
  executable = false;
  unpack = false;
  outputHashMode = "flat";
  outputHashAlgo = "sha256";
  outputHash = sha256;
  preferLocalBuild = true;
  impureEnvVars = [ "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy" ];
}
