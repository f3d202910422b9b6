//! Every operation on n-sized data.
//!
//! The algorithm (curvatures, bases, the step loop) is written once over [`Backend`]; the CPU
//! backend implements it on host memory, a CUDA backend implements it on device memory. Small
//! dense work (k×k, k-vectors) never comes here: it runs on the host in f64 (`linalg`, `inner`).
//!
//! The reductions over n (`column_dots`, `dot`, `gram`, `cross`, the check of `load_checked`)
//! are explicit calls so that a sharded backend all-reduces exactly their outputs (`shard.rs`).

pub mod cpu;
#[cfg(feature = "cuda")]
#[allow(unsafe_code)]
pub mod cuda;
pub mod normal;
pub mod packed;
pub mod scalar;
pub mod shard;
mod tall_qr;

pub use cpu::Cpu;
pub use packed::PackedMatrix;
pub use scalar::Scalar;
pub use shard::{AllReduce, Reducer, Shard};

use crate::elem::ElemType;
use crate::error::{Error, Result};
use faer::{Mat, MatRef};

/// Why a CPU optimizer cannot be created for `device=cuda:ordinal`: what is missing (driver,
/// cuBLAS, device), or that CUDA is not compiled in, or, with a working GPU, that the GPU
/// optimizer is `CudaOptimizer`.
pub fn cuda_refusal(ordinal: usize) -> Error {
    #[cfg(feature = "cuda")]
    {
        cuda::refusal(ordinal)
    }
    #[cfg(not(feature = "cuda"))]
    {
        Error::new(
            crate::error::Status::LRE_ERR_DEVICE,
            format!(
                "device=cuda:{ordinal}: CUDA support was not compiled into this build (cargo \
                 feature \"cuda\")"
            ),
        )
    }
}

/// The error of a backend that cannot step in caller memory.
fn not_lendable(name: &str) -> Error {
    Error::unsupported(format!(
        "state buffer {name}: this backend cannot use caller memory as state"
    ))
}

/// Caller memory lent to an optimizer for one call (see `Backend::lend_matrix`): a host slice,
/// or a range of device memory, which the host must never read through a reference.
pub enum LentMemory {
    Host(&'static mut [u8]),
    Device { address: u64, bytes: usize },
}

impl LentMemory {
    /// Its size in bytes.
    pub fn len(&self) -> usize {
        match self {
            LentMemory::Host(memory) => memory.len(),
            LentMemory::Device { bytes, .. } => *bytes,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The host slice, or why device memory cannot serve a host backend.
    pub fn host(self, name: &str) -> Result<&'static mut [u8]> {
        match self {
            LentMemory::Host(memory) => Ok(memory),
            LentMemory::Device { .. } => Err(Error::invalid(format!(
                "state buffer {name}: device memory was lent to an optimizer on the host"
            ))),
        }
    }
}

/// Why an input vector was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputError {
    /// Entry `index` is NaN or ±Inf (the first such entry).
    NonFinite { index: usize },
    /// Every entry is finite but the sum of squares overflows f64.
    TooLarge,
    /// This rank's rows are fine, another rank's are not (sharded mode): every rank refuses.
    OtherRank,
}

/// n-sized storage and arithmetic. All k-sized inputs and outputs are host `f64` slices.
pub trait Backend: Send + Clone {
    /// Element type of every n-sized buffer (the optimizer's dtype).
    type Elem: Scalar;
    /// An owned n-vector.
    type Vector: Send;
    /// An owned column-major n×cols matrix.
    type Matrix: Send;
    /// A caller's read-only n-vector (a host slice on the CPU).
    type Input<'a>;
    /// A caller's read-write n-vector (a host slice on the CPU).
    type InOut<'a>;

    /// n, the length of every vector.
    fn ndim(&self) -> usize;

    /// The rows of the global vectors this backend holds, if it holds a shard of them.
    fn shard(&self) -> Option<&Shard> {
        None
    }

    /// Length of the global vectors: every decision that depends on n (caps of a rank at n)
    /// uses it, so a sharded optimizer decides as the unsharded one.
    fn global_ndim(&self) -> usize {
        self.shard().map_or(self.ndim(), |s| s.global)
    }

    /// Global row of local row 0.
    fn row_offset(&self) -> usize {
        self.shard().map_or(0, |s| s.offset)
    }

