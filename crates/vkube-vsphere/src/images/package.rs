//! Image packages as vkube reads them: an OVA (a tar stream from a file or
//! a URL, read once, front to back) or a descriptor with its files in a
//! directory (a loose `.ovf`, or the descriptor vkube generates around a
//! converted disk). Opening one reads the descriptor and, when it comes
//! first, the manifest; the files are read while they upload.

use std::path::{Path, PathBuf};

use vkube_core::images::tar::{self, Entries, Entry, EntryKind};
use vkube_core::images::{FileDigest, ImageError, Manifest};

use super::stream::{ByteReader, TransferProgress};
use crate::error::{Error, Result};

/// Largest descriptor or manifest vkube reads into memory.
const MAX_TEXT: u64 = 16 << 20;

/// An image package problem as this crate's error (the user's to fix).
pub fn image_error(e: ImageError) -> Error {
    Error::Invalid(e.to_string())
}

/// An OVA read as a tar stream.
#[derive(Debug)]
pub struct TarStream {
    reader: ByteReader,
    entries: Entries,
    /// Bytes of the current entry (data and padding) not consumed yet.
    remaining: u64,
    ended: bool,
}

impl TarStream {
    /// Read tar entries from `reader`.
    pub fn new(reader: ByteReader) -> TarStream {
        TarStream {
            reader,
            entries: Entries::default(),
            remaining: 0,
            ended: false,
        }
    }

    /// The next file entry, positioned at its data; `None` at the end.
    pub async fn next_entry(&mut self) -> Result<Option<Entry>> {
        if self.ended {
            return Ok(None);
        }
        self.reader.skip(self.remaining, "an archive entry").await?;
        self.remaining = 0;
        loop {
            let block = self.read_block().await?;
            let Some(block) = block else {
                self.ended = true;
                return Ok(None);
            };
            let header = tar::parse_header(&block).map_err(image_error)?;
            let Some(header) = header else {
                self.ended = true;
                return Ok(None);
            };
            let padded = tar::padded(header.size);
            if tar::is_extension(header.kind) {
                if header.size > tar::MAX_EXTENSION {
                    return Err(image_error(ImageError::CorruptArchive(
                        "an extension header is impossibly large".into(),
                    )));
                }
                let data = self
                    .reader
                    .exact(header.size as usize, "an extension header")
                    .await?;
                self.reader
                    .skip(padded - header.size, "an extension header")
                    .await?;
                self.entries
                    .extension(&header, &data)
                    .map_err(image_error)?;
                continue;
            }
            let entry = self.entries.entry(header);
            if entry.kind != EntryKind::File {
                self.reader.skip(padded, "an archive entry").await?;
                continue;
            }
            self.remaining = tar::padded(entry.size);
            return Ok(Some(entry));
        }
    }

    /// A header block, `None` when the stream ends cleanly before one.
    async fn read_block(&mut self) -> Result<Option<[u8; tar::BLOCK]>> {
        let mut block = [0u8; tar::BLOCK];
        let mut filled = 0;
        while filled < tar::BLOCK {
            match self.reader.chunk((tar::BLOCK - filled) as u64).await? {
                Some(chunk) => {
                    block[filled..filled + chunk.len()].copy_from_slice(&chunk);
                    filled += chunk.len();
                }
                None if filled == 0 => return Ok(None),
                None => return Err(self.reader.ended_early("an archive header")),
            }
        }
        Ok(Some(block))
    }

    /// The current entry's data as text (descriptors, manifests).
    pub async fn read_text(&mut self, entry: &Entry) -> Result<String> {
        if entry.size > MAX_TEXT {
            return Err(Error::Invalid(format!(
                "`{}` in the OVA is {} bytes, too large for a descriptor or manifest",
                entry.name, entry.size
            )));
        }
        let data = self
            .reader
            .exact(entry.size as usize, &format!("`{}`", entry.name))
            .await?;
        self.remaining -= entry.size;
        String::from_utf8(data)
            .map_err(|_| Error::Invalid(format!("`{}` in the OVA is not UTF-8 text", entry.name)))
    }

    /// The reader, positioned at the current entry's data. Call
    /// [`TarStream::consumed`] with what was read from it.
    pub fn reader(&mut self) -> &mut ByteReader {
        &mut self.reader
    }

    /// `n` bytes of the current entry's data were read through [`TarStream::reader`].
    pub fn consumed(&mut self, n: u64) {
        self.remaining = self.remaining.saturating_sub(n);
    }

    /// Hash the current entry's data without keeping it.
    pub async fn digest_entry(
        &mut self,
        entry: &Entry,
        progress: &dyn TransferProgress,
    ) -> Result<FileDigest> {
        let mut digest = FileDigest::default();
        let mut left = entry.size;
        while left > 0 {
            let chunk = self
                .reader
                .chunk(left)
                .await?
                .ok_or_else(|| self.reader.ended_early(&format!("`{}`", entry.name)))?;
            left -= chunk.len() as u64;
            digest.update(&chunk);
            progress.advance(chunk.len() as u64);
        }
        self.remaining -= entry.size;
        Ok(digest)
    }

