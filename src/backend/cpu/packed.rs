//! The CPU backend's 16-bit matrix (`PackedMatrix`): codes in host memory, read by the same
//! kernels as a window in the parameters' dtype (`kernels::Column`: streaming for f32 vectors),
//! a power-of-two scale per column divided out of the k-sized results.

use super::kernels::{Column, ColumnDots, Dot, PASS_BLOCK, RowKernel, RowKernelMut, blocks};
use super::{Cpu, VectorStorage, too_big, zeroed};
use crate::backend::{Backend, PackedMatrix, Scalar};
use crate::elem::ElemType;
use crate::error::{Error, Result, Status};
use crate::half::{Bf16, F16, Half};
use faer::Mat;
use std::marker::PhantomData;
use std::ops::Range;

/// A packed matrix in `format` for this backend, or an error naming a format that is not one.
pub fn matrix<T: Scalar, V: VectorStorage<T>>(
    be: &Cpu<T, V>,
    format: ElemType,
) -> Result<Box<dyn PackedMatrix<Cpu<T, V>>>> {
    match format {
        ElemType::Bf16 => Ok(Box::new(CpuPacked::<T, Bf16, V>::new(be))),
        ElemType::F16 => Ok(Box::new(CpuPacked::<T, F16, V>::new(be))),
        other => Err(Error::invalid(format!(
            "{} is not a 16-bit storage format",
            other.name()
        ))),
    }
}

/// Column-major codes of format H, and each column's scale.
struct CpuPacked<T, H, V> {
    be: Cpu<T, V>,
    data: Vec<H>,
    scales: Vec<f64>,
}

impl<T: Scalar, H: Half, V: VectorStorage<T>> CpuPacked<T, H, V> {
    fn new(be: &Cpu<T, V>) -> Self {
        CpuPacked {
            be: be.clone(),
            data: Vec::new(),
            scales: Vec::new(),
        }
    }

    fn column(&self, j: usize) -> &[H] {
        let n = self.be.n;
        &self.data[j * n..(j + 1) * n]
    }
}

/// y[i] ← src[offset + i]·scale rounded to H, then, for `Decoded`, divided by the scale again.
struct Encode<'a, T, H, Out> {
    src: &'a [T],
    scale: f64,
    format: PhantomData<(H, Out)>,
}

/// The rounded values in the parameters' dtype (what the stored column holds, scale divided out).
struct Decoded;
/// The codes themselves (what `set_column` stores).
struct Codes;

impl<T: Scalar, H: Half> RowKernelMut<T> for Encode<'_, T, H, Decoded> {
    #[inline(always)]
    fn run(&self, offset: usize, y: &mut [T]) {
        let inverse = 1.0 / self.scale;
        for (yi, s) in y.iter_mut().zip(&self.src[offset..]) {
            *yi = T::from_f64(H::round(s.to_f64() * self.scale).to_f32() as f64 * inverse);
        }
    }
}

impl<T: Scalar, H: Half> RowKernelMut<H> for Encode<'_, T, H, Codes> {
    #[inline(always)]
    fn run(&self, offset: usize, y: &mut [H]) {
        for (yi, s) in y.iter_mut().zip(&self.src[offset..]) {
            *yi = H::round(s.to_f64() * self.scale);
        }
    }
}

/// `PackedMatrix::entering_products` over a range of rows: per block, each new vector rounded
/// into a block-long buffer, then its dots with the stored columns and with the other buffers.
/// Output: for each new vector its dots with the columns, then the pairs (i, j ≤ i) in order.
struct EnteringProducts<'a, T, H> {
    columns: &'a [&'a [H]],
    new: &'a [(&'a [T], f64)],
}

impl<T: Scalar, H: Half + Column<T>> RowKernel for EnteringProducts<'_, T, H> {
    type Out = Vec<f64>;
    #[inline(always)]
    fn run(&self, rows: Range<usize>) -> Vec<f64> {
        let (m, c) = (self.columns.len(), self.new.len());
        let mut total = vec![0.0; c * m + c * (c + 1) / 2];
        let mut buffers = vec![vec![T::default(); PASS_BLOCK.min(rows.len())]; c];
        for b in blocks(&rows, PASS_BLOCK) {
            let len = b.len();
            for (buffer, &(src, scale)) in buffers.iter_mut().zip(self.new) {
                let rounding = Encode::<T, H, Decoded> {
                    src,
                    scale,
                    format: PhantomData,
                };
                rounding.run(b.start, &mut buffer[..len]);
            }
            let block: Vec<&[H]> = self.columns.iter().map(|col| &col[b.clone()]).collect();
            for (i, buffer) in buffers.iter().enumerate() {
                let dots = ColumnDots {
                    columns: &block,
                    x: &buffer[..len],
                }
                .run(0..len);
                for (t, d) in total[i * m..(i + 1) * m].iter_mut().zip(dots) {
                    *t += d;
                }
            }
            let mut at = c * m;
            for i in 0..c {
                for j in 0..=i {
                    let (x, y) = (&buffers[i][..len], &buffers[j][..len]);
                    total[at] += Dot { x, y }.run(0..len);
                    at += 1;
                }
            }
        }
        total
    }
}