    /// A zero n-vector, or `LRE_ERR_OUT_OF_MEMORY`.
    fn vector(&self) -> Result<Self::Vector>;

    /// A zero n×cols matrix, or `LRE_ERR_OUT_OF_MEMORY`.
    fn matrix(&self, cols: usize) -> Result<Self::Matrix>;

    /// Number of columns of a matrix.
    fn matrix_columns(&self, m: &Self::Matrix) -> usize;

    /// Adds zero columns so `m` has `cols` (existing columns are kept), or
    /// `LRE_ERR_OUT_OF_MEMORY` with `m` unchanged.
    fn grow_matrix(&self, m: &mut Self::Matrix, cols: usize) -> Result<()>;

    /// Bytes held by one matrix with `cols` columns (for memory reports).
    fn matrix_bytes(&self, cols: usize) -> usize {
        self.ndim() * cols * std::mem::size_of::<Self::Elem>()
    }

    /// dst ← src, checking the input: every entry finite and ‖src‖² representable in f64 (so
    /// Gram entries and second moments cannot overflow). On error `dst` is scratch and may be
    /// partly written.
    fn load_checked(&self, src: Self::Input<'_>, dst: &mut Self::Vector) -> Result<(), InputError>;

    /// dst ← src.
    fn copy(&self, src: &Self::Vector, dst: &mut Self::Vector);

    /// dst ← the caller's parameters (to remember them, e.g. for s = x − x_prev).
    fn copy_params(&self, params: &Self::InOut<'_>, dst: &mut Self::Vector);

    /// The caller's parameters ← src (to roll a failed step back).
    fn restore_params(&self, src: &Self::Vector, dst: Self::InOut<'_>);

    /// A shorter-lived copy of a read-write caller vector (so it can be passed on and used again).
    fn reborrow<'s>(&self, y: &'s mut Self::InOut<'_>) -> Self::InOut<'s>;

    /// An owned vector seen as a read-only caller vector (so backend-generic code, such as the
    /// conformance tests, can hand any backend's own buffers to `load_checked`).
    fn as_input<'v>(&self, v: &'v Self::Vector) -> Self::Input<'v>;

    /// An owned vector seen as a read-write "caller" vector, so operations that update
    /// parameters (`add_columns`, `add_host`) can update it too.
    fn as_inout<'v>(&self, v: &'v mut Self::Vector) -> Self::InOut<'v>;

    /// y ← y + α·x.
    fn axpy(&self, alpha: f64, x: &Self::Vector, y: &mut Self::Vector);

    /// x ← α·x.
    fn scale(&self, alpha: f64, x: &mut Self::Vector) {
        self.scale_params(alpha, self.as_inout(x));
    }

    /// y ← α·y for a read-write caller vector (the parameters: decoupled weight decay).
    fn scale_params(&self, alpha: f64, y: Self::InOut<'_>);

    /// M[:, col] ← src.
    fn set_column(&self, m: &mut Self::Matrix, col: usize, src: &Self::Vector);

    /// out[j] ← ⟨M[:, cols[j]], x⟩ for every j (a Gram row or a projection): in f64, or for
    /// f32 data in f32 short blocks summed in f64, within 1e-6·Σ_i |M[i, cols[j]]·x_i|.
    fn column_dots(&self, m: &Self::Matrix, cols: &[usize], x: &Self::Vector, out: &mut [f64]);

    /// ⟨x, y⟩ accumulated in f64.
    fn dot(&self, x: &Self::Vector, y: &Self::Vector) -> f64;

    /// y ← y + Σ_j w[j]·M[:, cols[j]], one rounding per entry of y: combined in f64, or for f32
    /// data in f32 groups of columns summed in f64, within 6e-7·Σ_j |w[j]·M[i, cols[j]]| (plus
    /// p·2⁻¹⁵⁰) before that rounding.
    fn add_columns(&self, m: &Self::Matrix, cols: &[usize], w: &[f64], y: Self::InOut<'_>);

    /// out ← x as f64 on the host (length n).
    fn download(&self, x: &Self::Vector, out: &mut [f64]);

    /// y ← y + w for a host f64 vector w of length n.
    fn add_host(&self, y: Self::InOut<'_>, w: &[f64]);

    /// out ← x exactly, on the host (for saving state).
    fn vector_to_host(&self, x: &Self::Vector, out: &mut [Self::Elem]);

    /// x ← data exactly (for loading state).
    fn vector_from_host(&self, data: &[Self::Elem], x: &mut Self::Vector);

    /// out ← M[:, col] exactly, on the host (for saving state).
    fn column_to_host(&self, m: &Self::Matrix, col: usize, out: &mut [Self::Elem]);

    /// M[:, col] ← data exactly (for loading state).
    fn column_from_host(&self, data: &[Self::Elem], m: &mut Self::Matrix, col: usize);

    /// G ← AᵀA for A = M[:, cols] (p×p, symmetric), accumulated in f64. A reduction over n.
    fn gram(&self, m: &Self::Matrix, cols: &[usize]) -> Mat<f64>;

    /// X ← M[:, left]ᵀ·M[:, right] (|left|×|right|), accumulated in f64. A reduction over n.
    fn cross(&self, m: &Self::Matrix, left: &[usize], right: &[usize]) -> Mat<f64>;

    /// With A = M[:, inputs] as it is before the call: M[:, outputs] ← A·T (T is
    /// |inputs|×|outputs|) and, if `add` is (w, y), y ← y + A·w. One pass over A; every entry is
    /// combined in f64 and rounded once. Outputs are distinct and may be among the inputs (an
    /// in-place change of basis).
    fn combine_columns(
        &self,
        m: &mut Self::Matrix,
        inputs: &[usize],
        t: MatRef<'_, f64>,
        outputs: &[usize],
        add: Option<(&[f64], Self::InOut<'_>)>,
    );

    /// M[i, cols[j]] ← entry i of the standard normal stream j under `key` ([`normal`]): a
    /// function of (key, j, i) alone, i the global row, so the same on every backend, thread
    /// count and shard split.
    fn gaussian_columns(&self, m: &mut Self::Matrix, cols: &[usize], key: u64);

    /// M[:, cols] ← min(max(M[:, cols], −limit), limit), entrywise.
    fn clamp_columns(&self, m: &mut Self::Matrix, cols: &[usize], limit: f64);

    /// An empty matrix of n-vectors stored in the 16-bit `format` (`ElemType::Bf16` or
    /// `ElemType::F16`), or `LRE_ERR_UNSUPPORTED` on a backend without one.
    fn packed_matrix(&self, format: ElemType) -> Result<Box<dyn PackedMatrix<Self>>>
    where
        Self: 'static,
    {
        Err(Error::unsupported(format!(
            "storage={}: windows in 16-bit storage are implemented on the CPU backend only",
            format.name()
        )))
    }

    /// A matrix whose columns are caller memory lent for one call (`memory`: whole n-vectors,
    /// in this backend's element type, suitably aligned), or why not (`name` names the
    /// buffer). Its columns are all usable from the start and it never grows beyond them.
    fn lend_matrix(&self, memory: LentMemory, name: &str) -> Result<Self::Matrix> {
        let _ = memory;
        Err(not_lendable(name))
    }

    /// The n-vectors of lent caller memory (see `lend_matrix`), vector i being slot i.
    fn lend_vectors(&self, memory: LentMemory, name: &str) -> Result<Vec<Self::Vector>> {
        let _ = memory;
        Err(not_lendable(name))
    }

    /// Whether a matrix is lent caller memory.
    fn matrix_is_lent(&self, m: &Self::Matrix) -> bool {
        let _ = m;
        false
    }

    /// The slot of a vector of lent caller memory; None for the backend's own memory.
    fn vector_slot(&self, v: &Self::Vector) -> Option<usize> {
        let _ = v;
        None
    }

    /// Tall QR of A = M[:, cols] (n×p, p ≤ global n): A is replaced by Q with orthonormal columns and
    /// R (p×p, upper triangular) with A = Q·R is returned. CholeskyQR2 on f64 Gram matrices,
    /// with a third pass for ill-conditioned input; a column whose part orthogonal to the
    /// previous ones is below 1e-6 of its norm counts as dependent: its row of R is zero and its
    /// column of Q is an orthonormal completion (`complete`) or zero. See `tall_qr.rs`.
    fn tall_qr(&self, m: &mut Self::Matrix, cols: &[usize], complete: bool) -> Mat<f64> {
        tall_qr::tall_qr(self, m, cols, complete)
    }
}
