//! Eigen (docs/algorithm.md §3.3): the eigendecomposition Q·diag(L)·Qᵀ of an EMA of corrections,
//! kept at rank ≤ `rank` by low-rank eigen-updates, in the Q = B·T form of §8.4.
//!
//! B (n×p) holds orthonormal columns ([`OrthoColumns`]: CGS2, one pass per appended column,
//! written lazily in the unprojection pass); T (p×k, host f64) has orthonormal columns, so
//! Q = B·T is never formed. An update with columns U (weights α) and decay β:
//!
//! 1. append U to B; its coordinates W_B in B come back (exact up to what is in the span);
//! 2. the span of [Q, U] in B-coordinates: Z = [T̃, V], T̃ = [T; 0] and V an orthonormal basis
//!    of the coordinates' part outside span(T̃) (host Gram–Schmidt, twice);
//! 3. H = diag(w_old·L, 0) + w_new·Σ_j α_j·w_j·w_jᵀ with w_j = Zᵀ·(W_B)_j (for an asymmetric
//!    correction Y·diag(α)·Zᵀ, its symmetric part: ½(w_y·w_zᵀ + w_z·w_yᵀ), §4.4);
//! 4. (λ, S) = eig(H), round 1 of the regularization (truncate = rank, eig_tol, damping,
//!    rdamping, abs) keeps S_k; T ← Z·S_k, L ← λ;
//! 5. C = Q_newᵀQ_old = S_kᵀ·[I; 0] — the first k_old rows of S_k (step 6 of §8.4); no n-pass;
//! 6. when p reaches 2·rank: B ← B·T (one pass, amortized O(n·k) per update), T ← I.
//!
//! The first update is a regular update from an empty accumulator, the bias correction counts
//! updates, and the inner optimizers get round 2 ([`Ema`], §3.1 and §7 item 5). A failed
//! eigendecomposition keeps the previous basis (the appended columns of B stay, unused by T).
//! The reference's orthogonality check (mean((QᵀQ − I)²) > reortho_threshold, O(n·k²)) is
//! dropped, as §7 item 9 recommends: CGS2 keeps B orthonormal and T is orthonormal in f64.
//!
//! Per update with one column: one pass over B for Bᵀu (which also projects the gradient) and
//! one for the unprojection (which also writes the new column), plus the compaction every
//! ~rank updates and an eigendecomposition of size k + 1.

use super::ema::{Ema, HandedOut};
use super::ortho::{OrthoColumns, orthogonal_part, span_tolerance};
use super::projection::Cached;
use super::{Basis, BasisChange, Outcome, Source};
use crate::correction::Correction;
use crate::backend::Backend;
use crate::component::Component;
use crate::error::{Error, Result, Status};
use crate::linalg::{
    Regularization, cholesky_dropping, mat_t_vec, mat_vec, mul, mul_tn, regularize_eigen,
    symmetric_eigen, upper_inverse,
};
use crate::state::{Decoder, Encoder, get_matrix, put_matrix};
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, cells};
use super::{ABS, BETA, DAMPING, Declared, RANK, RDAMPING, UPDATE_ABS, UPDATE_EIG_TOL, UPDATE_RDAMPING, UPDATE_TRUNCATE, eig_tol, update_damping};

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
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
        summary: "rank-limited EMA of corrections, updated by low-rank eigen-updates",
    },
];

pub fn build_seeded<B: Backend + 'static>(c: &Component, (be, _seed): (&B, u64)) -> Result<Box<dyn Basis<B>>> {
    Ok(Box::new(Eigen::new(c, be)?))
}

/// The orthonormal columns B with T, the eigenvalues and the update count.
pub fn state(c: &Component, dims: &Dims) -> Declared {
    super::ortho::declared(c, dims, |layout, stored| {
        layout
            .f64s("t", cells(stored, stored))
            .f64s("values", stored as u128)
            .u64s("updates", 1u8)
    })
}

/// The eigen basis over backend `B` (also low_rank's, see `low_rank.rs`).
pub struct Eigen<B: Backend> {
    columns: OrthoColumns<B>,
    /// p×k with orthonormal columns: Q = B·T.
    t: Mat<f64>,
    /// Stored (un-debiased) eigenvalues of the accumulator, ascending.
    values: Vec<f64>,
    ema: Ema,
    round1: Regularization,
    /// B is compacted when it reaches this many columns (2·rank).
    max_columns: usize,
    /// What the inner optimizers use; `None` before the first update.
    current: Option<HandedOut>,
    cached: Cached,
}

/// The hyperparameters eigen and low_rank share.
pub struct Params {
    pub rank: usize,
    pub beta: Option<f64>,
    pub round1: Regularization,
    pub round2: Regularization,
}

