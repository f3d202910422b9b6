//! GGT (docs/algorithm.md §3.2) without forming U (§8.2), with signed and asymmetric corrections
//! through the K^½ formulation of §8.3 (no QR of the n×2m window).
//!
//! The window M = [v_1 … v_m] (n×m, a ring of physical columns) and its Gram matrix K = MᵀM
//! (f64) are kept. The accumulated matrix is A = M·E·Mᵀ, where E holds each column's weight α
//! on its diagonal, or α/2 off the diagonal for a pair (y, z) of an asymmetric correction
//! (A gets ½α(yzᵀ + zyᵀ)). The basis is U = M·W:
//! * unit weights, no pairs (the covariance path, the reference's exact semantics, damping
//!   included): (λ, V) = eig(K + damping·I), W = V·Λ^{-1/2};
//! * otherwise: K = Wₖ·Σ·Wₖᵀ (rank r), S = Σ^½·WₖᵀEWₖ·Σ^½ + damping·I (r×r),
//!   (λ, P) = eig(S), W = Wₖ·Σ^{-1/2}·P, so UᵀU = I and UᵀAU = diag(λ) − damping.
//!
//! Projection is Wᵀ(Mᵀg), unprojection M·(W·u), and the change of basis
//! C = W_newᵀ·(M_newᵀM_old)·W_old, with M_newᵀM_old read off K_old and the new Gram rows.
//! Per update: one pass over the window per new column and one to unproject; O(m³) small work.
//!
//! `combine` says what the window represents (docs/algorithm.md §3.2); nothing more is kept:
//! * `sum` (the default, the reference's): A above;
//! * `mean`: A/p, p the number of corrections in the window (a pair counts once): E is divided
//!   by p and the K^½ path is taken;
//! * `ritz`: for pairs (y, z) = (H·z, z), the Rayleigh–Ritz projection of H onto span(Z):
//!   A = Z·K_zz⁻¹·T·K_zz⁻¹·Zᵀ with T = sym(Zᵀ·Y·D), read off K; W has rows only for the z columns:
//!   K_zz = V·Σ·Vᵀ (rank r), S = Σ^{-½}VᵀTVΣ^{-½} + damping·I, (λ, P) = eig(S), W_z = VΣ^{-½}P.
//!   Its size does not grow with the window count, and it is H itself once span(Z) is the space.
//!
//! `storage=bf16` / `storage=f16` keeps the window in 16 bits (`backend::packed`): each new
//! column is rounded once, with a power-of-two scale of its own, and its Gram entries are
//! products of the column as rounded, so K is the Gram matrix of the window as stored.

use super::store::{get_columns, put_columns};
use super::{Basis, BasisChange, Outcome, Source};
use crate::correction::Correction;
use crate::backend::Backend;
use crate::component::Component;
use crate::error::{Error, Result, Status};
use crate::linalg::{
    Regularization, mat_t_vec, mat_vec, mul, mul_tn, regularize_eigen, symmetric_eigen,
};
use crate::state::{Decoder, Encoder, get_matrix, put_matrix};
use faer::Mat;
use std::collections::VecDeque;
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout, cells};
use super::{ABS, DAMPING, Declared, RDAMPING, TRUNCATE, eig_tol};
use crate::backend::PackedMatrix;
use crate::component::{int, word};
use crate::elem::ElemType;

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "ggt",
        params: &[
            int("history_size", 100, 1, "window of correction columns"),
            word(
                "storage",
                "params",
                &["params", "bf16", "f16"],
                "element type of the window: the parameters' dtype, or 16 bits (half the memory \
                 and traffic; rounded once per column, with a power-of-two scale per column)",
            ),
            word(
                "combine",
                "sum",
                &["sum", "mean", "ritz"],
                "the window represents the sum of its corrections, their mean, or (pairs \
                 (H·z, z)) H projected onto the probes' span, for l_inv's Newton steps",
            ),
            TRUNCATE,
            eig_tol(1e-5),
            DAMPING,
            RDAMPING,
            ABS,
        ],
        summary: "eigenbasis of the last history_size corrections, kept implicit: O(n·m) per step",
    },
];

