//! Saving and loading columns of a backend matrix (n-sized state) in logical order.

use crate::backend::Backend;
use crate::error::Result;
use crate::state::{Decoder, Encoder};

/// Writes the columns `cols` of `m`, in that order, as a [cols, n] buffer.
pub fn put_columns<B: Backend>(
    be: &B,
    enc: &mut Encoder<'_>,
    name: &str,
    m: &B::Matrix,
    cols: &[usize],
) {
    enc.put_rows::<B::Elem>(name, cols.len(), be.ndim(), |i, out| {
        be.column_to_host(m, cols[i], out)
    });
}

/// Reads a buffer written by [`put_columns`] into the columns first.. of `m`, growing it to
/// hold at least `min_columns`; returns how many columns it held.
pub fn get_columns<B: Backend>(
    be: &B,
    dec: &mut Decoder<'_>,
    name: &str,
    (m, first): (&mut B::Matrix, usize),
    min_columns: usize,
) -> Result<usize> {
    let count = dec.shape(name).map_or(0, |shape| shape[0]);
    let want = (first + count).max(min_columns);
    if be.matrix_columns(m) < want {
        be.grow_matrix(m, want)?;
    }
    dec.get_rows::<B::Elem>(name, be.ndim(), |i, data| {
        be.column_from_host(data, m, first + i)
    })
}
