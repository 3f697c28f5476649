//! Canonical JSON written straight from a `Serialize` value: the same text as
//! `canonical_json(&serde_json::to_value(value)?)`, without building the `Value` tree first.
//! A decision's audit payload (the pipeline's result and trace, the terms, the policies) was
//! turned into a tree, written and dropped: about a tenth of the server's CPU per decision.
//!
//! Entries are written in the order given into one buffer, each object keeping its keys aside
//! with the range each entry took. An object whose keys came sorted is then done; any other is
//! rewritten in sorted key order when it ends (a repeated key keeps its last value, as a
//! `serde_json::Map` does). Scalars are written as `to_value` would make them and serde_json
//! prints them, arbitrary-precision numbers as their text.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::Range;

use serde::ser::{self, Error as _, Impossible, Serialize};
use serde_json::{Error, Value};

use super::canonical::{canonical_json, write_str};

/// serde_json's private names for an arbitrary-precision number and a raw value.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";
/// [`Verbatim`]'s name, which only this serializer knows.
const VERBATIM_TOKEN: &str = "$encours::audit::Verbatim";

/// Canonical JSON of `value`, byte for byte what [`canonical_json`] writes of its `Value`.
pub fn to_canonical_json<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    let mut out = String::with_capacity(1024);
    value.serialize(Writer {
        out: &mut out,
        verbatim: false,
    })?;
    Ok(out)
}

/// Text already in canonical JSON, embedded as it is by [`to_canonical_json`] (so a part
/// hashed on its own is not written twice). Any other serializer sees a string: use it only
/// in values given to [`to_canonical_json`].
pub struct Verbatim<'a>(pub &'a str);

impl Serialize for Verbatim<'_> {
    fn serialize<S: ser::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_newtype_struct(VERBATIM_TOKEN, self.0)
    }
}

struct Writer<'a> {
    out: &'a mut String,
    /// Inside a [`Verbatim`]: its string is written as it is.
    verbatim: bool,
}

impl<'a> Writer<'a> {
    fn scalar(self, value: impl std::fmt::Display) -> Result<(), Error> {
        let _ = write!(self.out, "{value}");
        Ok(())
    }

    fn object(self, wrap: Option<&'static str>, form: Form) -> Object<'a> {
        if let Some(variant) = wrap {
            self.out.push('{');
            write_str(variant, self.out);
            self.out.push(':');
        }
        if form == Form::Object {
            self.out.push('{');
        }
        let start = self.out.len();
        Object {
            out: self.out,
            start,
            entries: Vec::new(),
            key: None,
            wrapped: wrap.is_some(),
            form,
        }
    }

    fn array(self, wrap: Option<&'static str>) -> Array<'a> {
        if let Some(variant) = wrap {
            self.out.push('{');
            write_str(variant, self.out);
            self.out.push(':');
        }
        self.out.push('[');
        Array {
            out: self.out,
            first: true,
            wrapped: wrap.is_some(),
        }
    }
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Array<'a>;
    type SerializeTuple = Array<'a>;
    type SerializeTupleStruct = Array<'a>;
    type SerializeTupleVariant = Array<'a>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Object<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.scalar(v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.scalar(Value::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.scalar(Value::from(v))
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        if self.verbatim {
            self.out.push_str(v);
        } else {
            write_str(v, self.out);
        }
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        let mut seq = self.array(None);
        for b in v {
            ser::SerializeSeq::serialize_element(&mut seq, b)?;
        }
        ser::SerializeSeq::end(seq)
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.push_str("null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(Writer {
            out: self.out,
            verbatim: name == VERBATIM_TOKEN,
        })
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.out.push('{');
        write_str(variant, self.out);
        self.out.push(':');
        value.serialize(Writer {
            out: self.out,
            verbatim: false,
        })?;
        self.out.push('}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Array<'a>, Error> {
        Ok(self.array(None))
    }
    fn serialize_tuple(self, _: usize) -> Result<Array<'a>, Error> {
        Ok(self.array(None))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Array<'a>, Error> {
        Ok(self.array(None))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Array<'a>, Error> {
        Ok(self.array(Some(variant)))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Object<'a>, Error> {
        Ok(self.object(None, Form::Object))
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Object<'a>, Error> {
        let form = match name {
            NUMBER_TOKEN => Form::Number,
            RAW_VALUE_TOKEN => Form::Raw,
            _ => Form::Object,
        };
        Ok(self.object(None, form))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Object<'a>, Error> {
        Ok(self.object(Some(variant), Form::Object))
    }
}

pub struct Array<'a> {
    out: &'a mut String,
    first: bool,
    /// A tuple variant: `{"variant":[…]}`.
    wrapped: bool,
}