pub fn build_seeded<B: Backend + 'static>(c: &Component, (be, _seed): (&B, u64)) -> Result<Box<dyn Basis<B>>> {
    Ok(Box::new(Ggt::new(c, be)?))
}

/// The window of history_size entries (one column each, two for a pair) with their roles,
/// the Gram matrix and the eigen-coefficients of the current basis (k ≤ min(window, n)).
pub fn state(c: &Component, dims: &Dims) -> Declared {
    let m = c.usize("history_size").saturating_mul(if dims.paired { 2 } else { 1 });
    let k = m.min(dims.n);
    let layout = match storage(c) {
        None => Layout::new().vectors("window", m as u128),
        Some(format) => Layout::new()
            .stored_vectors("window", format, m as u128)
            .f64s("window_scale", m as u128),
    };
    let layout = layout
        .f64s("alpha", m as u128)
        .u64s("role", m as u128)
        .f64s("gram", cells(m, m))
        .f64s("coeffs", cells(k, m))
        .f64s("eigenvalues", k as u128);
    Declared { layout, rank: k }
}

/// The window's 16-bit storage format, or None for the parameters' dtype.
fn storage(c: &Component) -> Option<ElemType> {
    match c.word("storage") {
        "bf16" => Some(ElemType::Bf16),
        "f16" => Some(ElemType::F16),
        _ => None,
    }
}

/// The window's columns: in the parameters' dtype, or in a 16-bit format.
enum Window<B: Backend> {
    Native(B::Matrix),
    Packed(Box<dyn PackedMatrix<B>>),
}

impl<B: Backend> Window<B> {
    fn columns(&self, be: &B) -> usize {
        match self {
            Window::Native(m) => be.matrix_columns(m),
            Window::Packed(p) => p.columns(),
        }
    }

    fn grow(&mut self, be: &B, cols: usize) -> Result<()> {
        match self {
            Window::Native(m) => be.grow_matrix(m, cols),
            Window::Packed(p) => p.grow(cols),
        }
    }

    fn bytes(&self, be: &B) -> usize {
        match self {
            Window::Native(m) => be.matrix_bytes(be.matrix_columns(m)),
            Window::Packed(p) => p.bytes(),
        }
    }

    fn column_dots(&self, be: &B, cols: &[usize], x: &B::Vector, out: &mut [f64]) {
        match self {
            Window::Native(m) => be.column_dots(m, cols, x, out),
            Window::Packed(p) => p.column_dots(cols, x, out),
        }
    }

    fn add_columns(&self, be: &B, cols: &[usize], w: &[f64], y: B::InOut<'_>) {
        match self {
            Window::Native(m) => be.add_columns(m, cols, w, y),
            Window::Packed(p) => p.add_columns(cols, w, y),
        }
    }
}

/// Relative cut-off of K's eigenvalues in the K^½ path (the window's numerical rank).
const GRAM_RANK_TOL: f64 = 1e-13;

/// What a window column contributes to A = M·E·Mᵀ.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    /// α·vvᵀ.
    Single(f64),
    /// The y of a pair (the z follows it): ½α(yzᵀ + zyᵀ).
    PairY(f64),
    PairZ,
}

impl Role {
    /// Window columns the entry starting with this role occupies.
    fn width(self) -> usize {
        if let Role::PairY(_) = self { 2 } else { 1 }
    }
}

/// The current basis in window coordinates.
struct Current {
    /// W (m×k): U = M·W.
    coeffs: Mat<f64>,
    /// Regularized eigenvalues (ascending), rdamping included.
    eigenvalues: Vec<f64>,
}

/// GGT basis over backend `B`.
pub struct Ggt<B: Backend> {
    window: Window<B>,
    /// history_size: corrections (entries) kept.
    capacity: usize,
    /// Physical column of each logical column, oldest first.
    slots: VecDeque<usize>,
    /// Each logical column's role.
    roles: VecDeque<Role>,
    /// MᵀM in logical order.
    gram: Mat<f64>,
    reg: Regularization,
    damping: f64,
    rdamping: f64,
    /// What the window represents.
    combine: Combine,
    current: Option<Current>,
    /// Products of the last correction's columns (y's) with the window as it now is, by
    /// correction column (`None` for columns that did not enter the window).
    cached: Vec<Option<Vec<f64>>>,
}

