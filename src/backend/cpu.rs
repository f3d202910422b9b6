//! The CPU backend: n-sized buffers in host memory, loops that the compiler vectorizes for the
//! best instruction set found at run time (through `pulp`), optional row-split threads.
//!
//! Every reduction accumulates in f64 in a fixed order (eight lanes per block, blocks in row
//! order, threads in order), so results are bit-identical for the same `threads`, whatever SIMD
//! width the machine has (no fused multiply-add is ever introduced by the compiler).

use super::{Backend, Scalar};
use crate::error::{Error, Result, Status};
use std::marker::PhantomData;
use std::ops::Range;

/// Rows per inner block: a block of f64 accumulators (16 KiB) stays in L1.
const BLOCK: usize = 2048;
/// Below this many rows per thread, threads cost more than they save.
const MIN_ROWS_PER_THREAD: usize = 1 << 16;

/// Host-memory backend for element type `T`.
#[derive(Clone, Debug)]
pub struct Cpu<T> {
    n: usize,
    threads: usize,
    arch: pulp::Arch,
    elem: PhantomData<T>,
}

/// A column-major n×cols matrix in host memory.
#[derive(Clone, Debug, PartialEq)]
pub struct HostMatrix<T> {
    data: Vec<T>,
    n: usize,
}

impl<T: Scalar> HostMatrix<T> {
    fn column(&self, j: usize) -> &[T] {
        &self.data[j * self.n..(j + 1) * self.n]
    }
}

impl<T: Scalar> Cpu<T> {
    /// A backend for vectors of length `n`, splitting large loops over `threads` threads.
    pub fn new(n: usize, threads: usize) -> Self {
        Cpu { n, threads: threads.max(1), arch: pulp::Arch::new(), elem: PhantomData }
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

    /// Runs `f` on each row range (in parallel when there are several) and returns the results
    /// in range order.
    fn map_rows<R: Send>(&self, f: impl Fn(Range<usize>) -> R + Sync) -> Vec<R> {
        let ranges = self.row_ranges();
        let f = &f;
        let arch = self.arch;
        let run = move |r: Range<usize>| arch.dispatch(move || f(r));
        if ranges.len() <= 1 {
            return ranges.into_iter().map(run).collect();
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = ranges.into_iter().map(|r| s.spawn(move || run(r))).collect();
            handles.into_iter().map(|h| h.join().expect("LRE worker thread panicked")).collect()
        })
    }

    /// Runs `f(offset, rows)` on disjoint row ranges of `y`, in parallel when there are several.
    fn for_rows_mut(&self, y: &mut [T], f: impl Fn(usize, &mut [T]) + Sync) {
        let ranges = self.row_ranges();
        let f = &f;
        let arch = self.arch;
        if ranges.len() <= 1 {
            arch.dispatch(|| f(0, y));
            return;
        }
        std::thread::scope(|s| {
            let mut rest = y;
            for r in ranges {
                let (head, tail) = rest.split_at_mut(r.len());
                rest = tail;
                s.spawn(move || arch.dispatch(|| f(r.start, head)));
            }
        });
    }
}

fn too_big(elements: usize) -> Error {
    Error::new(Status::LRE_ERR_OUT_OF_MEMORY, format!("cannot allocate {elements} elements of optimizer state"))
}

/// A zero-filled buffer, or an error instead of aborting when memory runs out.
fn zeroed<T: Scalar>(len: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| too_big(len))?;
    v.resize(len, T::default());
    Ok(v)
}

