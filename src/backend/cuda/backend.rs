//! `Backend` on a GPU: n-sized buffers in device memory.
//!
//! Which engine does what, and why:
//! - cuBLAS GEMV for the projections Mᵀx (`column_dots`), one call per run of adjacent columns
//!   (a ring window that wraps is two runs). For f32 data cuBLAS sums in f32, in its own
//!   blocked order; the CPU sums short f32 blocks in f64 (the trait's bound on f32 data).
//! - cuBLAS DGEMM for the Gram and cross products of f64 data; f32 data use the `cross` kernel,
//!   because the contract wants f64 sums and cuBLAS has no f32 product that accumulates in f64.
//! - kernels.cu for what BLAS has no operation for: the checked load (finite test and the f64
//!   sum of squares in one pass), the combination of columns rounded once (also in place, for a
//!   change of basis, and `add_columns`, which must round y + Σ w·M once), the Gaussian stream,
//!   the clamp, f64 dot products.
//!
//! Small results (k-vectors, k×k matrices) come back to the host with one synchronising copy
//! per operation; everything else is queued on the device's stream without waiting.

use super::device::{BLOCKS, Buffer, Device, THREADS, args, check};
use crate::backend::{Backend, InputError, LentMemory, Scalar, normal};
use crate::elem::Dtype;
use crate::error::{Error, Result, Status};
use cudarc::cublas::{result as blas, sys::cublasOperation_t as Op};
use cudarc::driver::sys::CUdeviceptr;
use faer::{Mat, MatRef};
use std::marker::PhantomData;
use std::sync::Arc;

/// Rows per block of the `combine` kernel and warps per block (kernels.cu).
const COMBINE_ROWS: usize = 32;
const COMBINE_WARPS: u32 = 8;
/// Side of the column-pair tile of the `cross` kernel.
const TILE: usize = 4;

/// GPU backend for element type `T` on one device.
pub struct Cuda<T> {
    n: usize,
    device: Arc<Device>,
    elem: PhantomData<T>,
}

impl<T> Clone for Cuda<T> {
    fn clone(&self) -> Self {
        Cuda {
            n: self.n,
            device: Arc::clone(&self.device),
            elem: PhantomData,
        }
    }
}

/// A column-major n×cols matrix in device memory.
pub struct DeviceMatrix<T> {
    buffer: Buffer<T>,
    cols: usize,
}

/// A caller's read-only device vector (`len` values of `T` at a device address).
pub struct DeviceIn<'a, T> {
    ptr: CUdeviceptr,
    len: usize,
    life: PhantomData<&'a [T]>,
}

impl<T> Clone for DeviceIn<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for DeviceIn<'_, T> {}

/// A caller's read-write device vector.
pub struct DeviceInOut<'a, T> {
    ptr: CUdeviceptr,
    len: usize,
    life: PhantomData<&'a mut [T]>,
}

impl<'a, T> DeviceIn<'a, T> {
    /// A view of `len` values at device address `ptr`.
    ///
    /// # Safety
    /// `ptr` is a device address on this backend's device holding `len` values of `T`, not
    /// written by anyone else while the view lives.
    pub unsafe fn from_raw(ptr: *const T, len: usize) -> Self {
        DeviceIn {
            ptr: ptr as CUdeviceptr,
            len,
            life: PhantomData,
        }
    }
}

impl<'a, T> DeviceInOut<'a, T> {
    /// A view of `len` values at device address `ptr`.
    ///
    /// # Safety
    /// `ptr` is a device address on this backend's device holding `len` values of `T`, used by
    /// no one else while the view lives.
    pub unsafe fn from_raw(ptr: *mut T, len: usize) -> Self {
        DeviceInOut {
            ptr: ptr as CUdeviceptr,
            len,
            life: PhantomData,
        }
    }
}

fn indices(cols: &[usize]) -> Vec<i32> {
    cols.iter()
        .map(|&c| i32::try_from(c).expect("column index fits i32"))
        .collect()
}

/// Maximal runs of adjacent columns: (first column, position in `cols`, length).
fn runs(cols: &[usize]) -> Vec<(usize, usize, usize)> {
    let mut out: Vec<(usize, usize, usize)> = Vec::new();
    for (at, &c) in cols.iter().enumerate() {
        match out.last_mut() {
            Some((first, _, len)) if *first + *len == c => *len += 1,
            _ => out.push((c, at, 1)),
        }
    }
    out
}

