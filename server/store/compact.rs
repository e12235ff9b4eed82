//! The one-pass writer of compact bodies (see `codec`): serde straight to
//! JSON bytes, leaving out the struct fields equal to their template.
//!
//! Its output is byte-identical to what the codec wrote before it, which
//! built a `serde_json::Value`, stripped the template fields from it and
//! wrote the tree (canonically for events, as serde_json does for rows): a
//! test keeps the two equal. Building the tree cost a third of the SQLite
//! writer thread's CPU under Ask load (a `String` key and a node per field).
//!
//! A struct's fields are written in declaration order into the output,
//! each one dropped again if its bytes equal the template's, and then
//! reordered by key. Maps (arbitrary JSON in `input` and
//! `answer`) are written the same way, with no template.

use crate::core::canonical::{format_js_number, js_key_order};
use serde::ser::{self, Serialize};

/// The default bytes of a struct's fields, by field name.
pub(super) type Template = [(String, Vec<u8>)];

/// How keys are ordered and numbers written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    /// Events (the hash covers them): JavaScript key order and numbers.
    Canonical,
    /// Rows: serde_json's (keys by bytes, Rust number formatting).
    Plain,
}

/// Writing failed: a type JSON cannot hold (a map with a non-string key).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct WriteError(String);

impl ser::Error for WriteError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        WriteError(msg.to_string())
    }
}

type Result<T> = std::result::Result<T, WriteError>;

/// Writes `value` into `out`. The outermost struct uses `top` as its
/// template and leaves out the fields named in `omit`; nested structs find
/// their template with `by_name`, from their serde name.
pub(super) fn write<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
    form: Form,
    top: Option<&Template>,
    omit: &[&str],
    by_name: fn(&str) -> Option<&'static Template>,
) -> Result<()> {
    value.serialize(Writer {
        out,
        ctx: Ctx { form, by_name },
        top: Top::Struct {
            template: top,
            omit,
        },
    })
}

/// Writes the `data` of an adjacently tagged enum value (`{"type", "data"}`)
/// as `write` would write the data alone; `{}` when it has none.
pub(super) fn write_data<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
    form: Form,
    top: Option<&Template>,
    by_name: fn(&str) -> Option<&'static Template>,
) -> Result<()> {
    value.serialize(Writer {
        out,
        ctx: Ctx { form, by_name },
        top: Top::Data { template: top },
    })
}

#[derive(Clone, Copy)]
struct Ctx {
    form: Form,
    by_name: fn(&str) -> Option<&'static Template>,
}

/// What the value being written is to its parent.
#[derive(Clone, Copy)]
enum Top<'a> {
    /// Nested: templates by name, nothing omitted.
    Nested,
    /// The outermost value.
    Struct {
        template: Option<&'a Template>,
        omit: &'a [&'a str],
    },
    /// The outermost value is a tagged enum: write its `data` only.
    Data { template: Option<&'a Template> },
    /// A map key: the raw text of a string, unescaped.
    Key,
}

struct Writer<'o, 't> {
    out: &'o mut Vec<u8>,
    ctx: Ctx,
    top: Top<'t>,
}

impl<'o, 't> Writer<'o, 't> {
    fn nested(&mut self) -> Writer<'_, 'static> {
        Writer {
            out: &mut *self.out,
            ctx: self.ctx,
            top: Top::Nested,
        }
    }

    fn not_a_key(&self) -> Result<()> {
        match self.top {
            Top::Key => Err(WriteError("a map key must be a string".into())),
            _ => Ok(()),
        }
    }

    /// An integer: in canonical form JavaScript's number for `approx`, the
    /// nearest double (what `Number::as_f64` gives the tree writer).
    fn int(self, v: impl Serialize, approx: f64) -> Result<()> {
        self.not_a_key()?;
        match self.ctx.form {
            Form::Canonical => js_number(self.out, approx),
            Form::Plain => serde_json::to_writer(&mut *self.out, &v).map_err(ser::Error::custom)?,
        }
        Ok(())
    }

    fn float(self, v: f64) -> Result<()> {
        self.not_a_key()?;
        // As `serde_json::to_value` does: a non-finite float is null.
        if !v.is_finite() {
            self.out.extend_from_slice(b"null");
            return Ok(());
        }
        match self.ctx.form {
            Form::Canonical => js_number(self.out, v),
            Form::Plain => serde_json::to_writer(&mut *self.out, &v).map_err(ser::Error::custom)?,
        }
        Ok(())
    }

