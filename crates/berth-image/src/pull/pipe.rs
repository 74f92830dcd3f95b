//! A bounded in-process pipe of byte chunks between two threads: the thread that downloads
//! and decompresses a layer writes, the thread that unpacks it reads. A fixed number of
//! buffers circulate (full ones to the reader, empty ones back), so memory stays bounded and
//! nothing is allocated per chunk.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError, channel, sync_channel};

/// What the writer sends.
enum Msg {
    /// A buffer and how many of its bytes are data.
    Data(Vec<u8>, usize),
    /// The stream ended cleanly.
    End,
    /// The writer failed (it reports why itself): the reader gets an error.
    Failed,
}

/// A pipe of `chunks` buffers of `chunk_size` bytes.
pub(crate) fn pipe(chunks: usize, chunk_size: usize) -> (PipeWriter, PipeReader) {
    let (full_tx, full_rx) = sync_channel(chunks);
    let (free_tx, free_rx) = channel();
    (
        PipeWriter {
            full: full_tx,
            free: free_rx,
            allocated: 0,
            chunks,
            chunk_size,
        },
        PipeReader {
            full: full_rx,
            free: free_tx,
            current: None,
            eof: false,
        },
    )
}

/// The reader went away: the writer should stop.
#[derive(Debug)]
pub(crate) struct Gone;

/// The writing end.
pub(crate) struct PipeWriter {
    full: SyncSender<Msg>,
    free: Receiver<Vec<u8>>,
    allocated: usize,
    chunks: usize,
    chunk_size: usize,
}

impl PipeWriter {
    /// An empty buffer to fill (waits for the reader to hand one back when all are in use).
    pub(crate) fn buffer(&mut self) -> Result<Vec<u8>, Gone> {
        match self.free.try_recv() {
            Ok(b) => return Ok(b),
            Err(TryRecvError::Disconnected) => return Err(Gone),
            Err(TryRecvError::Empty) => {}
        }
        if self.allocated < self.chunks {
            self.allocated += 1;
            return Ok(vec![0u8; self.chunk_size]);
        }
        self.free.recv().map_err(|_| Gone)
    }

    /// Send the first `len` bytes of `buf` (a buffer from [`PipeWriter::buffer`]).
    pub(crate) fn send(&mut self, buf: Vec<u8>, len: usize) -> Result<(), Gone> {
        self.full.send(Msg::Data(buf, len)).map_err(|_| Gone)
    }

    /// End the stream cleanly.
    pub(crate) fn finish(self) {
        let _ = self.full.send(Msg::End);
    }

    /// End the stream with an error for the reader.
    pub(crate) fn fail(self) {
        let _ = self.full.send(Msg::Failed);
    }
}

/// The reading end. A writer that goes away without [`PipeWriter::finish`] is an error.
pub(crate) struct PipeReader {
    full: Receiver<Msg>,
    free: Sender<Vec<u8>>,
    current: Option<(Vec<u8>, usize, usize)>,
    eof: bool,
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some((buf, len, pos)) = &mut self.current {
                if *pos < *len {
                    let n = out.len().min(*len - *pos);
                    out[..n].copy_from_slice(&buf[*pos..*pos + n]);
                    *pos += n;
                    return Ok(n);
                }
                if let Some((buf, _, _)) = self.current.take() {
                    let _ = self.free.send(buf);
                }
            }
            if self.eof || out.is_empty() {
                return Ok(0);
            }
            match self.full.recv() {
                Ok(Msg::Data(buf, len)) => self.current = Some((buf, len, 0)),
                Ok(Msg::End) => {
                    self.eof = true;
                    return Ok(0);
                }
                Ok(Msg::Failed) | Err(_) => {
                    return Err(io::Error::other("the layer stream failed"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_with_bounded_buffers() {
        let (mut w, mut r) = pipe(2, 1000);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let sent = data.clone();
        let t = std::thread::spawn(move || {
            for chunk in sent.chunks(777) {
                let mut b = w.buffer().unwrap();
                b[..chunk.len()].copy_from_slice(chunk);
                w.send(b, chunk.len()).unwrap();
            }
            assert!(w.allocated <= 2);
            w.finish();
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        t.join().unwrap();
        assert_eq!(got, data);
    }

    #[test]
    fn failures_and_departures_are_seen_on_both_ends() {
        let (mut w, mut r) = pipe(2, 10);
        let b = w.buffer().unwrap();
        w.send(b, 3).unwrap();
        w.fail();
        let mut out = [0u8; 10];
        assert_eq!(r.read(&mut out).unwrap(), 3);
        assert!(r.read(&mut out).is_err());

        let (mut w, r) = pipe(1, 10);
        let b = w.buffer().unwrap();
        drop(r);
        assert!(w.send(b, 1).is_err());
        assert!(w.buffer().is_err());

        // A writer that disappears without finishing is an error, not an end.
        let (w, mut r) = pipe(1, 10);
        drop(w);
        assert!(r.read(&mut out).is_err());
    }
}
