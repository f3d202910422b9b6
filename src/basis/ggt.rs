//! GGT (ALGORITHM.md §3.2) without forming U (§8.2).
//!
//! The window M = [y_1 … y_m] (n×m, a ring of physical columns) and its Gram matrix G = MᵀM
//! (f64) are kept. The basis is U = M·W with W = V·Λ^{-1/2} from eig(G + damping·I), never
//! formed: projection is Wᵀ(Mᵀg), unprojection is M·(W·u), and the change of basis is
//! C = W_newᵀ·(M_newᵀM_old)·W_old, where M_newᵀM_old comes from G_old and the new Gram rows.
//! Per update: one pass over the window for the new Gram row and one to unproject; O(m³) small work.

use super::{Basis, BasisChange, Correction, Outcome, Source};
use crate::backend::Backend;
use crate::component::Component;
use crate::error::{Error, Result, Status};
use crate::linalg::{
    Regularization, mat_t_vec, mat_vec, mul, mul_tn, regularize_eigen, symmetric_eigen,
};
use crate::state::{Decoder, Encoder, get_matrix, put_matrix};
use faer::Mat;
use std::collections::VecDeque;

/// The current basis in window coordinates.
struct Current {
    /// W (m×k): U = M·W.
    coeffs: Mat<f64>,
    /// Regularized eigenvalues (ascending), rdamping included.
    eigenvalues: Vec<f64>,
}

/// GGT basis over backend `B`.
pub struct Ggt<B: Backend> {
    window: B::Matrix,
    capacity: usize,
    /// Physical column of each logical column, oldest first.
    slots: VecDeque<usize>,
    /// MᵀM in logical order.
    gram: Mat<f64>,
    reg: Regularization,
    damping: f64,
    rdamping: f64,
    current: Option<Current>,
    /// Products of the last correction's columns with the window as it now is (logical order).
    cached: Vec<Vec<f64>>,
    /// Leading correction columns that did not fit in the window (no cached products).
    cache_offset: usize,
}

impl<B: Backend> Ggt<B> {
    pub fn new(c: &Component, be: &B) -> Result<Self> {
        let capacity = c.usize("history_size");
        // A rank above n only adds round-off directions (ALGORITHM.md §7 item 19).
        let truncate = c.opt_usize("truncate").unwrap_or(usize::MAX).min(be.ndim());
        Ok(Ggt {
            window: be.matrix(0)?,
            capacity,
            slots: VecDeque::with_capacity(capacity),
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
            current: None,
            cached: Vec::new(),
            cache_offset: 0,
        })
    }

    /// Grows the window (doubling, up to history_size) so it holds at least `columns`.
    fn reserve(&mut self, be: &B, columns: usize) -> Result<()> {
        let have = be.matrix_columns(&self.window);
        let needed = columns.min(self.capacity);
        if have < needed {
            be.grow_matrix(&mut self.window, needed.max(2 * have).min(self.capacity))?;
        }
        Ok(())
    }

    /// Eigenbasis of a window Gram matrix, or why there is none.
    fn eigenbasis(&self, gram: &Mat<f64>) -> Result<Current, String> {
        let m = gram.nrows();
        let damped = Mat::from_fn(m, m, |i, j| {
            gram[(i, j)] + if i == j { self.damping } else { 0.0 }
        });
        let (values, vectors) = symmetric_eigen(&damped).map_err(|e| e.to_string())?;
        let (values, vectors) =
            regularize_eigen(&values, &vectors, &self.reg).ok_or("no finite eigenvalue")?;
        // U = M·V·Λ^{-1/2} needs λ > 0; a Gram matrix's other eigenvalues are round-off.
        let keep: Vec<usize> = (0..values.len()).filter(|&i| values[i] > 0.0).collect();
        let lambda_max = keep.last().map_or(0.0, |&i| values[i]);
        let coeffs = Mat::from_fn(m, keep.len(), |r, j| {
            vectors[(r, keep[j])] / values[keep[j]].sqrt()
        });
        let eigenvalues = keep
            .iter()
            .map(|&i| values[i] + self.rdamping * lambda_max)
            .collect();
        Ok(Current {
            coeffs,
            eigenvalues,
        })
    }
}

fn state_error(message: impl Into<String>) -> Error {
    Error::new(Status::LRE_ERR_STATE, message)
}

