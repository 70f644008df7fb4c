//! Images without a registry, end to end against a sandboxed agent: import (plain, gzip,
//! stdin), `docker import/images/inspect/rmi/load`, docker-save archives with whiteouts
//! (checked through a real overlay mount), OCI layouts, layer sharing, and bad input
//! (corrupt, truncated and path-escaping archives) that must change nothing.

mod common;

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{bin, Agent, Sandbox};
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn warren(sb: &Sandbox, agent: &Agent, args: &[&str]) -> Output {
    sb.cmd(bin("warren"))
        .arg("-H")
        .arg(agent.host())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run warren")
}

fn warren_ok(sb: &Sandbox, agent: &Agent, args: &[&str]) -> String {
    let out = warren(sb, agent, args);
    assert!(
        out.status.success(),
        "warren {args:?} failed: {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn docker(sb: &Sandbox, agent: &Agent, args: &[&str]) -> Output {
    sb.cmd("docker")
        .env("DOCKER_CONFIG", sb.dir.path().join("docker-config"))
        .arg("-H")
        .arg(agent.host())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run docker CLI")
}

fn images_json(sb: &Sandbox, agent: &Agent) -> Vec<serde_json::Value> {
    serde_json::from_str(&warren_ok(sb, agent, &["image", "ls", "--format", "json"]))
        .expect("image ls JSON")
}

fn images_dir(sb: &Sandbox) -> PathBuf {
    sb.dir.path().join("data/images")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The busybox rootfs tarball from the lab helper.
fn busybox_tar(sb: &Sandbox) -> PathBuf {
    let out = sb.dir.path().join("bb.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("labs/images/busybox.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg(&out)
        .stderr(Stdio::null())
        .status()
        .expect("run busybox.sh");
    assert!(status.success(), "labs/images/busybox.sh failed");
    out
}

/// One tar entry written with raw header bytes, so hostile names (`..`, absolute paths)
/// survive (the `tar` crate's own setters refuse them).
fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    path: &str,
    link: &str,
    data: &[u8],
) {
    let mut h = tar::Header::new_old();
    {
        let old = h.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append(&h, data).expect("append raw entry");
}

fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    raw_entry(b, tar::EntryType::Regular, path, "", data);
}

fn dir(b: &mut tar::Builder<Vec<u8>>, path: &str) {
    raw_entry(b, tar::EntryType::Directory, path, "", b"");
}

fn finish(b: tar::Builder<Vec<u8>>) -> Vec<u8> {
    b.into_inner().expect("finish tar")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// Lower layer: etc/a, etc/b, d/{x,y}. Upper layer: deletes etc/a (whiteout), makes d opaque
/// and adds d/z.
fn whiteout_layers() -> (Vec<u8>, Vec<u8>) {
    let mut lower = tar::Builder::new(Vec::new());
    dir(&mut lower, "etc/");
    file(&mut lower, "etc/a", b"a\n");
    file(&mut lower, "etc/b", b"b\n");
    dir(&mut lower, "d/");
    file(&mut lower, "d/x", b"x\n");
    file(&mut lower, "d/y", b"y\n");
    let mut upper = tar::Builder::new(Vec::new());
    dir(&mut upper, "etc/");
    file(&mut upper, "etc/.wh.a", b"");
    dir(&mut upper, "d/");
    file(&mut upper, "d/.wh..wh..opq", b"");
    file(&mut upper, "d/z", b"z\n");
    (finish(lower), finish(upper))
}

fn config_json(layers: &[&[u8]], cmd: &str) -> Vec<u8> {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha256(l)))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-05-01T10:00:00Z",
        "config": {"Cmd": [cmd], "Env": ["PATH=/bin"], "ExposedPorts": {"80/tcp": {}},
                   "Labels": {"lab": "images"}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// A `docker save` archive in the OCI-shaped form docker 25+ writes (blobs + manifest.json).
fn docker_save(tag: &str, layers: &[&[u8]]) -> Vec<u8> {
    let config = config_json(layers, "sh");
    let mut b = tar::Builder::new(Vec::new());
    let mut layer_paths = Vec::new();
    for layer in layers {
        let path = format!("blobs/sha256/{}", sha256(layer));
        file(&mut b, &path, layer);
        layer_paths.push(path);
    }
    let config_path = format!("blobs/sha256/{}", sha256(&config));
    file(&mut b, &config_path, &config);
    let manifest = serde_json::json!([{
        "Config": config_path, "RepoTags": [tag], "Layers": layer_paths,
    }]);
    file(&mut b, "manifest.json", manifest.to_string().as_bytes());
    finish(b)
}

/// A `docker save` archive in the legacy form (docker < 25): `<id>/layer.tar`, `<id>.json`,
/// and a second image whose shared layer is a symlink to the first's.
fn legacy_docker_save(base: &[u8], top: &[u8]) -> Vec<u8> {
    let config_a = config_json(&[base], "a");
    let config_b = config_json(&[base, top], "b");
    let (ida, idb) = (sha256(&config_a), sha256(&config_b));
    let mut b = tar::Builder::new(Vec::new());
    dir(&mut b, "l1/");
    file(&mut b, "l1/layer.tar", base);
    dir(&mut b, "l2/");
    raw_entry(
        &mut b,
        tar::EntryType::Symlink,
        "l2/layer.tar",
        "../l1/layer.tar",
        b"",
    );
    dir(&mut b, "l3/");
    file(&mut b, "l3/layer.tar", top);
    file(&mut b, &format!("{ida}.json"), &config_a);
    file(&mut b, &format!("{idb}.json"), &config_b);
    let manifest = serde_json::json!([
        {"Config": format!("{ida}.json"), "RepoTags": ["old/a:1"], "Layers": ["l1/layer.tar"]},
        {"Config": format!("{idb}.json"), "RepoTags": ["old/b:1", "old/b:latest"],
         "Layers": ["l2/layer.tar", "l3/layer.tar"]},
    ]);
    file(&mut b, "manifest.json", manifest.to_string().as_bytes());
    finish(b)
}

/// An OCI image layout tarball with gzip-compressed layer blobs.
fn oci_layout(name: &str, layers: &[&[u8]]) -> Vec<u8> {
    let config = config_json(layers, "true");
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let mut descs = Vec::new();
    for layer in layers {
        let blob = gzip(layer);
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": format!("sha256:{}", sha256(&blob)), "size": blob.len(),
        }));
        file(&mut b, &format!("blobs/sha256/{}", sha256(&blob)), &blob);
    }
    file(
        &mut b,
        &format!("blobs/sha256/{}", sha256(&config)),
        &config,
    );
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{}", sha256(&config)), "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    file(
        &mut b,
        &format!("blobs/sha256/{}", sha256(&manifest)),
        &manifest,
    );
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", sha256(&manifest)), "size": manifest.len(),
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": "1"},
        }],
    });
    file(&mut b, "index.json", index.to_string().as_bytes());
    finish(b)
}

