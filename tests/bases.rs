//! Every basis of docs/algorithm.md §3 beyond GGT against dense linear algebra on small n (f64):
//!
//! - bases with eigenvalues (eigen, low_rank, randomized_eigen, nystrom) against a dense n×n
//!   EMA with the same regularization, eigendecomposed every update: the handed-out
//!   eigenvalues agree to 1e-8·λ_max, the spanned subspaces (projectors QQᵀ) to 1e-7, and every
//!   column is an eigenvector of the dense matrix (residual ≤ 1e-7·λ_max); eigen also with
//!   several columns, β = none, signed α and asymmetric corrections Y·diag(α)·Zᵀ;
//! - common_directions against a dense Gram–Schmidt window (columns agree to 1e-9); random is
//!   the QR of the documented Gaussian stream and honors generate_freq; hebbian_learning (all
//!   three optimizers) converges to the dense principal subspace (projector within 0.1);
//! - for every basis after every update: QᵀQ = I to 1e-9 (adamg: 2e-6, its re-orthonormalization
//!   threshold), the change of basis C equals Q_newᵀQ_old formed densely from the explicit
//!   columns (1e-9), projections of the gradient (cached) and of a fresh vector equal Qᵀv (1e-9);
//! - f32 bases stay orthonormal to 1e-6 over 1500 updates; n < rank and n = 1 through the
//!   optimizer (ranks capped at n, nothing NaN); a zero first gradient; a convergence smoke test
//!   on a rotated quadratic (loss below 1e-3 of the start); a failed eigendecomposition keeps
//!   the previous basis.

mod common;
use common::Xorshift;

use faer::{Mat, Side};
use lre::CpuOptimizer;
use lre::backend::{Backend, Cpu};
use lre::basis::{self, Basis, Outcome, Source};
use lre::correction::Correction;
use lre::linalg::{Regularization, regularize_eigen};
use lre::spec::parse_component;

type Be = Cpu<f64>;

/// Agreement with the dense reference, relative to λ_max (eigenvalues, residuals).
const VALUE_TOL: f64 = 1e-8;
/// Agreement of subspaces (max entry of QQᵀ − Q_dQ_dᵀ) and eigenvector residuals.
const SPAN_TOL: f64 = 1e-7;
/// Orthonormality, change of basis and projections (the basis against itself).
const SELF_TOL: f64 = 1e-9;

