//! The ustar reader: `list` checks the archive whole; what it accepts is
//! extracted.
#![no_main]
use avac::package::tar;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = avac_fuzz::write_input("fuzz.tar", data);
    if tar::list(&path).is_ok() {
        let dest = avac_fuzz::empty_dir("extracted");
        let _ = tar::extract(&path, &dest);
    }
});
