//! RandomizedEigen (docs/algorithm.md §3.4, §4.6): every update re-sketches the accumulator
//! A = w_old·Q·diag(L)·Qᵀ + w_new·U·diag(α)·Uᵀ with a fresh Gaussian test matrix Ω (n×l,
//! l = rank + oversampling, capped at n): Y = A·Ω, P = orth(Y), (λ, S) = eig(PᵀA·P), round 1
//! (truncate = rank, eig_tol, damping, rdamping, abs), Q ← P·S, then the EMA convention of
//! §3.1 with the §7 item 5 fixes.
//!
//! Everything after drawing Ω is exact algebra on the small products of `sketch.rs` (one pass
//! for QᵀΩ, UᵀΩ, QᵀU, UᵀU and one to write Q): Y = Z·diag(a)·ZᵀΩ for Z = [Q, U], P is
//! orthonormalized in Z-coordinates (CholeskyQR2 in the metric ZᵀZ, dropping directions below
//! 1000 ε — so P spans exactly the sketched range and no round-off directions pad the basis,
//! unlike the reference's QR of the rounded Y, §3.4 note), and PᵀA·P needs no second pass.
//! A failed eigendecomposition keeps the previous basis (the reference also keeps the old
//! eigenpairs, but then decays and re-regularizes them). Corrections must be symmetric.

use super::ortho::span_tolerance;
use super::sketch::{Method, Sketched, orthonormalize};
use super::Outcome;
use crate::correction::Correction;
use crate::backend::Backend;
use crate::component::Component;
use crate::error::Result;
use crate::linalg::{mul, mul_tn, regularize_eigen, symmetric_eigen};
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::Dims;
use super::{ABS, BETA, Basis, DAMPING, Declared, RANK, RDAMPING, UPDATE_ABS, UPDATE_EIG_TOL, UPDATE_RDAMPING, UPDATE_TRUNCATE, eig_tol, update_damping};
use crate::component::int;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "randomized_eigen",
        params: &[
            RANK,
            BETA,
            int("oversampling", 10, 0, "extra sketch columns"),
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
        summary: "EMA of corrections, re-sketched by a randomized eigendecomposition",
    },
];

pub fn build_seeded<B: Backend + 'static>(c: &Component, (be, seed): (&B, u64)) -> Result<Box<dyn Basis<B>>> {
    Ok(Box::new(new(c, be, seed)?))
}

pub fn state(c: &Component, dims: &Dims) -> Declared {
    super::sketch::declared(c, dims, false)
}

pub fn new<B: Backend>(c: &Component, be: &B, seed: u64) -> Result<Sketched<B>> {
    Sketched::new(c, be, seed, Method::Randomized, update::<B>)
}

/// One update (the module doc); `Sketched::update` has made room for the correction.
pub fn update<B: Backend>(
    s: &mut Sketched<B>,
    be: &B,
    correction: &Correction<'_, B::Vector>,
) -> Result<Outcome> {
    s.draw_test_matrix(be);
    let products = s.products(be, correction)?;
    if let Some(kept) = s.refuse_non_finite(&products) {
        return Ok(kept);
    }
    let m = products.az.len();
    // Y = A·Ω = Z·(diag(a)·ZᵀΩ); P = orth(Y) = Z·cp.
    let y = Mat::from_fn(m, s.width, |i, j| products.az[i] * products.zo[(i, j)]);
    let cp = orthonormalize(&y, &products.zz, span_tolerance::<B::Elem>());
    // PᵀA·P = (ZᵀZ·cp)ᵀ·diag(a)·(ZᵀZ·cp).
    let g = mul(products.zz.as_ref(), cp.as_ref());
    let scaled = Mat::from_fn(m, g.ncols(), |i, j| products.az[i] * g[(i, j)]);
    let w = mul_tn(g.as_ref(), scaled.as_ref());
    let (values, rotation) = match w.nrows() {
        0 => (Vec::new(), Mat::zeros(0, 0)),
        _ => match symmetric_eigen(&w).map(|(l, v)| regularize_eigen(&l, &v, &s.round1)) {
            Ok(Some(kept)) => kept,
            Ok(None) => {
                let why = "randomized_eigen: no finite eigenvalue".to_string();
                return Ok(s.keep(&products, why));
            }
            Err(e) => {
                let why = format!("randomized_eigen eigendecomposition failed: {e}");
                return Ok(s.keep(&products, why));
            }
        },
    };
    let coef = mul(cp.as_ref(), rotation.as_ref());
    let c = correction.columns.len();
    let inputs = s.z_columns(c);
    Ok(s.commit(be, &inputs, &products.zz, (coef, values), c))
}
