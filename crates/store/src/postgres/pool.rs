//! A small connection pool: idle clients kept for reuse, at most `max` in use, broken ones
//! replaced. Connection errors name the server, database and user — never the password.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, Config};

use super::Dsn;
use crate::error::{Result, StoreError};

/// Where a store connects, in words safe to print.
pub(crate) fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(h, port)| match h {
            tokio_postgres::config::Host::Tcp(h) => format!("{h}:{port}"),
            tokio_postgres::config::Host::Unix(p) => format!("{}:{port}", p.display()),
        })
        .collect();
    format!(
        "PostgreSQL at {} (database {}, user {})",
        if hosts.is_empty() {
            "localhost:5432".to_string()
        } else {
            hosts.join(",")
        },
        config.get_dbname().unwrap_or("(default)"),
        config.get_user().unwrap_or("(default)")
    )
}

/// Opens one connection and drives it on a task of its own.
pub(crate) async fn connect(dsn: &Dsn) -> Result<Client> {
    let (client, connection) = dsn.connect().await.map_err(|e| {
        let reason = format!(
            "cannot reach {}: {}",
            describe(&dsn.config),
            connect_error(&e, dsn)
        );
        // A server down or out of reach is for now; a wrong password, database or
        // certificate stays wrong.
        if crate::error::unavailable(&e).is_some() {
            StoreError::Unavailable {
                action: "connecting",
                reason,
                unsure: false,
            }
        } else {
            StoreError::Open {
                path: describe(&dsn.config).into(),
                detail: connect_error(&e, dsn),
            }
        }
    })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "a PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// The cause of a connection error, without anything from the URL, and what to check
/// when it is the server's certificate.
fn connect_error(e: &tokio_postgres::Error, dsn: &Dsn) -> String {
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    if text.contains("certificate") {
        text.push_str(&format!(
            " (sslmode={}: {})",
            dsn.tls.mode.name(),
            match &dsn.tls.root_cert {
                Some(path) => format!(
                    "the server's certificate must be signed by a CA in {}{}",
                    path.display(),
                    if dsn.tls.mode == super::tls::Mode::VerifyFull {
                        ", and name the URL's host"
                    } else {
                        ""
                    }
                ),
                None => "no sslrootcert is given, so the server's certificate must be signed \
                         by a public CA; name the CA that signed it with sslrootcert=FILE"
                    .to_owned(),
            }
        ));
    }
    text
}

pub(crate) struct Pool {
    dsn: Dsn,
    idle: Mutex<Vec<Client>>,
    slots: Arc<Semaphore>,
}

/// A client on loan; back to the pool when dropped (unless its connection broke).
pub(crate) struct Pooled<'a> {
    pool: &'a Pool,
    client: Option<Client>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("client present until drop")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("client present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take()
            && !c.is_closed()
        {
            self.pool.idle.lock().expect("pool poisoned").push(c);
        }
    }
}

impl Pool {
    pub(crate) fn new(dsn: Dsn, max: usize) -> Self {
        Self {
            dsn,
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(max)),
        }
    }

    /// A client, reusing an idle one whose connection still stands.
    pub(crate) async fn get(&self) -> Result<Pooled<'_>> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let reused = {
            let mut idle = self.idle.lock().expect("pool poisoned");
            let mut found = None;
            while let Some(c) = idle.pop() {
                if !c.is_closed() {
                    found = Some(c);
                    break;
                }
            }
            found
        };
        let client = match reused {
            Some(c) => c,
            None => connect(&self.dsn).await?,
        };
        Ok(Pooled {
            pool: self,
            client: Some(client),
            _permit: permit,
        })
    }
}
