//! `avac alc <step>`: the ALC (Gemma 3) pipeline steps available so far.

use crate::build::atomic;
use crate::formats::gguf::{hf_tokenizer, GgufFile, GgufTokenizer};
use crate::model::gemma3::{gguf, Gemma3};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(super) enum AlcCmd {
    /// The tokenizer a GGUF embeds, written as a Hugging Face tokenizer.json.
    Tokenizer {
        /// The GGUF file.
        #[arg(long)]
        gguf: PathBuf,
        /// Output tokenizer.json.
        #[arg(long)]
        out: PathBuf,
    },
    /// Greedy generation with the reference Gemma 3 forward (weights dequantized from a GGUF).
    Run {
        /// The GGUF file.
        #[arg(long)]
        gguf: PathBuf,
        /// Prompt text (BOS is added as the GGUF's tokenizer says).
        #[arg(long)]
        prompt: String,
        /// New tokens at most.
        #[arg(long, default_value_t = 32)]
        max_new: usize,
    },
}

fn tokenizer_json(g: &GgufFile) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let t = GgufTokenizer::from_gguf(g)?;
    Ok(hf_tokenizer::to_tokenizer_json(&t, g.file())?)
}

pub(super) fn run(cmd: AlcCmd) -> Result<i32, Box<dyn std::error::Error>> {
    match cmd {
        AlcCmd::Tokenizer { gguf, out } => {
            let g = GgufFile::read(&gguf)?;
            let json = tokenizer_json(&g)?;
            atomic::write(&out, &json).map_err(|e| format!("{}: {e}", out.display()))?;
            Ok(0)
        }
        AlcCmd::Run { gguf: path, prompt, max_new } => {
            let g = GgufFile::read(&path)?;
            let json = tokenizer_json(&g)?;
            let tok = tokenizers::Tokenizer::from_bytes(&json).map_err(|e| format!("{}: tokenizer: {e}", path.display()))?;
            let cfg = gguf::config_from_gguf(&g).map_err(|e| format!("{}: {e}", path.display()))?;
            let model = Gemma3::load(&cfg, &gguf::GgufWeights::new(&g).map_err(|e| format!("{}: {e}", path.display()))?)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let ids = tok.encode(prompt.as_str(), true).map_err(|e| format!("encoding the prompt: {e}"))?.get_ids().to_vec();
            let t = GgufTokenizer::from_gguf(&g)?;
            let eos: Vec<u32> = t.eos_token_id.into_iter().collect();
            let new = model.greedy(&ids, max_new, &eos)?;
            let text = tok.decode(&new, true).map_err(|e| format!("decoding: {e}"))?;
            println!("{}", serde_json::json!({ "prompt_ids": ids, "ids": new, "text": text }));
            Ok(0)
        }
    }
}