/// Σ a_i·b_i in f64 with eight independent lanes (vectorizes; order fixed by the source).
#[inline(always)]
fn dot_f64<T: Scalar>(a: &[T], b: &[T]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (a8, a_rest) = a.as_chunks::<8>();
    let (b8, b_rest) = b.as_chunks::<8>();
    for (x, y) in a8.iter().zip(b8) {
        for i in 0..8 {
            acc[i] += x[i].to_f64() * y[i].to_f64();
        }
    }
    let mut tail = 0.0;
    for (x, y) in a_rest.iter().zip(b_rest) {
        tail += x.to_f64() * y.to_f64();
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// acc ← acc + w·x elementwise in f64.
#[inline(always)]
fn axpy_f64<T: Scalar>(acc: &mut [f64], w: f64, x: &[T]) {
    for (a, v) in acc.iter_mut().zip(x) {
        *a += w * v.to_f64();
    }
}

impl<T: Scalar> Backend for Cpu<T> {
    type Elem = T;
    type Vector = Vec<T>;
    type Matrix = HostMatrix<T>;
    type Input<'a> = &'a [T];
    type InOut<'a> = &'a mut [T];

    fn ndim(&self) -> usize {
        self.n
    }

    fn vector(&self) -> Result<Vec<T>> {
        zeroed(self.n)
    }

    fn matrix(&self, cols: usize) -> Result<HostMatrix<T>> {
        let len = self.n.checked_mul(cols).ok_or_else(|| too_big(usize::MAX))?;
        Ok(HostMatrix { data: zeroed(len)?, n: self.n })
    }

    fn load_checked(&self, src: &[T], dst: &mut Vec<T>) -> Result<(), usize> {
        assert_eq!(src.len(), self.n, "load_checked: length");
        // Sum of x·0: NaN for any NaN or Inf entry, exactly 0 otherwise; one vectorized pass.
        let sentinels = self.map_rows(|r| {
            let zeros = [T::default(); BLOCK];
            r.clone()
                .step_by(BLOCK)
                .map(|s| {
                    let e = (s + BLOCK).min(r.end);
                    dot_f64(&src[s..e], &zeros[..e - s])
                })
                .fold(0.0, |a, b| a + b)
        });
        if sentinels.iter().any(|s| *s != 0.0) {
            let bad = src.iter().position(|x| !x.is_finite()).unwrap_or(0);
            return Err(bad);
        }
        dst.copy_from_slice(src);
        Ok(())
    }

    fn copy(&self, src: &Vec<T>, dst: &mut Vec<T>) {
        dst.copy_from_slice(src);
    }

    fn set_column(&self, m: &mut HostMatrix<T>, col: usize, src: &Vec<T>) {
        m.data[col * self.n..(col + 1) * self.n].copy_from_slice(src);
    }

    fn column_dots(&self, m: &HostMatrix<T>, cols: &[usize], x: &Vec<T>, out: &mut [f64]) {
        assert_eq!(cols.len(), out.len(), "column_dots: output length");
        let columns: Vec<&[T]> = cols.iter().map(|&j| m.column(j)).collect();
        let partials = self.map_rows(|r| {
            let mut acc = vec![0.0f64; columns.len()];
            for s in r.clone().step_by(BLOCK) {
                let e = (s + BLOCK).min(r.end);
                for (a, col) in acc.iter_mut().zip(&columns) {
                    *a += dot_f64(&col[s..e], &x[s..e]);
                }
            }
            acc
        });
        out.fill(0.0);
        for part in partials {
            for (o, p) in out.iter_mut().zip(part) {
                *o += p;
            }
        }
    }

    fn dot(&self, x: &Vec<T>, y: &Vec<T>) -> f64 {
        self.map_rows(|r| {
            r.clone()
                .step_by(BLOCK)
                .map(|s| {
                    let e = (s + BLOCK).min(r.end);
                    dot_f64(&x[s..e], &y[s..e])
                })
                .fold(0.0, |a, b| a + b)
        })
        .into_iter()
        .fold(0.0, |a, b| a + b)
    }

    fn add_columns(&self, m: &HostMatrix<T>, cols: &[usize], w: &[f64], y: &mut [T]) {
        assert_eq!(cols.len(), w.len(), "add_columns: weight length");
        assert_eq!(y.len(), self.n, "add_columns: output length");
        let columns: Vec<&[T]> = cols.iter().map(|&j| m.column(j)).collect();
        self.for_rows_mut(y, |offset, rows| {
            let mut acc = [0.0f64; BLOCK];
            for (b, chunk) in rows.chunks_mut(BLOCK).enumerate() {
                let s = offset + b * BLOCK;
                let acc = &mut acc[..chunk.len()];
                acc.fill(0.0);
                for (wj, col) in w.iter().zip(&columns) {
                    axpy_f64(acc, *wj, &col[s..s + chunk.len()]);
                }
                for (yi, a) in chunk.iter_mut().zip(acc.iter()) {
                    *yi = T::from_f64(yi.to_f64() + a);
                }
            }
        });
    }

    fn download(&self, x: &Vec<T>, out: &mut [f64]) {
        for (o, v) in out.iter_mut().zip(x) {
            *o = v.to_f64();
        }
    }

    fn add_host(&self, y: &mut [T], w: &[f64]) {
        assert_eq!(w.len(), self.n, "add_host: length");
        for (yi, wi) in y.iter_mut().zip(w) {
            *yi = T::from_f64(yi.to_f64() + wi);
        }
    }
}
