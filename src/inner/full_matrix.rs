//! State shared by the full-matrix members (docs/algorithm.md §5.11 full_matrix_adam, §5.13
//! full_matrix_hutchinson_adam, §5.14 full_matrix_bfgs_adam): a first moment m, a k×k matrix S
//! (the second moment Σ, the Hutchinson Hessian H or the BFGS matrix B), the AMSGrad maximum d of
//! its diagonal, and the cached preconditioner P, a function of the debiased S.
//!
//! Shared rules:
//! * S starts at the identity I_k and is debiased by 1/(1−β2^t) like a zero-started EMA, so at
//!   t = 1 it is β2/(1−β2)·I ≈ 99·I plus the first estimate (≈ 100·I for B, whose BFGS estimate
//!   itself starts from I): an implicit warm-up that fades like β2^t/(1−β2^t). This reproduces
//!   the reference (Compat, §7 item 14).
//! * P is computed on the first step and after every basis change, and reused in between (the
//!   reference's "reprojected" flag is `preconditioner = None` here): between basis updates, for
//!   example with update_freq > 1, P is stale by design.
//! * AMSGrad: whenever S is updated, d ← max(β_a·d, diag S) (d starts at 0 at the first update);
//!   P is computed from S' = S with its diagonal replaced by d. (The Hessian members of the
//!   reference substitute d only on steps with a sample; in the optimizer that is the same,
//!   because P is only recomputed after basis changes, which happen on the update steps that
//!   bring the samples.)
//! * Reprojection (§5.2): m ← C·m; d ← diag(C·S'·Cᵀ); S ← C·S·Cᵀ (new directions start at zero,
//!   not at the identity); P is dropped.

use super::reproject::{first_moment, matrix, matrix_diagonal, with_diagonal};
use crate::component::Component;
use crate::error::{Error, Result, Status};
use crate::linalg::{Regularization, mat_vec};
use crate::state::{Decoder, Encoder, get_matrix, put_matrix};
use faer::Mat;

#[derive(Clone, Debug, PartialEq)]
pub struct FullMatrixState {
    pub m: Vec<f64>,
    /// Steps taken so far (the next step is t + 1).
    pub t: u64,
    /// S: Σ, H or B.
    pub matrix: Mat<f64>,
    /// The AMSGrad maximum of diag S (unset until S is first updated with AMSGrad on).
    pub diag_max: Option<Vec<f64>>,
    /// P, unset until the next step computes it.
    pub preconditioner: Option<Mat<f64>>,
}

impl FullMatrixState {
    pub fn new(k: usize) -> Self {
        FullMatrixState {
            m: vec![0.0; k],
            t: 0,
            matrix: Mat::identity(k, k),
            diag_max: None,
            preconditioner: None,
        }
    }

    /// Starts a step: t ← t + 1, m ← β1·m + (1−β1)·u.
    pub fn begin(&mut self, u: &[f64], beta1: f64) {
        self.t += 1;
        for (m, x) in self.m.iter_mut().zip(u) {
            *m = beta1 * *m + (1.0 - beta1) * x;
        }
    }

    /// S ← β·S + (1−β)·E, then the AMSGrad maximum of the new diagonal.
    pub fn blend(&mut self, beta: f64, estimate: &Mat<f64>, amsgrad_beta: Option<f64>) {
        self.matrix = Mat::from_fn(self.matrix.nrows(), self.matrix.ncols(), |i, j| {
            beta * self.matrix[(i, j)] + (1.0 - beta) * estimate[(i, j)]
        });
        self.track_diagonal(amsgrad_beta);
    }

    /// S ← E (no averaging), then the AMSGrad maximum of the new diagonal.
    pub fn replace(&mut self, estimate: Mat<f64>, amsgrad_beta: Option<f64>) {
        self.matrix = estimate;
        self.track_diagonal(amsgrad_beta);
    }

    fn track_diagonal(&mut self, amsgrad_beta: Option<f64>) {
        let Some(decay) = amsgrad_beta else { return };
        let k = self.matrix.nrows();
        let d = self.diag_max.get_or_insert_with(|| vec![0.0; k]);
        for (i, di) in d.iter_mut().enumerate() {
            *di = (decay * *di).max(self.matrix[(i, i)]);
        }
    }

    /// S'/bias + ε·I, what the preconditioner is a function of (S' = S with diag d).
    pub fn debiased(&self, bias: f64, eps: f64) -> Mat<f64> {
        let s = match &self.diag_max {
            Some(d) => with_diagonal(&self.matrix, d),
            None => self.matrix.clone(),
        };
        Mat::from_fn(s.nrows(), s.ncols(), |i, j| {
            s[(i, j)] / bias + if i == j { eps } else { 0.0 }
        })
    }

