//! Image references (`name[:tag]`) in Docker's familiar form: `docker.io/library/busybox` is
//! stored and shown as `busybox`, a missing tag means `latest`. Digest references are not
//! supported (there is no registry, so nothing has a repository digest).

use std::fmt;

/// A validated, normalised `name:tag`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    pub name: String,
    pub tag: String,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

impl Reference {
    /// Parse `name[:tag]`; the reason says what is wrong when it is not a valid reference.
    pub fn parse(text: &str) -> Result<Reference, String> {
        if text.is_empty() {
            return Err("empty reference".into());
        }
        if text.contains('@') {
            return Err("digest references are not supported".into());
        }
        let last_slash = text.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match text[last_slash..].rfind(':') {
            Some(i) => (&text[..last_slash + i], &text[last_slash + i + 1..]),
            None => (text, "latest"),
        };
        Reference::from_parts(name, tag)
    }

    /// Build from a separate repository and tag (the API's `repo=`/`tag=` form).
    pub fn from_parts(name: &str, tag: &str) -> Result<Reference, String> {
        validate_tag(tag)?;
        let name = normalise_name(name)?;
        if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("cannot specify 64-byte hexadecimal strings".into());
        }
        Ok(Reference {
            name,
            tag: tag.to_string(),
        })
    }
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid tag {tag:?}"))
    }
}

/// Check each path component and drop Docker Hub's implicit parts.
fn normalise_name(name: &str) -> Result<String, String> {
    let mut parts: Vec<&str> = name.split('/').collect();
    let mut domain = None;
    if parts.len() > 1
        && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost")
    {
        let d = parts.remove(0);
        let valid = !d.is_empty()
            && d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
        if !valid {
            return Err(format!("invalid domain {d:?}"));
        }
        if d == "docker.io" || d == "index.docker.io" {
            if parts.len() == 2 && parts[0] == "library" {
                parts.remove(0);
            }
        } else {
            domain = Some(d);
        }
    }
    for part in &parts {
        if part.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("repository name ({name}) must be lowercase"));
        }
        if !valid_path_component(part) {
            return Err(format!("invalid repository name ({name})"));
        }
    }
    Ok(domain
        .into_iter()
        .chain(parts)
        .collect::<Vec<_>>()
        .join("/"))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &part[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn familiar_names_and_default_tag() {
        assert_eq!(parsed("bb"), "bb:latest");
        assert_eq!(parsed("bb:1"), "bb:1");
        assert_eq!(parsed("docker.io/library/busybox:1.36"), "busybox:1.36");
        assert_eq!(parsed("docker.io/me/app"), "me/app:latest");
        assert_eq!(parsed("localhost:5000/x/y:v1"), "localhost:5000/x/y:v1");
        assert_eq!(parsed("quay.io/a/b"), "quay.io/a/b:latest");
    }

    #[test]
    fn invalid_references_are_refused() {
        for bad in [
            "",
            "Upper",
            "a//b",
            "a:",
            "a:-x",
            "-a",
            "a@sha256:00",
            "a b",
            &"0".repeat(64),
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
