//! Reprojection rules of docs/algorithm.md §5.2, given C = Q_newᵀQ_old (k_new × k_old).

use crate::linalg::{mat_vec, mul};
use faer::Mat;

/// First moment: m ← C·m.
pub fn first_moment(c: &Mat<f64>, m: &[f64]) -> Vec<f64> {
    mat_vec(c.as_ref(), m)
}

/// Diagonal second moment: v ← diag(C·diag(v)·Cᵀ) = (C∘C)·v (exact, O(k²)).
pub fn second_moment(c: &Mat<f64>, v: &[f64]) -> Vec<f64> {
    powered(c, v, |x| x * x)
}

/// Diagonal third moment: w ← the diagonal of the reprojected diagonal 3-tensor,
/// w_a = Σ_i C_ai³·w_i = (C∘C∘C)·w (exact, O(k²); the reference forms the k×k×k tensor).
pub fn third_moment(c: &Mat<f64>, w: &[f64]) -> Vec<f64> {
    powered(c, w, |x| x * x * x)
}

/// (p(C))·v with p applied to every entry of C.
fn powered(c: &Mat<f64>, v: &[f64], p: impl Fn(f64) -> f64) -> Vec<f64> {
    assert_eq!(c.ncols(), v.len(), "reprojection: dimensions");
    (0..c.nrows())
        .map(|a| v.iter().enumerate().map(|(i, vi)| p(c[(a, i)]) * vi).sum())
        .collect()
}

/// Full matrix: Σ ← C·Σ·Cᵀ (directions new to the basis start with zero entries).
pub fn matrix(c: &Mat<f64>, s: &Mat<f64>) -> Mat<f64> {
    mul(mul(c.as_ref(), s.as_ref()).as_ref(), c.transpose())
}

/// The AMSGrad diagonal maximum d of a full-matrix member: diag(C·Σ'·Cᵀ) where Σ' is Σ with its
/// diagonal replaced by d (taken from Σ before Σ itself is reprojected).
pub fn matrix_diagonal(c: &Mat<f64>, s: &Mat<f64>, d: &[f64]) -> Vec<f64> {
    let replaced = with_diagonal(s, d);
    let cs = mul(c.as_ref(), replaced.as_ref());
    (0..c.nrows())
        .map(|a| (0..c.ncols()).map(|i| cs[(a, i)] * c[(a, i)]).sum())
        .collect()
}

/// Σ with its diagonal replaced by d.
pub fn with_diagonal(s: &Mat<f64>, d: &[f64]) -> Mat<f64> {
    Mat::from_fn(
        s.nrows(),
        s.ncols(),
        |i, j| if i == j { d[i] } else { s[(i, j)] },
    )
}

/// Columns (a projected Jacobian, k × b): J ← C·J.
pub fn columns(c: &Mat<f64>, j: &Mat<f64>) -> Mat<f64> {
    mul(c.as_ref(), j.as_ref())
}

/// Euclidean norm.
pub fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}
