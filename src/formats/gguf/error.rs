//! The one error type of the GGUF reader. Every variant names the file, and the
//! key or tensor when there is one, so a user can find the bad field from the
//! message alone.

/// A GGUF file that cannot be read, or a request it cannot satisfy.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be read from disk.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The first four bytes are not `GGUF`.
    #[error("{file}: not a GGUF file: magic is {found:02x?}, expected \"GGUF\" (47 47 55 46)")]
    BadMagic {
        /// The file.
        file: String,
        /// The bytes found where the magic should be (fewer if the file is shorter).
        found: Vec<u8>,
    },

    /// A GGUF version this reader does not understand (only 2 and 3 share this layout).
    #[error("{file}: GGUF version {version} is not supported (supported: 2, 3)")]
    UnsupportedVersion {
        /// The file.
        file: String,
        /// The version in the header.
        version: u32,
    },

    /// A big-endian GGUF (its version reads byte-swapped); avac reads little-endian files only.
    #[error("{file}: big-endian GGUF (version {version} byte-swapped); only little-endian files are supported")]
    BigEndian {
        /// The file.
        file: String,
        /// The version once swapped.
        version: u32,
    },

    /// The header ends before a field it declares: the file is truncated or a count is wrong.
    #[error("{file}: truncated header: {what} needs {needed} bytes at offset {offset} but the file has {file_len} bytes")]
    TruncatedHeader {
        /// The file.
        file: String,
        /// The field being read, e.g. `value of key 'general.name'`.
        what: String,
        /// Offset of the field in the file.
        offset: u64,
        /// Bytes the field needs.
        needed: u64,
        /// Length of the file.
        file_len: u64,
    },

    /// More tensors than the cap, or than the rest of the file could describe.
    #[error("{file}: header declares {count} tensors; at most {max} fit the cap and the remaining header bytes")]
    TooManyTensors {
        /// The file.
        file: String,
        /// Declared count.
        count: u64,
        /// The limit that applied.
        max: u64,
    },

    /// More metadata key/value pairs than the cap, or than the rest of the file could hold.
    #[error("{file}: header declares {count} metadata entries; at most {max} fit the cap and the remaining header bytes")]
    TooManyKeys {
        /// The file.
        file: String,
        /// Declared count.
        count: u64,
        /// The limit that applied.
        max: u64,
    },

    /// A string (key, tensor name or value) longer than its cap.
    #[error("{file}: {what}: string of {len} bytes exceeds the {max}-byte cap")]
    StringTooLong {
        /// The file.
        file: String,
        /// Which string.
        what: String,
        /// Declared length.
        len: u64,
        /// The cap.
        max: u64,
    },

    /// A key, tensor name or string value that is not UTF-8 (the GGUF spec requires UTF-8).
    #[error("{file}: {what}: string is not valid UTF-8")]
    StringNotUtf8 {
        /// The file.
        file: String,
        /// Which string.
        what: String,
    },

    /// A metadata key that appears twice.
    #[error("{file}: metadata key '{key}' appears more than once")]
    DuplicateKey {
        /// The file.
        file: String,
        /// The key.
        key: String,
    },

    /// A metadata value type id outside the GGUF table (0..=12).
    #[error("{file}: key '{key}': unknown metadata value type {type_id}")]
    UnknownValueType {
        /// The file.
        file: String,
        /// The key.
        key: String,
        /// The type id found.
        type_id: u32,
    },

    /// An array longer than the cap, or than the rest of the file could hold.
    #[error("{file}: key '{key}': array of {len} elements; at most {max} fit the cap and the remaining header bytes")]
    ArrayTooLong {
        /// The file.
        file: String,
        /// The key.
        key: String,
        /// Declared length.
        len: u64,
        /// The limit that applied.
        max: u64,
    },

    /// Arrays nested deeper than the cap.
    #[error("{file}: key '{key}': arrays nested more than {max} deep")]
    ArrayTooDeep {
        /// The file.
        file: String,
        /// The key.
        key: String,
        /// The cap.
        max: usize,
    },

    /// A bool stored as a byte other than 0 or 1.
    #[error("{file}: key '{key}': bool stored as {value}, expected 0 or 1")]
    InvalidBool {
        /// The file.
        file: String,
        /// The key.
        key: String,
        /// The byte found.
        value: u8,
    },

    /// `general.alignment` is not a non-zero power of two stored as a u32.
    #[error("{file}: general.alignment must be a power-of-two u32, found {found}")]
    BadAlignment {
        /// The file.
        file: String,
        /// What was found, rendered.
        found: String,
    },

    /// Two tensors with the same name.
    #[error("{file}: tensor '{tensor}' appears more than once")]
    DuplicateTensor {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
    },

    /// More dimensions than ggml supports.
    #[error("{file}: tensor '{tensor}': {n_dims} dimensions, at most {max} supported")]
    TooManyDims {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// Declared count.
        n_dims: u32,
        /// The cap (ggml's `GGML_MAX_DIMS`).
        max: u32,
    },

    /// A ggml type id that is not in ggml's type table.
    #[error("{file}: tensor '{tensor}': unknown ggml type id {type_id}")]
    UnknownType {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// The type id found.
        type_id: u32,
    },

    /// The dimensions' product (elements or bytes) overflows.
    #[error("{file}: tensor '{tensor}': dims {dims:?} of {type_name} overflow the addressable size")]
    ShapeOverflow {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// Dimensions in GGUF order (`ne[0]` first).
        dims: Vec<u64>,
        /// The ggml type.
        type_name: &'static str,
    },

    /// The fastest dimension is not a whole number of quantization blocks.
    #[error("{file}: tensor '{tensor}': ne[0] = {ne0} is not a multiple of the {type_name} block size {block_size}")]
    RowNotBlockAligned {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// The fastest dimension.
        ne0: u64,
        /// The ggml type.
        type_name: &'static str,
        /// Elements per block.
        block_size: usize,
    },

    /// A tensor offset that is not a multiple of the file's alignment.
    #[error("{file}: tensor '{tensor}': data offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedOffset {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// Offset relative to the data section.
        offset: u64,
        /// The alignment in force.
        alignment: u64,
    },

    /// A tensor's bytes run past the end of the file.
    #[error(
        "{file}: truncated: tensor '{tensor}' needs file bytes [{begin}, {end}) ({size} bytes at data offset {offset}) \
         but the file has {file_len} bytes ({missing} missing)"
    )]
    TruncatedData {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// Offset relative to the data section.
        offset: u64,
        /// Size of the tensor's data in bytes.
        size: u64,
        /// First byte of the tensor in the file.
        begin: u64,
        /// One past its last byte in the file.
        end: u64,
        /// Length of the file.
        file_len: u64,
        /// `end - file_len`.
        missing: u64,
    },

    /// Two tensors whose bytes overlap.
    #[error("{file}: tensor '{tensor}' (data offset {begin}) overlaps '{previous}' (which ends at {previous_end})")]
    Overlap {
        /// The file.
        file: String,
        /// The later tensor.
        tensor: String,
        /// Its offset.
        begin: u64,
        /// The earlier tensor.
        previous: String,
        /// End of the earlier tensor.
        previous_end: u64,
    },

    /// Unused bytes between two tensors beyond alignment padding.
    #[error("{file}: tensor '{tensor}' starts at data offset {begin}, but the previous tensor ends at {previous_end} (next aligned offset {expected})")]
    Gap {
        /// The file.
        file: String,
        /// The tensor after the gap.
        tensor: String,
        /// Its offset.
        begin: u64,
        /// End of the previous tensor.
        previous_end: u64,
        /// Where the tensor should start.
        expected: u64,
    },

    /// Bytes after the last tensor beyond alignment padding.
    #[error("{file}: {trailing} bytes after the last tensor's data (at most {max} bytes of alignment padding allowed)")]
    TrailingBytes {
        /// The file.
        file: String,
        /// Bytes after the last tensor.
        trailing: u64,
        /// The padding allowed.
        max: u64,
    },

    /// No tensor of that name.
    #[error("{file}: no tensor named '{tensor}'")]
    MissingTensor {
        /// The file.
        file: String,
        /// The name asked for.
        tensor: String,
    },

    /// A tensor type this reader cannot dequantize.
    #[error("{file}: tensor '{tensor}': dequantizing {type_name} is not supported (supported: F32 F16 BF16 Q4_0 Q8_0 Q5_0 Q4_K Q6_K)")]
    UnsupportedType {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// The ggml type name.
        type_name: &'static str,
    },

    /// A row range outside the tensor.
    #[error("{file}: tensor '{tensor}': rows {start}..{end} requested but the tensor has {n_rows} rows")]
    RowRange {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// First row requested.
        start: usize,
        /// One past the last row requested.
        end: usize,
        /// Rows in the tensor.
        n_rows: usize,
    },

    /// An output buffer of the wrong length was given to a dequantizer.
    #[error("{file}: tensor '{tensor}': output buffer holds {actual} floats but the tensor has {expected} elements")]
    OutputLength {
        /// The file.
        file: String,
        /// The tensor.
        tensor: String,
        /// Elements in the tensor.
        expected: usize,
        /// Length of the buffer.
        actual: usize,
    },

    /// A metadata key the caller needs is absent.
    #[error("{file}: missing metadata key '{key}'")]
    MissingKey {
        /// The file.
        file: String,
        /// The key.
        key: String,
    },

    /// A metadata key holds a value of another type than the caller needs.
    #[error("{file}: metadata key '{key}' is {found}, expected {expected}")]
    WrongKeyType {
        /// The file.
        file: String,
        /// The key.
        key: String,
        /// What was needed.
        expected: &'static str,
        /// What was found.
        found: String,
    },

    /// The model is not of the architecture the caller asked for.
    #[error("{file}: general.architecture is '{found}', expected '{expected}'")]
    WrongArchitecture {
        /// The file.
        file: String,
        /// What was needed.
        expected: &'static str,
        /// What the file says.
        found: String,
    },

    /// Tokenizer arrays whose lengths disagree with the token list.
    #[error("{file}: '{key}' has {len} entries but tokenizer.ggml.tokens has {expected}")]
    TokenizerLength {
        /// The file.
        file: String,
        /// The key of the shorter or longer array.
        key: String,
        /// Its length.
        len: usize,
        /// Number of tokens.
        expected: usize,
    },

    /// A special token id outside the vocabulary.
    #[error("{file}: '{key}' = {id} is outside the {vocab}-token vocabulary")]
    TokenIdOutOfRange {
        /// The file.
        file: String,
        /// The key.
        key: String,
        /// The id.
        id: u64,
        /// Vocabulary size.
        vocab: usize,
    },
}

/// Results of this module.
pub type Result<T, E = GgufError> = std::result::Result<T, E>;