impl Array<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if !std::mem::take(&mut self.first) {
            self.out.push(',');
        }
        value.serialize(Writer {
            out: self.out,
            verbatim: false,
        })
    }

    fn close(self) -> Result<(), Error> {
        self.out.push_str(if self.wrapped { "]}" } else { "]" });
        Ok(())
    }
}

macro_rules! array_impl {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Array<'_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }
            fn end(self) -> Result<(), Error> {
                self.close()
            }
        }
    )*};
}

array_impl!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// An object being written: from `start` (after its `{`), its entries `"key":value` in the
/// order given, separated by commas, and here their keys with the range each entry took.
pub struct Object<'a> {
    out: &'a mut String,
    start: usize,
    entries: Vec<(Cow<'static, str>, Range<usize>)>,
    /// The key given by `serialize_key`, waiting for its value.
    key: Option<String>,
    /// A struct variant: `{"variant":{…}}`.
    wrapped: bool,
    form: Form,
}

/// What serde_json's private structs stand for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Object,
    /// An arbitrary-precision number: its one field is its text, written as it is.
    Number,
    /// A raw value: its one field is JSON text, written canonical.
    Raw,
}

impl Object<'_> {
    fn entry<T: Serialize + ?Sized>(
        &mut self,
        key: Cow<'static, str>,
        value: &T,
    ) -> Result<(), Error> {
        if self.form == Form::Object {
            if !self.entries.is_empty() {
                self.out.push(',');
            }
            let from = self.out.len();
            write_str(&key, self.out);
            self.out.push(':');
            value.serialize(Writer {
                out: self.out,
                verbatim: false,
            })?;
            self.entries.push((key, from..self.out.len()));
        } else {
            value.serialize(Writer {
                out: self.out,
                verbatim: true,
            })?;
        }
        Ok(())
    }

    /// Ends the object. Entries given in strictly ascending key order (most maps, some
    /// structs) are already where they belong; otherwise they are rewritten in sorted order.
    fn close(mut self) -> Result<(), Error> {
        match self.form {
            Form::Object => {}
            Form::Number => return Ok(()),
            Form::Raw => {
                let raw: Value = serde_json::from_str(&self.out[self.start..])?;
                self.out.truncate(self.start);
                self.out.push_str(&canonical_json(&raw));
                return Ok(());
            }
        }
        if !self.entries.windows(2).all(|pair| pair[0].0 < pair[1].0) {
            let written = self.out.split_off(self.start);
            // Stable: of equal keys, the one given last comes last and wins.
            self.entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut first = true;
            for (i, (key, range)) in self.entries.iter().enumerate() {
                if self.entries.get(i + 1).is_some_and(|next| next.0 == *key) {
                    continue;
                }
                if !std::mem::take(&mut first) {
                    self.out.push(',');
                }
                self.out
                    .push_str(&written[range.start - self.start..range.end - self.start]);
            }
        }
        self.out.push_str(if self.wrapped { "}}" } else { "}" });
        Ok(())
    }
}

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(map_key(key)?);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self
            .key
            .take()
            .ok_or_else(|| Error::custom("a map value without its key"))?;
        self.entry(Cow::Owned(key), value)
    }

    fn end(self) -> Result<(), Error> {
        self.close()
    }
}

