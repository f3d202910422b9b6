//! The CPU backend's kernels against naive f64 loops, at sizes that are not multiples of the
//! SIMD width or the block size, with one and two threads (the split is only used above 2^16
//! rows per thread, so the two-thread cases use n > 2^17). f32 column dots and unprojections
//! sum short blocks in f32 and are held to their documented bounds (adversarial data:
//! tests/streaming_accuracy.rs).

mod common;
use common::Xorshift;

use lre::backend::{Backend, Cpu, InputError, Scalar};

fn check<T: Scalar>(n: usize, threads: usize, cols: usize) {
    let be = Cpu::<T>::new(n, threads);
    let mut rng = Xorshift(n as u64 * 31 + threads as u64);
    let mut m = be.matrix(cols).unwrap();
    let mut host: Vec<Vec<T>> = Vec::new();
    for j in 0..cols {
        let mut v = be.vector().unwrap();
        let src: Vec<T> = (0..n).map(|_| T::from_f64(rng.uniform())).collect();
        be.load_checked(&src, &mut v).unwrap();
        be.set_column(&mut m, j, &v);
        host.push(src);
    }
    let x_host: Vec<T> = (0..n).map(|_| T::from_f64(rng.uniform())).collect();
    let mut x = be.vector().unwrap();
    be.load_checked(&x_host, &mut x).unwrap();
    let f32_data = T::DTYPE == lre::Dtype::F32;

    // column_dots over a permuted subset of columns (the ring order of GGT).
    let order: Vec<usize> = (0..cols)
        .rev()
        .step_by(2)
        .chain((0..cols).step_by(2))
        .take(cols)
        .collect();
    let mut out = vec![0.0; order.len()];
    be.column_dots(&m, &order, &x, &mut out);
    for (o, &j) in out.iter().zip(&order) {
        let products = host[j]
            .iter()
            .zip(&x_host)
            .map(|(a, b)| a.to_f64() * b.to_f64());
        let exact: f64 = products.clone().sum();
        let magnitude: f64 = products.map(f64::abs).sum();
        let tol = match f32_data {
            true => 1e-6 * magnitude,
            false => 1e-12 * (n as f64).sqrt(),
        };
        assert!(
            (o - exact).abs() <= tol,
            "column_dots n={n} threads={threads}: {o} vs {exact}"
        );
        if !f32_data {
            let mut single = be.vector().unwrap();
            be.load_checked(&host[j], &mut single).unwrap();
            assert_eq!(
                be.dot(&single, &x),
                *o,
                "f64 column_dots equals dot bit for bit"
            );
        }
    }

    // add_columns: y ← y + Σ w_j·M[:, j], rounded once per entry.
    let w: Vec<f64> = (0..order.len()).map(|_| rng.uniform()).collect();
    let y0: Vec<T> = (0..n).map(|_| T::from_f64(rng.uniform())).collect();
    let mut y = y0.clone();
    be.add_columns(&m, &order, &w, &mut y);
    for i in 0..n {
        let terms = order
            .iter()
            .zip(&w)
            .map(|(&j, wj)| wj * host[j][i].to_f64());
        let exact: f64 = y0[i].to_f64() + terms.clone().sum::<f64>();
        let expected = T::from_f64(exact).to_f64();
        // f32: the sum's bound, then the rounding of y itself (to f32).
        let tol = match f32_data {
            true => 6e-7 * terms.map(f64::abs).sum::<f64>() + 2f64.powi(-23) * exact.abs(),
            false => 1e-14 * (1.0 + exact.abs()),
        };
        assert!(
            (y[i].to_f64() - expected).abs() <= tol,
            "add_columns row {i}: {} vs {expected}",
            y[i].to_f64()
        );
    }

    // download / add_host.
    let mut down = vec![0.0; n];
    be.download(&x, &mut down);
    assert!(down.iter().zip(&x_host).all(|(d, h)| *d == h.to_f64()));
    let mut z = x_host.clone();
    be.add_host(&mut z, &down);
    assert!(
        z.iter()
            .zip(&x_host)
            .all(|(a, b)| a.to_f64() == T::from_f64(2.0 * b.to_f64()).to_f64())
    );

    // load_checked finds the first non-finite entry, wherever it is.
    for (bad, value) in [
        (0, f64::NAN),
        (n / 2, f64::INFINITY),
        (n - 1, f64::NEG_INFINITY),
    ] {
        let mut src = x_host.clone();
        src[bad] = T::from_f64(value);
        if bad > 0 {
            src[bad + (n - 1 - bad) / 2] = T::from_f64(f64::NAN);
        }
        assert_eq!(
            be.load_checked(&src, &mut x),
            Err(InputError::NonFinite { index: bad }),
            "non-finite at {bad}"
        );
    }
}

#[test]
fn kernels_match_naive_loops_f64() {
    for (n, threads) in [
        (1, 1),
        (7, 1),
        (8, 2),
        (16_385, 1),
        (300_001, 2),
        (300_001, 3),
    ] {
        check::<f64>(n, threads, 9);
    }
}

#[test]
fn kernels_match_naive_loops_f32() {
    for (n, threads) in [(3, 1), (33_333, 1), (262_145, 2)] {
        check::<f32>(n, threads, 6);
    }
}

#[test]
fn results_depend_only_on_inputs_and_thread_count() {
    let n = 200_003;
    let data: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5)
        .collect();
    let run = |threads| {
        let be = Cpu::<f32>::new(n, threads);
        let mut v = be.vector().unwrap();
        be.load_checked(&data, &mut v).unwrap();
        be.dot(&v, &v)
    };
    assert_eq!(run(1).to_bits(), run(1).to_bits());
    assert_eq!(run(2).to_bits(), run(2).to_bits());
}

#[test]
fn vector_updates_match_their_formulas() {
    let n = 1003;
    let be = Cpu::<f64>::new(n, 1);
    let mut rng = Xorshift(4);
    let xs = rng.vector(n);
    let ys = rng.vector(n);
    let (mut x, mut y) = (be.vector().unwrap(), be.vector().unwrap());
    be.vector_from_host(&xs, &mut x);
    be.vector_from_host(&ys, &mut y);
    be.axpy(-0.25, &x, &mut y);
    be.scale(3.0, &mut x);
    for i in 0..n {
        assert_eq!(y[i], (-0.25f64).mul_add(xs[i], ys[i]));
        assert_eq!(x[i], 3.0 * xs[i]);
    }
    let mut params = ys.clone();
    let mut copy = be.vector().unwrap();
    be.copy_params(&params.as_mut_slice(), &mut copy);
    assert_eq!(copy, ys);
    be.add_host(be.as_inout(&mut copy), &xs);
    assert!((0..n).all(|i| copy[i] == ys[i] + xs[i]));
}
