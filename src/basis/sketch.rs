//! What randomized_eigen and nystrom share (docs/algorithm.md §3.4, §3.5, §4.5–§4.7): an explicit
//! Q (n×k, columns 0..k of a backend matrix) with the stored eigenvalues L of the accumulator
//! A = Q·diag(L)·Qᵀ, the EMA convention of `ema.rs`, a Gaussian test matrix Ω (n×l) and the
//! correction's columns U.
//!
//! The new accumulator w_old·Q·diag(L)·Qᵀ + w_new·U·diag(α)·Uᵀ lives in span[Q, U], so every
//! product the sketches need — Y = A·Ω, PᵀA·P, ΩᵀY, BᵀB — follows exactly from the small
//! products QᵀU, UᵀU, QᵀΩ and UᵀΩ, taken in one pass (QᵀQ = I by construction). The sketch's
//! range P, the Nyström factor B and the new eigenvectors are combinations of those columns,
//! computed on the host in f64; the new Q is written by one pass over [Q, U(, Ω)], and
//! C = Q_newᵀQ_old is read off the small products (§8.1: "C is free").
//!
//! Layout of the matrix (one state buffer, `q`, so caller memory can hold it): Q in 0..rank, Ω in
//! rank..rank + l, U after it. The two bases are this
//! one struct; each file supplies its update (`randomized_eigen::update`, `nystrom::update`) as
//! a function pointer, so this file calls neither.

use super::Declared;
use super::ema::{Ema, HandedOut};
use super::projection::{Cached, add_columns_scaled, project_columns};
use super::store::{get_block, put_columns};
use super::{Basis, BasisChange, Outcome, Source};
use crate::backend::Backend;
use crate::component::Component;
use crate::correction::Correction;
use crate::error::{Error, Result, Status};
use crate::linalg::{Regularization, cholesky_dropping, mul, mul_tn, upper_inverse};
use crate::state::layout::{Dims, Layout};
use crate::state::{Decoder, Encoder};
use faer::Mat;

/// The state of a sketched basis (randomized_eigen, nystrom), one matrix: `q`, its columns
/// (Q, then the working columns: the test matrix Ω of l = min(rank + oversampling, n) columns
/// and a correction's c columns), the eigenvalues, the update and draw counters, and, for
/// nystrom, Ω kept between updates (`omega`, within `q`'s columns).
pub fn declared(c: &Component, dims: &Dims, nystrom: bool) -> Declared {
    let rank = c.usize("rank").min(dims.n);
    let l = c
        .usize("rank")
        .saturating_add(c.usize("oversampling"))
        .min(dims.n);
    let layout = match dims.columns {
        Some(columns) => {
            Layout::new().vectors("q", rank.saturating_add(l).saturating_add(columns) as u128)
        }
        // Corrections as wide as the batch: no fixed size.
        None => Layout::new().batch_sized("q"),
    };
    let layout = layout
        .f64s("values", l as u128)
        .u64s("updates", 1u8)
        .u64s("draws", 1u8);
    match (nystrom, dims.columns) {
        (false, _) => Declared { layout, rank: l },
        (true, Some(_)) => Declared {
            layout: layout.vectors_within("omega", l as u128),
            rank: l,
        },
        (true, None) => Declared {
            layout: layout.batch_sized("omega"),
            rank: l,
        },
    }
}

/// Small products of one update, in the coordinates Z = [Q, U] (m = k + c columns).
pub struct Products {
    /// ZᵀZ (QᵀQ = I).
    pub zz: Mat<f64>,
    /// ZᵀΩ (m × l).
    pub zo: Mat<f64>,
    /// The accumulator in Z-coordinates (A = Z·diag(az)·Zᵀ).
    pub az: Vec<f64>,
}

/// How the accumulator is re-approximated at each update.
pub enum Method {
    /// randomized_eigen: a fresh Gaussian test matrix every update.
    Randomized,
    /// nystrom: an orthonormal test matrix, drawn anew every `omega_update_freq` updates.
    Nystrom {
        omega_update_freq: u64,
        /// Whether Ω holds one.
        has_omega: bool,
    },
}

