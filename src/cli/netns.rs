//! `warren netns …`: daemonless namespace verbs over `crate::netns` and `crate::netlink`,
//! sharing /run/netns with `ip netns`.
//!
//! Every verb validates all its input before touching the kernel, and a verb that makes
//! several objects (`veth`) removes what it made when a later step fails.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use ipnetwork::IpNetwork;

use crate::error::{Error, ErrorKind};
use crate::netlink::{validate_ifname, Netlink, VethSpec};
use crate::netns;

const EXAMPLES: &str = "\
Examples:
  warren netns add red
  warren netns add blue
  warren netns veth red:eth0 blue:eth0 --addr 10.200.1.1/24 --peer-addr 10.200.1.2/24
  warren netns exec red -- ping -c1 10.200.1.2
  warren netns veth - red:eth1 --addr 10.200.2.1/24 --peer-addr 10.200.2.2/24
  warren netns ls
  warren netns del red blue";

/// The host (current) namespace as the caller's threads see it.
const OWN_NETNS: &str = "/proc/self/ns/net";

#[derive(Debug, Args)]
#[command(
    about = "Manage network namespaces (daemonless; shares /run/netns with `ip netns`)",
    after_help = EXAMPLES
)]
pub struct NetnsArgs {
    #[command(subcommand)]
    pub command: NetnsCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum NetnsCommand {
    /// Create a network namespace pinned at /run/netns/NAME
    #[command(after_help = "Example:\n  warren netns add red")]
    Add {
        /// Namespace name (a file name: no '/', not '.' or '..', at most 255 bytes)
        name: String,
    },
    /// List named network namespaces with their netns id and processes
    #[command(
        visible_alias = "list",
        after_help = "Examples:\n  warren netns ls\n  warren netns ls --format json"
    )]
    Ls {
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Delete named network namespaces (all names are checked before any is deleted)
    #[command(
        visible_alias = "delete",
        after_help = "Example:\n  warren netns del red blue"
    )]
    Del {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// Run a command inside a namespace, with its own /sys (like `ip netns exec`)
    #[command(
        after_help = "Examples:\n  warren netns exec red -- ip -br addr\n  warren netns exec red -- sh -c 'ls /sys/class/net'"
    )]
    Exec {
        /// Namespace name or path (e.g. /proc/PID/ns/net)
        name: String,
        /// The command and its arguments; its exit code becomes warren's
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<String>,
    },
    /// Connect two namespaces with a veth pair, each end created directly in its namespace
    #[command(after_help = "\
An endpoint is NAME[:IF]: a namespace name (or absolute ns path) and an interface name.
'-' or 'host' means the current namespace. Interface names default to veth0 (first end)
and veth1 (second end). Both ends and lo in both namespaces are brought up.

Examples:
  warren netns veth red blue
  warren netns veth red:eth0 blue:eth0 --addr 10.200.1.1/24 --peer-addr 10.200.1.2/24
  warren netns veth host:v-red red:eth0 --addr 10.200.2.1/24 --peer-addr 10.200.2.2/24")]
    Veth {
        /// First end: NAME[:IF]
        #[arg(value_name = "NAME1[:IF1]", allow_hyphen_values = true)]
        end1: String,
        /// Second end: NAME[:IF]
        #[arg(value_name = "NAME2[:IF2]", allow_hyphen_values = true)]
        end2: String,
        /// Address for the first end, e.g. 10.200.1.1/24
        #[arg(long, value_name = "CIDR")]
        addr: Option<String>,
        /// Address for the second end, e.g. 10.200.1.2/24
        #[arg(long, value_name = "CIDR")]
        peer_addr: Option<String>,
        /// MTU of both ends
        #[arg(long)]
        mtu: Option<u32>,
    },
    /// Add an address to an interface inside a namespace
    #[command(after_help = "Example:\n  warren netns addr red eth0 10.200.1.1/24")]
    Addr {
        /// Namespace name or path; '-' or 'host' for the current namespace
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// Interface name
        #[arg(value_name = "IF")]
        ifname: String,
        /// Address with prefix length, e.g. 10.200.1.1/24
        cidr: String,
    },
    /// Bring the loopback interface up inside a namespace
    #[command(after_help = "Example:\n  warren netns up red")]
    Up { name: String },
}