macro_rules! fields_impl {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Object<'_> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Error> {
                self.entry(Cow::Borrowed(key), value)
            }
            fn end(self) -> Result<(), Error> {
                self.close()
            }
        }
    )*};
}

fields_impl!(SerializeStruct, SerializeStructVariant);

/// A map key as `serde_json::to_value` makes it: a string as it is, an integer or a unit
/// variant as its text. Other keys (which no audited type has) are refused.
fn map_key<T: Serialize + ?Sized>(key: &T) -> Result<String, Error> {
    key.serialize(KeyString)
}

struct KeyString;

macro_rules! text {
    ($($method:ident($arg:ty)),*) => {$(
        fn $method(self, v: $arg) -> Result<String, Error> {
            Ok(v.to_string())
        }
    )*};
}

macro_rules! refuse {
    ($($method:ident($($arg:ty),*)),*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<String, Error> {
            Err(Error::custom("not a string key"))
        }
    )*};
}

impl ser::Serializer for KeyString {
    type Ok = String;
    type Error = Error;
    type SerializeSeq = Impossible<String, Error>;
    type SerializeTuple = Impossible<String, Error>;
    type SerializeTupleStruct = Impossible<String, Error>;
    type SerializeTupleVariant = Impossible<String, Error>;
    type SerializeMap = Impossible<String, Error>;
    type SerializeStruct = Impossible<String, Error>;
    type SerializeStructVariant = Impossible<String, Error>;

