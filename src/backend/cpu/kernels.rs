//! The CPU backend's loops over n. Each kernel is a struct whose `run` is `#[inline(always)]`,
//! so that `pulp::Arch::dispatch` compiles it inside a function with the CPU's best SIMD
//! features enabled (AVX2 + FMA on x86-64 v3); plain loops then vectorize.
//!
//! Kernel code uses plain loops, not closures: a closure's body is compiled as its own function,
//! without the dispatched features.
//!
//! Sums use eight f64 lanes per column (f32 short blocks for f32 column dots and
//! unprojections: `streaming`), blocks in row order, and explicit `mul_add` (exactly rounded
//! with or without hardware FMA): the order of operations is fixed by the source, so results do
//! not depend on the SIMD width.

use super::streaming;
use crate::backend::Scalar;
use crate::backend::normal::normal_pair;
use crate::half::{Bf16, F16, Half};
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

/// The element type of a window's columns, read with vectors of type T: T itself, or a 16-bit
/// storage format (`crate::half`). With f32 vectors the passes over the window stream
/// (`streaming`, with its error bounds); with f64 vectors they take f64 products.
pub trait Column<T: Scalar>: Copy + Send + Sync + 'static {
    /// The entry, exactly.
    fn value(self) -> f64;
    /// The column dots of a group.
    fn dots<const G: usize>(c: [&[Self]; G], x: &[T]) -> [f64; G];
    /// `streaming::combine` where it applies (f32 vectors); otherwise Some(0): no row summed,
    /// the caller combines them all in f64.
    fn combine(
        columns: &[&[Self]],
        w: &[f32],
        rows: Range<usize>,
        acc: &mut [f64],
    ) -> Option<usize>;
}

impl<T: Scalar> Column<T> for T {
    #[inline(always)]
    fn value(self) -> f64 {
        self.to_f64()
    }
    #[inline(always)]
    fn dots<const G: usize>(c: [&[T]; G], x: &[T]) -> [f64; G] {
        match T::as_f32(x) {
            Some(x) => streaming::dots(c.map(|col| T::as_f32(col).expect("one element type")), x),
            None => dots_f64(c, x),
        }
    }
    #[inline(always)]
    fn combine(columns: &[&[T]], w: &[f32], rows: Range<usize>, acc: &mut [f64]) -> Option<usize> {
        let f32_columns: Option<Vec<&[f32]>> = columns.iter().map(|c| T::as_f32(c)).collect();
        match f32_columns {
            Some(columns) => streaming::combine(&columns, w, rows, acc),
            None => Some(0),
        }
    }
}

/// `Column::dots` for a 16-bit storage format.
#[inline(always)]
fn half_dots<H: Half + streaming::Streamed + Column<T>, T: Scalar, const G: usize>(
    c: [&[H]; G],
    x: &[T],
) -> [f64; G] {
    match T::as_f32(x) {
        Some(x) => streaming::dots(c, x),
        None => dots_f64(c, x),
    }
}

/// `Column::combine` for a 16-bit storage format.
#[inline(always)]
fn half_combine<H: Half + streaming::Streamed, T: Scalar>(
    columns: &[&[H]],
    w: &[f32],
    rows: Range<usize>,
    acc: &mut [f64],
) -> Option<usize> {
    match T::DTYPE {
        crate::elem::Dtype::F32 => streaming::combine(columns, w, rows, acc),
        crate::elem::Dtype::F64 => Some(0),
    }
}

/// The 16-bit formats: widened to f32 in the streaming passes.
macro_rules! half_column {
    ($half:ty) => {
        impl<T: Scalar> Column<T> for $half {
            #[inline(always)]
            fn value(self) -> f64 {
                self.to_f32() as f64
            }
            #[inline(always)]
            fn dots<const G: usize>(c: [&[Self]; G], x: &[T]) -> [f64; G] {
                half_dots(c, x)
            }
            #[inline(always)]
            fn combine(
                c: &[&[Self]],
                w: &[f32],
                rows: Range<usize>,
                acc: &mut [f64],
            ) -> Option<usize> {
                half_combine::<Self, T>(c, w, rows, acc)
            }
        }
    };
}

half_column!(Bf16);
half_column!(F16);

