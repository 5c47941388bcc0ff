//! A cloneable blocking TCP stream that `erl_dist`'s async API can drive.
//!
//! `erl_dist` is written against `futures` I/O traits and wants a `Clone` stream
//! (one clone reads, one writes). The collector talks to a node from plain
//! threads, so this adapter performs ordinary blocking reads and writes inside
//! `poll_*` and is driven with `futures::executor::block_on`.

use futures::io::{AsyncRead, AsyncWrite};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A shared blocking stream.
#[derive(Clone, Debug)]
pub struct BlockingStream(Arc<TcpStream>);

impl BlockingStream {
    pub fn new(stream: TcpStream) -> BlockingStream {
        BlockingStream(Arc::new(stream))
    }

    pub fn inner(&self) -> &TcpStream {
        &self.0
    }
}

impl AsyncRead for BlockingStream {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready((&*self.0).read(buf))
    }
}

impl AsyncWrite for BlockingStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready((&*self.0).write(buf))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready((&*self.0).flush())
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.0.shutdown(std::net::Shutdown::Both))
    }
}