    /// u ← P·m̂ with m̂ = m/(1−β1^t), computing P with `refresh` first if it is unset.
    pub fn precondition(
        &mut self,
        u: &mut Vec<f64>,
        beta1: f64,
        refresh: impl FnOnce(&Self) -> Mat<f64>,
    ) {
        if self.preconditioner.is_none() {
            self.preconditioner = Some(refresh(self));
        }
        let p = self.preconditioner.as_ref().expect("computed above");
        let bias1 = 1.0 - beta1.powf(self.t as f64);
        let m_hat: Vec<f64> = self.m.iter().map(|m| m / bias1).collect();
        *u = mat_vec(p.as_ref(), &m_hat);
    }

    /// Forgets the cached preconditioner, so the next step recomputes it.
    pub fn refresh(&mut self) {
        self.preconditioner = None;
    }

    pub fn reproject(&mut self, c: &Mat<f64>) {
        self.m = first_moment(c, &self.m);
        if let Some(d) = &mut self.diag_max {
            *d = matrix_diagonal(c, &self.matrix, d);
        }
        self.matrix = matrix(c, &self.matrix);
        self.preconditioner = None;
    }

    pub fn save(&self, enc: &mut Encoder<'_>) {
        enc.put_u64("t", self.t);
        enc.put("m", &[self.m.len()], &self.m);
        put_matrix(enc, "matrix", &self.matrix);
        if let Some(d) = &self.diag_max {
            enc.put("diag_max", &[d.len()], d);
        }
        if let Some(p) = &self.preconditioner {
            put_matrix(enc, "preconditioner", p);
        }
    }

    /// Reads what `save` wrote (`None`: saved before the first step). `diag_max` is only read
    /// with AMSGrad on, so a blob that has it otherwise is refused as having an unused buffer.
    pub fn load(dec: &mut Decoder<'_>, amsgrad: bool) -> Result<Option<Self>> {
        if !dec.has("t") {
            return Ok(None);
        }
        let t = dec.get_u64("t")?;
        let (m, shape) = dec.get::<f64>("m")?;
        let k = m.len();
        let matrix = square(dec, "matrix", k)?;
        let diag_max = if amsgrad && dec.has("diag_max") {
            Some(dec.get_shaped::<f64>("diag_max", &shape)?)
        } else {
            None
        };
        let preconditioner = if dec.has("preconditioner") {
            Some(square(dec, "preconditioner", k)?)
        } else {
            None
        };
        Ok(Some(FullMatrixState {
            m,
            t,
            matrix,
            diag_max,
            preconditioner,
        }))
    }
}

/// A k×k matrix written by `put_matrix`.
fn square(dec: &mut Decoder<'_>, name: &str, k: usize) -> Result<Mat<f64>> {
    let m = get_matrix(dec, name, Some(k))?;
    if m.ncols() != k {
        return Err(Error::new(
            Status::LRE_ERR_STATE,
            format!("buffer {name} is {k}×{}, expected {k}×{k}", m.ncols()),
        ));
    }
    Ok(m)
}

/// diag(f(A_ii)): the preconditioner used when the eigendecomposition or inverse fails.
pub fn diagonal_fallback(a: &Mat<f64>, f: impl Fn(f64) -> f64) -> Mat<f64> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| {
        if i == j { f(a[(i, i)]) } else { 0.0 }
    })
}

/// The (eig_tol, damping, rdamping) regularization of a preconditioner's eigendecomposition.
pub fn regularization(c: &Component, abs: bool) -> Regularization {
    Regularization {
        truncate: None,
        tol: Some(c.f64("eig_tol")),
        damping: c.f64("damping"),
        rdamping: c.f64("rdamping"),
        abs,
    }
}

/// The state every full-matrix member keeps: t, the first moment m, the k×k matrix, diag_max
/// with AMSGrad, and the k×k preconditioner.
pub fn state(
    c: &crate::component::Component,
    dims: &crate::state::layout::Dims,
) -> crate::state::layout::Layout {
    let k = dims.rank;
    let square = crate::state::layout::cells(k, k);
    let layout = crate::state::layout::Layout::new()
        .u64s("t", 1u8)
        .f64s("m", k as u128)
        .f64s("matrix", square)
        .f64s("preconditioner", square);
    match c.opt_f64("amsgrad_beta") {
        Some(_) => layout.f64s("diag_max", k as u128),
        None => layout,
    }
}

/// The `Inner` methods of a member whose whole state is `state: Option<FullMatrixState>` (with
/// an `amsgrad_beta: Option<f64>` field): refresh, reprojection, save and load.
macro_rules! full_matrix_state_methods {
    () => {
        fn basis_refreshed(&mut self) {
            if let Some(s) = &mut self.state {
                s.refresh();
            }
        }

        fn reproject(&mut self, c: &faer::Mat<f64>, _rng: &mut crate::rng::Rng) {
            if let Some(s) = &mut self.state {
                s.reproject(c);
            }
        }

        fn save(&self, enc: &mut crate::state::Encoder<'_>) {
            if let Some(s) = &self.state {
                s.save(enc);
            }
        }

        fn load(&mut self, dec: &mut crate::state::Decoder<'_>) -> crate::error::Result<()> {
            self.state = FullMatrixState::load(dec, self.amsgrad_beta.is_some())?;
            Ok(())
        }
    };
}
pub(super) use full_matrix_state_methods;
