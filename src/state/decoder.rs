//! Reading a state blob: the checksum and every length are checked against the blob before
//! anything is allocated, so corrupt or hostile input is an `LRE_ERR_STATE`, never a panic or a
//! huge allocation.

use super::{FORMAT_VERSION, MAGIC, TAG_BUFFER, TAG_END, TAG_LENT, read_le_into};
use crate::backend::LentMemory;
use crate::elem::Dtype;
use crate::elem::{ElemType, Element};
use crate::error::{Error, Result, Status};
use std::collections::BTreeMap;

/// Most dimensions a stored buffer may have.
const MAX_RANK: usize = 4;

fn bad(message: impl Into<String>) -> Error {
    Error::new(Status::LRE_ERR_STATE, message)
}

/// A buffer's place in the blob.
struct Entry {
    elem: ElemType,
    shape: Vec<usize>,
    start: usize,
    used: bool,
    /// For a lent buffer: the caller's slot of each row (its data is not in the blob).
    slots: Option<Vec<usize>>,
}

/// A parsed, checksum-verified blob whose buffers components read by name.
pub struct Decoder<'b> {
    bytes: &'b [u8],
    pub format_version: u32,
    pub library_version: String,
    pub spec: String,
    pub n: usize,
    pub dtype: Dtype,
    entries: BTreeMap<String, Entry>,
    prefix: Vec<String>,
    /// Caller memory for n-sized buffers, by full name (taken by the components that use it).
    lent: BTreeMap<String, LentMemory>,
}

/// A cursor over the blob's body that refuses to read past it.
struct Cursor<'b> {
    bytes: &'b [u8],
    pos: usize,
}

impl<'b> Cursor<'b> {
    fn take(&mut self, len: usize, what: &str) -> Result<&'b [u8]> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                bad(format!(
                    "the state is truncated: {what} needs {len} bytes at offset {}",
                    self.pos
                ))
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8 bytes"),
        ))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u32(what)? as usize;
        let raw = self.take(len, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| bad(format!("the state's {what} is not UTF-8")))
    }
}

/// The dtype recorded in a blob's header, read without verifying the rest (to pick the
/// optimizer type before a full `Decoder::new`).
pub fn header_dtype(bytes: &[u8]) -> Result<Dtype> {
    check_magic(bytes)?;
    let mut c = Cursor {
        bytes,
        pos: MAGIC.len(),
    };
    c.u32("format version")?;
    c.string("library version")?;
    c.string("spec")?;
    c.u64("n")?;
    dtype_from_code(c.u8("dtype")?)
}

fn check_magic(bytes: &[u8]) -> Result<()> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad(
            "not an LRE optimizer state (the magic bytes \"LRESTATE\" are missing)",
        ));
    }
    Ok(())
}

fn dtype_from_code(code: u8) -> Result<Dtype> {
    match code {
        1 => Ok(Dtype::F32),
        2 => Ok(Dtype::F64),
        other => Err(bad(format!("unknown dtype code {other} in the state"))),
    }
}

