//! `warren network …`: Docker's network verbs, plus `--netns` targets so any network namespace
//! (not only containers) can be connected.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};

use crate::api::client::encode_query;
use crate::api::types::{
    EndpointIpamConfig, EndpointSettings, Ipam, IpamConfigEntry, NetworkConnectRequest,
    NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest, NetworkPruneResponse,
    NetworkResource,
};
use crate::cli::output::{inspect_format, print_inspect, print_json, table, Format};
use crate::cli::template::Template;
use crate::cli::GlobalOptions;
use crate::error::{Error, ErrorKind};

#[derive(Debug, Args)]
#[command(after_help = NETWORK_EXAMPLES)]
pub struct NetworkArgs {
    #[command(subcommand)]
    pub command: NetworkCommand,
}

const NETWORK_EXAMPLES: &str = "Examples:
  warren network create --subnet 10.10.0.0/24 mynet
  warren network create -o com.docker.network.bridge.name=br-lab --internal lab
  warren network connect mynet --netns lab1          # wire a named namespace (ip netns add lab1)
  warren network connect --ip 10.10.0.50 --alias db mynet --netns lab2
  warren network connect -p 8080:80 bridge --netns web   # publish host port 8080
  warren network ls --filter driver=bridge
  warren network inspect mynet
  warren network inspect -f '{{json .Containers}}' mynet
  warren network disconnect mynet --netns lab1
  warren network rm mynet";

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Show networks in detail (JSON, or -f TEMPLATE)
    #[command(
        after_help = "Example:\n  warren network inspect -f '{{range .IPAM.Config}}{{.Subnet}}{{end}}' mynet"
    )]
    Inspect {
        /// Print each network through a Go template (see the README), or `json` for one JSON
        /// document per line
        #[arg(short, long, value_name = "TEMPLATE", value_parser = inspect_format)]
        format: Option<Template>,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove all unused user-defined networks
    Prune {
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
        /// Only networks matching, e.g. label=team=a
        #[arg(long = "filter", value_name = "KEY=VALUE")]
        filters: Vec<String>,
    },
    /// Connect a container or a network namespace to a network
    Connect(ConnectArgs),
    /// Disconnect a container or a network namespace from a network
    Disconnect(DisconnectArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver: bridge (default), macvlan, …
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR form; repeat for dual stack
    #[arg(long, value_name = "CIDR")]
    pub subnet: Vec<String>,
    /// Gateway of the subnet that contains it
    #[arg(long, value_name = "IP")]
    pub gateway: Vec<String>,
    /// Allocate container addresses from this sub-range
    #[arg(long = "ip-range", value_name = "CIDR")]
    pub ip_range: Vec<String>,
    /// Reserve an address: NAME=IP
    #[arg(long = "aux-address", value_name = "NAME=IP")]
    pub aux_address: Vec<String>,
    /// Enable IPv6 (give an IPv6 --subnet too)
    #[arg(long)]
    pub ipv6: bool,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// Allow manual attachment (accepted for compatibility; all networks are attachable)
    #[arg(long)]
    pub attachable: bool,
    /// Driver option KEY=VALUE. bridge: com.docker.network.bridge.name,
    /// com.docker.network.driver.mtu, com.docker.network.bridge.enable_icc,
    /// com.docker.network.bridge.enable_ip_masquerade,
    /// com.docker.network.bridge.host_binding_ipv4, warren.bridge.ports_per_bridge (endpoints
    /// per Linux bridge before an extension bridge is added; default 32, 0 = one flat bridge).
    /// macvlan: parent, macvlan_mode
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    pub opts: Vec<String>,
    /// Label KEY=VALUE
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    pub name: String,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Filter: driver=, name=, id=, label=, scope=, type=custom|builtin, dangling=true
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
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// IPv4 address for the endpoint
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// IPv6 address for the endpoint
    #[arg(long, value_name = "IP")]
    pub ip6: Option<String>,
    /// Network-scoped alias (DNS name); repeatable
    #[arg(long = "alias", value_name = "NAME")]
    pub aliases: Vec<String>,
    /// Publish a port: [HOSTIP:]HOSTPORT:CTRPORT[/tcp|udp]; ranges allowed; repeatable
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Connect a network namespace (NAME under /run/netns, or a path such as /proc/PID/ns/net)
    #[arg(long, value_name = "NAME|PATH", conflicts_with = "container")]
    pub netns: Option<String>,
    pub network: String,
    /// Container name or id (or use --netns)
    #[arg(required_unless_present = "netns")]
    pub container: Option<String>,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Remove the endpoint even if its namespace is gone
    #[arg(short, long)]
    pub force: bool,
    /// Disconnect a network namespace (NAME or PATH)
    #[arg(long, value_name = "NAME|PATH", conflicts_with = "container")]
    pub netns: Option<String>,
    pub network: String,
    #[arg(required_unless_present = "netns")]
    pub container: Option<String>,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::msg(ErrorKind::Invalid, message)
}

fn key_values(pairs: &[String], what: &str) -> Result<BTreeMap<String, String>, Error> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(invalid(format!("invalid {what} {p:?}: expected KEY=VALUE"))),
        })
        .collect()
}

