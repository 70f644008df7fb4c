//! The agent's foundation, end to end: Docker CLI compatibility, socket security, mutual TLS,
//! configuration errors, the root lock and clean shutdown. Every test runs in its own sandbox.

mod common;

use std::process::{Command, Output};

use common::{bin, Sandbox};

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The real docker CLI, with its config dir kept inside the test's temp dir.
fn docker(sb: &Sandbox, args: &[&str]) -> Output {
    sb.cmd("docker")
        .env("DOCKER_CONFIG", sb.dir.path().join("docker-config"))
        .args(args)
        .output()
        .expect("run docker CLI")
}

fn warrend_cmd(sb: &Sandbox, args: &[&str]) -> Command {
    let mut cmd = sb.cmd(bin("warrend"));
    cmd.args(args);
    cmd
}

#[test]
fn docker_cli_version_and_info_work_against_warren() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(&[]);
    let out = docker(&sb, &["-H", &agent.host(), "version"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "docker version failed: {stderr}");
    assert!(stdout.contains("Server: Warren"), "{stdout}");
    assert!(stdout.contains("API version:      1.50"), "{stdout}");

    let out = docker(&sb, &["-H", &agent.host(), "info"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "docker info failed: {stderr}");
    let data_root = sb.dir.path().join("data");
    assert!(
        stdout.contains(&format!("Docker Root Dir: {}", data_root.display())),
        "{stdout}"
    );
    assert!(stdout.contains("Swarm: inactive"), "{stdout}");
}

#[test]
fn warren_cli_prints_text_and_json() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(&[]);
    let out = sb.ok(
        bin("warren"),
        &["-H", &agent.host(), "info", "--format", "json"],
    );
    let info: serde_json::Value = serde_json::from_str(&out).expect("info is JSON");
    assert_eq!(info["ID"].as_str().map(str::len), Some(64));
    assert_eq!(info["OSType"], "linux");

    let out = sb
        .cmd(bin("warren"))
        .env("WARREN_HOST", agent.host())
        .args(["version", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("version is JSON");
    assert_eq!(v["Server"]["ApiVersion"], "1.50");
    assert_eq!(v["Client"]["Version"], v["Server"]["Version"]);
}

#[test]
fn socket_is_root_only() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let agent = sb.start_agent(&[]);
    let mode = std::fs::metadata(&agent.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660, "socket mode is {mode:o}");
}

#[test]
fn ping_negotiation_errors_and_keepalive_follow_docker() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(&[]);
    let sock = agent.socket.to_str().unwrap();
    // HEAD /_ping: headers the docker CLI negotiates with, and no body.
    let head = sb.ok(
        "curl",
        &["-sS", "-I", "--unix-socket", sock, "http://w/_ping"],
    );
    let head = head.to_ascii_lowercase();
    for header in [
        "api-version: 1.50",
        "ostype: linux",
        "docker-experimental: false",
        "server: warren/",
        "swarm: inactive",
    ] {
        assert!(head.contains(header), "missing {header} in {head}");
    }
    // Unknown path: 404 with a JSON message.
    let out = sb.ok(
        "curl",
        &[
            "-sS",
            "-w",
            "\n%{http_code}",
            "--unix-socket",
            sock,
            "http://w/v1.44/nope",
        ],
    );
    assert!(out.ends_with("\n404"), "{out}");
    assert!(out.contains("\"message\""), "{out}");
    // Too-new version prefix: 400.
    let out = sb.ok(
        "curl",
        &[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--unix-socket",
            sock,
            "http://w/v1.99/version",
        ],
    );
    assert_eq!(out, "400");
    // Keep-alive: curl reuses one connection for both requests.
    let out = sb.ok(
        "curl",
        &[
            "-sS",
            "-v",
            "--unix-socket",
            sock,
            "http://w/_ping",
            "http://w/v1.24/_ping",
        ],
    );
    let (_, stderr) = text(&sb.run(
        "curl",
        &[
            "-sS",
            "-v",
            "--unix-socket",
            sock,
            "http://w/_ping",
            "http://w/v1.24/_ping",
        ],
    ));
    assert_eq!(out, "OKOK");
    assert!(stderr.contains("Re-using existing connection"), "{stderr}");
}

