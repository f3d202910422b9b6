//! Curvatures: what the low-rank matrix approximates and which corrections feed it
//! (docs/algorithm.md §2).
//!
//! Every step hands the curvature an [`Observation`]: the gradient and, depending on what the
//! curvature asks for in its [`Requirements`], per-sample gradients and values (batch steps), the
//! loss, and probe vectors with their Hessian-vector products. On update steps it returns a
//! correction for the basis.

pub mod adaptive_loss;
pub mod hessian;
pub mod history;
pub mod probes;

use crate::backend::Backend;
use crate::component::Component;
use crate::correction::Correction;
use crate::error::Result;
use crate::family::family;
use crate::rng::Rng;
use crate::state::layout::{Dims, Layout};
use crate::state::{Decoder, Encoder};

/// What a curvature may ask of the current approximation Q·diag(L)·Qᵀ (BFGS and SR1 correct
/// it; probes may be orthogonalized against it). The optimizer answers through its basis:
/// curvatures never see the basis itself.
pub trait Approximation<B: Backend> {
    /// Whether a basis exists yet (none before the first correction).
    fn has_basis(&self) -> bool;

    /// z ← z − Q·Qᵀz: one classical Gram–Schmidt pass against the basis.
    fn remove_span(&mut self, be: &B, z: &mut B::Vector);

    /// out ← Q·diag(L)·Qᵀ·s; false (out untouched) when the basis has no eigenvalues yet.
    fn times(&mut self, be: &B, s: &B::Vector, out: &mut B::Vector) -> bool;
}

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
        _approx: &mut dyn Approximation<B>,
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
        approx: &mut dyn Approximation<B>,
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

const Z_CHOICES: &[&str] = &["rademacher", "gaussian", "s", "g", "mixed"];

/// A curvature's declared state and the corrections it hands the basis.
pub struct Declared {
    pub layout: Layout,
    /// Most columns of one correction; None when it follows the batch size.
    pub columns: Option<usize>,
    /// Whether corrections arrive as column pairs Y·Zᵀ.
    pub paired: bool,
}

impl Declared {
    /// State `layout` and corrections of at most `columns` single columns.
    pub fn columns(layout: Layout, columns: usize) -> Declared {
        Declared {
            layout,
            columns: Some(columns),
            paired: false,
        }
    }
}

family! {
    /// Every curvature the spec parser knows (docs/algorithm.md §2.1), in the order of the
    /// README's component table.
    pub static FAMILY = "curvature", aliases: &[];
    members: covariance, hutchinson, bfgs, sr1, per_sample, unrolled_gauss_newton,
        covariance_times_loss;
    /// Creates the curvature `c`; `symmetrize` is the optimizer's setting (corrections Y·Zᵀ
    /// become ¼(Y+Z)(Y+Z)ᵀ).
    dispatch: pub fn build[B: Backend + 'static](c: &Component, symmetrize: bool) -> Result<Box<dyn Curvature<B>>>;
    /// The buffers curvature `c` keeps and the shape of its corrections.
    dispatch: pub fn state[](c: &Component, dims: &Dims) -> Declared;
}
