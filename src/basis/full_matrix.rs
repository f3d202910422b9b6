//! FullMatrix (docs/algorithm.md §3.7): a dense n×n accumulator M (starting at I), fully
//! eigendecomposed on every update. O(n³) per update and O(n²) memory, so it is refused above
//! [`MAX_NDIM`]; it exists for tests and 2-D problems.

use super::{Basis, BasisChange, Outcome, Source};
use crate::correction::Correction;
use crate::backend::Backend;
use crate::component::Component;
use crate::error::{Error, Result, Status};
use crate::linalg::{
    Regularization, mat_t_vec, mat_vec, mul_tn, regularize_eigen, symmetric_eigen,
};
use crate::state::{Decoder, Encoder, get_matrix, put_matrix};
use faer::Mat;
use crate::component::ComponentSpec;
use crate::state::layout::{Dims, Layout, cells};
use super::{ABS, BETA, DAMPING, Declared, RDAMPING, TRUNCATE, eig_tol};

/// The component(s) this file implements.
pub static COMPONENTS: [ComponentSpec; 1] = [
    ComponentSpec {
        name: "full_matrix",
        params: &[BETA, TRUNCATE, eig_tol(1e-12), DAMPING, RDAMPING, ABS],
        summary: "dense n×n matrix, full eigendecomposition each update (n <= 1024; for tests and 2-D problems)",
    },
];

pub fn build_seeded<B: Backend + 'static>(c: &Component, (be, _seed): (&B, u64)) -> Result<Box<dyn Basis<B>>> {
    Ok(Box::new(FullMatrix::new(c, be)?))
}

/// The dense n×n accumulator, its eigenvectors and eigenvalues (host f64).
pub fn state(_c: &Component, dims: &Dims) -> Declared {
    let n = dims.n;
    let layout = Layout::new()
        .f64s("accumulator", cells(n, n))
        .f64s("vectors", cells(n, n))
        .f64s("values", n as u128);
    Declared { layout, rank: n }
}

/// Largest n accepted: one update costs ~9n³ flops (≈1e10 at n = 1024).
pub const MAX_NDIM: usize = 1024;

pub struct FullMatrix {
    /// The accumulated matrix (n×n, host f64).
    accumulator: Mat<f64>,
    beta: Option<f64>,
    reg: Regularization,
    /// Kept eigenvectors (n×k) and eigenvalues (ascending).
    basis: Option<(Mat<f64>, Vec<f64>)>,
    /// Host scratch (length n).
    scratch: Vec<f64>,
}

impl FullMatrix {
    pub fn new<B: Backend>(c: &Component, be: &B) -> Result<Self> {
        let n = be.ndim();
        if n > MAX_NDIM {
            return Err(Error::unsupported(format!(
                "basis full_matrix keeps a dense n×n matrix and accepts n <= {MAX_NDIM}; got n = {n}. \
                 Use ggt for large problems"
            )));
        }
        Ok(FullMatrix {
            accumulator: Mat::identity(n, n),
            beta: c.opt_f64("beta"),
            reg: Regularization {
                truncate: c.opt_usize("truncate"),
                tol: c.opt_f64("eig_tol"),
                damping: c.f64("damping"),
                rdamping: c.f64("rdamping"),
                abs: c.bool("abs"),
            },
            basis: None,
            scratch: vec![0.0; n],
        })
    }
}

impl<B: Backend> Basis<B> for FullMatrix {
    fn update(&mut self, be: &B, correction: &Correction<'_, B::Vector>) -> Result<Outcome> {
        let n = self.accumulator.nrows();
        let download = |v: &B::Vector| {
            let mut host = vec![0.0; n];
            be.download(v, &mut host);
            host
        };
        let ys: Vec<Vec<f64>> = correction.columns.iter().map(|v| download(v)).collect();
        let zs: Vec<Vec<f64>> = match &correction.z {
            Some(z) => z.iter().map(|v| download(v)).collect(),
            None => ys.clone(),
        };
        let (w_old, w_new) = match self.beta {
            Some(beta) => (beta, 1.0 - beta),
            None => (1.0, 1.0),
        };
        let candidate = Mat::from_fn(n, n, |i, j| {
            let corr: f64 = ys
                .iter()
                .zip(&zs)
                .zip(&correction.alpha)
                .map(|((y, z), a)| a * y[i] * z[j])
                .sum();
            w_old * self.accumulator[(i, j)] + w_new * corr
        });
        let eigen = symmetric_eigen(&candidate)
            .map_err(|e| e.to_string())
            .and_then(|(values, vectors)| {
                regularize_eigen(&values, &vectors, &self.reg)
                    .ok_or_else(|| "no finite eigenvalue".to_string())
            });
        // The accumulator moves on even if its eigendecomposition fails (the reference does
        // the same); the previous basis stays in use until an update succeeds.
        self.accumulator = candidate;
        let (values, vectors) = match eigen {
            Ok(pair) => pair,
            Err(why) => {
                let failure = Some(format!("full_matrix eigendecomposition failed: {why}"));
                return Ok(Outcome::Unchanged { failure });
            }
        };
        let change = self
            .basis
            .as_ref()
            .map(|(old, _)| mul_tn(vectors.as_ref(), old.as_ref()));
        self.basis = Some((vectors, values));
        Ok(Outcome::Changed(BasisChange { change }))
    }

    fn rank(&self) -> Option<usize> {
        self.basis.as_ref().map(|(_, values)| values.len())
    }

    fn eigenvalues(&self) -> Option<&[f64]> {
        self.basis.as_ref().map(|(_, values)| values.as_slice())
    }

    fn provides_eigenvalues(&self) -> bool {
        true
    }

    fn project(&mut self, be: &B, v: Source<'_, B::Vector>, out: &mut Vec<f64>) {
        let (Source::CorrectionColumn(_, x) | Source::Vector(x)) = v;
        let (vectors, _) = self
            .basis
            .as_ref()
            .expect("full_matrix: project before the first basis");
        be.download(x, &mut self.scratch);
        *out = mat_t_vec(vectors.as_ref(), &self.scratch);
    }

    fn add_unprojected(&mut self, be: &B, u: &[f64], alpha: f64, y: B::InOut<'_>) {
        let (vectors, _) = self
            .basis
            .as_ref()
            .expect("full_matrix: unproject before the first basis");
        self.scratch = mat_vec(vectors.as_ref(), u);
        self.scratch.iter_mut().for_each(|x| *x *= alpha);
        be.add_host(y, &self.scratch);
    }

    fn state_bytes(&self, _be: &B) -> usize {
        let n = self.accumulator.nrows();
        n * n * 8
    }

    fn save(&self, _be: &B, enc: &mut Encoder<'_>) {
        put_matrix(enc, "accumulator", &self.accumulator);
        if let Some((vectors, values)) = &self.basis {
            put_matrix(enc, "vectors", vectors);
            enc.put("values", &[values.len()], values);
        }
    }

    fn load(&mut self, _be: &B, dec: &mut Decoder<'_>) -> Result<()> {
        let n = self.accumulator.nrows();
        self.accumulator = get_matrix(dec, "accumulator", Some(n))?;
        self.basis = match dec.has("vectors") {
            true => {
                let vectors = get_matrix(dec, "vectors", None)?;
                let values = dec.get_shaped::<f64>("values", &[vectors.ncols()])?;
                if vectors.nrows() != n {
                    return Err(Error::new(
                        Status::LRE_ERR_STATE,
                        "full_matrix: basis vectors have the wrong length",
                    ));
                }
                Some((vectors, values))
            }
            false => None,
        };
        Ok(())
    }
}