/// [⟨c_0, x⟩, …, ⟨c_{G−1}, x⟩] in f64, sharing each load of x: per column eight lanes of
/// fused multiply-adds, the lanes added in a fixed tree, then the tail rows.
#[inline(always)]
fn dots_f64<C: Column<T>, T: Scalar, const G: usize>(c: [&[C]; G], x: &[T]) -> [f64; G] {
    let mut acc = [[0.0f64; 8]; G];
    let (x8, x_rest) = x.as_chunks::<8>();
    let c8 = c.map(|col| col.as_chunks::<8>().0);
    for (r, xr) in x8.iter().enumerate() {
        for (acc_j, cj) in acc.iter_mut().zip(&c8) {
            let cj = &cj[r];
            for i in 0..8 {
                acc_j[i] = cj[i].value().mul_add(xr[i].to_f64(), acc_j[i]);
            }
        }
    }
    // No closures here: a closure body would be compiled without the dispatched SIMD features.
    let start = x8.len() * 8;
    let mut sums = [0.0; G];
    for j in 0..G {
        let mut tail = 0.0;
        for (i, xi) in x_rest.iter().enumerate() {
            tail = c[j][start + i].value().mul_add(xi.to_f64(), tail);
        }
        sums[j] = lanes_sum(&acc[j]) + tail;
    }
    sums
}

#[inline(always)]
fn lanes_sum(acc: &[f64; 8]) -> f64 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// Rows per block of the passes over n (`Dot` too, so that in f64 a column dot equals `dot` bit
/// for bit) and over the window (`ColumnDots`, `AddColumns`): a column chunk (256 KiB in f32)
/// is long enough for the prefetcher to reach full speed (with BLOCK rows the f32 passes ran
/// ~15 % above a plain read of the window on the 2-core development machine, with these within
/// a few %), and the block's x (or f64 accumulator) still fits in L2.
pub const PASS_BLOCK: usize = 4 * BLOCK;

/// Consecutive blocks of `size` rows covering a row range.
pub fn blocks(rows: &Range<usize>, size: usize) -> impl Iterator<Item = Range<usize>> + '_ {
    rows.clone()
        .step_by(size)
        .map(move |s| s..(s + size).min(rows.end))
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
        for b in blocks(&rows, PASS_BLOCK) {
            sum += dots_f64::<T, T, 1>([&self.x[b.clone()]], &self.y[b])[0];
        }
        sum
    }
}

/// [⟨c_j, x⟩ for each column c_j] over the rows.
pub struct ColumnDots<'a, C, T> {
    pub columns: &'a [&'a [C]],
    pub x: &'a [T],
}

impl<C: Column<T>, T: Scalar> RowKernel for ColumnDots<'_, C, T> {
    type Out = Vec<f64>;
    #[inline(always)]
    fn run(&self, rows: Range<usize>) -> Vec<f64> {
        let mut acc = vec![0.0f64; self.columns.len()];
        for b in blocks(&rows, PASS_BLOCK) {
            let x = &self.x[b.clone()];
            let mut groups = self
                .columns
                .chunks_exact(GROUP)
                .zip(acc.chunks_exact_mut(GROUP));
            for (cg, ag) in groups.by_ref() {
                let sums = C::dots::<GROUP>(std::array::from_fn(|j| &cg[j][b.clone()]), x);
                for (a, v) in ag.iter_mut().zip(sums) {
                    *a += v;
                }
            }
            let rest = self.columns.len() - self.columns.len() % GROUP;
            for (a, col) in acc[rest..].iter_mut().zip(&self.columns[rest..]) {
                *a += C::dots([&col[b.clone()]], x)[0];
            }
        }
        acc
    }
}

/// y ← y + Σ_j w_j·c_j over the rows, one rounding per entry of y: for f32 data at streaming
/// speed (`streaming::combine`, with its error bound), else (and for the last rows, fewer than
/// 16, or a block whose f32 sums overflowed) combined in f64.
pub struct AddColumns<'a, C> {
    pub columns: &'a [&'a [C]],
    pub w: &'a [f64],
}