/// Blocks of a grid-stride loop over `rows` rows.
fn grid_for(rows: usize) -> u32 {
    rows.div_ceil(THREADS as usize).clamp(1, 1 << 20) as u32
}

impl<T: Scalar> Cuda<T> {
    /// A backend for vectors of length `n` on an opened device. cuBLAS takes 32-bit sizes, so n
    /// is limited to 2³¹ − 1.
    pub fn new(device: Arc<Device>, n: usize) -> Result<Self> {
        if i32::try_from(n).is_err() {
            return Err(Error::unsupported(format!(
                "ndim = {n}: the CUDA backend handles at most {} parameters per optimizer",
                i32::MAX
            )));
        }
        Ok(Cuda {
            n,
            device,
            elem: PhantomData,
        })
    }

    /// The device this backend runs on.
    pub fn device(&self) -> &Arc<Device> {
        &self.device
    }

    fn kernel(op: &str) -> String {
        let suffix = match T::DTYPE {
            Dtype::F32 => "f32",
            Dtype::F64 => "f64",
        };
        format!("{op}_{suffix}")
    }

    fn column(&self, m: &DeviceMatrix<T>, col: usize) -> CUdeviceptr {
        assert!(
            col < m.cols,
            "column {col} of a matrix with {} columns",
            m.cols
        );
        m.buffer.ptr + (col * self.n * size_of::<T>()) as CUdeviceptr
    }

    fn bytes(&self) -> usize {
        self.n * size_of::<T>()
    }

    /// y ← op(A)·x for A rows×cols at `a` with leading dimension n.
    fn gemv(
        &self,
        trans: Op,
        rows: usize,
        cols: usize,
        a: CUdeviceptr,
        x: CUdeviceptr,
        y: CUdeviceptr,
    ) {
        let (m, k, lda) = (rows as i32, cols as i32, self.n as i32);
        let handle = self.device.blas();
        // SAFETY: `a` holds rows×cols values with leading dimension n, `x` and `y` the lengths
        // `trans` implies; alpha and beta are host values that outlive the call.
        let done = unsafe {
            match T::DTYPE {
                Dtype::F32 => blas::sgemv(
                    handle,
                    trans,
                    m,
                    k,
                    &1.0f32,
                    a as *const f32,
                    lda,
                    x as *const f32,
                    1,
                    &0.0f32,
                    y as *mut f32,
                    1,
                ),
                Dtype::F64 => blas::dgemv(
                    handle,
                    trans,
                    m,
                    k,
                    &1.0f64,
                    a as *const f64,
                    lda,
                    x as *const f64,
                    1,
                    &0.0f64,
                    y as *mut f64,
                    1,
                ),
            }
        };
        check(done, "cuBLAS GEMV");
    }

    /// The yardstick of a step's speed: y ← Mᵀx, then x ← M·y, with cuBLAS GEMV over all the
    /// columns of `m` (the two passes over a window that a GGT step cannot avoid); waits for
    /// both.
    pub fn two_gemvs(&self, m: &DeviceMatrix<T>, x: &mut Buffer<T>) {
        self.device.enter();
        let y = check(self.device.zeros::<T>(m.cols), "allocating projections");
        let a = m.buffer.ptr;
        self.gemv(Op::CUBLAS_OP_T, self.n, m.cols, a, x.ptr, y.ptr);
        self.gemv(Op::CUBLAS_OP_N, self.n, m.cols, a, y.ptr, x.ptr);
        self.device.synchronize();
    }

    /// Sums f64 partial sums `partials[j * blocks + b]` over b, in block order, into `count`
    /// host values.
    fn finish(&self, partials: &Buffer<f64>, blocks: u32, count: usize) -> Vec<f64> {
        let out = check(self.device.zeros::<f64>(count), "allocating sums");
        let (p, b, c, o) = (partials.ptr, blocks as i32, count as i32, out.ptr);
        // SAFETY: `partials` holds count×blocks values, `out` count.
        unsafe {
            self.device.launch(
                "finish_sums",
                (grid_for(count), 1),
                (THREADS, 1),
                0,
                &mut args![p, b, c, o],
            )
        };
        let mut host = vec![0.0; count];
        self.device.download(&mut host, out.ptr);
        host
    }

