//! One exception type, `aegis.AegisError`, carrying the Rust error's `kind`, `code`,
//! `run_id`, `status` and `details` — the same fields the gateway's error bodies have.

use pyo3::{create_exception, exceptions::PyException, prelude::*};

create_exception!(
    aegis,
    AegisError,
    PyException,
    "An error of the governed pipeline. `kind` is its class (`policy_blocked`, \
     `invalid_request`, `budget_exceeded`, ...), `code` the stable machine code, `run_id` \
     the run it ended (or `None`), `status` the HTTP status the gateway would answer, \
     `details` structured data (or `None`)."
);

/// `e` as an `AegisError` with its fields set.
pub fn to_py(e: aegis::Error) -> PyErr {
    Python::attach(|py| {
        let err = AegisError::new_err(e.message().to_owned());
        let value = err.value(py);
        let details = e
            .details()
            .and_then(|d| crate::convert::to_py(py, d).ok())
            .unwrap_or_else(|| py.None());
        // The kind's name (`policy_blocked`, `config`, ...) as the contracts spell it.
        let kind = serde_json::to_value(e.kind())
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "internal".into());
        let status = e.kind().http_status();
        let set = || -> PyResult<()> {
            value.setattr("kind", kind)?;
            value.setattr("code", e.code())?;
            value.setattr("run_id", e.run_id())?;
            value.setattr("status", status)?;
            value.setattr("details", details)?;
            Ok(())
        };
        match set() {
            Ok(()) => err,
            Err(other) => other,
        }
    })
}

/// An internal error (a bug or an environment failure), as an `aegis::Error`.
pub fn internal(message: impl Into<String>) -> aegis::Error {
    aegis::Error::internal(message)
}

/// A Python exception raised by a plugin, as an `aegis::Error` naming the plugin: the
/// exception's type and message — secrets in it redacted, then shortened
/// ([`aegis_bindings::plugin_failure`]) — never its traceback's locals.
pub fn from_plugin(py: Python<'_>, plugin: &str, e: &PyErr) -> aegis::Error {
    let kind = e
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    let message = e.value(py).to_string();
    aegis_bindings::plugin_failure(plugin, &format!("raised {kind}"), &message)
}
