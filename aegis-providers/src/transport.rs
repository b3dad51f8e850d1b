//! The HTTP transport providers send through: a cloneable tower service from
//! [`reqwest::Request`] to [`reqwest::Response`].
//!
//! The default is the host's own [`reqwest::Client`] (connection pool, proxies, TLS roots all
//! stay the host's). Any tower stack over it works too, so timeouts, concurrency limits or
//! retries are ordinary tower layers:
//!
//! ```
//! use std::time::Duration;
//! use aegis_providers::transport;
//! use tower::ServiceBuilder;
//!
//! let client = reqwest::Client::new();
//! let stack = ServiceBuilder::new()
//!     .timeout(Duration::from_secs(30))
//!     .concurrency_limit(64)
//!     .service(client);
//! let transport = transport::from_service(stack);
//! # let _ = transport;
//! ```
//!
//! A [`tower::timeout::error::Elapsed`] (or a reqwest timeout) anywhere in the stack becomes
//! an [`ErrorKind::Timeout`]; a failure to connect becomes a retryable
//! [`ErrorKind::Provider`] error.

use std::error::Error as StdError;

use aegis_contracts::{BoxError, Error, ErrorKind};
use tower::{Service, ServiceExt, util::BoxCloneSyncService};

/// A type-erased, cloneable, thread-safe HTTP transport.
pub type Transport = BoxCloneSyncService<reqwest::Request, reqwest::Response, BoxError>;

/// The transport that sends every request through `client`.
///
/// ```
/// let transport = aegis_providers::transport::from_client(reqwest::Client::new());
/// # let _ = transport;
/// ```
pub fn from_client(client: reqwest::Client) -> Transport {
    from_service(client)
}

/// The transport that sends every request through `service`, typically a tower stack over a
/// [`reqwest::Client`] (see the [module docs](self)).
pub fn from_service<S>(service: S) -> Transport
where
    S: Service<reqwest::Request, Response = reqwest::Response> + Clone + Send + Sync + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    BoxCloneSyncService::new(service.map_err(Into::into))
}

/// Maps a transport failure to an [`Error`] that names the provider and never carries a
/// header value.
pub(crate) fn map_transport_error(provider: &str, err: BoxError) -> Error {
    let mut timeout = false;
    let mut connect = false;
    let mut cause: Option<&(dyn StdError + 'static)> = Some(&*err);
    while let Some(e) = cause {
        if e.is::<tower::timeout::error::Elapsed>() || e.is::<tokio::time::error::Elapsed>() {
            timeout = true;
        } else if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            timeout |= r.is_timeout();
            connect |= r.is_connect();
        } else if let Some(io) = e.downcast_ref::<std::io::Error>() {
            timeout |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        cause = e.source();
    }
    let chain = error_chain(&*err);
    let error = if timeout {
        Error::new(
            ErrorKind::Timeout,
            format!("provider `{provider}` timed out: {chain}"),
        )
    } else if connect {
        Error::provider(format!(
            "provider `{provider}` could not be reached: {chain}"
        ))
        .with_retryable(true)
    } else {
        // A connection reset or a broken body: transient as far as we can tell.
        Error::provider(format!("provider `{provider}` transport failed: {chain}"))
            .with_retryable(true)
    };
    error.with_source(err)
}

/// `outer: inner: innermost`, skipping repeats (hyper and reqwest often repeat a cause).
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut last = out.clone();
    let mut cause = err.source();
    while let Some(e) = cause {
        let s = e.to_string();
        if !last.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        last = s;
        cause = e.source();
    }
    out
}

/// Sends one request through a clone of `transport` (a [`Transport`] is used once per call).
pub(crate) async fn send(
    provider: &str,
    transport: &Transport,
    request: reqwest::Request,
) -> Result<reqwest::Response, Error> {
    transport
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| map_transport_error(provider, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tower_elapsed_is_a_timeout() {
        let err = map_transport_error("p", Box::new(tower::timeout::error::Elapsed::new()));
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert!(err.is_retryable());
        assert!(err.message().contains("`p`"));
    }

    #[test]
    fn io_timed_out_deep_in_the_chain_is_a_timeout() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        let wrapped: BoxError = Box::new(Error::provider("outer").with_source(io));
        assert_eq!(map_transport_error("p", wrapped).kind(), ErrorKind::Timeout);
    }

    #[test]
    fn other_failures_are_retryable_provider_errors() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let err = map_transport_error("p", Box::new(io));
        assert_eq!(err.kind(), ErrorKind::Provider);
        assert!(err.is_retryable());
        assert!(err.message().contains("reset by peer"));
    }
}
