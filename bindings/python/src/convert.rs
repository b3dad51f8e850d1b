//! Python objects ↔ JSON values, through Python's own `json` module: what crosses the
//! boundary is exactly what `json.dumps` accepts (dicts, lists, strings, numbers, booleans,
//! `None`), and anything else is a clear `TypeError` rather than a guess.

use pyo3::{exceptions::PyTypeError, prelude::*};
use serde_json::Value;

/// `value` as a Python object.
pub fn to_py(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    let text = value.to_string();
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// `obj` as a JSON value. `NaN` and infinities are refused (JSON has none).
pub fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let py = obj.py();
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("allow_nan", false)?;
    let text: String = py
        .import("json")?
        .call_method("dumps", (obj,), Some(&kwargs))
        .map_err(|e| {
            PyTypeError::new_err(format!(
                "expected JSON-shaped data (dict, list, str, int, float, bool, None): {}",
                e.value(py)
            ))
        })?
        .extract()?;
    serde_json::from_str(&text).map_err(|e| PyTypeError::new_err(format!("not JSON: {e}")))
}
