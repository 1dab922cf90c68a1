//! `avac alc compile` and the model library in the package, on a tiny
//! generated Gemma 3, with the pinned TVM toolchain (its wheels fetched into
//! the test store; `AVAC_TEST_FROM=/var/tmp/avac-tvm-wheels` seeds them
//! offline). Each refusal is one clear error naming the file, and nothing
//! written.
//!
//! Needs CPython 3.11 at /usr/bin/python3.11 (what the wheels are built for).

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const WHEELS: &[&str] = &["tvm-apache-tvm", "tvm-apache-tvm-ffi", "tvm-ml-dtypes", "tvm-numpy", "tvm-typing-extensions"];

/// The toolchain's wheels, fetched and placed in `tmp/wheels` as the plan places them.
fn wheels(tmp: &Path) -> PathBuf {
    let l = avac::declaration::Loaded::read(&repo().join("rules/targets.toml")).unwrap();
    let s = avac::store::Store::open(store()).unwrap();
    let dir = tmp.join("wheels");
    for w in WHEELS {
        fetch_source(w);
        avac::store::materialize(&s, w, &l.decl.sources[*w], &dir).unwrap();
    }
    dir
}

fn tokenizer(vocab: usize) -> Vec<u8> {
    let v: serde_json::Map<String, serde_json::Value> = (0..vocab).map(|i| (format!("t{i}"), serde_json::json!(i))).collect();
    serde_json::to_vec(&serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
        "pre_tokenizer": { "type": "WhitespaceSplit" }, "post_processor": null, "decoder": null,
        "model": { "type": "WordLevel", "vocab": v, "unk_token": "t3" },
    }))
    .unwrap()
}

