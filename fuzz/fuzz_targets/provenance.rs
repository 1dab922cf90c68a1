//! A `.provenance.json` statement as `avac audit` reads it: parsed, then its
//! build definition turned back into a declaration.
#![no_main]
use avac::provenance;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = provenance::parse_statement(data, "fuzz.provenance.json") {
        let _ = provenance::recorded(&s.definition, "fuzz.provenance.json", None);
    } else if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        // A bare build definition reaches the reader past the statement's checks.
        let _ = provenance::recorded(&v, "fuzz.provenance.json", None);
    }
});
