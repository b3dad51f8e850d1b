//! The part of JSON Schema a tool's output schema is checked with: `type`, `required`,
//! `properties`, `additionalProperties: false`, `items`, `enum` and `const`, recursively.
//! Keywords outside that set are not checked (a result is never refused for a keyword
//! this module does not know).

use serde_json::Value;

/// The first way `value` (at `path`) violates `schema`, if any.
pub(crate) fn violation(schema: &Value, value: &Value, path: &str) -> Option<String> {
    let schema = schema.as_object()?;
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() && !types.iter().any(|t| is_type(value, t)) {
            return Some(format!("{path} is not of type {}", types.join(" or ")));
        }
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        return Some(format!("{path} is not one of the allowed values"));
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        return Some(format!("{path} is not the required constant"));
    }
    if let Value::Object(obj) = value {
        if let Some(Value::Array(required)) = schema.get("required") {
            for key in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(key) {
                    return Some(format!("{path}.{key} is required"));
                }
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, v) in obj {
            match properties.and_then(|p| p.get(key)) {
                Some(s) => {
                    if let Some(p) = violation(s, v, &format!("{path}.{key}")) {
                        return Some(p);
                    }
                }
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return Some(format!("{path}.{key} is not allowed"));
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            if let Some(p) = violation(s, v, &format!("{path}[{i}]")) {
                return Some(p);
            }
        }
    }
    None
}

fn is_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.as_i64().is_some() || v.as_u64().is_some(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::violation;
    use serde_json::json;

    #[test]
    fn a_result_missing_a_required_field_or_of_the_wrong_type_is_named() {
        let schema = json!({"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}}});
        assert_eq!(
            violation(&schema, &json!({"n": 3, "tags": ["a"]}), "$"),
            None
        );
        assert_eq!(
            violation(&schema, &json!({}), "$").unwrap(),
            "$.n is required"
        );
        assert_eq!(
            violation(&schema, &json!({"n": "3"}), "$").unwrap(),
            "$.n is not of type integer"
        );
        assert_eq!(
            violation(&schema, &json!({"n": 1, "tags": [1]}), "$").unwrap(),
            "$.tags[0] is not of type string"
        );
        let closed = json!({"type": "object", "additionalProperties": false, "properties": {}});
        assert_eq!(
            violation(&closed, &json!({"x": 1}), "$").unwrap(),
            "$.x is not allowed"
        );
    }
}