impl<'b> Decoder<'b> {
    /// Verifies the magic, the checksum and the structure of `bytes`.
    pub fn new(bytes: &'b [u8]) -> Result<Self> {
        check_magic(bytes)?;
        if bytes.len() < MAGIC.len() + 8 {
            return Err(bad(format!(
                "the state is truncated ({} bytes)",
                bytes.len()
            )));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
        if crc32fast::hash(body) != stored {
            return Err(bad(
                "the state's checksum does not match: the blob is corrupted or truncated",
            ));
        }
        let mut c = Cursor {
            bytes: body,
            pos: MAGIC.len(),
        };
        let format_version = c.u32("format version")?;
        if format_version == 0 || format_version > FORMAT_VERSION {
            return Err(bad(format!(
                "state format version {format_version} is not readable by this library (version {}, \
                 formats 1..={FORMAT_VERSION}); it was written by a newer LRE",
                crate::VERSION
            )));
        }
        let library_version = c.string("library version")?;
        let spec = c.string("spec")?;
        let n = usize::try_from(c.u64("n")?).map_err(|_| bad("n does not fit this platform"))?;
        let dtype = dtype_from_code(c.u8("dtype")?)?;
        let mut entries = BTreeMap::new();
        loop {
            let lent = match c.u8("buffer tag")? {
                TAG_END => break,
                TAG_BUFFER => false,
                TAG_LENT if format_version >= 2 => true,
                other => return Err(bad(format!("unknown tag {other} at offset {}", c.pos - 1))),
            };
            let name = c.string("buffer name")?;
            let code = c.u8("element type")?;
            let elem = ElemType::from_code(code)
                .ok_or_else(|| bad(format!("buffer {name}: unknown element type {code}")))?;
            let rank = c.u8("rank")? as usize;
            if rank > MAX_RANK {
                return Err(bad(format!("buffer {name}: rank {rank} > {MAX_RANK}")));
            }
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(
                    usize::try_from(c.u64("shape")?)
                        .map_err(|_| bad(format!("buffer {name}: dimension too large")))?,
                );
            }
            let start = c.pos;
            let slots = if lent {
                if rank != 2 {
                    return Err(bad(format!("lent buffer {name}: rank {rank}, expected 2")));
                }
                let rows = shape[0].min(c.bytes.len() / 8);
                let mut slots = Vec::with_capacity(rows);
                for _ in 0..shape[0] {
                    slots.push(
                        usize::try_from(c.u64("slot")?)
                            .map_err(|_| bad(format!("lent buffer {name}: slot too large")))?,
                    );
                }
                Some(slots)
            } else {
                let len = shape
                    .iter()
                    .try_fold(elem.size(), |acc, &d| acc.checked_mul(d))
                    .ok_or_else(|| bad(format!("buffer {name}: size overflows")))?;
                c.take(len, &format!("buffer {name}"))?;
                None
            };
            if entries
                .insert(
                    name.clone(),
                    Entry {
                        elem,
                        shape,
                        start,
                        used: false,
                        slots,
                    },
                )
                .is_some()
            {
                return Err(bad(format!("buffer {name} appears twice")));
            }
        }
        if c.pos != body.len() {
            return Err(bad(format!(
                "{} unexpected bytes after the last buffer",
                body.len() - c.pos
            )));
        }
        Ok(Decoder {
            bytes: body,
            format_version,
            library_version,
            spec,
            n,
            dtype,
            entries,
            prefix: Vec::new(),
            lent: BTreeMap::new(),
        })
    }

    /// Hands the components caller memory for n-sized buffers, by full name ("basis/window").
    pub fn lend(&mut self, name: &str, memory: LentMemory) {
        self.lent.insert(name.to_string(), memory);
    }

    /// The caller memory lent for this buffer, if any (taken: one component holds it).
    pub fn take_lent(&mut self, name: &str) -> Option<LentMemory> {
        let full = self.full_name(name);
        self.lent.remove(&full)
    }

    /// A buffer with caller memory that no component took (its state would live elsewhere).
    pub fn untaken_lent(&self) -> Option<&str> {
        self.lent
            .iter()
            .find(|(_, memory)| !memory.is_empty())
            .map(|(name, _)| name.as_str())
    }

    /// For a buffer whose data is in caller memory: the caller's slot of each row (the entry
    /// counts as read). None for a buffer with its data in the blob, or none at all.
    pub fn lent_slots(&mut self, name: &str) -> Option<Vec<usize>> {
        let full = self.full_name(name);
        let entry = self.entries.get_mut(&full)?;
        let slots = entry.slots.clone()?;
        entry.used = true;
        Some(slots)
    }

    /// The error for reading the data of a buffer that is in caller memory without it.
    fn not_lent(full: &str) -> Error {
        bad(format!(
            "buffer {full} is in caller memory (a small state) and none was lent for it"
        ))
    }

    /// Names read from now on start with `prefix/`.
    pub fn push(&mut self, prefix: &str) {
        self.prefix.push(prefix.to_string());
    }

    pub fn pop(&mut self) {
        self.prefix.pop();
    }