/// A tiny Gemma 3 Hugging Face directory (avac's generated weights), quantized
/// by `avac alc quantize` (group 32) into `tmp/params`.
fn tiny_params(tmp: &Path) -> PathBuf {
    let cfg = avac::fixtures::gemma3::tiny_config();
    let hf = tmp.join("hf");
    std::fs::create_dir_all(&hf).unwrap();
    let t: BTreeMap<String, avac::formats::safetensors::OwnedTensor> = avac::fixtures::gemma3::weights(&cfg, 11)
        .into_iter()
        .map(|(n, (shape, v))| (n, avac::formats::safetensors::OwnedTensor::from_f32(shape, &v)))
        .collect();
    avac::formats::safetensors::write(&hf.join("model.safetensors"), &t, &BTreeMap::new()).unwrap();
    let config = serde_json::json!({
        "architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "vocab_size": 300, "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 6, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
        "sliding_window": 4, "query_pre_attn_scalar": 32, "max_position_embeddings": 4096,
        "hidden_activation": "gelu_pytorch_tanh", "rope_scaling": null,
        "final_logit_softcapping": null, "attn_logit_softcapping": null,
        "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
    });
    std::fs::write(hf.join("config.json"), serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    std::fs::write(hf.join("tokenizer.json"), tokenizer(300)).unwrap();
    let out = tmp.join("params");
    let o = avac(tmp, &["alc", "quantize", "--source", hf.to_str().unwrap(), "--group-size", "32", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

fn compile(tmp: &Path, params: &Path, wheels: &Path, out: &Path) -> std::process::Output {
    avac(tmp, &["--threads", "2", "alc", "compile", "--dir", params.to_str().unwrap(), "--wheels", wheels.to_str().unwrap(), "--out", out.to_str().unwrap()])
}

fn package(tmp: &Path, params: &Path, lib: &Path, out: &Path) -> std::process::Output {
    avac(tmp, &["alc", "package", "--dir", params.to_str().unwrap(), "--model-lib", lib.to_str().unwrap(), "--out", out.to_str().unwrap()])
}

/// A copy of `params` with its chat config edited.
fn edited(tmp: &Path, params: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(params).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    let p = dir.join("mlc-chat-config.json");
    let mut v = read_json(&p);
    edit(&mut v);
    std::fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    dir
}

#[test]
fn the_model_library_compiles_reproducibly_packages_and_bad_inputs_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let tmp = d.path();
    let (params, wheels) = (tiny_params(tmp), wheels(tmp));

    // Two compiles, other working directories and thread counts: the same Android archive.
    let lib = tmp.join("lib");
    let o = compile(tmp, &params, &wheels, &lib);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut names: Vec<String> = std::fs::read_dir(&lib).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["model-arm64-v8a.a", "model-arm64-v8a.json", "model-x86_64.json", "model-x86_64.so"]);
    let manifest = read_json(&lib.join("model-arm64-v8a.json"));
    assert_eq!(manifest["system_lib_prefix"], "gemma3_text_q4bf16_1_");
    let other = tempfile::tempdir().unwrap();
    let lib2 = other.path().join("lib");
    let o = avac(
        other.path(),
        &["--threads", "1", "alc", "compile", "--dir", params.to_str().unwrap(), "--wheels", wheels.to_str().unwrap(), "--out", lib2.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(lib.join("model-arm64-v8a.a")).unwrap(), std::fs::read(lib2.join("model-arm64-v8a.a")).unwrap(), "archive bytes");

    // The package carries the archive under lib/arm64-v8a/, named by model_lib.
    let tar = tmp.join("pkg-android.tar");
    let o = package(tmp, &params, &lib, &tar);
    assert!(o.status.success(), "{}", stderr(&o));
    let l = avac(tmp, &["diff", tar.to_str().unwrap(), tar.to_str().unwrap()]);
    assert!(l.status.success(), "{}", stderr(&l));
    let listing = std::process::Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    let listing = stdout(&listing);
    assert!(listing.contains("lib/arm64-v8a/gemma3_text_q4bf16_1.a") && listing.contains("lib/arm64-v8a/gemma3_text_q4bf16_1.json"), "{listing}");

    // Refusals: one error naming the file, nothing written.
    let refused = |o: &std::process::Output, out: &Path, wants: &[&str]| {
        let e = stderr(o);
        assert_eq!(o.status.code(), Some(1), "{e}");
        for w in wants {
            assert!(e.contains(w), "wanted {w:?} in: {e}");
        }
        assert!(!out.exists(), "{} was written", out.display());
    };
    let bad = edited(tmp, &params, "bad-type", |v| v["model_type"] = "llama".into());
    let out = tmp.join("out-type");
    refused(&compile(tmp, &bad, &wheels, &out), &out, &["bad-type", "model_type", "llama"]);

    let bad = edited(tmp, &params, "bad-head", |v| v["model_config"]["text_config"]["head_dim"] = 1024.into());
    let out = tmp.join("out-head");
    refused(&compile(tmp, &bad, &wheels, &out), &out, &["bad-head", "head_dim"]);

    // A compile failure inside TVM (a config the checks let through but the
    // kernels cannot build) is reported with the package named.
    let bad = edited(tmp, &params, "bad-compile", |v| v["model_config"]["text_config"]["num_key_value_heads"] = 3.into());
    let out = tmp.join("out-compile");
    refused(&compile(tmp, &bad, &wheels, &out), &out, &["bad-compile"]);

    let other_lib = edited(tmp, &params, "other-lib", |v| v["model_lib"] = "gemma3_text_q4f16_1".into());
    let out = tmp.join("other-lib.tar");
    refused(&package(tmp, &other_lib, &lib, &out), &out, &["model-arm64-v8a.a", "gemma3_text_q4f16_1", "other-lib/mlc-chat-config.json"]);

    // A library for the wrong ABI: the host objects in an archive.
    let wrong = tmp.join("wrong-abi");
    std::fs::create_dir(&wrong).unwrap();
    std::fs::copy(lib.join("model-arm64-v8a.json"), wrong.join("model-arm64-v8a.json")).unwrap();
    let so = std::fs::read(lib.join("model-x86_64.so")).unwrap();
    let mut ar = b"!<arch>\n".to_vec();
    ar.extend(format!("{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", "lib0.o/", 0, 0, 0, 644, so.len()).as_bytes());
    ar.extend(&so);
    if so.len() % 2 == 1 {
        ar.push(b'\n');
    }
    std::fs::write(wrong.join("model-arm64-v8a.a"), ar).unwrap();
    let out = tmp.join("wrong-abi.tar");
    refused(&package(tmp, &params, &wrong, &out), &out, &["wrong-abi/model-arm64-v8a.a(lib0.o)", "x86-64", "arm64-v8a"]);

    // A missing toolchain names the pin.
    let empty = tmp.join("no-wheels");
    std::fs::create_dir(&empty).unwrap();
    let out = tmp.join("out-nowheels");
    refused(&compile(tmp, &params, &empty, &out), &out, &["apache-tvm==0.27.0.post1", "toolchains/tvm/requirements.txt"]);
}
