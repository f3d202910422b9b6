//! The conformance suite: every operation of `lre::backend::Backend` against a dense f64
//! reference computed here, on small and awkward sizes (n = 1, n smaller than the number of
//! columns, n not a multiple of any block or tile size, column lists that wrap around a ring
//! window as GGT's do). Generic over the backend, so the CPU backend runs it in `cargo test`
//! (tests/conformance.rs) and a device backend can run the same checks.
//!
//! The contract checked: reductions accumulate in f64 (error ≤ 1e-13 of the sum of |terms|,
//! whatever the element type); combinations are formed in f64 and rounded once to the element
//! type; copies are exact; Gaussian columns are the documented counter-based stream to within
//! one rounding; a failed `load_checked` names the first non-finite entry.
//! Included with `#[path = "common/conformance.rs"] mod conformance;`.
#![allow(dead_code)]

use crate::Xorshift;
use faer::Mat;
use lre::Dtype;
use lre::backend::{Backend, InputError, Scalar, normal};

/// Sizes that meet every edge: one row, fewer rows than columns, odd sizes around the SIMD
/// width (8), the tiles (3, 4), the sub-block (256), a CUDA block (256, 1024) and the CPU block
/// (16384).
pub const SIZES: [usize; 9] = [1, 2, 3, 7, 9, 255, 1025, 16_383, 16_385];

/// Columns of the test matrix: more than the smaller sizes have rows.
const COLS: usize = 11;

/// Unit roundoff of the element type.
fn roundoff<T: Scalar>() -> f64 {
    match T::DTYPE {
        Dtype::F32 => f32::EPSILON as f64 / 2.0,
        _ => f64::EPSILON / 2.0,
    }
}

/// An f64 accumulation of terms whose magnitudes sum to `scale`: allowed error.
fn sum_tolerance(scale: f64) -> f64 {
    1e-13 * (scale + f64::MIN_POSITIVE)
}

/// column_dots over f32 elements may sum short blocks of products in f32 (`Backend::column_dots`'
/// contract): within 1e-6 of the terms' magnitudes; f64 elements sum in f64.
fn column_dot_tolerance<T: Scalar>(scale: f64) -> f64 {
    match T::DTYPE {
        Dtype::F32 => 1e-6 * scale + sum_tolerance(scale),
        _ => sum_tolerance(scale),
    }
}

/// `got` is `exact` (an f64 sum of terms with magnitudes summing to `scale`) rounded once to
/// the element type.
fn rounded_once<T: Scalar>(got: f64, exact: f64, scale: f64) -> bool {
    (got - exact).abs() <= roundoff::<T>() * exact.abs() + sum_tolerance(scale)
}

/// Host data in the element type, kept as f64 (exactly representable).
fn host_data<T: Scalar>(rng: &mut Xorshift, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| T::from_f64(4.0 * rng.uniform()).to_f64())
        .collect()
}

fn to_elem<T: Scalar>(data: &[f64]) -> Vec<T> {
    data.iter().map(|&x| T::from_f64(x)).collect()
}

fn upload<B: Backend>(be: &B, data: &[f64]) -> B::Vector {
    let mut v = be.vector().expect("vector");
    be.vector_from_host(&to_elem::<B::Elem>(data), &mut v);
    v
}

fn fetch<B: Backend>(be: &B, v: &B::Vector) -> Vec<f64> {
    let mut out = vec![B::Elem::default(); be.ndim()];
    be.vector_to_host(v, &mut out);
    out.iter().map(|x| x.to_f64()).collect()
}

fn fetch_column<B: Backend>(be: &B, m: &B::Matrix, j: usize) -> Vec<f64> {
    let mut out = vec![B::Elem::default(); be.ndim()];
    be.column_to_host(m, j, &mut out);
    out.iter().map(|x| x.to_f64()).collect()
}

/// (Σ a·b, Σ |a·b|) in f64.
fn dot(a: &[f64], b: &[f64]) -> (f64, f64) {
    a.iter()
        .zip(b)
        .fold((0.0, 0.0), |(s, m), (x, y)| (s + x * y, m + (x * y).abs()))
}

/// A backend, its matrix and the matrix's columns on the host.
struct Fixture<'b, B: Backend> {
    be: &'b B,
    m: B::Matrix,
    host: Vec<Vec<f64>>,
}

