//! Tall QR of n×p blocks (p ≪ n) from Gram matrices, for every backend.
//!
//! One CholeskyQR pass: G = AᵀA (f64), G = RᵀR (Cholesky, f64), A ← A·R⁻¹. Because the Gram
//! matrix is accumulated in f64 even for f32 data, one pass already resolves condition numbers
//! up to ~1e6; the second pass (CholeskyQR2) then makes Q orthonormal to rounding. A pass whose
//! Gram matrix was within [`CONVERGED`] of I is the last one; otherwise passes repeat (at most
//! [`MAX_PASSES`]), so nearly rank-deficient input gets a third pass.
//!
//! Dependent columns: a column whose pivot is ≤ [`DROP`]·‖a_j‖² — its part orthogonal to the
//! previous columns is below 1e-6 of its norm, at the edge of what a Gram matrix resolves — is
//! dropped: its row of R is zero (its coefficients on the previous columns stay), so A = Q·R
//! holds up to that part, and its column of Q becomes zero or, with `complete`, an orthonormal
//! completion (Gaussian columns projected off the others and orthonormalized), as Householder
//! QR would give. faer's `Mat::qr` is not used: in f32 it is wrong above 2¹⁹ rows
//! (docs/design.md, "Dependency notes", item 1).

use super::Backend;
use crate::linalg::{cholesky_dropping, mul, upper_inverse};
use faer::Mat;

/// Relative pivot below which a column is dependent (relative new content 1e-6).
const DROP: f64 = 1e-12;
/// A pass whose input Gram matrix is within this of I (max entry) leaves Q orthonormal to rounding.
const CONVERGED: f64 = 1e-2;
const MAX_PASSES: usize = 4;
/// Attempts at completing dependent columns with fresh Gaussian columns.
const COMPLETION_ATTEMPTS: u64 = 3;
/// Stream key of the completion columns (any fixed value: the result must be deterministic).
const COMPLETION_KEY: u64 = 0x51a7_c0de_0f0d_d15c;

pub fn tall_qr<B: Backend>(be: &B, m: &mut B::Matrix, cols: &[usize], complete: bool) -> Mat<f64> {
    let p = cols.len();
    assert!(
        p <= be.global_ndim(),
        "tall_qr: {p} columns of length {}",
        be.global_ndim()
    );
    let mut r = Mat::identity(p, p);
    let kept = cholesky_passes(be, m, cols, (0..p).collect(), &mut r);
    if complete && kept.len() < p {
        complete_columns(be, m, cols, kept);
    }
    r
}

/// Orthonormalizes the columns `cols[active]` in place by CholeskyQR passes, accumulating the
/// factors into the rows `active` of `r` (A = Q·r). Returns the positions that stayed
/// independent; the dropped ones are zero columns with zero rows in `r`.
fn cholesky_passes<B: Backend>(
    be: &B,
    m: &mut B::Matrix,
    cols: &[usize],
    mut active: Vec<usize>,
    r: &mut Mat<f64>,
) -> Vec<usize> {
    for _ in 0..MAX_PASSES {
        if active.is_empty() {
            break;
        }
        let physical: Vec<usize> = active.iter().map(|&i| cols[i]).collect();
        let g = be.gram(m, &physical);
        let a = active.len();
        let distance = (0..a)
            .flat_map(|i| (0..a).map(move |j| (i, j)))
            .map(|(i, j)| (g[(i, j)] - if i == j { 1.0 } else { 0.0 }).abs())
            .fold(0.0, f64::max);
        let floor: Vec<f64> = (0..a).map(|j| DROP * g[(j, j)]).collect();
        let factor = cholesky_dropping(&g, &floor);
        // Q_kept ← A_kept·R_kept⁻¹ (a column of Q only involves the kept columns up to it);
        // dropped columns ← 0.
        let inverse = upper_inverse(&factor.r, &factor.kept);
        let mut t = Mat::<f64>::zeros(factor.kept.len(), a);
        for (jk, &j) in factor.kept.iter().enumerate() {
            for i in 0..=jk {
                t[(i, j)] = inverse[(i, jk)];
            }
        }
        let inputs: Vec<usize> = factor.kept.iter().map(|&j| physical[j]).collect();
        be.combine_columns(m, &inputs, t.as_ref(), &physical, None);
        let rows = Mat::from_fn(a, r.ncols(), |i, j| r[(active[i], j)]);
        let updated = mul(factor.r.as_ref(), rows.as_ref());
        for (i, &row) in active.iter().enumerate() {
            for j in 0..r.ncols() {
                r[(row, j)] = updated[(i, j)];
            }
        }
        active = factor.kept.iter().map(|&j| active[j]).collect();
        if distance <= CONVERGED {
            break;
        }
    }
    active
}

/// Fills the dropped columns (all but `kept`) with Gaussian columns orthogonal to the kept
/// ones and to each other. Leaves zero columns only if every attempt fails (p ≤ n makes that a
/// probability-zero event).
fn complete_columns<B: Backend>(be: &B, m: &mut B::Matrix, cols: &[usize], mut kept: Vec<usize>) {
    let p = cols.len();
    for attempt in 0..COMPLETION_ATTEMPTS {
        let missing: Vec<usize> = (0..p).filter(|i| !kept.contains(i)).collect();
        if missing.is_empty() {
            return;
        }
        let fill: Vec<usize> = missing.iter().map(|&i| cols[i]).collect();
        be.gaussian_columns(m, &fill, COMPLETION_KEY.wrapping_add(attempt));
        let basis: Vec<usize> = kept.iter().map(|&i| cols[i]).collect();
        let inputs: Vec<usize> = basis.iter().chain(&fill).copied().collect();
        // Twice is enough: X ← X − Q(QᵀX), two times.
        for _ in 0..2 {
            let overlap = be.cross(m, &basis, &fill);
            let t = Mat::from_fn(inputs.len(), fill.len(), |i, j| match i < basis.len() {
                true => -overlap[(i, j)],
                false => f64::from(u8::from(i - basis.len() == j)),
            });
            be.combine_columns(m, &inputs, t.as_ref(), &fill, None);
        }
        let mut scratch = Mat::identity(p, p);
        kept.extend(cholesky_passes(be, m, cols, missing, &mut scratch));
    }
}
