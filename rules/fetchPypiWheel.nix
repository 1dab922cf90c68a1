# fetchPypiWheel: a wheel from the Python package index by name, version and
# hash, through an injected fetcher — the rules never name an index host.
# The public flake injects nixpkgs' own `fetchPypi`; the test flake injects
# a seeded local fetcher instead.
#
# Injected:
#   fetchPypi  function or null  nixpkgs' `fetchPypi` (or anything taking
#                                { pname, version, format = "wheel", dist,
#                                python, abi, platform, sha256 }); null: a
#                                pypi source fails at evaluation, by name
#
# Arguments:
#   name      string  the source's name
#   package   string  distribution name as declared (`package`)
#   version   string  exact version
#   sha256    string  the wheel's sha256 (64 lowercase hex digits)
#   python    string  wheel tag, default "py3"
#   abi       string  wheel tag, default "none"
#   platform  string  wheel tag, default "any"
{ fetchPypi }:
{ name, package, version, sha256, python ? "py3", abi ? "none", platform ? "any" }:
if fetchPypi == null
then throw "rules: source ${name}: a pypi source needs a PyPI fetcher: pass `fetchers.pypi` (the flake injects nixpkgs' fetchPypi)"
else
  fetchPypi {
    # Wheel file names spell the distribution with `_` (PEP 427).
    pname = builtins.replaceStrings [ "-" "." ] [ "_" "_" ] package;
    inherit version sha256 python abi platform;
    format = "wheel";
    dist = python;
  }
