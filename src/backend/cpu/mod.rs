//! The CPU backend: n-sized buffers in host memory, loops that the compiler vectorizes for the
//! best instruction set found at run time (through `pulp`), optional row-split threads.
//!
//! Every reduction accumulates in a fixed order (fixed lane counts, blocks in row order, threads
//! in order) with explicit fused multiply-adds (`mul_add` is exactly rounded whether the CPU has
//! FMA or not), so results are bit-identical for the same `threads` on every x86-64 machine,
//! whatever its SIMD width. Sums are f64, except that the two passes over an f32 window that a
//! GGT step makes (`column_dots`, `add_columns`) sum short blocks in f32 to read it at memory
//! speed (`streaming`, which states their error bounds).

mod kernels;
mod packed;
mod storage;
mod streaming;

pub use storage::{Storage, VectorStorage};

use super::{Backend, InputError, LentMemory, PackedMatrix, Scalar, Shard};
use crate::elem::ElemType;
use crate::error::{Error, Result, Status};
use faer::{Mat, MatRef};
use kernels::{
    AddColumns, BLOCK, Clamp, Column, ColumnDots, ColumnsKernel, ColumnsMut, Combine, Cross, Dot,
    Gaussian, RowKernel, RowKernelMut, Rows, RowsMut,
};
use std::marker::PhantomData;
use std::ops::Range;

/// Below this many rows per thread, threads cost more than they save.
const MIN_ROWS_PER_THREAD: usize = 1 << 16;

/// Host-memory backend for element type `T`, keeping n-vectors in `V` (`Storage<T>` when the
/// optimizer steps in caller memory).
#[derive(Debug)]
pub struct Cpu<T, V = Vec<T>> {
    n: usize,
    threads: usize,
    arch: pulp::Arch,
    elem: PhantomData<fn() -> (T, V)>,
    /// Sharded mode: the rows held and the all-reduce of partial sums.
    shard: Option<Shard>,
}

/// A column-major n×cols matrix in host memory.
#[derive(Clone, Debug, PartialEq)]
pub struct HostMatrix<T: 'static> {
    data: Storage<T>,
    n: usize,
    /// Columns (not data.len() / n: a shard may hold zero rows).
    cols: usize,
}

impl<T: Scalar> HostMatrix<T> {
    fn column(&self, j: usize) -> &[T] {
        &self.data[j * self.n..(j + 1) * self.n]
    }
}

impl<T, V> Clone for Cpu<T, V> {
    fn clone(&self) -> Self {
        Cpu {
            n: self.n,
            threads: self.threads,
            arch: self.arch,
            elem: PhantomData,
            shard: self.shard.clone(),
        }
    }
}

impl<T: Scalar, V: VectorStorage<T>> Cpu<T, V> {
    /// A backend for vectors of length `n`, splitting large loops over `threads` threads.
    pub fn new(n: usize, threads: usize) -> Self {
        Cpu {
            n,
            threads: threads.max(1),
            arch: pulp::Arch::new(),
            elem: PhantomData,
            shard: None,
        }
    }

    /// A backend for rows `[shard.offset, shard.offset + n)` of vectors of length
    /// `shard.global`; its reductions over n are all-reduced through `shard.reducer`.
    pub fn sharded(n: usize, threads: usize, shard: Shard) -> Self {
        Cpu {
            shard: Some(shard),
            ..Cpu::new(n, threads)
        }
    }

