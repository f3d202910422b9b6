//! The inner optimizers of docs/algorithm.md §5.7–5.15 (issue 4), each checked five ways:
//! (a) its update against the formula written out here on hand-made inputs, several steps with
//! bias correction; (b) its reprojection against the §5.2 rule formed densely, with random
//! orthonormal bases and k_new ≠ k_old (growing and shrinking); (c) invariance of the parameter
//! update to flipping the signs of basis vectors; (d) convergence on a small quadratic; (e) save →
//! load into a fresh member → continue, bit for bit. Members that need Hessian samples or
//! Jacobians are given them directly through `Context`.

mod common;
use common::{Xorshift, orthonormal};

use faer::Mat;
use lre::inner::cubic_adam::{CubicAdam, cubic_step};
use lre::inner::full_matrix::FullMatrixState;
use lre::inner::full_matrix_adam::FullMatrixAdam;
use lre::inner::full_matrix_bfgs_adam::FullMatrixBfgsAdam;
use lre::inner::full_matrix_hutchinson_adam::FullMatrixHutchinsonAdam;
use lre::inner::hutchinson_adam::HutchinsonAdam;
use lre::inner::lion::Lion;
use lre::inner::natural_gradient::NaturalGradient;
use lre::inner::{self, Context, HessianSample, Inner};
use lre::rng::Rng;
use lre::spec::parse_component;
use lre::state::{Decoder, Encoder};
use std::ops::Range;

// ---------------------------------------------------------------------------------------------
// Helpers: members, one step, and small dense linear algebra written independently of the crate
// ---------------------------------------------------------------------------------------------

fn component(text: &str) -> lre::component::Component {
    parse_component(text, &inner::FAMILY).unwrap()
}

fn build(text: &str) -> Box<dyn Inner> {
    inner::build(&component(text)).unwrap()
}

/// Everything one step of a member sees, in k-space.
#[derive(Clone, Default)]
struct Inputs {
    u: Vec<f64>,
    g: Vec<f64>,
    z: Vec<Vec<f64>>,
    hz: Vec<Vec<f64>>,
    jacobian: Option<Mat<f64>>,
}

impl Inputs {
    /// A step with u = ĝ and nothing else.
    fn gradient(g: &[f64]) -> Self {
        Inputs {
            u: g.to_vec(),
            g: g.to_vec(),
            ..Default::default()
        }
    }

    fn with_probes(mut self, z: Vec<Vec<f64>>, hz: Vec<Vec<f64>>) -> Self {
        self.z = z;
        self.hz = hz;
        self
    }
}

fn step(member: &mut dyn Inner, inputs: &Inputs) -> Vec<f64> {
    let mut out = inputs.u.clone();
    let ctx = Context {
        grad: &inputs.g,
        eigenvalues: None,
        hessian: (!inputs.z.is_empty()).then_some(HessianSample {
            z: &inputs.z,
            hz: &inputs.hz,
        }),
        jacobian: inputs.jacobian.as_ref(),
    };
    member.step(&mut out, &ctx, &mut Rng::new(0));
    out
}

fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

/// Row-major dense matrices for the reference formulas.
type Dense = Vec<Vec<f64>>;

fn dense(m: &Mat<f64>) -> Dense {
    (0..m.nrows())
        .map(|i| (0..m.ncols()).map(|j| m[(i, j)]).collect())
        .collect()
}

fn assert_matrix_close(a: &Mat<f64>, b: &Dense, tol: f64, what: &str) {
    assert_eq!(a.nrows(), b.len(), "{what}: rows");
    for (i, row) in dense(a).iter().enumerate() {
        assert_close(row, &b[i], tol, &format!("{what} row {i}"));
    }
}

fn identity(k: usize) -> Dense {
    (0..k)
        .map(|i| (0..k).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn apply(a: &Dense, x: &[f64]) -> Vec<f64> {
    a.iter().map(|row| dot(row, x)).collect()
}

fn multiply(a: &Dense, b: &Dense) -> Dense {
    a.iter()
        .map(|row| {
            (0..b[0].len())
                .map(|j| row.iter().zip(b).map(|(x, brow)| x * brow[j]).sum())
                .collect()
        })
        .collect()
}

fn transpose(a: &Dense) -> Dense {
    (0..a[0].len())
        .map(|j| a.iter().map(|row| row[j]).collect())
        .collect()
}

/// α·A + β·B.
fn combine(alpha: f64, a: &Dense, beta: f64, b: &Dense) -> Dense {
    a.iter()
        .zip(b)
        .map(|(x, y)| x.iter().zip(y).map(|(p, q)| alpha * p + beta * q).collect())
        .collect()
}

fn outer(a: &[f64], b: &[f64]) -> Dense {
    a.iter()
        .map(|x| b.iter().map(|y| x * y).collect())
        .collect()
}

/// Eigenvalues and eigenvectors of a symmetric matrix by cyclic Jacobi rotations.
fn jacobi_eigen(a: &Dense) -> (Vec<f64>, Vec<Vec<f64>>) {
    let k = a.len();
    let mut a = a.clone();
    let mut v = identity(k);
    let scale: f64 = a.iter().flatten().map(|x| x * x).sum();
    for _ in 0..100 {
        let off: f64 = (0..k)
            .flat_map(|i| (0..k).map(move |j| (i, j)))
            .filter(|(i, j)| i != j)
            .map(|(i, j)| a[i][j] * a[i][j])
            .sum();
        if off <= 1e-32 * scale {
            break;
        }
        for p in 0..k {
            for q in p + 1..k {
                if a[p][q] == 0.0 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for row in a.iter_mut() {
                    let (x, y) = (row[p], row[q]);
                    row[p] = c * x - s * y;
                    row[q] = s * x + c * y;
                }
                let (row_p, row_q) = (a[p].clone(), a[q].clone());
                a[p] = row_p
                    .iter()
                    .zip(&row_q)
                    .map(|(x, y)| c * x - s * y)
                    .collect();
                a[q] = row_p
                    .iter()
                    .zip(&row_q)
                    .map(|(x, y)| s * x + c * y)
                    .collect();
                for row in v.iter_mut() {
                    let (x, y) = (row[p], row[q]);
                    row[p] = c * x - s * y;
                    row[q] = s * x + c * y;
                }
            }
        }
    }
    let values = (0..k).map(|i| a[i][i]).collect();
    (values, transpose(&v))
}

/// How a preconditioner's eigendecomposition is regularized (docs/algorithm.md §4.1 with re-sorting
/// after abs): keep λ > tol·λ_max, add damping + rdamping·λ_max.
struct Reg {
    tol: f64,
    damping: f64,
    rdamping: f64,
    abs: bool,
}

const DEFAULT_REG: Reg = Reg {
    tol: 1e-12,
    damping: 1e-8,
    rdamping: 1e-8,
    abs: false,
};

/// Σ f(λ_i + shift)·v_i·v_iᵀ over the kept eigenpairs.
fn spectral(a: &Dense, reg: &Reg, f: impl Fn(f64) -> f64) -> Dense {
    let (values, vectors) = jacobi_eigen(a);
    let values: Vec<f64> = values
        .iter()
        .map(|l| if reg.abs { l.abs() } else { *l })
        .collect();
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let shift = reg.damping + reg.rdamping * max;
    let mut out = vec![vec![0.0; a.len()]; a.len()];
    for (l, v) in values.iter().zip(&vectors) {
        if *l > reg.tol * max {
            out = combine(1.0, &out, f(l + shift), &outer(v, v));
        }
    }
    out
}

/// x with A·x = b, by Gaussian elimination with partial pivoting.
fn solve(a: &Dense, b: &[f64]) -> Vec<f64> {
    let k = b.len();
    let mut m: Dense = a
        .iter()
        .zip(b)
        .map(|(row, bi)| row.iter().copied().chain([*bi]).collect())
        .collect();
    for col in 0..k {
        let pivot = (col..k)
            .max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))
            .unwrap();
        m.swap(col, pivot);
        let pivot_row = m[col].clone();
        for row in m.iter_mut().skip(col + 1) {
            let f = row[col] / pivot_row[col];
            for (x, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                *x -= f * p;
            }
        }
    }
    let mut x = vec![0.0; k];
    for row in (0..k).rev() {
        let rest: f64 = (row + 1..k).map(|j| m[row][j] * x[j]).sum();
        x[row] = (m[row][k] - rest) / m[row][row];
    }
    x
}

