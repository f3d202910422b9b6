//! Orthonormal n-vectors kept as columns of a backend matrix, extended by classical
//! Gram–Schmidt with reorthogonalization (CGS2) and written lazily (docs/algorithm.md §7 item 9,
//! §8.4, §8.5). Used by eigen (and low_rank) as the raw basis B of Q = B·T, and by
//! common_directions as its window.
//!
//! Appending one vector u to the orthonormal columns B: u is copied into a free column, and one
//! pass gives b = Bᵀu and ‖u‖². If ρ² = ‖u‖² − ‖b‖² ≥ ‖u‖²/2, one projection is accurate
//! (Kahan–Parlett, "twice is enough" only when it is not): the new column is (u − B·b)/ρ.
//! It is not written at once but kept as a *pending* combination of [B, u], which the next
//! pass over B writes for free: the unprojection (`add_combination`, one fused
//! `combine_columns`) or, failing that, the next append. So an append costs one pass over B.
//! Otherwise (u mostly in span B) the residual is written, projected a second time and
//! normalized; several vectors at once take that path as a block, orthonormalized by a Cholesky
//! factorization that drops dependent vectors. A vector whose residual is at most `tol`·‖u‖
//! adds no column (it is in the span; the residual is dropped).

use super::Declared;
use super::store::{get_columns, put_columns};
use crate::backend::{Backend, Scalar};
use crate::component::Component;
use crate::error::{Error, Result, Status};
use crate::linalg::{cholesky_dropping, mul, mul_tn, upper_inverse};
use crate::state::layout::{Dims, Layout, cells};
use crate::state::{Decoder, Encoder, get_matrix, put_matrix};
use faer::Mat;

/// Relative residual below which a vector adds no column: 1000 ε of the element type
/// (1.2e-4 in f32, 2.2e-13 in f64): below it the residual is rounding noise of B.
pub fn span_tolerance<T: Scalar>() -> f64 {
    let eps = match T::DTYPE {
        crate::elem::Dtype::F32 => f64::from(f32::EPSILON),
        crate::elem::Dtype::F64 => f64::EPSILON,
    };
    1e3 * eps
}

/// Columns not written yet: column j of `outputs` is M[:, inputs]·coef[:, j].
struct Pending {
    /// Physical columns read: B as it was at the append (including columns retired since),
    /// then the raw columns.
    inputs: Vec<usize>,
    coef: Mat<f64>,
    /// Physical columns of the new vectors (raw columns among the inputs).
    outputs: Vec<usize>,
}

/// The state of a basis kept as orthonormal columns (eigen, low_rank, common_directions): up to
/// 2k + c columns in use (the vectors, and the previous basis and new raw columns a pending
/// combination reads, c = columns per correction), the count and the pending combination;
/// `extra` adds the basis's own buffers given that column count. k = min(rank + c, n).
pub fn declared(
    c: &Component,
    dims: &Dims,
    extra: impl FnOnce(Layout, usize) -> Layout,
) -> Declared {
    let Some(columns) = dims.columns else {
        // Corrections as wide as the batch: no fixed size.
        let layout = Layout::new()
            .batch_sized("columns")
            .u64s("count", 1u8)
            .batch_sized("pending_inputs")
            .batch_sized("pending_coef")
            .batch_sized("pending_outputs");
        return Declared {
            layout,
            rank: dims.n,
        };
    };
    let k = c.usize("rank").saturating_add(columns).min(dims.n);
    let stored = k.saturating_mul(2).saturating_add(columns);
    let layout = Layout::new()
        .vectors("columns", stored as u128)
        .u64s("count", 1u8)
        .u64s("pending_inputs", stored as u128)
        .f64s("pending_coef", cells(stored, stored))
        .u64s("pending_outputs", stored as u128);
    Declared {
        layout: extra(layout, stored),
        rank: k,
    }
}