impl<B: Backend> Fixture<'_, B> {
    fn column(&self, j: usize) -> Vec<f64> {
        fetch_column(self.be, &self.m, j)
    }

    /// The matrix still holds `host` exactly.
    fn unchanged(&self, what: &str) {
        for (j, h) in self.host.iter().enumerate() {
            assert_eq!(&self.column(j), h, "{what}: column {j} changed");
        }
    }
}

/// Runs every check for every size in [`SIZES`]; `make(n)` builds a backend for length n.
pub fn suite<B: Backend>(make: impl Fn(usize) -> B) {
    for n in SIZES {
        let be = make(n);
        assert_eq!(be.ndim(), n, "ndim");
        let mut rng = Xorshift(0x9e37 + n as u64);
        let fx = storage(&be, &mut rng);
        vectors(&be, &mut rng);
        load_checked(&be, &mut rng);
        reductions(&fx, &mut rng);
        let fx = combinations(fx, &mut rng);
        random_and_clamp(fx);
        tall_qr(&be, &mut rng);
    }
}

/// matrix, grow_matrix, set_column, column_from_host / column_to_host (exact round trips).
fn storage<'b, B: Backend>(be: &'b B, rng: &mut Xorshift) -> Fixture<'b, B> {
    let n = be.ndim();
    let mut m = be.matrix(COLS - 3).expect("matrix");
    assert_eq!(be.matrix_columns(&m), COLS - 3, "matrix_columns");
    let zero = vec![0.0; n];
    assert_eq!(fetch_column(be, &m, COLS - 4), zero, "a new matrix is zero");
    let host: Vec<Vec<f64>> = (0..COLS).map(|_| host_data::<B::Elem>(rng, n)).collect();
    for (j, h) in host.iter().enumerate().take(COLS - 3) {
        be.column_from_host(&to_elem::<B::Elem>(h), &mut m, j);
    }
    be.grow_matrix(&mut m, COLS).expect("grow_matrix");
    assert_eq!(be.matrix_columns(&m), COLS, "matrix_columns after growing");
    assert_eq!(
        fetch_column(be, &m, COLS - 1),
        zero,
        "grown columns are zero"
    );
    be.grow_matrix(&mut m, 2).expect("shrinking is a no-op");
    assert_eq!(be.matrix_columns(&m), COLS, "grow_matrix never shrinks");
    for (j, h) in host.iter().enumerate().skip(COLS - 3) {
        let v = upload(be, h);
        be.set_column(&mut m, j, &v);
    }
    assert_eq!(
        be.matrix_bytes(COLS),
        n * COLS * std::mem::size_of::<B::Elem>(),
        "matrix_bytes"
    );
    let fx = Fixture { be, m, host };
    fx.unchanged("column_from_host, grow_matrix and set_column");
    fx
}

/// copy, copy_params, reborrow, as_inout, axpy, scale, scale_params, download, add_host.
fn vectors<B: Backend>(be: &B, rng: &mut Xorshift) {
    let n = be.ndim();
    let (xs, ys) = (host_data::<B::Elem>(rng, n), host_data::<B::Elem>(rng, n));
    let (x, mut y) = (upload(be, &xs), upload(be, &ys));
    let mut copied = be.vector().expect("vector");
    be.copy(&x, &mut copied);
    assert_eq!(fetch(be, &copied), xs, "copy");
    {
        let mut params = be.as_inout(&mut y);
        be.copy_params(&params, &mut copied);
        let again = be.reborrow(&mut params);
        be.scale_params(1.0, again);
    }
    assert_eq!(fetch(be, &copied), ys, "copy_params");
    assert_eq!(fetch(be, &y), ys, "scale_params by 1 is exact");

    let round = |v: f64| B::Elem::from_f64(v).to_f64();
    be.axpy(-0.375, &x, &mut y);
    let expected: Vec<f64> = (0..n)
        .map(|i| round((-0.375f64).mul_add(xs[i], ys[i])))
        .collect();
    assert_eq!(fetch(be, &y), expected, "axpy is one fused rounding");

    let mut z = upload(be, &xs);
    be.scale(0.3, &mut z);
    let scaled: Vec<f64> = xs.iter().map(|v| round(0.3 * v)).collect();
    assert_eq!(fetch(be, &z), scaled, "scale");
    be.scale_params(-2.5, be.as_inout(&mut z));
    let twice: Vec<f64> = scaled.iter().map(|v| round(-2.5 * v)).collect();
    assert_eq!(fetch(be, &z), twice, "scale_params");

    let mut down = vec![f64::NAN; n];
    be.download(&x, &mut down);
    assert_eq!(down, xs, "download is exact");
    let w: Vec<f64> = (0..n).map(|_| rng.uniform() / 3.0).collect();
    let mut v = upload(be, &xs);
    be.add_host(be.as_inout(&mut v), &w);
    for i in 0..n {
        let (got, exact) = (fetch(be, &v)[i], xs[i] + w[i]);
        assert!(
            rounded_once::<B::Elem>(got, exact, exact.abs()),
            "add_host n={n} row {i}: {got} vs {exact}"
        );
    }
}

