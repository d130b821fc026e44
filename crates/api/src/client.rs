//! A small client for the API, over the unix socket or TCP. The CLI and the tests use it.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Where the API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The unix socket in a data dir.
    Unix(PathBuf),
    /// A TCP address (`host:port`) with its bearer token.
    Tcp {
        /// `host:port`.
        addr: String,
        /// The bearer token.
        token: Option<String>,
    },
}

/// What can go wrong reaching the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens there.
    #[error("cannot reach berth at {where_}: {cause}; is `berth up` running for this config?")]
    Unreachable {
        /// The socket or address.
        where_: String,
        /// Why (part of the message, not a separate source, so it is printed once).
        cause: std::io::Error,
    },
    /// The exchange failed midway.
    #[error("talking to berth failed: {0}")]
    Http(String),
    /// The answer is not what this client's types expect (a CLI of another version?).
    #[error(
        "berth's answer to {path} does not read as expected: {cause}; is this CLI the same version as the running berth?"
    )]
    Decode {
        /// The request's path.
        path: String,
        /// What did not fit.
        cause: String,
    },
    /// Berth answered with an error.
    #[error("{message}")]
    Api {
        /// The status.
        status: StatusCode,
        /// The error code.
        code: String,
        /// The message.
        message: String,
    },
}

/// The API client.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
}

impl Client {
    /// A client for `endpoint`.
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint }
    }

    /// A client for the unix socket at `path`.
    pub fn unix(path: &Path) -> Self {
        Self::new(Endpoint::Unix(path.to_path_buf()))
    }

    /// GET `path`, read as `T` (one of [`crate::types`]).
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        typed(path, self.call(Method::GET, path, None).await?)
    }

    /// POST `body` to `path`, the answer read as `T` (one of [`crate::types`]).
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_value(body).map_err(|e| ClientError::Http(e.to_string()))?;
        typed(path, self.call(Method::POST, path, Some(body)).await?)
    }

    /// DELETE `path`, the answer read as `T`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        typed(path, self.call(Method::DELETE, path, None).await?)
    }

    /// GET `path` as untyped JSON (for tests and scripts that look at the raw answer).
    pub async fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, path, None).await
    }

    /// POST `body` to `path`, the answer as untyped JSON.
    pub async fn post_json(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// DELETE `path`, the answer as untyped JSON.
    pub async fn delete_json(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::DELETE, path, None).await
    }

    /// One request; a non-2xx answer becomes `ClientError::Api`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ClientError> {
        let (status, value) = self.raw(method, path, body.map(|b| b.to_string())).await?;
        if status.is_success() {
            return Ok(value);
        }
        let err = &value["error"];
        Err(ClientError::Api {
            status,
            code: err["code"].as_str().unwrap_or("unknown").to_string(),
            message: err["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("berth answered {status}")),
        })
    }

    /// One request with a raw body; returns the status and the JSON answer.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Value), ClientError> {
        let (io, host, token) = match &self.endpoint {
            Endpoint::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p).await.map_err(|e| {
                    ClientError::Unreachable {
                        where_: p.display().to_string(),
                        cause: e,
                    }
                })?;
                (Io::Unix(TokioIo::new(s)), "localhost".to_string(), None)
            }
            Endpoint::Tcp { addr, token } => {
                let s = tokio::net::TcpStream::connect(addr).await.map_err(|e| {
                    ClientError::Unreachable {
                        where_: addr.clone(),
                        cause: e,
                    }
                })?;
                (Io::Tcp(TokioIo::new(s)), addr.clone(), token.clone())
            }
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, host);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let resp = match io {
            Io::Unix(io) => send(io, req).await?,
            Io::Tcp(io) => send(io, req).await?,
        };
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, value))
    }
}

/// Reads an answer as `T`.
fn typed<T: DeserializeOwned>(path: &str, value: Value) -> Result<T, ClientError> {
    serde_json::from_value(value).map_err(|e| ClientError::Decode {
        path: path.to_owned(),
        cause: e.to_string(),
    })
}

enum Io {
    Unix(TokioIo<tokio::net::UnixStream>),
    Tcp(TokioIo<tokio::net::TcpStream>),
}

async fn send<T>(
    io: T,
    req: Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, ClientError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
        .send_request(req)
        .await
        .map_err(|e| ClientError::Http(e.to_string()))
}
