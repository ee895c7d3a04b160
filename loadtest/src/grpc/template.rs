//! Request templates: a message written as JSON (proto3's JSON mapping), whose strings
//! may hold placeholders filled per request:
//! - `{key}`: a key of the operation's keyspace;
//! - `{n}`: the request's number (per client, from 0);
//! - `{uuid}`: a random UUID (v4, from the scenario's seed);
//! - `{bytes:N}`: N random bytes in a `bytes` field, N random letters and digits in a
//!   `string` field;
//! - `{now_ms}`: the wall clock in milliseconds since 1970;
//! - `{{`: a literal `{`.
//!
//! A number field takes `{n}` or `{now_ms}` alone. The template is checked against the
//! message's descriptor when it is compiled, field by field, so a misspelt field or a
//! value of the wrong type is reported at its place in the scenario.

use base64::Engine as _;
use bytes::Bytes;
use prost::Message as _;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};
use rand::rngs::StdRng;
use rand::{Rng, RngCore};
use serde_json::Value;

use crate::engine::now_ms;

/// The most bytes one `{bytes:N}` may ask for: gRPC's default message limit.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;

const PLACEHOLDERS: &str = "{key}, {n}, {uuid}, {bytes:N}, {now_ms}";

/// What a request's placeholders are filled with.
pub struct Vars<'a> {
    pub key: &'a [u8],
    pub n: u64,
    pub rng: &'a mut StdRng,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Key,
    N,
    Uuid,
    Bytes(usize),
    NowMs,
}

/// How a slot's rendering goes into the JSON: by the kind of its field.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    Text,
    /// base64, as proto3 JSON writes bytes.
    Bytes,
    Number,
}

#[derive(Debug)]
struct Slot {
    /// JSON pointer of the string in the template.
    pointer: String,
    parts: Vec<Part>,
    form: Form,
}

/// A compiled request template.
#[derive(Debug)]
pub struct Template {
    message: MessageDescriptor,
    base: Value,
    slots: Vec<Slot>,
    /// The encoding, when nothing varies.
    constant: Option<Bytes>,
}

/// A problem at a field path below the template (`.a.b[0]`), for the caller to prefix.
pub type Problem = (String, String);

impl Template {
    /// Checks `value` against `message` and compiles it; every problem found otherwise.
    pub fn compile(message: &MessageDescriptor, value: &Value) -> Result<Template, Vec<Problem>> {
        let mut checker = Checker::default();
        checker.message(message, value, "", "");
        if !checker.problems.is_empty() {
            return Err(checker.problems);
        }
        let mut template = Template {
            message: message.clone(),
            base: value.clone(),
            slots: checker.slots,
            constant: None,
        };
        // A sample rendering finds what only the JSON mapping checks (enum names,
        // ranges, well-known types).
        let mut rng = <StdRng as rand::SeedableRng>::seed_from_u64(0);
        let sample = template.render(&mut Vars {
            key: b"key",
            n: 0,
            rng: &mut rng,
        });
        match sample {
            Ok(encoded) if template.slots.is_empty() => template.constant = Some(encoded),
            Ok(_) => {}
            Err(e) => return Err(vec![(String::new(), e)]),
        }
        Ok(template)
    }

    /// The request's protobuf encoding, placeholders filled from `vars`.
    pub fn render(&self, vars: &mut Vars<'_>) -> Result<Bytes, String> {
        if let Some(constant) = &self.constant {
            return Ok(constant.clone());
        }
        let mut value = self.base.clone();
        for slot in &self.slots {
            if let Some(target) = value.pointer_mut(&slot.pointer) {
                *target = fill(slot, vars);
            }
        }
        let message = DynamicMessage::deserialize(self.message.clone(), value)
            .map_err(|e| format!("does not encode as {}: {e}", self.message.full_name()))?;
        Ok(Bytes::from(message.encode_to_vec()))
    }
}

