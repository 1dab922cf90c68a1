//! [`SafeTensorsFile`]: a safetensors file validated from its header alone,
//! whose tensors are read from disk one at a time.
//!
//! Opening reads the 8-byte length prefix and the header (at most
//! [`MAX_HEADER_LEN`] bytes) and validates them exactly as
//! [`SafeTensors::parse`] does, against the file's length on disk: a
//! truncated file (a tensor ending past the end of the file) fails at open,
//! not at the first read. A tensor is then read with one seek and reads of at
//! most [`READ_CHUNK`] bytes, each converted to f32 as it arrives, so a read costs
//! its f32 result plus one chunk whatever the size of the file.
//!
//! The file stays open, so the bytes read are those of the file that was
//! validated even if the path is replaced afterwards; a file truncated in
//! place fails with an I/O error naming it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Mutex;

use super::*;

/// Bytes read per call when converting a tensor to f32: the only buffer a
/// read needs besides its result. A multiple of every element size, so no
/// element straddles two chunks.
pub const READ_CHUNK: usize = 1 << 20;

/// A safetensors file whose header has been validated and whose tensors stay
/// on disk until asked for.
#[derive(Debug)]
pub struct SafeTensorsFile {
    path: PathBuf,
    display: String,
    /// Behind a lock so that a seek and the reads after it are not
    /// interleaved with another thread's.
    file: Mutex<File>,
    data_start: u64,
    tensors: BTreeMap<String, TensorInfo>,
    metadata: BTreeMap<String, String>,
}