impl<B: Backend + 'static> Ggt<B> {
    pub fn new(c: &Component, be: &B) -> Result<Self> {
        let capacity = c.usize("history_size");
        // A rank above n only adds round-off directions (docs/algorithm.md §7 item 19).
        let truncate = c.opt_usize("truncate").unwrap_or(usize::MAX).min(be.global_ndim());
        let window = match storage(c) {
            None => Window::Native(be.matrix(0)?),
            Some(format) => Window::Packed(be.packed_matrix(format)?),
        };
        Ok(Ggt {
            window,
            capacity,
            slots: VecDeque::new(),
            roles: VecDeque::new(),
            gram: Mat::zeros(0, 0),
            reg: Regularization {
                truncate: Some(truncate),
                tol: c.opt_f64("eig_tol"),
                damping: 0.0,
                rdamping: 0.0,
                abs: c.bool("abs"),
            },
            damping: c.f64("damping"),
            rdamping: c.f64("rdamping"),
            combine: combine(c),
            current: None,
            cached: Vec::new(),
        })
    }

    /// Grows the window so it holds at least `columns` (at most two per entry): doubling up to
    /// history_size columns, exactly beyond (only pairs of an asymmetric correction need more).
    fn reserve(&mut self, be: &B, columns: usize) -> Result<()> {
        let have = self.window.columns(be);
        let needed = columns.min(2 * self.capacity);
        if have < needed {
            self.window
                .grow(be, needed.max((2 * have).min(self.capacity)))?;
        }
        Ok(())
    }

    /// Most window columns the current kind of corrections can occupy.
    fn column_limit(&self) -> usize {
        let paired = self.roles.iter().any(|r| matches!(r, Role::PairY(_)));
        if paired {
            2 * self.capacity
        } else {
            self.capacity
        }
    }

    /// The eigenbasis of A = M·E·Mᵀ from K = MᵀM and the roles, or why there is none.
    fn eigenbasis(&self, gram: &Mat<f64>, roles: &[Role]) -> Result<Current, String> {
        let m = gram.nrows();
        let unit =
            self.combine == Combine::Sum && roles.iter().all(|r| *r == Role::Single(1.0));
        let (values, vectors, coeffs_of) = if unit {
            let damped = Mat::from_fn(m, m, |i, j| {
                gram[(i, j)] + if i == j { self.damping } else { 0.0 }
            });
            let (values, vectors) = symmetric_eigen(&damped).map_err(|e| e.to_string())?;
            (values, vectors, None)
        } else if self.combine == Combine::Ritz {
            let (values, vectors, inverse_half) = self.ritz(gram, roles)?;
            (values, vectors, Some(inverse_half))
        } else {
            let (sigma, w) = symmetric_eigen(gram).map_err(|e| e.to_string())?;
            let top = sigma.iter().copied().fold(0.0, f64::max);
            let rank: Vec<usize> = (0..m).filter(|&i| sigma[i] > GRAM_RANK_TOL * top).collect();
            let share = if self.combine == Combine::Mean {
                let corrections = roles.iter().filter(|r| !matches!(r, Role::PairZ)).count();
                1.0 / corrections.max(1) as f64
            } else {
                1.0
            };
            let weights = weights(roles, share);
            // B = Wₖ·Σ^½ (m×r): S = Bᵀ·E·B.
            let half = Mat::from_fn(m, rank.len(), |i, j| {
                w[(i, rank[j])] * sigma[rank[j]].sqrt()
            });
            let s = mul_tn(half.as_ref(), mul(weights.as_ref(), half.as_ref()).as_ref());
            let damped = Mat::from_fn(s.nrows(), s.ncols(), |i, j| {
                s[(i, j)] + if i == j { self.damping } else { 0.0 }
            });
            let (values, vectors) = symmetric_eigen(&damped).map_err(|e| e.to_string())?;
            let inverse_half = Mat::from_fn(m, rank.len(), |i, j| {
                w[(i, rank[j])] / sigma[rank[j]].sqrt()
            });
            (values, vectors, Some(inverse_half))
        };
        let (values, vectors) =
            regularize_eigen(&values, &vectors, &self.reg).ok_or("no finite eigenvalue")?;
        let (coeffs, eigenvalues) = match coeffs_of {
            None => {
                // U = M·V·Λ^{-1/2} needs λ > 0; a Gram matrix's other eigenvalues are round-off.
                let keep: Vec<usize> = (0..values.len()).filter(|&i| values[i] > 0.0).collect();
                let coeffs = Mat::from_fn(m, keep.len(), |r, j| {
                    vectors[(r, keep[j])] / values[keep[j]].sqrt()
                });
                (coeffs, keep.iter().map(|&i| values[i]).collect::<Vec<_>>())
            }
            Some(inverse_half) => (mul(inverse_half.as_ref(), vectors.as_ref()), values),
        };
        let lambda_max = eigenvalues.last().copied().unwrap_or(0.0);
        let eigenvalues = eigenvalues
            .iter()
            .map(|l| l + self.rdamping * lambda_max)
            .collect();
        Ok(Current {
            coeffs,
            eigenvalues,
        })
    }
}

