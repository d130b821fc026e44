//! The single writer thread and its group commit.
//!
//! SQLite allows one writer at a time, so berth gives it one thread and one connection.
//! Callers send operations over a channel; the thread takes everything that is waiting
//! (up to [`MAX_GROUP`]), runs it in one `BEGIN IMMEDIATE` transaction, each operation in
//! its own savepoint so that one failure does not undo its neighbours, commits once, and
//! only then answers the callers. One fsync thus carries many enqueues, fetches and
//! completions, and an answer always means "durable".

use std::sync::mpsc;
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::error::{Result, StoreError};

/// The most operations one transaction carries.
const MAX_GROUP: usize = 2048;

/// What the writer calls after the commit: tells the caller the outcome.
type Reply = Box<dyn FnOnce(std::result::Result<(), Failure>) + Send>;

/// Why a group transaction did not commit: SQLite's message, and whether it means the
/// store cannot take writes now (a full disk, an I/O error).
#[derive(Clone)]
pub(crate) struct Failure {
    message: String,
    unavailable: Option<String>,
}

impl Failure {
    fn of(e: &rusqlite::Error) -> Self {
        Failure {
            message: e.to_string(),
            unavailable: crate::error::unavailable(e).map(|(reason, _)| reason),
        }
    }

    fn into_error(self, action: &'static str) -> StoreError {
        match self.unavailable {
            Some(reason) => StoreError::Unavailable {
                action,
                reason,
                unsure: false,
            },
            None => StoreError::Database {
                action,
                source: self.message.into(),
            },
        }
    }
}

/// One operation: runs inside the transaction (or, given `None`, learns that there is no
/// transaction and runs nothing), says whether it succeeded, and returns the reply to send
/// once the commit's fate is known.
pub(crate) type WriteOp = Box<dyn FnOnce(Option<&Connection>) -> (bool, Reply) + Send>;

/// The handle through which async callers reach the writer thread.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<WriteOp>,
}

impl Writer {
    /// Starts the writer thread on `conn`. It ends when every `Writer` clone is dropped.
    pub(crate) fn spawn(conn: Connection) -> std::io::Result<(Writer, thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<WriteOp>();
        let handle = thread::Builder::new()
            .name("berth-sqlite-writer".into())
            .spawn(move || run(conn, rx))?;
        Ok((Writer { tx }, handle))
    }

    /// Runs `f` in the next group transaction and resolves once it is committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel::<Result<T>>();
        let op: WriteOp = Box::new(move |conn| {
            let (outcome, ran) = match conn {
                Some(conn) => (f(conn), true),
                None => (Err(StoreError::Closed), false),
            };
            let ok = outcome.is_ok();
            let reply: Reply = Box::new(move |commit| {
                let answer = match commit {
                    Ok(()) => outcome,
                    Err(e) if !ran => Err(e.into_error("starting a transaction")),
                    // The operation's own error is the more useful one if it had failed.
                    Err(e) => outcome.and(Err(e.into_error("committing"))),
                };
                let _ = reply_tx.send(answer);
            });
            (ok, reply)
        });
        self.tx.send(op).map_err(|_| StoreError::Closed)?;
        reply_rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<WriteOp>) {
    let mut group: Vec<WriteOp> = Vec::with_capacity(MAX_GROUP);
    let mut replies: Vec<Reply> = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = rx.recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        let commit = match conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => {
                let mut lost = None;
                for op in group.drain(..) {
                    if lost.is_some() {
                        // Run nothing outside the group transaction.
                        replies.push(op(None).1);
                        continue;
                    }
                    replies.push(run_in_savepoint(&conn, op));
                    // Some errors (disk full, I/O) make SQLite roll the whole transaction
                    // back. What ran before is gone, and what follows must not run in
                    // autocommit mode: fail the whole group.
                    if conn.is_autocommit() {
                        let why = "SQLite rolled the transaction back: the disk holding the \
                                   store is full or failed a write";
                        lost = Some(Failure {
                            message: why.to_owned(),
                            unavailable: Some(why.to_owned()),
                        });
                    }
                }
                match lost {
                    Some(e) => Err(e),
                    None => conn.execute_batch("COMMIT").map_err(|e| {
                        let _ = conn.execute_batch("ROLLBACK");
                        Failure::of(&e)
                    }),
                }
            }
            Err(e) => {
                // Nothing ran: every operation gets the error.
                let msg = Failure::of(&e);
                for op in group.drain(..) {
                    let (_, reply) = op(None);
                    replies.push(reply);
                }
                Err(msg)
            }
        };
        if let Err(e) = &commit {
            tracing::error!(error = %e.message, "database commit failed");
        }
        for reply in replies.drain(..) {
            reply(commit.clone());
        }
    }
}

fn run_in_savepoint(conn: &Connection, op: WriteOp) -> Reply {
    if let Err(e) = conn.execute_batch("SAVEPOINT op") {
        let msg = Failure::of(&e);
        let (_, reply) = op(None);
        return Box::new(move |_| reply(Err(msg)));
    }
    // A panicking operation fails alone; the writer thread, which every write needs,
    // survives it.
    let (ok, reply) =
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(Some(conn)))) {
            Ok(r) => r,
            Err(_) => {
                tracing::error!("a database operation panicked; it was rolled back");
                // The caller's reply channel was dropped with the operation: it sees `Closed`.
                (false, Box::new(|_| {}) as Reply)
            }
        };
    let end = if ok {
        "RELEASE op"
    } else {
        "ROLLBACK TO op; RELEASE op"
    };
    if let Err(e) = conn.execute_batch(end) {
        tracing::error!(error = %e, "closing a savepoint failed");
    }
    reply
}
