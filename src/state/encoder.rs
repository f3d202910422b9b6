//! Writing a state blob to any `io::Write`, streaming (n-sized buffers go out a column at a
//! time), with the CRC-32 computed on the way — or only counting its bytes.

use super::{FORMAT_VERSION, MAGIC, le_bytes};
use crate::elem::Dtype;
use crate::elem::{ElemType, Element};
use std::io::{self, Write};

/// Writes the header and named buffers; `finish` appends the checksum.
pub struct Encoder<'w> {
    /// None: only count the bytes (the size of a blob without producing it).
    out: Option<&'w mut dyn Write>,
    crc: crc32fast::Hasher,
    written: u64,
    prefix: Vec<String>,
    error: Option<io::Error>,
    /// Whether n-sized buffers held in caller memory are written as slots, not data (a small
    /// state).
    lending: bool,
}

impl<'w> Encoder<'w> {
    /// Starts a blob: magic, format version, library version, spec, n, dtype.
    pub fn new(out: &'w mut dyn Write, spec: &str, n: usize, dtype: Dtype) -> Self {
        Self::start(Some(out), spec, n, dtype)
    }

    /// An encoder of a small state: n-sized buffers in caller memory are written as the slots
    /// they occupy there (`put_lent`), everything else as in `new`.
    pub fn lending(out: &'w mut dyn Write, spec: &str, n: usize, dtype: Dtype) -> Self {
        Encoder {
            lending: true,
            ..Self::start(Some(out), spec, n, dtype)
        }
    }

    /// Whether this encoder writes a small state.
    pub fn is_lending(&self) -> bool {
        self.lending
    }

    /// An encoder that only counts: `finish` returns the size the blob would have.
    pub fn counting(spec: &str, n: usize, dtype: Dtype) -> Self {
        Self::start(None, spec, n, dtype)
    }

    fn start(out: Option<&'w mut dyn Write>, spec: &str, n: usize, dtype: Dtype) -> Self {
        let mut enc = Encoder {
            out,
            crc: crc32fast::Hasher::new(),
            written: 0,
            prefix: Vec::new(),
            error: None,
            lending: false,
        };
        enc.raw(MAGIC);
        enc.raw(&FORMAT_VERSION.to_le_bytes());
        enc.string(crate::VERSION);
        enc.string(spec);
        enc.raw(&(n as u64).to_le_bytes());
        enc.raw(&[match dtype {
            Dtype::F32 => 1,
            Dtype::F64 => 2,
        }]);
        enc
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.written += bytes.len() as u64;
        let Some(out) = self.out.as_mut() else {
            return;
        };
        if self.error.is_some() {
            return;
        }
        self.crc.update(bytes);
        if let Err(e) = out.write_all(bytes) {
            self.error = Some(e);
        }
    }

    fn string(&mut self, s: &str) {
        self.raw(&(s.len() as u32).to_le_bytes());
        self.raw(s.as_bytes());
    }

    /// Names written from now on start with `prefix/`.
    pub fn push(&mut self, prefix: &str) {
        self.prefix.push(prefix.to_string());
    }

    pub fn pop(&mut self) {
        self.prefix.pop();
    }

    fn header(&mut self, name: &str, elem: ElemType, shape: &[usize]) {
        self.tagged_header(super::TAG_BUFFER, name, elem, shape);
    }

    fn tagged_header(&mut self, tag: u8, name: &str, elem: ElemType, shape: &[usize]) {
        let mut full = self.prefix.join("/");
        if !full.is_empty() {
            full.push('/');
        }
        full.push_str(name);
        self.raw(&[tag]);
        self.string(&full);
        self.raw(&[elem as u8, shape.len() as u8]);
        for &d in shape {
            self.raw(&(d as u64).to_le_bytes());
        }
    }

    fn data<R: bytemuck::Pod>(&mut self, data: &[R]) {
        self.raw(&le_bytes(data));
    }

    /// A buffer of the given shape (row-major) and data.
    pub fn put<E: Element>(&mut self, name: &str, shape: &[usize], data: &[E]) {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len(), "{name}: shape");
        self.header(name, E::TYPE, shape);
        self.data(data);
    }

    /// A scalar u64.
    pub fn put_u64(&mut self, name: &str, value: u64) {
        self.put(name, &[], &[value]);
    }

    /// A `rows × cols` buffer written one row at a time by `row(i, out)` (for n-sized columns
    /// that live on a device: only one row is on the host at once).
    pub fn put_rows<E: Element>(
        &mut self,
        name: &str,
        rows: usize,
        cols: usize,
        row: impl FnMut(usize, &mut [E]),
    ) {
        self.put_rows_as(name, E::TYPE, rows, cols, row);
    }

    /// `put_rows` for element type `elem` held as `R` (a 16-bit storage format as its bits).
    pub fn put_rows_as<R: bytemuck::Pod>(
        &mut self,
        name: &str,
        elem: ElemType,
        rows: usize,
        cols: usize,
        mut row: impl FnMut(usize, &mut [R]),
    ) {
        debug_assert_eq!(
            std::mem::size_of::<R>(),
            elem.size(),
            "{name}: element size"
        );
        self.header(name, elem, &[rows, cols]);
        if self.out.is_none() {
            self.written += (rows * cols * elem.size()) as u64;
            return;
        }
        let mut buffer = vec![R::zeroed(); cols];
        for i in 0..rows {
            row(i, &mut buffer);
            self.data(&buffer);
        }
    }

    /// A `rows × cols` buffer whose row i is slot `slots[i]` of caller memory (a small state:
    /// only the slots are written).
    pub fn put_lent<E: Element>(&mut self, name: &str, cols: usize, slots: &[usize]) {
        debug_assert!(self.lending, "{name}: put_lent outside a small state");
        self.tagged_header(super::TAG_LENT, name, E::TYPE, &[slots.len(), cols]);
        for &slot in slots {
            self.raw(&(slot as u64).to_le_bytes());
        }
    }

    /// Appends the end tag and the checksum; returns the blob's length.
    pub fn finish(mut self) -> io::Result<u64> {
        self.raw(&[super::TAG_END]);
        let crc = self.crc.clone().finalize();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if let Some(out) = self.out.as_mut() {
            out.write_all(&crc.to_le_bytes())?;
        }
        Ok(self.written + 4)
    }
}