    fn serialize_str(self, v: &str) -> Result<String, Error> {
        Ok(v.to_owned())
    }
    fn serialize_char(self, v: char) -> Result<String, Error> {
        Ok(v.to_string())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, Error> {
        Ok(variant.to_owned())
    }
    text!(
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128)
    );
    refuse!(
        serialize_bool(bool),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str)
    );
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, Error> {
        Err(Error::custom("not a string key"))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<String, Error> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, Error> {
        Err(Error::custom("not a string key"))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(Error::custom("not a string key"))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(Error::custom("not a string key"))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(Error::custom("not a string key"))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(Error::custom("not a string key"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(Error::custom("not a string key"))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(Error::custom("not a string key"))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(Error::custom("not a string key"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use rust_decimal::Decimal;
    use serde::Serialize;
    use serde_json::json;

    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Unit,
        Newtype(u8),
        Tuple(i32, String),
        Struct { z: bool, a: Option<f64> },
    }

    #[derive(Serialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Tagged {
        Cap { amount: Decimal },
        Note(BTreeMap<String, i64>),
    }

    #[derive(Serialize)]
    struct Inner {
        zeta: &'static str,
        alpha: Vec<Kind>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Sample {
        y: i128,
        b: u128,
        text: String,
        c: char,
        floats: (f32, f64, f64),
        nothing: Option<String>,
        unit: (),
        unit_struct: Unit,
        bytes: serde_bytes_like::Bytes,
        when: chrono::DateTime<chrono::Utc>,
        amount: Decimal,
        tagged: Vec<Tagged>,
        inner: Inner,
        #[serde(flatten)]
        extra: HashMap<String, Value>,
        by_number: BTreeMap<u32, &'static str>,
        by_variant: BTreeMap<&'static str, Kind>,
        value: Value,
    }

    /// `&[u8]` through `serialize_bytes`.
    mod serde_bytes_like {
        pub struct Bytes(pub Vec<u8>);
        impl serde::Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
    }

    fn sample() -> Sample {
        let value: Value = serde_json::from_str(
            r#"{"n": 12500.10, "big": 123456789012345678901234567890, "e": 1e400,
                "s": "é \" \\ \n \u0001 /", "a": [true, null, {"b": 1, "a": -0.0}], "": {}}"#,
        )
        .unwrap();
        Sample {
            y: -170_141_183_460_469_231_731_687_303_715_884_105_728,
            b: u128::MAX,
            text: "tab\t \"quoted\" 中文 \u{7f}".into(),
            c: '"',
            floats: (1.1, 0.1 + 0.2, f64::NAN),
            nothing: None,
            unit: (),
            unit_struct: Unit,
            bytes: serde_bytes_like::Bytes(vec![0, 7, 255]),
            when: chrono::DateTime::from_timestamp(1_764_547_200, 123_000).unwrap(),
            amount: Decimal::new(125_050, 2),
            tagged: vec![
                Tagged::Cap {
                    amount: Decimal::new(1, 1),
                },
                Tagged::Note(BTreeMap::from([("z".into(), 1), ("a".into(), -2)])),
            ],
            inner: Inner {
                zeta: "last",
                alpha: vec![
                    Kind::Unit,
                    Kind::Newtype(3),
                    Kind::Tuple(-1, "x".into()),
                    Kind::Struct {
                        z: true,
                        a: Some(2.5),
                    },
                ],
                skipped: None,
            },
            extra: HashMap::from([
                ("zz".into(), json!([1, "2"])),
                ("aa".into(), json!({"k": null})),
                // Repeats a field: the last one given wins, as in a `Map`.
                ("text".into(), json!("from the flattened map")),
            ]),
            by_number: BTreeMap::from([(10, "ten"), (9, "nine"), (100, "hundred")]),
            by_variant: BTreeMap::from([("b", Kind::Unit), ("a", Kind::Newtype(1))]),
            value,
        }
    }

    #[test]
    fn writes_what_canonical_json_writes_of_the_value() {
        let sample = sample();
        let expected = canonical_json(&serde_json::to_value(&sample).unwrap());
        assert_eq!(to_canonical_json(&sample).unwrap(), expected);
    }

    #[test]
    fn verbatim_text_is_embedded_as_it_is() {
        #[derive(Serialize)]
        struct Outer<'a> {
            z: u8,
            inner: Verbatim<'a>,
        }
        let inner = canonical_json(&json!({"b": [1, 2], "a": "x"}));
        let written = to_canonical_json(&Outer {
            z: 1,
            inner: Verbatim(&inner),
        })
        .unwrap();
        assert_eq!(written, r#"{"inner":{"a":"x","b":[1,2]},"z":1}"#);
    }

    /// An object whose entries come in the order given, repeats included, as a struct or a
    /// flattened map can give them (a `Value`'s map always gives them sorted).
    #[derive(Debug, Clone)]
    enum Tree {
        Leaf(Value),
        Object(Vec<(String, Tree)>),
        List(Vec<Tree>),
    }

    impl Serialize for Tree {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{SerializeMap, SerializeSeq};
            match self {
                Tree::Leaf(value) => value.serialize(s),
                Tree::Object(entries) => {
                    let mut map = s.serialize_map(Some(entries.len()))?;
                    for (k, v) in entries {
                        map.serialize_entry(k, v)?;
                    }
                    map.end()
                }
                Tree::List(items) => {
                    let mut seq = s.serialize_seq(Some(items.len()))?;
                    for item in items {
                        seq.serialize_element(item)?;
                    }
                    seq.end()
                }
            }
        }
    }

    fn tree() -> impl proptest::strategy::Strategy<Value = Tree> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            any::<i64>().prop_map(|n| Tree::Leaf(json!(n))),
            "[a-c\\\"é]{0,3}".prop_map(|s| Tree::Leaf(json!(s))),
            Just(Tree::Leaf(Value::Null)),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                // Few distinct keys, so that orders vary and keys repeat.
                prop::collection::vec(("[a-d]{0,2}", inner.clone()), 0..6).prop_map(Tree::Object),
                prop::collection::vec(inner, 0..4).prop_map(Tree::List),
            ]
        })
    }

    #[test]
    fn keys_in_any_order_and_repeated_are_written_as_the_value_would_be() {
        use proptest::test_runner::{Config, TestRunner};
        let mut runner = TestRunner::new(Config {
            cases: 2_000,
            ..Config::default()
        });
        runner
            .run(&tree(), |t| {
                let expected = canonical_json(&serde_json::to_value(&t).unwrap());
                proptest::prop_assert_eq!(to_canonical_json(&t).unwrap(), expected);
                Ok(())
            })
            .unwrap();
    }
}