fn build(spec: &str, be: &Be) -> Box<dyn Basis<Be>> {
    let c = parse_component(spec, &basis::FAMILY).unwrap();
    basis::build(&c, be).unwrap()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn offer(b: &mut dyn Basis<Be>, be: &Be, ys: &[Vec<f64>], alpha: &[f64]) -> Outcome {
    b.prepare(be, ys.len()).unwrap();
    let correction = Correction {
        columns: ys.iter().collect(),
        alpha: alpha.to_vec(),
        z: None,
        gradient_column: Some(ys.len() - 1),
    };
    b.update(be, &correction).unwrap()
}

/// The basis's columns, explicitly: Q·e_j through `add_unprojected`.
fn columns(b: &mut dyn Basis<Be>, be: &Be) -> Vec<Vec<f64>> {
    let k = b.rank().expect("a basis");
    (0..k)
        .map(|j| {
            let mut e = vec![0.0; k];
            e[j] = 1.0;
            let mut col = vec![0.0; be.ndim()];
            b.add_unprojected(be, &e, 1.0, &mut col);
            col
        })
        .collect()
}

/// Follows a basis through its updates and checks each against the basis itself: orthonormal
/// columns, C = Q_newᵀQ_old from the explicit columns, projections Qᵀv (the cached gradient
/// and a fresh vector).
struct Tracker {
    /// Tolerance of max|QᵀQ − I|.
    orthonormality: f64,
    previous: Option<Vec<Vec<f64>>>,
}

impl Tracker {
    fn new(orthonormality: f64) -> Self {
        Tracker {
            orthonormality,
            previous: None,
        }
    }

    /// Checks the basis after an update that returned `outcome`; returns its columns.
    fn observe(
        &mut self,
        (what, outcome): (&str, &Outcome),
        b: &mut dyn Basis<Be>,
        be: &Be,
        gradient: (usize, &[f64]),
        rng: &mut Xorshift,
    ) -> Vec<Vec<f64>> {
        let q = columns(b, be);
        let (orthonormality, previous) = (self.orthonormality, self.previous.as_ref());
        let (column, gradient) = gradient;
        for (i, a) in q.iter().enumerate() {
            for (j, c) in q.iter().enumerate() {
                let expected = if i == j { 1.0 } else { 0.0 };
                let diff = (dot(a, c) - expected).abs();
                assert!(
                    diff <= orthonormality,
                    "{what}: QᵀQ[{i},{j}] off by {diff:e}"
                );
            }
        }
        match (outcome, previous) {
            (Outcome::Changed(change), Some(old)) => {
                let c = change.change.as_ref().expect("C after the first basis");
                assert_eq!(
                    (c.nrows(), c.ncols()),
                    (q.len(), old.len()),
                    "{what}: C shape"
                );
                for (i, new) in q.iter().enumerate() {
                    for (j, o) in old.iter().enumerate() {
                        let diff = (c[(i, j)] - dot(new, o)).abs();
                        assert!(diff <= SELF_TOL, "{what}: C[{i},{j}] off by {diff:e}");
                    }
                }
            }
            (Outcome::Changed(change), None) => assert!(change.change.is_none(), "{what}: first C"),
            (Outcome::Unchanged { failure }, old) => {
                assert!(failure.is_none(), "{what}: failed: {failure:?}");
                assert_eq!(Some(&q.to_vec()), old, "{what}: unchanged basis");
            }
        }
        let v = rng.vector(be.ndim());
        let gradient = gradient.to_vec();
        for (name, x, source) in [
            (
                "gradient",
                &gradient,
                Source::CorrectionColumn(column, &gradient),
            ),
            ("vector", &v, Source::Vector(&v)),
        ] {
            let mut projected = Vec::new();
            b.project(be, source, &mut projected);
            assert_eq!(projected.len(), q.len(), "{what}: projection length");
            for (j, col) in q.iter().enumerate() {
                let diff = (projected[j] - dot(col, x)).abs();
                assert!(
                    diff <= SELF_TOL * (1.0 + dot(x, x).sqrt()),
                    "{what}: {name} projection {j}"
                );
            }
        }
        self.previous = Some(q.clone());
        q
    }
}

/// A dense n×n EMA of corrections, eigendecomposed and regularized like the bases with
/// eigenvalues (docs/algorithm.md §3.1, §3.3 with the §7 item 5 fixes).
struct DenseEma {
    /// Stored eigenpairs (un-debiased), ascending.
    vectors: Vec<Vec<f64>>,
    values: Vec<f64>,
    updates: u64,
    beta: Option<f64>,
    round1: Regularization,
    round2: Regularization,
}

impl DenseEma {
    fn matrix(&self, n: usize) -> Mat<f64> {
        Mat::from_fn(n, n, |i, j| {
            self.values
                .iter()
                .zip(&self.vectors)
                .map(|(l, q)| l * q[i] * q[j])
                .sum()
        })
    }

    /// A ← w_old·A + w_new·Σ_j α_j·y_j·z_jᵀ, symmetrized (z_j = y_j when `zs` is `None`).
    fn update(&mut self, ys: &[Vec<f64>], zs: Option<&[Vec<f64>]>, alpha: &[f64]) {
        let n = ys[0].len();
        let zs = zs.unwrap_or(ys);
        let (w_old, w_new) = self.beta.map_or((1.0, 1.0), |b| (b, 1.0 - b));
        let old = self.matrix(n);
        let a = Mat::from_fn(n, n, |i, j| {
            let new: f64 = (0..ys.len())
                .map(|c| 0.5 * alpha[c] * (ys[c][i] * zs[c][j] + zs[c][i] * ys[c][j]))
                .sum();
            w_old * old[(i, j)] + w_new * new
        });
        let evd = a.self_adjoint_eigen(Side::Lower).unwrap();
        let values: Vec<f64> = (0..n).map(|i| evd.S().column_vector()[i]).collect();
        let vectors = evd.U().to_owned();
        let (kept, v) = regularize_eigen(&values, &vectors, &self.round1).unwrap();
        self.values = kept;
        self.vectors = (0..v.ncols())
            .map(|j| v.col(j).iter().copied().collect())
            .collect();
        self.updates += 1;
    }

    /// The handed-out eigenpairs: round 2, debiased.
    fn handed_out(&self) -> (Vec<Vec<f64>>, Vec<f64>) {
        let bias = self.beta.map_or(1.0, |b| 1.0 - b.powf(self.updates as f64));
        let k = self.values.len();
        let stacked = Mat::from_fn(self.vectors.first().map_or(0, |v| v.len()), k, |i, j| {
            self.vectors[j][i]
        });
        let (values, v) = regularize_eigen(&self.values, &stacked, &self.round2).unwrap();
        let vectors = (0..v.ncols())
            .map(|j| v.col(j).iter().copied().collect())
            .collect();
        (vectors, values.iter().map(|x| x / bias).collect())
    }
}

/// Low-rank-plus-noise gradients with well-separated principal directions (so eigenvalues do
/// not cross and truncation at the rank is well defined).
fn gradient(rng: &mut Xorshift, directions: &[Vec<f64>], noise: f64) -> Vec<f64> {
    let n = directions[0].len();
    let mut g: Vec<f64> = rng.vector(n).iter().map(|x| noise * x).collect();
    for (c, d) in directions.iter().enumerate() {
        let scale = 0.5f64.powi(c as i32) * (1.0 + rng.uniform());
        g.iter_mut().zip(d).for_each(|(x, di)| *x += scale * di);
    }
    g
}

/// Runs a basis with eigenvalues against `DenseEma` for `steps` updates of `width` columns
/// with weights `alpha`.
/// Runs a basis with eigenvalues against `DenseEma` for `steps` updates whose columns have
/// the weights `alphas` (and, if `asymmetric`, a Z part: the correction Y·diag(α)·Zᵀ).
fn against_dense(
    spec: &str,
    (n, steps): (usize, usize),
    alphas: &[f64],
    asymmetric: bool,
    dense: &mut DenseEma,
) {
    let be = Be::new(n, 1);
    let mut b = build(spec, &be);
    let width = alphas.len();
    let mut rng = Xorshift(n as u64 * 131 + width as u64);
    let directions = common::orthonormal(&mut rng, n, 6);
    let mut tracker = Tracker::new(SELF_TOL);
    for step in 0..steps {
        let mut draw = || -> Vec<Vec<f64>> {
            (0..width)
                .map(|_| gradient(&mut rng, &directions, 1e-3))
                .collect()
        };
        let ys = draw();
        let zs = asymmetric.then(draw);
        b.prepare(&be, width).unwrap();
        let correction = Correction {
            columns: ys.iter().collect(),
            alpha: alphas.to_vec(),
            z: zs.as_ref().map(|z| z.iter().collect()),
            gradient_column: Some(width - 1),
        };
        let outcome = b.update(&be, &correction).unwrap();
        dense.update(&ys, zs.as_deref(), alphas);
        let what = format!("{spec}, step {step}");
        let last = (width - 1, ys[width - 1].as_slice());
        let q = tracker.observe((&what, &outcome), b.as_mut(), &be, last, &mut rng);
        let (dense_q, dense_values) = dense.handed_out();
        let values = b.eigenvalues().unwrap().to_vec();
        assert_eq!(values.len(), dense_values.len(), "{what}: rank");
        let top = dense_values
            .last()
            .copied()
            .unwrap_or(1.0)
            .abs()
            .max(1e-300);
        for (a, d) in values.iter().zip(&dense_values) {
            assert!(
                (a - d).abs() <= VALUE_TOL * top,
                "{what}: eigenvalue {a} vs dense {d}"
            );
        }
        for i in 0..n {
            for j in 0..n {
                let p: f64 = q.iter().map(|c| c[i] * c[j]).sum();
                let pd: f64 = dense_q.iter().map(|c| c[i] * c[j]).sum();
                assert!(
                    (p - pd).abs() <= SPAN_TOL,
                    "{what}: projector ({i},{j}) {p} vs {pd}"
                );
            }
        }
        let a = dense.matrix(n);
        let stored_top = dense
            .values
            .last()
            .copied()
            .unwrap_or(1.0)
            .abs()
            .max(1e-300);
        for col in &q {
            let ac: Vec<f64> = (0..n)
                .map(|i| (0..n).map(|j| a[(i, j)] * col[j]).sum())
                .collect();
            let rayleigh = dot(col, &ac);
            let residual: f64 = ac
                .iter()
                .zip(col)
                .map(|(x, c)| (x - rayleigh * c).powi(2))
                .sum();
            assert!(
                residual.sqrt() <= SPAN_TOL * stored_top,
                "{what}: not an eigenvector"
            );
        }
    }
}

/// The dense reference for a basis with `rank`, β, eig_tol, update_damping and `abs`.
fn dense_for(
    rank: usize,
    beta: Option<f64>,
    (eig_tol, update_damping): (Option<f64>, f64),
    abs: bool,
) -> DenseEma {
    DenseEma {
        vectors: Vec::new(),
        values: Vec::new(),
        updates: 0,
        beta,
        round1: Regularization {
            truncate: Some(rank),
            tol: eig_tol,
            damping: 0.0,
            rdamping: 0.0,
            abs,
        },
        round2: Regularization {
            truncate: None,
            tol: None,
            damping: update_damping,
            rdamping: 0.0,
            abs: false,
        },
    }
}

#[test]
fn eigen_matches_a_dense_ema() {
    // Compactions happen every ~rank updates; rank 4 of 6 signal directions exercises truncation.
    let mut dense = dense_for(4, Some(0.99), (Some(1e-4), 1e-4), false);
    against_dense("eigen(rank=4)", (30, 120), &[1.0], false, &mut dense);
    // Several columns at once, β = none (a plain sum), rank above n (capped), a full-rank
    // accumulator (n = 10 < 3·40 columns), and a tiny eig_tol that only drops round-off.
    let spec = "eigen(rank=12, beta=none, eig_tol=1e-12, update_damping=0)";
    let mut dense = dense_for(10, None, (Some(1e-12), 0.0), false);
    against_dense(spec, (10, 40), &[0.5; 3], false, &mut dense);
}

#[test]
fn eigen_handles_signed_and_asymmetric_corrections() {
    // Y·diag(α)·Zᵀ with α = (1, −0.7) enters as its symmetric part ½(Y·D·Zᵀ + Z·D·Yᵀ): an
    // indefinite accumulator; with abs the largest |λ| are kept (re-sorted), eig_tol drops
    // round-off only.
    let spec = "eigen(rank=6, beta=0.9, abs=true, eig_tol=1e-10)";
    let mut dense = dense_for(6, Some(0.9), (Some(1e-10), 1e-4), true);
    against_dense(spec, (16, 60), &[1.0, -0.7], true, &mut dense);
}

#[test]
fn low_rank_matches_a_dense_ema() {
    let mut dense = dense_for(5, Some(0.9), (Some(1e-4), 1e-4), false);
    against_dense(
        "low_rank(rank=5, beta=0.9)",
        (25, 80),
        &[1.0],
        false,
        &mut dense,
    );
}

#[test]
fn randomized_eigen_and_nystrom_match_a_dense_ema() {
    // The sketch (l = rank + oversampling ≥ k + 1) captures the whole range of the
    // accumulator, so both are exact up to rounding.
    for spec in ["randomized_eigen(rank=4)", "nystrom(rank=4)"] {
        let mut dense = dense_for(4, Some(0.99), (Some(1e-12), 1e-12), false);
        against_dense(spec, (30, 60), &[1.0], false, &mut dense);
    }
    // A test matrix kept for three updates, several columns at once.
    let mut dense = dense_for(5, Some(0.99), (Some(1e-12), 1e-12), false);
    let spec = "nystrom(rank=5, oversampling=4, omega_update_freq=3)";
    against_dense(spec, (20, 30), &[1.0; 2], false, &mut dense);
}

/// The dense reference window of common_directions (docs/algorithm.md §3.13): each new column,
/// in order, is Gram–Schmidt-orthogonalized (twice) against the window and the columns pushed
/// before it in the same update, and pushed if more than `tol` of it is left; the oldest
/// columns leave once the update is done and the window holds more than `rank`.
fn dense_window(window: &mut Vec<Vec<f64>>, ys: &[Vec<f64>], rank: usize, tol: f64) {
    for y in ys {
        let mut p = y.clone();
        for _ in 0..2 {
            for s in window.iter() {
                let c = dot(s, &p);
                p.iter_mut().zip(s).for_each(|(x, si)| *x -= c * si);
            }
        }
        let norm = dot(&p, &p).sqrt();
        if norm > tol * dot(y, y).sqrt() {
            window.push(p.iter().map(|x| x / norm).collect());
        }
    }
    let extra = window.len().saturating_sub(rank);
    window.drain(..extra);
}

#[test]
fn common_directions_matches_a_dense_gram_schmidt_window() {
    for (n, rank, width) in [(30, 5, 1), (12, 4, 3), (6, 10, 1)] {
        let be = Be::new(n, 1);
        let spec = format!("common_directions(rank={rank})");
        let mut b = build(&spec, &be);
        let mut rng = Xorshift(7 + n as u64);
        let directions = common::orthonormal(&mut rng, n, 6.min(n));
        let (mut window, mut tracker) = (Vec::<Vec<f64>>::new(), Tracker::new(SELF_TOL));
        for step in 0..80 {
            // Every fifth update repeats a direction already in the window: nothing is added.
            let ys: Vec<Vec<f64>> = (0..width)
                .map(|_| match (step % 5 == 4, window.last()) {
                    (true, Some(last)) => last.iter().map(|x: &f64| 3.0 * x).collect(),
                    _ => gradient(&mut rng, &directions, 0.3),
                })
                .collect();
            let outcome = offer(b.as_mut(), &be, &ys, &vec![1.0; width]);
            dense_window(&mut window, &ys, rank.min(n), 1e-10);
            let what = format!("{spec}, n = {n}, step {step}");
            let last = (width - 1, ys[width - 1].as_slice());
            let q = tracker.observe((&what, &outcome), b.as_mut(), &be, last, &mut rng);
            assert_eq!(q.len(), window.len(), "{what}: window length");
            for (j, (got, want)) in q.iter().zip(&window).enumerate() {
                for i in 0..n {
                    assert!((got[i] - want[i]).abs() <= SELF_TOL, "{what}: S[{i},{j}]");
                }
            }
        }
    }
}

#[test]
fn random_is_the_qr_of_a_gaussian_matrix_and_honors_generate_freq() {
    let (n, rank) = (20, 5);
    let be = Be::new(n, 1);
    let mut b = build(&format!("random(rank={rank}, generate_freq=3)"), &be);
    let mut rng = Xorshift(3);
    let mut tracker = Tracker::new(SELF_TOL);
    for step in 0..10 {
        let y = rng.vector(n);
        let outcome = offer(b.as_mut(), &be, std::slice::from_ref(&y), &[1.0]);
        assert_eq!(
            matches!(outcome, Outcome::Changed(_)),
            step % 3 == 0,
            "a new basis exactly every generate_freq updates (step {step})"
        );
        let what = format!("random, step {step}");
        let q = tracker.observe((&what, &outcome), b.as_mut(), &be, (0, &y), &mut rng);
        assert_eq!(q.len(), rank);
        if step == 0 {
            // Seed 0, first draw: column j is the normal stream j under key 0; Q is its QR
            // (Gram–Schmidt: R has a positive diagonal).
            let mut g: Vec<Vec<f64>> = (0..rank)
                .map(|j| {
                    (0..n)
                        .map(|i| lre::backend::normal::normal(0, j as u64, i as u64))
                        .collect()
                })
                .collect();
            for j in 0..rank {
                for _ in 0..2 {
                    for l in 0..j {
                        let c = dot(&g[l], &g[j]);
                        let lj: Vec<f64> = g[l].clone();
                        g[j].iter_mut().zip(&lj).for_each(|(x, s)| *x -= c * s);
                    }
                }
                let norm = dot(&g[j], &g[j]).sqrt();
                g[j].iter_mut().for_each(|x| *x /= norm);
                for i in 0..n {
                    assert!((q[j][i] - g[j][i]).abs() <= SELF_TOL, "Q[{i},{j}]");
                }
            }
        }
    }
}

#[test]
fn hebbian_learning_converges_to_the_principal_subspace() {
    let (n, rank) = (16, 3);
    let be = Be::new(n, 1);
    let mut rng = Xorshift(11);
    let directions = common::orthonormal(&mut rng, n, 3);
    for opt in ["adamg", "gd", "stiefel_gd"] {
        let spec = format!("hebbian_learning(rank={rank}, opt={opt}, lr=0.2)");
        let mut b = build(&spec, &be);
        // Orthonormal to rounding after every update; adamg re-orthonormalizes at 1e-6 of drift.
        let mut tracker = Tracker::new(if opt == "adamg" { 2e-6 } else { SELF_TOL });
        for step in 0..600 {
            // Three directions of comparable variance (scales 1, 0.8, 0.6) over weak noise.
            let mut y: Vec<f64> = rng.vector(n).iter().map(|x| 0.05 * x).collect();
            for (c, d) in directions.iter().enumerate() {
                let scale = (1.0 - 0.2 * c as f64) * (1.0 + rng.uniform());
                y.iter_mut().zip(d).for_each(|(x, di)| *x += scale * di);
            }
            let outcome = offer(b.as_mut(), &be, std::slice::from_ref(&y), &[1.0]);
            let what = format!("{spec}, step {step}");
            tracker.observe((&what, &outcome), b.as_mut(), &be, (0, &y), &mut rng);
        }
        // The principal subspace of E[yyᵀ] is span(directions): ‖P − P_d‖_max small.
        let q = tracker.previous.expect("a basis");
        let mut worst = 0.0f64;
        for i in 0..n {
            for j in 0..n {
                let p: f64 = q.iter().map(|c| c[i] * c[j]).sum();
                let pd: f64 = directions.iter().map(|c| c[i] * c[j]).sum();
                worst = worst.max((p - pd).abs());
            }
        }
        assert!(worst < 0.1, "{spec}: subspace error {worst}");
        assert!(!b.provides_eigenvalues() && b.eigenvalues().is_none());
    }
}

#[test]
fn a_failed_eigendecomposition_keeps_the_previous_basis() {
    let n = 12;
    let be = Be::new(n, 1);
    for spec in [
        "eigen(rank=4)",
        "low_rank(rank=4)",
        "randomized_eigen(rank=4)",
        "nystrom(rank=4)",
    ] {
        let mut b = build(spec, &be);
        let mut twin = build(spec, &be);
        let mut rng = Xorshift(5);
        let good: Vec<Vec<f64>> = (0..6).map(|_| rng.vector(n)).collect();
        for y in &good[..3] {
            offer(b.as_mut(), &be, std::slice::from_ref(y), &[1.0]);
            offer(twin.as_mut(), &be, std::slice::from_ref(y), &[1.0]);
        }
        let (values, q) = (b.eigenvalues().unwrap().to_vec(), columns(b.as_mut(), &be));
        let mut bad = rng.vector(n);
        bad[2] = f64::NAN;
        match offer(b.as_mut(), &be, &[bad], &[1.0]) {
            Outcome::Unchanged { failure: Some(why) } => assert!(!why.is_empty()),
            other => panic!("{spec}: expected a failed update, got {other:?}"),
        }
        assert_eq!(
            b.eigenvalues().unwrap(),
            values.as_slice(),
            "{spec}: eigenvalues kept"
        );
        // The same basis (eigen's columns may be read through a different rounding path).
        for (a, c) in columns(b.as_mut(), &be).iter().zip(&q) {
            assert!(
                a.iter().zip(c).all(|(x, y)| (x - y).abs() <= 1e-14),
                "{spec}: basis kept"
            );
        }
        // Later updates proceed as if the bad column had never been offered.
        for y in &good[3..] {
            offer(b.as_mut(), &be, std::slice::from_ref(y), &[1.0]);
            offer(twin.as_mut(), &be, std::slice::from_ref(y), &[1.0]);
        }
        let (a, t) = (b.eigenvalues().unwrap(), twin.eigenvalues().unwrap());
        assert_eq!(a.len(), t.len(), "{spec}");
        for (x, y) in a.iter().zip(t) {
            assert!((x - y).abs() <= 1e-12 * y.abs(), "{spec}: {x} vs {y}");
        }
    }
}

/// Every basis this file covers, with small ranks, as a spec fragment.
const BASES: &[&str] = &[
    "eigen(rank=6)",
    "low_rank(rank=6)",
    "randomized_eigen(rank=6)",
    "nystrom(rank=6)",
    "hebbian_learning(rank=6, lr=0.05)",
    "hebbian_learning(rank=6, opt=stiefel_gd, lr=0.05)",
    "hebbian_learning(rank=6, opt=gd, lr=0.05)",
    "random(rank=6)",
    "common_directions(rank=6)",
];

#[test]
fn tiny_n_caps_every_rank_and_stays_finite() {
    for &n in &[1, 3] {
        for basis in BASES.iter().map(|b| b.replace("rank=6", "rank=100")) {
            for dtype in ["f32", "f64"] {
                let spec = format!("basis={basis}; dtype={dtype}; lr=0.05; update_freq=2");
                let mut opt =
                    CpuOptimizer::<f64>::from_spec(&spec.replace("f32", "f64"), n).unwrap();
                let mut opt32 =
                    CpuOptimizer::<f32>::from_spec(&spec.replace("f64", "f32"), n).unwrap();
                let (mut x, mut x32) = (vec![1.0f64; n], vec![1.0f32; n]);
                for step in 0..40 {
                    let g: Vec<f64> = x
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (i + 1) as f64 * v)
                        .collect();
                    opt.step(&mut x, &g).unwrap();
                    let g32: Vec<f32> = x32
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (i + 1) as f32 * v)
                        .collect();
                    opt32.step(&mut x32, &g32).unwrap();
                    for (rank, finite) in [
                        (opt.rank(), x.iter().all(|v| v.is_finite())),
                        (opt32.rank(), x32.iter().all(|v| v.is_finite())),
                    ] {
                        assert!(
                            finite,
                            "{spec}, n = {n}, step {step}: parameters not finite"
                        );
                        assert!(rank <= n, "{spec}, n = {n}: rank {rank} > n");
                    }
                }
            }
        }
    }
}