    /// M[:, left]ᵀ·M[:, right] in f64; `symmetric` when both lists are the same (only the upper
    /// triangle is computed and mirrored).
    fn products(
        &self,
        m: &DeviceMatrix<T>,
        left: &[usize],
        right: &[usize],
        symmetric: bool,
    ) -> Mat<f64> {
        let (l, r) = (left.len(), right.len());
        if l == 0 || r == 0 {
            return Mat::zeros(l, r);
        }
        self.device.enter();
        // entry(i, j) of the product, from whichever layout the engine wrote.
        let (values, row_major) = match T::DTYPE {
            Dtype::F64 => (self.gemm_products(m, left, right), false),
            Dtype::F32 => (self.kernel_products(m, left, right, symmetric), true),
        };
        let at = |i: usize, j: usize| match row_major {
            true => values[i * r + j],
            false => values[i + j * l],
        };
        Mat::from_fn(l, r, |i, j| match symmetric && i > j {
            true => at(j, i),
            false => at(i, j),
        })
    }

    /// DGEMM per pair of column runs into an l×r column-major matrix.
    fn gemm_products(&self, m: &DeviceMatrix<T>, left: &[usize], right: &[usize]) -> Vec<f64> {
        let (l, r) = (left.len(), right.len());
        let out = check(self.device.zeros::<f64>(l * r), "allocating products");
        for &(lc, li, ll) in &runs(left) {
            for &(rc, ri, rl) in &runs(right) {
                let c = out.ptr + ((li + ri * l) * size_of::<f64>()) as CUdeviceptr;
                // SAFETY: the runs are columns of `m` (n rows, f64 since this is called for f64
                // data only); C is a ll×rl block of the l×r output with leading dimension l.
                let done = unsafe {
                    blas::dgemm(
                        self.device.blas(),
                        Op::CUBLAS_OP_T,
                        Op::CUBLAS_OP_N,
                        ll as i32,
                        rl as i32,
                        self.n as i32,
                        &1.0,
                        self.column(m, lc) as *const f64,
                        self.n as i32,
                        self.column(m, rc) as *const f64,
                        self.n as i32,
                        &0.0,
                        c as *mut f64,
                        l as i32,
                    )
                };
                check(done, "cuBLAS DGEMM");
            }
        }
        let mut host = vec![0.0; l * r];
        self.device.download(&mut host, out.ptr);
        host
    }

    /// The `cross` kernel (f64 sums) into an l×r row-major matrix.
    fn kernel_products(
        &self,
        m: &DeviceMatrix<T>,
        left: &[usize],
        right: &[usize],
        symmetric: bool,
    ) -> Vec<f64> {
        let (l, r) = (left.len(), right.len());
        let tiles = l.div_ceil(TILE) * r.div_ceil(TILE);
        let tiles = u32::try_from(tiles)
            .ok()
            .filter(|&t| t <= 65_535)
            .unwrap_or_else(|| panic!("CUDA cross: {l}×{r} products exceed the kernel's grid"));
        let partials = check(
            self.device.zeros::<f64>(l * r * BLOCKS as usize),
            "allocating partial sums",
        );
        let left_d = self.device.staged(&indices(left));
        let right_d = self.device.staged(&indices(right));
        let (mp, n, lp, lc, rp, rc, sym, pp) = (
            m.buffer.ptr,
            self.n as i64,
            left_d.ptr,
            l as i32,
            right_d.ptr,
            r as i32,
            i32::from(symmetric),
            partials.ptr,
        );
        // SAFETY: the column lists index `m`; `partials` holds l×r×BLOCKS values.
        unsafe {
            self.device.launch(
                &Self::kernel("cross"),
                (BLOCKS, tiles),
                (THREADS, 1),
                0,
                &mut args![mp, n, lp, lc, rp, rc, sym, pp],
            )
        };
        self.finish(&partials, BLOCKS, l * r)
    }