/// load_checked: a copy of finite input; the first non-finite entry; a sum of squares that
/// overflows f64 (only representable in f64 elements).
fn load_checked<B: Backend>(be: &B, rng: &mut Xorshift) {
    let n = be.ndim();
    let xs = host_data::<B::Elem>(rng, n);
    let src = upload(be, &xs);
    let mut dst = be.vector().expect("vector");
    be.load_checked(be.as_input(&src), &mut dst)
        .expect("finite input");
    assert_eq!(fetch(be, &dst), xs, "load_checked copies exactly");
    let mut cases = vec![
        (0, f64::NAN),
        (n / 2, f64::INFINITY),
        (n - 1, f64::NEG_INFINITY),
    ];
    if n > 2 {
        cases.push((n / 3, f64::NAN));
    }
    for (bad, value) in cases {
        let mut data = xs.clone();
        data[bad] = value;
        // A later non-finite entry too: the first one is reported.
        if bad + 1 < n {
            data[n - 1] = f64::NAN;
        }
        let src = upload(be, &data);
        assert_eq!(
            be.load_checked(be.as_input(&src), &mut dst),
            Err(InputError::NonFinite { index: bad }),
            "n={n}: non-finite entry {bad}"
        );
    }
    let huge = B::Elem::from_f64(1e200);
    if huge.is_finite() {
        let src = upload(be, &vec![1e200; n]);
        assert_eq!(
            be.load_checked(be.as_input(&src), &mut dst),
            Err(InputError::TooLarge),
            "n={n}: ‖x‖² overflows f64"
        );
    }
}

/// `got` is [⟨host[left[a]], host[right[b]]⟩] to within f64 accumulation.
fn products_match(what: &str, got: &Mat<f64>, left: &[usize], right: &[usize], host: &[Vec<f64>]) {
    let n = host[0].len();
    assert_eq!(
        (got.nrows(), got.ncols()),
        (left.len(), right.len()),
        "{what} shape"
    );
    for (a, &i) in left.iter().enumerate() {
        for (b, &j) in right.iter().enumerate() {
            let (exact, scale) = dot(&host[i], &host[j]);
            assert!(
                (got[(a, b)] - exact).abs() <= sum_tolerance(scale),
                "{what} n={n} ({i}, {j}): {} vs {exact}",
                got[(a, b)]
            );
        }
    }
}

/// column_dots, dot, gram, cross over permuted and wrapped column lists.
fn reductions<B: Backend>(fx: &Fixture<'_, B>, rng: &mut Xorshift) {
    let (be, n) = (fx.be, fx.be.ndim());
    let xs = host_data::<B::Elem>(rng, n);
    let x = upload(be, &xs);
    // A ring window that wraps (8, 9, 10, 0, 1, …) and a permutation with gaps.
    let wrapped: Vec<usize> = (0..7).map(|i| (8 + i) % COLS).collect();
    let scattered = [9, 2, 4, 0, 7, 1, 10, 5];
    for cols in [&wrapped[..], &scattered[..], &[3][..]] {
        let mut out = vec![f64::NAN; cols.len()];
        be.column_dots(&fx.m, cols, &x, &mut out);
        for (o, &j) in out.iter().zip(cols) {
            let (exact, scale) = dot(&fx.host[j], &xs);
            assert!(
                (o - exact).abs() <= column_dot_tolerance::<B::Elem>(scale),
                "column_dots n={n} column {j}: {o} vs {exact}"
            );
        }
        let g = be.gram(&fx.m, cols);
        products_match("gram", &g, cols, cols, &fx.host);
        for a in 0..cols.len() {
            for b in 0..a {
                assert_eq!(g[(a, b)], g[(b, a)], "gram n={n} is exactly symmetric");
            }
        }
    }
    let (left, right) = (&wrapped[..5], &scattered[..]);
    products_match(
        "cross",
        &be.cross(&fx.m, left, right),
        left,
        right,
        &fx.host,
    );
    let ys = host_data::<B::Elem>(rng, n);
    let y = upload(be, &ys);
    let (exact, scale) = dot(&xs, &ys);
    let got = be.dot(&x, &y);
    assert!(
        (got - exact).abs() <= sum_tolerance(scale),
        "dot n={n}: {got} vs {exact}"
    );
    fx.unchanged("reductions");
}

