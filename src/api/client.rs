//! The API client the `warren` CLI uses: HTTP/1.1 over the agent's unix socket, or over
//! mutual TLS for `tcp://` hosts. One connection is kept and reused (keep-alive).

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::api::host::HostAddr;
use crate::api::{tls, API_VERSION};
use crate::error::{ErrorKind, HasKind};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot connect to the Warren agent at {host} ({reason}). Is warrend running? \
         Start it as root with `warrend`, or point -H / WARREN_HOST at its socket"
    )]
    Connect { host: String, reason: String },
    #[error("TLS setup for {host}")]
    Tls {
        host: String,
        #[source]
        source: tls::TlsError,
    },
    #[error("{method} {path}")]
    Transport {
        method: Method,
        path: String,
        #[source]
        source: hyper::Error,
    },
    /// The agent answered with an error; its message is shown as is.
    #[error("{message}")]
    Api { status: StatusCode, message: String },
    #[error("decode the answer to {path}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

impl HasKind for ClientError {
    fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Connect { .. } => ErrorKind::Unavailable,
            ClientError::Tls { .. } => ErrorKind::Invalid,
            ClientError::Api { status, .. } => ErrorKind::from_http_status(status.as_u16()),
            ClientError::Transport { .. } | ClientError::Decode { .. } => ErrorKind::Internal,
        }
    }
}

/// Client-side TLS settings, as docker's `--tlsverify --tlscacert --tlscert --tlskey`.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug)]
pub struct Client {
    host: HostAddr,
    tls: Option<ClientTls>,
    conn: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

/// A raw answer: status and body bytes.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Client {
    pub fn new(host: HostAddr, tls: Option<ClientTls>) -> Client {
        Client {
            host,
            tls,
            conn: Mutex::new(None),
        }
    }

    pub fn host(&self) -> &HostAddr {
        &self.host
    }

