//! Nystrom (docs/algorithm.md §3.5, §4.7): the accumulator A = w_old·Q·diag(L)·Qᵀ +
//! w_new·U·diag(α)·Uᵀ is replaced by its Nyström approximation from an orthonormal test matrix
//! Ω (n×l, l = rank + oversampling capped at n, drawn anew every `omega_update_freq` updates):
//! Y_ν = A·Ω + ν·Ω with ν = ε·‖A·Ω‖_F, ΩᵀY_ν = L·Lᵀ (Cholesky), B = Y_ν·L^{-T}, B = U·Σ·Vᵀ,
//! eigenpairs (σ² − ν, U), then round 1, the EMA convention of §3.1 and round 2.
//!
//! Fixes (§7 item 1): the eigenpairs are kept ascending before they are regularized (the
//! reference truncated a descending list, keeping the smallest), and a Cholesky failure is
//! detected: the shift grows tenfold up to three times, then the update is skipped (the
//! previous basis is kept). Everything after Ω is exact algebra on the small products of
//! `sketch.rs` in the coordinates [Q, U, Ω]; ΩᵀΩ = I by its tall QR. Corrections must be
//! symmetric.

use super::sketch::{Method, Products, Sketched};
use super::Outcome;
use crate::correction::Correction;
use crate::backend::{Backend, Scalar};
use crate::elem::Dtype;
use crate::component::Component;
use crate::error::Result;
use crate::linalg::{
    cholesky_dropping, mul, mul_tn, regularize_eigen, symmetric_eigen, upper_inverse,
};
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::Dims;
use super::{ABS, BETA, Basis, DAMPING, Declared, RANK, RDAMPING, UPDATE_ABS, UPDATE_EIG_TOL, UPDATE_RDAMPING, UPDATE_TRUNCATE, eig_tol, update_damping};
use crate::component::int;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "nystrom",
        params: &[
            RANK,
            BETA,
            int("oversampling", 10, 0, "extra sketch columns"),
            int("omega_update_freq", 1, 1, "steps between new test matrices"),
            eig_tol(1e-12),
            DAMPING,
            RDAMPING,
            ABS,
            UPDATE_TRUNCATE,
            UPDATE_EIG_TOL,
            update_damping(1e-12),
            UPDATE_RDAMPING,
            UPDATE_ABS,
        ],
        summary: "EMA of corrections, Nyström approximation",
    },
];

pub fn build_seeded<B: Backend + 'static>(c: &Component, (be, seed): (&B, u64)) -> Result<Box<dyn Basis<B>>> {
    Ok(Box::new(new(c, be, seed)?))
}

pub fn state(c: &Component, dims: &Dims) -> Declared {
    super::sketch::declared(c, dims, true)
}

/// Tenfold shift increases tried when ΩᵀY_ν is not positive definite.
const SHIFT_RETRIES: usize = 3;

pub fn new<B: Backend>(c: &Component, be: &B, seed: u64) -> Result<Sketched<B>> {
    let method = Method::Nystrom {
        omega_update_freq: c.usize("omega_update_freq") as u64,
        has_omega: false,
    };
    Sketched::new(c, be, seed, method, update::<B>)
}