#[test]
fn second_agent_on_same_roots_is_refused() {
    let sb = Sandbox::new();
    let agent = sb.start_agent(&[]);
    let data = sb.dir.path().join("data");
    let exec = sb.dir.path().join("run");
    let other_sock = sb.dir.path().join("other.sock");
    let out = warrend_cmd(
        &sb,
        &[
            "--config-file",
            sb.dir.path().join("daemon.json").to_str().unwrap(),
            "--data-root",
            data.to_str().unwrap(),
            "--exec-root",
            exec.to_str().unwrap(),
            "-H",
            &format!("unix://{}", other_sock.display()),
        ],
    )
    .output()
    .unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("in use by another warrend"), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", agent.pid())), "{stderr}");
    assert!(
        !other_sock.exists(),
        "the refused agent must not create its socket"
    );
}

#[test]
fn two_agents_with_their_own_roots_run_side_by_side() {
    let sb = Sandbox::new();
    let first = sb.start_agent(&[]);
    let root = sb.dir.path().join("second");
    let sock = root.join("run/warren.sock");
    let mut second = warrend_cmd(
        &sb,
        &[
            "--config-file",
            sb.dir.path().join("daemon.json").to_str().unwrap(),
            "--data-root",
            root.join("data").to_str().unwrap(),
            "--exec-root",
            root.join("run").to_str().unwrap(),
            "-H",
            &format!("unix://{}", sock.display()),
        ],
    )
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sock.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let a = sb.ok(
        bin("warren"),
        &["-H", &first.host(), "info", "--format", "json"],
    );
    let b = sb.ok(
        bin("warren"),
        &[
            "-H",
            &format!("unix://{}", sock.display()),
            "info",
            "--format",
            "json",
        ],
    );
    let id = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap()["ID"].clone();
    assert_ne!(id(&a), id(&b), "each agent has its own identity");
    let _ = second.kill();
    let _ = second.wait();
}

#[test]
fn sigterm_stops_cleanly_and_removes_the_socket() {
    let sb = Sandbox::new();
    let mut agent = sb.start_agent(&[]);
    let status = agent.stop();
    assert!(
        status.success(),
        "warrend exited with {status}; log:\n{}",
        agent.log_text()
    );
    assert!(!agent.socket.exists(), "socket left behind");
    assert!(agent.log_text().contains("warrend stopped"));
}

