//! OCPP-J framing (the same in 1.6J and 2.0.1): `[2, id, action, payload]` CALL,
//! `[3, id, payload]` CALLRESULT, `[4, id, code, description, details]` CALLERROR.

use serde_json::{json, Value};

use super::Version;

#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Call { id: String, action: String, payload: Value },
    Result { id: String, payload: Value },
    Error { id: String, code: String, description: String },
}

/// A failure answered with a CALLERROR; the code's name differs between the versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not an OCPP-J message (no id could be read, not an array, not JSON).
    RpcFramework,
    MessageTypeNotSupported,
    NotImplemented,
    /// The payload does not fit the action's schema.
    Format,
    /// A value is out of its allowed range.
    PropertyConstraint,
    Internal,
}

impl ErrorKind {
    pub fn code(self, version: Version) -> &'static str {
        match (self, version) {
            (ErrorKind::RpcFramework, Version::V16) | (ErrorKind::MessageTypeNotSupported, Version::V16) => "ProtocolError",
            (ErrorKind::RpcFramework, Version::V201) => "RpcFrameworkError",
            (ErrorKind::MessageTypeNotSupported, Version::V201) => "MessageTypeNotSupported",
            (ErrorKind::NotImplemented, _) => "NotImplemented",
            (ErrorKind::Format, Version::V16) => "FormationViolation",
            (ErrorKind::Format, Version::V201) => "FormatViolation",
            (ErrorKind::PropertyConstraint, _) => "PropertyConstraintViolation",
            (ErrorKind::Internal, _) => "InternalError",
        }
    }
}

/// Why a frame could not be read: its id if it had one ("-1" otherwise, as OCPP 2.0.1
/// prescribes), and the error to answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Unreadable {
    pub id: String,
    pub kind: ErrorKind,
    pub description: String,
}

/// The longest message id OCPP allows.
const MAX_ID: usize = 36;

pub fn parse(text: &str) -> Result<Frame, Unreadable> {
    let bad = |id: &str, kind, description: &str| Unreadable { id: id.to_string(), kind, description: description.to_string() };
    let value: Value = serde_json::from_str(text).map_err(|_| bad("-1", ErrorKind::RpcFramework, "not JSON"))?;
    let Some(items) = value.as_array() else { return Err(bad("-1", ErrorKind::RpcFramework, "an OCPP-J message is a JSON array")) };
    let id = match items.get(1).and_then(Value::as_str) {
        Some(id) if !id.is_empty() && id.len() <= MAX_ID => id.to_string(),
        _ => return Err(bad("-1", ErrorKind::RpcFramework, "the message id must be a string of 1 to 36 characters")),
    };
    match (items.first().and_then(Value::as_u64), items.len()) {
        (Some(2), 4) => match (items[2].as_str(), &items[3]) {
            (Some(action), payload @ Value::Object(_)) => Ok(Frame::Call { id, action: action.to_string(), payload: payload.clone() }),
            _ => Err(bad(&id, ErrorKind::Format, "a CALL is [2, id, action, {payload}]")),
        },
        (Some(3), 3) => Ok(Frame::Result { id, payload: items[2].clone() }),
        (Some(4), 4 | 5) => Ok(Frame::Error {
            id,
            code: items[2].as_str().unwrap_or_default().to_string(),
            description: items[3].as_str().unwrap_or_default().to_string(),
        }),
        (Some(2..=4), _) => Err(bad(&id, ErrorKind::RpcFramework, "wrong number of elements for the message type")),
        _ => Err(bad(&id, ErrorKind::MessageTypeNotSupported, "message type must be 2 (CALL), 3 (CALLRESULT) or 4 (CALLERROR)")),
    }
}

pub fn call(id: &str, action: &str, payload: &Value) -> String {
    json!([2, id, action, payload]).to_string()
}

pub fn result(id: &str, payload: &Value) -> String {
    json!([3, id, payload]).to_string()
}

pub fn error(id: &str, code: &str, description: &str) -> String {
    json!([4, id, code, description, {}]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_and_garbage_is_named() {
        assert_eq!(
            parse(r#"[2,"19223201","Heartbeat",{}]"#),
            Ok(Frame::Call { id: "19223201".into(), action: "Heartbeat".into(), payload: json!({}) })
        );
        assert_eq!(parse(r#"[3,"a",{"status":"Accepted"}]"#), Ok(Frame::Result { id: "a".into(), payload: json!({"status": "Accepted"}) }));
        assert!(matches!(parse(r#"[4,"a","NotSupported","no",{}]"#), Ok(Frame::Error { .. })));
        let kind = |t: &str| parse(t).unwrap_err();
        assert_eq!(kind("hello").id, "-1");
        assert_eq!(kind("{}").kind, ErrorKind::RpcFramework);
        assert_eq!(kind(r#"[2, 5, "Heartbeat", {}]"#).id, "-1");
        assert_eq!(
            kind(r#"[7, "x", {}]"#),
            Unreadable { id: "x".into(), kind: ErrorKind::MessageTypeNotSupported, description: kind(r#"[7, "x", {}]"#).description }
        );
        assert_eq!(kind(r#"[2, "x", "Heartbeat", []]"#).kind, ErrorKind::Format);
        assert_eq!(kind(r#"[2, "x", "Heartbeat"]"#).kind, ErrorKind::RpcFramework);
        assert_eq!(ErrorKind::Format.code(Version::V16), "FormationViolation");
        assert_eq!(ErrorKind::Format.code(Version::V201), "FormatViolation");
    }
}
