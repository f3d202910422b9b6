//! Decoupled weight decay (the `weight_decay` key): every step that moves the parameters makes
//! x ← (1 − lr·wd)·x − lr·Q·û, the decay taken on the x before the step (as AdamW); refused
//! steps and init steps leave the parameters alone; it moves the optimum of a quadratic to the
//! fixed point of that iteration; it is settable between steps and travels with the state.

mod common;

use common::Xorshift;
use lre::{CpuOptimizer, Status};

fn bits(x: &[f64]) -> Vec<u64> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// With Q = I and an empty chain, û is the gradient, so one step is (1 − lr·wd)·x − lr·g. The
/// values are chosen so that every product and sum is exact in binary: the comparison is exact.
#[test]
fn one_step_is_the_decoupled_formula_exactly() {
    let x0 = [1.0, -2.0, 4.0, 0.5, 0.0, -0.25];
    let g = [0.25, 1.0, -2.0, 3.0, 0.5, -1.0];
    let (lr, wd) = (0.5, 0.5);
    let expected: Vec<f64> = x0
        .iter()
        .zip(&g)
        .map(|(x, g)| (1.0 - lr * wd) * x - lr * g)
        .collect();
    let spec = format!("basis=identity; chain=[]; lr={lr}; weight_decay={wd}");

    let mut opt = CpuOptimizer::<f64>::from_spec(&format!("{spec}; dtype=f64"), x0.len()).unwrap();
    let mut x = x0.to_vec();
    opt.step(&mut x, &g).unwrap();
    assert_eq!(x, expected, "f64");

    let mut opt = CpuOptimizer::<f32>::from_spec(&spec, x0.len()).unwrap();
    let mut x: Vec<f32> = x0.iter().map(|&v| v as f32).collect();
    let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
    opt.step(&mut x, &g32).unwrap();
    let expected32: Vec<f32> = expected.iter().map(|&v| v as f32).collect();
    assert_eq!(x, expected32, "f32");
}

/// For every curvature family and several bases and chains: from the same state, a step with
/// weight decay differs from the step without by exactly the decay term −lr·wd·x (up to the one
/// extra rounding). The decay is switched on between steps with `set_weight_decay`.
#[test]
fn every_configuration_decays_by_lr_times_wd_times_x() {
    let n = 12;
    let (lr, wd) = (0.05, 0.3);
    let specs = [
        "",
        "basis=eigen(rank=4)",
        "basis=randomized_eigen(rank=4)",
        "basis=hebbian_learning(rank=3)",
        "basis=random(rank=5)",
        "basis=common_directions(rank=4)",
        "basis=identity; chain=[adam]",
        "basis=full_matrix; chain=[adam, clip_norm]",
        "curvature=full_hutchinson_hessian; chain=[l_inv]",
        "curvature=bfgs; basis=eigen(rank=4)",
        "update_freq=2; chain=[lion]",
    ];
    let diag: Vec<f64> = (0..n).map(|i| 1.0 + i as f64).collect();
    for spec in specs {
        let spec = format!("{spec}; lr={lr}; dtype=f64; seed=3");
        let mut rng = Xorshift(11);
        let x0 = rng.vector(n);
        let mut plain = CpuOptimizer::<f64>::from_spec(&spec, n).unwrap();
        let mut decayed = CpuOptimizer::<f64>::from_spec(&spec, n).unwrap();
        let (mut x, mut y) = (x0.clone(), x0);
        let step = |opt: &mut CpuOptimizer<f64>, x: &mut Vec<f64>, g: &[f64]| {
            let hvp = |v: &[f64], hv: &mut [f64]| {
                hv.iter_mut()
                    .zip(v.iter().zip(&diag))
                    .for_each(|(h, (v, d))| *h = v * d);
                true
            };
            opt.step_with_hvp(x, g, hvp).unwrap();
        };
        // Three identical steps without decay, then one with (the gradients do not depend on x,
        // so both optimizers see the same inputs).
        for t in 0..4 {
            if t == 3 {
                decayed.set_weight_decay(wd).unwrap();
            }
            let g = rng.vector(n);
            let before = y.clone();
            step(&mut plain, &mut x, &g);
            step(&mut decayed, &mut y, &g);
            if t < 3 {
                assert_eq!(bits(&x), bits(&y), "{spec}: step {t} without decay");
                continue;
            }
            assert!(
                x.iter().zip(&before).any(|(a, b)| a != b),
                "{spec}: the step did not move"
            );
            for i in 0..n {
                let decay = y[i] - x[i];
                let want = -lr * wd * before[i];
                assert!(
                    (decay - want).abs() <= 1e-15 * (1.0 + x[i].abs()),
                    "{spec}: entry {i}: decayed step − plain step = {decay}, expected {want}"
                );
            }
        }
    }
}

