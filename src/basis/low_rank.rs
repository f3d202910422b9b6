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

pub fn new<B: Backend>(c: &Component, be: &B) -> Result<Eigen<B>> {
    Eigen::with(Params::read(c, false, false), be)
}
