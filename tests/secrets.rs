//! A planted `HF_TOKEN` never leaves the `Authorization` header: a lock, a
//! build and a refused download from a gated repository on a loopback hub
//! leave it in no output, report, provenance, store file, scratch file,
//! declaration or line of output.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

const TOKEN: &str = "hf_PLANTEDsecret0123456789abcdefXYZ";
const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";

/// A gated hub on loopback: `/{repo}/resolve/{REVISION}/{file}` answers
/// 200 to `Authorization: Bearer TOKEN` and 401 to anything else. Returns
/// the endpoint and the log of `(path, authorized)`.
fn gated_hub(files: Vec<(String, Vec<u8>)>) -> (String, Arc<Mutex<Vec<(String, bool)>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let thread_log = Arc::clone(&log);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut authorized = false;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let (name, value) = line.trim_end().split_once(':').unwrap_or(("", ""));
                if name.eq_ignore_ascii_case("authorization") && value.trim() == format!("Bearer {TOKEN}") {
                    authorized = true;
                }
            }
            thread_log.lock().unwrap().push((path.clone(), authorized));
            let body = files.iter().find(|(f, _)| path == format!("/acme/tiny-albert/resolve/{REVISION}/{f}")).map(|(_, b)| b.clone());
            let (status, body) = match body {
                Some(b) if authorized => ("200 OK", b),
                Some(_) => ("401 Unauthorized", b"Access to model acme/tiny-albert is restricted.".to_vec()),
                None => ("404 Not Found", b"Entry not found".to_vec()),
            };
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(&body));
        }
    });
    (base, log)
}

/// A repository holding the project's intents and a declaration whose
/// target is `malbert-tiny-int8` with its model read from the gated hub.
fn repo_with_gated_model(root: &Path) -> PathBuf {
    for f in ["data/intents/voice-assistant.json", "data/intents/calibration.json"] {
        std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
        std::fs::copy(repo().join(f), root.join(f)).unwrap();
    }
    let decl = std::fs::read_to_string(repo().join("rules/targets.toml")).unwrap();
    let pick = |table: &str| -> String {
        let start = decl.find(&format!("[{table}]")).unwrap_or_else(|| panic!("{table}"));
        let rest = &decl[start..];
        rest[..rest[1..].find("\n[").map_or(rest.len(), |e| e + 2)].to_string()
    };
    let mut out = String::new();
    for s in ["sources.voice-intents", "sources.voice-calibration"] {
        out += &pick(s);
    }
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        let name = f.split('.').next().unwrap();
        out += &format!(
            "[sources.gated-{name}]\nkind = \"hf\"\nrepo = \"acme/tiny-albert\"\nrevision = \"{REVISION}\"\nfile = \"{f}\"\nsha256 = \"\"\nsize = 0\n\n"
        );
    }
    out += &pick("targets.malbert-tiny-int8").replace("[\"albert-tiny\"]", "[\"gated-config\", \"gated-model\", \"gated-tokenizer\"]");
    let p = root.join("rules/targets.toml");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, out).unwrap();
    p
}

fn run(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_avac"));
    c.current_dir(cwd).env_remove("HF_TOKEN").envs(env.iter().copied()).args(args);
    c.output().expect("run avac")
}

/// Every file under `root` (symlinks not followed) that holds `needle`.
fn files_holding(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if m.is_file() {
            let mut b = Vec::new();
            std::fs::File::open(&p).unwrap().read_to_end(&mut b).unwrap();
            if b.windows(needle.len()).any(|w| w == needle) {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn a_planted_hf_token_appears_in_no_output_report_store_file_or_log_line() {
    let d = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> =
        avac::fixtures::generate_files("albert", &Default::default()).unwrap().into_iter().filter(|(f, _)| !f.contains('/')).collect();
    assert_eq!(files.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(), ["config.json", "model.safetensors", "tokenizer.json"]);
    let (hub, log) = gated_hub(files);
    let root = d.path().join("repo");
    let decl = repo_with_gated_model(&root);
    let (store, tmp, out) = (d.path().join("store"), d.path().join("tmp"), d.path().join("out"));
    std::fs::create_dir(&tmp).unwrap();
    let decl_arg = decl.to_str().unwrap();
    let env =
        |token: &'static str| [("HF_TOKEN", token), ("HF_ENDPOINT", hub.as_str()), ("AVAC_STORE", store.to_str().unwrap()), ("TMPDIR", tmp.to_str().unwrap())];
    let mut outputs = Vec::new();

    // A wrong token: refused by the hub; the error names the fault, not the token.
    let o = run(&root, &env("hf_WRONGplanted987654321"), &["--targets", decl_arg, "lock", "gated-config"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("401") && stderr(&o).contains("HF_TOKEN"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("hf_WRONGplanted"), "{}", stderr(&o));
    outputs.push(o);

    // The right one: lock writes the pins, then the build runs from the store.
    let o = run(&root, &env(TOKEN), &["--targets", decl_arg, "lock", "gated-config", "gated-model", "gated-tokenizer"]);
    assert!(o.status.success(), "{}", stderr(&o));
    outputs.push(o);
    let o = run(&root, &env(TOKEN), &["--targets", decl_arg, "build", "malbert-tiny-int8", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // (Not golden: the artifact embeds its build definition, which names the hub.)
    assert!(digests(&o).contains("malbert-tiny-intent-classifier-int8.onnx"), "{}", stdout(&o));
    outputs.push(o);
    assert!(log.lock().unwrap().iter().any(|(p, authorized)| *authorized && p.ends_with("model.safetensors")), "the token was sent");

    for o in &outputs {
        for (what, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
            assert!(!bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()), "{what} holds the token");
        }
    }
    let leaked = [TOKEN, "hf_WRONGplanted"].iter().flat_map(|t| files_holding(d.path(), t.as_bytes())).collect::<Vec<_>>();
    assert!(leaked.is_empty(), "the token is in {leaked:?}");
    // The checks looked where the token could have gone: the walk finds
    // what is recorded there (the repository's name) in each place.
    let named = files_holding(d.path(), b"acme/tiny-albert");
    for place in [&root, &out] {
        assert!(named.iter().any(|p| p.starts_with(place)), "nothing under {} names the repository: {named:?}", place.display());
    }
    assert!(out.join("malbert-tiny-intent-classifier-int8.onnx.provenance.json").is_file());
    let pinned = std::fs::read_to_string(&decl).unwrap();
    assert_eq!(pinned.matches("sha256 = \"").count(), 5, "{pinned}");
    assert!(!pinned.contains("sha256 = \"\""), "lock wrote every pin: {pinned}");
    assert!(files_holding(&store, b"\n").len() >= 3, "the store holds the fetched files");
}