/// y + Σ_j w_j·A[:, j] per row, and the sum of the magnitudes of its terms.
fn combination(host: &[Vec<f64>], cols: &[usize], w: &[f64], y: f64, row: usize) -> (f64, f64) {
    cols.iter().zip(w).fold((y, y.abs()), |(s, m), (&c, wj)| {
        let term = wj * host[c][row];
        (s + term, m + term.abs())
    })
}

/// add_columns and combine_columns (new outputs, in place over a wrapped window, with and
/// without an added vector, zero coefficients).
fn combinations<'b, B: Backend>(mut fx: Fixture<'b, B>, rng: &mut Xorshift) -> Fixture<'b, B> {
    let (be, n) = (fx.be, fx.be.ndim());
    let check = |what: &str, got: &[f64], exact: &dyn Fn(usize) -> (f64, f64)| {
        for (i, g) in got.iter().enumerate() {
            let (e, scale) = exact(i);
            assert!(
                rounded_once::<B::Elem>(*g, e, scale),
                "{what} n={n} row {i}: {g} vs {e}"
            );
        }
    };

    // add_columns over f32 elements may sum groups of up to 8 columns in f32 before adding them
    // in f64 (`Backend::add_columns`' contract): within 6e-7 of the terms' magnitudes, plus the
    // one rounding into y.
    let group_error = match B::Elem::DTYPE {
        Dtype::F32 => 6e-7,
        _ => 0.0,
    };
    for cols in [&[6, 1, 10, 3, 8, 0, 2][..], &[5][..]] {
        let w: Vec<f64> = cols.iter().map(|_| rng.uniform()).collect();
        let ys = host_data::<B::Elem>(rng, n);
        let mut y = upload(be, &ys);
        be.add_columns(&fx.m, cols, &w, be.as_inout(&mut y));
        for (i, g) in fetch(be, &y).iter().enumerate() {
            let (e, scale) = combination(&fx.host, cols, &w, ys[i], i);
            let slack = group_error * scale * (1.0 + roundoff::<B::Elem>());
            assert!(
                rounded_once::<B::Elem>(*g, e, scale)
                    || (g - e).abs() <= slack + roundoff::<B::Elem>() * (e.abs() + slack),
                "add_columns n={n} row {i}: {g} vs {e}"
            );
        }
    }
    fx.unchanged("add_columns");

    // In place over a wrapped window: outputs among the inputs, one new output, zero
    // coefficients at the end of a column of T, and an added vector.
    let inputs = [9, 10, 0, 1, 2];
    let outputs = [0, 9, 4];
    let t = Mat::from_fn(inputs.len(), outputs.len(), |i, j| match (i, j) {
        (3.., 1) => 0.0,
        _ => rng.uniform(),
    });
    let w: Vec<f64> = inputs.iter().map(|_| rng.uniform()).collect();
    let ys = host_data::<B::Elem>(rng, n);
    let mut y = upload(be, &ys);
    be.combine_columns(
        &mut fx.m,
        &inputs,
        t.as_ref(),
        &outputs,
        Some((&w, be.as_inout(&mut y))),
    );
    for (j, &out) in outputs.iter().enumerate() {
        let tj: Vec<f64> = (0..inputs.len()).map(|i| t[(i, j)]).collect();
        check("combine_columns", &fx.column(out), &|i| {
            combination(&fx.host, &inputs, &tj, 0.0, i)
        });
    }
    check("combine_columns' added vector", &fetch(be, &y), &|i| {
        combination(&fx.host, &inputs, &w, ys[i], i)
    });
    for &out in &outputs {
        fx.host[out] = fx.column(out);
    }
    fx.unchanged("combine_columns outside its outputs");

    // Many outputs (more than four), no added vector.
    let inputs = [3, 5, 6, 7];
    let outputs = [1, 2, 8, 10, 5, 6];
    let t = Mat::from_fn(inputs.len(), outputs.len(), |_, _| rng.uniform());
    be.combine_columns(&mut fx.m, &inputs, t.as_ref(), &outputs, None);
    for (j, &out) in outputs.iter().enumerate() {
        let tj: Vec<f64> = (0..inputs.len()).map(|i| t[(i, j)]).collect();
        check("combine_columns, six outputs", &fx.column(out), &|i| {
            combination(&fx.host, &inputs, &tj, 0.0, i)
        });
    }
    for &out in &outputs {
        fx.host[out] = fx.column(out);
    }
    fx.unchanged("combine_columns outside its outputs");
    fx
}