    async fn connect<B>(&self) -> Result<SendRequest<B>, ClientError>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let connect_err = |e: std::io::Error| ClientError::Connect {
            host: self.host.to_string(),
            reason: e.to_string(),
        };
        match &self.host {
            HostAddr::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(connect_err)?;
                self.handshake(stream).await
            }
            HostAddr::Tcp(hostport) => {
                let tls_err = |source| ClientError::Tls {
                    host: self.host.to_string(),
                    source,
                };
                let Some(opts) = &self.tls else {
                    return Err(ClientError::Connect {
                        host: self.host.to_string(),
                        reason: "Warren serves TCP only over mutual TLS; pass --tlsverify with \
                                 --tlscacert/--tlscert/--tlskey or set WARREN_TLS_VERIFY=1 and WARREN_CERT_PATH"
                            .into(),
                    });
                };
                let identity = opts.cert.as_deref().zip(opts.key.as_deref());
                let config = tls::client_config(&opts.ca, identity).map_err(tls_err)?;
                let server_host = hostport
                    .rsplit_once(':')
                    .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
                    .unwrap_or(hostport);
                let name = rustls::pki_types::ServerName::try_from(server_host.to_string())
                    .map_err(|e| ClientError::Connect {
                        host: self.host.to_string(),
                        reason: e.to_string(),
                    })?;
                let tcp = tokio::net::TcpStream::connect(hostport)
                    .await
                    .map_err(connect_err)?;
                let stream = tokio_rustls::TlsConnector::from(Arc::clone(&config))
                    .connect(name, tcp)
                    .await
                    .map_err(connect_err)?;
                self.handshake(stream).await
            }
        }
    }

    async fn handshake<IO, B>(&self, io: IO) -> Result<SendRequest<B>, ClientError>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| ClientError::Connect {
                host: self.host.to_string(),
                reason: e.to_string(),
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "API connection closed");
            }
        });
        Ok(sender)
    }

    /// Send one request to `/v{API_VERSION}{path}` and read the whole answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Answer, ClientError> {
        let mut guard = self.conn.lock().await;
        let mut sender = match guard.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.connect().await?,
        };
        let transport = |source| ClientError::Transport {
            method: method.clone(),
            path: path.to_string(),
            source,
        };
        sender.ready().await.map_err(transport)?;
        let request = build_request(&method, path, body, false);
        let response = sender.send_request(request).await.map_err(transport)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(transport)?
            .to_bytes();
        *guard = Some(sender);
        Ok(Answer { status, body })
    }

    /// Send one request on a connection of its own and return as soon as the headers are
    /// in (wait, logs -f, attach, exec start): the body then streams, or — after a `101` —
    /// the connection is upgraded (`hyper::upgrade::on`). Non-2xx answers become errors.
    pub async fn stream(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        upgrade: bool,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let mut sender = self.connect().await?;
        let transport = |source| ClientError::Transport {
            method: method.clone(),
            path: path.to_string(),
            source,
        };
        sender.ready().await.map_err(transport)?;
        let request = build_request(&method, path, body, upgrade);
        let response = sender.send_request(request).await.map_err(transport)?;
        let status = response.status();
        if status.is_success() || status == StatusCode::SWITCHING_PROTOCOLS {
            return Ok(response);
        }
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(transport)?
            .to_bytes();
        Err(ClientError::Api {
            status,
            message: error_message(status, &body),
        })
    }

    /// Send and turn non-2xx answers into [`ClientError::Api`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, ClientError> {
        let answer = self.send(method, path, body).await?;
        if answer.status.is_success() {
            return Ok(answer.body);
        }
        Err(ClientError::Api {
            status: answer.status,
            message: error_message(answer.status, &answer.body),
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.call(Method::GET, path, None).await?;
        decode(path, &body)
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).expect("request types serialize");
        let answer = self.call(Method::POST, path, Some(bytes)).await?;
        decode(path, &answer)
    }

    /// POST whose answer has no (interesting) body.
    pub async fn post_empty<B: Serialize>(&self, path: &str, body: &B) -> Result<(), ClientError> {
        let bytes = serde_json::to_vec(body).expect("request types serialize");
        self.call(Method::POST, path, Some(bytes)).await.map(drop)
    }

    /// POST a streamed body (a tarball read from a file or stdin, sent chunked) on a
    /// connection of its own, and read the whole answer; non-2xx becomes [`ClientError::Api`].
    pub async fn post_stream<S>(
        &self,
        path: &str,
        content_type: &str,
        body: S,
    ) -> Result<Bytes, ClientError>
    where
        S: futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        use futures::StreamExt;
        type Streamed = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;
        let mut sender = self.connect::<Streamed>().await?;
        let transport = |source| ClientError::Transport {
            method: Method::POST,
            path: path.to_string(),
            source,
        };
        sender.ready().await.map_err(transport)?;
        let frames = body.map(|chunk| chunk.map(hyper::body::Frame::data));
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("/v{API_VERSION}{path}"))
            .header("host", "warren")
            .header(
                "user-agent",
                concat!("warren-cli/", env!("CARGO_PKG_VERSION")),
            )
            .header("content-type", content_type)
            .body(BodyExt::boxed_unsync(http_body_util::StreamBody::new(
                frames,
            )))
            .expect("request parts are valid");
        let response = sender.send_request(request).await.map_err(transport)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(transport)?
            .to_bytes();
        if status.is_success() {
            return Ok(body);
        }
        Err(ClientError::Api {
            status,
            message: error_message(status, &body),
        })
    }

    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.call(Method::DELETE, path, None).await.map(drop)
    }
}

fn decode<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|source| ClientError::Decode {
        path: path.to_string(),
        source,
    })
}

/// Docker's `{"message": ...}`, or the raw text when the body is not that shape.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Message {
        message: String,
    }
    match serde_json::from_slice::<Message>(body) {
        Ok(m) => m.message,
        Err(_) if body.is_empty() => format!("agent answered {status}"),
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    }
}

/// Percent-encode a query parameter value.
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A request to `/v{API_VERSION}{path}` with the CLI's headers; `upgrade` asks for a hijacked
/// connection (attach, exec start).
fn build_request(
    method: &Method,
    path: &str,
    body: Option<Vec<u8>>,
    upgrade: bool,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(format!("/v{API_VERSION}{path}"))
        .header("host", "warren")
        .header(
            "user-agent",
            concat!("warren-cli/", env!("CARGO_PKG_VERSION")),
        );
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    if upgrade {
        builder = builder
            .header("connection", "Upgrade")
            .header("upgrade", "tcp");
    }
    builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("request parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_read_docker_style() {
        assert_eq!(
            error_message(
                StatusCode::NOT_FOUND,
                br#"{"message":"network x not found"}"#
            ),
            "network x not found"
        );
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, b""),
            "agent answered 502 Bad Gateway"
        );
        assert_eq!(error_message(StatusCode::BAD_REQUEST, b"plain\n"), "plain");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode_query(r#"{"name":["a b"]}"#),
            "%7B%22name%22%3A%5B%22a%20b%22%5D%7D"
        );
    }
}