#[test]
fn missing_agent_gives_one_clear_line() {
    let sb = Sandbox::new();
    let out = sb.run(
        bin("warren"),
        &["-H", "unix:///nonexistent/warren.sock", "info"],
    );
    let (_, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(6),
        "unavailable exit code; stderr: {stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("unix:///nonexistent/warren.sock"),
        "{stderr}"
    );
    assert!(stderr.contains("warrend"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn config_file_errors_are_clear() {
    let sb = Sandbox::new();
    let cases: &[(&str, &str)] = &[
        ("{\"data-root\": \"/x\", \"no-such-key\": 1}", "no-such-key"),
        ("{\n  \"debug\": true,\n}\n", "line 3"),
        ("{\"mtu\": 5}", "mtu"),
        ("{\"hosts\": [\"tcp://127.0.0.1:2376\"]}", "mutual TLS"),
        (
            "{\"data-root\": \"/tmp/a\"}",
            "both as a flag and in the configuration file: data-root",
        ),
    ];
    for (i, (json, expect)) in cases.iter().enumerate() {
        let file = sb.dir.path().join(format!("bad-{i}.json"));
        std::fs::write(&file, json).unwrap();
        let out = warrend_cmd(
            &sb,
            &[
                "--config-file",
                file.to_str().unwrap(),
                "--data-root",
                sb.dir.path().join(format!("d{i}")).to_str().unwrap(),
                "--exec-root",
                sb.dir.path().join(format!("r{i}")).to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
        let (_, stderr) = text(&out);
        assert!(!out.status.success(), "case {i} should fail");
        assert!(
            stderr.contains(expect),
            "case {i}: expected {expect:?} in {stderr}"
        );
    }
    // An explicitly named but missing config file is an error too.
    let out = warrend_cmd(&sb, &["--config-file", "/nonexistent/daemon.json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).1.contains("/nonexistent/daemon.json"));
}

#[test]
fn tcp_without_tls_is_refused() {
    let sb = Sandbox::new();
    std::fs::write(sb.dir.path().join("none.json"), "{}").unwrap();
    let out = warrend_cmd(
        &sb,
        &[
            "--config-file",
            sb.dir.path().join("none.json").to_str().unwrap(),
            "-H",
            "tcp://127.0.0.1:2376",
            "--data-root",
            sb.dir.path().join("d").to_str().unwrap(),
            "--exec-root",
            sb.dir.path().join("r").to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("without mutual TLS"), "{stderr}");
    assert!(stderr.contains("control this host"), "{stderr}");
    // Nothing listens on the port afterwards.
    let probe = sb.run("curl", &["-sS", "-m", "2", "http://127.0.0.1:2376/_ping"]);
    assert!(!probe.status.success());
}

/// A throwaway CA plus server and client certificates, made with the openssl CLI.
fn make_certs(sb: &Sandbox) -> std::path::PathBuf {
    let dir = sb.dir.path().join("certs");
    std::fs::create_dir_all(&dir).unwrap();
    let script = r#"set -e
        key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
        key ca-key.pem
        openssl req -x509 -new -key ca-key.pem -out ca.pem -days 2 -subj /CN=warren-test-ca \
          -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
        leaf() { # name cn ext
          key "$1-key.pem"
          openssl req -new -key "$1-key.pem" -subj "/CN=$2" -out "$1.csr"
          printf '%s\n' "$3" > "$1.ext"
          openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
            -extfile "$1.ext" -out "$1.pem" 2>/dev/null
        }
        leaf server localhost "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
        leaf client client "extendedKeyUsage=clientAuth"
        cp client.pem cert.pem; cp client-key.pem key.pem
    "#;
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[test]
fn tcp_with_mutual_tls_serves_docker_and_refuses_clients_without_a_certificate() {
    let sb = Sandbox::new();
    let certs = make_certs(&sb);
    let c = |f: &str| certs.join(f).display().to_string();
    let sock = sb.dir.path().join("run/warren.sock");
    let _agent = sb.start_agent(&[
        "-H",
        "tcp://127.0.0.1:2376",
        "--tlsverify",
        "--tlscacert",
        &c("ca.pem"),
        "--tlscert",
        &c("server.pem"),
        "--tlskey",
        &c("server-key.pem"),
    ]);
    // start_agent listens on the unix socket too; the TCP listener is bound before it.
    assert!(sock.exists());
    let tls = [
        "--tlsverify",
        "--tlscacert",
        &c("ca.pem"),
        "--tlscert",
        &c("client.pem"),
        "--tlskey",
        &c("client-key.pem"),
    ];
    let mut args: Vec<&str> = tls.to_vec();
    args.extend(["-H", "tcp://127.0.0.1:2376", "version"]);
    let out = docker(&sb, &args);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "docker over mutual TLS failed: {stderr}"
    );
    assert!(stdout.contains("Server: Warren"), "{stdout}");

    // No client certificate: the handshake is refused.
    let out = docker(
        &sb,
        &[
            "--tlsverify",
            "--tlscacert",
            &c("ca.pem"),
            "-H",
            "tcp://127.0.0.1:2376",
            "version",
        ],
    );
    assert!(
        !out.status.success(),
        "a client without a certificate must be refused"
    );
    assert!(!text(&out).0.contains("Server: Warren"));
    // Plain HTTP on the TLS port gets nothing useful either.
    let out = sb.run("curl", &["-sS", "-m", "3", "http://127.0.0.1:2376/_ping"]);
    assert!(!out.status.success() || !text(&out).0.contains("OK"));

    // The warren CLI with docker-style environment variables.
    let out = sb
        .cmd(bin("warren"))
        .env("WARREN_HOST", "tcp://127.0.0.1:2376")
        .env("WARREN_TLS_VERIFY", "1")
        .env("WARREN_CERT_PATH", &certs)
        .args(["info", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "warren over TLS: {}", text(&out).1);
    // And without TLS settings it explains what is missing.
    let out = sb.run(bin("warren"), &["-H", "tcp://127.0.0.1:2376", "info"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("mutual TLS"), "{}", text(&out).1);
}
