//! Image endpoints of the Docker Engine API, without a registry: create from a tarball
//! (`fromSrc=-`, i.e. `docker import`), load (`docker load`), list, inspect, tag and remove.
//!
//! Request bodies (tarballs, possibly chunked) stream into the store on a blocking thread; the
//! answer is written once the work is done, so failures still get a proper status. Error
//! bodies carry both Docker's `message` and the JSON-stream `error`/`errorDetail` fields.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::agent::Agent;
use crate::api::error::ApiError;
use crate::api::filters::{query_bool, Filters};
use crate::error::{Error, ErrorKind};
use crate::runtime::image::spec::unix_seconds;
use crate::runtime::image::{Image, ImageConfig, ImportOptions, Reference, RemoveAction};

pub fn routes() -> Router<Arc<Agent>> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/load", post(load))
        .route(
            "/images/{*name}",
            get(get_named).post(post_named).delete(remove),
        )
}

/// An entry of `GET /images/json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    pub id: String,
    pub parent_id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub created: i64,
    pub size: i64,
    pub shared_size: i64,
    pub virtual_size: i64,
    pub containers: i64,
    pub labels: BTreeMap<String, String>,
}

/// `GET /images/{name}/json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    pub created: String,
    pub docker_version: String,
    pub author: String,
    pub config: ImageConfig,
    pub architecture: String,
    pub os: String,
    pub size: i64,
    pub virtual_size: i64,
    pub graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    #[serde(rename = "Type")]
    pub kind: String,
    pub layers: Vec<String>,
}

