//! Container logs: one JSON object per line, `{"stream":"stdout","time":NANOS,"log":"text\n"}`
//! (Docker's json-file shape with the time as Unix nanoseconds, formatted by readers). The
//! shim appends; the agent reads (tail, follow from an offset, attach). Lines are complete
//! JSON objects, so a reader that finds a partial last line simply waits for the rest.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Longest chunk written as one entry when no newline arrives (Docker splits at 16 KiB).
const MAX_ENTRY: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The stream byte of Docker's multiplexed frames.
    pub fn frame_id(self) -> u8 {
        match self {
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub stream: Stream,
    /// Unix time in nanoseconds.
    pub time: u128,
    pub log: String,
}

pub fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The shim's side: splits each stream into lines and appends entries.
#[derive(Debug)]
pub struct LogWriter {
    file: File,
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    pub fn open(path: &Path) -> std::io::Result<LogWriter> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(LogWriter {
            file,
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Append `data` read from `stream`; complete lines become entries at once.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        let idx = usize::from(stream == Stream::Stderr);
        self.partial[idx].extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            let buf = &mut self.partial[idx];
            let cut = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => i + 1,
                None if buf.len() >= MAX_ENTRY => MAX_ENTRY,
                None => break,
            };
            let line: Vec<u8> = buf.drain(..cut).collect();
            encode(&mut out, stream, &line);
        }
        if !out.is_empty() {
            self.file.write_all(&out)?;
        }
        Ok(())
    }

    /// Write what is left of a stream without a final newline (at EOF).
    pub fn flush(&mut self, stream: Stream) -> std::io::Result<()> {
        let idx = usize::from(stream == Stream::Stderr);
        if self.partial[idx].is_empty() {
            return Ok(());
        }
        let rest = std::mem::take(&mut self.partial[idx]);
        let mut out = Vec::new();
        encode(&mut out, stream, &rest);
        self.file.write_all(&out)
    }
}

fn encode(out: &mut Vec<u8>, stream: Stream, line: &[u8]) {
    let entry = LogEntry {
        stream,
        time: now_nanos(),
        log: String::from_utf8_lossy(line).into_owned(),
    };
    if serde_json::to_writer(&mut *out, &entry).is_ok() {
        out.push(b'\n');
    }
}

/// Read complete entries from `offset` on; returns them and the offset after the last one.
/// A missing file reads as empty.
pub fn read_from(path: &Path, offset: u64) -> std::io::Result<(Vec<LogEntry>, u64)> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(e),
    };
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let entries = buf[..complete]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    Ok((entries, offset + complete as u64))
}

/// Keep the last `n` entries (Docker's `--tail`); `None` keeps all.
pub fn tail(mut entries: Vec<LogEntry>, n: Option<usize>) -> Vec<LogEntry> {
    if let Some(n) = n {
        let skip = entries.len().saturating_sub(n);
        entries.drain(..skip);
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_partials_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = LogWriter::open(&path).unwrap();
        w.write(Stream::Stdout, b"one\ntw").unwrap();
        w.write(Stream::Stderr, b"err\n").unwrap();
        let (entries, off) = read_from(&path, 0).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].log, "one\n");
        assert_eq!(entries[1].stream, Stream::Stderr);
        w.write(Stream::Stdout, b"o\n").unwrap();
        w.write(Stream::Stdout, b"end").unwrap();
        w.flush(Stream::Stdout).unwrap();
        let (more, _) = read_from(&path, off).unwrap();
        let logs: Vec<&str> = more.iter().map(|e| e.log.as_str()).collect();
        assert_eq!(logs, ["two\n", "end"]);
        assert_eq!(tail(more, Some(1)).len(), 1);
    }
}
