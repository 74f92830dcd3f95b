//! Layers fetched, verified and unpacked as one stream per layer, several layers at a time.
//!
//! Each layer is one job on a small pool of threads ([`WORKERS`]). A job that unpacks runs as
//! two threads joined by a bounded [`pipe`]:
//! - the producer reads the blob through a [`Source`]: the registry's response, every byte of
//!   which is written into a blob-store [`Ingest`] (hashed on the way), or the blob already in
//!   the store; it decompresses it (gzip or zstd, told by the magic number) into the pipe,
//!   then reads the rest of the blob (the digest covers every byte, also after the end of the
//!   compressed stream) and verifies digest and size;
//! - the job's thread untars the pipe with [`berth_layer::unpack`] (hashing the tar for the
//!   diff ID) into `layers/.tmp-*`, then checks the diff ID.
//!
//! So a layer is downloaded, stored, decompressed and unpacked in one pass, one big layer
//! keeps two cores busy, and nothing is held whole in memory (a pipe holds at most
//! [`PIPE_CHUNKS`] × [`PIPE_CHUNK`] bytes). A job that only fetches (the layer directory is
//! there already) streams the blob into the store.
//!
//! Nothing is put in place by a job: it returns a [`Staged`] layer (a verified, synced blob in
//! `content/ingest/` and an unpacked tree in `layers/.tmp-*`), and the caller commits every
//! staged layer once *all* jobs succeeded. The first failure cancels the other jobs (their
//! sources fail at the next read) and every temporary is removed when dropped, so a failed
//! pull leaves the store as it was.
//!
//! Errors name the cause, not its symptom: a download that breaks off is a registry error
//! (the connection closed before the end, with how far it got, or the transport's error), a
//! blob that does not hash to its digest is a blob-store error (when decompression or untar
//! fails, the blob is read to its end first, to tell a corrupt download from a bad layer),
//! and only a blob that matches its digest can make a layer error.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use berth_registry::{Client, Reference};
use berth_store::{BlobStore, Digest, Ingest, Verified};

use super::{PullEvent, pipe};
use crate::{Error, Result};

/// Layers handled at the same time.
pub(crate) const WORKERS: usize = 4;

/// One layer to bring into the store.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The (compressed) layer blob.
    pub(crate) digest: Digest,
    /// Its size as the manifest announces it.
    pub(crate) size: u64,
    /// The diff ID the image config gives it.
    pub(crate) diff_id: Digest,
    /// The blob must be downloaded (it is not in the store).
    pub(crate) fetch: bool,
    /// The layer must be unpacked (its directory is not there).
    pub(crate) unpack: bool,
}

/// Where the layers come from and go.
pub(crate) struct Ctx<'a> {
    pub(crate) blobs: &'a BlobStore,
    /// `<root>/layers`.
    pub(crate) layers: &'a Path,
    /// The registry and repository blobs are fetched from (jobs with `fetch`).
    pub(crate) remote: Option<(&'a Client, &'a Reference)>,
    /// Told how each job is getting on.
    pub(crate) on_event: &'a (dyn Fn(PullEvent) + Sync),
}

/// A layer ready to be put in place: its blob verified (if it was fetched) and its tree
/// unpacked and verified (if it was unpacked). Dropped without [`Staged::commit`], both are
/// removed.
#[derive(Debug)]
pub(crate) struct Staged {
    blob: Option<Verified>,
    layer: Option<TempLayer>,
}

impl Staged {
    /// Whether a layer tree was unpacked.
    pub(crate) fn unpacked(&self) -> bool {
        self.layer.is_some()
    }

    /// Put the blob and the layer directory in place.
    pub(crate) fn commit(self) -> Result<()> {
        if let Some(blob) = self.blob {
            blob.commit()?;
        }
        if let Some(layer) = self.layer {
            layer.commit()?;
        }
        Ok(())
    }
}

/// A layer being unpacked in `layers/.tmp-*`, removed when dropped unless committed.
#[derive(Debug)]
struct TempLayer {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl TempLayer {
    fn new(layers: &Path, dest: PathBuf) -> Result<TempLayer> {
        static N: AtomicU64 = AtomicU64::new(0);
        let tmp = layers.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&tmp).map_err(|source| Error::Io {
            op: "creating",
            path: tmp.clone(),
            cause: source,
        })?;
        Ok(TempLayer {
            tmp,
            dest,
            committed: false,
        })
    }

