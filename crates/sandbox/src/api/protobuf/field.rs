//! What the generated field tables are made of.

/// A field's type: a scalar, or a message by its full proto name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Str,
    Bytes,
    I32,
    I64,
    Bool,
    Msg(&'static str),
}

/// One field of a message. Maps are string-keyed; `ty` is the value's type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub tag: u32,
    pub name: &'static str,
    pub ty: Ty,
    pub map: bool,
    pub repeated: bool,
}
