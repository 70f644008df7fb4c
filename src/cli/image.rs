//! `warren image …`: images without a registry, like `docker import|load|images|rmi|inspect|tag`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Args, Subcommand};
use hyper::Method;
use tokio::io::AsyncReadExt;

use crate::api::client::{encode_query, Client};
use crate::api::images::ImageSummary;
use crate::cli::network::filters_json;
use crate::cli::output::{print_json, table, Format};
use crate::cli::GlobalOptions;
use crate::error::{Error, ErrorKind};
use crate::runtime::image::RemoveAction;

#[derive(Debug, Args)]
#[command(after_help = IMAGE_EXAMPLES)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

const IMAGE_EXAMPLES: &str = "Examples:
  labs/images/busybox.sh bb.tar && warren image import bb.tar bb:1
  gzip -c bb.tar | warren image import - bb:gz --change 'CMD [\"sh\"]'
  docker save -o app.tar app:1 && warren image load -i app.tar
  warren image ls
  warren image inspect bb:1
  warren image tag bb:1 bb:latest
  warren image rm bb:1";

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Create an image from a root filesystem tarball (plain or gzip), like `docker import`
    Import {
        /// Apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL)
        #[arg(short, long = "change", value_name = "INSTRUCTION")]
        changes: Vec<String>,
        /// Commit message for the image's history
        #[arg(short, long)]
        message: Option<String>,
        /// Tarball path, or - for stdin
        file: String,
        /// NAME[:TAG] for the new image
        reference: Option<String>,
    },
    /// Load images from a `docker save` archive or an OCI image layout tarball
    Load {
        /// Read from this file instead of stdin
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// No progress output
        #[arg(short, long)]
        quiet: bool,
    },
    /// List images
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Remove images (untag; delete when no tag is left)
    #[command(alias = "remove", alias = "rmi")]
    Rm {
        /// Remove an image referenced by several tags, or untag an image in use
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Show images in detail (JSON)
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Give an image another name
    Tag { source: String, target: String },
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Filter: dangling=true|false, label=KEY[=VALUE], reference=PATTERN
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Only IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Full IDs
    #[arg(long)]
    pub no_trunc: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Only images whose name matches (like `docker images NAME`)
    pub reference: Option<String>,
}

/// Image names go into paths as they are (the API accepts `/` and `:`); the rest is escaped.
fn name_path(name: &str) -> String {
    encode_query(name).replace("%2F", "/").replace("%3A", ":")
}

pub async fn run(cli: &GlobalOptions, args: &ImageArgs) -> Result<(), Error> {
    let client = cli.client()?;
    match &args.command {
        ImageCommand::Import {
            changes,
            message,
            file,
            reference,
        } => {
            let mut query = String::from("fromSrc=-");
            if let Some(r) = reference {
                query.push_str(&format!("&repo={}", encode_query(r)));
            }
            if let Some(m) = message {
                query.push_str(&format!("&message={}", encode_query(m)));
            }
            for c in changes {
                query.push_str(&format!("&changes={}", encode_query(c)));
            }
            let source = if file == "-" {
                None
            } else {
                Some(PathBuf::from(file))
            };
            let answer = upload(
                &client,
                &format!("/images/create?{query}"),
                source.as_ref(),
                false,
            )
            .await?;
            print_messages(&answer)
        }
        ImageCommand::Load { input, quiet } => {
            let answer = upload(&client, "/images/load", input.as_ref(), *quiet).await?;
            print_messages(&answer)
        }
        ImageCommand::Ls(ls) => list(&client, ls).await,
        ImageCommand::Rm { force, images } => {
            let mut last_error = None;
            for name in images {
                let path = format!("/images/{}?force={}", name_path(name), u8::from(*force));
                let result = client
                    .call(Method::DELETE, &path, None)
                    .await
                    .and_then(|b| {
                        serde_json::from_slice::<Vec<RemoveAction>>(&b).map_err(|source| {
                            crate::api::client::ClientError::Decode {
                                path: path.clone(),
                                source,
                            }
                        })
                    });
                match result {
                    Ok(actions) => {
                        for action in actions {
                            match action {
                                RemoveAction::Untagged(t) => println!("Untagged: {t}"),
                                RemoveAction::Deleted(id) => println!("Deleted: {id}"),
                            }
                        }
                    }
                    Err(e) => report(&mut last_error, Error::from(e)),
                }
            }
            last_error.map_or(Ok(()), Err)
        }
        ImageCommand::Inspect { images } => {
            let mut found = Vec::new();
            let mut last_error = None;
            for name in images {
                let path = format!("/images/{}/json", name_path(name));
                match client.get::<serde_json::Value>(&path).await {
                    Ok(v) => found.push(v),
                    Err(e) => report(&mut last_error, Error::from(e)),
                }
            }
            print_json(&found);
            last_error.map_or(Ok(()), Err)
        }
        ImageCommand::Tag { source, target } => {
            let path = format!(
                "/images/{}/tag?repo={}",
                name_path(source),
                encode_query(target)
            );
            client.call(Method::POST, &path, None).await?;
            Ok(())
        }
    }
}

/// Several names, several errors: print the earlier ones now, return the last (main prints it
/// and picks the exit code from it).
fn report(last: &mut Option<Error>, err: Error) {
    if let Some(previous) = last.replace(err) {
        eprintln!("warren: {previous}");
    }
}