/// One end of a veth: where it lives and what it is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Namespace name or absolute ns path; `None` is the current (host) namespace.
    pub netns: Option<String>,
    pub ifname: Option<String>,
}

impl Endpoint {
    fn label(&self) -> &str {
        self.netns.as_deref().unwrap_or("host")
    }

    fn path(&self) -> Result<Option<PathBuf>, Error> {
        Ok(self.netns.as_deref().map(netns::resolve).transpose()?)
    }
}

fn is_host(s: &str) -> bool {
    s == "-" || s == "host"
}

/// Check a namespace reference (name, absolute path, or host) without touching anything.
fn validate_ns_ref(s: &str) -> Result<Option<String>, Error> {
    if is_host(s) {
        return Ok(None);
    }
    if !s.starts_with('/') {
        netns::validate_name(s)?;
    }
    Ok(Some(s.to_owned()))
}

/// Parse `NAME[:IF]`. Interface names cannot contain ':', so the last ':' splits.
pub fn parse_endpoint(s: &str) -> Result<Endpoint, Error> {
    let (ns, ifname) = match s.rsplit_once(':') {
        Some((ns, ifname)) => (ns, Some(ifname)),
        None => (s, None),
    };
    if let Some(ifname) = ifname {
        validate_ifname(ifname)?;
    }
    Ok(Endpoint {
        netns: validate_ns_ref(ns)?,
        ifname: ifname.map(str::to_owned),
    })
}

/// Parse `ADDRESS/PREFIX`; the prefix is required so a forgotten /24 is not a silent /32.
pub fn parse_cidr(s: &str) -> Result<IpNetwork, Error> {
    let invalid =
        |why: String| Error::msg(ErrorKind::Invalid, format!("invalid CIDR {s:?}: {why}"));
    if !s.contains('/') {
        return Err(invalid(
            "expected ADDRESS/PREFIX, e.g. 10.200.1.1/24".into(),
        ));
    }
    s.parse::<IpNetwork>().map_err(|e| invalid(e.to_string()))
}

/// Run a `warren netns` verb. `exec` replaces the process and must run before any thread
/// exists, so it is dispatched before the (current-thread) runtime is built.
pub fn run(args: NetnsArgs) -> Result<(), Error> {
    match args.command {
        NetnsCommand::Exec { name, command } => match netns::exec(&name, &command)? {},
        NetnsCommand::Add { name } => {
            netns::add(&name)?;
            Ok(())
        }
        NetnsCommand::Ls { format } => list(format),
        NetnsCommand::Del { names } => delete(&names),
        NetnsCommand::Veth {
            end1,
            end2,
            addr,
            peer_addr,
            mtu,
        } => {
            let (a, b) = (parse_endpoint(&end1)?, parse_endpoint(&end2)?);
            let addr = addr.as_deref().map(parse_cidr).transpose()?;
            let peer_addr = peer_addr.as_deref().map(parse_cidr).transpose()?;
            runtime()?.block_on(veth(a, b, addr, peer_addr, mtu))
        }
        NetnsCommand::Addr { name, ifname, cidr } => {
            let ns = validate_ns_ref(&name)?;
            validate_ifname(&ifname)?;
            let cidr = parse_cidr(&cidr)?;
            runtime()?.block_on(add_address(ns, ifname, cidr))
        }
        NetnsCommand::Up { name } => {
            let ns = validate_ns_ref(&name)?;
            runtime()?.block_on(loopback_up(ns))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::msg(ErrorKind::Internal, format!("start async runtime: {e}")))
}

fn list(format: Format) -> Result<(), Error> {
    let namespaces = netns::list()?;
    match format {
        Format::Json => {
            let json = serde_json::to_string_pretty(&namespaces)
                .map_err(|e| Error::msg(ErrorKind::Internal, format!("encode json: {e}")))?;
            println!("{json}");
        }
        Format::Table => print!("{}", render_table(&namespaces)),
    }
    Ok(())
}

fn render_table(namespaces: &[netns::NetnsInfo]) -> String {
    let rows: Vec<[String; 3]> = namespaces
        .iter()
        .map(|ns| {
            let id = ns.id.map_or_else(|| "-".to_owned(), |id| id.to_string());
            let pids = if ns.pids.is_empty() {
                "-".to_owned()
            } else {
                ns.pids
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            [ns.name.clone(), id, pids]
        })
        .collect();
    let header = ["NAME".to_owned(), "ID".to_owned(), "PIDS".to_owned()];
    let w0 = rows
        .iter()
        .chain([&header])
        .map(|r| r[0].len())
        .max()
        .unwrap_or(0);
    let w1 = rows
        .iter()
        .chain([&header])
        .map(|r| r[1].len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for [name, id, pids] in std::iter::once(&header).chain(&rows) {
        out.push_str(&format!("{name:<w0$}  {id:<w1$}  {pids}\n"));
    }
    out
}

fn delete(names: &[String]) -> Result<(), Error> {
    // All checked first, so a typo in the third name does not leave the first two deleted.
    for name in names {
        netns::validate_name(name)?;
        netns::resolve(name)?;
    }
    let mut failures = Vec::new();
    for name in names {
        if let Err(e) = netns::delete(name) {
            failures.push(Error::from(e));
        }
    }
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0)),
        _ => Err(Error::msg(
            failures[0].kind(),
            failures
                .iter()
                .map(Error::message)
                .collect::<Vec<_>>()
                .join("; "),
        )),
    }
}

