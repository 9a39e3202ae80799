//! Where a webhook may point: not at this host, the cluster's own networks or a cloud metadata
//! service, unless staff allow a network with `--webhook-allow-cidr`.
//!
//! A DataProcessor's URL is written by whoever may edit DataProcessors, and the operator sends
//! a signed POST wherever it points, from inside the cluster. Pointed at
//! `169.254.169.254` it would talk to the node's metadata service, at a Service or Pod
//! address to whatever listens there. So every address the request could reach is checked:
//! an IP literal in the URL before anything else, and every address a host name resolves to
//! inside the resolver the HTTPS client connects with ([`CheckingResolver`]), so the addresses
//! checked are the ones connected to and a name cannot resolve one way when checked and
//! another when used. One refused address refuses the name: a name that resolves to a public
//! and a private address is not sent to either.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// IPv4 networks no webhook may be on by default.
const REFUSED_V4: [Ipv4Net; 11] = [
    // "This network" and unspecified.
    Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8),
    // Private (RFC 1918): the cluster's Pod and Service networks are among them.
    Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8),
    Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12),
    Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16),
    // Shared address space (CGNAT), which holds 100.100.100.200, Alibaba Cloud's metadata.
    Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10),
    // Loopback.
    Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8),
    // Link-local, which holds 169.254.169.254, the metadata service of most clouds.
    Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16),
    // IETF protocol assignments, which hold 192.0.0.192, Oracle Cloud's metadata.
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 0, 0), 24),
    // Multicast.
    Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4),
    // Reserved, and the broadcast address 255.255.255.255.
    Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4),
    Ipv4Net::new_assert(Ipv4Addr::new(255, 255, 255, 255), 32),
];

/// IPv6 networks no webhook may be on by default. IPv4 carried in IPv6 (mapped, NAT64) is
/// judged by its IPv4 address instead.
const REFUSED_V6: [Ipv6Net; 6] = [
    // Unspecified and loopback.
    Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 128),
    Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128),
    // Link-local.
    Ipv6Net::new_assert(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
    // Site-local (deprecated, still routed by some).
    Ipv6Net::new_assert(Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),
    // Unique local, which holds fd00:ec2::254, AWS's IPv6 metadata address.
    Ipv6Net::new_assert(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
    // Multicast.
    Ipv6Net::new_assert(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
];

/// The NAT64 well-known prefix (RFC 6052): its last 32 bits are an IPv4 address the gateway
/// connects to.
const NAT64: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);

/// Which addresses erasure requests may be sent to: any public address, and those of the
/// networks staff allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestinationPolicy {
    allowed: Vec<IpNet>,
}

impl DestinationPolicy {
    /// Public addresses only (the default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Public addresses and those in `networks` (`--webhook-allow-cidr`), e.g. `10.20.0.0/16`
    /// for a processor reached over a private link, or `127.0.0.0/8` in tests.
    pub fn allowing(networks: Vec<IpNet>) -> Self {
        Self {
            allowed: networks.into_iter().map(|n| n.trunc()).collect(),
        }
    }

    /// The networks staff allowed.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Whether a request may be sent to `address`. An IPv4-mapped IPv6 address is judged as
    /// the IPv4 address it is, for the refusal and for the allow-list alike.
    pub fn permits(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        !is_internal(address) || self.allowed.iter().any(|net| net.contains(&address))
    }
}

/// Whether `address` is on this host or a network that is not the outside world's.
pub fn is_internal(address: IpAddr) -> bool {
    match address.to_canonical() {
        IpAddr::V4(v4) => REFUSED_V4.iter().any(|net| net.contains(&v4)),
        IpAddr::V6(v6) => {
            if let Some(embedded) = embedded_ipv4(v6) {
                return is_internal(IpAddr::V4(embedded));
            }
            REFUSED_V6.iter().any(|net| net.contains(&v6))
        }
    }
}

