//! Element types, in one place: the optimizer's dtype (f32 or f64: parameters, gradients and
//! n-sized state) and the element types of stored buffers (the dtypes, u64, and the 16-bit
//! storage formats of a GGT window, `crate::half`), with their codes in the state format and the
//! C API.

use std::fmt;

/// The optimizer's dtype: the element type of parameters, gradients and n-sized state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32,
    F64,
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
        })
    }
}

/// Element types of stored buffers (their codes are part of the format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemType {
    F32 = 1,
    F64 = 2,
    U64 = 3,
    /// bfloat16 (`ggt(storage=bf16)`), stored as its 16 bits.
    Bf16 = 4,
    /// IEEE binary16 (`ggt(storage=f16)`), stored as its 16 bits.
    F16 = 5,
}

impl ElemType {
    pub fn from_code(code: u8) -> Option<ElemType> {
        match code {
            1 => Some(ElemType::F32),
            2 => Some(ElemType::F64),
            3 => Some(ElemType::U64),
            4 => Some(ElemType::Bf16),
            5 => Some(ElemType::F16),
            _ => None,
        }
    }

    pub fn size(self) -> usize {
        match self {
            ElemType::Bf16 | ElemType::F16 => 2,
            ElemType::F32 => 4,
            ElemType::U64 | ElemType::F64 => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "f32",
            ElemType::F64 => "f64",
            ElemType::U64 => "u64",
            ElemType::Bf16 => "bf16",
            ElemType::F16 => "f16",
        }
    }
}

impl From<Dtype> for ElemType {
    /// The element type of n-sized buffers of that dtype.
    fn from(dtype: Dtype) -> ElemType {
        match dtype {
            Dtype::F32 => ElemType::F32,
            Dtype::F64 => ElemType::F64,
        }
    }
}

/// Element types of stored buffers (f32, f64 or u64): plain old data, written little-endian.
pub trait Element: Copy + Default + bytemuck::Pod {
    const TYPE: ElemType;
}

impl Element for f32 {
    const TYPE: ElemType = ElemType::F32;
}

impl Element for f64 {
    const TYPE: ElemType = ElemType::F64;
}

impl Element for u64 {
    const TYPE: ElemType = ElemType::U64;
}
