//! Serving the API: listeners (unix socket, mutual-TLS TCP), one hyper HTTP/1.1 connection per
//! client (keep-alive, chunked bodies, upgrades), Docker's version prefixes and headers.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::agent::config::TlsFiles;
use crate::agent::Agent;
use crate::api::error::ApiError;
use crate::api::host::HostAddr;
use crate::api::{containers, images, networks, system, tls, API_VERSION, MIN_API_VERSION};
use crate::error::{ErrorKind, HasKind};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on tcp://{addr} without mutual TLS: anyone who can reach the port \
         would control this host. Add --tlsverify --tlscacert CA --tlscert CERT --tlskey KEY, \
         or use a unix socket"
    )]
    TcpWithoutTls { addr: String },
    #[error("{path} is already served by another process; stop it or choose another -H socket")]
    SocketInUse { path: PathBuf },
    #[error("prepare socket directory {path}")]
    SocketDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("set up TLS for tcp://{addr}")]
    Tls {
        addr: String,
        #[source]
        source: tls::TlsError,
    },
}

impl HasKind for ServeError {
    fn kind(&self) -> ErrorKind {
        match self {
            ServeError::TcpWithoutTls { .. } | ServeError::Tls { .. } => ErrorKind::Invalid,
            ServeError::SocketInUse { .. } => ErrorKind::Conflict,
            _ => ErrorKind::Unavailable,
        }
    }
}

