//! The chunk segment files of a block (`chunks/000001`, ...), written as chunks fill.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use super::index::ChunkMeta;
use super::sync_dir;
use crate::error::{Error, Result};

/// Prometheus cuts chunk segment files at 512 MiB.
const SEGMENT_MAX_BYTES: u64 = 512 << 20;

/// The chunk segment files (`chunks/000001`, ...): an 8-byte header, then each chunk as its
/// length, encoding, data and CRC32 Castagnoli (prometheus/tsdb/docs/format/chunks.md).
pub(super) struct Segments {
    dir: PathBuf,
    /// Files are synced as they are closed (see `Builder::durable`).
    durable: bool,
    names: Vec<String>,
    file: Option<BufWriter<File>>,
    offset: u64,
    pub(super) bytes: u64,
}

const CHUNKS_MAGIC: u32 = 0x85BD_40DD;
pub(super) const ENCODING_XOR: u8 = 1;

impl Segments {
    pub(super) fn create(dir: PathBuf, durable: bool) -> Result<Self> {
        std::fs::create_dir_all(&dir).map_err(|source| Error::WriteFile {
            what: "a block's chunks directory",
            path: dir.clone(),
            source,
        })?;
        Ok(Segments {
            dir,
            durable,
            names: Vec::new(),
            file: None,
            offset: 0,
            bytes: 0,
        })
    }

    fn error(&self, source: std::io::Error) -> Error {
        Error::WriteFile {
            what: "a block's chunk file",
            path: self.dir.clone(),
            source,
        }
    }

    /// Appends a chunk (`encoding` as in the chunk files) and says where it is.
    pub(super) fn write(
        &mut self,
        encoding: u8,
        data: &[u8],
        min_t: i64,
        max_t: i64,
    ) -> Result<ChunkMeta> {
        let mut head = Vec::with_capacity(11);
        super::index::uvarint(&mut head, data.len() as u64);
        head.push(encoding);
        let size = (head.len() + data.len() + 4) as u64;
        if self.file.is_none() || self.offset + size > SEGMENT_MAX_BYTES {
            self.cut().map_err(|e| self.error(e))?;
        }
        let reference = ((self.names.len() as u64 - 1) << 32) | self.offset;
        let mut crc = crc32c::crc32c(&[encoding]);
        crc = crc32c::crc32c_append(crc, data);
        let Some(file) = self.file.as_mut() else {
            return Err(Error::Internal("no open chunk segment".into()));
        };
        let written = file
            .write_all(&head)
            .and_then(|()| file.write_all(data))
            .and_then(|()| file.write_all(&crc.to_be_bytes()));
        written.map_err(|e| self.error(e))?;
        self.offset += size;
        self.bytes += size;
        Ok(ChunkMeta {
            min_t,
            max_t,
            reference,
        })
    }

    /// Closes the current segment and opens the next.
    fn cut(&mut self) -> std::io::Result<()> {
        self.close_current()?;
        let name = format!("{:06}", self.names.len() + 1);
        // Chunks are small (a few hundred bytes); large writes cost fewer system calls.
        let mut file = BufWriter::with_capacity(1 << 20, File::create(self.dir.join(&name))?);
        file.write_all(&CHUNKS_MAGIC.to_be_bytes())?;
        file.write_all(&[1, 0, 0, 0])?;
        self.names.push(name);
        self.file = Some(file);
        self.offset = 8;
        self.bytes += 8;
        Ok(())
    }

    fn close_current(&mut self) -> std::io::Result<()> {
        if let Some(file) = self.file.take() {
            let file = file.into_inner().map_err(|e| e.into_error())?;
            if self.durable {
                file.sync_all()?;
            }
        }
        Ok(())
    }

    /// Closes the last segment; the names of all, for meta.json.
    pub(super) fn close(&mut self) -> Result<Vec<String>> {
        self.close_current().map_err(|e| self.error(e))?;
        if self.durable {
            sync_dir(&self.dir).map_err(|e| self.error(e))?;
        }
        Ok(self.names.clone())
    }
}
