//! The optimizer: one curvature, one basis and an inner chain over a [`Backend`].
//!
//! * `step.rs` — the step loop (docs/algorithm.md §1.3) in two phases, `begin` and `finish`, and
//!   the one-call steps built on them (plain, with an HVP callback, batch);
//! * `checkpoint.rs` — saving and loading the complete state.

mod approximation;
mod checkpoint;
mod complement;
mod diagonal_adam;
#[cfg(feature = "cuda")]
mod gpu;
mod graft;
mod layout;
mod lent;
mod step;
mod warmup;

pub use lent::too_small;

pub use approximation::Current;
#[cfg(feature = "cuda")]
pub use gpu::CudaOptimizer;
pub use layout::declare;

use crate::backend::cpu::VectorStorage;
use crate::backend::{AllReduce, Backend, Cpu, Reducer, Scalar, Shard};
use crate::basis::{self, Basis};
use crate::component::Component;
use crate::curvature::{self, Curvature};
use crate::error::{Error, Result, Status};
use crate::inner::{self, Chain};
use crate::rng::Rng;
use crate::spec::{Config, Device};
use crate::state::layout::Layout;
use step::{Pending, Scratch};

/// An LRE optimizer on backend `B`.
pub struct Optimizer<B: Backend> {
    config: Config,
    backend: B,
    curvature: Box<dyn Curvature<B>>,
    basis: Box<dyn Basis<B>>,
    chain: Chain,
    rng: Rng,
    /// Steps taken (init steps included).
    step: u64,
    /// k used by the chain in the last step (0 before the first).
    last_rank: usize,
    /// Buffers of the step in progress (not state).
    scratch: Scratch<B>,
    /// The step between `begin` and `finish`, if any.
    pending: Option<Pending>,
    /// The loss set for the next step (curvatures that need it).
    loss: Option<f64>,
    /// The eigenvalues the chain saw in the last step.
    last_eigenvalues: Vec<f64>,
    /// Why the last basis update was skipped (the previous basis was kept), if it was.
    last_basis_failure: Option<String>,
    /// Whether a chain member needs projected Hessian samples / Jacobians (they cost passes
    /// over the basis, so they are formed only when used).
    chain_needs_hessian: bool,
    chain_needs_jacobian: bool,
    /// Every buffer this optimizer can keep, as its components declare them.
    layout: Layout,
    /// The diagonal Adam of the `diagonal` and `warmup` options (None without them).
    diagonal: Option<diagonal_adam::DiagonalAdam>,
}

/// The CPU optimizer for element type `T` (f32 or f64).
pub type CpuOptimizer<T> = Optimizer<Cpu<T>>;

/// A CPU optimizer that can keep its n-sized state in caller memory (`lent.rs`).
pub type LentOptimizer<T> = Optimizer<Cpu<T, crate::backend::cpu::Storage<T>>>;

impl<T: Scalar, V: VectorStorage<T>> Optimizer<Cpu<T, V>> {
    /// Creates a CPU optimizer for `n` parameters from a spec string (`""` is the default).
    /// The spec's dtype must be `T`.
    pub fn from_spec(spec: &str, n: usize) -> Result<Self> {
        Self::from_config(Config::parse(spec)?, n)
    }

    /// Creates a CPU optimizer for `n` parameters from a parsed configuration. A sharded
    /// configuration (`global_ndim`, `shard_offset`) holds rows `[shard_offset, shard_offset +
    /// n)` of the global parameter vector; n may then be 0.
    pub fn from_config(mut config: Config, n: usize) -> Result<Self> {
        check_dtype::<T>(&config)?;
        if let Device::Cuda(ordinal) = config.device {
            return Err(crate::backend::cuda_refusal(ordinal as usize));
        }
        if !config.sharded() {
            if n == 0 {
                return Err(Error::invalid("ndim = 0; expected ndim >= 1"));
            }
            let backend = Cpu::new(n, config.threads.count(n));
            return Optimizer::new(config, backend);
        }
        let global = config.global_ndim.unwrap_or(n as u64);
        if (config.shard_offset)
            .checked_add(n as u64)
            .is_none_or(|end| end > global)
        {
            return Err(Error::invalid(format!(
                "shard_offset + ndim = {} + {n} exceeds global_ndim = {global}; a shard holds \
                 rows [shard_offset, shard_offset + ndim) of the global vector",
                config.shard_offset
            )));
        }
        let shard = Shard {
            offset: config.shard_offset as usize,
            global: global as usize,
            reducer: Reducer::default(),
        };
        config.global_ndim = Some(global);
        let backend = Cpu::sharded(n, config.threads.count(n), shard);
        Optimizer::new(config, backend)
    }

    /// Threads the n-sized loops use (`threads=auto` resolved when the optimizer was created).
    pub fn threads(&self) -> usize {
        self.backend.threads()
    }
}

