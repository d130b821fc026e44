//! Connections to upstream instances, pooled per worker and address.

use super::*;

/// An idle connection to an upstream instance.
pub(crate) struct Idle {
    pub(super) addr: SocketAddr,
    pub(super) since: Instant,
    pub(super) up: Upstream,
}

/// A worker's idle upstream connections, most recently used last.
#[derive(Default)]
pub(crate) struct Pool {
    pub(super) idle: Mutex<Vec<Idle>>,
}

impl Pool {
    /// An idle connection to `addr` that is still open and has sent nothing since its
    /// last response (a late byte would be read as the next request's response).
    pub(super) fn take(&self, addr: SocketAddr) -> Option<Upstream> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let at = idle.iter().rposition(|i| i.addr == addr)?;
            let found = idle.swap_remove(at);
            if found.since.elapsed() < POOL_IDLE && found.up.is_quiet() {
                return Some(found.up);
            }
        }
    }

    pub(super) fn put(&self, addr: SocketAddr, mut up: Upstream) {
        // An idle connection holds no buffer: the next exchange takes one when its
        // answer is there to read.
        give_back(&mut up.buf);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL_MAX {
            idle.push(Idle {
                addr,
                since: Instant::now(),
                up,
            });
        }
    }

    /// Closes the connections idle for longer than [`POOL_IDLE`].
    pub(crate) fn prune(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|i| i.since.elapsed() < POOL_IDLE);
    }

    /// Closes every idle connection.
    pub(crate) fn clear(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// One connection to an upstream instance, with what was read from it.
pub(crate) struct Upstream {
    pub(super) stream: TcpStream,
    pub(super) buf: BytesMut,
}

impl Upstream {
    /// Open, and nothing to read. Its last read was usually short, which clears the
    /// runtime's readiness: while no event the worker has seen says otherwise (a late
    /// byte, or the instance closing it), it is quiet without asking the kernel, as
    /// nginx's keep-alive cache judges its idle connections. Otherwise (an event, a read
    /// that filled the buffer, or a task out of its scheduling budget, for which the
    /// readiness always reads as pending), a peek that would block says so.
    pub(super) fn is_quiet(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        if tokio::task::coop::has_budget_remaining()
            && self.stream.poll_read_ready(&mut cx).is_pending()
        {
            return true;
        }
        let mut byte = [0u8; 1];
        matches!(
            recv(
                self.stream.as_raw_fd(),
                &mut byte,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
            ),
            Err(nix::errno::Errno::EAGAIN)
        )
    }
}

pub(super) async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Upstream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    stream.set_nodelay(true)?;
    Ok(Upstream {
        stream,
        buf: BytesMut::new(),
    })
}
