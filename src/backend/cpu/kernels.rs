//! The CPU backend's loops over n. Each kernel is a struct whose `run` is `#[inline(always)]`,
//! so that `pulp::Arch::dispatch` compiles it inside a function with the CPU's best SIMD
//! features enabled (AVX2 + FMA on x86-64 v3); plain loops then vectorize.
//!
//! Kernel code uses plain loops, not closures: a closure's body is compiled as its own function,
//! without the dispatched features.
//!
//! Sums use eight f64 lanes per column, blocks in row order, and explicit `mul_add` (exactly
//! rounded with or without hardware FMA): the order of operations is fixed by the source, so
//! results do not depend on the SIMD width.

use crate::backend::Scalar;
use std::ops::Range;

/// Rows per block: long enough that each column chunk is a prefetch-friendly contiguous stream
/// (64 KiB in f32), short enough that the block's x (or f64 accumulator) stays in L2.
pub const BLOCK: usize = 16384;
/// Columns handled together, so the shared vector is read once per group.
const GROUP: usize = 4;

/// A read-only loop over a range of rows.
pub trait RowKernel: Sync {
    type Out: Send;
    fn run(&self, rows: Range<usize>) -> Self::Out;
}

/// A loop that writes the rows `offset..offset + y.len()` of an output.
pub trait RowKernelMut<T>: Sync {
    fn run(&self, offset: usize, y: &mut [T]);
}

/// Adapter handing a kernel to `pulp::Arch::dispatch`.
pub struct Rows<'a, K>(pub &'a K, pub Range<usize>);

impl<K: RowKernel> pulp::WithSimd for Rows<'_, K> {
    type Output = K::Out;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) -> K::Out {
        self.0.run(self.1)
    }
}

/// Adapter handing a writing kernel to `pulp::Arch::dispatch`.
pub struct RowsMut<'a, 'y, K, T>(pub &'a K, pub usize, pub &'y mut [T]);

impl<K: RowKernelMut<T>, T> pulp::WithSimd for RowsMut<'_, '_, K, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        self.0.run(self.1, self.2)
    }
}

/// Σ a_i·b_i in f64 with eight independent lanes.
#[inline(always)]
fn dot_f64<T: Scalar>(a: &[T], b: &[T]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (a8, a_rest) = a.as_chunks::<8>();
    let (b8, b_rest) = b.as_chunks::<8>();
    for (x, y) in a8.iter().zip(b8) {
        for i in 0..8 {
            acc[i] = x[i].to_f64().mul_add(y[i].to_f64(), acc[i]);
        }
    }
    let mut tail = 0.0;
    for (x, y) in a_rest.iter().zip(b_rest) {
        tail = x.to_f64().mul_add(y.to_f64(), tail);
    }
    lanes_sum(&acc) + tail
}

/// [⟨c_0, x⟩, …, ⟨c_3, x⟩]: four dot products sharing each load of x; each sum is formed
/// exactly as `dot_f64` forms it.
#[inline(always)]
fn dot4_f64<T: Scalar>(c: [&[T]; GROUP], x: &[T]) -> [f64; GROUP] {
    let mut acc = [[0.0f64; 8]; GROUP];
    let (x8, x_rest) = x.as_chunks::<8>();
    let c8 = c.map(|col| col.as_chunks::<8>().0);
    for (r, xr) in x8.iter().enumerate() {
        for (acc_j, cj) in acc.iter_mut().zip(&c8) {
            let cj = &cj[r];
            for i in 0..8 {
                acc_j[i] = cj[i].to_f64().mul_add(xr[i].to_f64(), acc_j[i]);
            }
        }
    }
    // No closures here: a closure body would be compiled without the dispatched SIMD features.
    let start = x8.len() * 8;
    let mut sums = [0.0; GROUP];
    for j in 0..GROUP {
        let mut tail = 0.0;
        for (i, xi) in x_rest.iter().enumerate() {
            tail = c[j][start + i].to_f64().mul_add(xi.to_f64(), tail);
        }
        sums[j] = lanes_sum(&acc[j]) + tail;
    }
    sums
}