/// gaussian_columns (the counter-based stream, within one rounding) and clamp_columns.
fn random_and_clamp<B: Backend>(mut fx: Fixture<'_, B>) {
    let (be, n) = (fx.be, fx.be.ndim());
    let cols = [10, 0, 3];
    be.gaussian_columns(&mut fx.m, &cols, 0xfeed);
    for (stream, &c) in cols.iter().enumerate() {
        let got = fx.column(c);
        for (i, g) in got.iter().enumerate() {
            let exact = normal::normal(0xfeed, stream as u64, i as u64);
            assert!(
                (g - exact).abs() <= roundoff::<B::Elem>() * exact.abs() + 1e-14,
                "gaussian_columns n={n} stream {stream} entry {i}: {g} vs {exact}"
            );
        }
        fx.host[c] = got;
    }
    fx.unchanged("gaussian_columns outside its columns");

    let limit = 0.75;
    be.clamp_columns(&mut fx.m, &[3, 7], limit);
    for c in [3, 7] {
        let expected: Vec<f64> = fx.host[c]
            .iter()
            .map(|v| B::Elem::from_f64(v.clamp(-limit, limit)).to_f64())
            .collect();
        assert_eq!(fx.column(c), expected, "clamp_columns n={n} column {c}");
        fx.host[c] = expected;
    }
    fx.unchanged("clamp_columns outside its columns");
}

/// tall_qr over a wrapped window: A = Q·R, Q orthonormal, R upper triangular; a dependent
/// column gives a zero row of R and a completed (or zero) column of Q.
fn tall_qr<B: Backend>(be: &B, rng: &mut Xorshift) {
    let n = be.ndim();
    let tol = 1e3 * roundoff::<B::Elem>();
    for complete in [true, false] {
        let width = 6;
        let p = n.min(4);
        let mut m = be.matrix(width).expect("matrix");
        let cols: Vec<usize> = (0..p).map(|i| (4 + i) % width).collect();
        let mut a: Vec<Vec<f64>> = Vec::new();
        for (i, &c) in cols.iter().enumerate() {
            let data = match i {
                // The third column repeats the first: dependent.
                2 => a[0].clone(),
                _ => host_data::<B::Elem>(rng, n),
            };
            be.column_from_host(&to_elem::<B::Elem>(&data), &mut m, c);
            a.push(data);
        }
        let r = be.tall_qr(&mut m, &cols, complete);
        let q: Vec<Vec<f64>> = cols.iter().map(|&c| fetch_column(be, &m, c)).collect();
        for i in 0..p {
            for j in 0..p {
                if i > j {
                    assert_eq!(r[(i, j)], 0.0, "tall_qr n={n}: R is upper triangular");
                }
                let (qq, _) = dot(&q[i], &q[j]);
                let dependent = i == 2 || j == 2;
                let expected = match (i == j, dependent && !complete) {
                    (_, true) => 0.0,
                    (true, false) => 1.0,
                    (false, false) => 0.0,
                };
                assert!(
                    (qq - expected).abs() <= tol,
                    "tall_qr n={n} complete={complete}: (QᵀQ)[{i},{j}] = {qq}"
                );
            }
            for row in 0..n {
                let qr: f64 = (0..p).map(|k| q[k][row] * r[(k, i)]).sum();
                let size: f64 = (0..p).map(|k| (q[k][row] * r[(k, i)]).abs()).sum();
                assert!(
                    (qr - a[i][row]).abs() <= tol * (size + a[i][row].abs() + 1.0),
                    "tall_qr n={n}: (QR)[{row},{i}] = {qr} vs {}",
                    a[i][row]
                );
            }
        }
        if p > 2 {
            assert!(
                (0..p).all(|j| r[(2, j)] == 0.0),
                "tall_qr n={n}: the dependent column's row of R is zero"
            );
        }
    }
}