#[test]
fn refused_steps_and_init_steps_leave_the_parameters_alone() {
    let n = 5;
    let mut opt =
        CpuOptimizer::<f64>::from_spec("weight_decay=0.5; lr=0.1; init_steps=2; dtype=f64", n)
            .unwrap();
    let x0 = vec![1.0, -2.0, 3.0, -4.0, 5.0];
    let mut x = x0.clone();
    let g = vec![0.5, 0.25, -1.0, 2.0, 0.125];
    for t in 0..2 {
        opt.step(&mut x, &g).unwrap();
        assert_eq!(bits(&x), bits(&x0), "init step {t} changed the parameters");
    }
    let state = opt.state();
    let mut bad = g.clone();
    bad[3] = f64::NAN;
    let e = opt.step(&mut x, &bad).unwrap_err();
    assert_eq!(e.status, Status::LRE_ERR_NUMERICAL);
    assert_eq!(bits(&x), bits(&x0), "a refused step changed the parameters");
    assert_eq!(opt.state(), state, "a refused step changed the state");
    opt.step(&mut x, &g).unwrap();
    assert_ne!(bits(&x), bits(&x0), "the first real step moves them");
}

/// f(x) = ½ Σ d_i (x_i − a_i)² with Q = I and an empty chain: the decoupled iteration
/// x ← (1 − lr·wd)·x − lr·d∘(x − a) has its fixed point where wd·x = −d∘(x − a), i.e.
/// x*_i = d_i·a_i / (d_i + wd), not the minimizer a; without decay it converges to a.
#[test]
fn weight_decay_moves_the_optimum_to_the_decoupled_fixed_point() {
    let n = 8;
    let (lr, wd) = (0.5, 0.25);
    let d: Vec<f64> = (0..n)
        .map(|i| 0.5 + 1.5 * i as f64 / (n - 1) as f64)
        .collect();
    let a = Xorshift(7).vector(n);
    let run = |wd: f64| {
        let spec = format!("basis=identity; chain=[]; lr={lr}; weight_decay={wd}; dtype=f64");
        let mut opt = CpuOptimizer::<f64>::from_spec(&spec, n).unwrap();
        let mut x = vec![1.0; n];
        for _ in 0..200 {
            let g: Vec<f64> = (0..n).map(|i| d[i] * (x[i] - a[i])).collect();
            opt.step(&mut x, &g).unwrap();
        }
        x
    };
    let decayed = run(wd);
    let plain = run(0.0);
    for i in 0..n {
        let fixed_point = d[i] * a[i] / (d[i] + wd);
        assert!(
            (decayed[i] - fixed_point).abs() < 1e-12,
            "entry {i}: {} vs the fixed point {fixed_point}",
            decayed[i]
        );
        assert!((plain[i] - a[i]).abs() < 1e-12, "entry {i} without decay");
        assert!(
            (decayed[i] - a[i]).abs() > 1e-3 * a[i].abs(),
            "entry {i}: the decay should move the optimum"
        );
    }
}

#[test]
fn weight_decay_is_settable_and_travels_with_the_state() {
    let n = 4;
    let mut opt = CpuOptimizer::<f32>::from_spec("", n).unwrap();
    assert_eq!(opt.config().weight_decay, 0.0, "the default is 0");
    for bad in [-1.0, f64::NAN, f64::INFINITY] {
        let e = opt.set_weight_decay(bad).unwrap_err();
        assert_eq!(e.status, Status::LRE_ERR_INVALID_ARGUMENT);
        assert!(e.message.contains("weight_decay"), "{}", e.message);
        assert_eq!(opt.config().weight_decay, 0.0, "a refused value was kept");
    }
    opt.set_weight_decay(0.125).unwrap();
    let mut x = vec![1.0f32; n];
    opt.step(&mut x, &[0.5, -0.5, 0.25, 1.0]).unwrap();
    assert!(opt.config().to_string().contains("weight_decay=0.125"));
    let saved = opt.state();
    let resumed = CpuOptimizer::<f32>::from_state(&saved).unwrap();
    assert_eq!(resumed.config().weight_decay, 0.125);
    // Like lr, it is restored by load_state rather than counted as a configuration difference.
    let mut other = CpuOptimizer::<f32>::from_spec("weight_decay=2", n).unwrap();
    other.load_state(&saved).unwrap();
    assert_eq!(other.config().weight_decay, 0.125);
}