/// f(x) = ½(x − x*)ᵀ·R·D·Rᵀ·(x − x*) with a random rotation R and condition number 100.
struct Quadratic {
    rotation: Vec<Vec<f64>>,
    diagonal: Vec<f64>,
    target: Vec<f64>,
}

impl Quadratic {
    fn new(n: usize) -> Self {
        let mut rng = Xorshift(2024);
        Quadratic {
            rotation: common::orthonormal(&mut rng, n, n),
            diagonal: (0..n)
                .map(|i| 100f64.powf(i as f64 / (n - 1) as f64))
                .collect(),
            target: rng.vector(n),
        }
    }

    /// (loss, gradient) at x.
    fn eval(&self, x: &[f32]) -> (f64, Vec<f32>) {
        let d: Vec<f64> = x
            .iter()
            .zip(&self.target)
            .map(|(a, b)| f64::from(*a) - b)
            .collect();
        let coords: Vec<f64> = self.rotation.iter().map(|r| dot(r, &d)).collect();
        let loss = 0.5
            * coords
                .iter()
                .zip(&self.diagonal)
                .map(|(c, l)| l * c * c)
                .sum::<f64>();
        let mut g = vec![0.0f64; x.len()];
        for ((r, c), l) in self.rotation.iter().zip(&coords).zip(&self.diagonal) {
            g.iter_mut().zip(r).for_each(|(gi, ri)| *gi += l * c * ri);
        }
        (loss, g.iter().map(|v| *v as f32).collect())
    }
}

