//! Curvatures: what the low-rank matrix approximates and which corrections feed it
//! (ALGORITHM.md §2).

pub mod covariance;

use crate::backend::Backend;
use crate::basis::Correction;
use crate::component::{Component, ComponentSpec, Family, Range, boolean, float, int, word};
use crate::error::Result;
use crate::state::{Decoder, Encoder};

/// A curvature over backend `B`.
pub trait Curvature<B: Backend>: Send {
    /// Hessian-vector products needed on an update step (0 for gradient-only curvatures).
    fn num_probes(&self) -> usize;

    /// Whether update steps provide per-sample Jacobians (empirical Fisher, Gauss-Newton).
    fn provides_jacobian(&self) -> bool {
        false
    }

    /// Reserves what this step needs before anything changes (so running out of memory changes
    /// nothing); returns the number of correction columns the step will produce.
    fn prepare(&mut self, be: &B, update: bool) -> Result<usize>;

    /// Sees this step's validated gradient `g`. On update steps returns the correction to give to
    /// the basis (columns oldest first); `None` when there is nothing to add.
    fn observe<'a>(
        &'a mut self,
        be: &B,
        g: &'a B::Vector,
        update: bool,
    ) -> Option<Correction<'a, B::Vector>>;

    /// Bytes of n-sized state held (for memory reports).
    fn state_bytes(&self, be: &B) -> usize;

    /// Writes the curvature's state.
    fn save(&self, be: &B, enc: &mut Encoder<'_>);

    /// Reads the state written by `save` (into a freshly built curvature).
    fn load(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()>;
}

/// Creates the curvature `c`.
pub fn build<B: Backend + 'static>(c: &Component) -> Result<Box<dyn Curvature<B>>> {
    match c.name() {
        "covariance" => Ok(Box::new(covariance::Covariance::<B>::new())),
        other => Err(FAMILY.unsupported(other)),
    }
}

const Z_CHOICES: &[&str] = &["rademacher", "gaussian", "s", "g", "mixed"];

/// Every curvature the spec parser knows (ALGORITHM.md §2.1).
pub static FAMILY: Family = Family {
    what: "curvature",
    components: &[
        ComponentSpec {
            name: "covariance",
            params: &[],
            implemented: true,
            summary: "gradient covariance: each gradient is a correction column",
        },
        ComponentSpec {
            name: "full_hutchinson_hessian",
            params: &[
                word("z", "rademacher", Z_CHOICES, "probe vector distribution"),
                boolean(
                    "orthogonalize",
                    false,
                    "project probes off the current basis",
                ),
            ],
            implemented: false,
            summary: "Hessian from one Hessian-vector product per update",
        },
        ComponentSpec {
            name: "bfgs",
            params: &[
                word("z", "s", Z_CHOICES, "probe vector (s: the previous step)"),
                boolean(
                    "orthogonalize",
                    true,
                    "project probes off the current basis",
                ),
                float("c", 0.2, Range::NON_NEGATIVE, "Powell damping"),
                float(
                    "tol",
                    1e-12,
                    Range::NON_NEGATIVE,
                    "skip updates with sᵀy <= tol",
                ),
            ],
            implemented: false,
            summary: "BFGS update with Hessian-vector products",
        },
        ComponentSpec {
            name: "sr1",
            params: &[
                word("z", "s", Z_CHOICES, "probe vector (s: the previous step)"),
                boolean(
                    "orthogonalize",
                    true,
                    "project probes off the current basis",
                ),
                float(
                    "tol",
                    1e-16,
                    Range::NON_NEGATIVE,
                    "skip updates with small |rᵀs|",
                ),
                boolean("inverse", false, "approximate the inverse Hessian"),
                boolean("positive_only", false, "drop negative updates"),
            ],
            implemented: false,
            summary: "symmetric rank-one update with Hessian-vector products",
        },
        ComponentSpec {
            name: "empirical_fisher",
            params: &[],
            implemented: false,
            summary: "per-sample gradients as correction columns",
        },
        ComponentSpec {
            name: "gauss_newton",
            params: &[],
            implemented: false,
            summary: "per-residual gradients (Jacobian rows) as correction columns",
        },
        ComponentSpec {
            name: "unrolled_gauss_newton",
            params: &[
                int("history_size", 10, 1, "gradients in the unrolled Jacobian"),
                boolean("adaptive", false, "subtract the minimum previous loss"),
            ],
            implemented: false,
            summary: "experimental: gradient history as a Gauss-Newton Jacobian",
        },
        ComponentSpec {
            name: "covariance_times_loss",
            params: &[boolean(
                "adaptive",
                true,
                "subtract the minimum previous loss",
            )],
            implemented: false,
            summary: "experimental: gradients scaled by the loss",
        },
    ],
    aliases: &[],
};