fn size(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

pub fn summary(image: &Image) -> ImageSummary {
    ImageSummary {
        id: image.id.clone(),
        parent_id: String::new(),
        repo_tags: image.repo_tags.clone(),
        repo_digests: Vec::new(),
        created: unix_seconds(&image.created).unwrap_or(0),
        size: size(image.size),
        shared_size: -1,
        virtual_size: size(image.size),
        containers: -1,
        labels: image.config.labels.clone(),
    }
}

pub fn inspect_view(image: &Image) -> ImageInspect {
    let lower: Vec<String> = image
        .layers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    ImageInspect {
        id: image.id.clone(),
        repo_tags: image.repo_tags.clone(),
        repo_digests: Vec::new(),
        parent: String::new(),
        comment: image.comment.clone(),
        created: image.created.clone(),
        docker_version: String::new(),
        author: image.author.clone(),
        config: image.config.clone(),
        architecture: image.architecture.clone(),
        os: image.os.clone(),
        size: size(image.size),
        virtual_size: size(image.size),
        graph_driver: GraphDriver {
            name: "overlay".into(),
            data: BTreeMap::from([("LowerDir".to_string(), lower.join(":"))]),
        },
        root_fs: RootFs {
            kind: "layers".into(),
            layers: image.diff_ids.clone(),
        },
        metadata: BTreeMap::new(),
    }
}

/// A JSON-lines (Docker "JSON message stream") answer.
fn json_lines(lines: &[serde_json::Value]) -> Response {
    let mut body = String::new();
    for line in lines {
        body.push_str(&line.to_string());
        body.push('\n');
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// An error for a streaming endpoint: the status its kind picks, and a body both Docker's
/// error reader (`message`) and JSON-stream readers (`error`, `errorDetail`) understand.
fn stream_error(err: Error) -> Response {
    let status =
        StatusCode::from_u16(err.kind().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = err.message();
    if err.kind() == ErrorKind::Internal {
        tracing::error!(error = %message, "image request failed");
    }
    let body = serde_json::json!({
        "message": message,
        "error": message,
        "errorDetail": {"message": message},
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

/// A blocking `Read` over a request body, fed by a task that forwards the body's chunks.
/// Use it only on a blocking thread.
struct BodyReader {
    chunks: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl BodyReader {
    fn new(body: Body) -> BodyReader {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut stream = body.into_data_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(io::Error::other);
                let failed = chunk.is_err();
                // A closed channel means the reader gave up: stop reading the body.
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        });
        BodyReader {
            chunks: rx,
            current: Bytes::new(),
        }
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::msg(ErrorKind::Invalid, message)
}

/// `repo` may carry the tag (`docker import` sends `repo=name:tag`) or leave it to `tag`.
fn import_reference(repo: &str, tag: &str) -> Result<Option<String>, Error> {
    if repo.is_empty() {
        return Ok(None);
    }
    let parsed = if tag.is_empty() {
        Reference::parse(repo)
    } else {
        Reference::from_parts(repo, tag)
    };
    parsed
        .map(|r| Some(r.to_string()))
        .map_err(|reason| invalid(format!("invalid reference format: {reason}")))
}

async fn create(
    State(agent): State<Arc<Agent>>,
    Query(query): Query<Vec<(String, String)>>,
    body: Body,
) -> Response {
    let get = |key: &str| {
        query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let from_image = get("fromImage");
    if !from_image.is_empty() {
        let name = match get("tag") {
            "" => from_image.to_string(),
            tag => format!("{from_image}:{tag}"),
        };
        let name = Reference::parse(&name).map_or(name, |r| r.to_string());
        return stream_error(Error::msg(
            ErrorKind::NotFound,
            format!(
                "No such image: {name} (Warren does not pull from registries; \
                 use `docker load` or `docker import`)"
            ),
        ));
    }
    match get("fromSrc") {
        "-" => {}
        "" => return stream_error(invalid("fromSrc or fromImage is required")),
        _ => {
            return stream_error(invalid(
                "importing from a URL is not supported; send the tarball in the body (fromSrc=-)",
            ))
        }
    }
    let reference = match import_reference(get("repo"), get("tag")) {
        Ok(r) => r,
        Err(e) => return stream_error(e),
    };
    let options = ImportOptions {
        message: Some(get("message").to_string()).filter(|m| !m.is_empty()),
        changes: query
            .iter()
            .filter(|(k, _)| k == "changes")
            .map(|(_, v)| v.clone())
            .collect(),
    };
    let reader = BodyReader::new(body);
    let images = Arc::clone(&agent.images);
    let result = tokio::task::spawn_blocking(move || {
        images
            .import(reader, reference.as_deref(), &options)
            .map_err(Error::from)
    })
    .await
    .unwrap_or_else(|e| Err(Error::msg(ErrorKind::Internal, format!("import task: {e}"))));
    match result {
        Ok(image) => json_lines(&[serde_json::json!({ "status": image.id })]),
        Err(e) => stream_error(e),
    }
}

async fn load(State(agent): State<Arc<Agent>>, body: Body) -> Response {
    let reader = BodyReader::new(body);
    let images = Arc::clone(&agent.images);
    let result = tokio::task::spawn_blocking(move || images.load(reader).map_err(Error::from))
        .await
        .unwrap_or_else(|e| Err(Error::msg(ErrorKind::Internal, format!("load task: {e}"))));
    match result {
        Ok(loaded) => {
            let lines: Vec<serde_json::Value> = loaded
                .iter()
                .flat_map(|l| &l.messages)
                .map(|m| serde_json::json!({ "stream": format!("{m}\n") }))
                .collect();
            json_lines(&lines)
        }
        Err(e) => stream_error(e),
    }
}

const LIST_FILTERS: &[&str] = &["dangling", "label", "reference"];

async fn list(
    State(agent): State<Arc<Agent>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<ImageSummary>>, ApiError> {
    let filters = Filters::parse(query.get("filters").map(String::as_str), LIST_FILTERS)?;
    let out = agent
        .images
        .list()
        .iter()
        .filter(|image| {
            let dangling = image.repo_tags.is_empty();
            filters.any("dangling", |d| query_bool(Some(d)) == dangling)
                && filters.labels_match(&image.config.labels)
                && filters.any("reference", |pattern| {
                    image
                        .repo_tags
                        .iter()
                        .any(|t| reference_matches(pattern, t))
                })
        })
        .map(summary)
        .collect();
    Ok(Json(out))
}

/// Docker's `reference` filter: a glob over the repository name, or over `name:tag` when the
/// pattern has a tag.
fn reference_matches(pattern: &str, tag: &str) -> bool {
    let (name, _) = tag.rsplit_once(':').unwrap_or((tag, ""));
    let last_slash = pattern.rfind('/').map_or(0, |i| i + 1);
    if pattern[last_slash..].contains(':') {
        glob(pattern.as_bytes(), tag.as_bytes())
    } else {
        glob(pattern.as_bytes(), name.as_bytes())
    }
}

/// `*` (not across `/`) and `?` globbing, as Go's path.Match.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], text)
                || (!text.is_empty() && text[0] != b'/' && glob(pattern, &text[1..]))
        }
        (Some(b'?'), Some(c)) if *c != b'/' => glob(&pattern[1..], &text[1..]),
        (Some(p), Some(c)) if p == c => glob(&pattern[1..], &text[1..]),
        _ => false,
    }
}

/// `GET /images/{name}/json` (names contain `/` and `:`, so the route catches the rest).
async fn get_named(
    State(agent): State<Arc<Agent>>,
    Path(rest): Path<String>,
) -> Result<Json<ImageInspect>, ApiError> {
    let rest = rest.trim_start_matches('/');
    let Some(name) = rest.strip_suffix("/json") else {
        return Err(ApiError::new(ErrorKind::NotFound, "page not found"));
    };
    let image = agent.images.resolve(name)?;
    Ok(Json(inspect_view(&image)))
}

/// `POST /images/{name}/tag?repo=&tag=`.
async fn post_named(
    State(agent): State<Arc<Agent>>,
    Path(rest): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    let rest = rest.trim_start_matches('/');
    if let Some(name) = rest.strip_suffix("/tag") {
        let repo = query.get("repo").map(String::as_str).unwrap_or("");
        let tag = query.get("tag").map(String::as_str).unwrap_or("");
        if repo.is_empty() {
            return Err(ApiError::new(ErrorKind::Invalid, "repo is required"));
        }
        let target = import_reference(repo, tag)?.unwrap_or_default();
        agent.images.tag(name, &target)?;
        return Ok(StatusCode::CREATED);
    }
    if rest.ends_with("/push") {
        return Err(ApiError::new(
            ErrorKind::Invalid,
            "Warren has no registry to push to; use docker save",
        ));
    }
    Err(ApiError::new(ErrorKind::NotFound, "page not found"))
}

/// `DELETE /images/{name}?force=` → `[{"Untagged": …}, {"Deleted": …}]`.
async fn remove(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<RemoveAction>>, ApiError> {
    let name = name.trim_start_matches('/').to_string();
    let force = query_bool(query.get("force").map(String::as_str));
    let images = Arc::clone(&agent.images);
    let actions = tokio::task::spawn_blocking(move || images.remove(&name, force))
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("remove task: {e}")))??;
    Ok(Json(actions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filter_globs_like_docker() {
        assert!(reference_matches("bb", "bb:1"));
        assert!(reference_matches("bb:1", "bb:1"));
        assert!(!reference_matches("bb:2", "bb:1"));
        assert!(reference_matches("b*", "bb:1"));
        assert!(!reference_matches("*", "me/app:1"));
        assert!(reference_matches("*/*", "me/app:1"));
    }

    #[test]
    fn import_reference_accepts_both_forms() {
        assert_eq!(import_reference("bb:1", "").unwrap().unwrap(), "bb:1");
        assert_eq!(import_reference("bb", "1").unwrap().unwrap(), "bb:1");
        assert_eq!(import_reference("", "").unwrap(), None);
        assert!(import_reference("BB", "").is_err());
    }
}