    /// With A = the columns at `inputs` of the matrix at `m`: M[:, outputs[j]] ← A·coef[j] and,
    /// when `y` is not 0, y ← y + A·coef[q] (coef output-major, p values per output), one
    /// rounding per entry.
    fn combine(
        &self,
        m: CUdeviceptr,
        inputs: &[usize],
        outputs: &[usize],
        coef: &[f64],
        y: CUdeviceptr,
    ) {
        let p = inputs.len();
        if self.n == 0 || (outputs.is_empty() && y == 0) {
            return;
        }
        let shared = p * COMBINE_ROWS * size_of::<f64>();
        assert!(
            shared <= self.device.shared_limit() as usize,
            "CUDA combine: {p} columns need {shared} bytes of shared memory; this GPU allows {}",
            self.device.shared_limit()
        );
        self.device.enter();
        let inputs_d = self.device.staged(&indices(inputs));
        let outputs_d = self.device.staged(&indices(outputs));
        let coef_d = self.device.staged(coef);
        let (mp, n, ip, pc, op, qc, cp, yp) = (
            m,
            self.n as i64,
            inputs_d.ptr,
            p as i32,
            outputs_d.ptr,
            outputs.len() as i32,
            coef_d.ptr,
            y,
        );
        let blocks = u32::try_from(self.n.div_ceil(COMBINE_ROWS)).expect("n < 2^31");
        // SAFETY: the column lists index the matrix at `m` (n rows); coef holds p values per
        // output (and per y); y is 0 or n values; the shared size is within the opted-in limit.
        unsafe {
            self.device.launch(
                &Self::kernel("combine"),
                (blocks, 1),
                (COMBINE_ROWS as u32, COMBINE_WARPS),
                shared as u32,
                &mut args![mp, n, ip, pc, op, qc, cp, yp],
            )
        };
    }

    /// updates ← updates − params for caller vectors (the step's change, as JAX returns it).
    pub fn subtract(&self, params: DeviceIn<'_, T>, updates: DeviceInOut<'_, T>) {
        self.rows_kernel("axpy", -1.0, Some(params.ptr), updates.ptr);
    }

    /// Lent device memory as (address, whole n-vectors), or an error naming the buffer.
    fn lent_columns(&self, memory: LentMemory, name: &str) -> Result<(CUdeviceptr, usize)> {
        let LentMemory::Device { address, bytes } = memory else {
            return Err(Error::invalid(format!(
                "state buffer {name}: host memory was lent to an optimizer on a GPU"
            )));
        };
        if bytes == 0 {
            return Ok((0, 0));
        }
        let whole = self.n > 0 && bytes % self.bytes() == 0;
        if !whole || address % size_of::<T>() as u64 != 0 {
            return Err(Error::invalid(format!(
                "state buffer {name}: {bytes} bytes at device address {address:#x} are not whole \
                 aligned vectors of {} values of {}",
                self.n,
                T::DTYPE
            )));
        }
        if !self.device.knows(address) {
            return Err(Error::invalid(format!(
                "state buffer {name}: address {address:#x} is not device memory"
            )));
        }
        Ok((address, bytes / self.bytes()))
    }

    /// An entry-wise kernel `op(alpha, [x,] y, n)` over n rows.
    fn rows_kernel(&self, op: &str, alpha: f64, x: Option<CUdeviceptr>, y: CUdeviceptr) {
        self.device.enter();
        let n = self.n as i64;
        let grid = (grid_for(self.n), 1);
        // SAFETY: x (if any) and y hold n values.
        unsafe {
            match x {
                Some(x) => self.device.launch(
                    &Self::kernel(op),
                    grid,
                    (THREADS, 1),
                    0,
                    &mut args![alpha, x, y, n],
                ),
                None => self.device.launch(
                    &Self::kernel(op),
                    grid,
                    (THREADS, 1),
                    0,
                    &mut args![alpha, y, n],
                ),
            }
        }
    }
}

impl<T: Scalar> Backend for Cuda<T> {
    type Elem = T;
    type Vector = Buffer<T>;
    type Matrix = DeviceMatrix<T>;
    type Input<'a> = DeviceIn<'a, T>;
    type InOut<'a> = DeviceInOut<'a, T>;

    fn ndim(&self) -> usize {
        self.n
    }

    fn vector(&self) -> Result<Buffer<T>> {
        self.device.zeros(self.n)
    }

    fn matrix(&self, cols: usize) -> Result<DeviceMatrix<T>> {
        let len = self.n.checked_mul(cols).ok_or_else(|| {
            Error::new(
                Status::LRE_ERR_OUT_OF_MEMORY,
                format!("cannot allocate {cols} columns of {} values", self.n),
            )
        })?;
        Ok(DeviceMatrix {
            buffer: self.device.zeros(len)?,
            cols,
        })
    }

    fn matrix_columns(&self, m: &DeviceMatrix<T>) -> usize {
        m.cols
    }

