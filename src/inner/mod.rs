//! Inner ("basis") optimizers: they live in k-space (f64 k-vectors on the host), see only the
//! projected gradient ĝ, the current eigenvalues and, when the basis changes, C = Q_newᵀQ_old
//! (docs/algorithm.md §5).

pub mod chain;
pub mod full_matrix;
pub mod reproject;

pub use chain::Chain;

use crate::component::{Component, Range, Value, float, opt_float};
use crate::error::Result;
use crate::family::{Alias, family};
use crate::rng::Rng;
use crate::state::layout::{Dims, Layout};
use crate::state::{Decoder, Encoder};
use faer::Mat;

/// Twice the smallest positive normal f64: the reference's "safe floor" for divisors.
pub const SAFE_FLOOR: f64 = 2.0 * f64::MIN_POSITIVE;

/// What an inner optimizer sees besides the update it transforms.
pub struct Context<'a> {
    /// ĝ = Qᵀg, the projected raw gradient (length k).
    pub grad: &'a [f64],
    /// The basis's regularized eigenvalues (length k), if it has them.
    pub eigenvalues: Option<&'a [f64]>,
    /// Projected probes and Hessian-vector products, on steps where a Hessian curvature
    /// computed them (docs/algorithm.md §1.3: the raw z and Hz, projected with the same Q).
    pub hessian: Option<HessianSample<'a>>,
    /// The projected per-sample Jacobian J_p = Qᵀ·Jᵀ (k × b), on per-sample update steps.
    pub jacobian: Option<&'a Mat<f64>>,
}

impl<'a> Context<'a> {
    /// A context with only the projected gradient and the eigenvalues.
    pub fn new(grad: &'a [f64], eigenvalues: Option<&'a [f64]>) -> Self {
        Context {
            grad,
            eigenvalues,
            hessian: None,
            jacobian: None,
        }
    }

    /// This step's Hessian sample, if it has at least one probe.
    pub fn hessian_probes(&self) -> Option<HessianSample<'a>> {
        self.hessian.filter(|h| !h.z.is_empty())
    }
}

/// Projected Hessian information of one step: Qᵀz and Qᵀ(H·z) for each probe z.
#[derive(Clone, Copy)]
pub struct HessianSample<'a> {
    pub z: &'a [Vec<f64>],
    pub hz: &'a [Vec<f64>],
}

impl<'a> HessianSample<'a> {
    /// The probes as pairs (Qᵀz, Qᵀ(H·z)).
    pub fn probes(&self) -> impl Iterator<Item = (&'a [f64], &'a [f64])> + 'a {
        self.z
            .iter()
            .zip(self.hz)
            .map(|(z, hz)| (z.as_slice(), hz.as_slice()))
    }
}

/// One member of the chain.
pub trait Inner: Send {
    /// Transforms the update `u` (length k) in place. The first member receives a copy of ĝ.
    fn step(&mut self, u: &mut Vec<f64>, ctx: &Context<'_>, rng: &mut Rng);

    /// Moves the state to a new basis: C = Q_newᵀQ_old (k_new × k_old). Not called for the
    /// first basis: state is created lazily at the first step, at the current k.
    fn reproject(&mut self, c: &Mat<f64>, rng: &mut Rng);

    /// The basis absorbed a correction and stayed the same (C = I; the identity basis): state
    /// that the reference recomputes on every reprojection is recomputed now too.
    fn basis_refreshed(&mut self) {}

    /// Whether this member divides by the basis's eigenvalues.
    fn needs_eigenvalues(&self) -> bool {
        false
    }

    /// Whether this member needs Hessian-vector products (`Context::hessian`).
    fn needs_hessian(&self) -> bool {
        false
    }

    /// Whether this member needs per-sample Jacobians (`Context::jacobian`).
    fn needs_jacobian(&self) -> bool {
        false
    }

    /// Writes this member's state (stateless members write nothing).
    fn save(&self, _enc: &mut Encoder<'_>) {}

    /// Reads the state written by `save` (into a freshly built member).
    fn load(&mut self, _dec: &mut Decoder<'_>) -> Result<()> {
        Ok(())
    }
}

const BETA1: crate::component::ParamSpec = float("beta1", 0.9, Range::BETA, "first-moment decay");
const BETA2: crate::component::ParamSpec = float("beta2", 0.99, Range::BETA, "second-moment decay");
const AMSGRAD: crate::component::ParamSpec = opt_float(
    "amsgrad_beta",
    None,
    // 1 is the classic, undecayed AMSGrad maximum (the reference documents it).
    Range::new(0.0, 1.0, true, true),
    "decay of the AMSGrad maximum (1 = no decay); none = off",
);
const EIG_TOL: crate::component::ParamSpec = float(
    "eig_tol",
    1e-12,
    Range::NON_NEGATIVE,
    "relative eigenvalue cut-off of the preconditioner",
);
const DAMPING: crate::component::ParamSpec = float(
    "damping",
    1e-8,
    Range::NON_NEGATIVE,
    "preconditioner damping",
);
const RDAMPING: crate::component::ParamSpec = float(
    "rdamping",
    1e-8,
    Range::NON_NEGATIVE,
    "preconditioner damping relative to the largest eigenvalue",
);
const fn eps(default: f64) -> crate::component::ParamSpec {
    float("eps", default, Range::POSITIVE, "added to the denominator")
}

family! {
    /// Every inner optimizer the spec parser knows (docs/algorithm.md §5), in the order of the
    /// README's component table.
    pub static FAMILY = "inner optimizer", aliases: &[Alias {
        name: "normalize_by_ema",
        target: "clip_norm_by_ema",
        preset: &[("normalize", Value::Bool(true))],
    }];
    members: adam, full_matrix_adam, hutchinson_adam, full_matrix_hutchinson_adam,
        full_matrix_bfgs_adam, cubic_adam, lion, ema, cautious, elementwise, clip_norm_by_ema,
        l_inv, natural_gradient, lbfgs;
    /// Creates the inner optimizer `c`.
    dispatch: pub fn build[](c: &Component) -> Result<Box<dyn Inner>>;
    /// The buffers inner optimizer `c` keeps at basis size `dims.rank`.
    dispatch: pub fn state[](c: &Component, dims: &Dims) -> Layout;
}
