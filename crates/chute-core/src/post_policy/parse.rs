//! [`parse_policy`]: base64 policy JSON into a [`PostPolicy`].
//!
//! Accepts every condition form S3 does: object shorthand (exact match),
//! `eq`, `starts-with` and `content-length-range` with numbers or numeric
//! strings. Anything else is refused as malformed rather than ignored, so
//! a policy never silently means less than its author wrote.

use super::{Condition, PostPolicy, PostPolicyError};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn malformed(reason: impl Into<String>) -> PostPolicyError {
    PostPolicyError::MalformedPolicy(reason.into())
}

/// Decodes and parses a base64 POST policy.
pub fn parse_policy(policy_base64: &str) -> Result<PostPolicy, PostPolicyError> {
    // Some encoders wrap base64 lines; whitespace carries no data.
    let compact: String = policy_base64
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let json = B64
        .decode(compact.as_bytes())
        .map_err(|e| malformed(format!("policy is not base64: {e}")))?;
    let doc: Value =
        serde_json::from_slice(&json).map_err(|e| malformed(format!("policy is not JSON: {e}")))?;
    let Value::Object(doc) = doc else {
        return Err(malformed("policy is not a JSON object"));
    };
    let expiration = match doc.get("expiration") {
        Some(Value::String(s)) => OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| malformed(format!("invalid expiration {s:?}: {e}")))?,
        Some(_) => return Err(malformed("expiration is not a string")),
        None => return Err(malformed("policy has no expiration")),
    };
    let Some(Value::Array(raw_conditions)) = doc.get("conditions") else {
        return Err(malformed("policy has no conditions array"));
    };
    let mut conditions = Vec::with_capacity(raw_conditions.len());
    for raw in raw_conditions {
        match raw {
            Value::Object(map) => {
                for (field, value) in map {
                    let Value::String(value) = value else {
                        return Err(malformed(format!(
                            "condition value for {field:?} is not a string"
                        )));
                    };
                    conditions.push(Condition::Eq {
                        field: field_name(field),
                        value: value.clone(),
                    });
                }
            }
            Value::Array(items) => conditions.push(parse_array_condition(items)?),
            _ => return Err(malformed("a condition is neither an object nor an array")),
        }
    }
    Ok(PostPolicy {
        expiration,
        conditions,
    })
}

fn parse_array_condition(items: &[Value]) -> Result<Condition, PostPolicyError> {
    let Some(Value::String(op)) = items.first() else {
        return Err(malformed("condition array does not start with an operator"));
    };
    if items.len() != 3 {
        return Err(malformed(format!("condition {op:?} needs exactly 2 arguments")));
    }
    match op.to_ascii_lowercase().as_str() {
        "eq" | "starts-with" => {
            let (Value::String(field), Value::String(arg)) = (&items[1], &items[2]) else {
                return Err(malformed(format!("condition {op:?} takes two strings")));
            };
            let Some(field) = field.strip_prefix('$') else {
                return Err(malformed(format!("field {field:?} must start with '$'")));
            };
            let field = field_name(field);
            Ok(if op.eq_ignore_ascii_case("eq") {
                Condition::Eq {
                    field,
                    value: arg.clone(),
                }
            } else {
                Condition::StartsWith {
                    field,
                    prefix: arg.clone(),
                }
            })
        }
        "content-length-range" => {
            let (min, max) = (length_bound(&items[1])?, length_bound(&items[2])?);
            if min > max {
                return Err(malformed(format!(
                    "content-length-range min {min} exceeds max {max}"
                )));
            }
            Ok(Condition::ContentLengthRange { min, max })
        }
        other => Err(malformed(format!("unknown condition operator {other:?}"))),
    }
}

fn field_name(raw: &str) -> String {
    raw.to_ascii_lowercase()
}

/// A non-negative integer, as a JSON number or a numeric string.
fn length_bound(v: &Value) -> Result<u64, PostPolicyError> {
    let parsed = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        malformed(format!(
            "content-length-range bound {v} is not a non-negative integer"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post_policy::tests_support::AWS_EXAMPLE_POLICY;

    fn b64(json: &str) -> String {
        B64.encode(json)
    }

    #[test]
    fn parses_aws_example() {
        let p = parse_policy(AWS_EXAMPLE_POLICY).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.expiration, time::macros::datetime!(2015-12-30 12:00:00 UTC));
        assert_eq!(p.conditions.len(), 11);
        assert_eq!(
            p.conditions[4],
            Condition::StartsWith {
                field: "content-type".into(),
                prefix: "image/".into()
            }
        );
        assert_eq!(
            p.conditions[7],
            Condition::StartsWith {
                field: "x-amz-meta-tag".into(),
                prefix: String::new()
            }
        );
    }

    #[test]
    fn parses_every_condition_form() {
        let p = parse_policy(&b64(r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[
                {"Bucket":"b"},["EQ","$Key","k"],["starts-with","$x-amz-meta-a",""],
                ["content-length-range","1","10"],["content-length-range",0,5]]}"#))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.conditions,
            vec![
                Condition::Eq {
                    field: "bucket".into(),
                    value: "b".into()
                },
                Condition::Eq {
                    field: "key".into(),
                    value: "k".into()
                },
                Condition::StartsWith {
                    field: "x-amz-meta-a".into(),
                    prefix: String::new()
                },
                Condition::ContentLengthRange { min: 1, max: 10 },
                Condition::ContentLengthRange { min: 0, max: 5 },
            ]
        );
    }

    #[test]
    fn rejects_malformed_policies() {
        let cases = [
            "not base64 at all!".to_owned(),
            b64("{not json"),
            b64("[]"),
            b64(r#"{"conditions":[]}"#),
            b64(r#"{"expiration":"tomorrow","conditions":[]}"#),
            b64(r#"{"expiration":"2030-01-01T00:00:00Z"}"#),
            b64(r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[["matches","$key","x"]]}"#),
            b64(r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[["eq","$key"]]}"#),
            b64(r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[["eq","key","x"]]}"#),
            b64(r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[["content-length-range",-1,5]]}"#),
            b64(r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[["content-length-range",6,5]]}"#),
            b64(r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[["content-length-range","a",5]]}"#),
            b64(r#"{"expiration":"2030-01-01T00:00:00Z","conditions":[{"key":5}]}"#),
            b64(r#"{"expiration":"2030-01-01T00:00:00Z","conditions":["key"]}"#),
        ];
        for case in cases {
            assert!(
                matches!(parse_policy(&case), Err(PostPolicyError::MalformedPolicy(_))),
                "accepted {case}"
            );
        }
    }
}