/// A random symmetric positive definite k×k matrix with eigenvalues in [1, condition].
fn spd(rng: &mut Xorshift, k: usize, condition: f64) -> Dense {
    let r = orthonormal(rng, k, k);
    let mut a = vec![vec![0.0; k]; k];
    for (i, v) in r.iter().enumerate() {
        let l = condition.powf(i as f64 / (k - 1) as f64);
        a = combine(1.0, &a, l, &outer(v, v));
    }
    a
}

fn bias(beta: f64, t: i32) -> f64 {
    1.0 - beta.powi(t)
}

/// C = Q_newᵀQ_old for bases given as lists of columns.
fn change(new: &[Vec<f64>], old: &[Vec<f64>]) -> Mat<f64> {
    Mat::from_fn(new.len(), old.len(), |i, j| dot(&new[i], &old[j]))
}

/// (k_old, k_new): growth, shrinkage and equal size.
const SHAPES: [(usize, usize); 3] = [(5, 8), (8, 4), (6, 6)];

/// A random change of basis of shape (k_new, k_old) from two orthonormal bases of R^20.
fn random_change(rng: &mut Xorshift, k_old: usize, k_new: usize) -> Mat<f64> {
    let old = orthonormal(rng, 20, k_old);
    let new = orthonormal(rng, 20, k_new);
    change(&new, &old)
}