/// A bound listener, ready to serve.
pub enum Listener {
    Unix {
        listener: UnixListener,
        path: PathBuf,
    },
    Tls {
        listener: TcpListener,
        acceptor: TlsAcceptor,
        addr: String,
    },
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Listener {
    /// Bind `addr`. Unix sockets are created root-only (0660); TCP requires mutual TLS.
    pub async fn bind(
        addr: &HostAddr,
        tls_files: Option<&TlsFiles>,
    ) -> Result<Listener, ServeError> {
        match addr {
            HostAddr::Unix(path) => bind_unix(path).await,
            HostAddr::Tcp(hostport) => {
                let files = tls_files.ok_or_else(|| ServeError::TcpWithoutTls {
                    addr: hostport.clone(),
                })?;
                let config = tls::server_config(files).map_err(|source| ServeError::Tls {
                    addr: hostport.clone(),
                    source,
                })?;
                let listener =
                    TcpListener::bind(hostport)
                        .await
                        .map_err(|source| ServeError::Bind {
                            addr: format!("tcp://{hostport}"),
                            source,
                        })?;
                Ok(Listener::Tls {
                    listener,
                    acceptor: TlsAcceptor::from(config),
                    addr: hostport.clone(),
                })
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Listener::Unix { path, .. } => format!("unix://{}", path.display()),
            Listener::Tls { addr, .. } => format!("tcp://{addr} (mutual TLS)"),
        }
    }
}

async fn bind_unix(path: &Path) -> Result<Listener, ServeError> {
    use std::os::unix::fs::PermissionsExt;
    let bind_err = |source| ServeError::Bind {
        addr: format!("unix://{}", path.display()),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ServeError::SocketDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    if path.exists() {
        // A socket file left by a crashed agent is removed; a live one is someone else's.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServeError::SocketInUse {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    // root (and the socket's group) only: the API controls the host's networking.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
    Ok(Listener::Unix {
        listener,
        path: path.to_path_buf(),
    })
}

/// All routes, unversioned; [`handle`] strips `/v1.NN` prefixes before routing.
pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .merge(system::routes())
        .merge(networks::routes())
        .merge(containers::routes())
        .merge(images::routes())
        .fallback(|| async { ApiError::new(ErrorKind::NotFound, "page not found") })
        .with_state(agent)
}

/// Serve every listener until `shutdown` turns true; then remove the unix socket files.
pub async fn serve(listeners: Vec<Listener>, router: Router, shutdown: watch::Receiver<bool>) {
    let mut tasks = Vec::new();
    for listener in listeners {
        let router = router.clone();
        let shutdown = shutdown.clone();
        tasks.push(tokio::spawn(accept_loop(listener, router, shutdown)));
    }
    for task in tasks {
        let _ = task.await;
    }
}

async fn accept_loop(listener: Listener, router: Router, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = until_stopped(&mut shutdown) => break,
            accepted = accept_one(&listener, router.clone()) => {
                if let Err(e) = accepted {
                    tracing::warn!(listener = %listener.describe(), error = %e, "accept failed");
                    // Avoid a hot loop on persistent errors such as EMFILE.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
    if let Listener::Unix { path, .. } = &listener {
        let _ = std::fs::remove_file(path);
    }
}

/// Resolves once the shutdown flag is set (or its sender is gone).
pub async fn until_stopped(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

async fn accept_one(listener: &Listener, router: Router) -> std::io::Result<()> {
    match listener {
        Listener::Unix { listener, .. } => {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(serve_connection(stream, router));
        }
        Listener::Tls {
            listener, acceptor, ..
        } => {
            let (stream, peer) = listener.accept().await?;
            let acceptor = acceptor.clone();
            // Handshake in the connection's task so a slow client cannot stall accepting.
            tokio::spawn(async move {
                match acceptor.accept(stream).await {
                    Ok(tls) => serve_connection(tls, router).await,
                    Err(e) => tracing::info!(%peer, error = %e, "TLS handshake refused"),
                }
            });
        }
    }
    Ok(())
}

async fn serve_connection<IO>(io: IO, router: Router)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let router = router.clone();
        async move { Ok::<_, Infallible>(handle(router, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection closed with error");
    }
}

/// Route one request: strip the version prefix, dispatch, add Docker's response headers.
pub async fn handle(router: Router, req: Request<Incoming>) -> Response<Body> {
    let mut req = req.map(Body::new);
    let mut response = match strip_version_prefix(&mut req) {
        Ok(()) => match router.oneshot(req).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        Err(e) => axum::response::IntoResponse::into_response(e),
    };
    let headers = response.headers_mut();
    let fixed = [
        ("api-version", API_VERSION),
        ("ostype", "linux"),
        ("docker-experimental", "false"),
        ("swarm", "inactive"),
        ("cache-control", "no-cache, no-store, must-revalidate"),
        ("pragma", "no-cache"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert("server", HeaderValue::from_static(SERVER_HEADER));
    response
}

const SERVER_HEADER: &str = concat!("Warren/", env!("CARGO_PKG_VERSION"), " (linux)");

/// `/v1.43/networks` → `/networks`. Versions outside MIN..=API are refused as dockerd does.
fn strip_version_prefix(req: &mut Request<Body>) -> Result<(), ApiError> {
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(());
    };
    let (version, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let Some(requested) = parse_version(version) else {
        return Ok(()); // not a version prefix; let routing answer
    };
    if requested > parse_version(API_VERSION).unwrap_or_default() {
        return Err(ApiError::new(
            ErrorKind::Invalid,
            format!("client version {version} is too new. Maximum supported API version is {API_VERSION}"),
        ));
    }
    if requested < parse_version(MIN_API_VERSION).unwrap_or_default() {
        return Err(ApiError::new(
            ErrorKind::Invalid,
            format!("client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"),
        ));
    }
    let new_uri = match req.uri().query() {
        Some(q) => format!("{tail}?{q}"),
        None => tail.to_string(),
    };
    *req.uri_mut() = new_uri
        .parse()
        .map_err(|_| ApiError::new(ErrorKind::Invalid, "malformed request path"))?;
    Ok(())
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Status helper for handlers that answer with no body.
pub fn no_content() -> StatusCode {
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(path: &str) -> Result<String, String> {
        let mut req = Request::builder().uri(path).body(Body::empty()).unwrap();
        strip_version_prefix(&mut req)
            .map(|()| req.uri().to_string())
            .map_err(|e| e.0.message())
    }

    #[test]
    fn version_prefixes_are_stripped() {
        assert_eq!(strip("/v1.50/version").unwrap(), "/version");
        assert_eq!(
            strip("/v1.24/networks?filters=x").unwrap(),
            "/networks?filters=x"
        );
        assert_eq!(strip("/version").unwrap(), "/version");
        assert_eq!(strip("/volumes").unwrap(), "/volumes");
    }

    #[test]
    fn versions_out_of_range_are_refused() {
        assert!(strip("/v1.51/version").unwrap_err().contains("too new"));
        assert!(strip("/v1.12/version").unwrap_err().contains("too old"));
    }
}
