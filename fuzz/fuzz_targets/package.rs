//! An MLC package `.tar` read as `alc run` reads it: opened (tar, tensor
//! cache verified, chat config parsed), tokenizer loaded, model loaded.
#![no_main]
use avac::alc::package::Package;
use avac::model::gemma3::Gemma3;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = avac_fuzz::write_input("fuzz.tar", data);
    let Ok(pkg) = Package::open(&path) else { return };
    let _ = pkg.tokenizer();
    let _ = pkg.group_size();
    let _ = Gemma3::load(&pkg.chat.model, &pkg);
});
