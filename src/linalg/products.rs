//! Small matrix products, sequential for determinism (faer's operators may use rayon).

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par};

/// A·B.
pub fn mul(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    let mut out = Mat::zeros(a.nrows(), b.ncols());
    matmul(out.as_mut(), Accum::Replace, a, b, 1.0, Par::Seq);
    out
}

/// Aᵀ·B.
pub fn mul_tn(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Mat<f64> {
    mul(a.transpose(), b)
}

/// A·x.
pub fn mat_vec(a: MatRef<'_, f64>, x: &[f64]) -> Vec<f64> {
    assert_eq!(a.ncols(), x.len(), "mat_vec: dimensions");
    let mut out = vec![0.0; a.nrows()];
    for (j, xj) in x.iter().enumerate() {
        for (o, aij) in out.iter_mut().zip(a.col(j).iter()) {
            *o += aij * xj;
        }
    }
    out
}

/// Aᵀ·x.
pub fn mat_t_vec(a: MatRef<'_, f64>, x: &[f64]) -> Vec<f64> {
    assert_eq!(a.nrows(), x.len(), "mat_t_vec: dimensions");
    (0..a.ncols())
        .map(|j| a.col(j).iter().zip(x).map(|(aij, xi)| aij * xi).sum())
        .collect()
}