impl<B: Backend + 'static> Optimizer<B> {
    /// Creates an optimizer from a parsed configuration on a ready backend.
    pub fn new(config: Config, backend: B) -> Result<Self> {
        let curvature = curvature::build(&config.curvature, config.symmetrize)?;
        let n = backend.ndim();
        // Caps at n (k ≤ n) are global; the n-sized buffers hold this shard's rows.
        let layout = layout::declare(&config, backend.global_ndim());
        if layout
            .vector_bytes(n, crate::elem::ElemType::from(config.dtype))
            .is_none()
        {
            return Err(crate::state::layout::too_large(n));
        }
        if backend.shard().is_some() && ["full_matrix", "identity"].contains(&config.basis.name()) {
            return Err(Error::unsupported(format!(
                "basis {} keeps n-sized host data that is not split by rows; a sharded optimizer \
                 (global_ndim, shard_offset) needs a low-rank basis (ggt, eigen, sketches, …)",
                config.basis.name()
            )));
        }
        if backend.shard().is_some() && config.has_diagonal() {
            return Err(Error::unsupported(
                "diagonal and warmup keep n-sized host moments that are not split by rows yet; a \
                 sharded optimizer (global_ndim, shard_offset) cannot use them",
            ));
        }
        let dims = crate::state::layout::Dims::new(n, 1, config.symmetrize);
        let paired = curvature::state(&config.curvature, &dims).paired;
        basis::ggt::check_pairs(&config.basis, paired)?;
        let basis = basis::build_seeded(&config.basis, (&backend, config.seed))?;
        if curvature.needs_eigenvalues() && !basis.provides_eigenvalues() {
            return Err(Error::spec(format!(
                "curvature {} corrects the current approximation Q·diag(L)·Qᵀ, but basis {} has no \
                 eigenvalues; use a basis with eigenvalues (ggt, full_matrix, …)",
                config.curvature.name(),
                config.basis.name()
            )));
        }
        let mut chain = Chain::default();
        let (mut chain_needs_hessian, mut chain_needs_jacobian) = (false, false);
        for member in &config.chain {
            let member = build_member(
                member,
                basis.as_ref(),
                curvature.as_ref(),
                config.curvature.name(),
            )?;
            chain_needs_hessian |= member.needs_hessian();
            chain_needs_jacobian |= member.needs_jacobian();
            chain.push(member);
        }
        let config_diagonal = config
            .has_diagonal()
            .then(diagonal_adam::DiagonalAdam::default);
        Ok(Optimizer {
            rng: Rng::new(config.seed),
            config,
            backend,
            curvature,
            basis,
            chain,
            step: 0,
            last_rank: 0,
            scratch: Scratch::default(),
            pending: None,
            loss: None,
            last_eigenvalues: Vec::new(),
            last_basis_failure: None,
            chain_needs_hessian,
            chain_needs_jacobian,
            layout,
            diagonal: config_diagonal,
        })
    }

    /// The configuration in use (its `Display` is the canonical spec).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every buffer this optimizer can keep (names as in its state blob), at its largest.
    pub fn state_layout(&self) -> &Layout {
        &self.layout
    }

    /// The most bytes `save_state` can write for this optimizer's configuration and n.
    pub fn state_bound(&self) -> Result<usize> {
        self.layout.blob_bound(
            self.ndim(),
            crate::elem::ElemType::from(self.config.dtype),
            self.config.to_string().len(),
        )
    }

    /// Number of parameters n.
    pub fn ndim(&self) -> usize {
        self.backend.ndim()
    }

    /// Length of the global parameter vector (ndim unless sharded).
    pub fn global_ndim(&self) -> usize {
        self.backend.global_ndim()
    }

    /// Steps taken so far (init steps included).
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Basis size used by the inner chain in the last step (0 before the first).
    pub fn rank(&self) -> usize {
        self.last_rank
    }

    /// What the curvature needs from the caller: HVPs per update step, the loss, per-sample
    /// gradients.
    pub fn requirements(&self) -> curvature::Requirements {
        self.curvature.requirements()
    }

    /// Hessian-vector products per update step.
    pub fn num_probes(&self) -> usize {
        self.curvature.requirements().probes
    }

    /// The regularized eigenvalues handed to the chain in the last step (ascending, `rank()` of
    /// them); an error for bases without eigenvalues.
    pub fn eigenvalues(&self) -> Result<&[f64]> {
        if !self.basis.provides_eigenvalues() {
            return Err(Error::unsupported(format!(
                "basis {} has no eigenvalues",
                self.config.basis.name()
            )));
        }
        Ok(&self.last_eigenvalues)
    }

    /// Why the most recent basis update was skipped (the previous basis was kept), if it was.
    pub fn last_basis_failure(&self) -> Option<&str> {
        self.last_basis_failure.as_deref()
    }

    /// Bytes of n-sized memory held (basis window, curvature history, the gradient copy, and
    /// with `diagonal`/`warmup` their two host f64 moments and work buffers).
    pub fn memory_bytes(&self) -> usize {
        let staging = if self.scratch.grad.is_some() {
            self.backend.matrix_bytes(1)
        } else {
            0
        };
        let diagonal = match (&self.diagonal, self.scratch.has_diagonal_work()) {
            // Moments m, v and the host work (gradient and step) in f64, plus one vector.
            (Some(_), true) => 4 * 8 * self.ndim() + self.backend.matrix_bytes(1),
            _ => 0,
        };
        self.basis.state_bytes(&self.backend)
            + self.curvature.state_bytes(&self.backend)
            + staging
            + diagonal
    }

    /// Registers the all-reduce of a sharded optimizer: it sums a buffer of partial sums in place
    /// across all ranks, every rank receiving the same bits, and returns false if it failed.
    /// An error for an optimizer that is not sharded.
    pub fn set_allreduce(&mut self, sum: AllReduce) -> Result<()> {
        match self.backend.shard() {
            Some(shard) => {
                shard.reducer.set(sum);
                Ok(())
            }
            None => Err(Error::invalid(
                "this optimizer is not sharded: give global_ndim (and shard_offset) in its spec to \
                 use an all-reduce",
            )),
        }
    }

    /// (calls, f64 values) all-reduced since creation; (0, 0) when not sharded.
    pub fn allreduce_traffic(&self) -> (u64, u64) {
        self.backend.shard().map_or((0, 0), |s| s.reducer.traffic())
    }

    /// Sets the learning rate (finite, >= 0); takes effect at the next step.
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        self.config.lr = non_negative("lr", lr)?;
        Ok(())
    }

    /// Sets the decoupled weight decay (finite, >= 0); takes effect at the next step.
    pub fn set_weight_decay(&mut self, weight_decay: f64) -> Result<()> {
        self.config.weight_decay = non_negative("weight_decay", weight_decay)?;
        Ok(())
    }

    /// Appends a member to the inner chain; only before the first step.
    pub fn chain_push(&mut self, component: Component) -> Result<()> {
        if self.step > 0 {
            return Err(Error::new(
                Status::LRE_ERR_CALL_ORDER,
                format!(
                    "the chain can only be changed before the first step; {} steps were taken",
                    self.step
                ),
            ));
        }
        let member = build_member(
            &component,
            self.basis.as_ref(),
            self.curvature.as_ref(),
            self.config.curvature.name(),
        )?;
        self.chain_needs_hessian |= member.needs_hessian();
        self.chain_needs_jacobian |= member.needs_jacobian();
        self.chain.push(member);
        self.config.chain.push(component);
        Ok(())
    }
}

