//! Accepting a JSON-RPC response either whole (`{"jsonrpc","id","result"}`) or as its bare
//! `result` object, without copying the payload: the result is returned as a slice of the input.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::InputError;

#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RpcErrorObject {
    code: i64,
    message: String,
}

/// Returns the JSON text of the payload object, unwrapping a response envelope if there is one.
/// `what` names the RPC method for error messages.
pub fn payload<'a>(json: &'a str, what: &'static str) -> Result<&'a str, InputError> {
    let probe: Probe<'a> = serde_json::from_str(json).map_err(|e| InputError::Malformed {
        what,
        path: ".".into(),
        message: format!("not a JSON object: {e}"),
    })?;
    let is_envelope = probe.jsonrpc.is_some() || probe.result.is_some() || probe.error.is_some();
    if !is_envelope {
        return Ok(json);
    }
    if let Some(error) = probe.error {
        let rpc: RpcErrorObject = serde_json::from_str(error.get()).map_err(|e| InputError::Malformed {
            what,
            path: "error".into(),
            message: format!("malformed JSON-RPC error object: {e}"),
        })?;
        return Err(InputError::Rpc { method: what, code: rpc.code, message: rpc.message });
    }
    match probe.result {
        Some(result) => Ok(result.get()),
        None => Err(InputError::NullResult { method: what }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_object_passes_through() {
        let json = r#"{"number":"0x1","hash":"0x00"}"#;
        assert_eq!(payload(json, "eth_getBlockByNumber").unwrap(), json);
    }

    #[test]
    fn envelope_is_unwrapped_without_copying() {
        let json = r#"{"jsonrpc":"2.0","id":7,"result":{"state":[]}}"#;
        let inner = payload(json, "debug_executionWitness").unwrap();
        assert_eq!(inner, r#"{"state":[]}"#);
        assert!(json.as_ptr() <= inner.as_ptr());
    }

    #[test]
    fn rpc_error_names_method_code_and_message() {
        let json = r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"witness not found"}}"#;
        let err = payload(json, "debug_executionWitness").unwrap_err().to_string();
        assert!(err.contains("debug_executionWitness"), "{err}");
        assert!(err.contains("-32000") && err.contains("witness not found"), "{err}");
    }

    #[test]
    fn null_result_is_not_found() {
        let json = r#"{"jsonrpc":"2.0","id":1,"result":null}"#;
        let err = payload(json, "eth_getBlockByNumber").unwrap_err().to_string();
        assert!(err.contains("null"), "{err}");
    }

    #[test]
    fn garbage_is_malformed() {
        let err = payload("[1,2", "eth_getBlockByNumber").unwrap_err().to_string();
        assert!(err.contains("not a JSON object"), "{err}");
    }
}
