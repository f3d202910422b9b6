//! The buffers an optimizer keeps, as its components declare them: the one description from
//! which the state bound, the public layout query and the validation of saved blobs follow.
//!
//! Every curvature, basis and inner member has a `state(c, dims)` function next to its
//! constructor that lists its buffers (name, extent, element type) as functions of its
//! parameters and of [`Dims`]. Sizes are counted in `u128`, so no product of two `usize`
//! values can wrap; [`Layout::blob_bound`] converts back with checked arithmetic.

use crate::elem::ElemType;
use crate::error::{Error, Result, Status};

/// What a declaration may depend on besides the component's own parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Number of parameters.
    pub n: usize,
    /// Steps whose gradients are added into one correction.
    pub update_freq: usize,
    /// The optimizer's `symmetrize` setting.
    pub symmetrize: bool,
    /// Most correction columns one update hands the basis (set from the curvature); None when
    /// it follows the batch size of batch steps.
    pub columns: Option<usize>,
    /// Whether corrections arrive as column pairs Y·Zᵀ (set from the curvature).
    pub paired: bool,
    /// Most basis vectors the chain sees, k (set from the basis).
    pub rank: usize,
}

impl Dims {
    /// The dimensions known before any component is declared.
    pub fn new(n: usize, update_freq: usize, symmetrize: bool) -> Dims {
        Dims {
            n,
            update_freq,
            symmetrize,
            columns: Some(0),
            paired: false,
            rank: 0,
        }
    }
}

/// How large a buffer can get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    /// Up to this many vectors of length n in the parameters' dtype (the n-sized state).
    Vectors(u128),
    /// Up to this many vectors of length n in a fixed element type (a GGT window stored in
    /// bf16 or f16).
    StoredVectors(ElemType, u128),
    /// Up to this many vectors of length n in the parameters' dtype, kept among the columns of
    /// the nearest `Vectors` buffer declared before it (one matrix holds both): rows in a
    /// blob, slots of that buffer's caller memory in a small state, no caller memory of their
    /// own.
    Within(u128),
    /// Small host data: up to this many elements of the given type.
    Host(ElemType, u128),
    /// Data whose size follows the batch of a batch step (per-sample Jacobians, corrections as
    /// wide as the batch): no fixed bound exists.
    BatchSized,
}

/// One declared buffer: its full name in the blob ("basis/window") and extent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferDecl {
    pub name: String,
    pub extent: Extent,
}

impl BufferDecl {
    /// Elements of the buffer at its largest.
    pub fn elements(&self, n: usize) -> u128 {
        match self.extent {
            Extent::Vectors(count) | Extent::Within(count) | Extent::StoredVectors(_, count) => {
                count.saturating_mul(n as u128)
            }
            Extent::Host(_, len) => len,
            Extent::BatchSized => 0,
        }
    }

    /// Element type, given the parameters' element type.
    pub fn elem(&self, params: ElemType) -> ElemType {
        match self.extent {
            Extent::Vectors(_) | Extent::Within(_) => params,
            Extent::StoredVectors(elem, _) | Extent::Host(elem, _) => elem,
            Extent::BatchSized => ElemType::F64,
        }
    }
}

/// A list of declared buffers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    pub buffers: Vec<BufferDecl>,
}

/// `a·b` without wrapping (saturates at `u128::MAX`, which no blob can reach).
pub fn cells(a: usize, b: usize) -> u128 {
    (a as u128).saturating_mul(b as u128)
}

impl Layout {
    pub fn new() -> Layout {
        Layout::default()
    }

    fn with(mut self, name: &str, extent: Extent) -> Layout {
        self.buffers.push(BufferDecl {
            name: name.to_string(),
            extent,
        });
        self
    }

    /// Up to `count` n-vectors in the parameters' dtype.
    pub fn vectors(self, name: &str, count: impl Into<u128>) -> Layout {
        self.with(name, Extent::Vectors(count.into()))
    }

    /// Up to `count` n-vectors in the parameters' dtype among the columns of the `Vectors`
    /// buffer declared last (`Extent::Within`).
    pub fn vectors_within(self, name: &str, count: impl Into<u128>) -> Layout {
        self.with(name, Extent::Within(count.into()))
    }

    /// Up to `count` n-vectors of element type `elem` (whatever the parameters' dtype).
    pub fn stored_vectors(self, name: &str, elem: ElemType, count: impl Into<u128>) -> Layout {
        self.with(name, Extent::StoredVectors(elem, count.into()))
    }

    /// Up to `len` f64 values on the host.
    pub fn f64s(self, name: &str, len: impl Into<u128>) -> Layout {
        self.with(name, Extent::Host(ElemType::F64, len.into()))
    }