    /// Lent bytes as whole n-vectors of `T`, or an error naming the buffer.
    fn lent_elements(&self, memory: &'static mut [u8], name: &str) -> Result<&'static mut [T]> {
        let bytes = memory.len();
        if bytes == 0 {
            return Ok(&mut []);
        }
        let data: &'static mut [T] = bytemuck::try_cast_slice_mut(memory).map_err(|_| {
            Error::invalid(format!(
                "state buffer {name}: {bytes} bytes at a {}-byte boundary are not whole {} \
                 elements",
                std::mem::align_of::<T>(),
                T::DTYPE
            ))
        })?;
        if self.n > 0 && !data.len().is_multiple_of(self.n) {
            return Err(Error::invalid(format!(
                "state buffer {name} holds {} elements, not a whole number of vectors of n = {}",
                data.len(),
                self.n
            )));
        }
        Ok(data)
    }

    /// Sums partial sums across ranks (sharded mode; otherwise they are the sums already).
    fn all_reduce(&self, partial: &mut [f64]) {
        if let Some(shard) = &self.shard {
            shard.reducer.sum(partial);
        }
    }

    /// Threads the loops may use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Contiguous, BLOCK-aligned row ranges, one per thread actually used.
    fn row_ranges(&self) -> Vec<Range<usize>> {
        let useful = (self.n / MIN_ROWS_PER_THREAD).clamp(1, self.threads);
        let blocks = self.n.div_ceil(BLOCK);
        let per = blocks.div_ceil(useful);
        (0..useful)
            .map(|t| ((t * per * BLOCK).min(self.n))..(((t + 1) * per * BLOCK).min(self.n)))
            .filter(|r| !r.is_empty())
            .collect()
    }

    /// Runs `kernel` on each row range (in parallel when there are several), compiled for the
    /// best SIMD level of this CPU, and returns the results in range order.
    fn map_rows<K: RowKernel>(&self, kernel: &K) -> Vec<K::Out> {
        let ranges = self.row_ranges();
        let arch = self.arch;
        if ranges.len() <= 1 {
            return ranges
                .into_iter()
                .map(|r| arch.dispatch(Rows(kernel, r)))
                .collect();
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = ranges
                .into_iter()
                .map(|r| s.spawn(move || arch.dispatch(Rows(kernel, r))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("LRE worker thread panicked"))
                .collect()
        })
    }

    /// Runs `kernel` on the columns `cols` (distinct) of `m` and on `y`, split into row ranges
    /// (in parallel when there are several); the kernel sees the columns in the order of `cols`.
    fn for_columns<K: ColumnsKernel<T>>(
        &self,
        m: &mut HostMatrix<T>,
        cols: &[usize],
        y: Option<&mut [T]>,
        kernel: &K,
    ) {
        let mut position = vec![usize::MAX; m.cols];
        for (i, &c) in cols.iter().enumerate() {
            assert_eq!(position[c], usize::MAX, "column {c} listed twice");
            position[c] = i;
        }
        if self.n == 0 {
            // A shard without rows: nothing to do.
            return;
        }
        let mut slots: Vec<Option<&mut [T]>> = cols.iter().map(|_| None).collect();
        for (j, column) in m.data.chunks_mut(self.n).enumerate() {
            if let Some(slot) = slots.get_mut(position[j]) {
                *slot = Some(column);
            }
        }
        let mut columns: Vec<&mut [T]> = slots
            .into_iter()
            .map(|c| c.expect("every listed column exists"))
            .collect();
        let mut y = y;
        let ranges = self.row_ranges();
        let arch = self.arch;
        if ranges.len() <= 1 {
            arch.dispatch(ColumnsMut(kernel, 0..self.n, columns, y));
            return;
        }
        std::thread::scope(|s| {
            for r in ranges {
                let mut mine = Vec::with_capacity(columns.len());
                let mut rest = Vec::with_capacity(columns.len());
                for column in columns {
                    let (head, tail) = column.split_at_mut(r.len());
                    mine.push(head);
                    rest.push(tail);
                }
                columns = rest;
                let y_head = match y.take() {
                    Some(v) => {
                        let (head, tail) = v.split_at_mut(r.len());
                        y = Some(tail);
                        Some(head)
                    }
                    None => None,
                };
                s.spawn(move || arch.dispatch(ColumnsMut(kernel, r, mine, y_head)));
            }
        });
    }

    /// M[:, left]ᵀ·M[:, right], one pass; `symmetric` when both lists are the same.
    fn products(
        &self,
        m: &HostMatrix<T>,
        left: &[usize],
        right: &[usize],
        symmetric: bool,
    ) -> Mat<f64> {
        let l: Vec<&[T]> = left.iter().map(|&j| m.column(j)).collect();
        let r: Vec<&[T]> = right.iter().map(|&j| m.column(j)).collect();
        let mut total = vec![0.0; l.len() * r.len()];
        for part in self.map_rows(&Cross {
            left: &l,
            right: &r,
            symmetric,
        }) {
            for (t, p) in total.iter_mut().zip(part) {
                *t += p;
            }
        }
        let width = r.len();
        if symmetric {
            // Only the upper triangle is read below: reduce only it.
            let mut upper: Vec<f64> = (0..width)
                .flat_map(|i| (i..width).map(move |j| (i, j)))
                .map(|(i, j)| total[i * width + j])
                .collect();
            self.all_reduce(&mut upper);
            let pairs = (0..width).flat_map(|i| (i..width).map(move |j| (i, j)));
            for ((i, j), v) in pairs.zip(upper) {
                total[i * width + j] = v;
            }
        } else {
            self.all_reduce(&mut total);
        }
        Mat::from_fn(l.len(), width, |i, j| match symmetric && i > j {
            true => total[j * width + i],
            false => total[i * width + j],
        })
    }

    /// out[j] ← ⟨columns[j], x⟩ (`Backend::column_dots`), for columns of any element type.
    fn dots_of<C: Column<T>>(&self, columns: &[&[C]], x: &[T], out: &mut [f64]) {
        out.fill(0.0);
        for part in self.map_rows(&ColumnDots { columns, x }) {
            for (o, p) in out.iter_mut().zip(part) {
                *o += p;
            }
        }
        self.all_reduce(out);
    }

    /// y ← y + Σ_j w[j]·columns[j] (`Backend::add_columns`), for columns of any element type.
    fn add_columns_of<C: Column<T>>(&self, columns: &[&[C]], w: &[f64], y: &mut [T]) {
        assert_eq!(y.len(), self.n, "add_columns: output length");
        self.for_rows_mut(&AddColumns { columns, w }, y);
    }

    /// Runs `kernel` on disjoint row ranges of `y`, in parallel when there are several.
    fn for_rows_mut<E: Send, K: RowKernelMut<E>>(&self, kernel: &K, y: &mut [E]) {
        let ranges = self.row_ranges();
        let arch = self.arch;
        if ranges.len() <= 1 {
            arch.dispatch(RowsMut(kernel, 0, y));
            return;
        }
        std::thread::scope(|s| {
            let mut rest = y;
            for r in ranges {
                let (head, tail) = rest.split_at_mut(r.len());
                rest = tail;
                s.spawn(move || arch.dispatch(RowsMut(kernel, r.start, head)));
            }
        });
    }
}

