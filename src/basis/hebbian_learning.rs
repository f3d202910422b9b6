//! HebbianLearning (docs/algorithm.md §3.6, §4.9, §4.10): the principal subspace of the
//! corrections, learned by generalized Hebbian learning (Sanger's rule) on the Stiefel
//! manifold. No eigenvalues.
//!
//! Per update with columns Y (n×c; α is ignored, corrections must be symmetric), p_j = Xᵀy_j:
//! the Hebbian direction G = (1/c)·Σ_j [y_j·p_jᵀ − X·tril(p_j·p_jᵀ)] (an ascent direction of
//! the captured variance; column i is deflated by columns i.. so the last column converges to
//! the leading direction), value-clipped, then by `opt`:
//! - `gd`: X ← X + lr·G (norm-clipped);
//! - `stiefel_gd`: X ← X + lr·G_R with the tangent direction G_R = G − X·sym(XᵀG)
//!   (norm-clipped);
//! - `adamg` (Li et al.'s Cayley Adam), fixed as §7 item 3 says: applied to X = Q itself (n×k,
//!   orthonormal columns; the reference used the transposed layout, valid only for n ≤ k) and
//!   fed −G (AdamG descends; G ascends). M ← β1·M + (1−β1)·(−G), v ← β2·v + (1−β2)·‖G‖²,
//!   W = (P·Xᵀ − X·Pᵀ)/√(v̂ + ε) with P = M̂ − ½·X·(XᵀM̂), α = min(lr, 1/(‖W‖_F + ε)), and the
//!   Cayley step X ← (I + α/2·W)⁻¹(I − α/2·W)·X solved exactly (W has rank ≤ 2k: the solve is
//!   2k×2k in the coordinates of [X, M]; the reference iterated a fixed point five times);
//!   then M ← W·X·√(v̂ + ε)·(1 − β1^t), the momentum moved to the new tangent space
//!   (un-debiased: the reference multiplies by 1 − β1, which §4.10 flags as unverified).
//!
//! Every product above is read off one Gram matrix of [X, G, M, Y] (one pass); the new X and
//! M are written by one more pass. A QR retraction (the backend's tall QR) runs every
//! `reortho_freq` updates; without it, every update for `gd` and `stiefel_gd` (they leave the
//! manifold: the inner optimizers need orthonormal columns, so the reference's "none" is not
//! kept) and, for `adamg`, only when the Gram matrix shows XᵀX drifting from I by more than
//! [`DRIFT`] (the Cayley step is orthogonal; the reference instead re-orthonormalized with
//! probability 1/101). Bf16 Newton–Schulz is not offered (§7 item 10). X starts as the
//! orthonormal factor of a Gaussian matrix (the reference: 1e-4 × Gaussian, not orthonormal).
//! Cost: O(n·k²) per update, like the reference.

use super::projection::{Cached, add_columns_scaled, project_columns};
use super::store::{adopt_columns, get_block, put_columns};
use super::{Basis, BasisChange, Outcome, Source};
use crate::correction::Correction;
use crate::backend::Backend;
use crate::component::Component;
use crate::error::{Error, Result, Status};
use crate::linalg::{inverse, mul, mul_tn, upper_inverse};
use crate::state::{Decoder, Encoder};
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout};
use super::{Declared, RANK};
use crate::component::{Range, float, opt_float, opt_int, word};

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
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
        summary: "principal subspace learned by generalized Hebbian learning on the Stiefel manifold",
    },
];

pub fn build_seeded<B: Backend + 'static>(c: &Component, (be, seed): (&B, u64)) -> Result<Box<dyn Basis<B>>> {
    Ok(Box::new(HebbianLearning::new(c, be, seed)?))
}

/// One matrix, `x`: X and scratch (two blocks of rank columns that alternate), the AdamG
/// momentum (`m`, within `x`'s columns) and a correction's columns; the update count and
/// AdamG's v.
pub fn state(c: &Component, dims: &Dims) -> Declared {
    let r = c.usize("rank").min(dims.n);
    let layout = match dims.columns {
        Some(columns) => Layout::new()
            .vectors("x", r.saturating_mul(3).saturating_add(columns) as u128)
            .vectors_within("m", r as u128),
        // Corrections as wide as the batch: no fixed size.
        None => Layout::new().batch_sized("x").batch_sized("m"),
    };
    let layout = layout.u64s("updates", 1u8).f64s("v", 1u8);
    Declared { layout, rank: r }
}