#[test]
fn every_basis_trains_a_rotated_quadratic() {
    let n = 24;
    let problem = Quadratic::new(n);
    let x0 = vec![0.0f32; n];
    let initial = problem.eval(&x0).0;
    // Default ranks (100, capped at n): every basis spans the space, so the quadratic is solved.
    for basis in BASES
        .iter()
        .map(|b| b.replace("rank=6, ", "").replace("(rank=6)", ""))
    {
        let spec = format!("basis={basis}; chain=[adam]; lr=0.05");
        let mut opt = CpuOptimizer::<f32>::from_spec(&spec, n).unwrap();
        let mut x = x0.clone();
        for _ in 0..400 {
            let (_, g) = problem.eval(&x);
            opt.step(&mut x, &g).unwrap();
        }
        let (loss, _) = problem.eval(&x);
        assert!(
            loss < 1e-3 * initial,
            "{spec}: loss {loss:e} from {initial:e}"
        );
    }
}

#[test]
fn a_zero_first_gradient_gives_an_empty_basis_or_a_full_one() {
    // Bases built from the corrections have nothing to span (k = 0, a zero step); random and
    // hebbian_learning span rank directions regardless. Either way nothing is NaN.
    let n = 9;
    let be = Be::new(n, 1);
    for spec in BASES {
        let mut b = build(spec, &be);
        let zero = vec![0.0; n];
        offer(b.as_mut(), &be, std::slice::from_ref(&zero), &[1.0]);
        let k = b.rank().expect("a basis after the first update");
        let expected = if spec.starts_with("random(") || spec.starts_with("hebbian") {
            6
        } else {
            0
        };
        assert_eq!(k, expected, "{spec}");
        let mut projected = vec![1.0; 3];
        b.project(&be, Source::CorrectionColumn(0, &zero), &mut projected);
        assert_eq!(projected.len(), k, "{spec}");
        assert!(projected.iter().all(|x| *x == 0.0), "{spec}");
        let mut y = vec![1.0; n];
        b.add_unprojected(&be, &vec![0.5; k], -1.0, &mut y);
        assert!(y.iter().all(|v| v.is_finite()), "{spec}");
        if let Some(values) = b.eigenvalues() {
            assert!(values.is_empty(), "{spec}");
        }
    }
}