pub struct OrthoColumns<B: Backend> {
    matrix: B::Matrix,
    /// Physical columns of the orthonormal vectors, in logical order (pending ones included).
    cols: Vec<usize>,
    pending: Option<Pending>,
    tol: f64,
    /// Growth stops doubling here (more is allocated only if asked for).
    soft_cap: usize,
}

impl<B: Backend> OrthoColumns<B> {
    pub fn new(be: &B, soft_cap: usize) -> Result<Self> {
        Ok(OrthoColumns {
            matrix: be.matrix(0)?,
            cols: Vec::new(),
            pending: None,
            tol: span_tolerance::<B::Elem>(),
            soft_cap,
        })
    }

    /// Number of orthonormal vectors.
    pub fn len(&self) -> usize {
        self.cols.len()
    }

    /// Physical columns in use (the vectors and whatever a pending combination reads).
    fn in_use(&self) -> Vec<usize> {
        let mut used = self.cols.clone();
        if let Some(p) = &self.pending {
            used.extend(p.inputs.iter().filter(|c| !self.cols.contains(c)));
        }
        used
    }

    /// Makes room for appending `extra` vectors (doubling up to the soft cap).
    pub fn reserve(&mut self, be: &B, extra: usize) -> Result<()> {
        let have = be.matrix_columns(&self.matrix);
        let needed = self.in_use().len() + extra;
        if have < needed {
            let grown = needed.max((2 * have).min(self.soft_cap));
            be.grow_matrix(&mut self.matrix, grown)?;
        }
        Ok(())
    }

    pub fn state_bytes(&self, be: &B) -> usize {
        be.matrix_bytes(be.matrix_columns(&self.matrix))
    }

    /// The pending inputs and E (|inputs| × len) with B = M[:, inputs]·E, if anything is pending.
    fn expansion(&self) -> Option<(&[usize], Mat<f64>)> {
        let p = self.pending.as_ref()?;
        let e = Mat::from_fn(p.inputs.len(), self.cols.len(), |i, j| {
            match p.outputs.iter().position(|&o| o == self.cols[j]) {
                Some(new) => p.coef[(i, new)],
                None => f64::from(u8::from(p.inputs[i] == self.cols[j])),
            }
        });
        Some((&p.inputs, e))
    }

    /// Writes the pending vectors.
    fn materialize(&mut self, be: &B) {
        if let Some(p) = self.pending.take() {
            be.combine_columns(
                &mut self.matrix,
                &p.inputs,
                p.coef.as_ref(),
                &p.outputs,
                None,
            );
        }
    }

    /// Bᵀx.
    pub fn project(&self, be: &B, x: &B::Vector) -> Vec<f64> {
        match self.expansion() {
            Some((inputs, e)) => {
                let mut d = vec![0.0; inputs.len()];
                be.column_dots(&self.matrix, inputs, x, &mut d);
                (0..e.ncols())
                    .map(|j| (0..e.nrows()).map(|i| e[(i, j)] * d[i]).sum())
                    .collect()
            }
            None => {
                let mut d = vec![0.0; self.cols.len()];
                be.column_dots(&self.matrix, &self.cols, x, &mut d);
                d
            }
        }
    }

    /// y ← y + B·w, writing the pending vectors in the same pass.
    pub fn add_combination(&mut self, be: &B, w: &[f64], y: B::InOut<'_>) {
        match self.expansion() {
            Some((_, e)) => {
                let weights: Vec<f64> = (0..e.nrows())
                    .map(|i| (0..e.ncols()).map(|j| e[(i, j)] * w[j]).sum())
                    .collect();
                let p = self.pending.take().expect("pending");
                be.combine_columns(
                    &mut self.matrix,
                    &p.inputs,
                    p.coef.as_ref(),
                    &p.outputs,
                    Some((&weights, y)),
                );
            }
            None => be.add_columns(&self.matrix, &self.cols, w, y),
        }
    }

