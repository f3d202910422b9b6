//! Curvatures: what the low-rank matrix approximates and which corrections feed it
//! (docs/algorithm.md §2).
//!
//! Every step hands the curvature an [`Observation`]: the gradient and, depending on what the
//! curvature asks for in its [`Requirements`], per-sample gradients and values (batch steps), the
//! loss, and probe vectors with their Hessian-vector products. On update steps it returns a
//! correction for the basis.

pub mod adaptive_loss;
pub mod bfgs;
pub mod covariance;
pub mod covariance_times_loss;
pub mod hessian;
pub mod history;
pub mod hutchinson;
pub mod per_sample;
pub mod probes;
pub mod sr1;
pub mod unrolled_gauss_newton;

use crate::backend::Backend;
use crate::basis::{Basis, Correction};
use crate::component::{Component, ComponentSpec, Family, Range, boolean, float, int, word};
use crate::error::Result;
use crate::rng::Rng;
use crate::state::{Decoder, Encoder};

/// What a curvature needs from the caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requirements {
    /// Hessian-vector products per update step.
    pub probes: usize,
    /// The loss, set before each step (`set_loss`).
    pub loss: bool,
    /// Per-sample gradients (the batch step).
    pub samples: bool,
    /// Per-sample values with them (residuals).
    pub values: bool,
}

/// What one step gives the curvature.
pub struct Observation<'a, V> {
    /// The validated gradient of this step (on batch steps, formed by `batch_gradient`).
    pub grad: &'a V,
    /// Per-sample gradients of a batch step (empty otherwise).
    pub samples: &'a [V],
    /// Per-sample values (residuals for Gauss-Newton), if given.
    pub values: Option<&'a [f64]>,
    /// The loss set for this step, if any.
    pub loss: Option<f64>,
    /// Probe vectors and their Hessian-vector products, on update steps of Hessian curvatures.
    pub probes: &'a [V],
    pub hvps: &'a [V],
    /// Whether this is an update step.
    pub update: bool,
}

/// What a curvature makes of a step.
pub struct Observed<'a, V> {
    /// The correction for the basis (update steps), columns oldest first.
    pub correction: Option<Correction<'a, V>>,
    /// A gradient to step with instead of the observed one (unrolled Gauss-Newton).
    pub gradient: Option<&'a V>,
}

impl<V> Observed<'_, V> {
    pub fn nothing() -> Self {
        Observed {
            correction: None,
            gradient: None,
        }
    }
}

/// A curvature over backend `B`.
pub trait Curvature<B: Backend>: Send {
    /// What this curvature needs from the caller.
    fn requirements(&self) -> Requirements;

    /// Whether update steps provide per-sample Jacobians (empirical Fisher, Gauss-Newton).
    fn provides_jacobian(&self) -> bool {
        self.requirements().samples
    }

    /// Whether the correction needs the basis's eigenvalues (B·s of BFGS and SR1).
    fn needs_eigenvalues(&self) -> bool {
        false
    }

    /// The gradient of a batch step from per-sample gradients (and values): their sum, unless
    /// the curvature defines otherwise (Gauss-Newton: Jᵀr).
    fn batch_gradient(
        &self,
        be: &B,
        samples: &[B::Vector],
        _values: Option<&[f64]>,
        out: &mut B::Vector,
    ) {
        be.scale(0.0, out);
        for s in samples {
            be.axpy(1.0, s, out);
        }
    }

    /// Fills `probes` (one per required HVP) for this update step. Changes nothing: what the
    /// draw must remember is committed by `observe`.
    fn draw_probes(
        &self,
        _be: &B,
        _grad: &B::Vector,
        _basis: &mut dyn Basis<B>,
        _rng: &mut Rng,
        _probes: &mut [B::Vector],
    ) -> Result<()> {
        Ok(())
    }