    fn raw(self, bytes: &[u8]) -> Result<()> {
        self.not_a_key()?;
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    /// `{"name":` before a variant's content; the caller closes it.
    fn open_variant(&mut self, name: &str) -> Result<()> {
        self.not_a_key()?;
        self.out.push(b'{');
        write_str(self.out, name)?;
        self.out.push(b':');
        Ok(())
    }

    fn fields(
        self,
        len: usize,
        template: Option<&'t Template>,
        omit: &'t [&'t str],
    ) -> Fields<'o, 't> {
        Fields {
            start: self.out.len(),
            out: self.out,
            ctx: self.ctx,
            template,
            omit,
            entries: Vec::with_capacity(len),
            pending_key: None,
            close_variant: false,
        }
    }
}

fn js_number(out: &mut Vec<u8>, f: f64) {
    out.extend_from_slice(format_js_number(f, &mut ryu_js::Buffer::new()).as_bytes());
}

fn write_str(out: &mut Vec<u8>, s: &str) -> Result<()> {
    serde_json::to_writer(out, s).map_err(ser::Error::custom)
}

/// One written entry: its key and its value, as ranges of the output.
struct Entry {
    key: (usize, usize),
    value: (usize, usize),
}

/// A struct's or map's entries, written in arrival order and sorted at the
/// end.
struct Fields<'o, 't> {
    out: &'o mut Vec<u8>,
    ctx: Ctx,
    start: usize,
    template: Option<&'t Template>,
    omit: &'t [&'t str],
    entries: Vec<Entry>,
    /// A map's key, written and waiting for its value.
    pending_key: Option<(usize, usize)>,
    /// A struct variant: `{"name":` is open before `start`.
    close_variant: bool,
}

impl Fields<'_, '_> {
    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<()> {
        if self.omit.contains(&key) {
            return Ok(());
        }
        let key_start = self.out.len();
        self.out.extend_from_slice(key.as_bytes());
        let value_start = self.out.len();
        value.serialize(Writer {
            out: &mut *self.out,
            ctx: self.ctx,
            top: Top::Nested,
        })?;
        // A scan, not a binary search: `==` compares lengths first and
        // so rarely reaches `memcmp`, which `cmp` calls on every probe.
        let default = self
            .template
            .and_then(|t| t.iter().find(|(k, _)| k == key).map(|(_, bytes)| bytes));
        if default.is_some_and(|d| d[..] == self.out[value_start..]) {
            self.out.truncate(key_start);
        } else {
            self.entries.push(Entry {
                key: (key_start, value_start),
                value: (value_start, self.out.len()),
            });
        }
        Ok(())
    }

    /// Rewrites the entries in key order as one JSON object.
    fn finish(self) -> Result<()> {
        let written = self.out.split_off(self.start);
        let key =
            |e: &Entry| std::str::from_utf8(&written[e.key.0 - self.start..e.key.1 - self.start]);
        let mut keyed = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            keyed.push((key(e).map_err(ser::Error::custom)?, e));
        }
        match self.ctx.form {
            Form::Canonical => keyed.sort_by(|a, b| js_key_order(a.0, b.0)),
            Form::Plain => keyed.sort_by(|a, b| a.0.cmp(b.0)),
        }
        self.out.push(b'{');
        for (i, (k, e)) in keyed.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_str(self.out, k)?;
            self.out.push(b':');
            self.out
                .extend_from_slice(&written[e.value.0 - self.start..e.value.1 - self.start]);
        }
        self.out.push(b'}');
        if self.close_variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

impl<'o, 't> ser::Serializer for Writer<'o, 't> {
    type Ok = ();
    type Error = WriteError;
    type SerializeSeq = Items<'o>;
    type SerializeTuple = Items<'o>;
    type SerializeTupleStruct = Items<'o>;
    type SerializeTupleVariant = Items<'o>;
    type SerializeMap = Fields<'o, 't>;
    type SerializeStruct = Struct<'o, 't>;
    type SerializeStructVariant = Fields<'o, 't>;

