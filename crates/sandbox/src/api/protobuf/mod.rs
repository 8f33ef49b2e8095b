//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), read into the JSON
//! form the rest of the emulator works on.
//!
//! kubectl's typed clients (`create namespace`, `run`, `create service`, `auth can-i`) send
//! protobuf: the 4-byte magic `k8s\0`, then a `runtime.Unknown` whose `typeMeta` names the kind
//! and whose `raw` is the object's message. The message is read with the field tables in
//! [`schema`] (generated from upstream's generated.proto), so every field of the served kinds is
//! understood; a field the tables do not know is an error, never silently dropped. Messages with
//! a JSON form of their own (Time, IntOrString, Quantity, ...) are converted as upstream's JSON
//! encoding writes them. Singular empty strings and zero times are left out, as upstream's
//! `omitempty` leaves them out of JSON (the wire always carries Go's non-pointer fields).
//! Answers are always JSON, which clients that send protobuf also accept.

mod field;
use field::{Field, Ty};
mod schema;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Map, Value};

pub(crate) const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

/// A decoded body: the kind its envelope names, and the object as JSON (with `apiVersion` and
/// `kind` set).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decoded {
    pub api_version: String,
    pub kind: String,
    pub object: Value,
}

const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";
const TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Time";
const MICRO_TIME: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime";
const DURATION: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.Duration";
const FIELDS_V1: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1";
const INT_OR_STRING: &str = "k8s.io.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "k8s.io.apimachinery.pkg.api.resource.Quantity";
const RAW_EXTENSION: &str = "k8s.io.apimachinery.pkg.runtime.RawExtension";

/// Reads an enveloped protobuf body.
pub(crate) fn decode(body: &[u8]) -> Result<Decoded, String> {
    let inner = body
        .strip_prefix(MAGIC)
        .ok_or("the body does not start with the Kubernetes protobuf magic number")?;
    let unknown = message(inner, UNKNOWN)?;
    let type_meta = unknown.get("typeMeta").cloned().unwrap_or(Value::Null);
    let api_version = type_meta["apiVersion"].as_str().unwrap_or("").to_string();
    let kind = type_meta["kind"].as_str().unwrap_or("").to_string();
    if let Some(encoding) = unknown.get("contentEncoding").and_then(Value::as_str) {
        return Err(format!("content encoding {encoding:?} is not supported"));
    }
    let raw = read_raw(inner)?;
    let name = message_name(&api_version, &kind).ok_or_else(|| {
        format!("protobuf bodies of {kind} ({api_version}) are not served by the netassay sandbox")
    })?;
    let mut object = message(&raw, name)?;
    object.insert("apiVersion".into(), Value::String(api_version.clone()));
    object.insert("kind".into(), Value::String(kind.clone()));
    Ok(Decoded {
        api_version,
        kind,
        object: Value::Object(object),
    })
}

/// The envelope's `raw` bytes (field 2 of runtime.Unknown).
fn read_raw(envelope: &[u8]) -> Result<Vec<u8>, String> {
    let mut reader = Reader::new(envelope);
    let mut raw = Vec::new();
    while let Some((tag, value)) = reader.next()? {
        if let (2, Wire::Bytes(bytes)) = (tag, value) {
            raw = bytes.to_vec();
        }
    }
    Ok(raw)
}

/// The proto message of a group/version and kind.
fn message_name(api_version: &str, kind: &str) -> Option<&'static str> {
    let package = match api_version {
        _ if kind == "DeleteOptions" => "k8s.io.apimachinery.pkg.apis.meta.v1",
        "v1" => "k8s.io.api.core.v1",
        "networking.k8s.io/v1" => "k8s.io.api.networking.v1",
        "coordination.k8s.io/v1" => "k8s.io.api.coordination.v1",
        "authorization.k8s.io/v1" => "k8s.io.api.authorization.v1",
        "authentication.k8s.io/v1" => "k8s.io.api.authentication.v1",
        "events.k8s.io/v1" => "k8s.io.api.events.v1",
        _ => return None,
    };
    let full = format!("{package}.{kind}");
    schema::MESSAGES
        .binary_search_by(|(name, _)| name.cmp(&full.as_str()))
        .ok()
        .map(|i| schema::MESSAGES[i].0)
}

fn fields_of(name: &str) -> Result<&'static [Field], String> {
    schema::MESSAGES
        .binary_search_by(|(n, _)| n.cmp(&name))
        .map(|i| schema::MESSAGES[i].1)
        .map_err(|_| format!("message {name} is not known to the netassay sandbox"))
}