    /// Reserves what this step needs before anything changes (so running out of memory changes
    /// nothing); returns how many vectors (columns of Y and of Z) the correction will have at
    /// most, so the basis can reserve too.
    /// `batch` is the number of per-sample gradients of a batch step (0 otherwise).
    fn prepare(&mut self, be: &B, update: bool, batch: usize) -> Result<usize>;

    /// Sees a validated step; on update steps returns the correction for the basis.
    fn observe<'a>(
        &'a mut self,
        be: &B,
        obs: &Observation<'a, B::Vector>,
        basis: &mut dyn Basis<B>,
    ) -> Observed<'a, B::Vector>;

    /// After the parameters moved; `next_update` says whether the next step updates.
    fn after_step(&mut self, _be: &B, _params: &B::InOut<'_>, _next_update: bool) {}

    /// Bytes of n-sized state held (for memory reports).
    fn state_bytes(&self, be: &B) -> usize;

    /// Writes the curvature's state.
    fn save(&self, be: &B, enc: &mut Encoder<'_>);

    /// Reads the state written by `save` (into a freshly built curvature).
    fn load(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()>;
}

/// Creates the curvature `c`; `symmetrize` is the optimizer's setting (corrections Y·Zᵀ become
/// ¼(Y+Z)(Y+Z)ᵀ).
pub fn build<B: Backend + 'static>(
    c: &Component,
    symmetrize: bool,
) -> Result<Box<dyn Curvature<B>>> {
    match c.name() {
        "covariance" => Ok(Box::new(covariance::Covariance::<B>::new())),
        "covariance_times_loss" => Ok(Box::new(
            covariance_times_loss::CovarianceTimesLoss::<B>::new(c),
        )),
        "unrolled_gauss_newton" => Ok(Box::new(
            unrolled_gauss_newton::UnrolledGaussNewton::<B>::new(c),
        )),
        "empirical_fisher" => Ok(Box::new(per_sample::PerSample::<B>::fisher())),
        "gauss_newton" => Ok(Box::new(per_sample::PerSample::<B>::gauss_newton())),
        "full_hutchinson_hessian" => Ok(Box::new(hessian::Hessian::new(
            c,
            hutchinson::Hutchinson::<B>::new(symmetrize),
        ))),
        "sr1" => Ok(Box::new(hessian::Hessian::new(c, sr1::Sr1::<B>::new(c)))),
        "bfgs" => Ok(Box::new(hessian::Hessian::new(c, bfgs::Bfgs::<B>::new(c)))),
        other => Err(FAMILY.unsupported(other)),
    }
}

const Z_CHOICES: &[&str] = &["rademacher", "gaussian", "s", "g", "mixed"];

/// Every curvature the spec parser knows (docs/algorithm.md §2.1).
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
            implemented: true,
            summary: "Hessian from one Hessian-vector product per update (correction Hz·zᵀ)",
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
            implemented: true,
            summary: "BFGS update with Hessian-vector products in place of gradient differences",
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
            implemented: true,
            summary: "symmetric rank-one update with Hessian-vector products",
        },
        ComponentSpec {
            name: "empirical_fisher",
            params: &[],
            implemented: true,
            summary: "per-sample gradients as correction columns (batch step)",
        },
        ComponentSpec {
            name: "gauss_newton",
            params: &[],
            implemented: true,
            summary: "per-residual gradients (Jacobian rows) as correction columns; gradient Jᵀr (batch step)",
        },
        ComponentSpec {
            name: "unrolled_gauss_newton",
            params: &[
                int("history_size", 10, 1, "gradients in the unrolled Jacobian"),
                boolean("adaptive", false, "subtract the minimum previous loss"),
            ],
            implemented: true,
            summary: "experimental: gradient history as a Gauss-Newton Jacobian (needs the loss)",
        },
        ComponentSpec {
            name: "covariance_times_loss",
            params: &[boolean(
                "adaptive",
                true,
                "subtract the minimum previous loss",
            )],
            implemented: true,
            summary: "experimental: gradients scaled by the loss (needs the loss)",
        },
    ],
    aliases: &[],
};