    fn serialize_bool(self, v: bool) -> Result<()> {
        self.raw(if v { b"true" } else { b"false" })
    }
    fn serialize_i8(self, v: i8) -> Result<()> {
        self.int(v, f64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<()> {
        self.int(v, f64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<()> {
        self.int(v, f64::from(v))
    }
    #[allow(clippy::cast_precision_loss)] // as JavaScript holds it
    fn serialize_i64(self, v: i64) -> Result<()> {
        self.int(v, v as f64)
    }
    fn serialize_u8(self, v: u8) -> Result<()> {
        self.int(v, f64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<()> {
        self.int(v, f64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<()> {
        self.int(v, f64::from(v))
    }
    #[allow(clippy::cast_precision_loss)] // as JavaScript holds it
    fn serialize_u64(self, v: u64) -> Result<()> {
        self.int(v, v as f64)
    }
    fn serialize_f32(self, v: f32) -> Result<()> {
        self.float(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<()> {
        self.float(v)
    }
    fn serialize_char(self, v: char) -> Result<()> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<()> {
        match self.top {
            Top::Key => {
                self.out.extend_from_slice(v.as_bytes());
                Ok(())
            }
            _ => write_str(self.out, v),
        }
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        use ser::SerializeSeq;
        let mut items = self.serialize_seq(Some(v.len()))?;
        for b in v {
            items.serialize_element(b)?;
        }
        items.end()
    }
    fn serialize_none(self) -> Result<()> {
        self.raw(b"null")
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<()> {
        self.raw(b"null")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<()> {
        self.raw(b"null")
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<()> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<()> {
        self.open_variant(variant)?;
        value.serialize(self.nested())?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Items<'o>> {
        self.not_a_key()?;
        self.out.push(b'[');
        Ok(Items {
            out: self.out,
            ctx: self.ctx,
            first: true,
            close_variant: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Items<'o>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Items<'o>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Items<'o>> {
        self.open_variant(variant)?;
        let mut items = self.serialize_seq(Some(len))?;
        items.close_variant = true;
        Ok(items)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Fields<'o, 't>> {
        self.not_a_key()?;
        Ok(self.fields(len.unwrap_or(0), None, &[]))
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Struct<'o, 't>> {
        self.not_a_key()?;
        match self.top {
            Top::Data { template } => Ok(Struct::Data {
                out: self.out,
                ctx: self.ctx,
                template,
                written: false,
            }),
            Top::Struct { template, omit } => Ok(Struct::Fields(self.fields(len, template, omit))),
            _ => {
                let template = (self.ctx.by_name)(name);
                Ok(Struct::Fields(self.fields(len, template, &[])))
            }
        }
    }
    fn serialize_struct_variant(
        mut self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Fields<'o, 't>> {
        self.open_variant(variant)?;
        let mut fields = self.fields(len, None, &[]);
        fields.close_variant = true;
        Ok(fields)
    }
}

/// An array's items, written in place.
struct Items<'o> {
    out: &'o mut Vec<u8>,
    ctx: Ctx,
    first: bool,
    close_variant: bool,
}

impl Items<'_> {
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        value.serialize(Writer {
            out: &mut *self.out,
            ctx: self.ctx,
            top: Top::Nested,
        })
    }

    fn close(self) -> Result<()> {
        self.out.push(b']');
        if self.close_variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

macro_rules! items {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Items<'_> {
            type Ok = ();
            type Error = WriteError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
                self.item(value)
            }
            fn end(self) -> Result<()> {
                self.close()
            }
        }
    )*};
}
items!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Fields<'_, '_> {
    type Ok = ();
    type Error = WriteError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        let start = self.out.len();
        key.serialize(Writer {
            out: &mut *self.out,
            ctx: self.ctx,
            top: Top::Key,
        })?;
        self.pending_key = Some((start, self.out.len()));
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let key = self
            .pending_key
            .take()
            .ok_or_else(|| WriteError("a map value without its key".into()))?;
        value.serialize(Writer {
            out: &mut *self.out,
            ctx: self.ctx,
            top: Top::Nested,
        })?;
        self.entries.push(Entry {
            key,
            value: (key.1, self.out.len()),
        });
        Ok(())
    }
    fn end(self) -> Result<()> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Fields<'_, '_> {
    type Ok = ();
    type Error = WriteError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.field(key, value)
    }
    fn end(self) -> Result<()> {
        self.finish()
    }
}

/// A struct: its fields, or for an adjacently tagged enum its `data`.
enum Struct<'o, 't> {
    Fields(Fields<'o, 't>),
    Data {
        out: &'o mut Vec<u8>,
        ctx: Ctx,
        template: Option<&'t Template>,
        written: bool,
    },
}

impl ser::SerializeStruct for Struct<'_, '_> {
    type Ok = ();
    type Error = WriteError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        match self {
            Struct::Fields(fields) => fields.field(key, value),
            Struct::Data {
                out,
                ctx,
                template,
                written,
            } => {
                if key != "data" {
                    return Ok(());
                }
                *written = true;
                value.serialize(Writer {
                    out,
                    ctx: *ctx,
                    top: Top::Struct {
                        template: *template,
                        omit: &[],
                    },
                })
            }
        }
    }
    fn end(self) -> Result<()> {
        match self {
            Struct::Fields(fields) => fields.finish(),
            Struct::Data { out, written, .. } => {
                if !written {
                    out.extend_from_slice(b"{}");
                }
                Ok(())
            }
        }
    }
}
