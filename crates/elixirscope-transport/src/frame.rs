//! Length-prefixed frames: `u32` big-endian length, then that many bytes.

use std::io::{self, Read, Write};

/// Largest frame accepted (a batch of big terms; larger means a broken or hostile peer).
pub const MAX_FRAME: usize = 256 << 20;

/// Largest first frame (the hello) accepted from a peer that has not yet shown its token.
pub const MAX_HELLO: usize = 64 << 10;

/// Reads one frame into `buf`. `Ok(false)` means the peer closed cleanly before a frame.
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<bool> {
    read_frame_limited(r, buf, MAX_FRAME)
}

/// Like [`read_frame`], refusing frames over `limit` bytes.
pub fn read_frame_limited(r: &mut impl Read, buf: &mut Vec<u8>, limit: usize) -> io::Result<bool> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let n = u32::from_be_bytes(len) as usize;
    if n > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {n} bytes exceeds the {limit}-byte limit"),
        ));
    }
    buf.clear();
    // Grow as bytes actually arrive rather than trusting the length up front.
    let mut limited = r.take(n as u64);
    let got = limited.read_to_end(buf)?;
    if got != n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame cut short: {got} of {n} bytes"),
        ));
    }
    Ok(true)
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    w.write_all(&out)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"hello").unwrap();
        let mut buf = Vec::new();
        let mut r = &wire[..];
        assert!(read_frame(&mut r, &mut buf).unwrap());
        assert_eq!(buf, b"hello");
        assert!(!read_frame(&mut r, &mut buf).unwrap());
        let huge = (u32::MAX).to_be_bytes();
        assert!(read_frame(&mut &huge[..], &mut buf).is_err());
        let short = [0, 0, 0, 9, 1, 2];
        assert!(read_frame(&mut &short[..], &mut buf).is_err());
    }
}

/// Reads frames across read timeouts: bytes that arrived before a timeout are
/// kept, so a connection can be polled without ever losing its place.
#[derive(Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// Returns the next complete frame, `Ok(None)` if the read timed out first,
    /// or an error (including a clean close, as `UnexpectedEof`).
    pub fn poll(&mut self, r: &mut impl Read, limit: usize) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(frame) = self.take(limit)? {
                return Ok(Some(frame));
            }
            let mut chunk = [0u8; 64 << 10];
            match r.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed",
                    ));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether no partial frame is buffered.
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, limit: usize) -> io::Result<Option<Vec<u8>>> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let n = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if n > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {n} bytes exceeds the {limit}-byte limit"),
            ));
        }
        if self.buf.len() < 4 + n {
            return Ok(None);
        }
        let frame = self.buf[4..4 + n].to_vec();
        self.buf.drain(..4 + n);
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod reader_tests {
    use super::*;

    /// Hands out its bytes a few at a time, with a timeout between each piece.
    struct Trickle(Vec<u8>, usize, bool);
    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.2 = !self.2;
            if self.2 {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "tick"));
            }
            let n = 3.min(out.len()).min(self.0.len() - self.1);
            out[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn frames_survive_timeouts_in_the_middle() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"first frame").unwrap();
        write_frame(&mut wire, b"second").unwrap();
        let mut src = Trickle(wire, 0, false);
        let mut r = FrameReader::default();
        let mut got = Vec::new();
        for _ in 0..100 {
            match r.poll(&mut src, 1024) {
                Ok(Some(f)) => got.push(f),
                Ok(None) => {}
                Err(_) => break,
            }
        }
        assert_eq!(got, vec![b"first frame".to_vec(), b"second".to_vec()]);
    }
}