impl<B: Backend> Ggt<B> {
    /// The Rayleigh–Ritz problem of `combine=ritz`: S's eigenpairs and K_zz^{-½} as window
    /// coefficients (m×r, zero on the y rows).
    fn ritz(&self, gram: &Mat<f64>, roles: &[Role]) -> Result<SmallEigen, String> {
        // (y row, z row, α) of every pair.
        let pairs: Vec<(usize, usize, f64)> = roles
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match *r {
                Role::PairY(a) => Some((i, i + 1, a)),
                _ => None,
            })
            .collect();
        if pairs.len() * 2 != roles.len() {
            return Err("combine=ritz needs paired corrections (H·z, z)".into());
        }
        let q = pairs.len();
        let kzz = Mat::from_fn(q, q, |a, b| gram[(pairs[a].1, pairs[b].1)]);
        let (sigma, v) = symmetric_eigen(&kzz).map_err(|e| e.to_string())?;
        let top = sigma.iter().copied().fold(0.0, f64::max);
        let rank: Vec<usize> = (0..q).filter(|&i| sigma[i] > GRAM_RANK_TOL * top).collect();
        let inverse_half_z = Mat::from_fn(q, rank.len(), |a, j| v[(a, rank[j])] / sigma[rank[j]].sqrt());
        // T = sym(Zᵀ·Y·D): z_aᵀ(α_b·y_b), symmetrized.
        let t = Mat::from_fn(q, q, |a, b| {
            let (ya, za, alpha_a) = pairs[a];
            let (yb, zb, alpha_b) = pairs[b];
            0.5 * (alpha_b * gram[(za, yb)] + alpha_a * gram[(ya, zb)])
        });
        let s = mul_tn(inverse_half_z.as_ref(), mul(t.as_ref(), inverse_half_z.as_ref()).as_ref());
        let damped = Mat::from_fn(s.nrows(), s.ncols(), |i, j| {
            s[(i, j)] + if i == j { self.damping } else { 0.0 }
        });
        let (values, vectors) = symmetric_eigen(&damped).map_err(|e| e.to_string())?;
        let mut inverse_half = Mat::zeros(roles.len(), rank.len());
        for (a, &(_, z, _)) in pairs.iter().enumerate() {
            for j in 0..rank.len() {
                inverse_half[(z, j)] = inverse_half_z[(a, j)];
            }
        }
        Ok((values, vectors, inverse_half))
    }
}

/// Eigenvalues and eigenvectors of a small problem, and the window coefficients (m×r) they
/// multiply.
type SmallEigen = (Vec<f64>, Mat<f64>, Mat<f64>);

/// What a ggt window represents (`combine`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Combine {
    Sum,
    Mean,
    Ritz,
}

fn combine(c: &Component) -> Combine {
    match c.word("combine") {
        "mean" => Combine::Mean,
        "ritz" => Combine::Ritz,
        _ => Combine::Sum,
    }
}

