//! Which addresses a webhook may be sent to: public ones only, unless the host allows private
//! and loopback addresses (tests, a receiver inside the host's own network).
//!
//! The host of an endpoint is resolved and every address it resolves to is checked, at
//! registration and again before each delivery round, so a name that later points inside the
//! network is refused then. Redirects are never followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::Url;

use crate::error::{Error, Result};

/// Where endpoints may point. Default: public addresses only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct AddressPolicy {
    allow_private: bool,
}

impl AddressPolicy {
    /// Public addresses only (the default).
    pub fn public_only() -> Self {
        Self::default()
    }

    /// Also private, loopback, link-local and other non-public addresses. Default: refused.
    pub fn allow_private(mut self, allow: bool) -> Self {
        self.allow_private = allow;
        self
    }

    /// Checks an endpoint URL: `http` or `https`, with a host whose every address is allowed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`], [`Error::Unresolvable`], [`Error::AddressRefused`].
    pub async fn check(&self, url: &Url) -> Result<()> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::InvalidUrl("the scheme must be http or https".into()));
        }
        let host = url
            .host_str()
            .ok_or_else(|| Error::InvalidUrl("no host".into()))?;
        let port = url.port_or_known_default().unwrap_or(443);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addresses: Vec<IpAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((bare, port))
                .await
                .map_err(|_| Error::Unresolvable {
                    host: host.to_owned(),
                })?
                .map(|a| a.ip())
                .collect(),
        };
        if addresses.is_empty() {
            return Err(Error::Unresolvable {
                host: host.to_owned(),
            });
        }
        if !self.allow_private
            && let Some(address) = addresses.into_iter().find(|ip| !is_public(*ip))
        {
            return Err(Error::AddressRefused { address });
        }
        Ok(())
    }
}

/// Whether an address is on the public internet.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // Benchmarking, 198.18.0.0/15, and reserved, 240.0.0.0/4.
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        // Documentation, 2001:db8::/32.
        || (ip.segments()[0] == 0x2001 && ip.segments()[1] == 0x0db8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_loopback_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        let url = Url::parse("http://127.0.0.1:9/hook").unwrap();
        let err = AddressPolicy::public_only().check(&url).await.unwrap_err();
        assert!(matches!(err, Error::AddressRefused { .. }), "{err}");
        let url6 = Url::parse("http://[::1]:9/hook").unwrap();
        assert!(AddressPolicy::public_only().check(&url6).await.is_err());
        AddressPolicy::public_only()
            .allow_private(true)
            .check(&url)
            .await
            .unwrap();
        let ftp = Url::parse("ftp://example.com/").unwrap();
        assert!(matches!(
            AddressPolicy::public_only()
                .allow_private(true)
                .check(&ftp)
                .await,
            Err(Error::InvalidUrl(_))
        ));
    }
}
