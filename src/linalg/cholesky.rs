//! Cholesky factorization of a Gram matrix that drops dependent columns, and the inverse of the
//! resulting triangle (the small half of CholeskyQR and of block Gram–Schmidt).

use faer::Mat;

/// G = RᵀR over the independent columns of a Gram matrix G = AᵀA, factored in column order.
///
/// Column j is *dependent* when its pivot — the squared norm of its part orthogonal to the
/// previous independent columns — is not above `floor[j]` (or is not finite). Its R column
/// keeps the coefficients on the previous columns, its diagonal entry and row are zero, and
/// later columns are factored without it. So A = Q·R holds up to the dropped parts, with Q the
/// orthonormal basis of the independent columns (dependent columns of Q are free).
pub struct DroppingCholesky {
    /// p×p, upper triangular.
    pub r: Mat<f64>,
    /// Positions of the independent columns, ascending.
    pub kept: Vec<usize>,
}

/// Factors the symmetric `g` (p×p; only the upper triangle is read), dropping columns whose
/// pivot is ≤ `floor[j]`.
pub fn cholesky_dropping(g: &Mat<f64>, floor: &[f64]) -> DroppingCholesky {
    let p = g.nrows();
    assert_eq!(
        (g.ncols(), floor.len()),
        (p, p),
        "cholesky_dropping: dimensions"
    );
    let mut r = Mat::<f64>::zeros(p, p);
    let mut kept = Vec::with_capacity(p);
    for j in 0..p {
        for (at, &i) in kept.iter().enumerate() {
            let mut s = g[(i, j)];
            for &l in &kept[..at] {
                s -= r[(l, i)] * r[(l, j)];
            }
            r[(i, j)] = s / r[(i, i)];
        }
        let pivot = kept
            .iter()
            .fold(g[(j, j)], |d, &i| d - r[(i, j)] * r[(i, j)]);
        // A NaN pivot or floor compares false: dependent.
        let independent = pivot.is_finite() && pivot > floor[j];
        if !independent {
            continue;
        }
        r[(j, j)] = pivot.sqrt();
        kept.push(j);
    }
    DroppingCholesky { r, kept }
}

/// (R restricted to the rows and columns `kept`)⁻¹: the inverse of an upper-triangular matrix
/// with a nonzero diagonal, by back substitution (|kept|×|kept|).
pub fn upper_inverse(r: &Mat<f64>, kept: &[usize]) -> Mat<f64> {
    let k = kept.len();
    let mut inv = Mat::<f64>::zeros(k, k);
    for col in 0..k {
        inv[(col, col)] = 1.0 / r[(kept[col], kept[col])];
        for row in (0..col).rev() {
            let s: f64 = (row + 1..=col)
                .map(|l| r[(kept[row], kept[l])] * inv[(l, col)])
                .sum();
            inv[(row, col)] = -s / r[(kept[row], kept[row])];
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::{mul, mul_tn};

    #[test]
    fn factors_and_inverts_a_gram_matrix() {
        let a = Mat::from_fn(7, 4, |i, j| {
            ((i * 3 + j * 5) % 7) as f64 - 2.5 + (i == j) as u8 as f64
        });
        let g = mul_tn(a.as_ref(), a.as_ref());
        let f = cholesky_dropping(&g, &[1e-12; 4]);
        assert_eq!(f.kept, vec![0, 1, 2, 3]);
        let back = mul_tn(f.r.as_ref(), f.r.as_ref());
        let inv = upper_inverse(&f.r, &f.kept);
        let eye = mul(f.r.as_ref(), inv.as_ref());
        for i in 0..4 {
            for j in 0..4 {
                assert!((back[(i, j)] - g[(i, j)]).abs() < 1e-12 * g[(i, i)].max(1.0));
                assert!((eye[(i, j)] - (i == j) as u8 as f64).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn drops_a_repeated_column_and_keeps_its_coefficients() {
        // Columns 0 and 2 are equal: column 2 is dependent, with coefficient r_00 on q_0.
        let a = Mat::from_fn(5, 3, |i, j| match j {
            1 => (i * i) as f64,
            _ => i as f64 + 1.0,
        });
        let g = mul_tn(a.as_ref(), a.as_ref());
        let f = cholesky_dropping(
            &g,
            &[1e-10 * g[(0, 0)], 1e-10 * g[(1, 1)], 1e-10 * g[(2, 2)]],
        );
        assert_eq!(f.kept, vec![0, 1]);
        assert!((f.r[(0, 2)] - f.r[(0, 0)]).abs() < 1e-12 * f.r[(0, 0)]);
        assert_eq!(f.r[(2, 2)], 0.0);
    }
}
