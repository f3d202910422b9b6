//! Bases: the k-dimensional subspace the inner optimizer works in (docs/algorithm.md §3).
//!
//! A basis is implicit: it answers projections (Qᵀg), adds unprojections (y += α·Q·u) and, when
//! it changes, gives the change of basis C = Q_newᵀQ_old once for the whole chain. It never has
//! to materialize an n×k Q.

pub mod common_directions;
pub mod eigen;
mod ema;
pub mod full_matrix;
pub mod ggt;
pub mod hebbian_learning;
pub mod identity;
pub mod low_rank;
pub mod nystrom;
mod ortho;
mod projection;
pub mod random;
pub mod randomized_eigen;
pub mod sketch;
mod store;

use crate::backend::Backend;
use crate::component::{
    Component, ComponentSpec, Family, Range, boolean, float, int, opt_float, opt_int, word,
};
use crate::error::Result;
use crate::state::{Decoder, Encoder};
use faer::Mat;

/// A low-rank correction Y·diag(α)·Zᵀ (Z absent: symmetric Y·diag(α)·Yᵀ), columns oldest first.
pub struct Correction<'a, V> {
    pub columns: Vec<&'a V>,
    pub alpha: Vec<f64>,
    pub z: Option<Vec<&'a V>>,
    /// Which column, if any, is this step's gradient (lets a basis project it for free).
    pub gradient_column: Option<usize>,
}

/// What the inner optimizers need after a successful basis update.
#[derive(Clone, Debug, PartialEq)]
pub struct BasisChange {
    /// C = Q_newᵀQ_old (k_new × k_old); `None` for the first basis.
    pub change: Option<Mat<f64>>,
}

/// The result of offering a correction to a basis.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The basis changed; reproject the inner state with this.
    Changed(BasisChange),
    /// The basis is the same as before (nothing to do, or the update failed and the previous
    /// basis is kept: `failure` says why).
    Unchanged { failure: Option<String> },
}