impl<C> AddColumns<'_, C> {
    /// acc[r] ← Σ_j w_j·c_j[rows.start + r] in f64 (one chain of fused multiply-adds per row,
    /// columns in order).
    #[inline(always)]
    fn combine_f64<T: Scalar>(&self, rows: Range<usize>, acc: &mut [f64])
    where
        C: Column<T>,
    {
        acc.fill(0.0);
        let mut groups = self
            .w
            .chunks_exact(GROUP)
            .zip(self.columns.chunks_exact(GROUP));
        for (wg, cg) in groups.by_ref() {
            let c: [&[C]; GROUP] = std::array::from_fn(|j| &cg[j][rows.clone()]);
            for (i, a) in acc.iter_mut().enumerate() {
                let mut s = *a;
                s = wg[0].mul_add(c[0][i].value(), s);
                s = wg[1].mul_add(c[1][i].value(), s);
                s = wg[2].mul_add(c[2][i].value(), s);
                *a = wg[3].mul_add(c[3][i].value(), s);
            }
        }
        let rest = self.w.len() - self.w.len() % GROUP;
        for (wj, cj) in self.w[rest..].iter().zip(&self.columns[rest..]) {
            for (a, v) in acc.iter_mut().zip(&cj[rows.clone()]) {
                *a = wj.mul_add(v.value(), *a);
            }
        }
    }
}

impl<C: Column<T>, T: Scalar> RowKernelMut<T> for AddColumns<'_, C> {
    #[inline(always)]
    fn run(&self, offset: usize, y: &mut [T]) {
        let mut acc = vec![0.0f64; PASS_BLOCK.min(y.len())];
        let w32 = streaming::weights(self.w);
        for b in blocks(&(offset..offset + y.len()), PASS_BLOCK) {
            let acc = &mut acc[..b.len()];
            let summed = match &w32 {
                Some(w) => C::combine(self.columns, w, b.clone(), acc).unwrap_or(0),
                None => 0,
            };
            self.combine_f64::<T>(b.start + summed..b.end, &mut acc[summed..]);
            for (yi, a) in y[b.start - offset..b.end - offset]
                .iter_mut()
                .zip(acc.iter())
            {
                *yi = T::from_f64(yi.to_f64() + a);
            }
        }
    }
}

/// Rows per sub-block of the multi-column kernels: the sub-block of every column involved,
/// widened to f64, stays in L2 while all pairs or outputs are formed from it.
const SUB: usize = 256;
/// The pair kernel's tile: TILE_L × TILE_R sums of four f64 lanes (12 of the 16 AVX2
/// registers), sharing every load.
const TILE_L: usize = 3;
const TILE_R: usize = 4;

/// Rows `rows` of each column, as f64, into `out` (column j at [j·SUB, j·SUB + rows.len())).
#[inline(always)]
fn widen<T: Scalar>(cols: &[&[T]], rows: &Range<usize>, out: &mut [f64]) {
    for (j, c) in cols.iter().enumerate() {
        for (d, v) in out[j * SUB..j * SUB + rows.len()]
            .iter_mut()
            .zip(&c[rows.clone()])
        {
            *d = v.to_f64();
        }
    }
}

/// Tiles along one side: (start, width), width `full` and then 1 for the remainder.
fn tiles(count: usize, full: usize) -> Vec<(usize, usize)> {
    let whole = count / full * full;
    (0..whole)
        .step_by(full)
        .map(|s| (s, full))
        .chain((whole..count).map(|s| (s, 1)))
        .collect()
}

/// The A×B sums Σ_r l_a[r]·r_b[r] of equally long slices: four lanes (row mod 4) with explicit
/// fused multiply-adds, the lanes added as (0+2)+(1+3), then the tail rows.
#[inline(always)]
fn dot_tile<const A: usize, const B: usize>(l: [&[f64]; A], r: [&[f64]; B]) -> [[f64; B]; A] {
    let mut acc = [[[0.0f64; 4]; B]; A];
    // Equal lengths let the compiler drop the bounds checks in the loop.
    let chunks = l[0].len() / 4;
    let l4 = l.map(|c| &c.as_chunks::<4>().0[..chunks]);
    let r4 = r.map(|c| &c.as_chunks::<4>().0[..chunks]);
    for chunk in 0..chunks {
        for a in 0..A {
            let x = l4[a][chunk];
            for b in 0..B {
                let y = r4[b][chunk];
                for i in 0..4 {
                    acc[a][b][i] = x[i].mul_add(y[i], acc[a][b][i]);
                }
            }
        }
    }
    let start = chunks * 4;
    let mut out = [[0.0; B]; A];
    for a in 0..A {
        for b in 0..B {
            let mut tail = 0.0;
            for i in start..l[a].len() {
                tail = l[a][i].mul_add(r[b][i], tail);
            }
            let lanes = &acc[a][b];
            out[a][b] = ((lanes[0] + lanes[2]) + (lanes[1] + lanes[3])) + tail;
        }
    }
    out
}

