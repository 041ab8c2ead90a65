//! Moving image bytes: a source read once, in chunks (a local file or an
//! HTTP response, so an OVA from a URL goes to vCenter without a local
//! copy), and an upload whose body is fed from it while every byte is
//! hashed and counted.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::io::AsyncReadExt;
use vkube_core::images::{FileDigest, Sha256Stream};

use crate::error::{Error, Result};

/// Chunk size for files; HTTP responses arrive in the server's chunks.
const FILE_CHUNK: usize = 256 << 10;
/// Chunks queued ahead of the upload.
const QUEUED_CHUNKS: usize = 2;

/// Hears about bytes as they move. Implementations draw progress bars;
/// every method is cheap and called from the transfer's task.
pub trait TransferProgress: Send + Sync {
    /// A transfer of `total` bytes begins (`label` says what moves).
    fn begin(&self, label: &str, total: u64);
    /// `bytes` more were sent.
    fn advance(&self, bytes: u64);
    /// A line worth showing (a phase starts, a check passed).
    fn note(&self, message: &str);
}

/// Progress that goes nowhere.
pub struct NoTransferProgress;

impl TransferProgress for NoTransferProgress {
    fn begin(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn note(&self, _: &str) {}
}

enum Chunks {
    File(tokio::fs::File),
    Http(reqwest::Response),
}

/// A byte source read front to back once. Keeps the SHA-256 of everything
/// consumed, so the source's checksum is known when it has been read.
pub struct ByteReader {
    chunks: Chunks,
    pending: Bytes,
    consumed: u64,
    whole: Sha256Stream,
    name: String,
}

impl std::fmt::Debug for ByteReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteReader")
            .field("name", &self.name)
            .field("consumed", &self.consumed)
            .finish_non_exhaustive()
    }
}

fn source_error(name: &str, problem: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("cannot read `{name}`: {problem}"))
}

impl ByteReader {
    /// Open a local file.
    pub async fn open_file(path: &Path) -> Result<ByteReader> {
        let name = path.display().to_string();
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::Invalid(format!("`{name}` does not exist")),
                _ => source_error(&name, e),
            })?;
        if file.metadata().await.map(|m| m.is_dir()).unwrap_or(false) {
            return Err(Error::Invalid(format!(
                "`{name}` is a directory, not a file"
            )));
        }
        Ok(ByteReader::new(Chunks::File(file), name))
    }

    /// GET `url` (shown as `shown`, without credentials) and read the body.
    pub async fn open_url(client: &reqwest::Client, url: &str, shown: &str) -> Result<ByteReader> {
        let response = client.get(url).send().await.map_err(|e| {
            Error::Invalid(format!(
                "cannot fetch `{shown}`: {}",
                crate::error::describe_reqwest(&std::sync::Arc::new(e))
            ))
        })?;
        if !response.status().is_success() {
            return Err(Error::Invalid(format!(
                "cannot fetch `{shown}`: the server answered HTTP {}",
                response.status()
            )));
        }
        Ok(ByteReader::new(Chunks::Http(response), shown.to_string()))
    }

    fn new(chunks: Chunks, name: String) -> ByteReader {
        ByteReader {
            chunks,
            pending: Bytes::new(),
            consumed: 0,
            whole: Sha256Stream::default(),
            name,
        }
    }

    /// What is being read, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.consumed
    }

    /// SHA-256 of every byte consumed so far.
    pub fn sha256(&self) -> String {
        self.whole.hex()
    }

    /// Make `pending` non-empty; `false` at the end of the source.
    async fn fill(&mut self) -> Result<bool> {
        while self.pending.is_empty() {
            let next = match &mut self.chunks {
                Chunks::File(file) => {
                    let mut buffer = vec![0u8; FILE_CHUNK];
                    let n = file
                        .read(&mut buffer)
                        .await
                        .map_err(|e| source_error(&self.name, e))?;
                    buffer.truncate(n);
                    (n > 0).then(|| Bytes::from(buffer))
                }
                Chunks::Http(response) => response.chunk().await.map_err(|e| {
                    source_error(
                        &self.name,
                        crate::error::describe_reqwest(&std::sync::Arc::new(e)),
                    )
                })?,
            };
            match next {
                Some(chunk) => self.pending = chunk,
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    fn take(&mut self, n: usize) -> Bytes {
        let chunk = self.pending.split_to(n);
        self.whole.update(&chunk);
        self.consumed += chunk.len() as u64;
        chunk
    }

    /// Up to `max` bytes (at least one unless the source has ended).
    pub async fn chunk(&mut self, max: u64) -> Result<Option<Bytes>> {
        if max == 0 || !self.fill().await? {
            return Ok(None);
        }
        let n = self
            .pending
            .len()
            .min(usize::try_from(max).unwrap_or(usize::MAX));
        Ok(Some(self.take(n)))
    }

    /// Exactly `n` bytes; the source ending first is an error naming `what`.
    pub async fn exact(&mut self, n: usize, what: &str) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.chunk((n - out.len()) as u64).await? {
                Some(chunk) => out.extend_from_slice(&chunk),
                None => return Err(self.ended_early(what)),
            }
        }
        Ok(out)
    }

    /// Consume `n` bytes without keeping them.
    pub async fn skip(&mut self, mut n: u64, what: &str) -> Result<()> {
        while n > 0 {
            match self.chunk(n).await? {
                Some(chunk) => n -= chunk.len() as u64,
                None => return Err(self.ended_early(what)),
            }
        }
        Ok(())
    }

    /// Consume the rest (so [`ByteReader::sha256`] covers the whole source).
    pub async fn drain(&mut self) -> Result<()> {
        while self.chunk(u64::MAX).await?.is_some() {}
        Ok(())
    }

    /// The error for a source that ends inside `what`.
    pub fn ended_early(&self, what: &str) -> Error {
        Error::Invalid(format!(
            "`{}` ends early, inside {what} (at byte {}): the file is truncated or damaged",
            self.name, self.consumed
        ))
    }
}

