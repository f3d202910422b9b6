//! Reprojection rules of ALGORITHM.md §5.2, given C = Q_newᵀQ_old (k_new × k_old).

use faer::Mat;

/// First moment: m ← C·m.
pub fn first_moment(c: &Mat<f64>, m: &[f64]) -> Vec<f64> {
    crate::linalg::mat_vec(c.as_ref(), m)
}

/// Diagonal second moment: v ← diag(C·diag(v)·Cᵀ) = (C∘C)·v (exact, O(k²)).
pub fn second_moment(c: &Mat<f64>, v: &[f64]) -> Vec<f64> {
    assert_eq!(c.ncols(), v.len(), "second_moment: dimensions");
    (0..c.nrows())
        .map(|a| {
            v.iter()
                .enumerate()
                .map(|(i, vi)| c[(a, i)] * c[(a, i)] * vi)
                .sum()
        })
        .collect()
}

/// Euclidean norm.
pub fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}
