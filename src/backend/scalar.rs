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
}
