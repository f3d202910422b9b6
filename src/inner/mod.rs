//! Inner ("basis") optimizers: they live in k-space (f64 k-vectors on the host), see only the
//! projected gradient ĝ, the current eigenvalues and, when the basis changes, C = Q_newᵀQ_old
//! (docs/algorithm.md §5).

pub mod adam;
pub mod cautious;
pub mod chain;
pub mod clip_norm_by_ema;
pub mod cubic_adam;
pub mod elementwise;
pub mod ema;
pub mod full_matrix;
pub mod full_matrix_adam;
pub mod full_matrix_bfgs_adam;
pub mod full_matrix_hutchinson_adam;
pub mod hutchinson_adam;
pub mod l_inv;
pub mod lion;
pub mod natural_gradient;
pub mod reproject;

pub use chain::Chain;

use elementwise::Elementwise;

use crate::component::{
    Alias, Component, ComponentSpec, Family, Range, Value, boolean, float, opt_float,
};
use crate::error::Result;
use crate::rng::Rng;
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

/// Creates the inner optimizer `c`.
pub fn build(c: &Component) -> Result<Box<dyn Inner>> {
    match c.name() {
        "adam" => Ok(Box::new(adam::Adam::new(c))),
        "cautious" => Ok(Box::new(cautious::Cautious)),
        "ema" => Ok(Box::new(ema::Ema::new(c))),
        "clip_norm_by_ema" => Ok(Box::new(clip_norm_by_ema::ClipNormByEma::new(c))),
        "l_inv" => Ok(Box::new(l_inv::LInv::new(1.0))),
        "l_inv_sqrt" => Ok(Box::new(l_inv::LInv::new(0.5))),
        "full_matrix_adam" => Ok(Box::new(full_matrix_adam::FullMatrixAdam::new(c))),
        "hutchinson_adam" => Ok(Box::new(hutchinson_adam::HutchinsonAdam::new(c))),
        "full_matrix_hutchinson_adam" => Ok(Box::new(
            full_matrix_hutchinson_adam::FullMatrixHutchinsonAdam::new(c),
        )),
        "full_matrix_bfgs_adam" => Ok(Box::new(full_matrix_bfgs_adam::FullMatrixBfgsAdam::new(c))),
        "cubic_adam" => Ok(Box::new(cubic_adam::CubicAdam::new(c))),
        "lion" => Ok(Box::new(lion::Lion::new(c))),
        "clip_norm" => Ok(Box::new(Elementwise::ClipNorm {
            max_norm: c.f64("max_norm"),
        })),
        "clip_value" => Ok(Box::new(Elementwise::ClipValue {
            max_value: c.f64("max_value"),
        })),
        "copy_grad_sign" => Ok(Box::new(Elementwise::CopyGradSign)),
        "sign" => Ok(Box::new(Elementwise::Sign)),
        "normalize" => Ok(Box::new(Elementwise::Normalize)),
        "nan_to_zero" => Ok(Box::new(Elementwise::NanToZero)),
        // One member under both names (§5.15).
        "natural_gradient" | "gauss_newton" => {
            Ok(Box::new(natural_gradient::NaturalGradient::new(c)))
        }
        other => Err(FAMILY.unsupported(other)),
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

/// Every inner optimizer the spec parser knows (docs/algorithm.md §5).
pub static FAMILY: Family = Family {
    what: "inner optimizer",
    components: &[
        ComponentSpec {
            name: "adam",
            params: &[BETA1, BETA2, eps(1e-8), AMSGRAD],
            implemented: true,
            summary: "Adam in the basis (diagonal moments reprojected exactly)",
        },
        ComponentSpec {
            name: "full_matrix_adam",
            params: &[BETA1, BETA2, eps(1e-8), AMSGRAD, EIG_TOL, DAMPING, RDAMPING],
            implemented: true,
            summary: "Adam with a full k×k second moment",
        },
        ComponentSpec {
            name: "hutchinson_adam",
            params: &[
                BETA1,
                BETA2,
                eps(1e-8),
                AMSGRAD,
                boolean("square", true, "AdaHessian-style squared estimate"),
                boolean("zhz", true, "use z∘Hz instead of Hz"),
            ],
            implemented: true,
            summary: "Adam with a Hutchinson diagonal Hessian estimate (SophiaH/AdaHessian)",
        },
        ComponentSpec {
            name: "full_matrix_hutchinson_adam",
            params: &[
                BETA1,
                BETA2,
                eps(1e-6),
                AMSGRAD,
                EIG_TOL,
                DAMPING,
                RDAMPING,
                boolean("abs", true, "use |eigenvalues|"),
            ],
            implemented: true,
            summary: "Adam preconditioned by a full k×k Hutchinson Hessian",
        },
        ComponentSpec {
            name: "full_matrix_bfgs_adam",
            params: &[
                BETA1,
                opt_float(
                    "beta2",
                    Some(0.99),
                    Range::BETA,
                    "decay of the BFGS matrix; none = no decay",
                ),
                eps(1e-6),
                AMSGRAD,
                EIG_TOL,
                DAMPING,
                RDAMPING,
                float(
                    "tol",
                    1e-16,
                    Range::NON_NEGATIVE,
                    "skip updates with sᵀy < tol",
                ),
                boolean("use_eigh", false, "invert through an eigendecomposition"),
            ],
            implemented: true,
            summary: "Adam preconditioned by a k×k BFGS matrix",
        },
        ComponentSpec {
            name: "cubic_adam",
            params: &[
                BETA1,
                BETA2,
                float("beta3", 0.99, Range::BETA, "third-moment decay"),
                eps(1e-8),
            ],
            implemented: true,
            summary: "Adam with a cubic model per coordinate",
        },
        ComponentSpec {
            name: "lion",
            params: &[
                BETA1,
                BETA2,
                boolean("cautious", false, "zero entries that disagree with ĝ"),
            ],
            implemented: true,
            summary: "Lion (sign of interpolated momentum)",
        },
        ComponentSpec {
            name: "ema",
            params: &[float("beta", 0.9, Range::BETA, "decay")],
            implemented: true,
            summary: "exponential moving average of the update (no debiasing)",
        },
        ComponentSpec {
            name: "cautious",
            params: &[],
            implemented: true,
            summary: "zero the entries whose sign disagrees with ĝ",
        },
        ComponentSpec {
            name: "clip_norm",
            params: &[float(
                "max_norm",
                1.0,
                Range::POSITIVE,
                "largest allowed norm",
            )],
            implemented: true,
            summary: "scale the update down to max_norm",
        },
        ComponentSpec {
            name: "clip_value",
            params: &[float(
                "max_value",
                0.2,
                Range::POSITIVE,
                "largest allowed |entry|",
            )],
            implemented: true,
            summary: "clamp every entry to [-max_value, max_value]",
        },
        ComponentSpec {
            name: "clip_norm_by_ema",
            params: &[
                float("beta", 0.99, Range::BETA, "decay of the EMA of updates"),
                opt_float(
                    "max_growth",
                    Some(1.2),
                    Range::AT_LEAST_ONE,
                    "largest growth of the allowed norm per step",
                ),
                boolean(
                    "normalize",
                    false,
                    "rescale to the EMA's norm instead of only clipping",
                ),
                float(
                    "min_norm",
                    1e-2,
                    Range::POSITIVE,
                    "floor of the allowed norm",
                ),
                float(
                    "init",
                    1e-1,
                    Range::NON_NEGATIVE,
                    "the EMA starts at init × the first update",
                ),
            ],
            implemented: true,
            summary: "clip (or, normalize=true, rescale) the update to the norm of its EMA",
        },
        ComponentSpec {
            name: "copy_grad_sign",
            params: &[],
            implemented: true,
            summary: "|u| with the sign of ĝ",
        },
        ComponentSpec {
            name: "l_inv_sqrt",
            params: &[],
            implemented: true,
            summary: "u / sqrt(L): full-matrix AdaGrad in the subspace (covariance curvatures)",
        },
        ComponentSpec {
            name: "l_inv",
            params: &[],
            implemented: true,
            summary: "u / L: a Newton step in the subspace (Hessian curvatures)",
        },
        ComponentSpec {
            name: "sign",
            params: &[],
            implemented: true,
            summary: "sign(u)",
        },
        ComponentSpec {
            name: "normalize",
            params: &[],
            implemented: true,
            summary: "u / ‖u‖",
        },
        ComponentSpec {
            name: "nan_to_zero",
            params: &[],
            implemented: true,
            summary: "replace NaN and ±Inf by 0",
        },
        ComponentSpec {
            name: "natural_gradient",
            params: &[float(
                "reg",
                1e-8,
                Range::NON_NEGATIVE,
                "Tikhonov regularization",
            )],
            implemented: true,
            summary: "least-squares natural gradient from per-sample gradients",
        },
        ComponentSpec {
            name: "gauss_newton",
            params: &[float(
                "reg",
                1e-8,
                Range::NON_NEGATIVE,
                "Tikhonov regularization",
            )],
            implemented: true,
            summary: "least-squares Gauss-Newton step from per-residual gradients",
        },
    ],
    aliases: &[Alias {
        name: "normalize_by_ema",
        target: "clip_norm_by_ema",
        preset: &[("normalize", Value::Bool(true))],
    }],
};
