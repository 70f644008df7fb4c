//! The error *kind* shared by every module: it alone decides the HTTP status an API error
//! gets and the exit code the CLI returns, so the mapping lives in one place.
//!
//! Each module keeps its own error enum (variants named after the action that failed, carrying
//! their data and source) and implements [`HasKind`] for it.

use std::fmt;

/// What kind of failure an error is, from the caller's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The named object does not exist (404; exit 3).
    NotFound,
    /// The request clashes with existing state: duplicate name, address taken, in use (409; exit 4).
    Conflict,
    /// The request itself is malformed or out of range (400; exit 5).
    Invalid,
    /// A needed resource is not reachable right now: agent down, store busy (503; exit 6).
    Unavailable,
    /// The request was fine but already satisfied, e.g. starting a running container (304; exit 0).
    NotModified,
    /// A bug or an unexpected kernel/OS failure (500; exit 1).
    Internal,
}

impl ErrorKind {
    /// The HTTP status code the API answers with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Invalid => 400,
            ErrorKind::Unavailable => 503,
            ErrorKind::NotModified => 304,
            ErrorKind::Internal => 500,
        }
    }

    /// The kind an HTTP error status stands for (used by the client side).
    pub fn from_http_status(status: u16) -> ErrorKind {
        match status {
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            400 | 422 => ErrorKind::Invalid,
            503 => ErrorKind::Unavailable,
            304 => ErrorKind::NotModified,
            _ => ErrorKind::Internal,
        }
    }

    /// The process exit code the CLI returns (2 is left to clap's usage errors).
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::NotModified => 0,
            ErrorKind::Internal => 1,
            ErrorKind::NotFound => 3,
            ErrorKind::Conflict => 4,
            ErrorKind::Invalid => 5,
            ErrorKind::Unavailable => 6,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Invalid => "invalid request",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::NotModified => "not modified",
            ErrorKind::Internal => "internal error",
        };
        f.write_str(name)
    }
}

/// Implemented by every module error so the API and CLI can classify it.
pub trait HasKind {
    fn kind(&self) -> ErrorKind;
}

/// Render an error and its whole `source()` chain on one line: "outer: inner: root".
/// Display messages never repeat their source, so each link appears once.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_kind() {
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Invalid,
            ErrorKind::Unavailable,
            ErrorKind::NotModified,
            ErrorKind::Internal,
        ] {
            assert_eq!(ErrorKind::from_http_status(kind.http_status()), kind);
        }
    }

    #[test]
    fn chain_prints_each_source_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("create bridge br0")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::other("File exists"));
        assert_eq!(chain(&e), "create bridge br0: File exists");
    }
}

/// Any module's error together with its kind: what the CLI's and API's outer layers carry.
/// (Deliberately not `std::error::Error` itself, so `?` converts every module error into it.)
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    inner: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl Error {
    /// An error with a plain message, for conditions found at the outer layers.
    pub fn msg(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            inner: message.into().into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message with its whole cause chain on one line.
    pub fn message(&self) -> String {
        chain(self.inner.as_ref())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl<E> From<E> for Error
where
    E: std::error::Error + HasKind + Send + Sync + 'static,
{
    fn from(err: E) -> Error {
        Error {
            kind: err.kind(),
            inner: Box::new(err),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
