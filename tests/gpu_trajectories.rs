//! The same optimizer on the CPU and on the GPU follows the same trajectory: the default,
//! ggt + [adam], eigen + [adam] and an HVP curvature (full_hutchinson_hessian), in f32 and f64,
//! on a diagonal quadratic; and a state written on one device resumes on the other.
//!
//! Tolerance (README, "GPU"): after every step, max_i |x_gpu − x_cpu| ≤ TOL·max_i |x0| with
//! TOL = 1e-3 for f32 and 1e-9 for f64. The devices sum in different orders (cuBLAS's blocked
//! f32 projections, f64 partial sums per GPU block), so the paths agree to rounding that the
//! steps carry on, not bit for bit.
//!
//! Runs where a GPU exists (tests/gpu/run.sh); elsewhere each test returns at once, saying so.
#![cfg(feature = "cuda")]

#[path = "common/gpu.rs"]
mod gpu;

use lre::backend::{Backend, Cpu, Scalar};
use lre::{CpuOptimizer, CudaOptimizer, Dtype, Optimizer};

const N: usize = 3001;
const STEPS: usize = 24;

const SPECS: [&str; 4] = [
    "",
    "basis=ggt; chain=[adam]",
    "basis=eigen; chain=[adam]",
    "curvature=full_hutchinson_hessian(z=gaussian); basis=eigen; chain=[adam]",
];

fn tolerance<T: Scalar>() -> f64 {
    match T::DTYPE {
        Dtype::F32 => 1e-3,
        Dtype::F64 => 1e-9,
    }
}

/// Curvatures d_i of f(x) = ½ Σ d_i x_i² (spread over three decades) and the start x0.
fn problem() -> (Vec<f64>, Vec<f64>) {
    let d = (0..N)
        .map(|i| 10f64.powf(3.0 * i as f64 / N as f64))
        .collect();
    let x0 = (0..N)
        .map(|i| ((i * 7919) % 1000) as f64 / 500.0 - 1.0)
        .collect();
    (d, x0)
}

fn fetch<B: Backend>(be: &B, v: &B::Vector) -> Vec<f64> {
    let mut out = vec![B::Elem::default(); be.ndim()];
    be.vector_to_host(v, &mut out);
    out.iter().map(|x| x.to_f64()).collect()
}

fn store<B: Backend>(be: &B, data: &[f64], v: &mut B::Vector) {
    let elems: Vec<B::Elem> = data.iter().map(|&x| B::Elem::from_f64(x)).collect();
    be.vector_from_host(&elems, v);
}

/// d ∘ v.
fn times(d: &[f64], v: &[f64]) -> Vec<f64> {
    d.iter().zip(v).map(|(a, b)| a * b).collect()
}

/// `steps` steps from `x`, gradients and HVPs of the quadratic computed on the host; the
/// parameters after each step.
fn run<B: Backend + 'static>(
    opt: &mut Optimizer<B>,
    be: &B,
    d: &[f64],
    x: &[f64],
    steps: usize,
) -> Vec<Vec<f64>>
where
    for<'x> B::Input<'x>: Copy,
{
    let mut params = be.vector().expect("params");
    let mut grad = be.vector().expect("grad");
    store(be, x, &mut params);
    let mut path = Vec::new();
    for _ in 0..steps {
        store(be, &times(d, &fetch(be, &params)), &mut grad);
        let probes = opt.begin(be.as_input(&grad)).expect("begin");
        let mut products = Vec::new();
        for i in 0..probes {
            let v = fetch(be, opt.probe(i).expect("probe"));
            let mut hv = be.vector().expect("hvp");
            store(be, &times(d, &v), &mut hv);
            products.push(hv);
        }
        let inputs: Vec<B::Input<'_>> = products.iter().map(|h| be.as_input(h)).collect();
        opt.finish(be.as_inout(&mut params), &inputs)
            .expect("finish");
        path.push(fetch(be, &params));
    }
    path
}

