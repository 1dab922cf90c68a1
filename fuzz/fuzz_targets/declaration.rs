//! `rules/targets.toml`: parsed and checked; each target's inputs and
//! build definition derived.
#![no_main]
use avac::declaration::Loaded;
use avac::provenance;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(l) = Loaded::parse(text, Path::new("rules/targets.toml"), None) else { return };
    for (name, t) in &l.decl.targets {
        let _ = (l.inputs_of(t), t.artifact(), t.rule(), t.sources());
        let _ = provenance::build_definition(&l, name, t, &[]);
    }
});
