//! Numerical edge cases (issue: a library that survives bad input): each runs the default
//! configuration, in f32 and f64, and checks that nothing becomes NaN and the step is sensible.

mod common;
use common::Xorshift;

use lre::backend::Scalar;
use lre::{CpuOptimizer, Status};

fn finite<T: Scalar>(x: &[T]) -> bool {
    x.iter().all(|v| v.to_f64().is_finite())
}

fn norm<T: Scalar>(x: &[T]) -> f64 {
    x.iter()
        .map(|v| v.to_f64() * v.to_f64())
        .sum::<f64>()
        .sqrt()
}

/// Runs `steps` steps of gradient `grad(t, x)`; returns the parameters after each step.
fn run<T: Scalar>(
    spec: &str,
    n: usize,
    steps: usize,
    grad: impl Fn(usize, &[T]) -> Vec<T>,
) -> Vec<Vec<T>> {
    let mut opt = CpuOptimizer::<T>::from_spec(&format!("{spec}; dtype={}", T::DTYPE), n).unwrap();
    let mut x = vec![T::from_f64(1.0); n];
    let mut trace = Vec::new();
    for t in 0..steps {
        let g = grad(t, &x);
        opt.step(&mut x, &g).unwrap();
        assert!(finite(&x), "step {t}: non-finite parameters");
        trace.push(x.clone());
    }
    trace
}

#[test]
fn zero_gradient_is_a_zero_step() {
    fn case<T: Scalar>() {
        let trace = run::<T>("", 5, 10, |_, _| vec![T::from_f64(0.0); 5]);
        assert!(
            trace.iter().all(|x| x.iter().all(|v| v.to_f64() == 1.0)),
            "a zero gradient moved x"
        );
    }
    case::<f32>();
    case::<f64>();
}

#[test]
fn the_same_gradient_every_step_descends_along_it() {
    fn case<T: Scalar>() {
        let g: Vec<T> = (0..6).map(|i| T::from_f64(0.5 - i as f64 * 0.2)).collect();
        let trace = run::<T>("", 6, 40, |_, _| g.clone());
        let last = trace.last().unwrap();
        // The rank-1 window keeps k = 1 and every step moves x along −g.
        let moved: Vec<f64> = last.iter().map(|v| v.to_f64() - 1.0).collect();
        let cosine = moved
            .iter()
            .zip(&g)
            .map(|(d, gi)| d * gi.to_f64())
            .sum::<f64>()
            / (norm(&g) * moved.iter().map(|d| d * d).sum::<f64>().sqrt());
        assert!(
            cosine < -0.999,
            "moved along {moved:?}, cosine with g {cosine}"
        );
    }
    case::<f32>();
    case::<f64>();
}

#[test]
fn one_parameter_and_fewer_parameters_than_the_window() {
    fn case<T: Scalar>() {
        // f(x) = ½x² in 1-D, and a 3-D quadratic with history_size 100 > n.
        let one = run::<T>("lr=0.1", 1, 300, |_, x| vec![x[0]]);
        assert!(
            one.last().unwrap()[0].to_f64().abs() < 0.05,
            "1-D: {:?}",
            one.last()
        );
        let three = run::<T>("lr=0.1", 3, 300, |_, x| {
            x.iter()
                .enumerate()
                .map(|(i, v)| T::from_f64((i + 1) as f64 * v.to_f64()))
                .collect()
        });
        assert!(
            norm(three.last().unwrap()) < 0.05,
            "3-D: {:?}",
            three.last()
        );
    }
    case::<f32>();
    case::<f64>();
}

#[test]
fn tiny_and_huge_gradients_stay_finite() {
    // Huge gradients (1e30): Adam then normalization make the chain scale-invariant, so x moves
    // exactly as with gradients of magnitude 1. Tiny ones (1e-30): Adam's eps dominates √v and
    // the update is tiny, but clip_norm_by_ema's min_norm floor keeps the step length bounded
    // below; either way x moves no further than with unit gradients, and never becomes NaN.
    fn case<T: Scalar>() {
        let mut rng = Xorshift(12);
        let grads: Vec<Vec<f64>> = (0..30).map(|_| rng.vector(8)).collect();
        let scaled = |scale: f64| {
            run::<T>("", 8, 30, |t, _| {
                grads[t].iter().map(|v| T::from_f64(v * scale)).collect()
            })
        };
        let moved = |trace: &[Vec<T>]| -> f64 {
            trace
                .last()
                .unwrap()
                .iter()
                .map(|v| (v.to_f64() - 1.0).abs())
                .fold(0.0, f64::max)
        };
        let unit = scaled(1.0);
        let huge = scaled(1e30);
        let diff = unit
            .last()
            .unwrap()
            .iter()
            .zip(huge.last().unwrap())
            .map(|(p, q)| (p.to_f64() - q.to_f64()).abs())
            .fold(0.0, f64::max);
        assert!(
            diff < 1e-4,
            "{}: 1e30 gradients move x differently by {diff}",
            T::DTYPE
        );
        let tiny = scaled(1e-30);
        let (small, reference) = (moved(&tiny), moved(&unit));
        assert!(
            small > 0.0 && small <= reference,
            "{}: 1e-30 gradients moved x by {small}, unit ones by {reference}",
            T::DTYPE
        );
    }
    case::<f32>();
    case::<f64>();
}

#[test]
fn a_gradient_in_the_current_span_adds_no_direction() {
    fn case<T: Scalar>() {
        let mut opt = CpuOptimizer::<T>::from_spec(&format!("dtype={}", T::DTYPE), 6).unwrap();
        let mut x = vec![T::from_f64(0.0); 6];
        let a: Vec<T> = [1.0, 0.0, 2.0, 0.0, -1.0, 0.5]
            .iter()
            .map(|v| T::from_f64(*v))
            .collect();
        let b: Vec<T> = [0.0, 1.0, 0.0, -1.0, 0.5, 0.0]
            .iter()
            .map(|v| T::from_f64(*v))
            .collect();
        opt.step(&mut x, &a).unwrap();
        opt.step(&mut x, &b).unwrap();
        assert_eq!(opt.rank(), 2);
        let inside: Vec<T> = a
            .iter()
            .zip(&b)
            .map(|(p, q)| T::from_f64(0.3 * p.to_f64() - 2.0 * q.to_f64()))
            .collect();
        opt.step(&mut x, &inside).unwrap();
        assert_eq!(
            opt.rank(),
            2,
            "a dependent gradient must not add a direction"
        );
        assert!(finite(&x));
    }
    case::<f32>();
    case::<f64>();
}

#[test]
fn a_gradient_whose_square_overflows_is_refused() {
    // Every entry finite, but ‖g‖² overflows f64: the Gram matrix and Adam's second moment
    // would become infinite, so the step is refused and nothing changes.
    let mut opt = CpuOptimizer::<f64>::from_spec("dtype=f64", 3).unwrap();
    let mut x = vec![0.0; 3];
    opt.step(&mut x, &[1.0, 2.0, 3.0]).unwrap();
    let before = (x.clone(), opt.state());
    let err = opt.step(&mut x, &[1e200, 0.0, 0.0]).unwrap_err();
    assert_eq!(err.status, Status::LRE_ERR_NUMERICAL);
    assert!(err.message.contains("too large"), "{}", err.message);
    assert_eq!((x, opt.state()), before);
}