    /// Appends the part of each vector outside the current span (see the module doc). Returns
    /// every vector's coordinates in the new basis [B, new vectors] ((len after) × count),
    /// exact up to the dropped residuals. `reserve` must have made room for `vectors.len()`.
    pub fn append(&mut self, be: &B, vectors: &[&B::Vector]) -> Mat<f64> {
        self.materialize(be);
        let p = self.cols.len();
        let c = vectors.len();
        let in_use = self.cols.clone();
        let slots: Vec<usize> = (0..be.matrix_columns(&self.matrix))
            .filter(|s| !in_use.contains(s))
            .take(c)
            .collect();
        assert_eq!(slots.len(), c, "OrthoColumns::append without reserve");
        for (v, &s) in vectors.iter().zip(&slots) {
            be.set_column(&mut self.matrix, s, v);
        }
        let inputs: Vec<usize> = self.cols.iter().chain(&slots).copied().collect();
        // First projection: E1 = Bᵀu and the Gram matrix of the new vectors.
        let first = match c {
            1 => {
                let mut d = vec![0.0; p + 1];
                be.column_dots(&self.matrix, &inputs, vectors[0], &mut d);
                Mat::from_fn(p + 1, 1, |i, _| d[i])
            }
            _ => be.cross(&self.matrix, &inputs, &slots),
        };
        let e1 = first.subrows(0, p).to_owned();
        let norms: Vec<f64> = (0..c).map(|j| first[(p + j, j)]).collect();
        if c == 1 {
            let rho2 = norms[0] - e1.col(0).iter().map(|b| b * b).sum::<f64>();
            if norms[0] == 0.0 {
                return e1;
            }
            if rho2 >= 0.5 * norms[0] {
                let rho = rho2.sqrt();
                let coef = Mat::from_fn(p + 1, 1, |i, _| match i < p {
                    true => -e1[(i, 0)] / rho,
                    false => 1.0 / rho,
                });
                self.push_pending(inputs, coef, slots);
                return Mat::from_fn(p + 1, 1, |i, _| if i < p { e1[(i, 0)] } else { rho });
            }
        }
        // Second projection of the residual R1 = U − B·E1, written into the raw columns.
        let t = Mat::from_fn(p + c, c, |i, j| match i < p {
            true => -e1[(i, j)],
            false => f64::from(u8::from(i - p == j)),
        });
        be.combine_columns(&mut self.matrix, &inputs, t.as_ref(), &slots, None);
        let second = be.cross(&self.matrix, &inputs, &slots);
        let e2 = second.subrows(0, p).to_owned();
        let residual = Mat::from_fn(c, c, |i, j| {
            second[(p + i, j)] - (0..p).map(|l| e2[(l, i)] * e2[(l, j)]).sum::<f64>()
        });
        let floor: Vec<f64> = norms.iter().map(|n| self.tol * self.tol * n).collect();
        let factor = cholesky_dropping(&residual, &floor);
        let kept = &factor.kept;
        let mut coords = Mat::from_fn(p + kept.len(), c, |i, j| match i < p {
            true => e1[(i, j)] + e2[(i, j)],
            false => factor.r[(kept[i - p], j)],
        });
        if kept.is_empty() {
            coords = coords.subrows(0, p).to_owned();
            return coords;
        }
        // New vectors (R1 − B·E2)[:, kept]·R⁻¹, pending over [B, R1].
        let inverse = upper_inverse(&factor.r, kept);
        let select = Mat::from_fn(p + c, kept.len(), |i, j| match i < p {
            true => -e2[(i, kept[j])],
            false => f64::from(u8::from(i - p == kept[j])),
        });
        let coef = mul(select.as_ref(), inverse.as_ref());
        let outputs = kept.iter().map(|&j| slots[j]).collect();
        self.push_pending(inputs, coef, outputs);
        coords
    }

    fn push_pending(&mut self, inputs: Vec<usize>, coef: Mat<f64>, outputs: Vec<usize>) {
        self.cols.extend(&outputs);
        self.pending = Some(Pending {
            inputs,
            coef,
            outputs,
        });
    }