impl<B: Backend> Eigen<B> {
    pub fn new(c: &Component, be: &B) -> Result<Self> {
        Self::with(Params::read(c, c.bool("abs"), c.bool("update_abs")), be)
    }

    /// A basis from shared parameters; `round1.truncate` is set to the rank (capped at n).
    pub fn with(params: Params, be: &B) -> Result<Self> {
        // More than n orthonormal directions do not exist (§7 item 19).
        let rank = params.rank.min(be.global_ndim());
        Ok(Eigen {
            columns: OrthoColumns::new(be, 2 * rank + 2)?,
            t: Mat::zeros(0, 0),
            values: Vec::new(),
            ema: Ema::new(params.beta, params.round2),
            round1: Regularization {
                truncate: Some(rank),
                ..params.round1
            },
            max_columns: 2 * rank,
            current: None,
            cached: Cached::default(),
        })
    }

    /// The small problem of step 3: H in the coordinates Z, for coordinates `w` of the
    /// correction's vectors (Y first, then Z if present).
    fn small_problem(&self, w: &Mat<f64>, correction: &Correction<'_, B::Vector>) -> Mat<f64> {
        let (w_old, w_new) = self.ema.weights();
        let m = w.nrows();
        let c = correction.columns.len();
        let asymmetric = correction.z.is_some();
        Mat::from_fn(m, m, |i, j| {
            let old = match (i == j, self.values.get(i)) {
                (true, Some(l)) => w_old * l,
                _ => 0.0,
            };
            let new: f64 = (0..c)
                .map(|col| {
                    let a = correction.alpha[col];
                    match asymmetric {
                        false => a * w[(i, col)] * w[(j, col)],
                        true => {
                            let (y, z) = (col, c + col);
                            0.5 * a * (w[(i, y)] * w[(j, z)] + w[(i, z)] * w[(j, y)])
                        }
                    }
                })
                .sum();
            old + w_new * new
        })
    }

    /// T restricted to the handed-out columns.
    fn t_handed_out(&self) -> Mat<f64> {
        let kept = &self.current.as_ref().expect("a basis").kept;
        Mat::from_fn(self.t.nrows(), kept.len(), |i, j| self.t[(i, kept[j])])
    }

    fn failure(&mut self, t_padded: Mat<f64>, coords: &Mat<f64>, c: usize, why: String) -> Outcome {
        // B grew; Q = B·[T; 0] is the previous basis.
        self.t = t_padded;
        self.cache(coords, c);
        Outcome::Unchanged {
            failure: Some(format!("eigen update failed: {why}")),
        }
    }