/// Send a tarball from `source` (stdin when `None`), with a progress bar on a terminal.
async fn upload(
    client: &Client,
    path: &str,
    source: Option<&PathBuf>,
    quiet: bool,
) -> Result<Bytes, Error> {
    let (reader, total): (Box<dyn tokio::io::AsyncRead + Send + Unpin>, Option<u64>) =
        match source {
            Some(file) => {
                let f = tokio::fs::File::open(file).await.map_err(|e| {
                    Error::msg(ErrorKind::NotFound, format!("open {}: {e}", file.display()))
                })?;
                let len = f.metadata().await.ok().map(|m| m.len());
                (Box::new(f), len)
            }
            None => {
                if std::io::stdin().is_terminal() {
                    return Err(Error::msg(
                        ErrorKind::Invalid,
                        "refusing to read a tarball from a terminal; give a file or pipe one in",
                    ));
                }
                use std::os::fd::AsFd;
                let fd = std::io::stdin().as_fd().try_clone_to_owned().map_err(|e| {
                    Error::msg(ErrorKind::Internal, format!("duplicate stdin: {e}"))
                })?;
                let file = tokio::fs::File::from_std(std::fs::File::from(fd));
                (Box::new(file), None)
            }
        };
    let bar = if !quiet && std::io::stderr().is_terminal() {
        let bar = match total {
            Some(n) => indicatif::ProgressBar::new(n).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            ),
            None => indicatif::ProgressBar::new_spinner().with_style(
                indicatif::ProgressStyle::with_template("{spinner} {binary_bytes} sent")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            ),
        };
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        Some(bar)
    } else {
        None
    };
    let progress = bar.clone();
    let chunks = futures::stream::unfold(reader, move |mut reader| {
        let progress = progress.clone();
        async move {
            let mut buf = vec![0u8; 256 * 1024];
            match reader.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    if let Some(bar) = &progress {
                        bar.inc(n as u64);
                    }
                    Some((Ok(Bytes::from(buf)), reader))
                }
                Err(e) => Some((Err(e), reader)),
            }
        }
    });
    let result = client.post_stream(path, "application/x-tar", chunks).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(result?)
}

/// Print a JSON message stream (`status` / `stream` lines); an `error` line fails.
fn print_messages(answer: &[u8]) -> Result<(), Error> {
    for line in answer.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| {
            Error::msg(
                ErrorKind::Internal,
                format!("unexpected answer from the agent: {e}"),
            )
        })?;
        if let Some(error) = value.get("error").and_then(|v| v.as_str()) {
            return Err(Error::msg(ErrorKind::Internal, error.to_string()));
        }
        if let Some(status) = value.get("status").and_then(|v| v.as_str()) {
            println!("{status}");
        }
        if let Some(stream) = value.get("stream").and_then(|v| v.as_str()) {
            print!("{stream}");
        }
    }
    Ok(())
}

async fn list(client: &Client, ls: &LsArgs) -> Result<(), Error> {
    let mut filters = ls.filters.clone();
    if let Some(r) = &ls.reference {
        filters.push(format!("reference={r}"));
    }
    let path = match filters_json(&filters)? {
        Some(f) => format!("/images/json?filters={}", encode_query(&f)),
        None => "/images/json".to_string(),
    };
    let images: Vec<ImageSummary> = client.get(&path).await?;
    if ls.format == Format::Json {
        print_json(&images);
        return Ok(());
    }
    let id_of = |id: &str| -> String {
        if ls.no_trunc {
            id.to_string()
        } else {
            crate::runtime::image::short_id(id)
        }
    };
    if ls.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for image in &images {
            if seen.insert(&image.id) {
                println!("{}", id_of(&image.id));
            }
        }
        return Ok(());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let mut rows = Vec::new();
    for image in &images {
        let names: Vec<(String, String)> = if image.repo_tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            image
                .repo_tags
                .iter()
                .map(|t| match t.rsplit_once(':') {
                    Some((n, tag)) => (n.to_string(), tag.to_string()),
                    None => (t.clone(), "<none>".into()),
                })
                .collect()
        };
        for (repo, tag) in names {
            rows.push(vec![
                repo,
                tag,
                id_of(&image.id),
                ago(now - image.created),
                human_size(image.size),
            ]);
        }
    }
    print!(
        "{}",
        table(&["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], &rows)
    );
    Ok(())
}

/// Docker's relative times: "3 minutes ago", "About an hour ago".
fn ago(seconds: i64) -> String {
    let s = seconds.max(0);
    let text = match s {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".to_string(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".to_string(),
        7200..=172_799 => format!("{} hours", s / 3600),
        172_800..=1_209_599 => format!("{} days", s / 86_400),
        1_209_600..=5_183_999 => format!("{} weeks", s / 604_800),
        5_184_000..=63_071_999 => format!("{} months", s / 2_592_000),
        _ => format!("{} years", s / 31_536_000),
    };
    format!("{text} ago")
}

/// Docker's sizes: decimal units, three significant digits ("4.26MB").
fn human_size(bytes: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    #[allow(clippy::cast_precision_loss)] // display only
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_read_like_docker() {
        assert_eq!(human_size(980), "980B");
        assert_eq!(human_size(4_260_000), "4.26MB");
        assert_eq!(human_size(12_300), "12.3kB");
        assert_eq!(ago(5), "5 seconds ago");
        assert_eq!(ago(3 * 3600), "3 hours ago");
    }

    #[test]
    fn names_keep_slashes_and_colons_in_paths() {
        assert_eq!(name_path("quay.io/a/b:1"), "quay.io/a/b:1");
        assert_eq!(name_path("a b"), "a%20b");
    }
}
