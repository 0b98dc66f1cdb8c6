//! The connections of one run and how clients share them: `--conns` channels spread over the
//! endpoints round robin (connection `j` goes to endpoint `j % endpoints`), and client `i` uses
//! connection `i % conns`, as etcd's benchmark does.

use crate::endpoint::{Endpoint, Scheme};
use crate::error::BenchError;
use crate::grpc::Channel;
use capstan_proto::etcdserverpb::{AuthenticateRequest, AuthenticateResponse};
use capstan_proto::method::AUTH_AUTHENTICATE;
use std::sync::Arc;
use std::time::Duration;

/// `--user name:password`.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub name: String,
    pub password: String,
}

impl Credentials {
    /// Parses `name:password`; etcd would prompt for a missing password, we cannot.
    pub fn parse(text: &str) -> Result<Credentials, BenchError> {
        match text.split_once(':') {
            Some((name, password)) if !name.is_empty() => Ok(Credentials {
                name: name.to_string(),
                password: password.to_string(),
            }),
            _ => Err(BenchError::Usage(
                "--user must be name:password (capstan-bench does not prompt)".to_string(),
            )),
        }
    }
}

/// Everything needed to open the connections of one run.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub endpoints: Vec<Endpoint>,
    pub conns: usize,
    pub dial_timeout: Duration,
    pub credentials: Option<Credentials>,
    /// TLS for `https://` endpoints (and bare ones when TLS flags were given).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Whether TLS flags were given: bare `host:port` endpoints then use TLS too.
    pub tls_for_bare_endpoints: bool,
}

impl ConnectOptions {
    /// The TLS configuration to dial `endpoint` with, `None` for plaintext.
    pub fn tls_for(&self, endpoint: &Endpoint) -> Option<Arc<rustls::ClientConfig>> {
        match endpoint.scheme {
            Scheme::Https => self.tls.clone(),
            Scheme::Bare if self.tls_for_bare_endpoints => self.tls.clone(),
            _ => None,
        }
    }
}

/// The open connections of one run.
pub struct Pool {
    channels: Vec<Channel>,
}

impl Pool {
    /// Dials every connection (sequentially: dialing is not what we measure) and
    /// authenticates once if asked to.
    pub async fn connect(options: &ConnectOptions) -> Result<Pool, BenchError> {
        assert!(options.conns > 0 && !options.endpoints.is_empty());
        let mut channels = Vec::with_capacity(options.conns);
        for index in 0..options.conns {
            let endpoint = &options.endpoints[index % options.endpoints.len()];
            let channel = Channel::connect_tls(
                &endpoint.authority,
                options.tls_for(endpoint),
                options.dial_timeout,
            )
            .await
            .map_err(|error| BenchError::Connect {
                endpoint: endpoint.authority.clone(),
                reason: error.to_string(),
            })?;
            channels.push(channel);
        }
        if let Some(credentials) = &options.credentials {
            let token = authenticate(&channels[0], credentials).await?;
            channels = channels
                .into_iter()
                .map(|channel| channel.with_token(&token))
                .collect::<Result<_, _>>()
                .map_err(|error| {
                    BenchError::setup("authenticate", AUTH_AUTHENTICATE, "-", error)
                })?;
        }
        Ok(Pool { channels })
    }

    /// The channel client `client` uses.
    pub fn for_client(&self, client: usize) -> Channel {
        self.channels[client % self.channels.len()].clone()
    }

    /// The first endpoint, for messages.
    pub fn first_endpoint(&self) -> &str {
        self.channels[0].authority()
    }
}

async fn authenticate(channel: &Channel, credentials: &Credentials) -> Result<String, BenchError> {
    let request = AuthenticateRequest {
        name: credentials.name.clone(),
        password: credentials.password.clone(),
    };
    let response: AuthenticateResponse =
        channel
            .unary(AUTH_AUTHENTICATE, &request)
            .await
            .map_err(|error| {
                BenchError::setup(
                    "authenticate",
                    AUTH_AUTHENTICATE,
                    channel.authority(),
                    error,
                )
            })?;
    Ok(response.token)
}
