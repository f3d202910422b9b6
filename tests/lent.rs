//! Stepping in caller memory (src/ffi/lent.rs): an optimizer whose n-sized buffers are the
//! caller's arrays and whose other state is a small byte buffer steps bit for bit as the
//! optimizer that owns its memory, fails without touching anything, converts to and from the
//! complete state blob, and refuses wrong buffers naming them. Called through the C entry points,
//! as a binding does.

use lre::backend::Scalar;
use lre::ffi::api::{
    lre_last_error_message, lre_optimizer_free, lre_optimizer_from_state, lre_optimizer_new,
};
use lre::ffi::handle::LreOptimizer;
use lre::ffi::lent::{
    lre_lent_state_save, lre_lent_step_f32, lre_lent_step_f64, lre_optimizer_lend,
    lre_optimizer_small_state_bound,
};
use lre::{CpuOptimizer, Status};
use std::ffi::{CStr, CString, c_void};
use std::ptr;

const N: usize = 300;
const STEPS: usize = 40;

type Hvp<T> = Option<unsafe extern "C" fn(*mut c_void, *const T, *mut T, usize) -> i32>;
type LentStep<T> = unsafe extern "C" fn(
    *const u8,
    usize,
    *const *mut c_void,
    *const usize,
    usize,
    *mut T,
    *const T,
    Hvp<T>,
    *mut c_void,
    *mut u8,
    usize,
    *mut usize,
) -> Status;

/// The element types, with their lent step and a diagonal Hessian-vector product.
trait Element: Scalar {
    const STEP: LentStep<Self>;
    const HVP: Hvp<Self>;
}

/// H = diag(1, 2, …, 7, 1, 2, …).
fn curvature(i: usize) -> f64 {
    (i % 7 + 1) as f64
}

unsafe extern "C" fn hvp_f32(_: *mut c_void, v: *const f32, hv: *mut f32, n: usize) -> i32 {
    // SAFETY: the library passes two arrays of n elements.
    let (v, hv) = unsafe {
        (
            std::slice::from_raw_parts(v, n),
            std::slice::from_raw_parts_mut(hv, n),
        )
    };
    for (i, (o, x)) in hv.iter_mut().zip(v).enumerate() {
        *o = (curvature(i) * f64::from(*x)) as f32;
    }
    0
}

unsafe extern "C" fn hvp_f64(_: *mut c_void, v: *const f64, hv: *mut f64, n: usize) -> i32 {
    // SAFETY: the library passes two arrays of n elements.
    let (v, hv) = unsafe {
        (
            std::slice::from_raw_parts(v, n),
            std::slice::from_raw_parts_mut(hv, n),
        )
    };
    for (i, (o, x)) in hv.iter_mut().zip(v).enumerate() {
        *o = curvature(i) * x;
    }
    0
}

impl Element for f32 {
    const STEP: LentStep<f32> = lre_lent_step_f32;
    const HVP: Hvp<f32> = Some(hvp_f32);
}

impl Element for f64 {
    const STEP: LentStep<f64> = lre_lent_step_f64;
    const HVP: Hvp<f64> = Some(hvp_f64);
}

/// The gradient of ½xᵀHx − bᵀx at x plus noise that depends on the step.
fn gradient<T: Scalar>(x: &[T], step: usize) -> Vec<T> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ (step as u64).wrapping_mul(0x1000_0000_01b3);
    x.iter()
        .enumerate()
        .map(|(i, xi)| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5;
            T::from_f64(curvature(i) * xi.to_f64() - 1.0 + noise)
        })
        .collect()
}