    /// Read to the end of the source; returns its SHA-256.
    pub async fn finish(&mut self) -> Result<String> {
        while self.next_entry().await?.is_some() {}
        self.reader.drain().await?;
        Ok(self.reader.sha256())
    }
}

/// Where a package's files are.
#[derive(Debug)]
pub enum Body {
    /// The rest of an OVA.
    Tar(Box<TarStream>),
    /// Files next to the descriptor.
    Directory(PathBuf),
}

/// An opened package.
#[derive(Debug)]
pub struct Package {
    /// The descriptor's text.
    pub descriptor: String,
    /// The descriptor's name (inside the OVA, or its file name).
    pub descriptor_name: String,
    /// The manifest, when the package has one (read later when an OVA
    /// stores it after the disks).
    pub manifest: Option<Manifest>,
    /// Where the files are.
    pub body: Body,
}

fn is_descriptor(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".ovf")
}

fn is_manifest(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".mf")
}

/// Open an OVA stream: the descriptor must be its first file (OVF 1.x and
/// 2.x say so, and it is what lets an OVA stream); a manifest right after
/// it is read too.
pub async fn open_ova(reader: ByteReader) -> Result<Package> {
    let source = reader.name().to_string();
    let mut stream = TarStream::new(reader);
    let first = stream.next_entry().await?.ok_or_else(|| {
        image_error(ImageError::CorruptArchive(format!(
            "`{source}` holds no files"
        )))
    })?;
    if !is_descriptor(&first.name) {
        return Err(image_error(ImageError::CorruptArchive(format!(
            "its first file is `{}`, not the `.ovf` descriptor an OVA starts with",
            first.name
        ))));
    }
    let descriptor = stream.read_text(&first).await?;
    Ok(Package {
        descriptor,
        descriptor_name: first.name,
        manifest: None,
        body: Body::Tar(Box::new(stream)),
    })
}

/// Open a descriptor with its files in the same directory; its manifest
/// is the `.mf` of the same stem, when there is one.
pub async fn open_directory(descriptor_path: &Path) -> Result<Package> {
    let shown = descriptor_path.display().to_string();
    let descriptor = read_small_file(descriptor_path).await?;
    let manifest_path = descriptor_path.with_extension("mf");
    let manifest = match tokio::fs::try_exists(&manifest_path).await {
        Ok(true) => {
            Some(Manifest::parse(&read_small_file(&manifest_path).await?).map_err(image_error)?)
        }
        _ => None,
    };
    Ok(Package {
        descriptor,
        descriptor_name: descriptor_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(shown),
        manifest,
        body: Body::Directory(
            descriptor_path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        ),
    })
}

async fn read_small_file(path: &Path) -> Result<String> {
    let name = path.display().to_string();
    let mut reader = ByteReader::open_file(path).await?;
    let mut text = Vec::new();
    while let Some(chunk) = reader.chunk(MAX_TEXT + 1).await? {
        text.extend_from_slice(&chunk);
        if text.len() as u64 > MAX_TEXT {
            return Err(Error::Invalid(format!(
                "`{name}` is too large for a descriptor"
            )));
        }
    }
    String::from_utf8(text).map_err(|_| Error::Invalid(format!("`{name}` is not UTF-8 text")))
}

/// What a full pass over a local OVA found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedOva {
    /// SHA-256 of the whole file.
    pub sha256: String,
    /// Whether it had a manifest (every file then matched it).
    pub manifest: bool,
    /// Files and their sizes.
    pub files: Vec<(String, u64)>,
}

/// Read a whole OVA once before importing it: every file is checked against
/// the manifest (wherever the manifest is stored), and the archive must be
/// complete. Nothing is created in vCenter until this passes.
pub async fn verify_ova(path: &Path, progress: &dyn TransferProgress) -> Result<VerifiedOva> {
    let size = tokio::fs::metadata(path)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    progress.begin(&format!("verifying {}", path.display()), size);
    let mut stream = TarStream::new(ByteReader::open_file(path).await?);
    let mut digests: Vec<(String, u64, FileDigest)> = Vec::new();
    let mut manifest = None;
    while let Some(entry) = stream.next_entry().await? {
        if is_manifest(&entry.name) {
            let text = stream.read_text(&entry).await?;
            manifest = Some(Manifest::parse(&text).map_err(image_error)?);
            continue;
        }
        let digest = stream.digest_entry(&entry, progress).await?;
        digests.push((entry.name, entry.size, digest));
    }
    let sha256 = stream.finish().await?;
    if digests.is_empty() {
        return Err(image_error(ImageError::CorruptArchive(format!(
            "`{}` holds no files",
            path.display()
        ))));
    }
    if !is_descriptor(&digests[0].0) {
        return Err(image_error(ImageError::CorruptArchive(format!(
            "its first file is `{}`, not the `.ovf` descriptor an OVA starts with",
            digests[0].0
        ))));
    }
    if let Some(manifest) = &manifest {
        for (name, _, digest) in &digests {
            if name.to_ascii_lowercase().ends_with(".cert") {
                continue;
            }
            manifest.verify(name, digest).map_err(image_error)?;
        }
    }
    Ok(VerifiedOva {
        sha256,
        manifest: manifest.is_some(),
        files: digests.into_iter().map(|(n, s, _)| (n, s)).collect(),
    })
}
