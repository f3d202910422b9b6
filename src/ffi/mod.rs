//! The C ABI: the only `unsafe` in the crate (besides a future CUDA backend).
//!
//! * [`guard`] — every export runs inside one panic guard that turns errors and panics into an
//!   `lre_status` and records the thread-local last error message.
//! * [`pointers`] — every raw pointer is checked and converted here, and only here.
//! * [`handle`] — the opaque `lre_optimizer_t` and its dtype dispatch.
//! * [`api`] — the exported functions: handles, parameters, introspection, state;
//! * [`describe`] — what a binding asks instead of parsing the spec: components, state layout;
//! * [`step`] — the step entry points (one-call, split, batch);
//! * [`lent`] — stepping an optimizer whose n-sized state is the caller's memory;
//! * [`allreduce`] — sharded mode: the caller's all-reduce callback;
//! * [`device`] — optimizers on a GPU: device pointers, the caller's stream;
//! * [`xla`] — XLA FFI custom-call handlers for JAX (not part of lre.h).
//!
//! `include/lre.h` is generated from them by cbindgen.

pub mod allreduce;
pub mod api;
pub mod describe;
pub mod device;
pub mod guard;
pub mod handle;
pub mod lent;
pub mod pointers;
pub mod step;
pub mod xla;

/// ABI version of this library; equals `LRE_ABI_VERSION` in the header it was built with.
/// Bumped on any incompatible change of the C API.
pub const LRE_ABI_VERSION: u32 = 1;
