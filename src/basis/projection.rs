//! Projection helpers shared by the bases: the cache of the last correction's projections
//! (computed during the update, so projecting the gradient costs no pass), and projection and
//! unprojection through explicit columns of a backend matrix.

use super::Source;
use crate::backend::Backend;

/// Q_newᵀy_j for the columns y_j of the last correction.
#[derive(Default)]
pub struct Cached(Vec<Vec<f64>>);

impl Cached {
    pub fn set(&mut self, projections: Vec<Vec<f64>>) {
        self.0 = projections;
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// If `v` is a correction column with a cached projection, writes it to `out` and returns
    /// `None`; otherwise returns the vector that still has to be projected.
    pub fn lookup<'v, V>(&self, v: Source<'v, V>, out: &mut Vec<f64>) -> Option<&'v V> {
        match v {
            Source::CorrectionColumn(j, x) => match self.0.get(j) {
                Some(cached) => {
                    out.clone_from(cached);
                    None
                }
                None => Some(x),
            },
            Source::Vector(x) => Some(x),
        }
    }
}

/// out ← M[:, cols]ᵀ·x.
pub fn project_columns<B: Backend>(
    be: &B,
    m: &B::Matrix,
    cols: &[usize],
    x: &B::Vector,
    out: &mut Vec<f64>,
) {
    out.resize(cols.len(), 0.0);
    be.column_dots(m, cols, x, out);
}

/// y ← y + α·M[:, cols]·u.
pub fn add_columns_scaled<B: Backend>(
    be: &B,
    m: &B::Matrix,
    cols: &[usize],
    (u, alpha): (&[f64], f64),
    y: B::InOut<'_>,
) {
    let w: Vec<f64> = u.iter().map(|x| alpha * x).collect();
    be.add_columns(m, cols, &w, y);
}
