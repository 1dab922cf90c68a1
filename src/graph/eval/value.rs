//! Owned tensors passed between nodes, and their conversion from and to
//! the IR's byte-level [`Tensor`].

use crate::graph::{DType, Tensor};

/// A dense, row-major array.
///
/// `data.len()` equals the product of `dims` (1 for a scalar, `dims == []`).
/// The evaluator checks this for every graph input and initializer, and
/// every array it makes keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Array<T> {
    /// Shape.
    pub dims: Vec<usize>,
    /// Elements in row-major order.
    pub data: Vec<T>,
}

impl<T> Array<T> {
    /// An array of `dims` holding `data`.
    pub fn new(dims: Vec<usize>, data: Vec<T>) -> Self {
        Array { dims, data }
    }

    /// Number of elements the shape calls for.
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }
}

/// A tensor value of one of the element types avac's graphs compute with.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// 32-bit floats.
    F32(Array<f32>),
    /// 64-bit integers (token ids, masks, shapes).
    I64(Array<i64>),
    /// 32-bit integers (`MatMulInteger` accumulators, quantized biases).
    I32(Array<i32>),
    /// Signed bytes (quantized weights).
    I8(Array<i8>),
    /// Unsigned bytes (quantized activations).
    U8(Array<u8>),
}

/// Applies a generic expression to whichever array a [`Value`] holds and
/// wraps the result in the same variant: `map_array!(v, a => a.clone())`.
macro_rules! map_array {
    ($v:expr, $a:ident => $body:expr) => {
        match $v {
            Value::F32($a) => Value::F32($body),
            Value::I64($a) => Value::I64($body),
            Value::I32($a) => Value::I32($body),
            Value::I8($a) => Value::I8($body),
            Value::U8($a) => Value::U8($body),
        }
    };
}
pub(super) use map_array;

impl Value {
    /// An f32 value.
    pub fn f32(dims: &[usize], data: Vec<f32>) -> Self {
        Value::F32(Array::new(dims.to_vec(), data))
    }
    /// An i64 value.
    pub fn i64(dims: &[usize], data: Vec<i64>) -> Self {
        Value::I64(Array::new(dims.to_vec(), data))
    }
    /// An i32 value.
    pub fn i32(dims: &[usize], data: Vec<i32>) -> Self {
        Value::I32(Array::new(dims.to_vec(), data))
    }
    /// An i8 value.
    pub fn i8(dims: &[usize], data: Vec<i8>) -> Self {
        Value::I8(Array::new(dims.to_vec(), data))
    }
    /// A u8 value.
    pub fn u8(dims: &[usize], data: Vec<u8>) -> Self {
        Value::U8(Array::new(dims.to_vec(), data))
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        match self {
            Value::F32(_) => DType::F32,
            Value::I64(_) => DType::I64,
            Value::I32(_) => DType::I32,
            Value::I8(_) => DType::I8,
            Value::U8(_) => DType::U8,
        }
    }

    /// Shape.
    pub fn dims(&self) -> &[usize] {
        match self {
            Value::F32(a) => &a.dims,
            Value::I64(a) => &a.dims,
            Value::I32(a) => &a.dims,
            Value::I8(a) => &a.dims,
            Value::U8(a) => &a.dims,
        }
    }

    /// Number of elements stored.
    pub fn len(&self) -> usize {
        match self {
            Value::F32(a) => a.data.len(),
            Value::I64(a) => a.data.len(),
            Value::I32(a) => a.data.len(),
            Value::I8(a) => a.data.len(),
            Value::U8(a) => a.data.len(),
        }
    }

    /// True when no element is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The f32 array, if this is one.
    pub fn as_f32(&self) -> Option<&Array<f32>> {
        match self {
            Value::F32(a) => Some(a),
            _ => None,
        }
    }
    /// The i64 array, if this is one.
    pub fn as_i64(&self) -> Option<&Array<i64>> {
        match self {
            Value::I64(a) => Some(a),
            _ => None,
        }
    }
    /// The i32 array, if this is one.
    pub fn as_i32(&self) -> Option<&Array<i32>> {
        match self {
            Value::I32(a) => Some(a),
            _ => None,
        }
    }
    /// The i8 array, if this is one.
    pub fn as_i8(&self) -> Option<&Array<i8>> {
        match self {
            Value::I8(a) => Some(a),
            _ => None,
        }
    }
    /// The u8 array, if this is one.
    pub fn as_u8(&self) -> Option<&Array<u8>> {
        match self {
            Value::U8(a) => Some(a),
            _ => None,
        }
    }

    /// Decodes an IR tensor (little-endian bytes). Fails on a negative dim
    /// or a byte count that does not match the shape.
    pub fn from_tensor(t: &Tensor) -> Result<Self, String> {
        let dims = t.dims.iter().map(|&d| usize::try_from(d).map_err(|_| format!("negative dim in {:?}", t.dims))).collect::<Result<Vec<_>, _>>()?;
        let numel = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(|| format!("shape {:?} overflows", t.dims))?;
        let want = numel.checked_mul(t.dtype.size()).ok_or_else(|| format!("shape {:?} overflows", t.dims))?;
        if t.data.len() != want {
            return Err(format!("{} bytes of data for {:?} {:?}, expected {want}", t.data.len(), t.dtype, t.dims));
        }
        fn le<const N: usize, T>(data: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
            data.chunks_exact(N).map(|c| f(c.try_into().expect("chunks_exact gives N bytes"))).collect()
        }
        Ok(match t.dtype {
            DType::F32 => Value::F32(Array::new(dims, le(&t.data, f32::from_le_bytes))),
            DType::I64 => Value::I64(Array::new(dims, le(&t.data, i64::from_le_bytes))),
            DType::I32 => Value::I32(Array::new(dims, le(&t.data, i32::from_le_bytes))),
            DType::I8 => Value::I8(Array::new(dims, le(&t.data, i8::from_le_bytes))),
            DType::U8 => Value::U8(Array::new(dims, t.data.clone())),
        })
    }

    /// Encodes as an IR tensor (little-endian bytes).
    pub fn to_tensor(&self) -> Tensor {
        fn bytes<T: Copy, const N: usize>(a: &Array<T>, f: fn(T) -> [u8; N]) -> (Vec<i64>, Vec<u8>) {
            (a.dims.iter().map(|&d| d as i64).collect(), a.data.iter().flat_map(|&v| f(v)).collect())
        }
        let (dims, data) = match self {
            Value::F32(a) => bytes(a, f32::to_le_bytes),
            Value::I64(a) => bytes(a, i64::to_le_bytes),
            Value::I32(a) => bytes(a, i32::to_le_bytes),
            Value::I8(a) => bytes(a, i8::to_le_bytes),
            Value::U8(a) => bytes(a, u8::to_le_bytes),
        };
        Tensor { dtype: self.dtype(), dims, data }
    }
}
