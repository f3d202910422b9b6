//! Functions of a symmetric matrix through its regularized eigendecomposition.

use super::{Regularization, mul, regularize_eigen, symmetric_eigen};
use faer::Mat;

/// V·diag(f(λ))·Vᵀ over the eigenpairs (λ, V) of (A + Aᵀ)/2 that `reg` keeps (dropped pairs
/// contribute nothing, as in a pseudo-inverse). `None` when the eigensolver fails, nothing is
/// kept, or the result is not finite: the caller falls back to something diagonal.
pub fn matrix_function(
    a: &Mat<f64>,
    reg: &Regularization,
    f: impl Fn(f64) -> f64,
) -> Option<Mat<f64>> {
    let (values, vectors) = symmetric_eigen(a).ok()?;
    let (kept, v) = regularize_eigen(&values, &vectors, reg)?;
    if kept.is_empty() {
        return None;
    }
    let scaled = Mat::from_fn(v.nrows(), v.ncols(), |i, j| v[(i, j)] * f(kept[j]));
    let out = mul(scaled.as_ref(), v.transpose());
    let finite = out.col_iter().all(|c| c.iter().all(|x| x.is_finite()));
    finite.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_f_to_the_kept_eigenvalues_only() {
        // A = 4·vvᵀ + 1·wwᵀ with v, w orthonormal.
        let (v, w) = ([0.6, 0.8], [-0.8, 0.6]);
        let a = Mat::from_fn(2, 2, |i, j| 4.0 * v[i] * v[j] + w[i] * w[j]);
        let keep_all = Regularization {
            truncate: None,
            tol: Some(0.0),
            damping: 0.0,
            rdamping: 0.0,
            abs: false,
        };
        let root = matrix_function(&a, &keep_all, f64::sqrt).unwrap();
        let want = |i: usize, j: usize| 2.0 * v[i] * v[j] + w[i] * w[j];
        // λ = 1 is not above 0.5·λ_max = 2: dropped, as in a pseudo-inverse.
        let top = Regularization {
            tol: Some(0.5),
            ..keep_all
        };
        let inverse = matrix_function(&a, &top, |l| 1.0 / l).unwrap();
        for i in 0..2 {
            for j in 0..2 {
                assert!((root[(i, j)] - want(i, j)).abs() < 1e-15);
                assert!((inverse[(i, j)] - 0.25 * v[i] * v[j]).abs() < 1e-15);
            }
        }
        assert!(matrix_function(&Mat::zeros(2, 2), &top, |l| 1.0 / l).is_none());
    }
}
