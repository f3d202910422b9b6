//! The two element types of n-sized buffers, as the backends compute with them.

use crate::elem::{Dtype, Element};
use std::fmt;

/// f32 or f64, converted to and from f64 for accumulation.
pub trait Scalar:
    Copy + Default + PartialEq + fmt::Debug + Send + Sync + 'static + Element
{
    const DTYPE: Dtype;
    fn to_f64(self) -> f64;
    fn from_f64(x: f64) -> Self;
    fn is_finite(self) -> bool;
    /// The slice as f32 when the type is f32 (for the kernels that read f32 data at streaming
    /// speed), else None.
    fn as_f32(s: &[Self]) -> Option<&[f32]>;
    /// The slice as mutable f32 when the type is f32, else None.
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]>;
}

impl Scalar for f32 {
    const DTYPE: Dtype = Dtype::F32;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    #[inline(always)]
    fn as_f32(s: &[f32]) -> Option<&[f32]> {
        Some(s)
    }
    #[inline(always)]
    fn as_f32_mut(s: &mut [f32]) -> Option<&mut [f32]> {
        Some(s)
    }
}

impl Scalar for f64 {
    const DTYPE: Dtype = Dtype::F64;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
    #[inline(always)]
    fn as_f32(_: &[f64]) -> Option<&[f32]> {
        None
    }
    #[inline(always)]
    fn as_f32_mut(_: &mut [f64]) -> Option<&mut [f32]> {
        None
    }
}
