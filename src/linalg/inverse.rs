//! Inverse of a small square matrix by LU with partial pivoting.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::lu::partial_pivoting::{factor, inverse as lu_inverse};
use faer::{Mat, Par};

/// A⁻¹, or `None` when A is singular (an exactly zero pivot, as LAPACK's `getri` reports) or the
/// result is not finite.
pub fn inverse(a: &Mat<f64>) -> Option<Mat<f64>> {
    let n = a.nrows();
    assert_eq!(n, a.ncols(), "inverse: square input");
    let par = Par::Seq;
    let mut lu = a.clone();
    let (mut perm, mut perm_inv) = (vec![0usize; n], vec![0usize; n]);
    let mut mem = MemBuffer::new(
        factor::lu_in_place_scratch::<usize, f64>(n, n, par, Default::default())
            .or(lu_inverse::inverse_scratch::<usize, f64>(n, par)),
    );
    let (_, row_perm) = factor::lu_in_place(
        lu.as_mut(),
        &mut perm,
        &mut perm_inv,
        par,
        MemStack::new(&mut mem),
        Default::default(),
    );
    if (0..n).any(|i| lu[(i, i)] == 0.0) {
        return None;
    }
    let lower = Mat::from_fn(n, n, |i, j| match i.cmp(&j) {
        std::cmp::Ordering::Greater => lu[(i, j)],
        std::cmp::Ordering::Equal => 1.0,
        std::cmp::Ordering::Less => 0.0,
    });
    let upper = Mat::from_fn(n, n, |i, j| if i <= j { lu[(i, j)] } else { 0.0 });
    let mut out = Mat::zeros(n, n);
    lu_inverse::inverse(
        out.as_mut(),
        lower.as_ref(),
        upper.as_ref(),
        row_perm,
        par,
        MemStack::new(&mut mem),
    );
    let finite = out.col_iter().all(|c| c.iter().all(|x| x.is_finite()));
    finite.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverts_and_detects_singularity() {
        // Needs a row swap (a zero leading entry).
        let a = Mat::from_fn(3, 3, |i, j| {
            [[0.0, 2.0, 1.0], [1.0, 1.0, 0.0], [3.0, 0.0, 4.0]][i][j]
        });
        let inv = inverse(&a).expect("invertible");
        let product = crate::linalg::mul(a.as_ref(), inv.as_ref());
        for i in 0..3 {
            for j in 0..3 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((product[(i, j)] - want).abs() < 1e-14, "{i},{j}");
            }
        }
        let singular = Mat::from_fn(2, 2, |i, j| [[1.0, 2.0], [2.0, 4.0]][i][j]);
        assert!(inverse(&singular).is_none());
        assert_eq!(inverse(&Mat::zeros(0, 0)).map(|m| m.nrows()), Some(0));
    }
}
