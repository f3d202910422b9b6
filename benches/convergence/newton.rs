//! Reference minima for the convex tasks, so the plots can show the excess loss f − f*.

use crate::task::{Task, dot, norm};

/// The minimum of a smooth strictly convex task by Newton's method in f64: conjugate gradients
/// on H·d = −∇f with the task's H·v (inexact, to a relative residual min(0.1, √‖∇f‖), so
/// the last steps converge quadratically), then a backtracking line search.
pub fn newton_minimum(task: &dyn Task) -> f64 {
    let mut x = task.init();
    let n = x.len();
    let mut grad = vec![0.0; n];
    let mut loss = task.loss_grad(&x, &mut grad);
    for _ in 0..50 {
        let grad_norm = norm(&grad);
        if grad_norm < 1e-12 {
            break;
        }
        let forcing = grad_norm.sqrt().min(0.1);
        let direction = conjugate_gradient(|v, hv| task.hvp(&x, v, hv), &grad, forcing, n);
        let slope = -dot(&grad, &direction);
        let mut t = 1.0;
        let mut trial = vec![0.0; n];
        let mut trial_grad = vec![0.0; n];
        loop {
            trial
                .iter_mut()
                .zip(&x)
                .zip(&direction)
                .for_each(|((o, a), d)| *o = a - t * d);
            let trial_loss = task.loss_grad(&trial, &mut trial_grad);
            if trial_loss <= loss + 1e-4 * t * slope || t < 1e-10 {
                if trial_loss <= loss {
                    (x, grad, loss) = (trial, trial_grad, trial_loss);
                }
                break;
            }
            t *= 0.5;
        }
    }
    loss
}

/// Solves H·d = b by conjugate gradients (H symmetric positive definite via `times`) until the
/// residual is below `tolerance`·‖b‖ or after `iterations` products.
fn conjugate_gradient(
    mut times: impl FnMut(&[f64], &mut [f64]),
    b: &[f64],
    tolerance: f64,
    iterations: usize,
) -> Vec<f64> {
    let mut d = vec![0.0; b.len()];
    let mut r = b.to_vec();
    let mut p = r.clone();
    let mut hp = vec![0.0; b.len()];
    let mut rr = dot(&r, &r);
    let stop = tolerance * tolerance * rr;
    for _ in 0..iterations {
        if rr <= stop {
            break;
        }
        times(&p, &mut hp);
        let alpha = rr / dot(&p, &hp);
        d.iter_mut().zip(&p).for_each(|(di, pi)| *di += alpha * pi);
        r.iter_mut().zip(&hp).for_each(|(ri, hi)| *ri -= alpha * hi);
        let next = dot(&r, &r);
        p.iter_mut()
            .zip(&r)
            .for_each(|(pi, ri)| *pi = ri + next / rr * *pi);
        rr = next;
    }
    d
}