/// Whether `scale` is a positive normal power of two (what `Half::scale_for` returns).
fn is_power_of_two(scale: f64) -> bool {
    scale.is_normal() && scale > 0.0 && scale.to_bits() & ((1u64 << 52) - 1) == 0
}

impl<T: Scalar, H: Half + Column<T>, V: VectorStorage<T>> PackedMatrix<Cpu<T, V>>
    for CpuPacked<T, H, V>
{
    fn format(&self) -> ElemType {
        H::TYPE
    }

    fn columns(&self) -> usize {
        self.scales.len()
    }

    fn grow(&mut self, cols: usize) -> Result<()> {
        let n = self.be.n;
        let len = n.checked_mul(cols).ok_or_else(|| too_big(usize::MAX))?;
        if cols > self.scales.len() {
            let mut data = zeroed::<H>(len)?;
            data[..self.data.len()].copy_from_slice(&self.data);
            self.data = data;
            self.scales.resize(cols, 1.0);
        }
        Ok(())
    }

    fn bytes(&self) -> usize {
        self.data.len() * H::TYPE.size()
    }

    fn scale_for(&self, src: &V) -> f64 {
        H::scale_for(self.be.dot(src, src).sqrt())
    }

    fn entering_products(&self, cols: &[usize], new: &[(&V, f64)]) -> (Vec<Vec<f64>>, Mat<f64>) {
        let columns: Vec<&[H]> = cols.iter().map(|&j| self.column(j)).collect();
        let new: Vec<(&[T], f64)> = new.iter().map(|&(v, s)| (&v[..], s)).collect();
        let (m, c) = (cols.len(), new.len());
        let mut total = vec![0.0; c * m + c * (c + 1) / 2];
        for part in self.be.map_rows(&EnteringProducts {
            columns: &columns,
            new: &new,
        }) {
            for (t, p) in total.iter_mut().zip(part) {
                *t += p;
            }
        }
        self.be.all_reduce(&mut total);
        // The buffers held the rounded values themselves; the columns' codes carry their scale.
        let products = (0..c)
            .map(|i| {
                (0..m)
                    .map(|j| total[i * m + j] / self.scales[cols[j]])
                    .collect()
            })
            .collect();
        let mut inner = Mat::zeros(c, c);
        let mut at = c * m;
        for i in 0..c {
            for j in 0..=i {
                inner[(i, j)] = total[at];
                inner[(j, i)] = total[at];
                at += 1;
            }
        }
        (products, inner)
    }

    fn set_column(&mut self, col: usize, src: &V, scale: f64) {
        let n = self.be.n;
        let kernel = Encode::<T, H, Codes> {
            src,
            scale,
            format: PhantomData,
        };
        self.be
            .for_rows_mut(&kernel, &mut self.data[col * n..(col + 1) * n]);
        self.scales[col] = scale;
    }

    fn column_dots(&self, cols: &[usize], x: &V, out: &mut [f64]) {
        assert_eq!(cols.len(), out.len(), "column_dots: output length");
        let columns: Vec<&[H]> = cols.iter().map(|&j| self.column(j)).collect();
        // Each rank divides out the same scale (it follows the global norm), so the partial
        // sums can be scaled before or after the all-reduce alike.
        self.be.dots_of(&columns, x, out);
        for (o, &j) in out.iter_mut().zip(cols) {
            *o /= self.scales[j];
        }
    }

    fn add_columns(&self, cols: &[usize], w: &[f64], y: &mut [T]) {
        assert_eq!(cols.len(), w.len(), "add_columns: weight length");
        let columns: Vec<&[H]> = cols.iter().map(|&j| self.column(j)).collect();
        let scaled: Vec<f64> = w
            .iter()
            .zip(cols)
            .map(|(w, &j)| w / self.scales[j])
            .collect();
        self.be.add_columns_of(&columns, &scaled, y);
    }

    fn column_to_host(&self, col: usize, out: &mut [u16]) -> f64 {
        for (o, h) in out.iter_mut().zip(self.column(col)) {
            *o = h.bits();
        }
        self.scales[col]
    }

    fn column_from_host(&mut self, data: &[u16], scale: f64, col: usize) -> Result<()> {
        let bad = |what: String| Error::new(Status::LRE_ERR_STATE, what);
        if let Some(i) = data.iter().position(|&b| !H::is_finite_code(b)) {
            return Err(bad(format!(
                "a {} window column holds a non-finite value at row {i}",
                H::TYPE.name()
            )));
        }
        if !is_power_of_two(scale) {
            return Err(bad(format!(
                "a window column's scale {scale:e} is not a positive power of two"
            )));
        }
        let n = self.be.n;
        for (d, &b) in self.data[col * n..(col + 1) * n].iter_mut().zip(data) {
            *d = H::from_bits(b);
        }
        self.scales[col] = scale;
        Ok(())
    }
}