impl SafeTensorsFile {
    /// Opens `path` and validates its header against the file's length.
    pub fn open(path: &Path) -> Result<SafeTensorsFile> {
        let display = path.display().to_string();
        let io = |source| SafetensorsError::Io { file: display.clone(), source };
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let file_len = usize::try_from(len)
            .map_err(|_| io(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{len} bytes cannot be addressed on this platform"))))?;
        if file_len < 8 {
            return Err(SafetensorsError::TooShort { file: display, len: file_len });
        }
        let mut len_bytes = [0u8; 8];
        file.read_exact(&mut len_bytes).map_err(io)?;
        let data_start = header_end(u64::from_le_bytes(len_bytes), file_len, &display)?;
        let mut header = vec![0u8; data_start - 8];
        file.read_exact(&mut header).map_err(io)?;
        let (tensors, metadata) = parse_header(&header, file_len - data_start, &display)?;
        Ok(SafeTensorsFile { path: path.to_path_buf(), display, file: Mutex::new(file), data_start: data_start as u64, tensors, metadata })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The name used in errors (the path).
    pub fn display_name(&self) -> &str {
        &self.display
    }

    /// Tensor names in sorted order.
    pub fn names(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    /// Whether the file holds a tensor of that name.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The `__metadata__` map (empty when absent).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// A tensor's dtype and shape, without reading it.
    pub fn info(&self, name: &str) -> Result<(Dtype, &[usize])> {
        let info = self.entry(name)?;
        Ok((info.dtype, &info.shape))
    }

    /// A tensor's raw bytes.
    pub fn read(&self, name: &str) -> Result<OwnedTensor> {
        let info = self.entry(name)?;
        let mut data = Vec::with_capacity(info.end - info.begin);
        self.read_range(info, |chunk| data.extend_from_slice(chunk))?;
        Ok(OwnedTensor { dtype: info.dtype, shape: info.shape.clone(), data })
    }

    /// A float tensor's shape and values as f32 (exact for F16 and BF16);
    /// [`SafetensorsError::NotFloat`] for other dtypes.
    pub fn read_f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let info = self.entry(name)?;
        if !f32_convertible(info.dtype) {
            return Err(SafetensorsError::NotFloat { file: self.display.clone(), tensor: name.to_string(), dtype: info.dtype });
        }
        let mut out = Vec::with_capacity((info.end - info.begin) / info.dtype.size());
        self.read_range(info, |chunk| {
            extend_f32(info.dtype, chunk, &mut out);
        })?;
        Ok((info.shape.clone(), out))
    }

    fn entry(&self, name: &str) -> Result<&TensorInfo> {
        self.tensors.get(name).ok_or_else(|| SafetensorsError::MissingTensor { file: self.display.clone(), tensor: name.to_string() })
    }

    /// Feeds the tensor's bytes to `sink` in chunks of at most [`READ_CHUNK`].
    fn read_range(&self, info: &TensorInfo, mut sink: impl FnMut(&[u8])) -> Result<()> {
        let io = |source| SafetensorsError::Io { file: self.display.clone(), source };
        // A poisoned lock only means another read panicked; every read seeks first.
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // data_start + begin <= the validated file length, so this cannot overflow.
        file.seek(SeekFrom::Start(self.data_start + info.begin as u64)).map_err(io)?;
        let mut buf = vec![0u8; READ_CHUNK.min(info.end - info.begin)];
        let mut left = info.end - info.begin;
        while left > 0 {
            let n = left.min(READ_CHUNK);
            file.read_exact(&mut buf[..n]).map_err(io)?;
            sink(&buf[..n]);
            left -= n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn sample() -> BTreeMap<String, OwnedTensor> {
        let mut t = BTreeMap::new();
        let bf: Vec<u8> = (0..3000u16).flat_map(|i| (i.wrapping_mul(40503) ^ 0x3f00).to_le_bytes()).collect();
        t.insert("a.bf16".to_string(), OwnedTensor { dtype: Dtype::BF16, shape: vec![3, 1000], data: bf });
        t.insert("b.f32".to_string(), OwnedTensor::from_f32(vec![2, 2], &[1.0, -2.5, 0.0, 1e-30]));
        t.insert("c.f16".to_string(), OwnedTensor { dtype: Dtype::F16, shape: vec![2], data: vec![0x00, 0x3c, 0x00, 0xc0] });
        t.insert("d.i64".to_string(), OwnedTensor { dtype: Dtype::I64, shape: vec![1], data: vec![7; 8] });
        t
    }

    #[test]
    fn reads_what_the_in_memory_reader_reads() {
        let dir = tempfile::tempdir().unwrap();
        let meta: BTreeMap<String, String> = [("format".to_string(), "pt".to_string())].into();
        let bytes = serialize(&sample(), &meta, "x").unwrap();
        let path = write_file(dir.path(), "m.safetensors", &bytes);
        let f = SafeTensorsFile::open(&path).unwrap();
        let st = SafeTensors::parse(bytes, "x").unwrap();
        assert_eq!(f.names(), st.names());
        assert_eq!(f.metadata(), st.metadata());
        for v in st.tensors() {
            let t = f.read(v.name).unwrap();
            assert_eq!((t.dtype, &t.shape[..], &t.data[..]), (v.dtype, v.shape, v.data));
            match v.to_f32_vec() {
                Ok(want) => {
                    let (shape, got) = f.read_f32(v.name).unwrap();
                    assert_eq!(shape, v.shape);
                    assert_eq!(got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
                }
                Err(_) => {
                    let e = f.read_f32(v.name).unwrap_err().to_string();
                    assert!(e.contains("m.safetensors") && e.contains("'d.i64'") && e.contains("I64"), "{e}");
                }
            }
        }
        let e = f.read("nope").unwrap_err().to_string();
        assert!(e.contains("m.safetensors") && e.contains("'nope'"), "{e}");
    }

    #[test]
    fn chunked_reads_cross_chunk_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let n = READ_CHUNK / 2 + 3; // BF16: just over one chunk of bytes
        let data: Vec<u8> = (0..n as u32).flat_map(|i| ((i % 65000) as u16 ^ 0x3f80).to_le_bytes()).collect();
        let t: BTreeMap<String, OwnedTensor> = [("w".to_string(), OwnedTensor { dtype: Dtype::BF16, shape: vec![n], data: data.clone() })].into();
        let path = write_file(dir.path(), "big.safetensors", &serialize(&t, &BTreeMap::new(), "x").unwrap());
        let (_, v) = SafeTensorsFile::open(&path).unwrap().read_f32("w").unwrap();
        let want: Vec<u32> = data.chunks_exact(2).map(|c| u32::from(u16::from_le_bytes([c[0], c[1]])) << 16).collect();
        assert_eq!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want);
    }

    #[test]
    fn truncated_file_fails_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = serialize(&sample(), &BTreeMap::new(), "x").unwrap();
        let path = write_file(dir.path(), "cut.safetensors", &bytes[..bytes.len() - 1]);
        let e = SafeTensorsFile::open(&path).unwrap_err();
        assert!(matches!(&e, SafetensorsError::OffsetsOutOfBounds { file, .. } if file.ends_with("cut.safetensors")), "{e}");
        let path = write_file(dir.path(), "short.safetensors", &bytes[..5]);
        assert!(matches!(SafeTensorsFile::open(&path), Err(SafetensorsError::TooShort { len: 5, .. })));
        let e = SafeTensorsFile::open(&dir.path().join("absent.safetensors")).unwrap_err().to_string();
        assert!(e.contains("absent.safetensors"), "{e}");
    }

    #[test]
    fn property_accepts_exactly_what_the_in_memory_reader_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let good = serialize(&sample(), &BTreeMap::new(), "x").unwrap();
        let mut rng = crate::rng::Rng::new(7);
        for case in 0..200 {
            let mut bytes = good.clone();
            match rng.next_u64() % 3 {
                0 => bytes.truncate(rng.next_u64() as usize % good.len()),
                1 => {
                    let i = rng.next_u64() as usize % 200.min(bytes.len());
                    bytes[i] = rng.next_u64() as u8;
                }
                _ => bytes.push(0),
            }
            let path = write_file(dir.path(), "p.safetensors", &bytes);
            let on_disk = SafeTensorsFile::open(&path).map(|f| f.names().iter().map(|n| n.to_string()).collect::<Vec<_>>());
            let in_memory = SafeTensors::parse(bytes, &path.display().to_string()).map(|st| st.names().iter().map(|n| n.to_string()).collect::<Vec<_>>());
            match (on_disk, in_memory) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "case {case}"),
                (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "case {case}"),
                (a, b) => panic!("case {case}: on disk {a:?}, in memory {b:?}"),
            }
        }
    }
}