/// `--filter k=v` flags as Docker's filters JSON (list form).
pub fn filters_json(filters: &[String]) -> Result<Option<String>, Error> {
    if filters.is_empty() {
        return Ok(None);
    }
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| invalid(format!("invalid filter {f:?}: expected KEY=VALUE")))?;
        map.entry(k.to_string()).or_default().push(v.to_string());
    }
    Ok(Some(serde_json::to_string(&map).expect("maps serialize")))
}

/// Pair each --gateway/--ip-range/--aux-address with the --subnet that contains it, as docker does.
pub fn ipam_config(args: &CreateArgs) -> Result<Vec<IpamConfigEntry>, Error> {
    use ipnetwork::IpNetwork;
    let subnets = args
        .subnet
        .iter()
        .map(|s| {
            s.parse::<IpNetwork>()
                .map_err(|e| invalid(format!("invalid subnet {s:?}: {e}")))
                .map(|n| (s, n))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut entries: Vec<IpamConfigEntry> = subnets
        .iter()
        .map(|(s, _)| IpamConfigEntry {
            subnet: s.to_string(),
            ..Default::default()
        })
        .collect();
    let owner = |ip: std::net::IpAddr, what: &str, text: &str| -> Result<usize, Error> {
        subnets
            .iter()
            .position(|(_, n)| n.contains(ip))
            .ok_or_else(|| invalid(format!("no matching subnet for {what} {text}")))
    };
    for g in &args.gateway {
        let ip = g
            .parse()
            .map_err(|_| invalid(format!("invalid gateway {g:?}")))?;
        let i = owner(ip, "gateway", g)?;
        if !entries[i].gateway.is_empty() {
            return Err(invalid(format!(
                "cannot set more than one gateway per subnet ({g})"
            )));
        }
        entries[i].gateway = g.clone();
    }
    for r in &args.ip_range {
        let net: IpNetwork = r
            .parse()
            .map_err(|e| invalid(format!("invalid ip-range {r:?}: {e}")))?;
        let i = owner(net.network(), "range", r)?;
        if !entries[i].ip_range.is_empty() {
            return Err(invalid(format!(
                "cannot set more than one ip-range per subnet ({r})"
            )));
        }
        entries[i].ip_range = r.clone();
    }
    for (name, ip_text) in key_values(&args.aux_address, "aux-address")? {
        let ip = ip_text
            .parse()
            .map_err(|_| invalid(format!("invalid aux-address {name}={ip_text}")))?;
        let i = owner(ip, "aux-address", &ip_text)?;
        entries[i].aux_addresses.insert(name, ip_text);
    }
    if entries.is_empty()
        && !(args.gateway.is_empty() && args.ip_range.is_empty() && args.aux_address.is_empty())
    {
        return Err(invalid(
            "--gateway, --ip-range and --aux-address need a --subnet",
        ));
    }
    Ok(entries)
}

fn target_of(netns: &Option<String>, container: &Option<String>) -> String {
    match (netns, container) {
        (Some(ns), _) if ns.starts_with('/') => ns.clone(),
        (Some(ns), _) => format!("netns:{ns}"),
        (None, Some(c)) => c.clone(),
        (None, None) => String::new(), // clap requires one of them
    }
}

fn short(id: &str, no_trunc: bool) -> &str {
    if no_trunc {
        id
    } else {
        &id[..id.len().min(12)]
    }
}

pub async fn run(cli: &GlobalOptions, args: &NetworkArgs) -> Result<(), Error> {
    let client = cli.client()?;
    match &args.command {
        NetworkCommand::Create(c) => {
            let request = NetworkCreateRequest {
                name: c.name.clone(),
                driver: c.driver.clone(),
                enable_ipv6: c.ipv6.then_some(true),
                ipam: Some(Ipam {
                    driver: "default".into(),
                    options: BTreeMap::new(),
                    config: ipam_config(c)?,
                }),
                internal: c.internal,
                attachable: c.attachable,
                options: key_values(&c.opts, "option")?,
                labels: key_values(&c.labels, "label")?,
                ..Default::default()
            };
            let created: NetworkCreateResponse = client.post("/networks/create", &request).await?;
            if !created.warning.is_empty() {
                eprintln!("WARNING: {}", created.warning);
            }
            println!("{}", created.id);
        }
        NetworkCommand::Ls(ls) => {
            let path = match filters_json(&ls.filters)? {
                Some(f) => format!("/networks?filters={}", encode_query(&f)),
                None => "/networks".to_string(),
            };
            let mut networks: Vec<NetworkResource> = client.get(&path).await?;
            networks.sort_by(|a, b| a.name.cmp(&b.name));
            if ls.format == Format::Json {
                print_json(&networks);
            } else if ls.quiet {
                for n in &networks {
                    println!("{}", short(&n.id, ls.no_trunc));
                }
            } else {
                let rows: Vec<Vec<String>> = networks
                    .iter()
                    .map(|n| {
                        let subnets: Vec<&str> =
                            n.ipam.config.iter().map(|c| c.subnet.as_str()).collect();
                        vec![
                            short(&n.id, ls.no_trunc).to_string(),
                            n.name.clone(),
                            n.driver.clone(),
                            n.scope.clone(),
                            subnets.join(","),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE", "SUBNET"], &rows)
                );
            }
        }
        NetworkCommand::Inspect { format, networks } => {
            let mut found = Vec::new();
            let mut failed = Failures::default();
            for name in networks {
                match client
                    .get::<NetworkResource>(&format!("/networks/{}", encode_query(name)))
                    .await
                {
                    Ok(n) => found.push(n),
                    Err(e) => failed.add(e.into()),
                }
            }
            if let Err(e) = print_inspect(&found, format.as_ref()) {
                failed.add(e);
            }
            failed.finish()?;
        }
        NetworkCommand::Rm { networks } => {
            let mut failed = Failures::default();
            for name in networks {
                match client
                    .delete(&format!("/networks/{}", encode_query(name)))
                    .await
                {
                    Ok(()) => println!("{name}"),
                    Err(e) => failed.add(e.into()),
                }
            }
            failed.finish()?;
        }
        NetworkCommand::Prune { force, filters } => {
            if !force
                && !confirm("This removes all user-defined networks not used by any endpoint.")?
            {
                return Ok(());
            }
            let path = match filters_json(filters)? {
                Some(f) => format!("/networks/prune?filters={}", encode_query(&f)),
                None => "/networks/prune".to_string(),
            };
            let pruned: NetworkPruneResponse = client.post(&path, &serde_json::json!({})).await?;
            if !pruned.networks_deleted.is_empty() {
                println!("Deleted Networks:");
                for n in &pruned.networks_deleted {
                    println!("{n}");
                }
            }
        }
        NetworkCommand::Connect(c) => {
            let ipam_config = (c.ip.is_some() || c.ip6.is_some()).then(|| EndpointIpamConfig {
                ipv4_address: c.ip.clone().unwrap_or_default(),
                ipv6_address: c.ip6.clone().unwrap_or_default(),
                ..Default::default()
            });
            let request = NetworkConnectRequest {
                container: target_of(&c.netns, &c.container),
                endpoint_config: Some(EndpointSettings {
                    ipam_config,
                    aliases: c.aliases.clone(),
                    ..Default::default()
                }),
                publish: c.publish.clone(),
            };
            client
                .post_empty(
                    &format!("/networks/{}/connect", encode_query(&c.network)),
                    &request,
                )
                .await?;
        }
        NetworkCommand::Disconnect(d) => {
            let request = NetworkDisconnectRequest {
                container: target_of(&d.netns, &d.container),
                force: d.force,
            };
            client
                .post_empty(
                    &format!("/networks/{}/disconnect", encode_query(&d.network)),
                    &request,
                )
                .await?;
        }
    }
    Ok(())
}

/// Errors of a verb applied to several names: each is printed once, in order. The last one is
/// returned rather than printed, so `main` prints it and exits with its kind's code.
#[derive(Debug, Default)]
struct Failures(Option<Error>);

impl Failures {
    fn add(&mut self, err: Error) {
        if let Some(previous) = self.0.replace(err) {
            eprintln!("warren: {previous}");
        }
    }

    fn finish(self) -> Result<(), Error> {
        self.0.map_or(Ok(()), Err)
    }
}

fn confirm(warning: &str) -> Result<bool, Error> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(invalid(format!(
            "{warning} Pass --force to confirm without a terminal."
        )));
    }
    print!("WARNING! {warning}\nAre you sure you want to continue? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::msg(ErrorKind::Internal, format!("read answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn create(args: &[&str]) -> CreateArgs {
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            c: CreateArgs,
        }
        let mut argv = vec!["t"];
        argv.extend(args);
        T::parse_from(argv).c
    }

    #[test]
    fn gateways_and_ranges_pair_with_their_subnet() {
        let c = create(&[
            "--subnet",
            "10.1.0.0/24",
            "--subnet",
            "fd00:1::/64",
            "--gateway",
            "fd00:1::1",
            "--gateway",
            "10.1.0.1",
            "--ip-range",
            "10.1.0.128/25",
            "--aux-address",
            "router=10.1.0.2",
            "net",
        ]);
        let entries = ipam_config(&c).unwrap();
        assert_eq!(entries[0].gateway, "10.1.0.1");
        assert_eq!(entries[0].ip_range, "10.1.0.128/25");
        assert_eq!(entries[0].aux_addresses["router"], "10.1.0.2");
        assert_eq!(entries[1].gateway, "fd00:1::1");
    }

    #[test]
    fn orphan_gateway_is_refused() {
        assert!(ipam_config(&create(&[
            "--subnet",
            "10.1.0.0/24",
            "--gateway",
            "10.2.0.1",
            "n"
        ]))
        .is_err());
        assert!(ipam_config(&create(&["--gateway", "10.2.0.1", "n"])).is_err());
        assert!(ipam_config(&create(&[
            "--subnet",
            "10.1.0.0/24",
            "--gateway",
            "10.1.0.1",
            "--gateway",
            "10.1.0.2",
            "n"
        ]))
        .is_err());
        assert!(ipam_config(&create(&["--subnet", "bogus", "n"])).is_err());
    }

    #[test]
    fn filters_become_docker_json() {
        let f = filters_json(&["driver=bridge".into(), "label=team=a".into()])
            .unwrap()
            .unwrap();
        assert_eq!(f, r#"{"driver":["bridge"],"label":["team=a"]}"#);
        assert!(filters_json(&["nokey".into()]).is_err());
    }

    #[test]
    fn netns_targets() {
        assert_eq!(target_of(&Some("lab1".into()), &None), "netns:lab1");
        assert_eq!(
            target_of(&Some("/proc/1/ns/net".into()), &None),
            "/proc/1/ns/net"
        );
        assert_eq!(target_of(&None, &Some("web".into())), "web");
    }
}
