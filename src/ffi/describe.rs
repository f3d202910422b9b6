//! Questions a binding asks instead of parsing the canonical spec: the components in use and the
//! buffers the optimizer's state is made of.

use super::api::copy_out;
use super::guard::guard;
use super::handle::{LreOptimizer, with_optimizer};
use super::pointers::{self, optimizer, out};
use crate::elem::Dtype;
use crate::elem::ElemType;
use crate::error::Error;
use crate::state::layout::{BufferDecl, Extent};
use std::ffi::c_char;

/// Element types (the codes of the state format).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum LreDtype {
    LRE_DTYPE_F32 = 1,
    LRE_DTYPE_F64 = 2,
    LRE_DTYPE_U64 = 3,
    /// bfloat16, as its 16 bits (a window with `storage=bf16`).
    LRE_DTYPE_BF16 = 4,
    /// IEEE binary16 (a window with `storage=f16`).
    LRE_DTYPE_F16 = 5,
}

impl From<ElemType> for LreDtype {
    fn from(e: ElemType) -> LreDtype {
        match e {
            ElemType::F32 => LreDtype::LRE_DTYPE_F32,
            ElemType::F64 => LreDtype::LRE_DTYPE_F64,
            ElemType::U64 => LreDtype::LRE_DTYPE_U64,
            ElemType::Bf16 => LreDtype::LRE_DTYPE_BF16,
            ElemType::F16 => LreDtype::LRE_DTYPE_F16,
        }
    }
}

impl From<Dtype> for LreDtype {
    fn from(d: Dtype) -> LreDtype {
        LreDtype::from(ElemType::from(d))
    }
}

/// What a state buffer's rows are.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum LreBufferKind {
    /// Small host data: `rows` elements, `cols` = 1.
    LRE_BUFFER_HOST = 0,
    /// n-sized: `rows` = n (the parameters' index), `cols` vectors, in the parameters' dtype or,
    /// for a window in a storage format, in `dtype`.
    LRE_BUFFER_VECTORS = 1,
    /// Its size follows the batch of batch steps: `rows` = `cols` = `bytes` = 0.
    LRE_BUFFER_BATCH_SIZED = 2,
    /// n-sized like `LRE_BUFFER_VECTORS`, but kept among the columns of the nearest
    /// `LRE_BUFFER_VECTORS` buffer before it: it has no caller memory of its own.
    LRE_BUFFER_WITHIN = 3,
}

/// Longest buffer name `lre_buffer_info` holds, with its NUL (a literal in the struct, so that
/// the header needs no constant).
const NAME_CAPACITY: usize = 64;

/// One buffer of an optimizer's state, at its largest (`lre_optimizer_state_layout`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct LreBufferInfo {
    /// NUL-terminated name, as in the state blob (e.g. "basis/window").
    pub name: [c_char; 64],
    pub kind: LreBufferKind,
    pub dtype: LreDtype,
    pub rows: u64,
    pub cols: u64,
    /// rows × cols × the element size.
    pub bytes: u64,
}

fn info(decl: &BufferDecl, n: usize, params: ElemType) -> crate::error::Result<LreBufferInfo> {
    let mut name = [0 as c_char; NAME_CAPACITY];
    if decl.name.len() >= NAME_CAPACITY {
        return Err(Error::invalid(format!(
            "state buffer name {} is longer than {} bytes",
            decl.name,
            NAME_CAPACITY - 1
        )));
    }
    for (dst, b) in name.iter_mut().zip(decl.name.bytes()) {
        *dst = b as c_char;
    }
    let elem = decl.elem(params);
    let (kind, rows, cols) = match decl.extent {
        Extent::Vectors(count) | Extent::StoredVectors(_, count) => {
            (LreBufferKind::LRE_BUFFER_VECTORS, n as u128, count)
        }
        Extent::Within(count) => (LreBufferKind::LRE_BUFFER_WITHIN, n as u128, count),
        Extent::Host(_, len) => (LreBufferKind::LRE_BUFFER_HOST, len, 1),
        Extent::BatchSized => (LreBufferKind::LRE_BUFFER_BATCH_SIZED, 0, 0),
    };
    let bytes = rows
        .saturating_mul(cols)
        .saturating_mul(elem.size() as u128);
    let fits = |v: u128| u64::try_from(v).map_err(|_| Error::invalid("a buffer size exceeds 2^64"));
    Ok(LreBufferInfo {
        name,
        kind,
        dtype: elem.into(),
        rows: fits(rows)?,
        cols: fits(cols)?,
        bytes: fits(bytes)?,
    })
}

/// Describes every buffer the optimizer's state can hold, at its largest: the optimizer's own,
/// then the curvature's, the basis's and each chain member's, as the components declare them
/// (`lre_optimizer_state_bound` follows from the same declaration; a saved state holds a subset
/// of these buffers, each no larger). `*len` receives the count; `buf` needs `cap >= *len`. With
/// `buf == NULL` only `*len` is written.
///
/// # Safety
/// `opt` is a live optimizer; `buf` is NULL or valid for `cap` elements; `len` is valid to
/// write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_state_layout(
    opt: *const LreOptimizer,
    buf: *mut LreBufferInfo,
    cap: usize,
    len: *mut usize,
) -> crate::error::Status {
    guard(|| {
        let len = out(len, "len")?;
        // SAFETY: the caller passes a live optimizer.
        let opt = unsafe { optimizer(opt, "opt") }?;
        let infos = with_optimizer!(&*opt, o => {
            let params = ElemType::from(o.config().dtype);
            o.state_layout()
                .buffers
                .iter()
                .map(|b| info(b, o.ndim(), params))
                .collect::<crate::error::Result<Vec<_>>>()
        })?;
        // SAFETY: `buf` is NULL or valid for `cap` elements; `len` was checked by `out`.
        unsafe { copy_out(&infos, buf, cap, len, "buffer descriptions") }
    })
}

/// Writes the canonical name of the optimizer's `"curvature"` or `"basis"` (e.g.
/// "full_hutchinson_hessian") as a NUL-terminated string; `*len` receives its length without
/// the NUL, and `buf` needs `cap >= *len + 1`. With `buf == NULL` only `*len` is written.
///
/// # Safety
/// `opt` is a live optimizer; `family` is NULL or a NUL-terminated string; `buf` is NULL or
/// valid for `cap` bytes; `len` is valid to write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn lre_optimizer_component(
    opt: *const LreOptimizer,
    family: *const c_char,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> crate::error::Status {
    guard(|| {
        let len = out(len, "len")?;
        // SAFETY: the caller passes a live optimizer.
        let opt = unsafe { optimizer(opt, "opt") }?;
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let family = unsafe { pointers::text(family, "family") }?;
        let name = with_optimizer!(&*opt, o => match family {
            "curvature" => Ok(o.config().curvature.name()),
            "basis" => Ok(o.config().basis.name()),
            other => Err(Error::invalid(format!(
                "unknown family \"{other}\"; expected curvature or basis"
            ))),
        })?;
        let mut bytes: Vec<c_char> = name.bytes().map(|b| b as c_char).collect();
        bytes.push(0);
        // SAFETY: `buf` is NULL or valid for `cap` elements; `len` was checked by `out`.
        unsafe { copy_out(&bytes, buf, cap, len, "characters (including the NUL)") }?;
        // SAFETY: as above; report the length without the NUL.
        unsafe { pointers::write(len, name.len()) };
        Ok(())
    })
}
