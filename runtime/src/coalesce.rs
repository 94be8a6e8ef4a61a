//! Fewer, larger socket writes for the gRPC listeners.
//!
//! h2 sends a DATA frame of 256 bytes or more from the response's own
//! buffer, next to its frame buffer in one vectored write, and it holds
//! one such frame at a time: before it takes the next, it flushes. So a
//! connection with many answers ready writes once per answer (a `ListBooks`
//! page is 2 KiB), and over loopback each `writev` also runs the
//! receiver's side of TCP. [`CoalescedWrites`] gathers what h2 writes while
//! answers keep coming and sends it in one write. (hyperium/h2#902
//! describes the cost; hyperium/h2#903, open, would queue several DATA
//! frames in h2 itself, and this adapter could then go.)
//!
//! The rule that keeps it safe: a flush that follows new bytes is put off,
//! and wakes the connection, so that it is polled again; the bytes are
//! written at the first flush with nothing new before it (the connection
//! has nothing more to send for now), at the latest after
//! [`MAX_DEFERRED_FLUSHES`] flushes put off, or as soon as
//! [`MAX_BUFFERED`] bytes wait. Shutting the connection down writes them
//! first.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// Bytes held before a write, whatever the flushes. A larger write goes
/// through unbuffered.
pub const MAX_BUFFERED: usize = 64 * 1024;

/// Buffer space an idle connection keeps; more is freed once written.
const KEPT_CAPACITY: usize = 16 * 1024;

/// Flushes put off in a row before one writes anyway, however busy the
/// connection: h2 flushes at least once per answer, so a write carries at
/// most this many answers.
pub const MAX_DEFERRED_FLUSHES: u32 = 16;

pin_project_lite::pin_project! {
    /// A connection whose writes are gathered until it has nothing more to
    /// send for now; see the [module](self) documentation.
    #[derive(Debug)]
    pub struct CoalescedWrites<T> {
        #[pin]
        inner: T,
        buffer: Vec<u8>,
        // Of `buffer`, written to `inner` already.
        written: usize,
        // Whether bytes came since the last flush.
        appended: bool,
        // Flushes put off since the last write.
        deferred: u32,
    }
}