/// One update (the module doc); `Sketched::update` has made room for the correction.
pub fn update<B: Backend>(
    s: &mut Sketched<B>,
    be: &B,
    correction: &Correction<'_, B::Vector>,
) -> Result<Outcome> {
    let Method::Nystrom {
        omega_update_freq,
        has_omega,
    } = s.method
    else {
        unreachable!("nystrom::update on a randomized_eigen basis")
    };
    if !has_omega || s.ema.updates.is_multiple_of(omega_update_freq) {
        s.draw_test_matrix(be);
        let omega = s.omega();
        be.tall_qr(&mut s.matrix, &omega, true);
        s.method = Method::Nystrom {
            omega_update_freq,
            has_omega: true,
        };
    }
    let products = s.products(be, correction)?;
    if let Some(kept) = s.refuse_non_finite(&products) {
        return Ok(kept);
    }
    let (m, l) = (products.az.len(), s.width);
    let g = Mat::from_fn(m + l, m + l, |i, j| match (i < m, j < m) {
        (true, true) => products.zz[(i, j)],
        (true, false) => products.zo[(i, j - m)],
        (false, true) => products.zo[(j, i - m)],
        (false, false) => f64::from(u8::from(i == j)),
    });
    let (coef, lambda) = match approximation::<B>(&products, &g, l) {
        Ok(pair) => pair,
        Err(why) => return Ok(s.keep(&products, format!("nystrom: {why}"))),
    };
    // Ascending before regularizing (§7 item 1): λ from eig is ascending, σ² − ν keeps it.
    let (values, coef) = match lambda.is_empty() {
        true => (lambda, coef),
        false => match regularize_eigen(&lambda, &coef, &s.round1) {
            Some(kept) => kept,
            None => return Ok(s.keep(&products, "nystrom: no finite eigenvalue".into())),
        },
    };
    let c = correction.columns.len();
    let inputs: Vec<usize> = s.z_columns(c).into_iter().chain(s.omega()).collect();
    Ok(s.commit(be, &inputs, &g, (coef, values), c))
}

/// The Nyström eigenpairs in the coordinates [Q, U, Ω] with Gram matrix `g`, or why not.
fn approximation<B: Backend>(
    products: &Products,
    g: &Mat<f64>,
    l: usize,
) -> Result<(Mat<f64>, Vec<f64>), String> {
    let m = products.az.len();
    // A·Ω = [Q, U]·diag(a)·[Q, U]ᵀΩ.
    let y = Mat::from_fn(m + l, l, |i, j| match i < m {
        true => products.az[i] * products.zo[(i, j)],
        false => 0.0,
    });
    let gy = mul(g.as_ref(), y.as_ref());
    let norm = (0..l)
        .map(|j| (0..m + l).map(|i| y[(i, j)] * gy[(i, j)]).sum::<f64>())
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        return Ok((Mat::zeros(m + l, 0), Vec::new()));
    }
    let eps = match B::Elem::DTYPE {
        Dtype::F32 => f64::from(f32::EPSILON),
        Dtype::F64 => f64::EPSILON,
    };
    let mut nu = eps * norm;
    for _ in 0..=SHIFT_RETRIES {
        let y_nu = Mat::from_fn(m + l, l, |i, j| {
            y[(i, j)] + if i == m + j { nu } else { 0.0 }
        });
        let gy_nu = mul(g.as_ref(), y_nu.as_ref());
        // ΩᵀY_ν (symmetric): the Ω rows of G·Y_ν.
        let core = Mat::from_fn(l, l, |i, j| 0.5 * (gy_nu[(m + i, j)] + gy_nu[(m + j, i)]));
        let factor = cholesky_dropping(&core, &vec![0.0; l]);
        if factor.kept.len() < l {
            nu *= 10.0;
            continue;
        }
        // B = Y_ν·R⁻¹ (RᵀR = ΩᵀY_ν); BᵀB = VΣ²Vᵀ; U = B·V·Σ⁻¹.
        let b = mul(
            y_nu.as_ref(),
            upper_inverse(&factor.r, &factor.kept).as_ref(),
        );
        let btb = mul_tn(b.as_ref(), mul(g.as_ref(), b.as_ref()).as_ref());
        let (lambda, v) = symmetric_eigen(&btb).map_err(|e| e.to_string())?;
        let kept: Vec<usize> = (0..l).filter(|&i| lambda[i] > 0.0).collect();
        let bv = mul(b.as_ref(), v.as_ref());
        let coef = Mat::from_fn(m + l, kept.len(), |i, j| {
            bv[(i, kept[j])] / lambda[kept[j]].sqrt()
        });
        let values = kept.iter().map(|&i| lambda[i] - nu).collect();
        return Ok((coef, values));
    }
    Err(format!(
        "ΩᵀY_ν is not positive definite even with the shift ν = {nu:e} (A is indefinite?)"
    ))
}