#[inline(always)]
fn lanes_sum(acc: &[f64; 8]) -> f64 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Block starts of a row range.
fn blocks(rows: &Range<usize>) -> impl Iterator<Item = Range<usize>> + '_ {
    rows.clone()
        .step_by(BLOCK)
        .map(|s| s..(s + BLOCK).min(rows.end))
}

/// ⟨x, y⟩ over the rows.
pub struct Dot<'a, T> {
    pub x: &'a [T],
    pub y: &'a [T],
}

impl<T: Scalar> RowKernel for Dot<'_, T> {
    type Out = f64;
    #[inline(always)]
    fn run(&self, rows: Range<usize>) -> f64 {
        let mut sum = 0.0;
        for b in blocks(&rows) {
            sum += dot_f64(&self.x[b.clone()], &self.y[b]);
        }
        sum
    }
}

/// [⟨c_j, x⟩ for each column c_j] over the rows.
pub struct ColumnDots<'a, T> {
    pub columns: &'a [&'a [T]],
    pub x: &'a [T],
}

impl<T: Scalar> RowKernel for ColumnDots<'_, T> {
    type Out = Vec<f64>;
    #[inline(always)]
    fn run(&self, rows: Range<usize>) -> Vec<f64> {
        let mut acc = vec![0.0f64; self.columns.len()];
        for b in blocks(&rows) {
            let x = &self.x[b.clone()];
            let mut groups = self
                .columns
                .chunks_exact(GROUP)
                .zip(acc.chunks_exact_mut(GROUP));
            for (cg, ag) in groups.by_ref() {
                let sums = dot4_f64(std::array::from_fn(|j| &cg[j][b.clone()]), x);
                for (a, v) in ag.iter_mut().zip(sums) {
                    *a += v;
                }
            }
            let rest = self.columns.len() - self.columns.len() % GROUP;
            for (a, col) in acc[rest..].iter_mut().zip(&self.columns[rest..]) {
                *a += dot_f64(&col[b.clone()], x);
            }
        }
        acc
    }
}

/// y ← y + Σ_j w_j·c_j over the rows, combined in f64 (one rounding per entry of y).
pub struct AddColumns<'a, T> {
    pub columns: &'a [&'a [T]],
    pub w: &'a [f64],
}

impl<T: Scalar> RowKernelMut<T> for AddColumns<'_, T> {
    #[inline(always)]
    fn run(&self, offset: usize, y: &mut [T]) {
        let mut acc = vec![0.0f64; BLOCK.min(y.len())];
        for b in blocks(&(offset..offset + y.len())) {
            let acc = &mut acc[..b.len()];
            acc.fill(0.0);
            let mut groups = self
                .w
                .chunks_exact(GROUP)
                .zip(self.columns.chunks_exact(GROUP));
            for (wg, cg) in groups.by_ref() {
                let c: [&[T]; GROUP] = std::array::from_fn(|j| &cg[j][b.clone()]);
                for (i, a) in acc.iter_mut().enumerate() {
                    let mut s = *a;
                    s = wg[0].mul_add(c[0][i].to_f64(), s);
                    s = wg[1].mul_add(c[1][i].to_f64(), s);
                    s = wg[2].mul_add(c[2][i].to_f64(), s);
                    *a = wg[3].mul_add(c[3][i].to_f64(), s);
                }
            }
            let rest = self.w.len() - self.w.len() % GROUP;
            for (wj, cj) in self.w[rest..].iter().zip(&self.columns[rest..]) {
                for (a, v) in acc.iter_mut().zip(&cj[b.clone()]) {
                    *a = wj.mul_add(v.to_f64(), *a);
                }
            }
            for (yi, a) in y[b.start - offset..b.end - offset]
                .iter_mut()
                .zip(acc.iter())
            {
                *yi = T::from_f64(yi.to_f64() + a);
            }
        }
    }
}
