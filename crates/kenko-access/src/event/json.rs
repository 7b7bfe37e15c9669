//! Untyped leaves: any JSON value read with strings borrowed where possible and containers
//! skipped, so every field is checked by kenko's own code and an error never quotes a value.

use super::*;

/// Any JSON value, with strings borrowed where possible and containers skipped.
#[derive(Debug)]
pub(super) enum Scalar<'a> {
    Str(Cow<'a, str>),
    U64(u64),
    I64,
    F64,
    Bool,
    Null,
    Complex,
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor(PhantomData))
    }
}

pub(super) struct ScalarVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ScalarVisitor<'a> {
    type Value = Scalar<'a>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::U64(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(if v >= 0 {
            Scalar::U64(v as u64)
        } else {
            Scalar::I64
        })
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Scalar::F64)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Bool)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Complex)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Complex)
    }
}

/// An object of known shape, or anything else (reported by the caller, without the value).
pub(super) enum Obj<T> {
    Is(T),
    Not,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Obj::Is)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Obj::Not)
            }
            fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Self::Value, E> {
                Ok(Obj::Not)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Obj::Not)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Obj::Not)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Obj::Not)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Obj::Not)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Obj::Not)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Obj::Not)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Obj::Not)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// An array of known elements, or anything else.
pub(super) enum Arr<T> {
    Is(Vec<T>),
    Not,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Arr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Arr<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(Arr::Is(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Arr::Not)
            }
            fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Self::Value, E> {
                Ok(Arr::Not)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Arr::Not)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Arr::Not)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Arr::Not)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Arr::Not)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Arr::Not)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Arr::Not)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Arr::Not)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// Field-level reading with errors that name the field.
pub(super) struct Ctx {
    pub(super) source: Source,
    pub(super) line: u64,
    pub(super) record: Option<u64>,
}

impl Ctx {
    pub(super) fn err(&self, field: &'static str, problem: Problem) -> ParseError {
        ParseError {
            source: self.source,
            line: self.line,
            record: self.record,
            field: Some(field),
            problem,
        }
    }

    /// An optional string (null and absent are None; an empty string is None too).
    pub(super) fn opt_str<'a>(
        &self,
        v: Option<Scalar<'a>>,
        field: &'static str,
    ) -> Result<Option<Cow<'a, str>>, ParseError> {
        match v {
            None | Some(Scalar::Null) => Ok(None),
            Some(Scalar::Str(s)) if s.is_empty() => Ok(None),
            Some(Scalar::Str(s)) => Ok(Some(s)),
            Some(_) => Err(self.err(field, Problem::Expected("a string"))),
        }
    }

    pub(super) fn req_str<'a>(
        &self,
        v: Option<Scalar<'a>>,
        field: &'static str,
    ) -> Result<Cow<'a, str>, ParseError> {
        self.opt_str(v, field)?
            .ok_or_else(|| self.err(field, Problem::Missing))
    }

    pub(super) fn time(
        &self,
        v: Option<Scalar<'_>>,
        field: &'static str,
    ) -> Result<i64, ParseError> {
        let s = self.req_str(v, field)?;
        parse_rfc3339(&s).ok_or_else(|| {
            self.err(
                field,
                Problem::Expected("an RFC 3339 time with an offset (2026-11-02T09:12:33+09:00)"),
            )
        })
    }
}

pub(super) fn json_error(
    source: Source,
    line: u64,
    record: Option<u64>,
    e: &serde_json::Error,
) -> ParseError {
    let field = if e.classify() == serde_json::error::Category::Data {
        // Only "duplicate field `x`" can reach here: every leaf accepts any value.
        let msg = e.to_string();
        let name = msg
            .strip_prefix("duplicate field `")
            .and_then(|m| m.split('`').next());
        name.and_then(|n| ALL_FIELDS.iter().copied().find(|f| *f == n))
    } else {
        None
    };
    ParseError {
        source,
        line,
        record,
        field,
        problem: match field {
            Some(_) => Problem::Duplicate,
            None => Problem::NotJson { column: e.column() },
        },
    }
}

pub(super) const ALL_FIELDS: &[&str] = &[
    "time",
    "staff_id",
    "role",
    "terminal",
    "action",
    "subject",
    "district",
    "records",
    "case_ref",
    "outcome",
    "user",
    "username",
    "verb",
    "stage",
    "objectRef",
    "resource",
    "namespace",
    "name",
    "subresource",
    "apiGroup",
    "responseStatus",
    "code",
    "requestReceivedTimestamp",
    "stageTimestamp",
    "eventTime",
    "eventSource",
    "eventName",
    "errorCode",
    "userIdentity",
    "type",
    "arn",
    "accountId",
    "userName",
    "invokedBy",
    "principalId",
    "requestParameters",
    "bucketName",
    "keyId",
    "resources",
    "ARN",
    "responseElements",
    "ConsoleLogin",
    "Records",
];

pub(super) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace())
}

/// One line that must hold one JSON object: the object, and the context its fields' errors
/// are reported in.
pub(super) fn object_line<'a, T: Deserialize<'a>>(
    line: &'a [u8],
    source: Source,
    line_no: u64,
) -> Result<(T, Ctx), ParseError> {
    let raw: Obj<T> =
        serde_json::from_slice(line).map_err(|e| json_error(source, line_no, None, &e))?;
    let Obj::Is(raw) = raw else {
        return Err(ParseError {
            source,
            line: line_no,
            record: None,
            field: None,
            problem: Problem::NotAnObject,
        });
    };
    Ok((
        raw,
        Ctx {
            source,
            line: line_no,
            record: None,
        },
    ))
}