    fn full_name(&self, name: &str) -> String {
        let mut full = self.prefix.join("/");
        if !full.is_empty() {
            full.push('/');
        }
        full.push_str(name);
        full
    }

    /// Every buffer of the blob: full name, element type and shape (in name order).
    pub fn buffers(&self) -> impl Iterator<Item = (&str, ElemType, &[usize])> {
        self.entries
            .iter()
            .map(|(name, e)| (name.as_str(), e.elem, e.shape.as_slice()))
    }

    /// Whether a buffer is present (optional state is simply absent).
    pub fn has(&self, name: &str) -> bool {
        self.entries.contains_key(&self.full_name(name))
    }

    /// The shape of a buffer, if present.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.entries
            .get(&self.full_name(name))
            .map(|e| e.shape.clone())
    }

    fn entry(&mut self, name: &str, elem: ElemType) -> Result<(usize, Vec<usize>)> {
        let full = self.full_name(name);
        let entry = self
            .entries
            .get_mut(&full)
            .ok_or_else(|| bad(format!("the state has no buffer {full}")))?;
        if entry.slots.is_some() {
            return Err(Self::not_lent(&full));
        }
        if entry.elem != elem {
            return Err(bad(format!(
                "buffer {full} holds {}, expected {}",
                entry.elem.name(),
                elem.name()
            )));
        }
        entry.used = true;
        Ok((entry.start, entry.shape.clone()))
    }

    /// A buffer's data and shape.
    pub fn get<E: Element>(&mut self, name: &str) -> Result<(Vec<E>, Vec<usize>)> {
        let (start, shape) = self.entry(name, E::TYPE)?;
        let count: usize = shape.iter().product();
        let mut data = vec![E::default(); count];
        read_le_into(
            &self.bytes[start..start + count * E::TYPE.size()],
            &mut data,
        );
        Ok((data, shape))
    }

    /// A buffer that must have exactly `shape`.
    pub fn get_shaped<E: Element>(&mut self, name: &str, shape: &[usize]) -> Result<Vec<E>> {
        let (data, found) = self.get::<E>(name)?;
        if found != shape {
            return Err(bad(format!(
                "buffer {} has shape {found:?}, expected {shape:?}",
                self.full_name(name)
            )));
        }
        Ok(data)
    }

    /// A scalar u64.
    pub fn get_u64(&mut self, name: &str) -> Result<u64> {
        Ok(self.get_shaped::<u64>(name, &[])?[0])
    }

    /// A `rows × cols` buffer handed to `row(i, data)` one row at a time.
    pub fn get_rows<E: Element>(
        &mut self,
        name: &str,
        cols: usize,
        row: impl FnMut(usize, &[E]),
    ) -> Result<usize> {
        self.get_rows_as(name, E::TYPE, cols, row)
    }

    /// `get_rows` for element type `elem` held as `R` (a 16-bit storage format as its bits).
    pub fn get_rows_as<R: bytemuck::Pod>(
        &mut self,
        name: &str,
        elem: ElemType,
        cols: usize,
        mut row: impl FnMut(usize, &[R]),
    ) -> Result<usize> {
        let (start, shape) = self.entry(name, elem)?;
        if shape.len() != 2 || shape[1] != cols {
            return Err(bad(format!(
                "buffer {} has shape {shape:?}, expected [rows, {cols}]",
                self.full_name(name)
            )));
        }
        let size = elem.size();
        let mut buffer = vec![R::zeroed(); cols];
        for i in 0..shape[0] {
            let at = start + i * cols * size;
            read_le_into(&self.bytes[at..at + cols * size], &mut buffer);
            row(i, &buffer);
        }
        Ok(shape[0])
    }

    /// Fails if any buffer was not read: the blob has state this optimizer does not know.
    pub fn finish(&self) -> Result<()> {
        match self.entries.iter().find(|(_, e)| !e.used) {
            Some((name, _)) => Err(bad(format!(
                "the state has a buffer this optimizer does not use: {name}"
            ))),
            None => Ok(()),
        }
    }
}
