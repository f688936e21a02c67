//! The recording serde `Deserializer` of config_reference.rs (its header explains the
//! approach): walks `raw::FileConfig` and returns every table and key the parser accepts,
//! with each key's TOML type.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use mxguard::config::raw::FileConfig;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

const SPANNED: &str = "$__serde_spanned_private_Spanned";

/// What the walk found: tables (path -> is an array of tables) and leaf keys (path -> type).
#[derive(Debug, Default)]
pub struct Schema {
    pub tables: BTreeMap<String, bool>,
    pub keys: BTreeMap<String, String>,
}

#[derive(Debug)]
struct WalkError(String);

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for WalkError {}
impl de::Error for WalkError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        WalkError(msg.to_string())
    }
}

/// The recording deserializer, standing at one key path.
#[derive(Clone)]
struct Recorder {
    path: String,
    /// Inside an array: leaves become `array of T`, tables arrays of tables.
    in_array: bool,
    schema: Rc<RefCell<Schema>>,
}

impl Recorder {
    fn leaf(&self, ty: &str) {
        let ty = if self.in_array {
            format!("array of {ty}")
        } else {
            ty.to_string()
        };
        self.schema.borrow_mut().keys.insert(self.path.clone(), ty);
    }
    fn child(&self, field: &str) -> Recorder {
        Recorder {
            path: if self.path.is_empty() {
                field.to_string()
            } else {
                format!("{}.{field}", self.path)
            },
            in_array: false,
            schema: self.schema.clone(),
        }
    }
}

/// Feeds a struct's fields one by one, each value deserialised by a child recorder.
struct Fields {
    fields: std::slice::Iter<'static, &'static str>,
    current: &'static str,
    parent: Recorder,
    spanned: bool,
}

impl<'de> MapAccess<'de> for Fields {
    type Error = WalkError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, WalkError> {
        match self.fields.next() {
            None => Ok(None),
            Some(f) => {
                self.current = f;
                seed.deserialize(de::value::BorrowedStrDeserializer::new(f))
                    .map(Some)
            }
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, WalkError> {
        if self.spanned {
            if self.current.ends_with("_value") {
                seed.deserialize(self.parent.clone())
            } else {
                seed.deserialize(0u64.into_deserializer())
            }
        } else {
            seed.deserialize(self.parent.child(self.current))
        }
    }
}

/// An array with one sample element.
struct OneElement(Option<Recorder>);

impl<'de> SeqAccess<'de> for OneElement {
    type Error = WalkError;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, WalkError> {
        match self.0.take() {
            None => Ok(None),
            Some(r) => seed.deserialize(r).map(Some),
        }
    }
}

/// A map with no entries (a free-form table such as `[[limit]] overrides`).
struct NoEntries;

impl<'de> MapAccess<'de> for NoEntries {
    type Error = WalkError;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        _: K,
    ) -> Result<Option<K::Value>, WalkError> {
        Ok(None)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, _: V) -> Result<V::Value, WalkError> {
        Err(WalkError("no values".into()))
    }
}

impl<'de> de::Deserializer<'de> for Recorder {
    type Error = WalkError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, WalkError> {
        Err(WalkError(format!(
            "{}: a field type the recorder cannot sample (deserialize_any); teach it",
            self.path
        )))
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.leaf("boolean");
        v.visit_bool(false)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.leaf("integer");
        v.visit_i64(0)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.leaf("integer");
        v.visit_u64(0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.leaf("float");
        v.visit_f64(0.0)
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.leaf("string");
        v.visit_str("")
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.deserialize_str(v)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_some(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        let element = Recorder {
            in_array: true,
            ..self
        };
        v.visit_seq(OneElement(Some(element)))
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.leaf("table");
        v.visit_map(NoEntries)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, WalkError> {
        let spanned = name == SPANNED;
        if !spanned && !self.path.is_empty() {
            self.schema
                .borrow_mut()
                .tables
                .insert(self.path.clone(), self.in_array);
        }
        v.visit_map(Fields {
            fields: fields.iter(),
            current: "",
            parent: self,
            spanned,
        })
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i128 u8 u16 u32 u128 f32 char bytes byte_buf unit unit_struct
        newtype_struct tuple tuple_struct enum identifier ignored_any
    }
}

/// Every table and key `FileConfig` accepts.
pub fn schema() -> Schema {
    let schema = Rc::new(RefCell::new(Schema::default()));
    let root = Recorder {
        path: String::new(),
        in_array: false,
        schema: schema.clone(),
    };
    FileConfig::deserialize(root).unwrap_or_else(|e| panic!("walking FileConfig: {e}"));
    Rc::try_unwrap(schema).unwrap().into_inner()
}
