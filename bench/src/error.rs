//! The tool's error type: everything that stops a run before it produces figures.

use crate::grpc::CallError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag combination that cannot run.
    #[error("{0}")]
    Usage(String),
    /// A feature the tool accepts on the command line but does not implement yet.
    #[error("{0} is not supported yet")]
    NotSupported(String),
    /// Dialing or the HTTP/2 handshake failed.
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    /// The server answers gRPC UNIMPLEMENTED for a service the workload needs.
    #[error(
        "{endpoint} does not implement {method} ({detail}); this workload cannot run against it"
    )]
    Unimplemented {
        endpoint: String,
        method: String,
        detail: String,
    },
    /// A call needed to set the workload up (seed keys, grant a lease, create a watch) failed.
    #[error("{what} failed against {endpoint}: {source}")]
    Setup {
        what: String,
        endpoint: String,
        source: CallError,
    },
    /// Writing an output file failed.
    #[error("{path}: {reason}")]
    Output { path: String, reason: String },
}

impl BenchError {
    /// Wraps a failed set-up call, turning UNIMPLEMENTED into its own clear error.
    pub fn setup(what: &str, method: &str, endpoint: &str, source: CallError) -> BenchError {
        if source.is_unimplemented() {
            return BenchError::Unimplemented {
                endpoint: endpoint.to_string(),
                method: method.to_string(),
                detail: source.to_string(),
            };
        }
        BenchError::Setup {
            what: what.to_string(),
            endpoint: endpoint.to_string(),
            source,
        }
    }
}
