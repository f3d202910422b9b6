//! The versioned, self-describing, checksummed state format (docs/state-format.md).
//!
//! A blob is: magic, format version, library version, canonical spec, n, dtype, a list of named
//! buffers (element type, shape, little-endian data), and a CRC-32 of everything before it.
//! Components write and read their own buffers through [`Encoder`] and [`Decoder`] under a
//! name prefix ("basis/", "chain/0/", …); the optimizer adds its own.

mod decoder;
mod encoder;
pub mod file;
pub mod layout;

pub use decoder::{Decoder, header_dtype};
pub use encoder::Encoder;

/// First bytes of every state blob.
pub const MAGIC: &[u8; 8] = b"LRESTATE";

/// The format version this library writes. Every version it ever wrote stays readable.
/// Version 2 added lent buffers (`TAG_LENT`); a blob without them reads as in version 1.
pub const FORMAT_VERSION: u32 = 2;

/// Writes a small f64 matrix as a `[cols, rows]` buffer (column-major data).
pub fn put_matrix(enc: &mut Encoder<'_>, name: &str, m: &faer::Mat<f64>) {
    let data: Vec<f64> = (0..m.ncols())
        .flat_map(|j| m.col(j).iter().copied().collect::<Vec<_>>())
        .collect();
    enc.put(name, &[m.ncols(), m.nrows()], &data);
}

/// Reads what `put_matrix` wrote; `rows`, if given, must match.
pub fn get_matrix(
    dec: &mut Decoder<'_>,
    name: &str,
    rows: Option<usize>,
) -> crate::error::Result<faer::Mat<f64>> {
    let (data, shape) = dec.get::<f64>(name)?;
    let (cols, nrows) = match shape[..] {
        [c, r] if rows.is_none_or(|want| want == r) => (c, r),
        _ => {
            return Err(crate::error::Error::new(
                crate::error::Status::LRE_ERR_STATE,
                format!(
                    "buffer {name} has shape {shape:?}, expected [cols, {}]",
                    rows.map_or("rows".into(), |r| r.to_string())
                ),
            ));
        }
    };
    Ok(faer::Mat::from_fn(nrows, cols, |i, j| data[j * nrows + i]))
}

/// Tag before each buffer, and after the last one.
pub const TAG_BUFFER: u8 = 1;
pub const TAG_END: u8 = 0;
/// Before a buffer whose data is in caller memory (a small state, docs/state-format.md): its
/// header, then for each of its rows the caller's slot holding it (u64) instead of data.
pub const TAG_LENT: u8 = 2;

/// The little-endian bytes of `data`: a view of its memory on little-endian machines (state
/// blobs of n-sized buffers are hundreds of megabytes; they are not converted element-wise).
pub fn le_bytes<E: bytemuck::Pod>(data: &[E]) -> std::borrow::Cow<'_, [u8]> {
    let bytes: &[u8] = bytemuck::cast_slice(data);
    if cfg!(target_endian = "little") {
        std::borrow::Cow::Borrowed(bytes)
    } else {
        let size = std::mem::size_of::<E>();
        std::borrow::Cow::Owned(
            bytes
                .chunks_exact(size)
                .flat_map(|c| c.iter().rev().copied())
                .collect(),
        )
    }
}

/// Fills `out` from little-endian bytes (`bytes.len()` must be `out`'s size in bytes).
pub fn read_le_into<E: bytemuck::Pod>(bytes: &[u8], out: &mut [E]) {
    let dst: &mut [u8] = bytemuck::cast_slice_mut(out);
    dst.copy_from_slice(bytes);
    if cfg!(target_endian = "big") {
        dst.chunks_exact_mut(std::mem::size_of::<E>())
            .for_each(|c| c.reverse());
    }
}