    fn grow_matrix(&self, m: &mut DeviceMatrix<T>, cols: usize) -> Result<()> {
        if cols <= m.cols {
            return Ok(());
        }
        if m.buffer.lent_slot.is_some() {
            return Err(Error::unsupported(format!(
                "a lent state buffer holds {} columns; this step needs {cols}",
                m.cols
            )));
        }
        let mut bigger = self.matrix(cols)?;
        self.device
            .copy(bigger.buffer.ptr, m.buffer.ptr, m.cols * self.bytes());
        std::mem::swap(m, &mut bigger);
        Ok(())
    }

    fn load_checked(&self, src: DeviceIn<'_, T>, dst: &mut Buffer<T>) -> Result<(), InputError> {
        assert_eq!(src.len, self.n, "load_checked: length");
        self.device.enter();
        // BLOCKS partial sums of squares (f64 bits) and then the first bad index, so one copy
        // brings both back.
        let mut host = vec![0u64; BLOCKS as usize + 1];
        host[BLOCKS as usize] = u64::MAX;
        let results = self.device.staged(&host);
        let (s, d, n, partials) = (src.ptr, dst.ptr, self.n as i64, results.ptr);
        let first_bad = results.ptr + u64::from(BLOCKS) * 8;
        // SAFETY: src and dst hold n values; `results` holds BLOCKS + 1 eight-byte values.
        unsafe {
            self.device.launch(
                &Self::kernel("load_checked"),
                (BLOCKS, 1),
                (THREADS, 1),
                0,
                &mut args![s, d, n, partials, first_bad],
            )
        };
        self.device.download(&mut host, results.ptr);
        let bad = host[BLOCKS as usize];
        if bad != u64::MAX {
            return Err(InputError::NonFinite {
                index: bad as usize,
            });
        }
        let squares: f64 = host[..BLOCKS as usize]
            .iter()
            .fold(0.0, |a, &b| a + f64::from_bits(b));
        match squares.is_finite() {
            true => Ok(()),
            false => Err(InputError::TooLarge),
        }
    }

    fn copy(&self, src: &Buffer<T>, dst: &mut Buffer<T>) {
        self.device.enter();
        self.device.copy(dst.ptr, src.ptr, self.bytes());
    }

    fn copy_params(&self, params: &DeviceInOut<'_, T>, dst: &mut Buffer<T>) {
        self.device.enter();
        self.device.copy(dst.ptr, params.ptr, self.bytes());
    }

    fn restore_params(&self, src: &Buffer<T>, dst: DeviceInOut<'_, T>) {
        self.device.enter();
        self.device.copy(dst.ptr, src.ptr, self.bytes());
    }

    fn reborrow<'s>(&self, y: &'s mut DeviceInOut<'_, T>) -> DeviceInOut<'s, T> {
        DeviceInOut {
            ptr: y.ptr,
            len: y.len,
            life: PhantomData,
        }
    }