/// A request body fed through a channel, with its exact length declared
/// (NFC uploads need `Content-Length`). Counts what it hands to the
/// connection, so progress follows the wire, not the queue.
struct ChannelBody {
    chunks: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    size: u64,
    handed: Arc<AtomicU64>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        let handed = self.handed.clone();
        self.chunks.poll_recv(cx).map(|next| {
            next.map(|chunk| {
                chunk.map(|data| {
                    handed.fetch_add(data.len() as u64, Ordering::Relaxed);
                    Frame::data(data)
                })
            })
        })
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.size)
    }
}

/// One upload: where, how much, and how the server wants it.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Target URL.
    pub url: String,
    /// Bytes to send.
    pub size: u64,
    /// `true` for a disk (POST as a streamOptimized VMDK), `false` for a
    /// file the lease creates (PUT with `Overwrite: t`), as NFC expects.
    pub disk: bool,
    /// What is sent, for messages.
    pub label: String,
}

/// Send the next `upload.size` bytes of `reader` to `upload.url`, feeding
/// `digest` and `progress` with every chunk. Dropping the future aborts the
/// transfer (the connection closes; the server sees a short body).
pub async fn send(
    client: &reqwest::Client,
    upload: &Upload,
    reader: &mut ByteReader,
    digest: &mut FileDigest,
    progress: &dyn TransferProgress,
) -> Result<()> {
    let operation = format!("uploading `{}`", upload.label);
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUED_CHUNKS);
    let handed = Arc::new(AtomicU64::new(0));
    let body = reqwest::Body::wrap(ChannelBody {
        chunks: rx,
        size: upload.size,
        handed: handed.clone(),
    });
    let reported = AtomicU64::new(0);
    // Progress hears about bytes the connection has taken.
    let report = || {
        let now = handed.load(Ordering::Relaxed);
        let before = reported.swap(now, Ordering::Relaxed);
        if now > before {
            progress.advance(now - before);
        }
    };
    let request = if upload.disk {
        client
            .post(&upload.url)
            .header("Content-Type", "application/x-vnd.vmware-streamVmdk")
    } else {
        client
            .put(&upload.url)
            .header("Content-Type", "application/octet-stream")
            .header("Overwrite", "t")
    };
    let size = upload.size;
    let label = upload.label.clone();
    let feed = async move {
        let mut left = size;
        while left > 0 {
            let chunk = match reader.chunk(left).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    let err = reader.ended_early(&format!("`{label}`"));
                    let _ = tx.send(Err(io::Error::other(err.to_string()))).await;
                    return Err(err);
                }
                Err(err) => {
                    let _ = tx.send(Err(io::Error::other(err.to_string()))).await;
                    return Err(err);
                }
            };
            left -= chunk.len() as u64;
            digest.update(&chunk);
            let sent = tx.send(Ok(chunk)).await;
            report();
            if sent.is_err() {
                // The request ended early; its error says why.
                break;
            }
        }
        Ok(())
    };
    let (fed, response) = tokio::join!(feed, request.body(body).send());
    report();
    fed?;
    let response = response.map_err(|e| Error::Transport {
        operation: operation.clone(),
        detail: crate::error::describe_reqwest(&std::sync::Arc::new(e)),
    })?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        let text: String = text.trim().chars().take(200).collect();
        return Err(Error::Transport {
            operation,
            detail: format!(
                "HTTP {status}{}",
                if text.is_empty() {
                    String::new()
                } else {
                    format!(": {text}")
                }
            ),
        });
    }
    Ok(())
}