/// [⟨left_i, right_j⟩] over the rows (row-major |left|×|right|). With `symmetric` (left and
/// right the same list) only the tiles that reach the diagonal or above are formed.
pub struct Cross<'a, T> {
    pub left: &'a [&'a [T]],
    pub right: &'a [&'a [T]],
    pub symmetric: bool,
}

/// One tile of `Cross`: the widened sub-blocks, the tile's corner and the sub-block length.
#[inline(always)]
fn cross_tile<const A: usize, const B: usize>(
    (lbuf, rbuf): (&[f64], &[f64]),
    (ls, rs): (usize, usize),
    len: usize,
    total: &mut [f64],
    width: usize,
) {
    let l: [&[f64]; A] = std::array::from_fn(|a| &lbuf[(ls + a) * SUB..][..len]);
    let r: [&[f64]; B] = std::array::from_fn(|b| &rbuf[(rs + b) * SUB..][..len]);
    let sums = dot_tile(l, r);
    for a in 0..A {
        for b in 0..B {
            total[(ls + a) * width + rs + b] += sums[a][b];
        }
    }
}

impl<T: Scalar> RowKernel for Cross<'_, T> {
    type Out = Vec<f64>;
    #[inline(always)]
    fn run(&self, rows: Range<usize>) -> Vec<f64> {
        let width = self.right.len();
        let mut total = vec![0.0f64; self.left.len() * width];
        let mut lbuf = vec![0.0f64; self.left.len() * SUB];
        let mut rbuf = match self.symmetric {
            true => Vec::new(),
            false => vec![0.0f64; width * SUB],
        };
        let (lt, rt) = (tiles(self.left.len(), TILE_L), tiles(width, TILE_R));
        let mut start = rows.start;
        while start < rows.end {
            let sub = start..(start + SUB).min(rows.end);
            widen(self.left, &sub, &mut lbuf);
            if !self.symmetric {
                widen(self.right, &sub, &mut rbuf);
            }
            let bufs: (&[f64], &[f64]) = (&lbuf, if self.symmetric { &lbuf } else { &rbuf });
            let len = sub.len();
            for &(ls, lw) in &lt {
                for &(rs, rw) in &rt {
                    if self.symmetric && rs + rw <= ls {
                        continue;
                    }
                    let (at, t) = ((ls, rs), &mut total);
                    match (lw, rw) {
                        (TILE_L, TILE_R) => cross_tile::<TILE_L, TILE_R>(bufs, at, len, t, width),
                        (TILE_L, _) => cross_tile::<TILE_L, 1>(bufs, at, len, t, width),
                        (_, TILE_R) => cross_tile::<1, TILE_R>(bufs, at, len, t, width),
                        _ => cross_tile::<1, 1>(bufs, at, len, t, width),
                    }
                }
            }
            start = sub.end;
        }
        total
    }
}

/// A loop over rows `offset..offset + len` of several columns of a matrix (each slice holds
/// exactly those rows) and, optionally, of a caller's vector y.
pub trait ColumnsKernel<T>: Sync {
    fn run(&self, offset: usize, len: usize, cols: &mut [&mut [T]], y: Option<&mut [T]>);
}

/// Adapter handing a column kernel to `pulp::Arch::dispatch`.
pub struct ColumnsMut<'a, 'c, K, T>(
    pub &'a K,
    pub Range<usize>,
    pub Vec<&'c mut [T]>,
    pub Option<&'c mut [T]>,
);

impl<K: ColumnsKernel<T>, T> pulp::WithSimd for ColumnsMut<'_, '_, K, T> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        let ColumnsMut(kernel, rows, mut cols, y) = self;
        kernel.run(rows.start, rows.len(), &mut cols, y)
    }
}

/// cols[outputs] ← A·T and y ← y + A·w for A = cols[inputs] (read before anything is
/// written). Each entry is Σ_i a_i·t_i over the inputs in order, in f64, rounded once.
pub struct Combine<'a> {
    pub inputs: &'a [usize],
    pub outputs: &'a [usize],
    /// Output-major coefficients: output j (the vector w last, if any) at [j·p, (j+1)·p).
    pub coef: &'a [f64],
    /// Per output: the inputs past this count have zero coefficients and are skipped.
    pub used: &'a [usize],
}