fn last_error() -> String {
    // SAFETY: the library returns a NUL-terminated thread-local string.
    unsafe { CStr::from_ptr(lre_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// An optimizer's state in caller memory: the small state and the n-sized arrays (u64 storage
/// keeps them aligned for f32 and f64).
struct Lent {
    small: Vec<u8>,
    small_len: usize,
    arrays: Vec<Vec<u64>>,
    sizes: Vec<usize>,
}

impl Lent {
    fn pointers(&mut self) -> Vec<*mut c_void> {
        self.arrays
            .iter_mut()
            .map(|a| a.as_mut_ptr() as *mut c_void)
            .collect()
    }

    fn bytes(&self) -> Vec<u8> {
        let mut all = self.small[..self.small_len].to_vec();
        for (a, &size) in self.arrays.iter().zip(&self.sizes) {
            all.extend_from_slice(&bytemuck::cast_slice::<u64, u8>(a)[..size]);
        }
        all
    }

    /// The complete state blob.
    fn blob(&mut self) -> Vec<u8> {
        let pointers = self.pointers();
        let mut len = 0;
        // SAFETY: arrays of the sizes given; a NULL buf asks for the size.
        let status = unsafe {
            lre_lent_state_save(
                self.small.as_ptr(),
                self.small_len,
                pointers.as_ptr(),
                self.sizes.as_ptr(),
                pointers.len(),
                ptr::null_mut(),
                0,
                &mut len,
            )
        };
        assert_eq!(status, Status::LRE_OK, "{}", last_error());
        let mut blob = vec![0u8; len];
        // SAFETY: as above, with a buffer of len bytes.
        let status = unsafe {
            lre_lent_state_save(
                self.small.as_ptr(),
                self.small_len,
                pointers.as_ptr(),
                self.sizes.as_ptr(),
                pointers.len(),
                blob.as_mut_ptr(),
                len,
                &mut len,
            )
        };
        assert_eq!(status, Status::LRE_OK, "{}", last_error());
        blob
    }

    /// One lent step; the status.
    fn step<T: Element>(&mut self, x: &mut [T], g: &[T]) -> Status {
        let pointers = self.pointers();
        let mut len = 0;
        let small = self.small.as_mut_ptr();
        // SAFETY: the arrays have their sizes; the small state is stepped in place.
        let status = unsafe {
            T::STEP(
                small,
                self.small_len,
                pointers.as_ptr(),
                self.sizes.as_ptr(),
                pointers.len(),
                x.as_mut_ptr(),
                g.as_ptr(),
                T::HVP,
                ptr::null_mut(),
                small,
                self.small.len(),
                &mut len,
            )
        };
        if status == Status::LRE_OK {
            self.small_len = len;
        }
        status
    }
}

/// A handle for `spec` (C API).
struct Handle(*mut LreOptimizer);

impl Handle {
    fn new(spec: &str) -> Handle {
        let spec = CString::new(spec).unwrap();
        let mut opt = ptr::null_mut();
        // SAFETY: a NUL-terminated spec and a place for the handle.
        let status = unsafe { lre_optimizer_new(spec.as_ptr(), N, &mut opt) };
        assert_eq!(status, Status::LRE_OK, "{}", last_error());
        Handle(opt)
    }

    /// Moves the handle's state to caller memory with these array sizes (the layout's unless
    /// changed); the status.
    fn lend(&self, sizes: &[usize], lent: &mut Lent) -> Status {
        lent.arrays = sizes.iter().map(|s| vec![0u64; s.div_ceil(8)]).collect();
        lent.sizes = sizes.to_vec();
        let pointers = lent.pointers();
        let mut len = 0;
        // SAFETY: arrays of the given sizes and a small buffer of its length.
        let status = unsafe {
            lre_optimizer_lend(
                self.0,
                pointers.as_ptr(),
                sizes.as_ptr(),
                sizes.len(),
                lent.small.as_mut_ptr(),
                lent.small.len(),
                &mut len,
            )
        };
        lent.small_len = len;
        status
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: a live handle from lre_optimizer_new.
        unsafe { lre_optimizer_free(self.0) }
    }
}

/// The sizes of `spec`'s n-sized buffers, from the layout the optimizer declares.
fn sizes<T: Scalar>(spec: &str) -> Vec<usize> {
    let opt = CpuOptimizer::<T>::from_spec(spec, N).unwrap();
    opt.lent_buffers()
        .unwrap()
        .iter()
        .map(|(_, bytes)| *bytes)
        .collect()
}

fn lent_state(spec: &str, sizes: &[usize]) -> Lent {
    lent_state_of(&Handle::new(spec), sizes)
}

/// The state of `handle` moved to caller memory with arrays of these sizes.
fn lent_state_of(handle: &Handle, sizes: &[usize]) -> Lent {
    let mut bound = 0;
    // SAFETY: a live handle and a place for the bound.
    assert_eq!(
        unsafe { lre_optimizer_small_state_bound(handle.0, &mut bound) },
        Status::LRE_OK
    );
    let mut lent = Lent {
        small: vec![0; bound],
        small_len: 0,
        arrays: vec![],
        sizes: vec![],
    };
    assert_eq!(
        handle.lend(sizes, &mut lent),
        Status::LRE_OK,
        "{}",
        last_error()
    );
    lent
}

fn bits<T: Scalar>(x: &[T]) -> Vec<u64> {
    x.iter().map(|v| v.to_f64().to_bits()).collect()
}

/// Runs `spec` owned and lent side by side for STEPS steps and checks parameters after every
/// step, a refused step on the way, the final blob, and that the small state holds no
/// n-sized data.
fn lent_matches_owned<T: Element>(spec: &str) {
    let spec = match T::DTYPE {
        lre::Dtype::F32 => spec.to_string(),
        lre::Dtype::F64 => format!("{spec}; dtype=f64"),
    };
    let mut owned = CpuOptimizer::<T>::from_spec(&spec, N).unwrap();
    let hessian = owned.num_probes() > 0;
    let sizes = sizes::<T>(&spec);
    let mut lent = lent_state(&spec, &sizes);
    let (mut x_owned, mut x_lent) = (vec![T::default(); N], vec![T::default(); N]);
    for t in 0..STEPS {
        let g = gradient(&x_owned, t);
        if hessian {
            owned
                .step_with_hvp(&mut x_owned, &g, |v, hv| {
                    for (i, (o, x)) in hv.iter_mut().zip(v).enumerate() {
                        *o = T::from_f64(curvature(i) * x.to_f64());
                    }
                    true
                })
                .unwrap();
        } else {
            owned.step(&mut x_owned, &g).unwrap();
        }
        assert_eq!(
            lent.step(&mut x_lent, &g),
            Status::LRE_OK,
            "{spec}: {}",
            last_error()
        );
        assert_eq!(bits(&x_owned), bits(&x_lent), "{spec}: step {t}");
        if t == STEPS / 2 {
            let mut bad = g.clone();
            bad[N / 3] = T::from_f64(f64::NAN);
            let (before, x_before) = (lent.bytes(), bits(&x_lent));
            assert_eq!(
                lent.step(&mut x_lent, &bad),
                Status::LRE_ERR_NUMERICAL,
                "{spec}"
            );
            assert_eq!(
                lent.bytes(),
                before,
                "{spec}: a refused step changed the state"
            );
            assert_eq!(
                bits(&x_lent),
                x_before,
                "{spec}: a refused step moved params"
            );
        }
    }
    assert_eq!(lent.blob(), owned.state(), "{spec}: blob of the lent state");
    // The bound counts one u64 slot, not n elements, per n-sized vector.
    let bound = owned.small_bound().unwrap();
    assert!(
        lent.small_len <= bound,
        "{spec}: the small state has {} bytes; its bound is {bound}",
        lent.small_len
    );
}

const SPECS: [&str; 5] = [
    "",
    "basis=ggt(history_size=5); chain=[adam]",
    "basis=eigen(rank=3); chain=[adam]",
    "curvature=full_hutchinson_hessian(z=s); basis=ggt(history_size=4); chain=[adam]",
    "update_freq=3; basis=ggt(history_size=4); chain=[adam]",
];

#[test]
fn lent_steps_equal_owned_steps_f32() {
    for spec in SPECS {
        lent_matches_owned::<f32>(spec);
    }
}

#[test]
fn lent_steps_equal_owned_steps_f64() {
    for spec in SPECS {
        lent_matches_owned::<f64>(spec);
    }
}

#[test]
fn lent_buffers_must_have_the_declared_sizes_and_count() {
    let spec = "basis=ggt(history_size=5); chain=[adam]";
    let good = sizes::<f32>(spec);
    // The covariance's pending gradients (none with update_freq = 1), then the n×5 window.
    assert_eq!(good, vec![0, 5 * N * 4]);
    let handle = Handle::new(spec);
    let mut lent = Lent {
        small: vec![0; 1 << 16],
        small_len: 0,
        arrays: vec![],
        sizes: vec![],
    };
    let short = [0, good[1] - 4];
    assert_eq!(
        handle.lend(&short, &mut lent),
        Status::LRE_ERR_INVALID_ARGUMENT
    );
    let message = last_error();
    assert!(
        message.contains("basis/window") && message.contains(&short[1].to_string()),
        "{message}"
    );
    assert_eq!(
        handle.lend(&good[1..], &mut lent),
        Status::LRE_ERR_INVALID_ARGUMENT
    );
    assert!(last_error().contains("basis/window"), "{}", last_error());
    // A step with a wrong size changes nothing.
    let mut lent = lent_state(spec, &good);
    let mut x = vec![0f32; N];
    let g = gradient(&x, 0);
    assert_eq!(lent.step(&mut x, &g), Status::LRE_OK);
    let before = lent.bytes();
    lent.sizes[1] -= 4;
    assert_eq!(lent.step(&mut x, &g), Status::LRE_ERR_INVALID_ARGUMENT);
    assert!(last_error().contains("basis/window"), "{}", last_error());
    lent.sizes[1] += 4;
    assert_eq!(lent.bytes(), before);
}

#[test]
fn batch_sized_state_cannot_be_lent() {
    let opt = CpuOptimizer::<f32>::from_spec("curvature=empirical_fisher; basis=eigen(rank=3)", N)
        .unwrap();
    let err = opt.lent_buffers().unwrap_err();
    assert_eq!(err.status, Status::LRE_ERR_UNSUPPORTED, "{}", err.message);
}

#[test]
fn a_16_bit_window_cannot_be_lent_yet() {
    for spec in ["basis=ggt(storage=bf16)", "basis=ggt(storage=f16)"] {
        let opt = CpuOptimizer::<f32>::from_spec(spec, N).unwrap();
        let err = opt.lent_buffers().unwrap_err();
        assert_eq!(err.status, Status::LRE_ERR_UNSUPPORTED, "{}", err.message);
        assert!(err.message.contains("basis/window"), "{}", err.message);
    }
}

#[test]
fn a_version_1_blob_moves_to_caller_memory_and_resumes_exactly() {
    // tests/data/state-v1.bin: 5 steps of a GGT run with update_freq = 2, so it keeps a
    // pending gradient besides its window (tests/state.rs).
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/state-v1.bin");
    let sample = std::fs::read(path).unwrap();
    let mut owned = CpuOptimizer::<f32>::from_state(&sample).unwrap();
    let n = owned.ndim();
    let mut raw = ptr::null_mut();
    // SAFETY: the blob and its length, and a place for the handle.
    let status = unsafe { lre_optimizer_from_state(sample.as_ptr(), sample.len(), &mut raw) };
    assert_eq!(status, Status::LRE_OK, "{}", last_error());
    let handle = Handle(raw);
    let sizes: Vec<usize> = owned
        .lent_buffers()
        .unwrap()
        .iter()
        .map(|(_, b)| *b)
        .collect();
    assert_eq!(sizes.len(), 2, "the pending gradient and the window");
    let mut lent = lent_state_of(&handle, &sizes);
    let (mut a, mut b) = (vec![0.25f32; n], vec![0.25f32; n]);
    for t in 0..12 {
        let g = gradient(&a, t);
        owned.step(&mut a, &g).unwrap();
        assert_eq!(lent.step(&mut b, &g), Status::LRE_OK, "{}", last_error());
        assert_eq!(bits(&a), bits(&b), "step {t} after resuming the v1 sample");
    }
    assert_eq!(lent.blob(), owned.state());
}

/// Every basis steps in caller memory bit for bit as in its own, from its first step: those
/// that keep several buffers (nystrom, hebbian_learning) or working columns in one matrix, and
/// those that allocate it on their first update (random, hebbian_learning), included — also
/// with their buffers at the other columns they alternate between or kept across updates.
#[test]
fn every_basis_steps_in_caller_memory() {
    let variants = [
        "nystrom(omega_update_freq=3)",
        "random(generate_freq=3)",
        "hebbian_learning(opt=gd)",
    ];
    let members = lre::basis::FAMILY.components().map(|m| m.name);
    for basis in members.chain(variants) {
        let spec = format!("basis={basis}; chain=[adam]");
        lent_matches_owned::<f32>(&spec);
    }
    lent_matches_owned::<f64>("basis=nystrom; chain=[adam]");
}

/// Device memory lent to a host optimizer (a CUDA handler's memory reaching the CPU backend) is
/// refused with an error naming the buffer, never read as a host slice.
#[test]
fn a_host_backend_refuses_lent_device_memory() {
    use lre::backend::{Backend, Cpu, LentMemory};
    let be = Cpu::<f32>::new(4, 1);
    let device = || LentMemory::Device {
        address: 0x1000,
        bytes: 32,
    };
    let errors = [
        be.lend_matrix(device(), "basis/window").err(),
        be.lend_vectors(device(), "basis/window").err(),
    ];
    for e in errors {
        let e = e.expect("device memory refused");
        assert_eq!(e.status, Status::LRE_ERR_INVALID_ARGUMENT);
        assert!(
            e.message.contains("basis/window") && e.message.contains("device memory"),
            "{}",
            e.message
        );
    }
}
