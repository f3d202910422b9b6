//! Bases: the k-dimensional subspace the inner optimizer works in (docs/algorithm.md §3).
//!
//! A basis is implicit: it answers projections (Qᵀg), adds unprojections (y += α·Q·u) and, when
//! it changes, gives the change of basis C = Q_newᵀQ_old once for the whole chain. It never has
//! to materialize an n×k Q.

mod ema;
mod ortho;
mod projection;
pub mod sketch;
pub(crate) mod store;

use crate::backend::Backend;
use crate::component::{Component, Range, boolean, float, int, opt_float, opt_int};
use crate::correction::Correction;
use crate::error::Result;
use crate::family::family;
use crate::state::layout::{Dims, Layout};
use crate::state::{Decoder, Encoder};
use faer::Mat;

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
    build_seeded(c, (be, 0))
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

/// A basis's declared state and the most basis vectors k it hands the chain.
pub struct Declared {
    pub layout: Layout,
    pub rank: usize,
}

family! {
    /// Every basis the spec parser knows (docs/algorithm.md §3, Appendix B), in the order of
    /// the README's component table.
    pub static FAMILY = "basis", aliases: &[];
    members: ggt, eigen, randomized_eigen, nystrom, hebbian_learning, full_matrix, random,
        identity, common_directions, low_rank;
    /// Creates the basis `c`; the random bases (random, randomized_eigen, nystrom,
    /// hebbian_learning) draw their Gaussian matrices from the backend's counter-based stream
    /// under keys made from the seed (the optimizer's).
    dispatch: pub fn build_seeded[B: Backend + 'static](c: &Component, ctx: (&B, u64)) -> Result<Box<dyn Basis<B>>>;
    /// The buffers basis `c` keeps and its largest k.
    dispatch: pub fn state[](c: &Component, dims: &Dims) -> Declared;
}