impl Combine<'_> {
    /// Outputs `first..first + W` of the sub-block held in `a` (rows × p, input-major).
    #[inline(always)]
    fn outputs<const W: usize>(&self, first: usize, rows: usize, a: &[f64], o: &mut [f64]) {
        let p = self.inputs.len();
        let mut used = 0;
        for w in 0..W {
            used = used.max(self.used[first + w]);
        }
        let chunks = rows / 8;
        for chunk in 0..chunks {
            let mut acc = [[0.0f64; 8]; W];
            for i in 0..used {
                let av: &[f64; 8] = a[i * SUB + chunk * 8..][..8]
                    .try_into()
                    .expect("eight rows");
                for (w, acc_w) in acc.iter_mut().enumerate() {
                    let c = self.coef[(first + w) * p + i];
                    for (s, x) in acc_w.iter_mut().zip(av) {
                        *s = x.mul_add(c, *s);
                    }
                }
            }
            for (w, acc_w) in acc.iter().enumerate() {
                o[(first + w) * SUB + chunk * 8..][..8].copy_from_slice(acc_w);
            }
        }
        for row in chunks * 8..rows {
            for w in 0..W {
                let mut s = 0.0f64;
                for i in 0..used {
                    s = a[i * SUB + row].mul_add(self.coef[(first + w) * p + i], s);
                }
                o[(first + w) * SUB + row] = s;
            }
        }
    }
}

impl Combine<'_> {
    /// The path for many outputs: the sub-block of every input is widened to f64 once and
    /// reused by every group of four outputs.
    #[inline(always)]
    fn run_widened<T: Scalar>(&self, len: usize, cols: &mut [&mut [T]], mut y: Option<&mut [T]>) {
        let p = self.inputs.len();
        let q = self.used.len();
        let mut a = vec![0.0f64; p * SUB];
        let mut o = vec![0.0f64; q * SUB];
        let mut start = 0;
        while start < len {
            let end = (start + SUB).min(len);
            let rows = end - start;
            for (i, &col) in self.inputs.iter().enumerate() {
                for (dst, src) in a[i * SUB..i * SUB + rows]
                    .iter_mut()
                    .zip(&cols[col][start..end])
                {
                    *dst = src.to_f64();
                }
            }
            let full = q / GROUP * GROUP;
            for first in (0..full).step_by(GROUP) {
                self.outputs::<GROUP>(first, rows, &a, &mut o);
            }
            for first in full..q {
                self.outputs::<1>(first, rows, &a, &mut o);
            }
            self.write(cols, y.as_deref_mut(), start..end, &o, SUB);
            start = end;
        }
    }

    /// The path for Q ≤ 4 outputs (a pass that writes one column and unprojects): like
    /// `AddColumns`, four input columns at a time are streamed over a block of rows, and each
    /// row's four inputs are read once for all Q L2-resident f64 accumulators. Each entry is
    /// summed in the same order as in `run_widened`.
    #[inline(always)]
    fn run_streaming<T: Scalar, const Q: usize>(
        &self,
        len: usize,
        cols: &mut [&mut [T]],
        mut y: Option<&mut [T]>,
    ) {
        let p = self.inputs.len();
        let block = BLOCK.min(len);
        let mut acc = vec![0.0f64; Q * block];
        let most = self.used.iter().copied().max().unwrap_or(0);
        let whole = most / GROUP * GROUP;
        let mut start = 0;
        while start < len {
            let end = (start + block).min(len);
            let rows = end - start;
            acc.fill(0.0);
            let mut chunks = acc.chunks_exact_mut(block);
            let parts: [&mut [f64]; Q] =
                std::array::from_fn(|_| &mut chunks.next().expect("Q chunks")[..rows]);
            for first in (0..whole).step_by(GROUP) {
                let x: [&[T]; GROUP] =
                    std::array::from_fn(|g| &cols[self.inputs[first + g]][start..end]);
                let c: [[f64; GROUP]; Q] =
                    std::array::from_fn(|j| std::array::from_fn(|g| self.coef[j * p + first + g]));
                for r in 0..rows {
                    let v = [
                        x[0][r].to_f64(),
                        x[1][r].to_f64(),
                        x[2][r].to_f64(),
                        x[3][r].to_f64(),
                    ];
                    for j in 0..Q {
                        let mut s = parts[j][r];
                        s = v[0].mul_add(c[j][0], s);
                        s = v[1].mul_add(c[j][1], s);
                        s = v[2].mul_add(c[j][2], s);
                        parts[j][r] = v[3].mul_add(c[j][3], s);
                    }
                }
            }
            for i in whole..most {
                let x = &cols[self.inputs[i]][start..end];
                let c: [f64; Q] = std::array::from_fn(|j| self.coef[j * p + i]);
                for r in 0..rows {
                    let v = x[r].to_f64();
                    for j in 0..Q {
                        parts[j][r] = v.mul_add(c[j], parts[j][r]);
                    }
                }
            }
            self.write(cols, y.as_deref_mut(), start..end, &acc, block);
            start = end;
        }
    }

    /// Writes the outputs (and adds the last sum to y) for `rows`, from sums laid out with
    /// `stride` rows per output.
    #[inline(always)]
    fn write<T: Scalar>(
        &self,
        cols: &mut [&mut [T]],
        y: Option<&mut [T]>,
        rows: Range<usize>,
        sums: &[f64],
        stride: usize,
    ) {
        for (j, &col) in self.outputs.iter().enumerate() {
            for (dst, src) in cols[col][rows.clone()].iter_mut().zip(&sums[j * stride..]) {
                *dst = T::from_f64(*src);
            }
        }
        if let Some(y) = y {
            let last = &sums[self.outputs.len() * stride..];
            for (yi, s) in y[rows].iter_mut().zip(last) {
                *yi = T::from_f64(yi.to_f64() + s);
            }
        }
    }
}