fn too_big(elements: usize) -> Error {
    Error::new(
        Status::LRE_ERR_OUT_OF_MEMORY,
        format!("cannot allocate {elements} elements of optimizer state"),
    )
}

/// A zero-filled buffer, or an error instead of aborting when memory runs out.
fn zeroed<T: Clone + Default>(len: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| too_big(len))?;
    v.resize(len, T::default());
    Ok(v)
}

/// The error for n-vectors in caller memory on a backend that keeps them in `Vec`s.
fn not_lendable(name: &str) -> Error {
    Error::unsupported(format!(
        "state buffer {name}: this optimizer keeps its n-vectors in its own memory"
    ))
}

/// The error for lent memory that does not hold what a buffer needs.
fn lent_too_small(what: String) -> Error {
    Error::new(Status::LRE_ERR_UNSUPPORTED, what)
}

impl<T: Scalar, V: VectorStorage<T>> Backend for Cpu<T, V> {
    type Elem = T;
    type Vector = V;
    type Matrix = HostMatrix<T>;
    type Input<'a> = &'a [T];
    type InOut<'a> = &'a mut [T];

    fn ndim(&self) -> usize {
        self.n
    }

    fn shard(&self) -> Option<&Shard> {
        self.shard.as_ref()
    }

    fn vector(&self) -> Result<V> {
        zeroed(self.n).map(V::owned)
    }

    fn matrix(&self, cols: usize) -> Result<HostMatrix<T>> {
        let len = self
            .n
            .checked_mul(cols)
            .ok_or_else(|| too_big(usize::MAX))?;
        Ok(HostMatrix {
            data: Storage::Owned(zeroed(len)?),
            n: self.n,
            cols,
        })
    }

    fn matrix_columns(&self, m: &HostMatrix<T>) -> usize {
        m.cols
    }