fn fill(slot: &Slot, vars: &mut Vars<'_>) -> Value {
    let mut out: Vec<u8> = Vec::new();
    for part in &slot.parts {
        match part {
            Part::Text(t) => out.extend_from_slice(t.as_bytes()),
            Part::Key => out.extend_from_slice(vars.key),
            Part::N => out.extend_from_slice(vars.n.to_string().as_bytes()),
            Part::NowMs => out.extend_from_slice(now_ms().to_string().as_bytes()),
            Part::Uuid => {
                let mut random = [0u8; 16];
                vars.rng.fill_bytes(&mut random);
                out.extend_from_slice(
                    uuid::Builder::from_random_bytes(random)
                        .into_uuid()
                        .to_string()
                        .as_bytes(),
                );
            }
            Part::Bytes(n) if slot.form == Form::Bytes => {
                let start = out.len();
                out.resize(start + n, 0);
                vars.rng.fill_bytes(&mut out[start..]);
            }
            Part::Bytes(n) => out.extend((0..*n).map(|_| vars.rng.sample(rand::distr::Alphanumeric))),
        }
    }
    match slot.form {
        Form::Bytes => Value::String(base64::engine::general_purpose::STANDARD.encode(&out)),
        Form::Text => Value::String(String::from_utf8_lossy(&out).into_owned()),
        Form::Number => match &slot.parts[..] {
            [Part::N] => Value::from(vars.n),
            _ => Value::from(now_ms()),
        },
    }
}

/// The parts of a template string; an error for an unknown or unclosed placeholder.
fn parse_parts(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        literal.push_str(&rest[..open]);
        rest = &rest[open..];
        if let Some(after) = rest.strip_prefix("{{") {
            literal.push('{');
            rest = after;
            continue;
        }
        let Some(close) = rest.find('}') else {
            return Err(format!(
                "{text:?}: a `{{` is not closed (write `{{{{` for a literal `{{`)"
            ));
        };
        let name = &rest[1..close];
        let part = match name {
            "key" => Part::Key,
            "n" => Part::N,
            "uuid" => Part::Uuid,
            "now_ms" => Part::NowMs,
            _ => match name.strip_prefix("bytes:").map(str::parse::<usize>) {
                Some(Ok(n)) if n <= MAX_BYTES => Part::Bytes(n),
                Some(_) => return Err(format!("{{{name}}}: N is a size in 0..={MAX_BYTES}")),
                None => {
                    return Err(format!(
                        "{{{name}}} is no placeholder; expected one of {PLACEHOLDERS} (`{{{{` for a literal `{{`)"
                    ));
                }
            },
        };
        if !literal.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut literal)));
        }
        parts.push(part);
        rest = &rest[close + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Text(literal));
    }
    Ok(parts)
}

/// Well-known types have JSON forms of their own (a Timestamp is a string): left to the
/// JSON mapping.
fn is_well_known(message: &MessageDescriptor) -> bool {
    message.full_name().starts_with("google.protobuf.")
}

/// Walks a template along its message's descriptor: the slots to fill per request, and
/// what does not fit the message.
#[derive(Default)]
struct Checker {
    slots: Vec<Slot>,
    problems: Vec<Problem>,
}