impl<T: Scalar> ColumnsKernel<T> for Combine<'_> {
    #[inline(always)]
    fn run(&self, _offset: usize, len: usize, cols: &mut [&mut [T]], y: Option<&mut [T]>) {
        match self.used.len() {
            1 => self.run_streaming::<T, 1>(len, cols, y),
            2 => self.run_streaming::<T, 2>(len, cols, y),
            3 => self.run_streaming::<T, 3>(len, cols, y),
            4 => self.run_streaming::<T, 4>(len, cols, y),
            _ => self.run_widened(len, cols, y),
        }
    }
}

/// Standard normal columns: column j is the stream whose state is `bases[j]`
/// (`backend::normal`), rows from `offset` on (`offset` even, so pairs stay together).
pub struct Gaussian<'a> {
    pub bases: &'a [u64],
    /// Global row of local row 0 (a shard's offset; any parity).
    pub first_row: usize,
}

impl<T: Scalar> ColumnsKernel<T> for Gaussian<'_> {
    #[inline(always)]
    fn run(&self, offset: usize, _len: usize, cols: &mut [&mut [T]], _y: Option<&mut [T]>) {
        assert!(
            offset.is_multiple_of(2),
            "gaussian rows start at an even row"
        );
        let row = self.first_row + offset;
        // An odd first global row is the second member of its pair.
        let odd = row % 2;
        let first = row.div_ceil(2) as u64;
        for (col, &base) in cols.iter_mut().zip(self.bases) {
            let col: &mut [T] = match (odd, col.split_first_mut()) {
                (1, Some((head, tail))) => {
                    *head = T::from_f64(normal_pair(base, first - 1).1);
                    tail
                }
                _ => col,
            };
            let (pairs, rest) = col.as_chunks_mut::<2>();
            for (i, pair) in pairs.iter_mut().enumerate() {
                let (a, b) = normal_pair(base, first + i as u64);
                pair[0] = T::from_f64(a);
                pair[1] = T::from_f64(b);
            }
            if let Some(last) = rest.first_mut() {
                *last = T::from_f64(normal_pair(base, first + pairs.len() as u64).0);
            }
        }
    }
}

/// Every entry clamped to [−limit, limit].
pub struct Clamp {
    pub limit: f64,
}

impl<T: Scalar> ColumnsKernel<T> for Clamp {
    #[inline(always)]
    fn run(&self, _offset: usize, _len: usize, cols: &mut [&mut [T]], _y: Option<&mut [T]>) {
        for col in cols.iter_mut() {
            for v in col.iter_mut() {
                *v = T::from_f64(v.to_f64().clamp(-self.limit, self.limit));
            }
        }
    }
}