    fn grow_matrix(&self, m: &mut HostMatrix<T>, cols: usize) -> Result<()> {
        let len = self
            .n
            .checked_mul(cols)
            .ok_or_else(|| too_big(usize::MAX))?;
        if len > m.data.len() {
            let Storage::Owned(data) = &mut m.data else {
                return Err(lent_too_small(format!(
                    "a lent state buffer holds {} columns; this step needs {cols}",
                    m.cols
                )));
            };
            data.try_reserve_exact(len - data.len())
                .map_err(|_| too_big(len))?;
            data.resize(len, T::default());
        }
        m.cols = m.cols.max(cols);
        Ok(())
    }

    fn load_checked(&self, src: &[T], dst: &mut V) -> Result<(), InputError> {
        assert_eq!(src.len(), self.n, "load_checked: length");
        let mut squares: [f64; 1] = [self.map_rows(&Dot { x: src, y: src }).into_iter().sum()];
        let local = squares[0].is_finite();
        // Every rank must take the same decision: the global sum is non-finite when any
        // rank's is.
        self.all_reduce(&mut squares);
        if !local {
            return Err(match src.iter().position(|x| !x.is_finite()) {
                Some(index) => InputError::NonFinite {
                    index: index + self.row_offset(),
                },
                None => InputError::TooLarge,
            });
        }
        if !squares[0].is_finite() {
            return Err(InputError::OtherRank);
        }
        dst.copy_from_slice(src);
        Ok(())
    }

    fn copy(&self, src: &V, dst: &mut V) {
        dst.copy_from_slice(src);
    }

    fn copy_params(&self, params: &&mut [T], dst: &mut V) {
        dst.copy_from_slice(params);
    }

    fn restore_params(&self, src: &V, dst: &mut [T]) {
        dst.copy_from_slice(src);
    }