impl Checker {
    fn message(&mut self, message: &MessageDescriptor, value: &Value, pointer: &str, field: &str) {
        if is_well_known(message) {
            if let Value::String(s) = value {
                self.string(Form::Text, s, pointer, field);
            }
            return;
        }
        let Value::Object(fields) = value else {
            if !value.is_null() {
                self.problems.push((
                    field.to_string(),
                    format!(
                        "expected a mapping for message {}, found {}",
                        message.full_name(),
                        describe(value)
                    ),
                ));
            }
            return;
        };
        for (name, v) in fields {
            let path = format!("{field}.{name}");
            let ptr = format!("{pointer}/{}", name.replace('~', "~0").replace('/', "~1"));
            let Some(f) = message
                .get_field_by_json_name(name)
                .or_else(|| message.get_field_by_name(name))
            else {
                let known: Vec<String> = message.fields().map(|f| f.json_name().to_string()).collect();
                self.problems.push((
                    path,
                    format!(
                        "message {} has no field {name:?} (its fields: {})",
                        message.full_name(),
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
                continue;
            };
            self.field(&f, v, &ptr, &path);
        }
    }

    fn field(&mut self, f: &FieldDescriptor, value: &Value, pointer: &str, field: &str) {
        if value.is_null() {
            return;
        }
        if f.is_map() {
            let Value::Object(entries) = value else {
                self.problems.push((
                    field.to_string(),
                    format!("expected a mapping (a map field), found {}", describe(value)),
                ));
                return;
            };
            let Kind::Message(entry) = f.kind() else { return };
            let value_field = entry.map_entry_value_field();
            for (k, v) in entries {
                let ptr = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                self.single(&value_field, v, &ptr, &format!("{field}.{k}"));
            }
        } else if f.is_list() {
            let Value::Array(items) = value else {
                self.problems.push((
                    field.to_string(),
                    format!("expected a list (a repeated field), found {}", describe(value)),
                ));
                return;
            };
            for (i, v) in items.iter().enumerate() {
                self.single(f, v, &format!("{pointer}/{i}"), &format!("{field}[{i}]"));
            }
        } else {
            self.single(f, value, pointer, field);
        }
    }

    /// One value of field `f` (an element, for a list).
    fn single(&mut self, f: &FieldDescriptor, value: &Value, pointer: &str, field: &str) {
        let wrong = |expected: &str| {
            let mut message = format!(
                "expected {expected} for {} field {}, found {}",
                kind_name(&f.kind()),
                f.name(),
                describe(value)
            );
            // YAML reads an unquoted `{key}` as a mapping with one empty entry.
            if let Value::Object(m) = value
                && m.len() == 1
                && m.values().all(Value::is_null)
            {
                message.push_str("; quote a placeholder in YAML: \"{key}\"");
            }
            (field.to_string(), message)
        };
        match f.kind() {
            Kind::Message(m) => self.message(&m, value, pointer, field),
            Kind::String => match value {
                Value::String(s) => self.string(Form::Text, s, pointer, field),
                _ => self.problems.push(wrong("a string")),
            },
            Kind::Bytes => match value {
                Value::String(s) => self.string(Form::Bytes, s, pointer, field),
                _ => self.problems.push(wrong("a string (base64, or with placeholders)")),
            },
            Kind::Bool => {
                if !value.is_boolean() {
                    self.problems.push(wrong("true or false"));
                }
            }
            Kind::Enum(e) => match value {
                Value::Number(_) => {}
                Value::String(s) if e.get_value_by_name(s).is_some() => {}
                Value::String(s) => {
                    let names: Vec<String> = e.values().map(|v| v.name().to_string()).collect();
                    self.problems.push((
                        field.to_string(),
                        format!(
                            "{s:?} is no value of enum {} (it has: {})",
                            e.full_name(),
                            names.join(", ")
                        ),
                    ));
                }
                _ => self.problems.push(wrong("an enum value's name")),
            },
            // Numbers: a JSON number, a quoted one (proto3 JSON allows it), or a placeholder.
            _ => match value {
                Value::Number(_) => {}
                Value::String(s) if s.contains('{') => self.string(Form::Number, s, pointer, field),
                Value::String(_) => {}
                _ => self.problems.push(wrong("a number")),
            },
        }
    }

    /// A string value: a slot when it has placeholders.
    fn string(&mut self, form: Form, text: &str, pointer: &str, field: &str) {
        if !text.contains('{') {
            return;
        }
        let parts = match parse_parts(text) {
            Ok(parts) => parts,
            Err(e) => {
                self.problems.push((field.to_string(), e));
                return;
            }
        };
        if form == Form::Number && !matches!(parts[..], [Part::N] | [Part::NowMs]) {
            self.problems.push((
                field.to_string(),
                format!("{text:?}: a number field takes `{{n}}` or `{{now_ms}}` alone"),
            ));
            return;
        }
        // A slot even with escapes only: `{{` is written `{`.
        self.slots.push(Slot {
            pointer: pointer.to_string(),
            parts,
            form,
        });
    }
}

fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Message(m) => format!("message {}", m.full_name()),
        Kind::Enum(e) => format!("enum {}", e.full_name()),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}