/// Largest max|XᵀX − I| that adamg tolerates before a QR retraction.
const DRIFT: f64 = 1e-6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    AdamG,
    Gd,
    StiefelGd,
}

pub struct HebbianLearning<B: Backend> {
    /// Two blocks of `rank` columns alternate as X and scratch (G, then the new X), then M,
    /// then the correction's columns.
    matrix: B::Matrix,
    rank: usize,
    opt: Opt,
    lr: f64,
    value_clip: Option<f64>,
    norm_clip: Option<f64>,
    beta1: f64,
    beta2: f64,
    eps: f64,
    reortho_freq: Option<u64>,
    /// Which block holds X; `None` before the first update.
    x_block: Option<usize>,
    updates: u64,
    /// AdamG's second moment (M is in the matrix).
    v: f64,
    seed: u64,
    cached: Cached,
}

/// The coefficient blocks of one update, over the inputs [X, G, (M,) Y].
struct Step {
    /// New X = inputs·x (before any retraction).
    x: Mat<f64>,
    /// New M (adamg).
    m: Option<Mat<f64>>,
}

impl<B: Backend> HebbianLearning<B> {
    pub fn new(c: &Component, be: &B, seed: u64) -> Result<Self> {
        Ok(HebbianLearning {
            matrix: be.matrix(0)?,
            rank: c.usize("rank").min(be.global_ndim()),
            opt: match c.word("opt") {
                "gd" => Opt::Gd,
                "stiefel_gd" => Opt::StiefelGd,
                _ => Opt::AdamG,
            },
            lr: c.f64("lr"),
            value_clip: c.opt_f64("value_clip"),
            norm_clip: c.opt_f64("norm_clip"),
            beta1: c.f64("beta1"),
            beta2: c.f64("beta2"),
            eps: c.f64("eps"),
            reortho_freq: c.opt_usize("reortho_freq").map(|f| f as u64),
            x_block: None,
            updates: 0,
            v: 0.0,
            seed,
            cached: Cached::default(),
        })
    }

    fn block(&self, b: usize) -> Vec<usize> {
        (b * self.rank..(b + 1) * self.rank).collect()
    }

    fn with_momentum(&self) -> bool {
        self.opt == Opt::AdamG
    }

    /// The factor that scales a direction of norm `norm` down to `norm_clip`.
    fn clip(&self, norm: f64) -> f64 {
        match self.norm_clip {
            Some(max) if norm > max => max / norm,
            _ => 1.0,
        }
    }

    /// The update's coefficients from the Gram matrix `k` of [X, G, (M,) Y] (r = rank).
    fn step(&mut self, k: &Mat<f64>) -> Result<Step, String> {
        let r = self.rank;
        let dim = k.nrows();
        // Coefficients (dim × r) placing the r×r matrix `a` at the rows of block `at`.
        let place = |at: usize, a: &Mat<f64>| {
            Mat::from_fn(dim, r, |i, j| match (at..at + r).contains(&i) {
                true => a[(i - at, j)],
                false => 0.0,
            })
        };
        let g_norm = trace(&k.submatrix(r, r, r, r).to_owned()).sqrt();
        match self.opt {
            Opt::Gd => {
                let step = self.lr * self.clip(g_norm);
                let x = place(0, &scaled_eye(r, 1.0)) + place(r, &scaled_eye(r, step));
                Ok(Step { x, m: None })
            }
            Opt::StiefelGd => {
                let xg = k.submatrix(0, r, r, r);
                let sym = Mat::from_fn(r, r, |i, j| 0.5 * (xg[(i, j)] + xg[(j, i)]));
                let minus_sym = Mat::from_fn(r, r, |i, j| -sym[(i, j)]);
                let tangent = place(0, &minus_sym) + place(r, &scaled_eye(r, 1.0));
                let kt = mul(k.as_ref(), tangent.as_ref());
                let norm2 = trace(&mul_tn(tangent.as_ref(), kt.as_ref()));
                let step = self.lr * self.clip(norm2.max(0.0).sqrt());
                let stay = Mat::from_fn(r, r, |i, j| {
                    f64::from(u8::from(i == j)) - step * sym[(i, j)]
                });
                let x = place(0, &stay) + place(r, &scaled_eye(r, step));
                Ok(Step { x, m: None })
            }
            Opt::AdamG => self.adamg(k, g_norm, &place),
        }
    }