    /// Drops the `count` oldest vectors.
    pub fn retire_front(&mut self, count: usize) {
        self.cols.drain(..count);
    }

    /// B ← B·T for T (len × q) with orthonormal columns, written into the first q columns.
    pub fn compact(&mut self, be: &B, t: &Mat<f64>) {
        let q = t.ncols();
        let outputs = self.cols[..q].to_vec();
        match self.expansion() {
            Some((inputs, e)) => {
                let inputs = inputs.to_vec();
                let coef = mul(e.as_ref(), t.as_ref());
                be.combine_columns(&mut self.matrix, &inputs, coef.as_ref(), &outputs, None);
            }
            None => be.combine_columns(&mut self.matrix, &self.cols, t.as_ref(), &outputs, None),
        }
        self.pending = None;
        self.cols = outputs;
    }

    /// Saves the vectors (as stored: pending ones raw) and the pending combination.
    /// Buffers: `columns` [m, n] — the vectors in logical order, then the other columns a
    /// pending combination reads; `count`, the number of vectors; with a pending combination,
    /// `pending_inputs` (positions in `columns`), `pending_coef` and `pending_outputs`
    /// (positions in `columns`).
    pub fn save(&self, be: &B, enc: &mut Encoder<'_>) {
        let stored = self.in_use();
        put_columns(be, enc, "columns", &self.matrix, &stored);
        enc.put_u64("count", self.cols.len() as u64);
        if let Some(p) = &self.pending {
            let at = |c: &usize| stored.iter().position(|s| s == c).expect("stored") as u64;
            let inputs: Vec<u64> = p.inputs.iter().map(at).collect();
            let outputs: Vec<u64> = p.outputs.iter().map(at).collect();
            enc.put("pending_inputs", &[inputs.len()], &inputs);
            put_matrix(enc, "pending_coef", &p.coef);
            enc.put("pending_outputs", &[outputs.len()], &outputs);
        }
    }

    pub fn load(&mut self, be: &B, dec: &mut Decoder<'_>) -> Result<()> {
        // Physical columns of the stored ones, in order (positions below index into it).
        let physical = get_columns(be, dec, "columns", (&mut self.matrix, 0), 0)?;
        let stored = physical.len();
        let vectors = dec.get_u64("count")? as usize;
        let bad = |what: &str| Error::new(Status::LRE_ERR_STATE, format!("basis: {what}"));
        if vectors > stored {
            return Err(bad("more vectors than stored columns"));
        }
        self.cols = physical[..vectors].to_vec();
        self.pending = match dec.has("pending_inputs") {
            false => None,
            true => {
                let positions = |dec: &mut Decoder<'_>, name: &str| -> Result<Vec<usize>> {
                    let (data, _) = dec.get::<u64>(name)?;
                    data.iter()
                        .map(|&i| physical.get(i as usize).copied())
                        .collect::<Option<Vec<usize>>>()
                        .ok_or_else(|| bad("a pending column is out of range"))
                };
                let inputs = positions(dec, "pending_inputs")?;
                let outputs = positions(dec, "pending_outputs")?;
                let coef = get_matrix(dec, "pending_coef", Some(inputs.len()))?;
                if coef.ncols() != outputs.len() || !outputs.iter().all(|o| self.cols.contains(o)) {
                    return Err(bad("the pending combination does not match the columns"));
                }
                Some(Pending {
                    inputs,
                    coef,
                    outputs,
                })
            }
        };
        Ok(())
    }
}

/// Coordinates of the given vectors (columns of `coords`) minus their part in span(T̃), with
/// T̃ = `t` orthonormal: twice, for accuracy (host f64).
pub fn orthogonal_part(t: &Mat<f64>, coords: &Mat<f64>) -> Mat<f64> {
    let mut x = coords.clone();
    for _ in 0..2 {
        let overlap = mul_tn(t.as_ref(), x.as_ref());
        x -= mul(t.as_ref(), overlap.as_ref());
    }
    x
}
