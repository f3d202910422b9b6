//! The diagonal Adam options against their formulas (src/optimizer/complement.rs, graft.rs,
//! warmup.rs): `warmup=N` steps as Adam for N steps and then as LRE with a fresh chain;
//! `diagonal=graft` keeps LRE's direction with Adam's step length; `diagonal=complement` adds
//! Adam's step on the gradient's part outside span(Q). The gradients do not depend on x, so
//! two optimizers fed the same gradients take comparable steps.

mod common;

use common::Xorshift;
use lre::{CpuOptimizer, Status};

const N: usize = 9;
const LR: f64 = 0.1;

/// Adam with the `adam` component's defaults, written out independently of the library.
struct ReferenceAdam {
    t: i32,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl ReferenceAdam {
    fn new(n: usize) -> Self {
        ReferenceAdam {
            t: 0,
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    fn step(&mut self, g: &[f64]) -> Vec<f64> {
        self.t += 1;
        let (b1, b2) = (0.9f64, 0.99f64);
        (0..g.len())
            .map(|i| {
                self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
                self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
                let m_hat = self.m[i] / (1.0 - b1.powi(self.t));
                let v_hat = self.v[i] / (1.0 - b2.powi(self.t));
                m_hat / (v_hat.sqrt() + 1e-8)
            })
            .collect()
    }
}

fn gradients(seed: u64, steps: usize) -> Vec<Vec<f64>> {
    let mut rng = Xorshift(seed);
    (0..steps).map(|_| rng.vector(N)).collect()
}

fn optimizer(spec: &str) -> CpuOptimizer<f64> {
    CpuOptimizer::<f64>::from_spec(&format!("{spec}; dtype=f64; lr={LR}"), N).unwrap()
}

/// The step x_after − x_before of one optimizer step.
fn step(opt: &mut CpuOptimizer<f64>, x: &mut [f64], g: &[f64]) -> Vec<f64> {
    let before = x.to_vec();
    opt.step(x, g).unwrap();
    x.iter().zip(&before).map(|(a, b)| a - b).collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    let scale = norm(want).max(1e-300);
    let diff: Vec<f64> = got.iter().zip(want).map(|(a, b)| a - b).collect();
    assert!(
        norm(&diff) <= tol * scale,
        "{what}: got {got:?}, want {want:?}"
    );
}

#[test]
fn warmup_steps_are_adam_then_the_low_rank_step_with_a_fresh_chain() {
    let grads = gradients(3, 7);
    let mut warm = optimizer("warmup=3");
    // init_steps=3 builds the same basis without moving: from step 3 on it is what warm-up
    // hands over to.
    let mut after = optimizer("init_steps=3");
    let mut adam = ReferenceAdam::new(N);
    let (mut x, mut y) = (vec![0.5; N], vec![0.5; N]);
    for (t, g) in grads.iter().enumerate() {
        let warm_step = step(&mut warm, &mut x, g);
        let other = step(&mut after, &mut y, g);
        let want = adam.step(g);
        if t < 3 {
            let want: Vec<f64> = want.iter().map(|d| -LR * d).collect();
            assert_close(&warm_step, &want, 1e-12, &format!("warm-up step {t}"));
            assert!(other.iter().all(|d| *d == 0.0), "init step {t} moved");
        } else {
            assert_close(
                &warm_step,
                &other,
                1e-12,
                &format!("step {t} after warm-up"),
            );
        }
    }
}

#[test]
fn graft_keeps_the_direction_with_adams_length() {
    let grads = gradients(5, 8);
    let mut grafted = optimizer("diagonal=graft");
    let mut plain = optimizer("");
    let mut adam = ReferenceAdam::new(N);
    let (mut x, mut y) = (vec![0.0; N], vec![0.0; N]);
    for (t, g) in grads.iter().enumerate() {
        let ours = step(&mut grafted, &mut x, g);
        let theirs = step(&mut plain, &mut y, g);
        let length = LR * norm(&adam.step(g));
        let want: Vec<f64> = theirs.iter().map(|d| d * length / norm(&theirs)).collect();
        assert_close(&ours, &want, 1e-10, &format!("step {t}"));
    }
}

/// With update_freq=2 the basis after step 0 is span(g₀) and step 1 projects g₁ on it, so the
/// part outside is r = g₁ − (g₁·q)q, q = g₀/‖g₀‖; step 0's part outside is 0.
#[test]
fn complement_adds_adams_step_on_the_part_outside_the_basis() {
    let grads = gradients(9, 2);
    let mut with = optimizer("diagonal=complement; update_freq=2");
    let mut without = optimizer("update_freq=2");
    let (mut x, mut y) = (vec![0.0; N], vec![0.0; N]);
    let first = step(&mut with, &mut x, &grads[0]);
    assert_close(
        &first,
        &step(&mut without, &mut y, &grads[0]),
        1e-14,
        "step 0",
    );
    let ours = step(&mut with, &mut x, &grads[1]);
    let theirs = step(&mut without, &mut y, &grads[1]);
    let q: Vec<f64> = grads[0].iter().map(|v| v / norm(&grads[0])).collect();
    let along: f64 = q.iter().zip(&grads[1]).map(|(a, b)| a * b).sum();
    let r: Vec<f64> = grads[1]
        .iter()
        .zip(&q)
        .map(|(g, q)| g - along * q)
        .collect();
    let mut adam = ReferenceAdam::new(N);
    adam.step(&[0.0; N]);
    let d = adam.step(&r);
    assert!(norm(&d) > 0.1, "the test needs a part outside span(Q)");
    let want: Vec<f64> = theirs.iter().zip(&d).map(|(s, d)| s - LR * d).collect();
    assert_close(&ours, &want, 1e-10, "step 1");
}

#[test]
fn sharded_optimizers_refuse_the_diagonal_options() {
    for spec in ["diagonal=graft", "diagonal=complement", "warmup=2"] {
        let e = CpuOptimizer::<f32>::from_spec(&format!("{spec}; global_ndim=20"), 10)
            .err()
            .expect("refused");
        assert_eq!(
            e.status,
            Status::LRE_ERR_UNSUPPORTED,
            "{spec}: {}",
            e.message
        );
        assert!(e.message.contains("sharded"), "{spec}: {}", e.message);
    }
}

/// `memory_bytes` counts the diagonal Adam's host moments and work: 4 f64 and one f32 n-vector.
#[test]
fn memory_counts_the_diagonal_buffers() {
    let g = gradients(2, 1).remove(0);
    let g32: Vec<f32> = g.iter().map(|v| *v as f32).collect();
    let held = |spec: &str| {
        let mut opt = CpuOptimizer::<f32>::from_spec(spec, N).unwrap();
        opt.step(&mut [0.0f32; N], &g32).unwrap();
        opt.memory_bytes()
    };
    assert_eq!(held("diagonal=graft"), held("") + 4 * 8 * N + 4 * N);
    assert_eq!(held("warmup=3"), held("") + 4 * 8 * N + 4 * N);
}