fn spec<T: Scalar>(base: &str, device: &str) -> String {
    format!("{base}; dtype={}; device={device}; seed=7", T::DTYPE)
        .trim_start_matches("; ")
        .to_string()
}

fn assert_close<T: Scalar>(what: &str, cpu: &[Vec<f64>], gpu: &[Vec<f64>], scale: f64) {
    let limit = tolerance::<T>() * scale;
    for (step, (c, g)) in cpu.iter().zip(gpu).enumerate() {
        let worst = c
            .iter()
            .zip(g)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= limit,
            "{what}, {}: step {step}: max |x_gpu - x_cpu| = {worst:e} > {limit:e}",
            T::DTYPE
        );
    }
    eprintln!("{what}, {}: {} steps agree", T::DTYPE, cpu.len());
}

fn trajectories<T: Scalar>() {
    if gpu::device().is_none() {
        return;
    }
    let (d, x0) = problem();
    let scale = x0.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    let cpu_be = Cpu::<T>::new(N, 1);
    for base in SPECS {
        let mut cpu =
            CpuOptimizer::<T>::from_spec(&spec::<T>(base, "cpu"), N).expect("cpu optimizer");
        let mut gpu =
            CudaOptimizer::<T>::from_spec(&spec::<T>(base, "cuda:0"), N).expect("gpu optimizer");
        let gpu_be = gpu.backend().clone();
        let cpu_path = run(&mut cpu, &cpu_be, &d, &x0, STEPS);
        let gpu_path = run(&mut gpu, &gpu_be, &d, &x0, STEPS);
        let name = if base.is_empty() { "the default" } else { base };
        assert_close::<T>(name, &cpu_path, &gpu_path, scale);
    }
}

#[test]
fn trajectories_agree_f32() {
    trajectories::<f32>();
}

#[test]
fn trajectories_agree_f64() {
    trajectories::<f64>();
}

/// Half the steps on one device, the state saved, the rest on the other, against the whole run
/// on the CPU.
fn checkpoints<T: Scalar>() {
    if gpu::device().is_none() {
        return;
    }
    let (d, x0) = problem();
    let scale = x0.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    let half = STEPS / 2;
    let cpu_be = Cpu::<T>::new(N, 1);
    let base = SPECS[0];
    let mut whole = CpuOptimizer::<T>::from_spec(&spec::<T>(base, "cpu"), N).expect("cpu");
    let reference = run(&mut whole, &cpu_be, &d, &x0, STEPS);
    let x_half = &reference[half - 1];

    // GPU first, then the CPU.
    let mut gpu = CudaOptimizer::<T>::from_spec(&spec::<T>(base, "cuda:0"), N).expect("gpu");
    let gpu_be = gpu.backend().clone();
    let first = run(&mut gpu, &gpu_be, &d, &x0, half);
    let mut cpu = CpuOptimizer::<T>::from_state(&gpu.state()).expect("the GPU's state on the CPU");
    let second = run(
        &mut cpu,
        &cpu_be,
        &d,
        first.last().expect("steps"),
        STEPS - half,
    );
    assert_close::<T>("GPU then CPU", &reference, &[first, second].concat(), scale);

    // CPU first, then the GPU.
    let mut cpu = CpuOptimizer::<T>::from_spec(&spec::<T>(base, "cpu"), N).expect("cpu");
    let first = run(&mut cpu, &cpu_be, &d, &x0, half);
    assert_eq!(&first[half - 1], x_half, "the CPU repeats itself");
    let mut gpu =
        CudaOptimizer::<T>::from_state_on(0, &cpu.state()).expect("the CPU's state on the GPU");
    let gpu_be = gpu.backend().clone();
    let second = run(&mut gpu, &gpu_be, &d, x_half, STEPS - half);
    assert_close::<T>("CPU then GPU", &reference, &[first, second].concat(), scale);
}

#[test]
fn checkpoints_cross_devices_f32() {
    checkpoints::<f32>();
}

#[test]
fn checkpoints_cross_devices_f64() {
    checkpoints::<f64>();
}