/// How a sketched basis absorbs a correction: `randomized_eigen::update` or `nystrom::update`,
/// supplied by the file that builds it (so this shared part calls neither).
pub type Resketch<B> =
    fn(&mut Sketched<B>, &B, &Correction<'_, <B as Backend>::Vector>) -> Result<Outcome>;

/// The randomized_eigen and nystrom bases.
pub struct Sketched<B: Backend> {
    pub matrix: B::Matrix,
    pub method: Method,
    resketch: Resketch<B>,
    pub rank: usize,
    /// Sketch width l = rank + oversampling, capped at n.
    pub width: usize,
    /// Stored eigenvalues (ascending); Q is in columns 0..values.len().
    values: Vec<f64>,
    pub ema: Ema,
    pub round1: Regularization,
    current: Option<HandedOut>,
    cached: Cached,
    seed: u64,
    /// Test matrices drawn so far.
    pub draws: u64,
}

impl<B: Backend> Sketched<B> {
    pub fn new(
        c: &Component,
        be: &B,
        seed: u64,
        method: Method,
        resketch: Resketch<B>,
    ) -> Result<Self> {
        let n = be.global_ndim();
        // More columns than n would only add round-off directions (§7 item 19).
        let rank = c.usize("rank").min(n);
        let abs = c.bool("abs");
        Ok(Sketched {
            matrix: be.matrix(0)?,
            method,
            resketch,
            rank,
            width: (rank + c.usize("oversampling")).min(n),
            values: Vec::new(),
            ema: Ema::new(
                c.opt_f64("beta"),
                Regularization {
                    truncate: c.opt_usize("update_truncate"),
                    tol: c.opt_f64("update_eig_tol"),
                    damping: c.f64("update_damping"),
                    rdamping: c.f64("update_rdamping"),
                    abs: c.bool("update_abs"),
                },
            ),
            round1: Regularization {
                truncate: Some(rank),
                tol: c.opt_f64("eig_tol"),
                damping: c.f64("damping"),
                rdamping: c.f64("rdamping"),
                abs,
            },
            current: None,
            cached: Cached::default(),
            seed,
            draws: 0,
        })
    }

    pub fn omega(&self) -> Vec<usize> {
        (self.rank..self.rank + self.width).collect()
    }

    /// Q's columns and the correction's: the coordinates Z.
    pub fn z_columns(&self, c: usize) -> Vec<usize> {
        let u0 = self.rank + self.width;
        (0..self.values.len()).chain(u0..u0 + c).collect()
    }

    pub fn reserve(&mut self, be: &B, c: usize) -> Result<()> {
        let needed = self.rank + self.width + c;
        if be.matrix_columns(&self.matrix) < needed {
            be.grow_matrix(&mut self.matrix, needed)?;
        }
        Ok(())
    }

    /// Ω ← a fresh Gaussian n×l matrix.
    pub fn draw_test_matrix(&mut self, be: &B) {
        let key = self
            .seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(self.draws);
        let omega = self.omega();
        be.gaussian_columns(&mut self.matrix, &omega, key);
        self.draws += 1;
    }

    /// Writes the correction's columns and takes the one pass of small products.
    pub fn products(&mut self, be: &B, correction: &Correction<'_, B::Vector>) -> Result<Products> {
        let c = correction.columns.len();
        self.reserve(be, c)?;
        let z = self.z_columns(c);
        let u = &z[self.values.len()..];
        for (v, &col) in correction.columns.iter().zip(u) {
            be.set_column(&mut self.matrix, col, v);
        }
        let right: Vec<usize> = u.iter().copied().chain(self.omega()).collect();
        let cross = be.cross(&self.matrix, &z, &right);
        let (k, m) = (self.values.len(), z.len());
        let zz = Mat::from_fn(m, m, |i, j| match (i < k, j < k) {
            (true, true) => f64::from(u8::from(i == j)),
            (_, false) => cross[(i, j - k)],
            (false, true) => cross[(j, i - k)],
        });
        let zo = Mat::from_fn(m, self.width, |i, j| cross[(i, c + j)]);
        let (w_old, w_new) = self.ema.weights();
        let az = self
            .values
            .iter()
            .map(|l| w_old * l)
            .chain(correction.alpha.iter().map(|a| w_new * a))
            .collect();
        Ok(Products { zz, zo, az })
    }

    /// Installs Q_new = M[:, inputs]·coef with stored eigenvalues `values` (ascending), given
    /// the Gram matrix `gram` of the inputs, whose first k columns are Q and next c are U.
    pub fn commit(
        &mut self,
        be: &B,
        inputs: &[usize],
        gram: &Mat<f64>,
        (coef, values): (Mat<f64>, Vec<f64>),
        c: usize,
    ) -> Outcome {
        let k_old = self.values.len();
        // Q_newᵀ·[Q_old, U] = coefᵀ·(inputsᵀ[Q_old, U]).
        let overlap = mul_tn(coef.as_ref(), gram.subcols(0, k_old + c));
        let stored_change = overlap.subcols(0, k_old).to_owned();
        let outputs: Vec<usize> = (0..values.len()).collect();
        be.combine_columns(&mut self.matrix, inputs, coef.as_ref(), &outputs, None);
        self.ema.updates += 1;
        let handed = self
            .ema
            .hand_out(&values)
            .expect("round 1 keeps finite eigenvalues only");
        let change = self
            .current
            .as_ref()
            .map(|previous| handed.change_from(previous, &stored_change));
        self.cached.set(
            (0..c)
                .map(|j| {
                    handed
                        .kept
                        .iter()
                        .map(|&i| overlap[(i, k_old + j)])
                        .collect()
                })
                .collect(),
        );
        self.values = values;
        self.current = Some(handed);
        Outcome::Changed(BasisChange { change })
    }

    /// `Some(outcome)` keeping the previous basis when the correction is not finite (a direct
    /// caller's NaN; the optimizer refuses those before they get here).
    pub fn refuse_non_finite(&mut self, products: &Products) -> Option<Outcome> {
        let finite = products
            .zo
            .col_iter()
            .all(|c| c.iter().all(|x| x.is_finite()))
            && products
                .zz
                .col_iter()
                .all(|c| c.iter().all(|x| x.is_finite()));
        (!finite).then(|| self.keep(products, "the correction is not finite".into()))
    }

    /// The update failed: the previous basis stays; projections of the correction's columns
    /// come from the products already taken.
    pub fn keep(&mut self, products: &Products, why: String) -> Outcome {
        let k = self.values.len();
        self.cached.set(match &self.current {
            Some(current) => (0..products.zz.ncols() - k)
                .map(|j| {
                    current
                        .kept
                        .iter()
                        .map(|&i| products.zz[(i, k + j)])
                        .collect()
                })
                .collect(),
            None => Vec::new(),
        });
        Outcome::Unchanged { failure: Some(why) }
    }

    fn handed_columns(&self) -> &[usize] {
        &self
            .current
            .as_ref()
            .expect("a basis before projecting")
            .kept
    }
}

impl<B: Backend> Basis<B> for Sketched<B> {
    fn prepare(&mut self, be: &B, new_columns: usize) -> Result<()> {
        self.reserve(be, new_columns)
    }

    fn update(&mut self, be: &B, correction: &Correction<'_, B::Vector>) -> Result<Outcome> {
        // Refused before anything changes (principle 5).
        if correction.z.is_some() {
            return Err(Error::unsupported(
                "randomized_eigen and nystrom need symmetric corrections; use symmetrize=true",
            ));
        }
        self.reserve(be, correction.columns.len())?;
        (self.resketch)(self, be, correction)
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
            project_columns(be, &self.matrix, self.handed_columns(), x, out);
        }
    }

    fn add_unprojected(&mut self, be: &B, u: &[f64], alpha: f64, y: B::InOut<'_>) {
        add_columns_scaled(be, &self.matrix, self.handed_columns(), (u, alpha), y);
    }

    fn state_bytes(&self, be: &B) -> usize {
        be.matrix_bytes(be.matrix_columns(&self.matrix))
    }

    /// `q` [k, n] (the stored eigenvectors), `values` [k], `updates`, `draws`; nystrom also
    /// saves its test matrix `omega` [l, n] (absent before the first).
    fn save(&self, be: &B, enc: &mut Encoder<'_>) {
        let q: Vec<usize> = (0..self.values.len()).collect();
        put_columns(be, enc, "q", &self.matrix, &q);
        enc.put("values", &[self.values.len()], &self.values);
        enc.put_u64("updates", self.ema.updates);
        enc.put_u64("draws", self.draws);
        if let Method::Nystrom {
            has_omega: true, ..
        } = self.method
        {
            put_columns(be, enc, "omega", &self.matrix, &self.omega());
        }
    }

    fn load(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()> {
        let bad = |what: &str| Error::new(Status::LRE_ERR_STATE, format!("basis: {what}"));
        let (values, shape) = dec.get::<f64>("values")?;
        let (_, k) = get_block(
            be,
            dec,
            "q",
            (&mut self.matrix, &[0]),
            self.rank + self.width,
        )?;
        if shape != [k] || k > self.rank {
            return Err(bad("the eigenvalues do not match the eigenvectors"));
        }
        self.ema.updates = dec.get_u64("updates")?;
        self.draws = dec.get_u64("draws")?;
        self.current = match self.ema.updates {
            0 => None,
            _ => Some(
                self.ema
                    .hand_out(&values)
                    .ok_or_else(|| bad("non-finite eigenvalues"))?,
            ),
        };
        self.values = values;
        self.cached.clear();
        let stored_omega = dec.has("omega");
        if let Method::Nystrom { has_omega, .. } = &mut self.method {
            *has_omega = stored_omega;
            if stored_omega
                && get_block(be, dec, "omega", (&mut self.matrix, &[self.rank]), 0)?.1 != self.width
            {
                return Err(bad("the test matrix has the wrong width"));
            }
        }
        Ok(())
    }
}

/// Coordinates X ← X·R⁻¹ over the columns the dropping Cholesky of XᵀGX keeps, twice
/// (CholeskyQR2 in the metric G): an orthonormal basis of span(Z·X) in Z-coordinates, with
/// directions below `tol` of a column's norm dropped.
pub fn orthonormalize(x: &Mat<f64>, g: &Mat<f64>, tol: f64) -> Mat<f64> {
    let mut x = x.clone();
    for _ in 0..2 {
        let gram = mul_tn(x.as_ref(), mul(g.as_ref(), x.as_ref()).as_ref());
        let floor: Vec<f64> = (0..gram.nrows())
            .map(|j| tol * tol * gram[(j, j)])
            .collect();
        let factor = cholesky_dropping(&gram, &floor);
        let kept = Mat::from_fn(x.nrows(), factor.kept.len(), |i, j| x[(i, factor.kept[j])]);
        x = mul(
            kept.as_ref(),
            upper_inverse(&factor.r, &factor.kept).as_ref(),
        );
    }
    x
}