async fn veth(
    a: Endpoint,
    b: Endpoint,
    addr: Option<IpNetwork>,
    peer_addr: Option<IpNetwork>,
    mtu: Option<u32>,
) -> Result<(), Error> {
    let (a_path, b_path) = (a.path()?, b.path()?);
    let a_if = a.ifname.clone().unwrap_or_else(|| "veth0".to_owned());
    let b_if = b.ifname.clone().unwrap_or_else(|| "veth1".to_owned());
    let own = Path::new(OWN_NETNS);
    let a_ns = a_path.as_deref().unwrap_or(own);
    let b_ns = b_path.as_deref().unwrap_or(own);
    if a_if == b_if && netns::same_namespace(a_ns, b_ns)? {
        return Err(Error::msg(
            ErrorKind::Invalid,
            format!(
                "both ends would be {a_if} in the same namespace ({})",
                a.label()
            ),
        ));
    }
    let nl_a = Netlink::for_netns(a_path.as_deref()).await?;
    let nl_b = Netlink::for_netns(b_path.as_deref()).await?;
    for (nl, ifname, end) in [(&nl_a, &a_if, &a), (&nl_b, &b_if, &b)] {
        if nl.link_index(ifname).await?.is_some() {
            return Err(Error::msg(
                ErrorKind::Conflict,
                format!(
                    "interface {ifname} already exists in namespace {}",
                    end.label()
                ),
            ));
        }
    }

    let b_file = File::open(b_ns)
        .map_err(|e| Error::msg(ErrorKind::Internal, format!("open {}: {e}", b_ns.display())))?;
    let spec = VethSpec {
        peer_netns: Some(b_file.as_fd()),
        mtu,
        ..VethSpec::new(a_if.clone(), b_if.clone())
    };
    let a_index = nl_a.create_veth(&spec).await?;

    // Addresses first and lo last, so a refused address leaves even lo as it was.
    let configured = async {
        if let Some(addr) = addr {
            nl_a.add_address(a_index, addr).await?;
        }
        let b_index = nl_b.link_index(&b_if).await?.ok_or_else(|| {
            Error::msg(
                ErrorKind::Internal,
                format!("veth peer {b_if} vanished from namespace {}", b.label()),
            )
        })?;
        if let Some(peer_addr) = peer_addr {
            nl_b.add_address(b_index, peer_addr).await?;
        }
        nl_b.set_up(b_index).await?;
        for nl in [&nl_a, &nl_b] {
            if let Some(lo) = nl.link_index("lo").await? {
                nl.set_up(lo).await?;
            }
        }
        Ok::<(), Error>(())
    }
    .await;
    if let Err(e) = configured {
        // Deleting one end removes the pair, and with it any address we set.
        let _ = nl_a.delete_link(&a_if).await;
        return Err(e);
    }
    Ok(())
}

