//! A small JSON Schema checker for interrupt edits: `type`, `enum`, `required`,
//! `properties`, `additionalProperties: false`, `items`, `minLength`, `minProperties`. Enough to refuse a
//! malformed decision payload with a message that names the offending path.

use serde_json::Value;

/// Checks `value` against `schema`; the error names the first offending path.
pub fn check(schema: &Value, value: &Value) -> Result<(), String> {
    walk(schema, value, "$")
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn walk(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
    let Some(s) = schema.as_object() else {
        return Ok(());
    };
    match s.get("type") {
        Some(Value::String(t)) if !type_matches(t, v) => {
            return Err(format!("{path}: expected {t}"));
        }
        Some(Value::Array(ts))
            if !ts
                .iter()
                .filter_map(Value::as_str)
                .any(|t| type_matches(t, v)) =>
        {
            return Err(format!(
                "{path}: expected one of {}",
                Value::Array(ts.clone())
            ));
        }
        _ => {}
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.contains(v)
    {
        return Err(format!(
            "{path}: must be one of {}",
            Value::Array(options.clone())
        ));
    }
    if let (Some(min), Some(text)) = (s.get("minLength").and_then(Value::as_u64), v.as_str())
        && (text.chars().count() as u64) < min
    {
        return Err(format!("{path}: shorter than {min} characters"));
    }
    if let (Some(min), Some(obj)) = (
        s.get("minProperties").and_then(Value::as_u64),
        v.as_object(),
    ) && (obj.len() as u64) < min
    {
        return Err(format!("{path}: needs at least {min} of its properties"));
    }
    if let Some(obj) = v.as_object() {
        if let Some(Value::Array(required)) = s.get("required") {
            for key in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(key) {
                    return Err(format!("{path}: missing required property `{key}`"));
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (key, child) in obj {
            match props.and_then(|p| p.get(key)) {
                Some(sub) => walk(sub, child, &format!("{path}.{key}"))?,
                None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Err(format!("{path}: unknown property `{key}`"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, child) in arr.iter().enumerate() {
            walk(items, child, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::check;

    #[test]
    fn names_the_path_of_the_first_violation() {
        let schema = json!({"type":"object","required":["messages"],"properties":{"messages":{"type":"array","items":{"type":"object","required":["content"]}}}});
        assert!(check(&schema, &json!({"messages":[{"content":"x"}]})).is_ok());
        assert_eq!(
            check(&schema, &json!({})).unwrap_err(),
            "$: missing required property `messages`"
        );
        assert_eq!(
            check(&schema, &json!({"messages":[{}]})).unwrap_err(),
            "$.messages[0]: missing required property `content`"
        );
        assert_eq!(
            check(&schema, &json!("x")).unwrap_err(),
            "$: expected object"
        );
    }
}