/// Refuses `combine=ritz` unless the curvature's corrections are kept as pairs (H·z, z).
pub fn check_pairs(c: &Component, paired: bool) -> Result<()> {
    if c.name() == "ggt" && combine(c) == Combine::Ritz && !paired {
        return Err(Error::spec(
            "basis ggt(combine=ritz) projects H onto its probes and needs corrections kept as \
             pairs (H·z, z): a Hessian curvature (full_hutchinson_hessian) with symmetrize=false",
        ));
    }
    Ok(())
}

/// E: each column's weight in A = M·E·Mᵀ, times `share` (1/p for `scale=mean`).
fn weights(roles: &[Role], share: f64) -> Mat<f64> {
    let mut e = Mat::zeros(roles.len(), roles.len());
    for (i, role) in roles.iter().enumerate() {
        match *role {
            Role::Single(a) => e[(i, i)] = share * a,
            Role::PairY(a) => {
                e[(i, i + 1)] = 0.5 * share * a;
                e[(i + 1, i)] = 0.5 * share * a;
            }
            Role::PairZ => {}
        }
    }
    e
}

fn state_error(message: impl Into<String>) -> Error {
    Error::new(Status::LRE_ERR_STATE, message)
}

impl<B: Backend + 'static> Basis<B> for Ggt<B> {
    /// The window grows as it fills, so memory follows what is used (and a loaded state can
    /// only allocate what it contains).
    fn prepare(&mut self, be: &B, new_columns: usize) -> Result<()> {
        self.reserve(
            be,
            (self.slots.len() + new_columns).min(self.column_limit()),
        )
    }

    fn update(&mut self, be: &B, correction: &Correction<'_, B::Vector>) -> Result<Outcome> {
        let z = correction.z.as_deref();
        // Entries that would be dropped at once never enter the window.
        let skip = correction.columns.len().saturating_sub(self.capacity);
        let mut new: Vec<(&B::Vector, Role)> = Vec::new();
        for i in skip..correction.columns.len() {
            let alpha = correction.alpha[i];
            match z {
                Some(z) => {
                    new.push((correction.columns[i], Role::PairY(alpha)));
                    new.push((z[i], Role::PairZ));
                }
                None => new.push((correction.columns[i], Role::Single(alpha))),
            }
        }
        let c = new.len();
        let old: Vec<usize> = self.slots.iter().copied().collect();
        let m_old = old.len();
        // Drop whole entries, oldest first, beyond history_size.
        let entries_old = self
            .roles
            .iter()
            .filter(|r| !matches!(r, Role::PairZ))
            .count();
        let entries_new = correction.columns.len() - skip;
        let mut drop = 0;
        for _ in 0..(entries_old + entries_new).saturating_sub(self.capacity) {
            drop += self.roles[drop].width();
        }
        let kept = m_old - drop;
        let m_new = kept + c;
        // Dropped columns are reused; a no-op when the optimizer called `prepare`.
        self.reserve(be, m_old.max(m_new))?;
        // The only n-sized work: products of the new columns with the old window and each other.
        // A 16-bit window forms them with the new columns as they will be stored (each with the
        // scale it will get), so K is the Gram matrix of the stored window.
        let mut scales = Vec::new();
        let (products, inner) = match &self.window {
            Window::Native(m) => {
                let products: Vec<Vec<f64>> = new
                    .iter()
                    .map(|(v, _)| {
                        let mut d = vec![0.0; m_old];
                        be.column_dots(m, &old, v, &mut d);
                        d
                    })
                    .collect();
                let mut inner = Mat::<f64>::zeros(c, c);
                for i in 0..c {
                    for j in 0..=i {
                        let v = be.dot(new[i].0, new[j].0);
                        inner[(i, j)] = v;
                        inner[(j, i)] = v;
                    }
                }
                (products, inner)
            }
            Window::Packed(p) => {
                scales = new.iter().map(|(v, _)| p.scale_for(v)).collect();
                let entering: Vec<(&B::Vector, f64)> =
                    new.iter().zip(&scales).map(|((v, _), s)| (*v, *s)).collect();
                p.entering_products(&old, &entering)
            }
        };

        let gram = Mat::from_fn(m_new, m_new, |i, j| match (i < kept, j < kept) {
            (true, true) => self.gram[(i + drop, j + drop)],
            (true, false) => products[j - kept][i + drop],
            (false, true) => products[i - kept][j + drop],
            (false, false) => inner[(i - kept, j - kept)],
        });
        let roles: Vec<Role> = self
            .roles
            .iter()
            .skip(drop)
            .copied()
            .chain(new.iter().map(|(_, r)| *r))
            .collect();
        // Vector index of each correction column's y among the new columns.
        let y_index = |j: usize| -> Option<usize> {
            let per = if z.is_some() { 2 } else { 1 };
            j.checked_sub(skip).map(|k| k * per)
        };

        let current = match self.eigenbasis(&gram, &roles) {
            Ok(current) => current,
            Err(why) => {
                // Keep the window and the basis; the products stay valid for projection.
                self.cached = (0..correction.columns.len())
                    .map(|j| y_index(j).map(|k| products[k].clone()))
                    .collect();
                return Ok(Outcome::Unchanged {
                    failure: Some(format!("ggt eigendecomposition failed: {why}")),
                });
            }
        };

        let change = self.current.as_ref().map(|previous| {
            // M_newᵀM_old: surviving rows of K_old, then the new columns' products.
            let cross = Mat::from_fn(m_new, m_old, |i, j| {
                if i < kept {
                    self.gram[(i + drop, j)]
                } else {
                    products[i - kept][j]
                }
            });
            mul(
                mul_tn(current.coeffs.as_ref(), cross.as_ref()).as_ref(),
                previous.coeffs.as_ref(),
            )
        });

        // Commit: reuse fresh physical columns first, then the dropped ones.
        let mut free: Vec<usize> = (m_old..self.window.columns(be)).collect();
        free.extend(self.slots.drain(..drop));
        for (i, ((v, _), slot)) in new.iter().zip(free).enumerate() {
            match &mut self.window {
                Window::Native(m) => be.set_column(m, slot, v),
                Window::Packed(p) => p.set_column(slot, v, scales[i]),
            }
            self.slots.push_back(slot);
        }
        self.roles = roles.into();
        self.cached = (0..correction.columns.len())
            .map(|j| y_index(j).map(|k| gram.row(kept + k).iter().copied().collect()))
            .collect();
        self.gram = gram;
        self.current = Some(current);
        Ok(Outcome::Changed(BasisChange { change }))
    }

    fn rank(&self) -> Option<usize> {
        self.current.as_ref().map(|c| c.eigenvalues.len())
    }

    fn eigenvalues(&self) -> Option<&[f64]> {
        self.current.as_ref().map(|c| c.eigenvalues.as_slice())
    }

    fn provides_eigenvalues(&self) -> bool {
        true
    }

    fn project(&mut self, be: &B, v: Source<'_, B::Vector>, out: &mut Vec<f64>) {
        let current = self
            .current
            .as_ref()
            .expect("ggt: project before the first basis");
        let cached = match v {
            Source::CorrectionColumn(j, _) => self.cached.get(j).and_then(Option::as_ref),
            Source::Vector(_) => None,
        };
        let products = match (cached, v) {
            (Some(p), _) => p.clone(),
            (None, Source::CorrectionColumn(_, x) | Source::Vector(x)) => {
                let slots: Vec<usize> = self.slots.iter().copied().collect();
                let mut p = vec![0.0; slots.len()];
                self.window.column_dots(be, &slots, x, &mut p);
                p
            }
        };
        *out = mat_t_vec(current.coeffs.as_ref(), &products);
    }

    fn add_unprojected(&mut self, be: &B, u: &[f64], alpha: f64, y: B::InOut<'_>) {
        let current = self
            .current
            .as_ref()
            .expect("ggt: unproject before the first basis");
        let mut w = mat_vec(current.coeffs.as_ref(), u);
        w.iter_mut().for_each(|x| *x *= alpha);
        let slots: Vec<usize> = self.slots.iter().copied().collect();
        self.window.add_columns(be, &slots, &w, y);
    }

    fn state_bytes(&self, be: &B) -> usize {
        self.window.bytes(be)
    }

    /// The window in logical order (oldest first), its roles (omitted when all are unit
    /// weights), its Gram matrix and the current basis. Physical slots and cached products are
    /// not state.
    fn save(&self, be: &B, enc: &mut Encoder<'_>) {
        match &self.window {
            Window::Native(m) => {
                let slots: Vec<usize> = self.slots.iter().copied().collect();
                put_columns(be, enc, "window", m, &slots);
            }
            Window::Packed(p) => {
                let mut scales = vec![0.0; self.slots.len()];
                let rows = self.slots.len();
                enc.put_rows_as::<u16>("window", p.format(), rows, be.ndim(), |i, out| {
                    scales[i] = p.column_to_host(self.slots[i], out)
                });
                enc.put("window_scale", &[rows], &scales);
            }
        }
        if self.roles.iter().any(|r| *r != Role::Single(1.0)) {
            let (alpha, kind): (Vec<f64>, Vec<u64>) = self
                .roles
                .iter()
                .map(|r| match *r {
                    Role::Single(a) => (a, 0),
                    Role::PairY(a) => (a, 1),
                    Role::PairZ => (0.0, 2),
                })
                .unzip();
            enc.put("alpha", &[alpha.len()], &alpha);
            enc.put("role", &[kind.len()], &kind);
        }
        put_matrix(enc, "gram", &self.gram);
        if let Some(current) = &self.current {
            put_matrix(enc, "coeffs", &current.coeffs);
            enc.put(
                "eigenvalues",
                &[current.eigenvalues.len()],
                &current.eigenvalues,
            );
        }
    }

    fn load(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()> {
        let m = dec.shape("window").map_or(0, |shape| shape[0]);
        if m > 2 * self.capacity {
            return Err(state_error(format!(
                "ggt: the state's window has {m} columns; history_size is {}",
                self.capacity
            )));
        }
        if matches!(self.window, Window::Packed(_)) {
            self.reserve(be, m)?;
        }
        let slots = match &mut self.window {
            // In a small state the window may be caller memory (docs/state-format.md).
            Window::Native(window) => get_columns(be, dec, "window", (window, 0), 0)?,
            Window::Packed(p) => {
                let scales = dec.get_shaped::<f64>("window_scale", &[m])?;
                let mut refused = Ok(());
                dec.get_rows_as::<u16>("window", p.format(), be.ndim(), |i, data| {
                    if refused.is_ok() {
                        refused = p.column_from_host(data, scales[i], i);
                    }
                })?;
                refused?;
                (0..m).collect()
            }
        };
        let roles: Vec<Role> = if dec.has("alpha") {
            let alpha = dec.get_shaped::<f64>("alpha", &[m])?;
            let kind = dec.get_shaped::<u64>("role", &[m])?;
            let roles: Vec<Role> = alpha
                .iter()
                .zip(&kind)
                .map(|(a, k)| match k {
                    0 => Ok(Role::Single(*a)),
                    1 => Ok(Role::PairY(*a)),
                    2 => Ok(Role::PairZ),
                    _ => Err(state_error(format!("ggt: unknown column role {k}"))),
                })
                .collect::<Result<_>>()?;
            let paired = roles.iter().enumerate().all(|(i, r)| match r {
                Role::PairY(_) => roles.get(i + 1) == Some(&Role::PairZ),
                Role::PairZ => i > 0 && matches!(roles[i - 1], Role::PairY(_)),
                Role::Single(_) => true,
            });
            if !paired {
                return Err(state_error("ggt: unpaired columns in the window"));
            }
            roles
        } else {
            vec![Role::Single(1.0); m]
        };
        let gram = get_matrix(dec, "gram", Some(m))?;
        if gram.ncols() != m {
            return Err(state_error(
                "ggt: the Gram matrix does not match the window",
            ));
        }
        self.current = if dec.has("coeffs") {
            let coeffs = get_matrix(dec, "coeffs", Some(m))?;
            let eigenvalues = dec.get_shaped::<f64>("eigenvalues", &[coeffs.ncols()])?;
            Some(Current {
                coeffs,
                eigenvalues,
            })
        } else {
            None
        };
        self.slots = slots.into();
        self.roles = roles.into();
        self.gram = gram;
        self.cached.clear();
        Ok(())
    }
}
