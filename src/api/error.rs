//! API errors on the wire: Docker's `{"message": "..."}` body with the status the error's kind
//! picks, and a JSON body extractor whose failures answer the same way.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};

/// An error as the API returns it.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError(Error::msg(kind, message))
    }
}

impl<E: Into<Error>> From<E> for ApiError {
    fn from(err: E) -> ApiError {
        ApiError(err.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = self.0.kind();
        let status =
            StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if kind == ErrorKind::Internal {
            tracing::error!(error = %self.0, "request failed");
        } else {
            tracing::debug!(error = %self.0, %status, "request refused");
        }
        if status == StatusCode::NOT_MODIFIED {
            return status.into_response(); // 304 carries no body
        }
        (
            status,
            axum::Json(serde_json::json!({ "message": self.0.message() })),
        )
            .into_response()
    }
}

/// `Json<T>` whose rejections (malformed JSON, wrong content) become Docker-style 400 errors.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Docker clients do not always send Content-Type; parse the bytes regardless.
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(ErrorKind::Invalid, format!("read request body: {e}")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::new(
                ErrorKind::Invalid,
                "request body is empty; expected JSON",
            ));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::new(ErrorKind::Invalid, format!("malformed JSON body: {e}")))
    }
}
