//! Regularization of an eigendecomposition (docs/algorithm.md §4.1, with the §7 item 7 fix).

use faer::Mat;

/// How to clean an ascending eigendecomposition before it is used as a basis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Regularization {
    /// Keep at most this many of the largest eigenpairs.
    pub truncate: Option<usize>,
    /// Keep λ > tol·λ_max (relative to the largest signed eigenvalue).
    pub tol: Option<f64>,
    /// Added to every kept eigenvalue.
    pub damping: f64,
    /// Added to every kept eigenvalue, times λ_max.
    pub rdamping: f64,
    /// Replace λ by |λ| (and re-sort) before anything else.
    pub abs: bool,
}

/// Applies `reg` to ascending eigenpairs (λ, V). Returns the kept eigenvalues (ascending, damped)
/// and the matching columns of V, or `None` when no eigenvalue is finite. An empty result
/// (k = 0) is valid: for example a zero gradient.
///
/// Order of operations (reference semantics): drop non-finite pairs; take λ_max (signed);
/// keep λ > tol·λ_max; keep the last `truncate`; add damping + rdamping·λ_max.
/// Fix over the reference: `abs` re-sorts, so "largest" stays the last entry.
pub fn regularize_eigen(
    values: &[f64],
    vectors: &Mat<f64>,
    reg: &Regularization,
) -> Option<(Vec<f64>, Mat<f64>)> {
    let mut pairs: Vec<(f64, usize)> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, &v)| (if reg.abs { v.abs() } else { v }, i))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    if reg.abs {
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let lambda_max = pairs[pairs.len() - 1].0;
    if let Some(tol) = reg.tol {
        pairs.retain(|(v, _)| *v > tol * lambda_max);
    }
    if let Some(t) = reg.truncate {
        let drop = pairs.len().saturating_sub(t);
        pairs.drain(..drop);
    }
    let shift = reg.damping + reg.rdamping * lambda_max;
    let kept: Vec<f64> = pairs.iter().map(|(v, _)| v + shift).collect();
    let cols = Mat::from_fn(vectors.nrows(), pairs.len(), |i, j| {
        vectors[(i, pairs[j].1)]
    });
    Some((kept, cols))
}
