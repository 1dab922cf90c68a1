//! `avac plan`: the plan every engine reads, from the CLI. The committed
//! `rules/plan.json` must be what this avac generates (drift fails, like
//! `dist generate --check`), a target's `--json` plan is its entry there,
//! and a declaration that cannot be planned is refused before any step, naming
//! the file and the target.

mod common;
use common::*;

#[test]
fn committed_plan_file_is_what_avac_generates() {
    let d = tempfile::tempdir().unwrap();
    let committed = repo().join("rules/plan.json");
    let o = avac(&repo(), &["plan", "--all", "--check", committed.to_str().unwrap()]);
    assert!(o.status.success(), "rules/plan.json is stale: {}", stderr(&o));

    // --out writes the same bytes; --check on other bytes fails with the fix.
    let fresh = d.path().join("plan.json");
    let o = avac(&repo(), &["plan", "--all", "--out", fresh.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&fresh).unwrap(), std::fs::read(&committed).unwrap());
    let text = std::fs::read_to_string(&fresh).unwrap().replacen("\"work/classifier\"", "\"work/classifier2\"", 1);
    std::fs::write(&fresh, text).unwrap();
    let o = avac(&repo(), &["plan", "--all", "--check", fresh.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("avac plan --all --out"), "{}", stderr(&o));
}

#[test]
fn a_target_plan_is_its_entry_in_the_plan_file() {
    let all = read_json(&repo().join("rules/plan.json"));
    assert!(all["generated"].as_str().unwrap().contains("do not edit"));
    assert_eq!(all["default"], "minilm-intent-int8");
    for t in ["minilm-intent-int8", "malbert-tiny-int8", "gemma3-270m-q4bf16"] {
        let o = avac(&repo(), &["plan", t, "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v, all["targets"][t], "{t}");
        let o = avac(&repo(), &["plan", t]);
        assert!(o.status.success(), "{}", stderr(&o));
        for s in v["steps"].as_array().unwrap() {
            let line = format!("step {}", s["name"].as_str().unwrap());
            assert!(stdout(&o).contains(&line), "{t}: {line}\n{}", stdout(&o));
        }
    }
    let steps: Vec<&str> = all["targets"]["minilm-intent-int8"]["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps, ["convert", "export", "optimize", "quantize", "validate"]);
}

#[test]
fn a_declaration_that_cannot_be_planned_is_refused_naming_the_target() {
    let decl = std::fs::read_to_string(repo().join("rules/targets.toml")).unwrap();
    let d = tempfile::tempdir().unwrap();
    let cases = [
        ("bad-source", "rule = \"aon\"\ndescription = \"\"\nmodel = [\"no-such-source\"]\nintents = \"voice-intents\"\nartifact = \"m.onnx\"\nconvert = { classes = 2, pooling = \"mean-normalized\" }\n", "uses unknown source \"no-such-source\""),
        ("bad-rule", "rule = \"bazel\"\nmodel = [\"albert-tiny\"]\n", "bazel"),
        (
            "bad-field",
            "rule = \"aon\"\ndescription = \"\"\nmodel = [\"albert-tiny\"]\nintents = \"voice-intents\"\nartifact = \"m.onnx\"\nconvert = { classes = 2, pooling = \"mean-normalized\" }\nquantise = {}\n",
            "quantise",
        ),
        (
            "no-calibration",
            "rule = \"aon\"\ndescription = \"\"\nmodel = [\"albert-tiny\"]\nintents = \"voice-intents\"\nartifact = \"m.onnx\"\nconvert = { classes = 2, pooling = \"mean-normalized\" }\nquantize = {}\n",
            "target no-calibration: INT8 quantization (`quantize`) needs a `calibration` source",
        ),
        (
            "escaping",
            "rule = \"aon\"\ndescription = \"\"\nmodel = [\"albert-tiny\"]\nintents = \"voice-intents\"\nartifact = \"../../escaped.onnx\"\nconvert = { classes = 2, pooling = \"mean-normalized\" }\n",
            "target escaping: artifact \"../../escaped.onnx\" must be a plain file name",
        ),
    ];
    for (name, table, want) in cases {
        let p = d.path().join(format!("{name}.toml"));
        std::fs::write(&p, format!("{decl}\n[targets.{name}]\n{table}")).unwrap();
        let o = avac(d.path(), &["--targets", p.to_str().unwrap(), "plan", "--all"]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(p.to_str().unwrap()) && err.contains(want), "{name}: {err}");
        assert!(stdout(&o).is_empty(), "{name}: nothing is printed");
    }
}