    /// AdamG's step (module doc) in the coordinates Z = [X, M_new] of the inputs.
    fn adamg(
        &mut self,
        k: &Mat<f64>,
        g_norm: f64,
        place: &dyn Fn(usize, &Mat<f64>) -> Mat<f64>,
    ) -> Result<Step, String> {
        let r = self.rank;
        let (beta1, beta2) = (self.beta1, self.beta2);
        let t = (self.updates + 1) as f64;
        let f = self.clip(g_norm);
        self.v = beta2 * self.v + (1.0 - beta2) * (f * g_norm).powi(2);
        let (bc1, bc2) = (1.0 - beta1.powf(t), 1.0 - beta2.powf(t));
        let s = (self.v / bc2 + self.eps).sqrt();
        // Z = [X, M_new] over the inputs, M_new = β1·M − (1 − β1)·f·G.
        let m_new =
            place(r, &scaled_eye(r, -(1.0 - beta1) * f)) + place(2 * r, &scaled_eye(r, beta1));
        let z = side_by_side(&place(0, &scaled_eye(r, 1.0)), &m_new);
        let kz = mul_tn(z.as_ref(), mul(k.as_ref(), z.as_ref()).as_ref());
        // In Z-coordinates X = e and P = M̂ − ½·X·(XᵀM̂) = pc; W·Z = Z·Ŵ/s with
        // Ŵ = (pc·eᵀ − e·pcᵀ)·Kz.
        let a = Mat::from_fn(r, r, |i, j| kz[(i, r + j)] / bc1);
        let e = stacked(&scaled_eye(r, 1.0), &scaled_eye(r, 0.0));
        let pc = stacked(
            &Mat::from_fn(r, r, |i, j| -0.5 * a[(i, j)]),
            &scaled_eye(r, 1.0 / bc1),
        );
        let outer = mul(pc.as_ref(), e.transpose()) - mul(e.as_ref(), pc.transpose());
        let w_hat = mul(outer.as_ref(), kz.as_ref());
        // ‖W‖_F² = (2·tr(PᵀP·XᵀX) − 2·tr((XᵀP)²))/s² (§7 item 3): k×k products only.
        let kz_pc = mul(kz.as_ref(), pc.as_ref());
        let ptp = mul_tn(pc.as_ref(), kz_pc.as_ref());
        let xtp = mul_tn(e.as_ref(), kz_pc.as_ref());
        let xtx = mul_tn(e.as_ref(), mul(kz.as_ref(), e.as_ref()).as_ref());
        let w_norm2 = 2.0 * trace(&mul(ptp.as_ref(), xtx.as_ref()))
            - 2.0 * trace(&mul(xtp.as_ref(), xtp.as_ref()));
        let w_norm = w_norm2.max(0.0).sqrt() / s;
        // α/2 with W's 1/s folded in: (I + h·Ŵ)·y = (I − h·Ŵ)·e.
        let h = 0.5 * self.lr.min(1.0 / (w_norm + self.eps)) / s;
        let w_e = mul(w_hat.as_ref(), e.as_ref());
        let lhs = Mat::from_fn(2 * r, 2 * r, |i, j| {
            f64::from(u8::from(i == j)) + h * w_hat[(i, j)]
        });
        let rhs = Mat::from_fn(2 * r, r, |i, j| e[(i, j)] - h * w_e[(i, j)]);
        let solve = inverse(&lhs).ok_or("the Cayley system is singular")?;
        let y = mul(solve.as_ref(), rhs.as_ref());
        // M ← W·X_new·√(v̂ + ε)·(1 − β1^t) = Z·Ŵ·y·(1 − β1^t).
        let z_w_y = mul(z.as_ref(), mul(w_hat.as_ref(), y.as_ref()).as_ref());
        let m = Mat::from_fn(z.nrows(), r, |i, j| bc1 * z_w_y[(i, j)]);
        Ok(Step {
            x: mul(z.as_ref(), y.as_ref()),
            m: Some(m),
        })
    }
}

/// x·I (r×r).
fn scaled_eye(r: usize, x: f64) -> Mat<f64> {
    Mat::from_fn(r, r, |i, j| if i == j { x } else { 0.0 })
}

