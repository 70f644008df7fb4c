//! The request-handling path of the embedded DNS, on arbitrary bytes: `dns::handle` over a
//! fixed snapshot (names, aliases shared by replicas, two networks, an internal one), for
//! both transports and several client scopes. It must never panic, and whatever it answers
//! must parse as a response to the request (same id) that fits the transport.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use warren::dns::handle::{handle, Reply, Transport};
use warren::dns::{EndpointEntry, NetworkEntry, Snapshot};

fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let net = |id: &str, name: &str, internal: bool, subnet: &str| NetworkEntry {
            id: id.into(),
            name: name.into(),
            internal,
            resolves: true,
            subnets: vec![subnet.parse().unwrap()],
        };
        let ep = |net: &str, ns: &str, name: &str, aliases: &[&str], ips: &[&str]| EndpointEntry {
            network_id: net.into(),
            netns_id: ns.into(),
            name: Some(name.into()),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            addresses: ips.iter().map(|i| i.parse().unwrap()).collect(),
        };
        let mut eps = vec![
            ep("n1", "web", "web", &["www"], &["10.1.0.2", "fd00::2"]),
            ep("n2", "db", "db", &[], &["10.2.0.2"]),
            ep("n2", "web", "web", &[], &["10.2.0.3"]),
        ];
        for i in 0..40 {
            let ip = format!("10.1.0.{}", i + 10);
            eps.push(ep(
                "n1",
                &format!("r{i}"),
                &format!("r{i}"),
                &["many"],
                &[ip.as_str()],
            ));
        }
        Snapshot::build(
            &[
                net("n1", "front", false, "10.1.0.0/24"),
                net("n2", "back", true, "10.2.0.0/24"),
            ],
            &eps,
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let s = snapshot();
    for (client, transport) in [
        ("web", Transport::Udp),
        ("db", Transport::Tcp),
        ("nobody", Transport::Udp),
    ] {
        if let Some(Reply::Answer(answer)) = handle(s, s.client(client), data, transport) {
            if transport == Transport::Udp {
                assert!(answer.len() <= 4096, "UDP answer of {} bytes", answer.len());
            }
            assert_eq!(
                answer[..2],
                data[..2],
                "answer id differs from the request's"
            );
            assert!(answer[2] & 0x80 != 0, "answer without QR");
        }
    }
});