fn write(sb: &Sandbox, name: &str, bytes: &[u8]) -> PathBuf {
    let path = sb.dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn import_plain_gzip_and_stdin_share_one_layer() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(&[]);
    let tar = busybox_tar(&sb);
    let id = warren_ok(
        &sb,
        &agent,
        &["image", "import", tar.to_str().unwrap(), "bb:1"],
    );
    assert!(id.trim().starts_with("sha256:"), "{id}");

    let gz = write(&sb, "bb.tar.gz", &gzip(&std::fs::read(&tar).unwrap()));
    let out = sb
        .cmd(bin("warren"))
        .args(["-H", &agent.host(), "image", "import", "-", "bb:gz"])
        .args(["--change", "CMD [\"sh\"]"])
        .stdin(std::fs::File::open(&gz).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "import from stdin: {}", text(&out));

    let images = images_json(&sb, &agent);
    assert_eq!(images.len(), 2, "{images:?}");
    let tags: Vec<&str> = images
        .iter()
        .flat_map(|i| i["RepoTags"].as_array().unwrap())
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&"bb:1") && tags.contains(&"bb:gz"),
        "{tags:?}"
    );
    // Same content, compressed or not: one DiffID, unpacked once.
    assert_eq!(entries(&images_dir(&sb).join("layers")).len(), 1);
    let inspect: serde_json::Value =
        serde_json::from_str(&warren_ok(&sb, &agent, &["image", "inspect", "bb:gz"])).unwrap();
    assert_eq!(inspect[0]["Config"]["Cmd"], serde_json::json!(["sh"]));
    let lower = inspect[0]["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap();
    let busybox = Path::new(lower).join("bin/busybox");
    let meta = std::fs::metadata(&busybox).expect("busybox unpacked");
    assert!(meta.mode() & 0o111 != 0 && meta.uid() == 0);
    assert_eq!(
        std::fs::read_link(Path::new(lower).join("bin/sh")).unwrap(),
        Path::new("busybox")
    );

    let table = warren_ok(&sb, &agent, &["image", "ls"]);
    assert!(table.starts_with("REPOSITORY   TAG   IMAGE ID"), "{table}");
    let quiet = warren_ok(&sb, &agent, &["image", "ls", "-q"]);
    assert_eq!(quiet.lines().count(), 2);
    assert_eq!(quiet.lines().next().unwrap().len(), 12);
}

