//! NDJSON and JSON-array bodies, parsed in one pass with no intermediate JSON tree: each
//! object's keys are looked up in the stream's columns and its values borrowed from the body.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::row::{BatchBuilder, RawRow, Slot};
use super::value::Raw;

/// Decodes newline-delimited JSON: one event object per line; blank lines are skipped.
pub(crate) fn decode_ndjson(builder: &mut BatchBuilder<'_>, body: &[u8]) {
    // Validate UTF-8 once for the whole body, so the parser need not check each string.
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            let row = 1 + memchr::memchr_iter(b'\n', &body[..e.valid_up_to()]).count();
            builder.error(row, None, "malformed JSON: not valid UTF-8");
            return;
        }
    };
    let mut row = builder.new_row();
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len()));
    for end in ends {
        let line = &text[start..end];
        start = end + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.bytes().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        if !builder.has_room() {
            return;
        }
        let mut de = serde_json::Deserializer::from_str(line);
        let parsed = RowSeed {
            builder,
            row: &mut row,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        match parsed {
            Ok(()) => builder.push(&mut row),
            Err(e) => {
                row.clear();
                builder.skip_row(malformed(&e, true));
            }
        }
    }
}

/// Decodes a JSON array of event objects.
pub(crate) fn decode_array(builder: &mut BatchBuilder<'_>, body: &[u8]) {
    let Ok(text) = std::str::from_utf8(body) else {
        builder.error(1, None, "malformed JSON: not valid UTF-8");
        return;
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let res = de
        .deserialize_seq(ArrayVisitor { builder })
        .and_then(|()| de.end());
    if let Err(e) = res
        && builder.has_room()
    {
        builder.skip_row(malformed(&e, false));
    }
}

/// A parse error as a message; NDJSON positions are within the line, so only the column helps.
fn malformed(e: &serde_json::Error, one_line: bool) -> String {
    let full = e.to_string();
    let msg = full
        .rsplit_once(" at line ")
        .map_or(full.as_str(), |(m, _)| m);
    if e.line() == 0 {
        format!("malformed JSON: {msg}")
    } else if one_line {
        format!("malformed JSON at column {}: {msg}", e.column())
    } else {
        format!(
            "malformed JSON at line {} column {}: {msg}",
            e.line(),
            e.column()
        )
    }
}

struct ArrayVisitor<'b, 'd> {
    builder: &'b mut BatchBuilder<'d>,
}

impl<'de> Visitor<'de> for ArrayVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of event objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut row = self.builder.new_row();
        loop {
            if !self.builder.has_room() {
                return Ok(()); // the caller reports the limit; stop reading
            }
            let seed = RowSeed {
                builder: self.builder,
                row: &mut row,
            };
            match seq.next_element_seed(seed)? {
                Some(()) => self.builder.push(&mut row),
                None => return Ok(()),
            }
        }
    }
}

/// Reads one event object into a [`RawRow`].
struct RowSeed<'b, 'd, 'r, 'de> {
    builder: &'b BatchBuilder<'d>,
    row: &'r mut RawRow<'de>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_, '_, '_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, '_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut position = 0;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let slot = self.builder.lookup_at(self.row, position, &key);
            position += 1;
            match slot {
                Some(Slot::Column(i)) => {
                    let RawValue(v) = map.next_value::<RawValue<'de>>()?;
                    self.row.set(i, v);
                }
                Some(Slot::ServerSet) => {
                    map.next_value::<IgnoredAny>()?;
                    let name = if key == "recorded_at" {
                        "recorded_at"
                    } else {
                        "source"
                    };
                    self.row.server_set.push(name);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                    self.row.unknown.push(key.into_owned());
                }
            }
        }
        Ok(())
    }
}

/// An object key, borrowed from the body when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, as a [`Raw`].
struct RawValue<'de>(Raw<'de>);

impl<'de> de::Deserialize<'de> for RawValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawValue<'de>, E> {
                Ok(RawValue(Raw::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawValue<'de>, E> {
                Ok(RawValue(Raw::Int(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawValue<'de>, E> {
                Ok(RawValue(Raw::UInt(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawValue<'de>, E> {
                Ok(RawValue(Raw::Float(v)))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<RawValue<'de>, E> {
                Ok(RawValue(Raw::Str(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawValue<'de>, E> {
                Ok(RawValue(Raw::Str(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<RawValue<'de>, E> {
                Ok(RawValue(Raw::Str(Cow::Owned(v))))
            }
            fn visit_unit<E>(self) -> Result<RawValue<'de>, E> {
                Ok(RawValue(Raw::Null))
            }
            fn visit_none<E>(self) -> Result<RawValue<'de>, E> {
                Ok(RawValue(Raw::Null))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(RawValue(Raw::Nested("an object")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RawValue(Raw::Nested("an array")))
            }
        }
        d.deserialize_any(V)
    }
}