    /// Rename into place. Another pull may have put the same layer there meanwhile: then
    /// that one stays (it is the same content, verified the same way) and this one goes.
    fn commit(mut self) -> Result<()> {
        match std::fs::rename(&self.tmp, &self.dest) {
            Ok(()) => {
                self.committed = true;
                Ok(())
            }
            Err(_) if self.dest.is_dir() => Ok(()),
            Err(source) => Err(Error::Io {
                op: "storing the layer in",
                path: self.dest.clone(),
                cause: source,
            }),
        }
    }
}

impl Drop for TempLayer {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Run `jobs` on up to [`WORKERS`] threads. Either every job succeeded (their staged
/// layers, in job order) or the first error; after an error the other jobs stop early, and
/// everything they staged is removed.
pub(crate) fn run(ctx: &Ctx<'_>, jobs: &[Job]) -> Result<Vec<Staged>> {
    let next = AtomicUsize::new(0);
    let cancel = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let staged: Mutex<Vec<Option<Staged>>> = Mutex::new(jobs.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs.len().min(WORKERS) {
            s.spawn(|| {
                while !cancel.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    match stage(ctx, job, &cancel) {
                        Ok(st) => {
                            if let Some(slot) = lock(&staged).get_mut(i) {
                                *slot = Some(st);
                            }
                        }
                        Err(e) => {
                            // The error goes in before the flag is raised, so an error caused
                            // by the cancellation can never be the one reported.
                            lock(&first_error).get_or_insert(e);
                            cancel.store(true, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e); // `staged` drops here: temporaries removed
    }
    Ok(staged
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Fetch and/or unpack one layer into temporaries.
///
/// Unpacking runs as two threads joined by a bounded [`pipe`]: this one untars (hashing the
/// tar for the diff ID, writing files), a producer reads the blob (downloading it into the
/// blob store on the way, hashing it) and decompresses it. So one big layer keeps two cores
/// busy, and at most [`PIPE_CHUNKS`] × [`PIPE_CHUNK`] bytes of it are in memory.
fn stage(ctx: &Ctx<'_>, job: &Job, cancel: &AtomicBool) -> Result<Staged> {
    let staged = stage_one(ctx, job, cancel)?;
    (ctx.on_event)(PullEvent::Done {
        digest: job.digest.clone(),
    });
    Ok(staged)
}

fn stage_one(ctx: &Ctx<'_>, job: &Job, cancel: &AtomicBool) -> Result<Staged> {
    let mut src = Source::open(ctx, job, cancel)?;
    if !job.unpack {
        src.drain()?;
        return Ok(Staged {
            blob: src.verify()?,
            layer: None,
        });
    }
    let dest = berth_layer::layer_dir(ctx.layers, &job.diff_id.to_string());
    let tmp = TempLayer::new(ctx.layers, dest)?;
    let (writer, mut reader) = pipe::pipe(PIPE_CHUNKS, PIPE_CHUNK);
    let drain = AtomicBool::new(false);
    let (unpacked, produced) = std::thread::scope(|s| {
        let producer = s.spawn(|| produce(src, writer, job, &drain));
        let unpacked = berth_layer::unpack(&mut reader, &tmp.tmp, berth_layer::Mode::Overlay);
        if matches!(unpacked, Err(berth_layer::Error::Read(_))) {
            // Not a tar (or cut short): the producer reads the blob to its end, so a corrupt
            // download is reported as one rather than as a bad layer.
            drain.store(true, Ordering::Relaxed);
        }
        drop(reader);
        let produced = producer.join().unwrap_or_else(|_| {
            Err(Produced::Failed(Error::Invalid(
                "layer reader panicked".into(),
            )))
        });
        (unpacked, produced)
    });
    let blob = match (unpacked, produced) {
        // The blob's failure (download, digest, decompression) explains the unpacker's.
        (_, Err(Produced::Failed(e))) => return Err(e),
        // The blob decompressed and matches its digest: what the unpacker could not read is
        // the tar itself (its messages would quote the bytes it could not parse).
        (Err(berth_layer::Error::Read(_)), Ok(_)) => {
            return Err(Error::LayerNotTar {
                digest: job.digest.to_string(),
            });
        }
        (Err(e), _) => {
            return Err(Error::Layer {
                digest: job.digest.to_string(),
                cause: e,
            });
        }
        (Ok(_), Err(Produced::Gone)) => {
            return Err(Error::Invalid("the layer stream stopped early".into()));
        }
        (Ok(u), Ok(blob)) => {
            if u.diff_id != job.diff_id.to_string() {
                return Err(Error::DiffIdMismatch {
                    digest: job.digest.to_string(),
                    expected: job.diff_id.to_string(),
                    actual: u.diff_id,
                });
            }
            blob
        }
    };
    Ok(Staged {
        blob,
        layer: Some(tmp),
    })
}

/// Buffers in a layer's pipe.
const PIPE_CHUNKS: usize = 4;
/// Their size.
const PIPE_CHUNK: usize = 256 * 1024;
/// The read buffer in front of the decompressor.
const SOURCE_BUFFER: usize = 128 * 1024;

/// How a producer ended when it did not deliver a verified blob.
enum Produced {
    /// It failed; this is the error to report.
    Failed(Error),
    /// The unpacker went away (it failed, and says why).
    Gone,
}

impl From<Error> for Produced {
    fn from(e: Error) -> Produced {
        Produced::Failed(e)
    }
}

/// The producer of a layer's pipe: read `src` (the stored blob, or the download written into
/// the blob store on the way), decompress it, send the tar into `out`; then read `src` to its
/// end and verify the blob. If the unpacker goes away, stop, unless it asked (`drain`) for the
/// blob to be checked anyway.
fn produce(
    mut src: Source<'_>,
    mut out: pipe::PipeWriter,
    job: &Job,
    drain: &AtomicBool,
) -> std::result::Result<Option<Verified>, Produced> {
    let pumped = pump(&mut src, &mut out);
    match pumped {
        Ok(true) => out.finish(),
        Ok(false) => {
            if !drain.load(Ordering::Relaxed) {
                return Err(Produced::Gone);
            }
        }
        Err(e) => {
            out.fail();
            return Err(Produced::Failed(src.explain(job, e)));
        }
    }
    src.drain()?;
    Ok(src.verify()?)
}

/// Decompress `src` (gzip, zstd or nothing, told by its first bytes) into `out`. `Ok(false)`:
/// the reader went away.
fn pump(src: &mut Source<'_>, out: &mut pipe::PipeWriter) -> io::Result<bool> {
    let mut buffered = io::BufReader::with_capacity(SOURCE_BUFFER, src);
    let head = io::BufRead::fill_buf(&mut buffered)?;
    let mut decoder: Box<dyn Read + '_> = match berth_layer::Compression::detect(head) {
        berth_layer::Compression::None => Box::new(buffered),
        berth_layer::Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        berth_layer::Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?)
        }
    };
    loop {
        let Ok(mut buf) = out.buffer() else {
            return Ok(false);
        };
        let mut len = 0;
        while len < buf.len() {
            match decoder.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if len == 0 {
            return Ok(true);
        }
        if out.send(buf, len).is_err() {
            return Ok(false);
        }
    }
}

/// Why a [`Source`] read failed, kept so the error reported is the real one rather than the
/// decompressor's or tar's view of it.
enum Fault {
    /// Another job failed.
    Cancelled,
    /// Reading the registry's response or the stored blob failed.
    Read(io::Error),
    /// The blob store refused the bytes (more than announced) or could not write them.
    Store(berth_store::Error),
}

/// A layer's compressed bytes: the registry's response, written on the way into an
/// [`Ingest`], or a blob already in the store. Stops with an error once the pull is
/// cancelled.
struct Source<'a> {
    inner: Box<dyn Read + Send + Sync + 'static>,
    ingest: Option<Ingest>,
    cancel: &'a AtomicBool,
    on_event: &'a (dyn Fn(PullEvent) + Sync),
    /// Bytes read so far, and when progress was last reported.
    done: u64,
    reported: u64,
    total: u64,
    fault: Option<Fault>,
    /// The registry (for a download) or the blob's path (stored), for errors.
    origin: Origin,
    digest: Digest,
}

enum Origin {
    Registry(String),
    Stored(PathBuf),
}

/// Read-buffer size for draining the end of a stream.
const DRAIN_BUFFER: usize = 128 * 1024;

/// Progress is reported every this many bytes read (and at the end).
const PROGRESS_EVERY: u64 = 256 * 1024;

impl<'a> Source<'a> {
    fn open(ctx: &Ctx<'a>, job: &Job, cancel: &'a AtomicBool) -> Result<Source<'a>> {
        if job.fetch {
            let (client, r) = ctx
                .remote
                .ok_or_else(|| Error::Store(berth_store::Error::NotFound(job.digest.clone())))?;
            let inner = client.blob_reader(r, &job.digest)?;
            Ok(Source {
                inner,
                ingest: Some(ctx.blobs.ingest(&job.digest, Some(job.size))?),
                cancel,
                on_event: ctx.on_event,
                done: 0,
                reported: 0,
                total: job.size,
                fault: None,
                origin: Origin::Registry(r.registry.clone()),
                digest: job.digest.clone(),
            })
        } else {
            let file = ctx.blobs.open_blob(&job.digest)?;
            Ok(Source {
                inner: Box::new(file),
                ingest: None,
                cancel,
                on_event: ctx.on_event,
                done: 0,
                reported: 0,
                total: job.size,
                fault: None,
                origin: Origin::Stored(ctx.blobs.path(&job.digest)),
                digest: job.digest.clone(),
            })
        }
    }

    /// Read to the end of the stream (what follows the tar: padding, the compressed stream's
    /// trailer, or everything when nothing is unpacked).
    fn drain(&mut self) -> Result<()> {
        let mut buf = vec![0u8; DRAIN_BUFFER];
        loop {
            match self.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.fault_error(e)),
            }
        }
    }

    /// Check the downloaded blob's size and digest (and sync it). `None` for a stored blob.
    fn verify(&mut self) -> Result<Option<Verified>> {
        match self.ingest.take() {
            Some(i) => Ok(Some(i.verify()?)),
            None => Ok(None),
        }
    }

    /// The error to report for a failed read: what this source recorded, else `e`.
    fn fault_error(&mut self, e: io::Error) -> Error {
        match self.fault.take() {
            Some(Fault::Cancelled) => Error::Invalid("pull cancelled: another layer failed".into()),
            Some(Fault::Store(s)) => Error::Store(s),
            Some(Fault::Read(recorded)) => self.read_error(recorded),
            None => self.read_error(e),
        }
    }

    fn read_error(&self, e: io::Error) -> Error {
        match &self.origin {
            Origin::Registry(registry) => {
                Error::Registry(berth_registry::client::Error::reading_blob(
                    registry,
                    &self.digest,
                    self.done,
                    self.total,
                    &e,
                ))
            }
            Origin::Stored(path) => Error::Io {
                op: "reading",
                path: path.clone(),
                cause: e,
            },
        }
    }

    /// The error to report when decompressing failed with `e`. A failed read of this source
    /// is reported as itself. Data that does not decompress is read to its end when it is
    /// being downloaded: if the blob does not match its digest, that is the error (a corrupt
    /// download, not a bad layer).
    fn explain(&mut self, job: &Job, e: io::Error) -> Error {
        if self.fault.is_some() {
            return self.fault_error(e);
        }
        let layer_err = |e| Error::Layer {
            digest: job.digest.to_string(),
            cause: berth_layer::Error::Read(e),
        };
        if self.ingest.is_none() {
            return layer_err(e);
        }
        if let Err(drained) = self.drain() {
            return drained;
        }
        match self.verify() {
            Err(bad_blob) => bad_blob,
            // The blob is what the manifest says: the layer itself is bad. (The verified
            // blob is dropped: a pull that fails stores nothing.)
            Ok(_) => layer_err(e),
        }
    }
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            self.fault = Some(Fault::Cancelled);
            return Err(io::Error::other("pull cancelled"));
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let shown = io::Error::new(e.kind(), e.to_string());
                self.fault = Some(Fault::Read(e));
                return Err(shown);
            }
        };
        if let Some(ingest) = &mut self.ingest
            && let Err(e) = ingest.write_chunk(&buf[..n])
        {
            let shown = io::Error::other(e.to_string());
            self.fault = Some(Fault::Store(e));
            return Err(shown);
        }
        self.done += n as u64;
        if self.done - self.reported >= PROGRESS_EVERY || (n == 0 && self.done > self.reported) {
            self.reported = self.done;
            (self.on_event)(PullEvent::Progress {
                digest: self.digest.clone(),
                done: self.done,
                total: self.total,
                downloading: self.ingest.is_some(),
            });
        }
        Ok(n)
    }
}
