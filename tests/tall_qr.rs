//! The backend's tall QR (CholeskyQR2 with dropping and completion) on 1e6 × 32 f32 matrices —
//! above the 2^19 rows where faer's f32 QR goes wrong (docs/design.md, "Dependency notes",
//! item 1): well-conditioned, nearly rank-deficient and exactly rank-deficient input.
//! ‖QR − A‖_F/‖A‖_F and max|QᵀQ − I| stay below 1e-5 (errors are measured in f64 on the host).
//! The two hard cases always run at 1e6 rows; the easy ones use 1e5 rows in debug builds (the
//! dev profile is opt-level 1), so the test takes a few seconds in both profiles.

use faer::Mat;
use lre::backend::{Backend, Cpu};

const N: usize = 1_000_000;
/// Rows of the easy cases: 1e6 in release, 1e5 in debug builds.
const N_EASY: usize = if cfg!(debug_assertions) { 100_000 } else { N };
const P: usize = 32;
const TOL: f64 = 1e-5;

type Be = Cpu<f32>;
type M = <Be as Backend>::Matrix;

fn columns(be: &Be, m: &M) -> Vec<Vec<f32>> {
    let n = be.ndim();
    (0..P)
        .map(|j| {
            let mut c = vec![0.0f32; n];
            be.column_to_host(m, j, &mut c);
            c
        })
        .collect()
}

/// Column j ← Σ_i A[:, i]·t[i] (a test matrix built from Gaussian columns).
fn set_combination(be: &Be, m: &mut M, j: usize, terms: &[(usize, f64)]) {
    let inputs: Vec<usize> = terms.iter().map(|t| t.0).collect();
    let t = Mat::from_fn(terms.len(), 1, |i, _| terms[i].1);
    be.combine_columns(m, &inputs, t.as_ref(), &[j], None);
}

/// (‖QR − A‖_F/‖A‖_F, max|QᵀQ − I| over the nonzero columns of Q). QR and QᵀQ are formed by
/// the backend's `combine_columns` and `gram`, which tests/backend_columns.rs checks against
/// naive loops; the comparison with A is in f64 here.
fn errors(be: &Be, q: &mut M, a: &[Vec<f32>], r: &Mat<f64>) -> (f64, f64) {
    let all: Vec<usize> = (0..P).collect();
    let g = be.gram(q, &all);
    let live: Vec<usize> = (0..P).filter(|&j| g[(j, j)] != 0.0).collect();
    let mut orthogonality = 0.0f64;
    for &i in &live {
        for &j in &live {
            orthogonality = orthogonality.max((g[(i, j)] - if i == j { 1.0 } else { 0.0 }).abs());
        }
    }
    // Q·R in f64 per entry, into the columns P..2P (rounded to f32 once, like A itself).
    be.grow_matrix(q, 2 * P).unwrap();
    let products: Vec<usize> = (P..2 * P).collect();
    be.combine_columns(q, &all, r.as_ref(), &products, None);
    let (mut residual, mut norm) = (0.0, 0.0);
    let mut qr = vec![0.0f32; be.ndim()];
    for (j, aj) in a.iter().enumerate() {
        be.column_to_host(q, P + j, &mut qr);
        for (x, y) in qr.iter().zip(aj) {
            let (x, y) = (f64::from(*x), f64::from(*y));
            residual += (x - y) * (x - y);
            norm += y * y;
        }
    }
    ((residual / norm).sqrt(), orthogonality)
}

fn check(
    name: &str,
    n: usize,
    build: impl Fn(&Be, &mut M),
    complete: bool,
) -> (Mat<f64>, Vec<Vec<f32>>) {
    let be = Be::new(n, 1);
    let mut m = be.matrix(P).unwrap();
    let all: Vec<usize> = (0..P).collect();
    be.gaussian_columns(&mut m, &all, 11);
    build(&be, &mut m);
    let a = columns(&be, &m);
    let r = be.tall_qr(&mut m, &all, complete);
    for i in 0..P {
        for j in 0..i {
            assert_eq!(r[(i, j)], 0.0, "{name}: R is upper triangular");
        }
    }
    let (residual, orthogonality) = errors(&be, &mut m, &a, &r);
    assert!(residual < TOL, "{name}: ‖QR − A‖/‖A‖ = {residual:e}");
    assert!(
        orthogonality < TOL,
        "{name}: max|QᵀQ − I| = {orthogonality:e}"
    );
    (r, columns(&be, &m))
}

#[test]
fn tall_qr_of_a_million_rows_in_f32() {
    check("gaussian", N_EASY, |_, _| {}, true);

    // Nearly rank-deficient: columns scaled over four orders of magnitude (condition ~1e4), one
    // column with only 1e-4 of new content (kept) and one with 1e-7 (below the 1e-6 cut: its
    // row of R is zero and Q gets a completion; the residual is that 1e-7).
    let (r, _) = check(
        "nearly rank-deficient",
        N,
        |be, m| {
            for j in 0..P {
                set_combination(be, m, j, &[(j, 10f64.powf(-(j as f64) / 8.0))]);
            }
            set_combination(be, m, 5, &[(4, 1.0), (20, 1e-4)]);
            set_combination(be, m, 10, &[(3, 1.0), (11, 1e-7)]);
        },
        true,
    );
    assert!(r[(5, 5)] != 0.0, "1e-4 of new content is kept");
    assert_eq!(r[(10, 10)], 0.0, "1e-7 of new content is dropped");

    // Exactly dependent: a repeated column and a zero column.
    let exact = |be: &Be, m: &mut M| {
        set_combination(be, m, 7, &[(2, 1.0)]);
        set_combination(be, m, 8, &[]);
    };
    check("rank-deficient, completed", N, exact, true);
    let (r, q) = check("rank-deficient, not completed", N_EASY, exact, false);
    for j in [7, 8] {
        assert!((0..P).all(|c| r[(j, c)] == 0.0), "row {j} of R is zero");
        assert!(q[j].iter().all(|&v| v == 0.0), "column {j} of Q is zero");
    }
}