/// Σ of the diagonal.
fn trace(a: &Mat<f64>) -> f64 {
    (0..a.nrows().min(a.ncols())).map(|i| a[(i, i)]).sum()
}

/// [a; b] (rows stacked).
fn stacked(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(a.nrows() + b.nrows(), a.ncols(), |i, j| {
        match i < a.nrows() {
            true => a[(i, j)],
            false => b[(i - a.nrows(), j)],
        }
    })
}

/// [a, b] (columns side by side).
fn side_by_side(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(a.nrows(), a.ncols() + b.ncols(), |i, j| {
        match j < a.ncols() {
            true => a[(i, j)],
            false => b[(i, j - a.ncols())],
        }
    })
}

impl<B: Backend> Basis<B> for HebbianLearning<B> {
    fn prepare(&mut self, be: &B, new_columns: usize) -> Result<()> {
        let needed = 3 * self.rank + new_columns;
        if be.matrix_columns(&self.matrix) < needed {
            be.grow_matrix(&mut self.matrix, needed)?;
        }
        Ok(())
    }

    fn update(&mut self, be: &B, correction: &Correction<'_, B::Vector>) -> Result<Outcome> {
        if correction.z.is_some() {
            return Err(Error::unsupported(
                "basis hebbian_learning needs symmetric corrections; use symmetrize=true",
            ));
        }
        let (r, c) = (self.rank, correction.columns.len());
        self.prepare(be, c)?;
        let first = self.x_block.is_none();
        let xb = self.x_block.unwrap_or(0);
        let (x, g, mom) = (self.block(xb), self.block(1 - xb), self.block(2));
        if first {
            be.gaussian_columns(&mut self.matrix, &x, self.seed);
            be.tall_qr(&mut self.matrix, &x, true);
            be.combine_columns(&mut self.matrix, &[], Mat::zeros(0, r).as_ref(), &mom, None);
        }
        let ys: Vec<usize> = (3 * r..3 * r + c).collect();
        for (v, &col) in correction.columns.iter().zip(&ys) {
            be.set_column(&mut self.matrix, col, v);
        }
        // G = [X, Y]·h: X·(−(1/c)·Σ_j tril(p_j·p_jᵀ)) + Y·(Pᵀ/c).
        let p = be.cross(&self.matrix, &x, &ys);
        let inv_c = 1.0 / c as f64;
        let h = Mat::from_fn(r + c, r, |l, i| match l < r {
            true if l >= i => -inv_c * (0..c).map(|j| p[(l, j)] * p[(i, j)]).sum::<f64>(),
            true => 0.0,
            false => inv_c * p[(i, l - r)],
        });
        let xy: Vec<usize> = x.iter().chain(&ys).copied().collect();
        be.combine_columns(&mut self.matrix, &xy, h.as_ref(), &g, None);
        if let Some(limit) = self.value_clip {
            be.clamp_columns(&mut self.matrix, &g, limit);
        }
        let mut inputs: Vec<usize> = x.iter().chain(&g).copied().collect();
        if self.with_momentum() {
            inputs.extend(&mom);
        }
        let y_at = inputs.len();
        inputs.extend(&ys);
        let k = be.gram(&self.matrix, &inputs);
        if !k.col_iter().all(|c| c.iter().all(|x| x.is_finite())) {
            // A direct caller's NaN (the optimizer refuses those): X and M are untouched.
            let failure = Some("hebbian_learning: the correction is not finite".to_string());
            return Ok(Outcome::Unchanged { failure });
        }
        let step = match self.step(&k) {
            Ok(step) => step,
            Err(why) => {
                let failure = Some(format!("hebbian_learning: {why}"));
                return Ok(Outcome::Unchanged { failure });
            }
        };
        // The new X goes into the scratch block (G is no longer needed), M in place.
        let (coef, outputs) = match &step.m {
            Some(m) => (
                Mat::from_fn(inputs.len(), 2 * r, |i, j| {
                    if j < r { step.x[(i, j)] } else { m[(i, j - r)] }
                }),
                g.iter().chain(&mom).copied().collect::<Vec<_>>(),
            ),
            None => (step.x.clone(), g.clone()),
        };
        be.combine_columns(&mut self.matrix, &inputs, coef.as_ref(), &outputs, None);
        self.updates += 1;
        // Products of the new X with the old X and with Y, from the Gram matrix.
        let kx = mul_tn(step.x.as_ref(), k.as_ref());
        let gram_new = mul(kx.as_ref(), step.x.as_ref());
        let drift = (0..r)
            .flat_map(|i| (0..r).map(move |j| (i, j)))
            .map(|(i, j)| (gram_new[(i, j)] - f64::from(u8::from(i == j))).abs())
            .fold(0.0, f64::max);
        let retract = match (self.reortho_freq, self.opt) {
            (Some(freq), _) => self.updates.is_multiple_of(freq),
            (None, Opt::AdamG) => drift > DRIFT,
            (None, _) => true,
        };
        let mut change = kx.subcols(0, r).to_owned();
        let mut projections = kx.subcols(y_at, c).to_owned();
        if retract {
            let factor = be.tall_qr(&mut self.matrix, &g, true);
            match (0..r).all(|i| factor[(i, i)] != 0.0) {
                // Q_new = X_pre·R⁻¹: products with Q_new are R⁻ᵀ times those with X_pre.
                true => {
                    let all: Vec<usize> = (0..r).collect();
                    let inv_t = upper_inverse(&factor, &all).transpose().to_owned();
                    change = mul(inv_t.as_ref(), change.as_ref());
                    projections = mul(inv_t.as_ref(), projections.as_ref());
                }
                // A completed column: measure C directly (X_old is still in its block).
                false => {
                    change = be.cross(&self.matrix, &g, &x);
                    projections = be.cross(&self.matrix, &g, &ys);
                }
            }
        }
        self.x_block = Some(1 - xb);
        self.cached.set(
            (0..c)
                .map(|j| projections.col(j).iter().copied().collect())
                .collect(),
        );
        let change = (!first).then_some(change);
        Ok(Outcome::Changed(BasisChange { change }))
    }

