//! Symmetric eigendecomposition, ascending.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::evd::{self, ComputeEigenvectors};
use faer::{Mat, Par};
use std::fmt;

/// Why an eigendecomposition failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EigenError {
    /// The input had a NaN or Inf entry.
    NonFinite,
    /// The QR iteration did not converge.
    NoConvergence,
}

impl fmt::Display for EigenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EigenError::NonFinite => "the matrix has a non-finite entry",
            EigenError::NoConvergence => "the eigensolver did not converge",
        })
    }
}

/// Eigenvalues (ascending) and eigenvectors (columns) of the symmetric part (A + Aᵀ)/2 of a
/// square matrix. Symmetrizing first makes the result independent of which triangle a solver
/// reads (docs/algorithm.md §7 item 23).
pub fn symmetric_eigen(a: &Mat<f64>) -> Result<(Vec<f64>, Mat<f64>), EigenError> {
    let n = a.nrows();
    assert_eq!(n, a.ncols(), "symmetric_eigen: square input");
    let sym = Mat::from_fn(n, n, |i, j| 0.5 * (a[(i, j)] + a[(j, i)]));
    if !sym.col_iter().all(|c| c.iter().all(|x| x.is_finite())) {
        return Err(EigenError::NonFinite);
    }
    let mut values = faer::diag::Diag::<f64>::zeros(n);
    let mut vectors = Mat::<f64>::zeros(n, n);
    let par = Par::Seq;
    let mut mem = MemBuffer::new(evd::self_adjoint_evd_scratch::<f64>(
        n,
        ComputeEigenvectors::Yes,
        par,
        Default::default(),
    ));
    evd::self_adjoint_evd(
        sym.as_ref(),
        values.as_mut(),
        Some(vectors.as_mut()),
        par,
        MemStack::new(&mut mem),
        Default::default(),
    )
    .map_err(|_| EigenError::NoConvergence)?;
    let values: Vec<f64> = values.column_vector().iter().copied().collect();
    if values.iter().any(|v| !v.is_finite()) {
        return Err(EigenError::NoConvergence);
    }
    Ok((values, vectors))
}