    fn reborrow<'s>(&self, y: &'s mut &mut [T]) -> &'s mut [T] {
        y
    }

    fn as_input<'v>(&self, v: &'v V) -> &'v [T] {
        v
    }

    fn as_inout<'v>(&self, v: &'v mut V) -> &'v mut [T] {
        v
    }

    fn axpy(&self, alpha: f64, x: &V, y: &mut V) {
        for (yi, xi) in y.iter_mut().zip(x.iter()) {
            *yi = T::from_f64(alpha.mul_add(xi.to_f64(), yi.to_f64()));
        }
    }

    fn scale_params(&self, alpha: f64, y: &mut [T]) {
        for yi in y.iter_mut() {
            *yi = T::from_f64(alpha * yi.to_f64());
        }
    }

    fn set_column(&self, m: &mut HostMatrix<T>, col: usize, src: &V) {
        m.data[col * self.n..(col + 1) * self.n].copy_from_slice(src);
    }

    fn column_dots(&self, m: &HostMatrix<T>, cols: &[usize], x: &V, out: &mut [f64]) {
        assert_eq!(cols.len(), out.len(), "column_dots: output length");
        let columns: Vec<&[T]> = cols.iter().map(|&j| m.column(j)).collect();
        self.dots_of(&columns, x, out);
    }

    fn dot(&self, x: &V, y: &V) -> f64 {
        let mut sum = [self
            .map_rows(&Dot { x, y })
            .into_iter()
            .fold(0.0, |a, b| a + b)];
        self.all_reduce(&mut sum);
        sum[0]
    }

    fn add_columns(&self, m: &HostMatrix<T>, cols: &[usize], w: &[f64], y: &mut [T]) {
        assert_eq!(cols.len(), w.len(), "add_columns: weight length");
        let columns: Vec<&[T]> = cols.iter().map(|&j| m.column(j)).collect();
        self.add_columns_of(&columns, w, y);
    }

    fn download(&self, x: &V, out: &mut [f64]) {
        for (o, v) in out.iter_mut().zip(x.iter()) {
            *o = v.to_f64();
        }
    }

    fn add_host(&self, y: &mut [T], w: &[f64]) {
        assert_eq!(w.len(), self.n, "add_host: length");
        for (yi, wi) in y.iter_mut().zip(w) {
            *yi = T::from_f64(yi.to_f64() + wi);
        }
    }

    fn vector_to_host(&self, x: &V, out: &mut [T]) {
        out.copy_from_slice(x);
    }

    fn vector_from_host(&self, data: &[T], x: &mut V) {
        x.copy_from_slice(data);
    }

    fn column_to_host(&self, m: &HostMatrix<T>, col: usize, out: &mut [T]) {
        out.copy_from_slice(m.column(col));
    }

    fn column_from_host(&self, data: &[T], m: &mut HostMatrix<T>, col: usize) {
        m.data[col * self.n..(col + 1) * self.n].copy_from_slice(data);
    }

    fn lend_matrix(&self, memory: LentMemory, name: &str) -> Result<HostMatrix<T>> {
        let data = self.lent_elements(memory.host(name)?, name)?;
        let cols = data.len().checked_div(self.n).unwrap_or(0);
        Ok(HostMatrix {
            data: Storage::Lent { data, slot: 0 },
            n: self.n,
            cols,
        })
    }

    fn lend_vectors(&self, memory: LentMemory, name: &str) -> Result<Vec<V>> {
        let data = self.lent_elements(memory.host(name)?, name)?;
        if self.n == 0 {
            return Ok(Vec::new());
        }
        data.chunks_exact_mut(self.n)
            .enumerate()
            .map(|(slot, data)| V::lent(data, slot).ok_or_else(|| not_lendable(name)))
            .collect()
    }

    fn matrix_is_lent(&self, m: &HostMatrix<T>) -> bool {
        m.data.lent_slot().is_some()
    }

    fn vector_slot(&self, v: &V) -> Option<usize> {
        v.slot()
    }

    fn gram(&self, m: &HostMatrix<T>, cols: &[usize]) -> Mat<f64> {
        self.products(m, cols, cols, true)
    }

    fn cross(&self, m: &HostMatrix<T>, left: &[usize], right: &[usize]) -> Mat<f64> {
        self.products(m, left, right, false)
    }

    fn combine_columns(
        &self,
        m: &mut HostMatrix<T>,
        inputs: &[usize],
        t: MatRef<'_, f64>,
        outputs: &[usize],
        add: Option<(&[f64], &mut [T])>,
    ) {
        let p = inputs.len();
        assert_eq!(
            (t.nrows(), t.ncols()),
            (p, outputs.len()),
            "combine_columns: T"
        );
        // The kernel sees the distinct columns once each: inputs first, then new outputs.
        let mut involved: Vec<usize> = inputs.to_vec();
        involved.extend(outputs.iter().filter(|c| !inputs.contains(c)));
        let at = |c: &usize| involved.iter().position(|x| x == c).expect("listed");
        let input_at: Vec<usize> = inputs.iter().map(at).collect();
        let output_at: Vec<usize> = outputs.iter().map(at).collect();
        let mut coef: Vec<f64> = (0..t.ncols())
            .flat_map(|j| t.col(j).iter().copied().collect::<Vec<_>>())
            .collect();
        let y = add.map(|(w, y)| {
            assert_eq!((w.len(), y.len()), (p, self.n), "combine_columns: add");
            coef.extend_from_slice(w);
            y
        });
        let columns = outputs.len() + usize::from(y.is_some());
        let used: Vec<usize> = (0..columns)
            .map(|j| {
                let column = &coef[j * p..(j + 1) * p];
                column.iter().rposition(|&c| c != 0.0).map_or(0, |i| i + 1)
            })
            .collect();
        self.for_columns(
            m,
            &involved,
            y,
            &Combine {
                inputs: &input_at,
                outputs: &output_at,
                coef: &coef,
                used: &used,
            },
        );
    }

    fn gaussian_columns(&self, m: &mut HostMatrix<T>, cols: &[usize], key: u64) {
        let bases: Vec<u64> = (0..cols.len() as u64)
            .map(|j| super::normal::stream_base(key, j))
            .collect();
        self.for_columns(
            m,
            cols,
            None,
            &Gaussian {
                bases: &bases,
                first_row: self.row_offset(),
            },
        );
    }

    fn clamp_columns(&self, m: &mut HostMatrix<T>, cols: &[usize], limit: f64) {
        self.for_columns(m, cols, None, &Clamp { limit });
    }

    fn packed_matrix(&self, format: ElemType) -> Result<Box<dyn PackedMatrix<Self>>> {
        packed::matrix(self, format)
    }
}
