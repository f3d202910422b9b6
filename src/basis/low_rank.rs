//! LowRank (docs/algorithm.md §3.14) with the §7 item 4 fixes. The reference keeps a growing factor
//! U with UUᵀ ← β²·UUᵀ + (1−β)²·(new), counts n instead of updates (so it never debiases),
//! drops negative corrections and never caps the rank. Fixed, it is a "decayed Eigen":
//! A ← β·A + (1 − β)·Σ_j α_j·y_j·y_jᵀ, updates counted, rank capped at `rank`, signed α handled
//! by the eigendecomposition. So this is the [`Eigen`] basis with low_rank's parameters (it has
//! no `abs` switches: they were unused in the reference).

use super::eigen::{Eigen, Params};
use crate::backend::Backend;
use crate::component::Component;
use crate::error::Result;
use crate::component::ComponentSpec;
use crate::state::layout::Dims;
use super::{BETA, Basis, DAMPING, Declared, RANK, RDAMPING, UPDATE_EIG_TOL, UPDATE_RDAMPING, UPDATE_TRUNCATE, eig_tol, update_damping};

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "low_rank",
        params: &[
            RANK,
            BETA,
            eig_tol(1e-4),
            DAMPING,
            RDAMPING,
            UPDATE_TRUNCATE,
            UPDATE_EIG_TOL,
            update_damping(1e-4),
            UPDATE_RDAMPING,
        ],
        summary: "decayed low-rank factor of corrections",
    },
];

pub fn build_seeded<B: Backend + 'static>(c: &Component, (be, _seed): (&B, u64)) -> Result<Box<dyn Basis<B>>> {
    Ok(Box::new(new(c, be)?))
}

/// Eigen's state (the same update with low_rank's parameters).
pub fn state(c: &Component, dims: &Dims) -> Declared {
    super::eigen::state(c, dims)
}

pub fn new<B: Backend>(c: &Component, be: &B) -> Result<Eigen<B>> {
    Eigen::with(Params::read(c, false, false), be)
}
