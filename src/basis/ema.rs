//! The EMA and debiasing convention of eigen, low_rank, randomized_eigen and nystrom
//! (docs/algorithm.md §3.1 with the §7 item 5 fixes).
//!
//! The accumulator is A ← w_old·A + w_new·Σ_j α_j·y_j·y_jᵀ with (w_old, w_new) = (β, 1 − β),
//! or (1, 1) when β = none. Unlike the reference, the first update is a regular update from an
//! empty accumulator (it regularizes, and handles α, like every other), and the bias correction
//! 1 − β^s counts EMA applications s (one per update, however many columns it has).
//!
//! Two regularization rounds: round 1 (truncate = rank, eig_tol, damping, rdamping, abs) cuts
//! the stored eigenpairs themselves (each basis applies it); round 2 (the update_* parameters)
//! only chooses what the inner optimizers see. As in the reference, round 2 is applied to the
//! stored, un-debiased eigenvalues and the result is divided by the bias correction.

use crate::linalg::{Regularization, regularize_eigen};
use faer::Mat;

/// The regularized basis handed to the inner optimizers: a subset of the stored eigenpairs.
#[derive(Clone, Debug, PartialEq)]
pub struct HandedOut {
    /// Positions in the stored eigenpairs (ascending in the handed-out eigenvalues).
    pub kept: Vec<usize>,
    /// The handed-out eigenvalues: round 2, then divided by the bias correction.
    pub eigenvalues: Vec<f64>,
}

impl HandedOut {
    /// C between two handed-out bases, from the change of the stored ones
    /// (C_stored = Q_newᵀQ_old): the rows and columns they keep.
    pub fn change_from(&self, previous: &HandedOut, stored: &Mat<f64>) -> Mat<f64> {
        Mat::from_fn(self.kept.len(), previous.kept.len(), |i, j| {
            stored[(self.kept[i], previous.kept[j])]
        })
    }
}

pub struct Ema {
    beta: Option<f64>,
    /// EMA applications so far.
    pub updates: u64,
    round2: Regularization,
}

impl Ema {
    pub fn new(beta: Option<f64>, round2: Regularization) -> Self {
        Ema {
            beta,
            updates: 0,
            round2,
        }
    }

    /// (w_old, w_new).
    pub fn weights(&self) -> (f64, f64) {
        self.beta.map_or((1.0, 1.0), |beta| (beta, 1.0 - beta))
    }

    /// Round 2 and the bias correction for the stored eigenvalues (ascending) after
    /// `self.updates` updates; `None` when none is finite.
    pub fn hand_out(&self, stored: &[f64]) -> Option<HandedOut> {
        if stored.is_empty() {
            return Some(HandedOut {
                kept: Vec::new(),
                eigenvalues: Vec::new(),
            });
        }
        let bias = self
            .beta
            .map_or(1.0, |beta| 1.0 - beta.powf(self.updates as f64));
        // Regularizing against a row of positions reads off which pairs are kept.
        let positions = Mat::from_fn(1, stored.len(), |_, j| j as f64);
        let (values, kept) = regularize_eigen(stored, &positions, &self.round2)?;
        Some(HandedOut {
            kept: kept.row(0).iter().map(|&j| j as usize).collect(),
            eigenvalues: values.iter().map(|v| v / bias).collect(),
        })
    }
}