#[test]
fn docker_cli_import_images_inspect_tag_rmi_and_load() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(&[]);
    let tar = busybox_tar(&sb);
    let out = docker(&sb, &agent, &["import", tar.to_str().unwrap(), "bb:1"]);
    assert!(out.status.success(), "docker import: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sha256:"));

    let out = docker(&sb, &agent, &["images"]);
    assert!(out.status.success(), "docker images: {}", text(&out));
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("bb ") && l.contains(" 1 ")),
        "{listing}"
    );
    let out = docker(&sb, &agent, &["images", "bb"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("bb "),
        "{}",
        text(&out)
    );
    let out = docker(&sb, &agent, &["images", "nothere"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("bb "),
        "{}",
        text(&out)
    );

    let out = docker(&sb, &agent, &["image", "inspect", "bb:1"]);
    assert!(out.status.success(), "docker image inspect: {}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["RepoTags"], serde_json::json!(["bb:1"]));
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);

    let out = docker(&sb, &agent, &["tag", "bb:1", "quay.io/lab/bb:2"]);
    assert!(out.status.success(), "docker tag: {}", text(&out));
    let out = docker(&sb, &agent, &["image", "inspect", "quay.io/lab/bb:2"]);
    assert!(
        out.status.success(),
        "inspect by a name with / and : {}",
        text(&out)
    );

    let out = docker(&sb, &agent, &["rmi", "bb:1"]);
    assert!(out.status.success(), "docker rmi: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Untagged: bb:1"));
    let out = docker(&sb, &agent, &["rmi", "quay.io/lab/bb:2"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Deleted: sha256:"),
        "{}",
        text(&out)
    );
    let out = docker(&sb, &agent, &["image", "inspect", "bb:1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No such image"),
        "{}",
        text(&out)
    );
    assert!(
        entries(&images_dir(&sb).join("layers")).is_empty(),
        "layer collected"
    );

    let (lower, upper) = whiteout_layers();
    let save = write(
        &sb,
        "save.tar",
        &docker_save("lab/app:2", &[&lower, &upper]),
    );
    let out = docker(&sb, &agent, &["load", "-i", save.to_str().unwrap()]);
    assert!(out.status.success(), "docker load: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Loaded image: lab/app:2"),
        "{}",
        text(&out)
    );
}