fn c_times(c: &Mat<f64>, x: &[f64], power: i32) -> Vec<f64> {
    (0..c.nrows())
        .map(|a| (0..c.ncols()).map(|i| c[(a, i)].powi(power) * x[i]).sum())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// (a) Updates against the formulas
// ---------------------------------------------------------------------------------------------

#[test]
fn full_matrix_adam_matches_the_formula() {
    let (b1, b2, eps, decay) = (0.8, 0.9, 1e-3, 0.95);
    let reg = Reg {
        tol: 0.3,
        damping: 1e-3,
        rdamping: 1e-2,
        abs: false,
    };
    let mut member = FullMatrixAdam::new(&component(
        "full_matrix_adam(beta1=0.8, beta2=0.9, eps=1e-3, amsgrad_beta=0.95, eig_tol=0.3, \
         damping=1e-3, rdamping=1e-2)",
    ));
    let k = 4;
    let mut rng = Xorshift(5);
    let (mut m, mut sigma, mut d_max) = (vec![0.0; k], identity(k), vec![0.0f64; k]);
    let mut p = identity(k);
    for t in 1..=4 {
        // A basis change (here C = I) before steps 2 and 4 refreshes P; step 3 reuses step 2's.
        let refresh = t != 3;
        if t > 1 && refresh {
            member.reproject(&Mat::identity(k, k), &mut Rng::new(0));
        }
        // Large entries make uuᵀ dominate, so eig_tol = 0.3 drops the small eigenvalues.
        let u: Vec<f64> = rng.vector(k).iter().map(|x| 10.0 * x).collect();
        let out = step(&mut member, &Inputs::gradient(&u));
        for i in 0..k {
            m[i] = b1 * m[i] + (1.0 - b1) * u[i];
        }
        sigma = combine(b2, &sigma, 1.0 - b2, &outer(&u, &u));
        for i in 0..k {
            d_max[i] = (decay * d_max[i]).max(sigma[i][i]);
        }
        if refresh {
            let mut s = sigma.clone();
            for i in 0..k {
                s[i][i] = d_max[i];
            }
            let s = combine(1.0 / bias(b2, t), &s, eps, &identity(k));
            p = spectral(&s, &reg, |l| 1.0 / l.sqrt());
        }
        let m_hat: Vec<f64> = m.iter().map(|x| x / bias(b1, t)).collect();
        assert_close(&out, &apply(&p, &m_hat), 1e-12, &format!("step {t}"));
    }
}

#[test]
fn hutchinson_adam_matches_the_formula() {
    let (b1, b2, eps) = (0.8, 0.9, 1e-3);
    for (square, zhz, amsgrad) in [
        (true, true, None),
        (false, true, Some(0.9)),
        (true, false, Some(0.5)),
        (false, false, None),
    ] {
        let spec = format!(
            "hutchinson_adam(beta1=0.8, beta2=0.9, eps=1e-3, square={square}, zhz={zhz}, \
             amsgrad_beta={})",
            amsgrad.map_or("none".to_string(), |b: f64| b.to_string())
        );
        let mut member = build(&spec);
        assert!(member.needs_hessian() && !member.needs_jacobian());
        let k = 4;
        let mut rng = Xorshift(9);
        let (mut m, mut d, mut d_max) = (vec![0.0; k], vec![0.0; k], vec![0.0; k]);
        let mut samples = 0;
        // Probes per step: none on steps 1 and 4 (step 1 then has no curvature: a zero update),
        // two on step 3.
        for (t, probes) in [0, 1, 2, 0, 1].into_iter().enumerate() {
            let t = t as i32 + 1;
            let u = rng.vector(k);
            let z: Vec<Vec<f64>> = (0..probes).map(|_| rng.vector(k)).collect();
            let hz: Vec<Vec<f64>> = (0..probes).map(|_| rng.vector(k)).collect();
            let out = step(
                member.as_mut(),
                &Inputs::gradient(&u).with_probes(z.clone(), hz.clone()),
            );
            for i in 0..k {
                m[i] = b1 * m[i] + (1.0 - b1) * u[i];
            }
            if probes > 0 {
                samples += 1;
                for i in 0..k {
                    let e: f64 = (0..probes)
                        .map(|p| if zhz { z[p][i] * hz[p][i] } else { hz[p][i] })
                        .sum::<f64>()
                        / probes as f64;
                    d[i] = b2 * d[i] + (1.0 - b2) * if square { e * e } else { e };
                    if let Some(decay) = amsgrad {
                        d_max[i] = (decay * d_max[i]).max(d[i]);
                    }
                }
            }
            let expected: Vec<f64> = (0..k)
                .map(|i| {
                    if samples == 0 {
                        return 0.0;
                    }
                    let d = if amsgrad.is_some() { d_max[i] } else { d[i] };
                    let d_hat = d / bias(b2, samples);
                    let denominator = if square { d_hat.sqrt() } else { d_hat.abs() };
                    m[i] / bias(b1, t) / (denominator + eps)
                })
                .collect();
            assert_close(&out, &expected, 1e-13, &format!("{spec} step {t}"));
        }
    }
}

#[test]
fn full_matrix_hutchinson_adam_matches_the_formula() {
    let (b1, b2) = (0.8, 0.9);
    for (spec, eps, amsgrad, abs) in [
        (
            "full_matrix_hutchinson_adam(beta1=0.8, beta2=0.9)",
            1e-6,
            None,
            true,
        ),
        (
            "full_matrix_hutchinson_adam(beta1=0.8, beta2=0.9, eps=1e-2, abs=false, amsgrad_beta=0.9)",
            1e-2,
            Some(0.9),
            false,
        ),
    ] {
        let reg = Reg { abs, ..DEFAULT_REG };
        let mut member = build(spec);
        assert!(member.needs_hessian());
        let k = 4;
        let mut rng = Xorshift(13);
        // An indefinite Hessian: with abs = true the preconditioner uses |λ|.
        let hessian = combine(1.0, &spd(&mut rng, k, 10.0), -3.0, &identity(k));
        let (mut m, mut h, mut d_max) = (vec![0.0; k], identity(k), vec![0.0f64; k]);
        let mut p = identity(k);
        for (t, probes) in [1, 1, 0, 2, 1].into_iter().enumerate() {
            let t = t as i32 + 1;
            // Basis changes (C = I) before steps 2, 4 and 5 refresh P; step 3 reuses it.
            let refresh = t != 3;
            if t > 1 && refresh {
                member.reproject(&Mat::identity(k, k), &mut Rng::new(0));
            }
            let u = rng.vector(k);
            let z: Vec<Vec<f64>> = (0..probes).map(|_| rng.vector(k)).collect();
            let hz: Vec<Vec<f64>> = z.iter().map(|z| apply(&hessian, z)).collect();
            let out = step(
                member.as_mut(),
                &Inputs::gradient(&u).with_probes(z.clone(), hz.clone()),
            );
            for i in 0..k {
                m[i] = b1 * m[i] + (1.0 - b1) * u[i];
            }
            if probes > 0 {
                let mut estimate = vec![vec![0.0; k]; k];
                for (z, hz) in z.iter().zip(&hz) {
                    let sym = combine(0.5, &outer(hz, z), 0.5, &outer(z, hz));
                    estimate = combine(1.0, &estimate, 1.0 / probes as f64, &sym);
                }
                h = combine(b2, &h, 1.0 - b2, &estimate);
                if let Some(decay) = amsgrad {
                    for i in 0..k {
                        d_max[i] = (decay * d_max[i]).max(h[i][i]);
                    }
                }
            }
            if refresh {
                let mut s = h.clone();
                if amsgrad.is_some() {
                    for i in 0..k {
                        s[i][i] = d_max[i];
                    }
                }
                // Compat (§7 item 14): debiased with the step count t.
                let s = combine(1.0 / bias(b2, t), &s, eps, &identity(k));
                p = spectral(&s, &reg, |l| 1.0 / l);
            }
            let m_hat: Vec<f64> = m.iter().map(|x| x / bias(b1, t)).collect();
            assert_close(&out, &apply(&p, &m_hat), 1e-11, &format!("{spec} step {t}"));
        }
    }
}

/// B + y·yᵀ/(sᵀy) − (Bs)(Bs)ᵀ/(sᵀBs), or B when sᵀy < tol.
fn bfgs(b: &Dense, s: &[f64], y: &[f64], tol: f64) -> Dense {
    let sy = dot(s, y);
    if sy < tol {
        return b.clone();
    }
    let bs = apply(b, s);
    let with_y = combine(1.0, b, 1.0 / sy, &outer(y, y));
    combine(1.0, &with_y, -1.0 / dot(s, &bs), &outer(&bs, &bs))
}

#[test]
fn full_matrix_bfgs_adam_matches_the_formula() {
    let b1 = 0.8;
    for (spec, beta2, amsgrad, eigh) in [
        (
            "full_matrix_bfgs_adam(beta1=0.8, beta2=0.9)",
            Some(0.9),
            None,
            None,
        ),
        (
            "full_matrix_bfgs_adam(beta1=0.8, beta2=none, amsgrad_beta=0.9, use_eigh=true, \
             eig_tol=1e-3, damping=1e-4, rdamping=1e-3)",
            None,
            Some(0.9),
            Some(Reg {
                tol: 1e-3,
                damping: 1e-4,
                rdamping: 1e-3,
                abs: false,
            }),
        ),
    ] {
        let mut member = build(spec);
        assert!(member.needs_hessian());
        let k = 4;
        let eps = 1e-6;
        let mut rng = Xorshift(17);
        let hessian = spd(&mut rng, k, 20.0);
        let (mut m, mut b, mut d_max) = (vec![0.0; k], identity(k), vec![0.0f64; k]);
        let mut p = identity(k);
        // Step 4 has a pair with sᵀy < 0 (y = −s): the BFGS update is skipped.
        for (t, probes) in [1, 2, 0, 1, 1].into_iter().enumerate() {
            let t = t as i32 + 1;
            let refresh = t != 3;
            if t > 1 && refresh {
                member.reproject(&Mat::identity(k, k), &mut Rng::new(0));
            }
            let u = rng.vector(k);
            let s: Vec<Vec<f64>> = (0..probes).map(|_| rng.vector(k)).collect();
            let y: Vec<Vec<f64>> = s
                .iter()
                .map(|s| {
                    if t == 4 {
                        s.iter().map(|x| -x).collect()
                    } else {
                        apply(&hessian, s)
                    }
                })
                .collect();
            let out = step(
                member.as_mut(),
                &Inputs::gradient(&u).with_probes(s.clone(), y.clone()),
            );
            for i in 0..k {
                m[i] = b1 * m[i] + (1.0 - b1) * u[i];
            }
            if probes > 0 {
                let updated = s
                    .iter()
                    .zip(&y)
                    .fold(b.clone(), |b, (s, y)| bfgs(&b, s, y, 1e-16));
                b = match beta2 {
                    Some(beta2) => combine(beta2, &b, 1.0 - beta2, &updated),
                    None => updated,
                };
                if let Some(decay) = amsgrad {
                    for i in 0..k {
                        d_max[i] = (decay * d_max[i]).max(b[i][i]);
                    }
                }
            }
            if refresh {
                let mut s = b.clone();
                if amsgrad.is_some() {
                    for i in 0..k {
                        s[i][i] = d_max[i];
                    }
                }
                let scale = beta2.map_or(1.0, |b2| 1.0 / bias(b2, t));
                let s = combine(scale, &s, eps, &identity(k));
                p = match &eigh {
                    Some(reg) => spectral(&s, reg, |l| 1.0 / l),
                    None => transpose(&(0..k).map(|j| solve(&s, &identity(k)[j])).collect()),
                };
            }
            let m_hat: Vec<f64> = m.iter().map(|x| x / bias(b1, t)).collect();
            assert_close(&out, &apply(&p, &m_hat), 1e-10, &format!("{spec} step {t}"));
        }
    }
}

/// The reference's minimizer of (A/3)x³ + (B/2)x² + c·x: both roots of the naive quadratic
/// formula, the one with the lower model value, the Adam step when D < 0.
fn reference_cubic(a: f64, b: f64, c: f64, eps: f64) -> f64 {
    let d = b * b - 4.0 * a * c;
    let den = (2.0 * a).signum() * (2.0 * a).abs().max(eps);
    let r = d.max(0.0).sqrt();
    let (x0, x1) = ((-b + r) / den, (-b - r) / den);
    let f = |x: f64| a / 3.0 * x.powi(3) + b / 2.0 * x * x + c * x;
    if d < 0.0 {
        -c / (b + eps)
    } else if f(x0) < f(x1) {
        x0
    } else {
        x1
    }
}

#[test]
fn cubic_adam_matches_the_formula() {
    let (b1, b2, b3, eps) = (0.8, 0.9, 0.7, 1e-8);
    let mut member = build("cubic_adam(beta1=0.8, beta2=0.9, beta3=0.7)");
    let k = 6;
    let mut rng = Xorshift(21);
    let (mut m1, mut m2, mut m3) = (vec![0.0; k], vec![0.0; k], vec![0.0; k]);
    let mut adam_cases = 0;
    for t in 1..=6 {
        let u: Vec<f64> = rng.vector(k).iter().map(|x| 3.0 * x).collect();
        let out = step(member.as_mut(), &Inputs::gradient(&u));
        let expected: Vec<f64> = (0..k)
            .map(|i| {
                m1[i] = b1 * m1[i] + (1.0 - b1) * u[i];
                m2[i] = b2 * m2[i] + (1.0 - b2) * u[i].powi(2);
                m3[i] = b3 * m3[i] + (1.0 - b3) * u[i].powi(3);
                let a = (m3[i] / bias(b3, t)).cbrt();
                let b = (m2[i] / bias(b2, t)).sqrt();
                let c = m1[i] / bias(b1, t);
                if b * b < 4.0 * a * c {
                    adam_cases += 1;
                }
                -reference_cubic(a, b, c, eps)
            })
            .collect();
        assert_close(&out, &expected, 1e-9, &format!("step {t}"));
    }
    assert!(adam_cases > 0, "the D < 0 fallback should occur");
}

#[test]
fn cubic_step_is_the_stable_local_minimum() {
    let eps = 1e-8;
    // x* is a stationary point with f'' = 2A·x + B ≥ 0.
    for (a, b, c) in [
        (0.5, 1.0, -0.3),
        (-0.7, 2.0, 0.4),
        (1e-7, 1.0, 1.0),
        (2.0, 0.0, -1.0),
    ] {
        let x = cubic_step(a, b, c, eps);
        let slope = a * x * x + b * x + c;
        assert!(
            slope.abs() < 1e-15 * (1.0 + b * x.abs() + c.abs()),
            "f'({x}) = {slope} for {a},{b},{c}"
        );
        assert!(2.0 * a * x + b >= 0.0, "not a minimum for {a},{b},{c}");
    }
    // A → 0: the root tends to Newton's −c/B without the naive formula's cancellation
    // ((−B + √D)/(2A) loses about half the digits at A = 1e-7).
    let x = cubic_step(1e-7, 1.0, 1.0, eps);
    assert!((x - (-1.0 - 1e-7 - 2e-14)).abs() < 1e-15, "{x}");
    // |A| < ε and D < 0 take the Adam step −c/(B + ε).
    assert_eq!(cubic_step(1e-9, 2.0, 1.0, eps), -1.0 / (2.0 + eps));
    assert_eq!(cubic_step(0.0, 2.0, 1.0, eps), -1.0 / (2.0 + eps));
    assert_eq!(cubic_step(1.0, 1.0, 1.0, eps), -1.0 / (1.0 + eps));
    // B = D = 0 (so c = 0): flat at 0, no division by zero.
    assert_eq!(cubic_step(1.0, 0.0, 0.0, eps), 0.0);
}

#[test]
fn lion_matches_the_formula() {
    let (b1, b2) = (0.8, 0.9);
    for cautious in [false, true] {
        let mut member = build(&format!("lion(beta1=0.8, beta2=0.9, cautious={cautious})"));
        let k = 6;
        let mut rng = Xorshift(25);
        let mut m = vec![0.0; k];
        for t in 1..=5 {
            let g = rng.vector(k);
            // Lion ignores the incoming update.
            let inputs = Inputs {
                u: rng.vector(k),
                ..Inputs::gradient(&g)
            };
            let out = step(member.as_mut(), &inputs);
            let expected: Vec<f64> = (0..k)
                .map(|i| {
                    let x = b1 * m[i] + (1.0 - b1) * g[i];
                    m[i] = b2 * m[i] + (1.0 - b2) * g[i];
                    let s = if x > 0.0 { 1.0 } else { -1.0 };
                    if cautious && s * g[i] <= 0.0 { 0.0 } else { s }
                })
                .collect();
            assert_eq!(out, expected, "cautious={cautious} step {t}");
        }
    }
}

#[test]
fn elementwise_members_match_their_formulas() {
    let u = [0.5, -2.0, 0.0, -0.25, 1.0];
    let g = [1.0, 1.0, -1.0, -3.0, -0.0];
    let run = |spec: &str, u: &[f64]| {
        step(
            build(spec).as_mut(),
            &Inputs {
                u: u.to_vec(),
                g: g.to_vec(),
                ..Default::default()
            },
        )
    };
    let norm = (0.25f64 + 4.0 + 0.0625 + 1.0).sqrt();
    let scaled = |f: f64| u.iter().map(|x| x * f).collect::<Vec<_>>();
    assert_close(
        &run("clip_norm", &u),
        &scaled(1.0 / norm),
        1e-15,
        "clip_norm",
    );
    assert_eq!(
        run("clip_norm(max_norm=3)", &u),
        u.to_vec(),
        "clip_norm keeps short updates"
    );
    assert_eq!(run("clip_value", &u), vec![0.2, -0.2, 0.0, -0.2, 0.2]);
    assert_eq!(
        run("clip_value(max_value=0.3)", &u),
        vec![0.3, -0.3, 0.0, -0.25, 0.3]
    );
    // copysign: a −0 in ĝ gives −|u|.
    assert_eq!(run("copy_grad_sign", &u), vec![0.5, 2.0, -0.0, -0.25, -1.0]);
    assert_eq!(run("sign", &u), vec![1.0, -1.0, 0.0, -1.0, 1.0]);
    assert_close(
        &run("normalize", &u),
        &scaled(1.0 / norm),
        1e-15,
        "normalize",
    );
    assert_eq!(
        run("normalize", &[0.0; 5]),
        vec![0.0; 5],
        "a zero update stays zero"
    );
    let bad = [f64::NAN, 1.5, f64::INFINITY, -2.0, f64::NEG_INFINITY];
    assert_eq!(run("nan_to_zero", &bad), vec![0.0, 1.5, 0.0, -2.0, 0.0]);
    for name in [
        "clip_norm",
        "clip_value",
        "copy_grad_sign",
        "sign",
        "normalize",
        "nan_to_zero",
    ] {
        let member = build(name);
        assert!(!member.needs_hessian() && !member.needs_jacobian() && !member.needs_eigenvalues());
    }
}

#[test]
fn natural_gradient_solves_the_regularized_least_squares_system() {
    let mut rng = Xorshift(29);
    for (k, b) in [(5, 3), (3, 5)] {
        for name in ["natural_gradient", "gauss_newton"] {
            let reg = 1e-2;
            let mut member = build(&format!("{name}(reg={reg})"));
            assert!(member.needs_jacobian() && !member.needs_hessian());
            // No Jacobian yet: no curvature, a zero update.
            assert_eq!(
                step(member.as_mut(), &Inputs::gradient(&rng.vector(k))),
                vec![0.0; k]
            );
            let j: Dense = (0..k).map(|_| rng.vector(b)).collect();
            let jjt = multiply(&j, &transpose(&j));
            let system = combine(1.0, &jjt, reg, &identity(k));
            let u = rng.vector(k);
            let inputs = Inputs {
                jacobian: Some(Mat::from_fn(k, b, |a, s| j[a][s])),
                ..Inputs::gradient(&u)
            };
            assert_close(
                &step(member.as_mut(), &inputs),
                &solve(&system, &u),
                1e-11,
                name,
            );
            // The Jacobian is kept for steps that bring none.
            let u = rng.vector(k);
            assert_close(
                &step(member.as_mut(), &Inputs::gradient(&u)),
                &solve(&system, &u),
                1e-11,
                name,
            );
        }
    }
    // reg = 0 with k > b: J·Jᵀ is singular and the least-squares solution has minimum norm,
    // x = (J·Jᵀ)⁺·u, which lies in the column space of J.
    let (k, b) = (6, 2);
    let j: Dense = (0..k).map(|_| rng.vector(b)).collect();
    let jjt = multiply(&j, &transpose(&j));
    let u = rng.vector(k);
    let mut member = build("natural_gradient(reg=0)");
    let out = step(
        member.as_mut(),
        &Inputs {
            jacobian: Some(Mat::from_fn(k, b, |a, s| j[a][s])),
            ..Inputs::gradient(&u)
        },
    );
    let pinv = spectral(
        &jjt,
        &Reg {
            tol: 1e-10,
            damping: 0.0,
            rdamping: 0.0,
            abs: false,
        },
        |l| 1.0 / l,
    );
    assert_close(&out, &apply(&pinv, &u), 1e-10, "minimum-norm solution");
}

#[test]
fn only_the_curvature_members_need_samples() {
    for spec in inner::FAMILY.components() {
        let member = build(spec.name);
        let hessian = matches!(
            spec.name,
            "hutchinson_adam" | "full_matrix_hutchinson_adam" | "full_matrix_bfgs_adam"
        );
        let jacobian = matches!(spec.name, "natural_gradient" | "gauss_newton");
        assert_eq!(member.needs_hessian(), hessian, "{}", spec.name);
        assert_eq!(member.needs_jacobian(), jacobian, "{}", spec.name);
    }
}

// ---------------------------------------------------------------------------------------------
// (b) Reprojection rules, formed densely
// ---------------------------------------------------------------------------------------------

/// m ← C·m; d ← diag(C·S'·Cᵀ) with S' = S with diag d; S ← C·S·Cᵀ; P dropped; t kept.
fn check_full_matrix_reprojection(before: &FullMatrixState, after: &FullMatrixState, c: &Mat<f64>) {
    let cd = dense(c);
    assert_close(&after.m, &c_times(c, &before.m, 1), 1e-14, "m");
    let s = dense(&before.matrix);
    let expected = multiply(&multiply(&cd, &s), &transpose(&cd));
    assert_matrix_close(&after.matrix, &expected, 1e-13, "C·S·Cᵀ");
    let d = before.diag_max.as_ref().expect("AMSGrad is on");
    let mut replaced = s.clone();
    for (i, row) in replaced.iter_mut().enumerate() {
        row[i] = d[i];
    }
    let full = multiply(&multiply(&cd, &replaced), &transpose(&cd));
    let diag: Vec<f64> = (0..c.nrows()).map(|a| full[a][a]).collect();
    assert_close(after.diag_max.as_ref().unwrap(), &diag, 1e-13, "diag max");
    assert!(before.preconditioner.is_some() && after.preconditioner.is_none());
    assert_eq!(after.t, before.t, "the step counter is never reset");
}

/// A few steps at size k with one Hessian probe each (z, Hz random).
fn warm_up(member: &mut dyn Inner, rng: &mut Xorshift, k: usize) {
    for _ in 0..4 {
        let inputs =
            Inputs::gradient(&rng.vector(k)).with_probes(vec![rng.vector(k)], vec![rng.vector(k)]);
        step(member, &inputs);
    }
}

#[test]
fn full_matrix_members_reproject_by_the_dense_rules() {
    for (k_old, k_new) in SHAPES {
        let mut rng = Xorshift(31 + k_old as u64);
        let c = random_change(&mut rng, k_old, k_new);
        let mut r = Rng::new(0);
        let mut adam = FullMatrixAdam::new(&component("full_matrix_adam(amsgrad_beta=0.99)"));
        let mut hutchinson = FullMatrixHutchinsonAdam::new(&component(
            "full_matrix_hutchinson_adam(amsgrad_beta=0.99)",
        ));
        let mut bfgs =
            FullMatrixBfgsAdam::new(&component("full_matrix_bfgs_adam(amsgrad_beta=0.99)"));
        warm_up(&mut adam, &mut rng, k_old);
        warm_up(&mut hutchinson, &mut rng, k_old);
        warm_up(&mut bfgs, &mut rng, k_old);
        let before = [
            adam.state.clone(),
            hutchinson.state.clone(),
            bfgs.state.clone(),
        ];
        adam.reproject(&c, &mut r);
        hutchinson.reproject(&c, &mut r);
        bfgs.reproject(&c, &mut r);
        let after = [&adam.state, &hutchinson.state, &bfgs.state];
        for (b, a) in before.iter().zip(after) {
            check_full_matrix_reprojection(b.as_ref().unwrap(), a.as_ref().unwrap(), &c);
        }
        // The next step runs at the new size and computes a new preconditioner.
        warm_up(&mut adam, &mut rng, k_new);
        assert_eq!(
            adam.state
                .as_ref()
                .unwrap()
                .preconditioner
                .as_ref()
                .unwrap()
                .nrows(),
            k_new
        );
    }
}

#[test]
fn hutchinson_adam_reprojects_diagonals_by_c_squared_and_vectors_by_c() {
    for (k_old, k_new) in SHAPES {
        for (square, zhz) in [(true, true), (false, true), (true, false), (false, false)] {
            let mut rng = Xorshift(37 + k_new as u64);
            let c = random_change(&mut rng, k_old, k_new);
            let mut member = HutchinsonAdam::new(&component(&format!(
                "hutchinson_adam(square={square}, zhz={zhz}, amsgrad_beta=0.99)"
            )));
            warm_up(&mut member, &mut rng, k_old);
            let before = member.state.clone().unwrap();
            member.reproject(&c, &mut Rng::new(0));
            let after = member.state.clone().unwrap();
            assert_close(&after.m, &c_times(&c, &before.m, 1), 1e-14, "m");
            // A diagonal estimate: diag(C·diag(D)·Cᵀ) = (C∘C)·D (§7 item 15); the vector Hz: C·D.
            let power = if square || zhz { 2 } else { 1 };
            assert_close(&after.d, &c_times(&c, &before.d, power), 1e-14, "D");
            let d_max = c_times(&c, before.d_max.as_ref().unwrap(), power);
            assert_close(after.d_max.as_ref().unwrap(), &d_max, 1e-14, "D_max");
            assert_eq!((after.t, after.samples), (before.t, before.samples));
        }
    }
}

#[test]
fn cubic_adam_reprojects_the_third_moment_through_the_dense_tensor() {
    for (k_old, k_new) in SHAPES {
        let mut rng = Xorshift(41 + k_old as u64);
        let c = random_change(&mut rng, k_old, k_new);
        let mut member = CubicAdam::new(&component("cubic_adam"));
        warm_up(&mut member, &mut rng, k_old);
        let before = member.state.clone().unwrap();
        member.reproject(&c, &mut Rng::new(0));
        let after = member.state.clone().unwrap();
        assert_close(&after.m1, &c_times(&c, &before.m1, 1), 1e-14, "m1");
        assert_close(&after.m2, &c_times(&c, &before.m2, 2), 1e-14, "m2");
        // The diagonal of T ×₁ C ×₂ C ×₃ C for the diagonal tensor T_iii = m3_i, summed over
        // every (i, j, l) as the reference's einsum does.
        let m3: Vec<f64> = (0..k_new)
            .map(|a| {
                let mut sum = 0.0;
                for i in 0..k_old {
                    for j in 0..k_old {
                        for l in 0..k_old {
                            let t = if i == j && j == l { before.m3[i] } else { 0.0 };
                            sum += c[(a, i)] * c[(a, j)] * c[(a, l)] * t;
                        }
                    }
                }
                sum
            })
            .collect();
        assert_close(&after.m3, &m3, 1e-14, "m3");
        assert_eq!(after.t, before.t);
    }
}

#[test]
fn lion_and_natural_gradient_reproject_their_vectors_and_jacobian() {
    for (k_old, k_new) in SHAPES {
        let mut rng = Xorshift(43 + k_new as u64);
        let c = random_change(&mut rng, k_old, k_new);
        let mut lion = Lion::new(&component("lion"));
        warm_up(&mut lion, &mut rng, k_old);
        let m = lion.state.clone().unwrap();
        lion.reproject(&c, &mut Rng::new(0));
        assert_close(
            lion.state.as_ref().unwrap(),
            &c_times(&c, &m, 1),
            1e-14,
            "lion m",
        );

        let mut natural = NaturalGradient::new(&component("natural_gradient"));
        let j = Mat::from_fn(k_old, 3, |_, _| rng.uniform());
        step(
            &mut natural,
            &Inputs {
                jacobian: Some(j.clone()),
                ..Inputs::gradient(&rng.vector(k_old))
            },
        );
        natural.reproject(&c, &mut Rng::new(0));
        let expected = multiply(&dense(&c), &dense(&j));
        assert_matrix_close(natural.jacobian.as_ref().unwrap(), &expected, 1e-14, "C·J");
    }
}

// ---------------------------------------------------------------------------------------------
// A run in parameter space: explicit bases, gradients, Hessian probes and Jacobians
// ---------------------------------------------------------------------------------------------

/// Every new member, with settings that exercise their options.
const MEMBERS: &[&str] = &[
    "full_matrix_adam",
    "full_matrix_adam(amsgrad_beta=0.999, eig_tol=0.01)",
    "hutchinson_adam",
    "hutchinson_adam(square=false, amsgrad_beta=0.99)",
    "hutchinson_adam(zhz=false, amsgrad_beta=0.99)",
    "hutchinson_adam(square=false, zhz=false)",
    "full_matrix_hutchinson_adam(amsgrad_beta=0.999)",
    "full_matrix_hutchinson_adam(abs=false, eps=0.1)",
    "full_matrix_bfgs_adam",
    "full_matrix_bfgs_adam(beta2=none, use_eigh=true, amsgrad_beta=0.9)",
    "cubic_adam",
    "lion",
    "lion(cautious=true)",
    "clip_norm(max_norm=0.5)",
    "clip_value(max_value=0.1)",
    "copy_grad_sign",
    "sign",
    "normalize",
    "nan_to_zero",
    "natural_gradient(reg=1e-3)",
    "gauss_newton(reg=1e-2)",
];

const N: usize = 12;

struct Scenario {
    /// Distinct orthonormal bases (lists of columns).
    bases: Vec<Vec<Vec<f64>>>,
    /// Which basis each step uses; a change of index is a basis change (reprojection).
    basis_of: Vec<usize>,
    grads: Vec<Vec<f64>>,
    /// Added to the gradient before projecting the incoming update, so that u ≠ ĝ.
    extra: Vec<Vec<f64>>,
    /// Hessian probes z of each step (Hz = H·z); none on some steps.
    probes: Vec<Vec<Vec<f64>>>,
    /// Jacobian rows (one n-vector per sample) of each step; none on some steps.
    jacobians: Vec<Option<Vec<Vec<f64>>>>,
    /// A symmetric, indefinite Hessian.
    hessian: Dense,
}

fn scenario() -> Scenario {
    let mut rng = Xorshift(2024);
    let ks = [4, 6, 6, 3, 5, 7, 4];
    let bases: Vec<Vec<Vec<f64>>> = ks.iter().map(|&k| orthonormal(&mut rng, N, k)).collect();
    let basis_of = vec![0, 0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 6];
    let steps = basis_of.len();
    let a = spd(&mut rng, N, 50.0);
    let hessian = combine(1.0, &a, -5.0, &identity(N));
    Scenario {
        bases,
        grads: (0..steps).map(|_| rng.vector(N)).collect(),
        extra: (0..steps).map(|_| rng.vector(N)).collect(),
        probes: (0..steps)
            .map(|t| {
                let count = match t % 3 {
                    1 => 0,
                    _ if t == 5 => 2,
                    _ => 1,
                };
                (0..count).map(|_| rng.vector(N)).collect()
            })
            .collect(),
        jacobians: (0..steps)
            .map(|t| (t % 4 != 2).then(|| (0..2 + t % 3).map(|_| rng.vector(N)).collect()))
            .collect(),
        basis_of,
        hessian,
    }
}

/// Steps `steps` of `member` through the scenario with basis column j of basis b multiplied by
/// flip(b, j); returns each step's parameter update Q·û.
fn run(
    member: &mut dyn Inner,
    s: &Scenario,
    steps: Range<usize>,
    flip: &dyn Fn(usize, usize) -> f64,
) -> Vec<Vec<f64>> {
    let basis = |t: usize| -> Vec<Vec<f64>> {
        let b = s.basis_of[t];
        s.bases[b]
            .iter()
            .enumerate()
            .map(|(j, col)| col.iter().map(|x| x * flip(b, j)).collect())
            .collect()
    };
    let project =
        |q: &[Vec<f64>], v: &[f64]| -> Vec<f64> { q.iter().map(|col| dot(col, v)).collect() };
    let mut updates = Vec::new();
    for t in steps {
        let q = basis(t);
        if t > 0 && s.basis_of[t] != s.basis_of[t - 1] {
            member.reproject(&change(&q, &basis(t - 1)), &mut Rng::new(0));
        }
        let with_extra: Vec<f64> = s.grads[t]
            .iter()
            .zip(&s.extra[t])
            .map(|(a, b)| a + b)
            .collect();
        let inputs = Inputs {
            u: project(&q, &with_extra),
            g: project(&q, &s.grads[t]),
            z: s.probes[t].iter().map(|z| project(&q, z)).collect(),
            hz: s.probes[t]
                .iter()
                .map(|z| project(&q, &apply(&s.hessian, z)))
                .collect(),
            jacobian: s.jacobians[t]
                .as_ref()
                .map(|rows| Mat::from_fn(q.len(), rows.len(), |a, r| dot(&q[a], &rows[r]))),
        };
        let u = step(member, &inputs);
        updates.push(
            (0..N)
                .map(|i| q.iter().zip(&u).map(|(col, x)| col[i] * x).sum())
                .collect(),
        );
    }
    updates
}

const NO_FLIP: &dyn Fn(usize, usize) -> f64 = &|_, _| 1.0;

// ---------------------------------------------------------------------------------------------
// (c) Sign-flip invariance
// ---------------------------------------------------------------------------------------------

#[test]
fn parameter_updates_are_invariant_to_basis_sign_flips() {
    let s = scenario();
    let steps = s.basis_of.len();
    for spec in MEMBERS {
        let reference = run(build(spec).as_mut(), &s, 0..steps, NO_FLIP);
        let flipped = run(build(spec).as_mut(), &s, 0..steps, &|b, j| {
            if (b * 7 + j * 3) % 5 < 2 { -1.0 } else { 1.0 }
        });
        assert!(
            reference.iter().flatten().any(|x| x.abs() > 1e-6),
            "{spec}: the updates should not vanish"
        );
        for (t, (a, b)) in reference.iter().zip(&flipped).enumerate() {
            assert_close(a, b, 1e-9, &format!("{spec}: update at step {t}"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (e) Save → load → continue, bit for bit
// ---------------------------------------------------------------------------------------------

fn save(member: &dyn Inner) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut enc = Encoder::new(&mut bytes, "inner test", N, lre::Dtype::F64);
    enc.push("member");
    member.save(&mut enc);
    enc.pop();
    enc.finish().unwrap();
    bytes
}

fn load(member: &mut dyn Inner, bytes: &[u8]) {
    let mut dec = Decoder::new(bytes).unwrap();
    dec.push("member");
    member.load(&mut dec).unwrap();
    dec.pop();
    dec.finish().expect("every saved buffer is read back");
}

fn bits(updates: &[Vec<f64>]) -> Vec<u64> {
    updates.iter().flatten().map(|x| x.to_bits()).collect()
}

#[test]
fn save_load_continue_is_bit_exact() {
    let s = scenario();
    let steps = s.basis_of.len();
    for spec in MEMBERS {
        let straight = bits(&run(build(spec).as_mut(), &s, 0..steps, NO_FLIP));
        // Splits before the first step, right after a basis change, between changes (a stale
        // preconditioner) and at the end.
        for split in [0, 1, 3, 4, 9, steps] {
            let mut first = build(spec);
            let mut updates = run(first.as_mut(), &s, 0..split, NO_FLIP);
            let blob = save(first.as_ref());
            let mut resumed = build(spec);
            load(resumed.as_mut(), &blob);
            assert_eq!(
                save(resumed.as_ref()),
                blob,
                "{spec}: re-saving after a load"
            );
            updates.extend(run(resumed.as_mut(), &s, split..steps, NO_FLIP));
            assert_eq!(
                bits(&updates),
                straight,
                "{spec}: resumed after {split} steps"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (d) Convergence
// ---------------------------------------------------------------------------------------------

/// Minimizes f(x) = ½xᵀAx in k-space with a fixed basis that is re-announced every step (C = I:
/// full-matrix members refresh their preconditioner as with a basis updated every step). Hessian
/// members get a probe per step (Hz = A·z), Jacobian members J with J·Jᵀ = A. Returns f(x_T)/f(x_0).
fn minimize(spec: &str, lr: f64, steps: usize) -> f64 {
    let k = 6;
    let mut rng = Xorshift(47);
    let r = orthonormal(&mut rng, k, k);
    let lambdas: Vec<f64> = (0..k)
        .map(|i| 30f64.powf(i as f64 / (k - 1) as f64))
        .collect();
    let a = (0..k).fold(vec![vec![0.0; k]; k], |a, i| {
        combine(1.0, &a, lambdas[i], &outer(&r[i], &r[i]))
    });
    let jacobian = Mat::from_fn(k, k, |row, col| r[col][row] * lambdas[col].sqrt());
    let f = |x: &[f64]| 0.5 * dot(x, &apply(&a, x));
    let mut x = vec![1.0; k];
    let f0 = f(&x);
    let mut member = build(spec);
    for _ in 0..steps {
        let g = apply(&a, &x);
        let z = rng.vector(k);
        let inputs = Inputs {
            jacobian: Some(jacobian.clone()),
            ..Inputs::gradient(&g).with_probes(vec![z.clone()], vec![apply(&a, &z)])
        };
        let u = step(member.as_mut(), &inputs);
        member.reproject(&Mat::identity(k, k), &mut Rng::new(0));
        x.iter_mut().zip(&u).for_each(|(xi, ui)| *xi -= lr * ui);
    }
    f(&x) / f0
}

#[test]
fn every_member_minimizes_a_rotated_quadratic() {
    for (spec, lr, target) in [
        ("full_matrix_adam", 0.02, 1e-3),
        ("hutchinson_adam", 0.02, 1e-3),
        ("hutchinson_adam(square=false)", 0.1, 1e-3),
        ("full_matrix_hutchinson_adam", 0.3, 1e-6),
        ("full_matrix_bfgs_adam", 0.3, 1e-6),
        ("cubic_adam", 0.02, 1e-3),
        ("lion", 0.01, 1e-3),
        ("clip_norm", 0.03, 1e-3),
        ("clip_value", 0.03, 1e-3),
        ("copy_grad_sign", 0.03, 1e-3),
        ("sign", 0.01, 1e-3),
        ("normalize", 0.01, 1e-3),
        ("nan_to_zero", 0.03, 1e-3),
        ("natural_gradient", 0.5, 1e-12),
        ("gauss_newton", 0.5, 1e-12),
    ] {
        let ratio = minimize(spec, lr, 400);
        assert!(
            ratio < target,
            "{spec}: f dropped only to {ratio:.3e} of its start"
        );
    }
}

#[test]
fn gradient_only_members_train_through_the_optimizer() {
    // f(x) = ½·Σ_i (i+1)·(rotated x)_i², n = 8, through ggt and the whole step loop.
    let n = 8;
    let mut rng = Xorshift(53);
    let r = orthonormal(&mut rng, n, n);
    let grad = |x: &[f64]| -> Vec<f64> {
        let y: Vec<f64> = r
            .iter()
            .enumerate()
            .map(|(i, v)| (i + 1) as f64 * dot(v, x))
            .collect();
        (0..n)
            .map(|j| r.iter().zip(&y).map(|(v, yi)| v[j] * yi).sum())
            .collect()
    };
    let loss = |x: &[f64]| 0.5 * dot(x, &grad(x));
    for (chain, lr) in [
        ("full_matrix_adam", 0.05),
        ("cubic_adam", 0.05),
        ("lion", 0.01),
        ("clip_norm", 0.1),
        ("clip_value", 0.1),
        ("copy_grad_sign", 0.1),
        ("sign", 0.01),
        ("normalize", 0.01),
        ("nan_to_zero", 0.1),
    ] {
        let spec = format!("basis=ggt(history_size=8); chain=[{chain}]; lr={lr}; dtype=f64");
        let mut opt = lre::CpuOptimizer::<f64>::from_spec(&spec, n).unwrap();
        let mut x = vec![1.0; n];
        let start = loss(&x);
        for _ in 0..500 {
            let g = grad(&x);
            opt.step(&mut x, &g).unwrap();
        }
        let ratio = loss(&x) / start;
        assert!(
            ratio < 1e-2,
            "{spec}: loss dropped only to {ratio:.3e} of its start"
        );
    }
}
