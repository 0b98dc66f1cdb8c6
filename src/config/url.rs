//! Listen urls as etcd accepts them (`http://host:port`, `https://host:port`), resolved to
//! socket addresses.

use std::net::{SocketAddr, ToSocketAddrs};

/// One `--listen-client-urls` (or peer, or metrics) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUrl {
    pub original: String,
    pub address: SocketAddr,
    /// `https://`: connections on it speak TLS.
    pub tls: bool,
}

impl ClientUrl {
    pub fn parse(text: &str) -> Result<ClientUrl, String> {
        let (rest, tls) = if let Some(rest) = text.strip_prefix("http://") {
            (rest, false)
        } else if let Some(rest) = text.strip_prefix("https://") {
            (rest, true)
        } else {
            return Err(format!("{text}: URL scheme must be http or https"));
        };
        let host_port = rest.trim_end_matches('/');
        if host_port.contains('/') {
            return Err(format!("{text}: URL must not contain a path"));
        }
        let address = host_port
            .to_socket_addrs()
            .map_err(|error| format!("{text}: {error}"))?
            .find(SocketAddr::is_ipv4)
            .or_else(|| host_port.to_socket_addrs().ok()?.next())
            .ok_or_else(|| format!("{text}: host resolves to no address"))?;
        Ok(ClientUrl {
            original: text.to_string(),
            address,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_and_https_urls_and_refuses_others() {
        let url = ClientUrl::parse("http://127.0.0.1:2379").expect("valid url");
        assert_eq!(url.address.port(), 2379);
        assert!(!url.tls);
        let url = ClientUrl::parse("https://127.0.0.1:2379").expect("valid url");
        assert!(url.tls);
        assert!(ClientUrl::parse("unixs://x:1").is_err());
        assert!(ClientUrl::parse("ftp://x:1").is_err());
        assert!(ClientUrl::parse("http://127.0.0.1:2379/x").is_err());
    }
}