impl<T> CoalescedWrites<T> {
    pub fn new(inner: T) -> Self {
        Self { inner, buffer: Vec::new(), written: 0, appended: false, deferred: 0 }
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncWrite> CoalescedWrites<T> {
    /// Writes out everything buffered.
    fn poll_write_buffered(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut this = self.project();
        while *this.written < this.buffer.len() {
            let n = ready!(this.inner.as_mut().poll_write(cx, &this.buffer[*this.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *this.written += n;
        }
        this.buffer.clear();
        if this.buffer.capacity() > KEPT_CAPACITY {
            *this.buffer = Vec::new();
        }
        *this.written = 0;
        *this.deferred = 0;
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes: `Ready(true)` when they go into the
    /// buffer, `Ready(false)` when they are too many and the buffer is
    /// empty, so they go straight to the socket.
    fn poll_room_for(mut self: Pin<&mut Self>, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<bool>> {
        if self.buffer.len() + len > MAX_BUFFERED {
            ready!(self.as_mut().poll_write_buffered(cx))?;
        }
        Poll::Ready(Ok(len <= MAX_BUFFERED))
    }
}

impl<T: AsyncRead> AsyncRead for CoalescedWrites<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for CoalescedWrites<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(data)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = slices.iter().map(|slice| slice.len()).sum();
        if !ready!(self.as_mut().poll_room_for(cx, len))? {
            return self.project().inner.poll_write_vectored(cx, slices);
        }
        let this = self.project();
        for slice in slices {
            this.buffer.extend_from_slice(slice);
        }
        *this.appended = true;
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.as_mut().project();
        if std::mem::take(this.appended) && *this.deferred < MAX_DEFERRED_FLUSHES {
            // More answers may be ready by the connection's next poll, which
            // this wake-up makes sure of; the bytes go out then at the latest.
            *this.deferred += 1;
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        ready!(self.as_mut().poll_write_buffered(cx))?;
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_write_buffered(cx))?;
        self.project().inner.poll_shutdown(cx)
    }
}

impl<T: Connected> Connected for CoalescedWrites<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A socket that records each write it is given.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        shut_down: bool,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
            self.writes.push(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.shut_down = true;
            Poll::Ready(Ok(()))
        }
    }

    fn write(io: &mut CoalescedWrites<Recorder>, cx: &mut Context<'_>, data: &[u8]) {
        assert!(matches!(Pin::new(io).poll_write(cx, data), Poll::Ready(Ok(n)) if n == data.len()));
    }

    fn flush(io: &mut CoalescedWrites<Recorder>, cx: &mut Context<'_>) {
        assert!(matches!(Pin::new(io).poll_flush(cx), Poll::Ready(Ok(()))));
    }

    #[test]
    fn writes_wait_for_a_flush_with_nothing_new_before_it() {
        let waker = Arc::new(CountingWaker::default());
        let task = std::task::Waker::from(Arc::clone(&waker));
        let mut cx = Context::from_waker(&task);
        let mut io = CoalescedWrites::new(Recorder::default());

        // One poll of a connection: two answers, each flushed.
        write(&mut io, &mut cx, b"first answer ");
        flush(&mut io, &mut cx);
        write(&mut io, &mut cx, b"second answer");
        flush(&mut io, &mut cx);
        assert!(io.get_ref().writes.is_empty(), "nothing is written during the poll");
        assert_eq!(waker.0.load(Ordering::SeqCst), 2, "the connection is woken for its next poll");

        // Its next poll has nothing new to send.
        flush(&mut io, &mut cx);
        assert_eq!(io.get_ref().writes, [b"first answer second answer".to_vec()]);
        flush(&mut io, &mut cx);
        assert_eq!(io.get_ref().writes.len(), 1);
        assert_eq!(waker.0.load(Ordering::SeqCst), 2, "an idle connection is not woken");
    }

    #[test]
    fn a_busy_connection_writes_after_a_bounded_number_of_flushes() {
        let task = std::task::Waker::noop();
        let mut cx = Context::from_waker(task);
        let mut io = CoalescedWrites::new(Recorder::default());

        for _ in 0..MAX_DEFERRED_FLUSHES {
            write(&mut io, &mut cx, b"answer ");
            flush(&mut io, &mut cx);
            assert!(io.get_ref().writes.is_empty());
        }
        write(&mut io, &mut cx, b"answer ");
        flush(&mut io, &mut cx);
        let all = b"answer ".repeat(usize::try_from(MAX_DEFERRED_FLUSHES).unwrap_or(0) + 1);
        assert_eq!(io.get_ref().writes, [all]);
    }

    #[test]
    fn a_full_buffer_is_written_before_more_and_a_large_write_goes_straight_through() {
        let task = std::task::Waker::noop();
        let mut cx = Context::from_waker(task);
        let mut io = CoalescedWrites::new(Recorder::default());

        let half = vec![1; MAX_BUFFERED / 2 + 1];
        write(&mut io, &mut cx, &half);
        write(&mut io, &mut cx, &half);
        assert_eq!(io.get_ref().writes, std::slice::from_ref(&half), "the first half went out to make room");

        let large = vec![2; MAX_BUFFERED + 1];
        write(&mut io, &mut cx, &large);
        assert_eq!(io.get_ref().writes, [half.clone(), half, large], "buffered bytes first, in order");
    }

    #[test]
    fn shutting_down_writes_what_waits_first() {
        let task = std::task::Waker::noop();
        let mut cx = Context::from_waker(task);
        let mut io = CoalescedWrites::new(Recorder::default());

        write(&mut io, &mut cx, b"goaway");
        flush(&mut io, &mut cx);
        assert!(Pin::new(&mut io).poll_shutdown(&mut cx).is_ready());
        assert_eq!(io.get_ref().writes, [b"goaway".to_vec()]);
        assert!(io.get_ref().shut_down);
    }

    #[tokio::test]
    async fn every_byte_arrives_in_order_over_a_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sender = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let mut io = CoalescedWrites::new(socket);
            for chunk in 0..1000u32 {
                let size = usize::try_from(chunk * 37 % 3000).unwrap_or(0) + 1;
                io.write_all(&vec![u8::try_from(chunk % 251).unwrap_or(0); size]).await.unwrap();
                io.flush().await.unwrap();
            }
            io.shutdown().await.unwrap();
        });
        let mut received = Vec::new();
        tokio::net::TcpStream::connect(addr).await.unwrap().read_to_end(&mut received).await.unwrap();
        sender.await.unwrap();
        let expected: Vec<u8> = (0..1000u32)
            .flat_map(|chunk| {
                let size = usize::try_from(chunk * 37 % 3000).unwrap_or(0) + 1;
                std::iter::repeat_n(u8::try_from(chunk % 251).unwrap_or(0), size)
            })
            .collect();
        assert_eq!(received, expected);
    }
}