    fn as_input<'v>(&self, v: &'v Buffer<T>) -> DeviceIn<'v, T> {
        DeviceIn {
            ptr: v.ptr,
            len: v.len,
            life: PhantomData,
        }
    }

    fn as_inout<'v>(&self, v: &'v mut Buffer<T>) -> DeviceInOut<'v, T> {
        DeviceInOut {
            ptr: v.ptr,
            len: v.len,
            life: PhantomData,
        }
    }

    fn axpy(&self, alpha: f64, x: &Buffer<T>, y: &mut Buffer<T>) {
        self.rows_kernel("axpy", alpha, Some(x.ptr), y.ptr);
    }

    fn scale_params(&self, alpha: f64, y: DeviceInOut<'_, T>) {
        self.rows_kernel("scale", alpha, None, y.ptr);
    }

    fn set_column(&self, m: &mut DeviceMatrix<T>, col: usize, src: &Buffer<T>) {
        self.device.enter();
        self.device.copy(self.column(m, col), src.ptr, self.bytes());
    }

    fn column_dots(&self, m: &DeviceMatrix<T>, cols: &[usize], x: &Buffer<T>, out: &mut [f64]) {
        assert_eq!(cols.len(), out.len(), "column_dots: output length");
        if cols.is_empty() {
            return;
        }
        self.device.enter();
        let y = check(self.device.zeros::<T>(cols.len()), "allocating projections");
        for (first, at, len) in runs(cols) {
            let y_at = y.ptr + (at * size_of::<T>()) as CUdeviceptr;
            self.gemv(
                Op::CUBLAS_OP_T,
                self.n,
                len,
                self.column(m, first),
                x.ptr,
                y_at,
            );
        }
        let mut host = vec![T::default(); cols.len()];
        self.device.download(&mut host, y.ptr);
        for (o, v) in out.iter_mut().zip(host) {
            *o = v.to_f64();
        }
    }

    fn dot(&self, x: &Buffer<T>, y: &Buffer<T>) -> f64 {
        self.device.enter();
        let partials = check(
            self.device.zeros::<f64>(BLOCKS as usize),
            "allocating partial sums",
        );
        let zero = self.device.staged(&[0i32]);
        let (xp, n, cp, one, yp, pp) = (x.ptr, self.n as i64, zero.ptr, 1i32, y.ptr, partials.ptr);
        // SAFETY: x is read as a one-column matrix (column 0), y and partials as declared.
        unsafe {
            self.device.launch(
                &Self::kernel("column_dots"),
                (BLOCKS, 1),
                (THREADS, 1),
                0,
                &mut args![xp, n, cp, one, yp, pp],
            )
        };
        let mut host = vec![0.0; BLOCKS as usize];
        self.device.download(&mut host, partials.ptr);
        host.iter().fold(0.0, |a, b| a + b)
    }

    fn add_columns(&self, m: &DeviceMatrix<T>, cols: &[usize], w: &[f64], y: DeviceInOut<'_, T>) {
        assert_eq!(cols.len(), w.len(), "add_columns: weight length");
        assert_eq!(y.len, self.n, "add_columns: output length");
        self.combine(m.buffer.ptr, cols, &[], w, y.ptr);
    }

    fn download(&self, x: &Buffer<T>, out: &mut [f64]) {
        assert_eq!(out.len(), self.n, "download: length");
        self.device.enter();
        let wide = check(self.device.zeros::<f64>(self.n), "allocating a download");
        let (xp, wp, n) = (x.ptr, wide.ptr, self.n as i64);
        // SAFETY: both hold n values.
        unsafe {
            self.device.launch(
                &Self::kernel("to_f64"),
                (grid_for(self.n), 1),
                (THREADS, 1),
                0,
                &mut args![xp, wp, n],
            )
        };
        self.device.download(out, wide.ptr);
    }

    fn add_host(&self, y: DeviceInOut<'_, T>, w: &[f64]) {
        assert_eq!(w.len(), self.n, "add_host: length");
        self.device.enter();
        let wide = self.device.staged(w);
        let (yp, wp, n) = (y.ptr, wide.ptr, self.n as i64);
        // SAFETY: both hold n values.
        unsafe {
            self.device.launch(
                &Self::kernel("add_f64"),
                (grid_for(self.n), 1),
                (THREADS, 1),
                0,
                &mut args![yp, wp, n],
            )
        };
    }

    fn vector_to_host(&self, x: &Buffer<T>, out: &mut [T]) {
        assert_eq!(out.len(), self.n, "vector_to_host: length");
        self.device.enter();
        self.device.download(out, x.ptr);
    }

    fn vector_from_host(&self, data: &[T], x: &mut Buffer<T>) {
        assert_eq!(data.len(), self.n, "vector_from_host: length");
        self.device.enter();
        self.device.upload(x.ptr, data);
    }

    fn column_to_host(&self, m: &DeviceMatrix<T>, col: usize, out: &mut [T]) {
        assert_eq!(out.len(), self.n, "column_to_host: length");
        self.device.enter();
        self.device.download(out, self.column(m, col));
    }

    fn column_from_host(&self, data: &[T], m: &mut DeviceMatrix<T>, col: usize) {
        assert_eq!(data.len(), self.n, "column_from_host: length");
        self.device.enter();
        self.device.upload(self.column(m, col), data);
    }

    fn lend_matrix(&self, memory: LentMemory, name: &str) -> Result<DeviceMatrix<T>> {
        let (address, cols) = self.lent_columns(memory, name)?;
        // SAFETY: `lent_columns` checked the range is device memory the driver knows, aligned
        // and of whole columns; whoever made the `LentMemory::Device` lends it exclusively for
        // the call and drops the optimizer holding it before the call returns.
        let buffer = unsafe { self.device.lent(address, cols * self.n, 0) };
        Ok(DeviceMatrix { buffer, cols })
    }

    fn lend_vectors(&self, memory: LentMemory, name: &str) -> Result<Vec<Buffer<T>>> {
        let (address, count) = self.lent_columns(memory, name)?;
        let step = self.bytes() as CUdeviceptr;
        Ok((0..count)
            .map(|slot| {
                // SAFETY: as in `lend_matrix`; vector `slot` is the slot-th n values of the range.
                unsafe {
                    self.device
                        .lent(address + slot as CUdeviceptr * step, self.n, slot)
                }
            })
            .collect())
    }

    fn matrix_is_lent(&self, m: &DeviceMatrix<T>) -> bool {
        m.buffer.lent_slot.is_some()
    }

    fn vector_slot(&self, v: &Buffer<T>) -> Option<usize> {
        v.lent_slot
    }

    fn gram(&self, m: &DeviceMatrix<T>, cols: &[usize]) -> Mat<f64> {
        self.products(m, cols, cols, true)
    }

    fn cross(&self, m: &DeviceMatrix<T>, left: &[usize], right: &[usize]) -> Mat<f64> {
        self.products(m, left, right, false)
    }

    fn combine_columns(
        &self,
        m: &mut DeviceMatrix<T>,
        inputs: &[usize],
        t: MatRef<'_, f64>,
        outputs: &[usize],
        add: Option<(&[f64], DeviceInOut<'_, T>)>,
    ) {
        let p = inputs.len();
        assert_eq!(
            (t.nrows(), t.ncols()),
            (p, outputs.len()),
            "combine_columns: T"
        );
        for &c in inputs.iter().chain(outputs) {
            assert!(c < m.cols, "combine_columns: column {c} of {}", m.cols);
        }
        let mut coef: Vec<f64> = (0..t.ncols())
            .flat_map(|j| t.col(j).iter().copied().collect::<Vec<_>>())
            .collect();
        let y = match add {
            Some((w, y)) => {
                assert_eq!((w.len(), y.len), (p, self.n), "combine_columns: add");
                coef.extend_from_slice(w);
                y.ptr
            }
            None => 0,
        };
        self.combine(m.buffer.ptr, inputs, outputs, &coef, y);
    }

    fn gaussian_columns(&self, m: &mut DeviceMatrix<T>, cols: &[usize], key: u64) {
        if cols.is_empty() {
            return;
        }
        for &c in cols {
            assert!(c < m.cols, "gaussian_columns: column {c} of {}", m.cols);
        }
        self.device.enter();
        let bases: Vec<u64> = (0..cols.len() as u64)
            .map(|j| normal::stream_base(key, j))
            .collect();
        let bases_d = self.device.staged(&bases);
        let cols_d = self.device.staged(&indices(cols));
        let (mp, n, cp, bp) = (m.buffer.ptr, self.n as i64, cols_d.ptr, bases_d.ptr);
        let pairs = self.n.div_ceil(2);
        let count = u32::try_from(cols.len()).expect("columns fit u32");
        // SAFETY: `cols` index `m` (n rows); one base per column.
        unsafe {
            self.device.launch(
                &Self::kernel("gaussian"),
                (grid_for(pairs), count),
                (THREADS, 1),
                0,
                &mut args![mp, n, cp, bp],
            )
        };
    }

    fn clamp_columns(&self, m: &mut DeviceMatrix<T>, cols: &[usize], limit: f64) {
        for &c in cols {
            assert!(c < m.cols, "clamp_columns: column {c} of {}", m.cols);
        }
        if cols.is_empty() {
            return;
        }
        self.device.enter();
        let cols_d = self.device.staged(&indices(cols));
        let (mp, n, cp) = (m.buffer.ptr, self.n as i64, cols_d.ptr);
        let count = u32::try_from(cols.len()).expect("columns fit u32");
        // SAFETY: `cols` index `m`, which has n rows.
        unsafe {
            self.device.launch(
                &Self::kernel("clamp_columns"),
                (grid_for(self.n), count),
                (THREADS, 1),
                0,
                &mut args![mp, n, cp, limit],
            )
        };
    }
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_split_a_wrapped_window_in_two() {
        assert_eq!(runs(&[5, 6, 7, 0, 1]), vec![(5, 0, 3), (0, 3, 2)]);
        assert_eq!(runs(&[3]), vec![(3, 0, 1)]);
        assert_eq!(runs(&[2, 1, 0]), vec![(2, 0, 1), (1, 1, 1), (0, 2, 1)]);
        assert!(runs(&[]).is_empty());
    }
}