    fn rank(&self) -> Option<usize> {
        self.x_block.map(|_| self.rank)
    }

    fn eigenvalues(&self) -> Option<&[f64]> {
        None
    }

    fn provides_eigenvalues(&self) -> bool {
        false
    }

    fn project(&mut self, be: &B, v: Source<'_, B::Vector>, out: &mut Vec<f64>) {
        if let Some(x) = self.cached.lookup(v, out) {
            let xb = self
                .x_block
                .expect("hebbian_learning: project before the first basis");
            project_columns(be, &self.matrix, &self.block(xb), x, out);
        }
    }

    fn add_unprojected(&mut self, be: &B, u: &[f64], alpha: f64, y: B::InOut<'_>) {
        let xb = self
            .x_block
            .expect("hebbian_learning: unproject before the first basis");
        add_columns_scaled(be, &self.matrix, &self.block(xb), (u, alpha), y);
    }

    fn state_bytes(&self, be: &B) -> usize {
        be.matrix_bytes(be.matrix_columns(&self.matrix))
    }

    /// `x` [rank, n] and, for adamg, `m` [rank, n] (absent before the first update), the
    /// number of `updates` and AdamG's second moment `v`.
    fn save(&self, be: &B, enc: &mut Encoder<'_>) {
        if let Some(xb) = self.x_block {
            put_columns(be, enc, "x", &self.matrix, &self.block(xb));
            if self.with_momentum() {
                put_columns(be, enc, "m", &self.matrix, &self.block(2));
            }
        }
        enc.put_u64("updates", self.updates);
        enc.put("v", &[], &[self.v]);
    }

    fn load(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()> {
        let r = self.rank;
        self.x_block = match dec.has("x") {
            false => {
                adopt_columns(be, dec, "x", &mut self.matrix, 3 * r)?;
                None
            }
            true => {
                let wrong = |name: &str| {
                    Error::new(
                        Status::LRE_ERR_STATE,
                        format!("hebbian_learning: {name} does not have rank = {r} columns"),
                    )
                };
                let (xb, count) = get_block(be, dec, "x", (&mut self.matrix, &[0, r]), 3 * r)?;
                if count != r {
                    return Err(wrong("x"));
                }
                if self.with_momentum()
                    && get_block(be, dec, "m", (&mut self.matrix, &[2 * r]), 0)?.1 != r
                {
                    return Err(wrong("m"));
                }
                Some(xb / r.max(1))
            }
        };
        self.updates = dec.get_u64("updates")?;
        self.v = dec.get_shaped::<f64>("v", &[])?[0];
        self.cached.clear();
        Ok(())
    }
}