impl<B: Backend> Basis<B> for Ggt<B> {
    /// The window grows as it fills, so memory follows what is used (and a loaded state can
    /// only allocate what it contains).
    fn prepare(&mut self, be: &B, new_columns: usize) -> Result<()> {
        self.reserve(be, self.slots.len() + new_columns)
    }

    fn update(&mut self, be: &B, correction: &Correction<'_, B::Vector>) -> Result<Outcome> {
        if correction.z.is_some() || correction.alpha.iter().any(|&a| a != 1.0) {
            return Err(Error::unsupported(
                "ggt with signed or asymmetric corrections (bfgs, sr1, or symmetrize=false with a \
                 Hessian curvature) is not implemented yet",
            ));
        }
        // Columns that would be dropped at once never enter the window.
        let skip = correction.columns.len().saturating_sub(self.capacity);
        let new = &correction.columns[skip..];
        let c = new.len();
        // A no-op when the optimizer called `prepare`; direct callers get the same guarantee.
        self.reserve(be, self.slots.len() + c)?;
        let old: Vec<usize> = self.slots.iter().copied().collect();
        let m_old = old.len();

        // The only n-sized work: products of the new columns with the old window and each other.
        let products: Vec<Vec<f64>> = new
            .iter()
            .map(|y| {
                let mut d = vec![0.0; m_old];
                be.column_dots(&self.window, &old, y, &mut d);
                d
            })
            .collect();
        let mut inner = Mat::<f64>::zeros(c, c);
        for i in 0..c {
            for j in 0..=i {
                let v = be.dot(new[i], new[j]);
                inner[(i, j)] = v;
                inner[(j, i)] = v;
            }
        }

        let drop = (m_old + c).saturating_sub(self.capacity);
        let kept = m_old - drop;
        let m_new = kept + c;
        let gram = Mat::from_fn(m_new, m_new, |i, j| match (i < kept, j < kept) {
            (true, true) => self.gram[(i + drop, j + drop)],
            (true, false) => products[j - kept][i + drop],
            (false, true) => products[i - kept][j + drop],
            (false, false) => inner[(i - kept, j - kept)],
        });

        self.cache_offset = skip;
        let current = match self.eigenbasis(&gram) {
            Ok(current) => current,
            Err(why) => {
                // Keep the window and the basis; the products stay valid for projection.
                self.cached = products;
                return Ok(Outcome::Unchanged {
                    failure: Some(format!("ggt eigendecomposition failed: {why}")),
                });
            }
        };

        let change = self.current.as_ref().map(|previous| {
            // M_newᵀM_old: surviving rows of G_old, then the new columns' products.
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
        let mut free: Vec<usize> = (m_old..be.matrix_columns(&self.window)).collect();
        free.extend(self.slots.drain(..drop));
        for (y, slot) in new.iter().zip(free) {
            be.set_column(&mut self.window, slot, y);
            self.slots.push_back(slot);
        }
        self.cached = (kept..m_new)
            .map(|i| gram.row(i).iter().copied().collect())
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
            Source::CorrectionColumn(j, _) if j >= self.cache_offset => {
                self.cached.get(j - self.cache_offset)
            }
            _ => None,
        };
        let products = match (cached, v) {
            (Some(p), _) => p.clone(),
            (None, Source::CorrectionColumn(_, x) | Source::Vector(x)) => {
                let slots: Vec<usize> = self.slots.iter().copied().collect();
                let mut p = vec![0.0; slots.len()];
                be.column_dots(&self.window, &slots, x, &mut p);
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
        be.add_columns(&self.window, &slots, &w, y);
    }

    fn state_bytes(&self, be: &B) -> usize {
        be.matrix_bytes(be.matrix_columns(&self.window))
    }

    /// The window in logical order (oldest first), its Gram matrix and the current basis.
    /// Physical slots and cached products are not state.
    fn save(&self, be: &B, enc: &mut Encoder<'_>) {
        enc.put_rows::<B::Elem>("window", self.slots.len(), be.ndim(), |i, out| {
            be.column_to_host(&self.window, self.slots[i], out)
        });
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
        if m > self.capacity {
            return Err(state_error(format!(
                "ggt: the state's window has {m} columns; history_size is {}",
                self.capacity
            )));
        }
        self.reserve(be, m)?;
        let window = &mut self.window;
        dec.get_rows::<B::Elem>("window", be.ndim(), |i, data| {
            be.column_from_host(data, window, i)
        })?;
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
        self.slots = (0..m).collect();
        self.gram = gram;
        self.cached.clear();
        self.cache_offset = 0;
        Ok(())
    }
}