async fn add_address(ns: Option<String>, ifname: String, cidr: IpNetwork) -> Result<(), Error> {
    let path = ns.as_deref().map(netns::resolve).transpose()?;
    let nl = Netlink::for_netns(path.as_deref()).await?;
    let index = nl.link_index(&ifname).await?.ok_or_else(|| {
        Error::msg(
            ErrorKind::NotFound,
            format!(
                "interface {ifname} not found in namespace {}",
                ns.as_deref().unwrap_or("host")
            ),
        )
    })?;
    Ok(nl.add_address(index, cidr).await?)
}

async fn loopback_up(ns: Option<String>) -> Result<(), Error> {
    let path = ns.as_deref().map(netns::resolve).transpose()?;
    let nl = Netlink::for_netns(path.as_deref()).await?;
    let lo = nl
        .link_index("lo")
        .await?
        .ok_or_else(|| Error::msg(ErrorKind::Internal, "namespace has no lo interface"))?;
    Ok(nl.set_up(lo).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_name_and_optional_interface() {
        let ep = |s| parse_endpoint(s).unwrap();
        assert_eq!(
            ep("red"),
            Endpoint {
                netns: Some("red".into()),
                ifname: None
            }
        );
        assert_eq!(
            ep("red:eth0"),
            Endpoint {
                netns: Some("red".into()),
                ifname: Some("eth0".into())
            }
        );
        assert_eq!(ep("-:v0").netns, None);
        assert_eq!(ep("host").netns, None);
        // Namespace names may contain ':'; interface names may not, so the last ':' splits.
        assert_eq!(ep("a:b:eth0").netns.as_deref(), Some("a:b"));
        assert_eq!(
            ep("/proc/1/ns/net:eth0").netns.as_deref(),
            Some("/proc/1/ns/net")
        );
    }

    #[test]
    fn bad_endpoints_are_invalid() {
        for bad in [
            "red:",
            ":eth0",
            "red:this-is-too-long-0",
            "red:a b",
            "a/b:eth0",
            "..:eth0",
            "",
        ] {
            let err = parse_endpoint(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn cidrs_need_a_prefix_and_valid_numbers() {
        assert_eq!(parse_cidr("10.200.1.1/24").unwrap().prefix(), 24);
        assert!(parse_cidr("fd00::1/64").is_ok());
        for bad in ["10.200.1.1", "10.200.1.300/24", "10.0.0.1/33", "nope/8", ""] {
            let err = parse_cidr(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::Invalid, "{bad:?}");
            assert!(
                err.message().starts_with("invalid CIDR"),
                "{}",
                err.message()
            );
        }
    }

    #[test]
    fn table_aligns_columns() {
        let ns = |name: &str, id, pids: Vec<u32>| netns::NetnsInfo {
            name: name.into(),
            path: PathBuf::from("/run/netns").join(name),
            id,
            pids,
        };
        let out = render_table(&[ns("a", Some(0), vec![1, 22]), ns("longer", None, vec![])]);
        assert_eq!(out, "NAME    ID  PIDS\na       0   1,22\nlonger  -   -\n");
    }

    #[test]
    fn command_line_parses() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "warren", "netns", "exec", "red", "--", "ip", "-br", "addr",
        ])
        .unwrap();
        let crate::cli::Command::Netns(NetnsArgs {
            command: NetnsCommand::Exec { name, command },
        }) = cli.command
        else {
            panic!("parsed as something else");
        };
        assert_eq!(name, "red");
        assert_eq!(command, ["ip", "-br", "addr"]);
    }
}