/// What to project.
pub enum Source<'a, V> {
    /// Column `j` of the correction just given to `update` (may be free: products are cached).
    CorrectionColumn(usize, &'a V),
    /// Any other n-vector.
    Vector(&'a V),
}

/// A basis over backend `B`.
pub trait Basis<B: Backend>: Send {
    /// Reserves what an update with `new_columns` correction columns needs, before the step
    /// changes anything (so running out of memory changes nothing).
    fn prepare(&mut self, _be: &B, _new_columns: usize) -> Result<()> {
        Ok(())
    }

    /// Absorbs a correction. Errors are refusals of the input (nothing changed); a numerical
    /// failure is `Outcome::Unchanged` with the previous basis kept.
    fn update(&mut self, be: &B, correction: &Correction<'_, B::Vector>) -> Result<Outcome>;

    /// Current number of basis vectors k, or `None` before the first successful update.
    fn rank(&self) -> Option<usize>;

    /// The regularized eigenvalues handed to the inner optimizers (ascending, length k), for
    /// bases that have them.
    fn eigenvalues(&self) -> Option<&[f64]>;

    /// Whether this basis has eigenvalues at all (`l_inv` and `l_inv_sqrt` need them).
    fn provides_eigenvalues(&self) -> bool;

    /// out ← Qᵀv (length k). Only called once `rank()` is `Some`.
    fn project(&mut self, be: &B, v: Source<'_, B::Vector>, out: &mut Vec<f64>);

    /// y ← y + α·Q·u. Only called once `rank()` is `Some`.
    fn add_unprojected(&mut self, be: &B, u: &[f64], alpha: f64, y: B::InOut<'_>);

    /// out ← Q·diag(L)·Qᵀ·v, the current curvature approximation applied to v (BFGS and SR1
    /// need B·s). Returns false, leaving `out` unspecified, when there is no basis yet or it
    /// has no eigenvalues.
    fn apply_curvature(&mut self, be: &B, v: &B::Vector, out: &mut B::Vector) -> bool {
        let (Some(_), true) = (self.rank(), self.provides_eigenvalues()) else {
            return false;
        };
        let mut coords = Vec::new();
        self.project(be, Source::Vector(v), &mut coords);
        let values = self.eigenvalues().unwrap_or(&[]);
        coords.iter_mut().zip(values).for_each(|(c, l)| *c *= l);
        be.scale(0.0, out);
        self.add_unprojected(be, &coords, 1.0, be.as_inout(out));
        true
    }

    /// Bytes of n-sized state held (for memory reports).
    fn state_bytes(&self, be: &B) -> usize;

    /// Writes the basis's state.
    fn save(&self, be: &B, enc: &mut Encoder<'_>);

    /// Reads the state written by `save` (into a freshly built basis).
    fn load(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()>;
}

/// Creates the basis `c` for n-vectors on backend `be`, with random draws from seed 0.
pub fn build<B: Backend + 'static>(c: &Component, be: &B) -> Result<Box<dyn Basis<B>>> {
    build_seeded(c, be, 0)
}

/// Creates the basis `c`; the random bases (random, randomized_eigen, nystrom,
/// hebbian_learning) draw their Gaussian matrices from the backend's counter-based stream
/// under keys made from `seed` (the optimizer's seed).
pub fn build_seeded<B: Backend + 'static>(
    c: &Component,
    be: &B,
    seed: u64,
) -> Result<Box<dyn Basis<B>>> {
    match c.name() {
        "ggt" => Ok(Box::new(ggt::Ggt::new(c, be)?)),
        "identity" => Ok(Box::new(identity::Identity::new(be))),
        "full_matrix" => Ok(Box::new(full_matrix::FullMatrix::new(c, be)?)),
        "eigen" => Ok(Box::new(eigen::Eigen::new(c, be)?)),
        "low_rank" => Ok(Box::new(low_rank::new(c, be)?)),
        "common_directions" => Ok(Box::new(common_directions::CommonDirections::new(c, be)?)),
        "random" => Ok(Box::new(random::Random::new(c, be, seed)?)),
        "randomized_eigen" => Ok(Box::new(randomized_eigen::new(c, be, seed)?)),
        "nystrom" => Ok(Box::new(nystrom::new(c, be, seed)?)),
        "hebbian_learning" => Ok(Box::new(hebbian_learning::HebbianLearning::new(
            c, be, seed,
        )?)),
        other => Err(FAMILY.unsupported(other)),
    }
}

const RANK: crate::component::ParamSpec = int(
    "rank",
    100,
    1,
    "maximum number of basis vectors (capped at n)",
);
const BETA: crate::component::ParamSpec = opt_float(
    "beta",
    Some(0.99),
    Range::BETA,
    "EMA decay of the accumulated matrix; none = plain sum",
);
const DAMPING: crate::component::ParamSpec = float(
    "damping",
    0.0,
    Range::NON_NEGATIVE,
    "added to every eigenvalue",
);
const RDAMPING: crate::component::ParamSpec = float(
    "rdamping",
    0.0,
    Range::NON_NEGATIVE,
    "added to every eigenvalue, times the largest",
);
const ABS: crate::component::ParamSpec = boolean("abs", false, "use |eigenvalues| (re-sorted)");
const TRUNCATE: crate::component::ParamSpec =
    opt_int("truncate", None, 1, "keep at most this many eigenpairs");
const UPDATE_TRUNCATE: crate::component::ParamSpec = opt_int(
    "update_truncate",
    None,
    1,
    "second round: keep at most this many for the inner optimizer",
);
const UPDATE_EIG_TOL: crate::component::ParamSpec = opt_float(
    "update_eig_tol",
    None,
    Range::NON_NEGATIVE,
    "second round: relative eigenvalue cut-off",
);
const UPDATE_RDAMPING: crate::component::ParamSpec = float(
    "update_rdamping",
    0.0,
    Range::NON_NEGATIVE,
    "second round: relative damping",
);
const UPDATE_ABS: crate::component::ParamSpec =
    boolean("update_abs", false, "second round: use |eigenvalues|");

const fn eig_tol(default: f64) -> crate::component::ParamSpec {
    opt_float(
        "eig_tol",
        Some(default),
        Range::NON_NEGATIVE,
        "drop eigenvalues <= eig_tol × the largest",
    )
}
const fn update_damping(default: f64) -> crate::component::ParamSpec {
    float(
        "update_damping",
        default,
        Range::NON_NEGATIVE,
        "second round: damping for the inner optimizer",
    )
}

/// Every basis the spec parser knows (docs/algorithm.md §3, Appendix B).
pub static FAMILY: Family = Family {
    what: "basis",
    components: &[
        ComponentSpec {
            name: "ggt",
            params: &[
                int("history_size", 100, 1, "window of correction columns"),
                TRUNCATE,
                eig_tol(1e-5),
                DAMPING,
                RDAMPING,
                ABS,
            ],
            implemented: true,
            summary: "eigenbasis of the last history_size corrections, kept implicit: O(n·m) per step",
        },
        ComponentSpec {
            name: "eigen",
            params: &[
                RANK,
                BETA,
                eig_tol(1e-4),
                DAMPING,
                RDAMPING,
                ABS,
                UPDATE_TRUNCATE,
                UPDATE_EIG_TOL,
                update_damping(1e-4),
                UPDATE_RDAMPING,
                UPDATE_ABS,
            ],
            implemented: true,
            summary: "rank-limited EMA of corrections, updated by low-rank eigen-updates",
        },
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
            implemented: true,
            summary: "EMA of corrections, re-sketched by a randomized eigendecomposition",
        },
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
            implemented: true,
            summary: "EMA of corrections, Nyström approximation",
        },
        ComponentSpec {
            name: "hebbian_learning",
            params: &[
                RANK,
                float("lr", 1e-2, Range::POSITIVE, "learning rate of the basis"),
                opt_float(
                    "value_clip",
                    None,
                    Range::POSITIVE,
                    "clip direction entries",
                ),
                opt_float(
                    "norm_clip",
                    None,
                    Range::POSITIVE,
                    "clip the direction's norm",
                ),
                word(
                    "opt",
                    "adamg",
                    &["adamg", "gd", "stiefel_gd"],
                    "optimizer of the basis",
                ),
                float("beta1", 0.9, Range::BETA, "AdamG first-moment decay"),
                float("beta2", 0.99, Range::BETA, "AdamG second-moment decay"),
                float("eps", 1e-8, Range::POSITIVE, "AdamG epsilon"),
                opt_int(
                    "reortho_freq",
                    None,
                    1,
                    "re-orthogonalize every this many updates",
                ),
            ],
            implemented: true,
            summary: "principal subspace learned by generalized Hebbian learning on the Stiefel manifold",
        },
        ComponentSpec {
            name: "full_matrix",
            params: &[BETA, TRUNCATE, eig_tol(1e-12), DAMPING, RDAMPING, ABS],
            implemented: true,
            summary: "dense n×n matrix, full eigendecomposition each update (n <= 1024; for tests and 2-D problems)",
        },
        ComponentSpec {
            name: "random",
            params: &[
                RANK,
                int("generate_freq", 1, 1, "updates between new random bases"),
            ],
            implemented: true,
            summary: "random orthonormal subspace",
        },
        ComponentSpec {
            name: "identity",
            params: &[],
            implemented: true,
            summary: "Q = I (k = n): the inner chain runs on the full gradient; basis=identity; chain=[adam] is Adam",
        },
        ComponentSpec {
            name: "common_directions",
            params: &[RANK],
            implemented: true,
            summary: "orthonormal window of correction directions (common-directions method)",
        },
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
            implemented: true,
            summary: "decayed low-rank factor of corrections",
        },
    ],
    aliases: &[],
};