#[test]
fn f32_bases_stay_orthonormal_over_many_updates() {
    // Eigen compacts B every ~rank updates and CGS2 appends in f32 storage; common_directions
    // slides its window. Neither may let orthogonality drift: max|QᵀQ − I| ≤ 1e-6 throughout.
    let (n, rank) = (300, 10);
    let be = Cpu::<f32>::new(n, 1);
    let mut rng = Xorshift(77);
    let directions = common::orthonormal(&mut rng, n, 6);
    for spec in [
        "eigen(rank=10)",
        "common_directions(rank=10)",
        "low_rank(rank=10, eig_tol=none)",
    ] {
        let c = parse_component(spec, &basis::FAMILY).unwrap();
        let mut b = basis::build(&c, &be).unwrap();
        let mut worst = 0.0f64;
        for step in 0..1500 {
            let g: Vec<f32> = gradient(&mut rng, &directions, 0.3)
                .iter()
                .map(|x| *x as f32)
                .collect();
            b.prepare(&be, 1).unwrap();
            let correction = Correction {
                columns: vec![&g],
                alpha: vec![1.0],
                z: None,
                gradient_column: Some(0),
            };
            b.update(&be, &correction).unwrap();
            if step % 50 != 49 {
                // Unproject as a step would (this also writes the pending column).
                let k = b.rank().unwrap();
                let mut x = vec![0.0f32; n];
                b.add_unprojected(&be, &vec![1e-3; k], -1.0, &mut x);
                continue;
            }
            let k = b.rank().unwrap();
            assert!(k > 0 && k <= rank, "{spec}: rank {k}");
            let q: Vec<Vec<f64>> = (0..k)
                .map(|j| {
                    let mut e = vec![0.0; k];
                    e[j] = 1.0;
                    let mut col = vec![0.0f32; n];
                    b.add_unprojected(&be, &e, 1.0, &mut col);
                    col.iter().map(|v| f64::from(*v)).collect()
                })
                .collect();
            for (i, a) in q.iter().enumerate() {
                for (j, c) in q.iter().enumerate() {
                    let expected = if i == j { 1.0 } else { 0.0 };
                    worst = worst.max((dot(a, c) - expected).abs());
                }
            }
        }
        assert!(worst <= 1e-6, "{spec}: max|QᵀQ − I| reached {worst:e}");
    }
}