/// The IPv4 address an IPv6 one carries for a NAT64 gateway or in the deprecated
/// IPv4-compatible form (`::a.b.c.d`, not `::` and `::1`).
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let [a, b, c, d] = v6.octets()[12..] else {
        return None;
    };
    let compatible = v6.segments()[..6].iter().all(|s| *s == 0) && u128::from(v6) > 1;
    (NAT64.contains(&v6) || compatible).then(|| Ipv4Addr::new(a, b, c, d))
}

/// The resolver error of a name with a refused address. It names neither the name nor the
/// address: [`super::delivery`] turns it into a fixed reason, and errors reach logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusedDestination;

impl fmt::Display for RefusedDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the webhook's host name resolves to an address that is not allowed")
    }
}

impl StdError for RefusedDestination {}

/// Resolves host names with the system resolver (as reqwest's default does) and refuses the
/// name when any of its addresses is not permitted, so no connection is ever opened to one.
#[derive(Clone, Debug)]
pub struct CheckingResolver {
    policy: Arc<DestinationPolicy>,
}

impl CheckingResolver {
    /// A resolver enforcing `policy`.
    pub fn new(policy: Arc<DestinationPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for CheckingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the client puts the URL's port in, as with its own resolver.
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addresses.iter().any(|a| !policy.permits(a.ip())) {
                return Err(Box::new(RefusedDestination) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_of_this_host_the_cluster_and_metadata_services_are_refused() {
        let policy = DestinationPolicy::new();
        for refused in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.96.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.100.100.200",
            "169.254.169.254",
            "169.254.0.1",
            "192.0.0.192",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::1",
            "fe80::1",
            "fec0::1",
            "fc00::1",
            "fd00:ec2::254",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::10.1.2.3",
        ] {
            assert!(!policy.permits(ip(refused)), "{refused} was permitted");
        }
    }

    #[test]
    fn public_addresses_are_permitted() {
        let policy = DestinationPolicy::new();
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.32.0.1",
            "172.15.255.255",
            "100.128.0.1",
            "100.63.255.255",
            "192.0.1.1",
            "169.255.0.1",
            "11.0.0.1",
            "2606:4700:4700::1111",
            "2001:db8::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(policy.permits(ip(public)), "{public} was refused");
        }
    }

    #[test]
    fn an_allowed_network_exempts_its_addresses_and_no_others() {
        let policy = DestinationPolicy::allowing(vec![net("10.20.0.0/16"), net("127.0.0.0/8")]);
        for allowed in [
            "10.20.0.1",
            "10.20.255.255",
            "127.0.0.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(policy.permits(ip(allowed)), "{allowed} was refused");
        }
        for refused in ["10.21.0.1", "169.254.169.254", "192.168.1.1", "::1"] {
            assert!(!policy.permits(ip(refused)), "{refused} was permitted");
        }
        // A network written with host bits still means the network.
        let sloppy = DestinationPolicy::allowing(vec![net("10.20.30.40/16")]);
        assert!(sloppy.permits(ip("10.20.0.7")));
        assert_eq!(sloppy.allowed(), [net("10.20.0.0/16")]);
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_by_the_resolver() {
        let strict = CheckingResolver::new(Arc::new(DestinationPolicy::new()));
        let error = strict
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost is refused");
        assert!(
            error.downcast_ref::<RefusedDestination>().is_some(),
            "{error}"
        );
        let allowing = CheckingResolver::new(Arc::new(DestinationPolicy::allowing(vec![
            net("127.0.0.0/8"),
            net("::1/128"),
        ])));
        let addresses: Vec<SocketAddr> = allowing
            .resolve("localhost".parse().unwrap())
            .await
            .expect("allowed")
            .collect();
        assert!(!addresses.is_empty());
        assert!(
            addresses.iter().all(|a| a.ip().is_loopback()),
            "{addresses:?}"
        );
    }
}