    /// Up to `len` u64 values on the host (a counter is `u64s(name, 1u8)`).
    pub fn u64s(self, name: &str, len: impl Into<u128>) -> Layout {
        self.with(name, Extent::Host(ElemType::U64, len.into()))
    }

    /// Data that grows with the batch size.
    pub fn batch_sized(self, name: &str) -> Layout {
        self.with(name, Extent::BatchSized)
    }

    /// Appends `inner`'s buffers with `prefix/` before their names.
    pub fn nest(mut self, prefix: &str, inner: Layout) -> Layout {
        self.buffers
            .extend(inner.buffers.into_iter().map(|b| BufferDecl {
                name: format!("{prefix}/{}", b.name),
                extent: b.extent,
            }));
        self
    }

    /// The declaration of the buffer with this full name, if any.
    pub fn find(&self, name: &str) -> Option<&BufferDecl> {
        self.buffers.iter().find(|b| b.name == name)
    }

    /// Bytes of the n-sized buffers at their largest (batch-sized ones left out), if this
    /// platform can address them.
    pub fn vector_bytes(&self, n: usize, params: ElemType) -> Option<usize> {
        let bytes = self
            .buffers
            .iter()
            .filter(|b| matches!(b.extent, Extent::Vectors(_) | Extent::StoredVectors(..)))
            .fold(0u128, |sum, b| {
                sum.saturating_add(b.elements(n).saturating_mul(b.elem(params).size() as u128))
            });
        addressable(bytes)
    }

    /// The most bytes a blob of this layout can take (docs/state-format.md): header with the
    /// canonical spec, each buffer's header (its name, element type and up to two dimensions)
    /// and data, end tag and checksum. `LRE_ERR_UNSUPPORTED` if a buffer follows the batch
    /// size; `LRE_ERR_INVALID_ARGUMENT` naming n if the bound cannot be addressed.
    pub fn blob_bound(&self, n: usize, params: ElemType, spec_len: usize) -> Result<usize> {
        self.bound(n, params, spec_len, false)
    }

    /// The most bytes a small state of this layout can take: as `blob_bound`, with each
    /// n-sized buffer's data replaced by one u64 slot per vector (docs/state-format.md).
    pub fn small_bound(&self, n: usize, params: ElemType, spec_len: usize) -> Result<usize> {
        self.bound(n, params, spec_len, true)
    }

    /// The n-sized buffers caller memory holds in a small state: name and bytes, in order.
    pub fn lent(&self, n: usize, params: ElemType) -> Result<Vec<(&str, usize)>> {
        self.buffers
            .iter()
            .filter(|b| matches!(b.extent, Extent::Vectors(_)))
            .map(|b| {
                let bytes = b.elements(n).saturating_mul(params.size() as u128);
                Ok((
                    b.name.as_str(),
                    addressable(bytes).ok_or_else(|| too_large(n))?,
                ))
            })
            .collect()
    }

    fn bound(&self, n: usize, params: ElemType, spec_len: usize, small: bool) -> Result<usize> {
        if let Some(b) = self.buffers.iter().find(|b| b.extent == Extent::BatchSized) {
            return Err(Error::unsupported(format!(
                "the state buffer {} grows with the batch size of batch steps, so no fixed \
                 state bound exists for this configuration",
                b.name
            )));
        }
        let header = (8 + 4 + 4 + crate::VERSION.len() + 4 + 8 + 1) as u128 + spec_len as u128;
        let buffers = self.buffers.iter().fold(0u128, |sum, b| {
            let head = (1 + 4 + b.name.len() + 1 + 1 + 2 * 8) as u128;
            let data = match b.extent {
                Extent::Vectors(count) | Extent::Within(count) if small => count.saturating_mul(8),
                _ => b.elements(n).saturating_mul(b.elem(params).size() as u128),
            };
            sum.saturating_add(head).saturating_add(data)
        });
        let total = header.saturating_add(buffers).saturating_add(1 + 4);
        addressable(total).ok_or_else(|| too_large(n))
    }
}

/// `bytes` as a size this platform can allocate (at most isize::MAX).
fn addressable(bytes: u128) -> Option<usize> {
    usize::try_from(bytes)
        .ok()
        .filter(|&b| b <= isize::MAX as usize)
}

/// The error for a configuration whose state cannot be addressed at this n.
pub fn too_large(n: usize) -> Error {
    Error::new(
        Status::LRE_ERR_INVALID_ARGUMENT,
        format!(
            "ndim = {n} is too large for this configuration: its largest state would exceed \
             the {} bytes this platform can address",
            isize::MAX
        ),
    )
}