/// An error unless the configuration's dtype is `T`.
fn check_dtype<T: Scalar>(config: &Config) -> Result<()> {
    match config.dtype == T::DTYPE {
        true => Ok(()),
        false => Err(Error::invalid(format!(
            "the spec says dtype={} but this optimizer is for {}",
            config.dtype,
            T::DTYPE
        ))),
    }
}

/// `value` if it is finite and >= 0 (the settable hyperparameters), else an error naming `key`.
fn non_negative(key: &str, value: f64) -> Result<f64> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(Error::invalid(format!(
            "{key} = {value}; expected a finite number >= 0"
        )))
    }
}

/// Builds a chain member and checks that `basis` and `curvature` give it what it needs.
fn build_member<B: Backend>(
    component: &Component,
    basis: &dyn Basis<B>,
    curvature: &dyn Curvature<B>,
    curvature_name: &str,
) -> Result<Box<dyn inner::Inner>> {
    let member = inner::build(component)?;
    if member.needs_hessian() && curvature.requirements().probes == 0 {
        return Err(Error::spec(format!(
            "inner optimizer {} needs Hessian-vector products, which curvature {} does not compute; \
             use a Hessian curvature (full_hutchinson_hessian, bfgs, sr1)",
            component.name(),
            curvature_name
        )));
    }
    if member.needs_jacobian() && !curvature.provides_jacobian() {
        return Err(Error::spec(format!(
            "inner optimizer {} needs per-sample Jacobians, which curvature {} does not provide; \
             use empirical_fisher or gauss_newton",
            component.name(),
            curvature_name
        )));
    }
    if member.needs_eigenvalues() && !basis.provides_eigenvalues() {
        return Err(Error::spec(format!(
            "inner optimizer {} divides by the basis's eigenvalues, but this basis has none; use a basis \
             with eigenvalues (ggt, full_matrix)",
            component.name()
        )));
    }
    Ok(member)
}