#[test]
fn docker_save_whiteouts_and_opaque_dirs_merge_in_overlay() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(&[]);
    let (lower, upper) = whiteout_layers();
    let save = write(&sb, "save.tar", &docker_save("app:1", &[&lower, &upper]));
    let out = warren_ok(
        &sb,
        &agent,
        &["image", "load", "-i", save.to_str().unwrap()],
    );
    assert_eq!(out, "Loaded image: app:1\n");

    let inspect: serde_json::Value =
        serde_json::from_str(&warren_ok(&sb, &agent, &["image", "inspect", "app:1"])).unwrap();
    assert_eq!(
        inspect[0]["Config"]["ExposedPorts"],
        serde_json::json!({"80/tcp": {}})
    );
    let lowerdir = inspect[0]["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap();
    let dirs: Vec<&str> = lowerdir.split(':').collect();
    assert_eq!(dirs.len(), 2);
    // Converted whiteouts in the upper layer.
    let (top, bottom) = (Path::new(dirs[0]), Path::new(dirs[1]));
    let wh = std::fs::symlink_metadata(top.join("etc/a")).expect("whiteout device");
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert!(!top.join("etc/.wh.a").exists());
    assert_eq!(
        xattr::get(top.join("d"), "trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    assert!(bottom.join("d/x").is_file());

    // The merged view, through a real overlay mount in the sandbox's mount namespace.
    let mnt = sb.dir.path().join("merged");
    std::fs::create_dir(&mnt).unwrap();
    sb.sh(&format!(
        "mount -t overlay overlay -o lowerdir={lowerdir} {}",
        mnt.display()
    ));
    let listing = sb.sh(&format!("cd {} && ls etc d", mnt.display()));
    sb.sh(&format!("umount {}", mnt.display()));
    assert_eq!(listing, "d:\nz\n\netc:\nb\n", "merged view");
}

#[test]
fn oci_layout_loads_and_layers_are_shared() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(&[]);
    let (base, _) = whiteout_layers();
    let mut top1 = tar::Builder::new(Vec::new());
    file(&mut top1, "one", b"1\n");
    let top1 = finish(top1);
    let mut top2 = tar::Builder::new(Vec::new());
    file(&mut top2, "two", b"2\n");
    let top2 = finish(top2);

    let oci = write(
        &sb,
        "oci.tar",
        &oci_layout("docker.io/lab/oci:1", &[&base, &top1]),
    );
    let out = warren_ok(&sb, &agent, &["image", "load", "-i", oci.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: lab/oci:1\n");
    let base_dir = images_dir(&sb).join("layers").join(sha256(&base));
    let inode = std::fs::metadata(base_dir.join("etc/b")).unwrap().ino();

    let save = write(&sb, "save2.tar", &docker_save("lab/two:1", &[&base, &top2]));
    warren_ok(
        &sb,
        &agent,
        &["image", "load", "-i", save.to_str().unwrap()],
    );
    // base unpacked once: same inode; three layers for two images.
    assert_eq!(
        std::fs::metadata(base_dir.join("etc/b")).unwrap().ino(),
        inode
    );
    assert_eq!(entries(&images_dir(&sb).join("layers")).len(), 3);

    // Removing one image keeps the shared layer for the other.
    warren_ok(&sb, &agent, &["image", "rm", "lab/oci:1"]);
    assert!(base_dir.join("etc/b").is_file());
    assert_eq!(entries(&images_dir(&sb).join("layers")).len(), 2);
    let inspect: serde_json::Value =
        serde_json::from_str(&warren_ok(&sb, &agent, &["image", "inspect", "lab/two:1"])).unwrap();
    assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2);
}

#[test]
fn legacy_docker_save_with_several_images_loads() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(&[]);
    let (base, top) = whiteout_layers();
    let path = write(&sb, "legacy.tar", &legacy_docker_save(&base, &top));
    let out = warren_ok(
        &sb,
        &agent,
        &["image", "load", "-i", path.to_str().unwrap()],
    );
    assert_eq!(
        out,
        "Loaded image: old/a:1\nLoaded image: old/b:1\nLoaded image: old/b:latest\n"
    );
    assert_eq!(images_json(&sb, &agent).len(), 2);
    assert_eq!(entries(&images_dir(&sb).join("layers")).len(), 2);
    // Several tags: removing by id needs -f, by tag only untags.
    let id = warren_ok(&sb, &agent, &["image", "ls", "-q", "old/b"]);
    let out = warren(&sb, &agent, &["image", "rm", id.trim()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert_eq!(
        warren_ok(&sb, &agent, &["image", "rm", "old/b"]),
        "Untagged: old/b:latest\n"
    );
    let out = warren_ok(&sb, &agent, &["image", "rm", "-f", id.trim()]);
    assert!(out.contains("Untagged: old/b:1\nDeleted: sha256:"), "{out}");
    assert_eq!(entries(&images_dir(&sb).join("layers")).len(), 1);
}

/// Nothing was recorded or left behind: no image, no layer, nothing in tmp.
fn assert_unchanged(sb: &Sandbox, agent: &Agent, what: &str) {
    assert!(
        images_json(sb, agent).is_empty(),
        "{what}: an image was listed"
    );
    assert!(
        entries(&images_dir(sb).join("layers")).is_empty(),
        "{what}: a layer was kept"
    );
    assert!(
        entries(&images_dir(sb).join("tmp")).is_empty(),
        "{what}: temp files left"
    );
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(&[]);
    let sock = agent.socket.to_str().unwrap().to_string();

    // Unknown images: 404 "No such image" (docker run would then try to pull).
    let out = sb.ok(
        "curl",
        &[
            "-sS",
            "-w",
            "\n%{http_code}",
            "--unix-socket",
            &sock,
            "http://w/v1.50/images/nope:1/json",
        ],
    );
    assert!(
        out.ends_with("\n404") && out.contains("No such image: nope:1"),
        "{out}"
    );
    let out = warren(&sb, &agent, &["image", "rm", "nope"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = docker(&sb, &agent, &["rmi", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("No such image: nope"));

    // A valid tarball to corrupt.
    let mut good = tar::Builder::new(Vec::new());
    file(&mut good, "big", &vec![7u8; 64 * 1024]);
    file(&mut good, "small", b"s\n");
    let good = finish(good);

    let mut corrupt_gz = gzip(&good);
    let mid = corrupt_gz.len() / 2;
    for b in &mut corrupt_gz[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let mut truncated_gz = gzip(&good);
    truncated_gz.truncate(truncated_gz.len() - 20);
    let truncated_tar = good[..10_000].to_vec();

    let outside = sb.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let host_canary = format!("warren-canary-{}", std::process::id());
    let mut dotdot = tar::Builder::new(Vec::new());
    file(&mut dotdot, "ok", b"fine\n");
    file(&mut dotdot, "../evil", b"evil\n");
    let mut deep_dotdot = tar::Builder::new(Vec::new());
    file(&mut deep_dotdot, "a/../../../../outside/evil", b"evil\n");
    let mut symlink_escape = tar::Builder::new(Vec::new());
    raw_entry(
        &mut symlink_escape,
        tar::EntryType::Symlink,
        "a",
        outside.to_str().unwrap(),
        b"",
    );
    file(&mut symlink_escape, "a/passwd", b"root::0:0::/:/bin/sh\n");
    let mut hardlink_escape = tar::Builder::new(Vec::new());
    raw_entry(&mut hardlink_escape, tar::EntryType::Link, "x", "../x", b"");
    let mut hardlink_abs = tar::Builder::new(Vec::new());
    raw_entry(
        &mut hardlink_abs,
        tar::EntryType::Link,
        "p",
        "/etc/passwd",
        b"",
    );

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("corrupt gzip", corrupt_gz),
        ("truncated gzip", truncated_gz),
        ("truncated tar", truncated_tar),
        ("zstd", vec![0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]),
        ("../evil", finish(dotdot)),
        ("a/../../../../outside/evil", finish(deep_dotdot)),
        (
            "symlink a -> outside, then a/passwd",
            finish(symlink_escape),
        ),
        ("hard link to ../x", finish(hardlink_escape)),
        (
            "hard link to /etc/passwd (not in the layer)",
            finish(hardlink_abs),
        ),
    ];
    for (what, bytes) in &cases {
        let path = write(&sb, "bad.tar", bytes);
        let out = warren(
            &sb,
            &agent,
            &["image", "import", path.to_str().unwrap(), "bad:1"],
        );
        assert!(!out.status.success(), "{what}: accepted: {}", text(&out));
        assert_eq!(
            out.status.code(),
            Some(5),
            "{what}: not an invalid-input error: {}",
            text(&out)
        );
        let out = docker(&sb, &agent, &["import", path.to_str().unwrap(), "bad:2"]);
        assert!(!out.status.success(), "{what}: docker import accepted it");
        assert_unchanged(&sb, &agent, what);
        assert!(
            entries(&outside).is_empty(),
            "{what}: wrote outside the layer"
        );
    }
    // A docker-save archive whose layer does not match its DiffID, and one with a missing layer.
    let (lower, upper) = whiteout_layers();
    let mut save = docker_save("tampered:1", &[&lower, &upper]);
    let pos = save.windows(2).position(|w| w == b"b\n").unwrap();
    save[pos] = b'B';
    let path = write(&sb, "tampered.tar", &save);
    let out = warren(
        &sb,
        &agent,
        &["image", "load", "-i", path.to_str().unwrap()],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not match its digest"),
        "{}",
        text(&out)
    );
    assert_unchanged(&sb, &agent, "tampered layer");
    let path = write(&sb, "rootfs-as-load.tar", &good);
    let out = warren(
        &sb,
        &agent,
        &["image", "load", "-i", path.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert_unchanged(&sb, &agent, "load of a plain rootfs");

    // Nothing escaped anywhere: not next to the data root, not at the host's root.
    let mut abs = tar::Builder::new(Vec::new());
    file(&mut abs, &format!("/{host_canary}"), b"neutralised\n");
    let path = write(&sb, "abs.tar", &finish(abs));
    warren_ok(
        &sb,
        &agent,
        &["image", "import", path.to_str().unwrap(), "abs:1"],
    );
    assert!(!Path::new("/").join(&host_canary).exists());
    let inspect: serde_json::Value =
        serde_json::from_str(&warren_ok(&sb, &agent, &["image", "inspect", "abs:1"])).unwrap();
    let layer = inspect[0]["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap();
    assert!(
        Path::new(layer).join(&host_canary).is_file(),
        "leading / stripped"
    );
    let mut stray = Vec::new();
    for dir in [
        sb.dir.path().to_path_buf(),
        images_dir(&sb),
        images_dir(&sb).join("tmp"),
    ] {
        stray.extend(
            entries(&dir)
                .into_iter()
                .filter(|n| n == "evil" || n == "x" || n == "passwd"),
        );
    }
    assert!(stray.is_empty(), "escaped entries: {stray:?}");
}

#[test]
fn interrupted_imports_are_cleaned_at_start() {
    let sb = Sandbox::new();
    let mut agent = sb.start_agent(&[]);
    // Debris an import killed mid-way would leave: a half-unpacked layer in tmp, and a layer
    // moved into place whose image was never recorded.
    let images = images_dir(&sb);
    std::fs::create_dir_all(images.join("tmp/layer-0123/etc")).unwrap();
    std::fs::create_dir_all(images.join("layers").join("ab".repeat(32))).unwrap();
    agent.stop();
    let agent = sb.start_agent(&[]);
    assert_unchanged(&sb, &agent, "after restart");
}
