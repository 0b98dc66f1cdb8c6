//! `--endpoints` entries: `host:port`, `http://host:port` or `https://host:port` (TLS, see
//! `crate::tls`).

use crate::error::BenchError;

/// One gRPC endpoint: where to dial and what to send as `:authority`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`, as dialed.
    pub authority: String,
    /// The scheme it was written with.
    pub scheme: Scheme,
}

/// How an endpoint was written: TLS for `https://`, and for a bare `host:port` when TLS flags
/// are given (as etcd's client does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bare,
    Http,
    Https,
}

impl Endpoint {
    /// Parses one `--endpoints` entry.
    pub fn parse(text: &str) -> Result<Endpoint, BenchError> {
        let trimmed = text.trim();
        if trimmed.starts_with("unix://") || trimmed.starts_with("unixs://") {
            return Err(BenchError::NotSupported(format!(
                "unix sockets (endpoint {trimmed})"
            )));
        }
        let (scheme, rest) = if let Some(rest) = trimmed.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else if let Some(rest) = trimmed.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else {
            (Scheme::Bare, trimmed)
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(BenchError::Usage(format!(
                "endpoint \"{text}\" is not host:port or http://host:port"
            )));
        }
        let Some((host, port)) = authority.rsplit_once(':') else {
            return Err(BenchError::Usage(format!(
                "endpoint \"{text}\" has no port (use host:port)"
            )));
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(BenchError::Usage(format!(
                "endpoint \"{text}\" is not host:port"
            )));
        }
        Ok(Endpoint {
            authority: authority.to_string(),
            scheme,
        })
    }

    /// Parses a comma-separated list (clap already splits `--endpoints a,b`).
    pub fn parse_list(texts: &[String]) -> Result<Vec<Endpoint>, BenchError> {
        let endpoints = texts
            .iter()
            .flat_map(|text| text.split(','))
            .filter(|part| !part.trim().is_empty())
            .map(Endpoint::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(BenchError::Usage("--endpoints is empty".to_string()));
        }
        Ok(endpoints)
    }
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    #[test]
    fn plain_and_http_forms_parse() {
        let plain = Endpoint::parse("127.0.0.1:2379").map(|e| e.authority);
        assert_eq!(plain.ok().as_deref(), Some("127.0.0.1:2379"));
        let http = Endpoint::parse("http://localhost:22379/").map(|e| e.authority);
        assert_eq!(http.ok().as_deref(), Some("localhost:22379"));
    }

    #[test]
    fn https_parses_and_malformed_endpoints_are_refused() {
        let tls = Endpoint::parse("https://127.0.0.1:2379").map(|e| e.scheme);
        assert_eq!(tls.ok(), Some(super::Scheme::Https));
        assert!(Endpoint::parse("127.0.0.1").is_err());
        assert!(Endpoint::parse("http://h:99999").is_err());
        assert!(Endpoint::parse("h:1/x").is_err());
    }

    #[test]
    fn lists_split_on_commas() {
        let list = Endpoint::parse_list(&["a:1,b:2".to_string(), "c:3".to_string()]);
        assert_eq!(list.map(|l| l.len()).ok(), Some(3));
    }
}