/// One wire value.
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, at: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.data.get(self.at).ok_or("truncated protobuf varint")?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("protobuf varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.data.len())
            .ok_or("truncated protobuf field")?;
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    /// The next (tag, value), or `None` at the end.
    fn next(&mut self) -> Result<Option<(u32, Wire<'a>)>, String> {
        if self.at >= self.data.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag = u32::try_from(key >> 3).map_err(|_| "protobuf tag out of range")?;
        let value = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                Wire::Fixed64(u64::from_le_bytes(b.try_into().map_err(|_| "short")?))
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| "length out of range")?;
                Wire::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                Wire::Fixed32(u32::from_le_bytes(b.try_into().map_err(|_| "short")?))
            }
            other => return Err(format!("unsupported protobuf wire type {other}")),
        };
        Ok(Some((tag, value)))
    }
}

/// Decodes one message into a JSON object.
fn message(data: &[u8], name: &str) -> Result<Map<String, Value>, String> {
    let fields = fields_of(name)?;
    let mut out = Map::new();
    let mut reader = Reader::new(data);
    while let Some((tag, wire)) = reader.next()? {
        let field = fields
            .iter()
            .find(|f| f.tag == tag)
            .ok_or_else(|| format!("field {tag} of {name} is not known to the netassay sandbox"))?;
        let at = |what: String| format!("{name}.{}: {what}", field.name);
        if field.map {
            let Wire::Bytes(entry) = wire else {
                return Err(at("a map entry must be length-delimited".into()));
            };
            let (key, value) = map_entry(entry, field.ty).map_err(at)?;
            let object = out
                .entry(field.name)
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(map) = object {
                map.insert(key, value);
            }
            continue;
        }
        let values = match (field.ty, wire) {
            // Packed repeated scalars.
            (Ty::I32 | Ty::I64 | Ty::Bool, Wire::Bytes(packed)) if field.repeated => {
                let mut inner = Reader::new(packed);
                let mut values = Vec::new();
                while inner.at < packed.len() {
                    values.push(scalar(field.ty, Wire::Varint(inner.varint()?)).map_err(at)?);
                }
                values
            }
            (ty, wire) => vec![value(ty, wire).map_err(at)?],
        };
        for v in values {
            if field.repeated {
                let list = out
                    .entry(field.name)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = list {
                    // A list keeps its empty strings.
                    let empty = match field.ty {
                        Ty::Str => Value::String(String::new()),
                        _ => Value::Null,
                    };
                    items.push(v.unwrap_or(empty));
                }
            } else {
                match v {
                    Some(v) => {
                        out.insert(field.name.to_string(), v);
                    }
                    None => {
                        out.remove(field.name);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A map entry: key (1) and value (2).
fn map_entry(entry: &[u8], ty: Ty) -> Result<(String, Value), String> {
    let mut reader = Reader::new(entry);
    let (mut key, mut found) = (String::new(), None);
    while let Some((tag, wire)) = reader.next()? {
        match tag {
            1 => {
                if let Some(Value::String(k)) = value(Ty::Str, wire)? {
                    key = k;
                }
            }
            2 => found = value(ty, wire)?,
            other => return Err(format!("map entry field {other}")),
        }
    }
    let default = match ty {
        Ty::Str | Ty::Bytes => Value::String(String::new()),
        _ => Value::Null,
    };
    Ok((key, found.unwrap_or(default)))
}

/// A singular value; `None` when JSON leaves it out (an empty string, a zero time).
fn value(ty: Ty, wire: Wire<'_>) -> Result<Option<Value>, String> {
    match ty {
        Ty::Msg(name) => {
            let Wire::Bytes(bytes) = wire else {
                return Err("a message must be length-delimited".into());
            };
            special(name, bytes)
        }
        Ty::Str => {
            let Wire::Bytes(bytes) = wire else {
                return Err("a string must be length-delimited".into());
            };
            let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
            Ok((!text.is_empty()).then(|| Value::String(text.to_string())))
        }
        Ty::Bytes => {
            let Wire::Bytes(bytes) = wire else {
                return Err("bytes must be length-delimited".into());
            };
            Ok(Some(Value::String(base64(bytes))))
        }
        _ => scalar(ty, wire),
    }
}

fn scalar(ty: Ty, wire: Wire<'_>) -> Result<Option<Value>, String> {
    let n = match wire {
        Wire::Varint(n) | Wire::Fixed64(n) => n,
        Wire::Fixed32(n) => u64::from(n),
        Wire::Bytes(_) => return Err("a number must not be length-delimited".into()),
    };
    Ok(Some(match ty {
        Ty::Bool => Value::Bool(n != 0),
        // int32 is sign-extended to 64 bits on the wire.
        Ty::I32 => Value::from(n as i64 as i32),
        _ => Value::from(n as i64),
    }))
}

/// Messages whose JSON form is not an object of their fields.
fn special(name: &str, bytes: &[u8]) -> Result<Option<Value>, String> {
    let ints = |bytes: &[u8]| -> Result<(i64, i64), String> {
        let mut reader = Reader::new(bytes);
        let (mut first, mut second) = (0i64, 0i64);
        while let Some((tag, wire)) = reader.next()? {
            let n = match wire {
                Wire::Varint(n) | Wire::Fixed64(n) => n as i64,
                _ => return Err(format!("{name}: unexpected wire type")),
            };
            match tag {
                1 => first = n,
                2 => second = n,
                _ => {}
            }
        }
        Ok((first, second))
    };
    let bytes_field = |bytes: &[u8]| -> Result<Vec<u8>, String> {
        let mut reader = Reader::new(bytes);
        let mut raw = Vec::new();
        while let Some((tag, wire)) = reader.next()? {
            if let (1, Wire::Bytes(b)) = (tag, wire) {
                raw = b.to_vec();
            }
        }
        Ok(raw)
    };
    match name {
        TIME | MICRO_TIME => {
            let (seconds, nanos) = ints(bytes)?;
            if seconds == 0 && nanos == 0 {
                return Ok(None);
            }
            Ok(Some(Value::String(time_text(
                seconds,
                nanos,
                name == MICRO_TIME,
            )?)))
        }
        DURATION => Ok(Some(Value::String(go_duration(ints(bytes)?.0)))),
        INT_OR_STRING => {
            let mut reader = Reader::new(bytes);
            let (mut kind, mut int, mut text) = (0u64, 0i64, String::new());
            while let Some((tag, wire)) = reader.next()? {
                match (tag, wire) {
                    (1, Wire::Varint(n)) => kind = n,
                    (2, Wire::Varint(n)) => int = i64::from(n as i64 as i32),
                    (3, Wire::Bytes(b)) => {
                        text = String::from_utf8(b.to_vec()).map_err(|e| e.to_string())?
                    }
                    _ => {}
                }
            }
            Ok(Some(if kind == 1 {
                Value::String(text)
            } else {
                Value::from(int)
            }))
        }
        QUANTITY => {
            let raw = bytes_field(bytes)?;
            Ok(Some(Value::String(
                String::from_utf8(raw).map_err(|e| e.to_string())?,
            )))
        }
        FIELDS_V1 | RAW_EXTENSION => {
            let raw = bytes_field(bytes)?;
            if raw.is_empty() {
                return Ok(None);
            }
            serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| format!("{name} is not JSON: {e}"))
        }
        _ if name.ends_with(".ExtraValue") => {
            let mut reader = Reader::new(bytes);
            let mut items = Vec::new();
            while let Some((tag, wire)) = reader.next()? {
                if let (1, Wire::Bytes(b)) = (tag, wire) {
                    items.push(Value::String(
                        String::from_utf8(b.to_vec()).map_err(|e| e.to_string())?,
                    ));
                }
            }
            Ok(Some(Value::Array(items)))
        }
        _ => message(bytes, name).map(|m| Some(Value::Object(m))),
    }
}

/// RFC 3339 in UTC as upstream writes it: whole seconds for Time, microseconds for MicroTime.
fn time_text(seconds: i64, nanos: i64, micro: bool) -> Result<String, String> {
    let t = Timestamp::from_second(seconds).map_err(|e| e.to_string())?;
    let whole = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    Ok(if micro {
        format!("{whole}.{:06}Z", nanos / 1000)
    } else {
        format!("{whole}Z")
    })
}

/// Go's `time.Duration.String()` for whole and fractional seconds (e.g. `1h2m3.5s`).
fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        let (unit, div) = if n < 1_000 {
            ("ns", 1)
        } else if n < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", trim_fraction(n, div));
    }
    let (h, rest) = (n / 3_600_000_000_000, n % 3_600_000_000_000);
    let (m, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
    let seconds = trim_fraction(rest, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

fn trim_fraction(n: u64, div: u64) -> String {
    let (whole, frac) = (n / div, n % div);
    if frac == 0 {
        return whole.to_string();
    }
    let digits = div.to_string().len() - 1;
    let frac = format!("{frac:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Minimal protobuf writer for the tests.
    fn key(tag: u32, wire: u8, out: &mut Vec<u8>) {
        varint(u64::from(tag) << 3 | u64::from(wire), out);
    }
    fn varint(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn bytes(tag: u32, b: &[u8], out: &mut Vec<u8>) {
        key(tag, 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }
    fn int(tag: u32, n: u64, out: &mut Vec<u8>) {
        key(tag, 0, out);
        varint(n, out);
    }
    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut type_meta = Vec::new();
        bytes(1, api_version.as_bytes(), &mut type_meta);
        bytes(2, kind.as_bytes(), &mut type_meta);
        let mut unknown = Vec::new();
        bytes(1, &type_meta, &mut unknown);
        bytes(2, raw, &mut unknown);
        [MAGIC, &unknown].concat()
    }

    #[test]
    fn schema_is_sorted_for_binary_search() {
        assert!(schema::MESSAGES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(message_name("v1", "Pod").is_some());
        assert!(message_name("v1", "ConfigMap").is_none());
    }

    #[test]
    fn a_namespace_as_kubectl_create_namespace_sends_it() {
        // ObjectMeta: name "demo", generateName "" (Go writes empty strings), labels {a: b},
        // creationTimestamp zero.
        let mut label = Vec::new();
        bytes(1, b"a", &mut label);
        bytes(2, b"b", &mut label);
        let mut meta = Vec::new();
        bytes(1, b"demo", &mut meta);
        bytes(2, b"", &mut meta);
        bytes(8, &[], &mut meta);
        bytes(11, &label, &mut meta);
        let mut ns = Vec::new();
        bytes(1, &meta, &mut ns);
        bytes(2, &[], &mut ns);
        let decoded = decode(&envelope("v1", "Namespace", &ns)).unwrap();
        assert_eq!(decoded.kind, "Namespace");
        assert_eq!(
            decoded.object,
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "demo", "labels": {"a": "b"}}, "spec": {}})
        );
    }

    #[test]
    fn ports_times_int_or_string_and_quantities_take_their_json_forms() {
        // ServicePort {name "web", port 80, targetPort "http"}.
        let mut target = Vec::new();
        int(1, 1, &mut target);
        bytes(3, b"http", &mut target);
        let mut port = Vec::new();
        bytes(1, b"web", &mut port);
        int(3, 80, &mut port);
        bytes(4, &target, &mut port);
        let mut spec = Vec::new();
        bytes(1, &port, &mut spec);
        let mut time = Vec::new();
        int(1, 1_700_000_000, &mut time);
        let mut meta = Vec::new();
        bytes(1, b"svc", &mut meta);
        bytes(8, &time, &mut meta);
        let mut svc = Vec::new();
        bytes(1, &meta, &mut svc);
        bytes(2, &spec, &mut svc);
        let decoded = decode(&envelope("v1", "Service", &svc)).unwrap().object;
        assert_eq!(decoded["spec"]["ports"][0]["targetPort"], "http");
        assert_eq!(decoded["spec"]["ports"][0]["port"], 80);
        assert_eq!(
            decoded["metadata"]["creationTimestamp"],
            "2023-11-14T22:13:20Z"
        );
        let mut quantity = Vec::new();
        bytes(1, b"100m", &mut quantity);
        assert_eq!(special(QUANTITY, &quantity).unwrap(), Some(json!("100m")));
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused_not_dropped() {
        let mut ns = Vec::new();
        int(9, 1, &mut ns);
        let err = decode(&envelope("v1", "Namespace", &ns)).unwrap_err();
        assert!(
            err.contains("field 9 of k8s.io.api.core.v1.Namespace"),
            "{err}"
        );
        let err = decode(&envelope("v1", "ConfigMap", &[])).unwrap_err();
        assert!(err.contains("ConfigMap (v1) are not served"), "{err}");
        assert!(decode(b"{}").is_err());
    }

    #[test]
    fn durations_and_base64_as_go_writes_them() {
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_723_500_000_000), "1h2m3.5s");
        assert_eq!(go_duration(1_500_000), "1.5ms");
        assert_eq!(base64(b"hi!?"), "aGkhPw==");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
