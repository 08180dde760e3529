//! Which addresses a document may be fetched from: public unicast only.
//!
//! Every form a host can take reaches here as an [`IpAddr`]: the WHATWG URL parser (the `url`
//! crate, which reqwest connects with) already turns `2130706433`, `0177.0.0.1` and `0x7f.1`
//! into `127.0.0.1`, and names are resolved first. What is left is to know the address ranges
//! that lead back inside: our own host, the VPC, the instance metadata service, and the IPv6
//! forms that carry one of those IPv4 addresses inside them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKind {
    /// `0.0.0.0/8`, `::`: "this host" — connecting to it reaches the local machine.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`) and IPv6 unique local (`fc00::/7`).
    Private,
    /// `169.254.0.0/16` (the instance metadata service, `169.254.169.254`, is here) and
    /// `fe80::/10`.
    LinkLocal,
    /// `100.64.0.0/10`: carrier-grade NAT, and in AWS the range some managed endpoints use.
    SharedAddressSpace,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`: never routed.
    Documentation,
    /// `198.18.0.0/15`: benchmarking; `240.0.0.0/4`: reserved; `192.0.0.0/24`: protocol
    /// assignments.
    Reserved,
}

impl AddressKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressKind::Unspecified => "unspecified",
            AddressKind::Loopback => "loopback",
            AddressKind::Private => "private",
            AddressKind::LinkLocal => "link_local",
            AddressKind::SharedAddressSpace => "shared_address_space",
            AddressKind::Multicast => "multicast",
            AddressKind::Broadcast => "broadcast",
            AddressKind::Documentation => "documentation",
            AddressKind::Reserved => "reserved",
        }
    }
}

impl fmt::Display for AddressKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `None` when `addr` is public unicast; otherwise what it is.
pub fn non_public(addr: IpAddr) -> Option<AddressKind> {
    match addr {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<AddressKind> {
    let [a, b, c, _] = ip.octets();
    let kind = if a == 0 {
        AddressKind::Unspecified
    } else if ip.is_loopback() {
        AddressKind::Loopback
    } else if ip.is_private() {
        AddressKind::Private
    } else if ip.is_link_local() {
        AddressKind::LinkLocal
    } else if a == 100 && (64..128).contains(&b) {
        AddressKind::SharedAddressSpace
    } else if ip.is_multicast() {
        AddressKind::Multicast
    } else if ip.is_broadcast() {
        AddressKind::Broadcast
    } else if ip.is_documentation() {
        AddressKind::Documentation
    } else if (a == 198 && (b == 18 || b == 19)) || a >= 240 || (a == 192 && b == 0 && c == 0) {
        AddressKind::Reserved
    } else {
        return None;
    };
    Some(kind)
}

fn non_public_v6(ip: Ipv6Addr) -> Option<AddressKind> {
    // An IPv4 address carried inside IPv6 is reached as that IPv4 address: judge it as one.
    if let Some(inner) = embedded_v4(ip) {
        return non_public_v4(inner);
    }
    let first = ip.segments()[0];
    let kind = if ip.is_unspecified() {
        AddressKind::Unspecified
    } else if ip.is_loopback() {
        AddressKind::Loopback
    } else if first & 0xfe00 == 0xfc00 {
        AddressKind::Private
    } else if first & 0xffc0 == 0xfe80 {
        AddressKind::LinkLocal
    } else if ip.is_multicast() {
        AddressKind::Multicast
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        AddressKind::Documentation
    } else if first & 0xe000 != 0x2000 {
        // Outside 2000::/3 nothing is global unicast today.
        AddressKind::Reserved
    } else {
        return None;
    };
    Some(kind)
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`),
/// NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let compatible = s[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_unspecified() && !ip.is_loopback();
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    if let Some(mapped) = ip.to_ipv4_mapped() {
        Some(mapped)
    } else if compatible || nat64 {
        Some(tail())
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<AddressKind> {
        non_public(s.parse().unwrap())
    }

    #[test]
    fn public_addresses_pass() {
        for ok in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "100.128.0.1",
            "172.32.0.1",
        ] {
            assert_eq!(kind(ok), None, "{ok}");
        }
    }

    #[test]
    fn every_way_back_inside_is_named() {
        let cases = [
            ("127.0.0.1", AddressKind::Loopback),
            ("127.255.255.254", AddressKind::Loopback),
            ("::1", AddressKind::Loopback),
            ("0.0.0.0", AddressKind::Unspecified),
            ("0.1.2.3", AddressKind::Unspecified),
            ("::", AddressKind::Unspecified),
            ("10.0.0.1", AddressKind::Private),
            ("172.16.5.4", AddressKind::Private),
            ("192.168.1.1", AddressKind::Private),
            ("fd00::1", AddressKind::Private),
            ("169.254.169.254", AddressKind::LinkLocal),
            ("fe80::1", AddressKind::LinkLocal),
            ("100.64.0.1", AddressKind::SharedAddressSpace),
            ("224.0.0.1", AddressKind::Multicast),
            ("ff02::1", AddressKind::Multicast),
            ("255.255.255.255", AddressKind::Broadcast),
            ("192.0.2.1", AddressKind::Documentation),
            ("2001:db8::1", AddressKind::Documentation),
            ("198.18.0.1", AddressKind::Reserved),
            ("240.0.0.1", AddressKind::Reserved),
            // The metadata service and loopback, carried inside IPv6.
            ("::ffff:169.254.169.254", AddressKind::LinkLocal),
            ("::ffff:127.0.0.1", AddressKind::Loopback),
            ("::127.0.0.1", AddressKind::Loopback),
            ("64:ff9b::a9fe:a9fe", AddressKind::LinkLocal),
            ("2002:7f00:1::1", AddressKind::Loopback),
            ("2002:a00:1::", AddressKind::Private),
        ];
        for (addr, expected) in cases {
            assert_eq!(kind(addr), Some(expected), "{addr}");
        }
    }
}