    /// Q_regᵀy_j for the correction's first `c` vectors, from their coordinates in B.
    fn cache(&mut self, coords: &Mat<f64>, c: usize) {
        let projections = match &self.current {
            Some(_) => {
                let t = self.t_handed_out();
                (0..c)
                    .map(|j| {
                        let column: Vec<f64> = coords.col(j).iter().copied().collect();
                        mat_t_vec(t.as_ref(), &column)
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        self.cached.set(projections);
    }
}

impl Params {
    /// The parameters of a component with eigen's (or low_rank's) hyperparameters; `abs` and
    /// `update_abs` are given because low_rank has no such switches.
    pub fn read(c: &Component, abs: bool, update_abs: bool) -> Params {
        Params {
            rank: c.usize("rank"),
            beta: c.opt_f64("beta"),
            round1: Regularization {
                truncate: None,
                tol: c.opt_f64("eig_tol"),
                damping: c.f64("damping"),
                rdamping: c.f64("rdamping"),
                abs,
            },
            round2: Regularization {
                truncate: c.opt_usize("update_truncate"),
                tol: c.opt_f64("update_eig_tol"),
                damping: c.f64("update_damping"),
                rdamping: c.f64("update_rdamping"),
                abs: update_abs,
            },
        }
    }
}

impl<B: Backend> Basis<B> for Eigen<B> {
    fn prepare(&mut self, be: &B, new_columns: usize) -> Result<()> {
        // Y and, for asymmetric corrections, Z.
        self.columns.reserve(be, 2 * new_columns)
    }

    fn update(&mut self, be: &B, correction: &Correction<'_, B::Vector>) -> Result<Outcome> {
        let c = correction.columns.len();
        let mut vectors = correction.columns.clone();
        if let Some(z) = &correction.z {
            vectors.extend(z);
        }
        self.columns.reserve(be, vectors.len())?;
        let coords = self.columns.append(be, &vectors);
        let p = coords.nrows();
        let k = self.values.len();
        let t_padded = Mat::from_fn(p, k, |i, j| {
            if i < self.t.nrows() {
                self.t[(i, j)]
            } else {
                0.0
            }
        });

        // Z = [T̃, V]: V spans the coordinates' part outside span(T̃).
        let outside = orthogonal_part(&t_padded, &coords);
        let tol = span_tolerance::<B::Elem>();
        let gram = mul_tn(outside.as_ref(), outside.as_ref());
        let floor: Vec<f64> = (0..coords.ncols())
            .map(|j| tol * tol * coords.col(j).iter().map(|x| x * x).sum::<f64>())
            .collect();
        let factor = cholesky_dropping(&gram, &floor);
        let kept_outside = Mat::from_fn(p, factor.kept.len(), |i, j| outside[(i, factor.kept[j])]);
        let v = mul(
            kept_outside.as_ref(),
            upper_inverse(&factor.r, &factor.kept).as_ref(),
        );
        let z = Mat::from_fn(p, k + v.ncols(), |i, j| match j < k {
            true => t_padded[(i, j)],
            false => v[(i, j - k)],
        });
        let w = mul_tn(z.as_ref(), coords.as_ref());
        let h = self.small_problem(&w, correction);

        let (lambda, s) = match h.nrows() {
            0 => (Vec::new(), Mat::zeros(0, 0)),
            _ => match symmetric_eigen(&h) {
                Ok(eig) => match regularize_eigen(&eig.0, &eig.1, &self.round1) {
                    Some(kept) => kept,
                    None => {
                        let why = "no finite eigenvalue".to_string();
                        return Ok(self.failure(t_padded, &coords, c, why));
                    }
                },
                Err(e) => return Ok(self.failure(t_padded, &coords, c, e.to_string())),
            },
        };
        let t_new = mul(z.as_ref(), s.as_ref());
        // C_stored = S_kᵀ·[I; 0]: the first k rows of S_k.
        let stored_change = Mat::from_fn(s.ncols(), k, |i, j| s[(j, i)]);
        self.ema.updates += 1;
        let handed = self
            .ema
            .hand_out(&lambda)
            .expect("round 1 keeps finite eigenvalues only");
        let change = self
            .current
            .as_ref()
            .map(|previous| handed.change_from(previous, &stored_change));
        self.t = t_new;
        self.values = lambda;
        self.current = Some(handed);
        self.cache(&coords, c);
        if self.columns.len() >= self.max_columns {
            self.columns.compact(be, &self.t);
            self.t = Mat::identity(self.t.ncols(), self.t.ncols());
        }
        Ok(Outcome::Changed(BasisChange { change }))
    }

    fn rank(&self) -> Option<usize> {
        self.current.as_ref().map(|c| c.kept.len())
    }

    fn eigenvalues(&self) -> Option<&[f64]> {
        self.current.as_ref().map(|c| c.eigenvalues.as_slice())
    }

    fn provides_eigenvalues(&self) -> bool {
        true
    }

    fn project(&mut self, be: &B, v: Source<'_, B::Vector>, out: &mut Vec<f64>) {
        if let Some(x) = self.cached.lookup(v, out) {
            let coords = self.columns.project(be, x);
            *out = mat_t_vec(self.t_handed_out().as_ref(), &coords);
        }
    }

    fn add_unprojected(&mut self, be: &B, u: &[f64], alpha: f64, y: B::InOut<'_>) {
        let mut w = mat_vec(self.t_handed_out().as_ref(), u);
        w.iter_mut().for_each(|x| *x *= alpha);
        self.columns.add_combination(be, &w, y);
    }

    fn state_bytes(&self, be: &B) -> usize {
        self.columns.state_bytes(be)
    }

    /// B (see `OrthoColumns::save`), `t`, the stored eigenvalues `values` and the number of
    /// `updates`; the handed-out basis follows from them.
    fn save(&self, be: &B, enc: &mut Encoder<'_>) {
        self.columns.save(be, enc);
        put_matrix(enc, "t", &self.t);
        enc.put("values", &[self.values.len()], &self.values);
        enc.put_u64("updates", self.ema.updates);
    }

    fn load(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()> {
        self.columns.load(be, dec)?;
        let t = get_matrix(dec, "t", Some(self.columns.len()))?;
        let values = dec.get_shaped::<f64>("values", &[t.ncols()])?;
        self.ema.updates = dec.get_u64("updates")?;
        self.current = match self.ema.updates {
            0 => None,
            _ => Some(self.ema.hand_out(&values).ok_or_else(|| {
                Error::new(
                    Status::LRE_ERR_STATE,
                    "eigen: stored eigenvalues are not finite",
                )
            })?),
        };
        self.t = t;
        self.values = values;
        self.cached.clear();
        Ok(())
    }
}
