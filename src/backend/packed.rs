//! An n×cols matrix stored in a 16-bit format (`ggt(storage=bf16)` / `storage=f16`): half the
//! bytes of an f32 window held and read. Columns are written once, scaled by a power of two of
//! their own (`crate::half`) and rounded; every read widens the stored values exactly and
//! divides the scale out of k-sized results, so the matrix behaves as the matrix of the rounded
//! values, `value = code / scale`.

use super::Backend;
use crate::elem::ElemType;
use crate::error::Result;

/// A column-major matrix of 16-bit floats on backend `B` (see the module documentation).
pub trait PackedMatrix<B: Backend>: Send {
    /// The storage format (`ElemType::Bf16` or `ElemType::F16`).
    fn format(&self) -> ElemType;

    /// Number of columns.
    fn columns(&self) -> usize;

    /// Adds zero columns so the matrix has `cols`, or `LRE_ERR_OUT_OF_MEMORY` unchanged.
    fn grow(&mut self, cols: usize) -> Result<()>;

    /// Bytes held.
    fn bytes(&self) -> usize;

    /// The scale a column holding `src` gets: a power of two chosen from ‖src‖ (so the same on
    /// every shard).
    fn scale_for(&self, src: &B::Vector) -> f64;

    /// Products of new columns, as they will be stored (each `(vector, scale)` rounded as
    /// `set_column` rounds it), with the columns `cols` (one row per new column) and with each
    /// other (c×c, symmetric), accumulated as `Backend::column_dots` and `Backend::dot` do. One
    /// pass over the columns; the rounded vectors exist a block of rows at a time only, so no
    /// n-sized scratch is held.
    fn entering_products(
        &self,
        cols: &[usize],
        new: &[(&B::Vector, f64)],
    ) -> (Vec<Vec<f64>>, faer::Mat<f64>);

    /// Column `col` ← src·scale rounded to the format, to nearest (ties to even).
    fn set_column(&mut self, col: usize, src: &B::Vector, scale: f64);

    /// out[j] ← ⟨column cols[j], x⟩, with the error bound of `Backend::column_dots`.
    fn column_dots(&self, cols: &[usize], x: &B::Vector, out: &mut [f64]);

    /// y ← y + Σ_j w[j]·column cols[j], with the error bound of `Backend::add_columns`.
    fn add_columns(&self, cols: &[usize], w: &[f64], y: B::InOut<'_>);

    /// The stored codes of column `col` (this rank's rows) and its scale.
    fn column_to_host(&self, col: usize, out: &mut [u16]) -> f64;

    /// Column `col` ← the codes `data` with `scale`; refuses non-finite codes and a scale that
    /// is not a positive power of two, leaving the column unchanged.
    fn column_from_host(&mut self, data: &[u16], scale: f64, col: usize) -> Result<()>;
}
