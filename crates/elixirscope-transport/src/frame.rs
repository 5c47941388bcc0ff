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
