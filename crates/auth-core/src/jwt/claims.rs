//! The registered claims (RFC 7519 §4.1) a [`JwtValidator`](super::JwtValidator)
//! checks, read in one pass over the verified payload without building the
//! other members.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// One registered claim as the checks see it. Any JSON is accepted here; a
/// check that finds a shape it cannot use (`"exp": "soon"`, `"iss": 5`,
/// `"nbf": null`, `"aud": ["api", 1]`) fails with its own reason.
#[derive(Debug, PartialEq)]
pub(super) enum Claim<'a> {
    Str(Cow<'a, str>),
    /// A whole, non-negative number of seconds.
    Seconds(u64),
    /// A non-negative number of seconds with a fraction (RFC 7519 §2
    /// allows one): the whole seconds here.
    Fractional(u64),
    /// An array of strings (as `aud` may be).
    Strs(Vec<Cow<'a, str>>),
    Other,
}

impl Claim<'_> {
    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Claim::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The date, a fraction rounded down (for `exp`: the earlier end).
    pub(super) fn seconds(&self) -> Option<u64> {
        match self {
            Claim::Seconds(s) | Claim::Fractional(s) => Some(*s),
            _ => None,
        }
    }

    /// The date, a fraction rounded up (for `nbf`: the later start).
    pub(super) fn seconds_up(&self) -> Option<u64> {
        match self {
            Claim::Seconds(s) => Some(*s),
            Claim::Fractional(s) => Some(s.saturating_add(1)),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Claim<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Claim<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Claim<'de>, E> {
                Ok(Claim::Other)
            }
            fn visit_u64<E>(self, v: u64) -> Result<Claim<'de>, E> {
                Ok(Claim::Seconds(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Claim<'de>, E> {
                Ok(u64::try_from(v).map_or(Claim::Other, Claim::Seconds))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Claim<'de>, E> {
                Ok(match super::float_seconds(v) {
                    Some(s) if v.fract() == 0.0 => Claim::Seconds(s),
                    Some(s) => Claim::Fractional(s),
                    None => Claim::Other,
                })
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Claim<'de>, E> {
                Ok(Claim::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Claim<'de>, E> {
                Ok(Claim::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Claim<'de>, E> {
                Ok(Claim::Str(Cow::Owned(v)))
            }
            fn visit_unit<E>(self) -> Result<Claim<'de>, E> {
                Ok(Claim::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Claim<'de>, A::Error> {
                let mut strs = Some(Vec::new());
                while let Some(item) = seq.next_element::<Claim<'de>>()? {
                    // A member that is not a string makes the array
                    // unusable (read to its end all the same).
                    match (&mut strs, item) {
                        (Some(strs), Claim::Str(s)) => strs.push(s),
                        _ => strs = None,
                    }
                }
                Ok(strs.map_or(Claim::Other, Claim::Strs))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Claim<'de>, A::Error> {
                while map.next_entry::<Checked, Checked>()?.is_some() {}
                Ok(Claim::Other)
            }
        }
        deserializer.deserialize_any(Any)
    }
}

/// Any JSON value, read to the end and checked (strings must be valid
/// UTF-8 with valid escapes, as they will be when the attributes are read),
/// but not built. serde's `IgnoredAny` skips strings unchecked: a token whose
/// other claims held a lone surrogate would pass here and lose its
/// attributes when they are read.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> Visitor<'de> for Any {
            type Value = Checked;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_unit<E>(self) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
                while seq.next_element::<Checked>()?.is_some() {}
                Ok(Checked)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
                while map.next_entry::<Checked, Checked>()?.is_some() {}
                Ok(Checked)
            }
        }
        deserializer.deserialize_any(Any)
    }
}

/// The registered claims the checks read; other members are checked
/// (see [`Checked`]) without being built. Only a JSON object is accepted (a derived struct
/// would also take an array, by position), and a registered claim given
/// twice is refused (RFC 7519 §4 allows refusing or taking the last;
/// refusing leaves no ambiguity). A registered claim given as `null` is
/// there with an unusable value (`Claim::Other`): `"nbf": null` is refused,
/// not read as no `nbf`.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Registered<'a> {
    pub(super) sub: Option<Claim<'a>>,
    pub(super) exp: Option<Claim<'a>>,
    pub(super) nbf: Option<Claim<'a>>,
    pub(super) iss: Option<Claim<'a>>,
    pub(super) aud: Option<Claim<'a>>,
}

impl<'de> Deserialize<'de> for Registered<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "lowercase")]
        enum Field {
            Sub,
            Exp,
            Nbf,
            Iss,
            Aud,
            #[serde(other)]
            Other,
        }

        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = Registered<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of claims")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Registered<'de>, A::Error> {
                let mut claims = Registered::default();
                // Which registered names were present, `null` included.
                let mut seen = 0u8;
                while let Some(field) = map.next_key::<Field>()? {
                    let (slot, name, bit) = match field {
                        Field::Sub => (&mut claims.sub, "sub", 1),
                        Field::Exp => (&mut claims.exp, "exp", 2),
                        Field::Nbf => (&mut claims.nbf, "nbf", 4),
                        Field::Iss => (&mut claims.iss, "iss", 8),
                        Field::Aud => (&mut claims.aud, "aud", 16),
                        Field::Other => {
                            map.next_value::<Checked>()?;
                            continue;
                        }
                    };
                    if seen & bit != 0 {
                        return Err(de::Error::duplicate_field(name));
                    }
                    seen |= bit;
                    *slot = Some(map.next_value::<Claim<'de>>()?);
                }
                Ok(claims)
            }
        }

        deserializer.deserialize_map(Members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Registered<'_>, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn reads_registered_claims_and_skips_the_rest() {
        let claims = parse(
            r#"{"sub":"alice","exp":1700000000,"nbf":1.5e9,"iss":"https://id","aud":["a",1,"b"],
                "scope":"read","nested":{"exp":1}}"#,
        )
        .unwrap();
        assert_eq!(claims.sub.unwrap().as_str(), Some("alice"));
        assert_eq!(claims.exp.unwrap().seconds(), Some(1_700_000_000));
        assert_eq!(claims.nbf.unwrap().seconds(), Some(1_500_000_000));
        assert_eq!(claims.iss.unwrap().as_str(), Some("https://id"));
        assert_eq!(
            claims.aud,
            Some(Claim::Other),
            "a number among the audiences"
        );
        let claims = parse(r#"{"aud":["a","b"],"nbf":1.5,"exp":2.0}"#).unwrap();
        assert_eq!(claims.aud, Some(Claim::Strs(vec!["a".into(), "b".into()])));
        let nbf = claims.nbf.unwrap();
        assert_eq!((nbf.seconds(), nbf.seconds_up()), (Some(1), Some(2)));
        let exp = claims.exp.unwrap();
        assert_eq!((exp.seconds(), exp.seconds_up()), (Some(2), Some(2)));
    }

    #[test]
    fn unusable_shapes_are_other_not_errors() {
        let claims =
            parse(r#"{"sub":5,"exp":"soon","nbf":-1,"iss":{"a":[1]},"aud":true}"#).unwrap();
        assert_eq!(claims.sub.unwrap().as_str(), None);
        assert_eq!(claims.exp.unwrap().seconds(), None);
        assert_eq!(claims.nbf, Some(Claim::Other));
        assert_eq!(claims.iss, Some(Claim::Other));
        assert_eq!(claims.aud, Some(Claim::Other));
        let claims = parse(r#"{"exp":-0.5,"nbf":1e400}"#);
        // 1e400 is out of f64's range: serde_json refuses it.
        assert!(claims.is_err());
        assert_eq!(parse(r#"{"exp":-0.5}"#).unwrap().exp, Some(Claim::Other));
        assert_eq!(
            parse(r#"{"exp":1.8446744073709552e19}"#).unwrap().exp,
            Some(Claim::Other)
        );
        assert_eq!(parse(r#"{"exp":1e300}"#).unwrap().exp, Some(Claim::Other));
        let fraction = parse(r#"{"exp":4102444800.75}"#).unwrap();
        assert_eq!(fraction.exp.unwrap().seconds(), Some(4_102_444_800));
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let claims = parse(r#"{"sub":"al\u0069ce","iss":"a\/b"}"#).unwrap();
        assert_eq!(claims.sub.unwrap().as_str(), Some("alice"));
        assert_eq!(claims.iss.unwrap().as_str(), Some("a/b"));
    }

    #[test]
    fn null_is_an_unusable_value_not_an_absence() {
        assert_eq!(parse(r#"{"exp":null}"#).unwrap().exp, Some(Claim::Other));
        assert_eq!(parse(r#"{"nbf":null}"#).unwrap().nbf, Some(Claim::Other));
        assert_eq!(parse(r#"{}"#).unwrap().nbf, None);
        let err = parse(r#"{"exp":null,"exp":5}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate field `exp`"), "{err}");
    }

    #[test]
    fn skipped_claims_are_checked_not_ignored() {
        // A lone surrogate, in a claim the checks do not read, in a nested
        // object, in an array, in a key: refused, as reading the attributes
        // later would refuse it.
        for json in [
            r#"{"sub":"a","scope":"\ud800"}"#,
            r#"{"sub":"a","x":{"y":"\udfff"}}"#,
            r#"{"sub":"a","x":["ok","\ud800"]}"#,
            r#"{"sub":"a","\ud800":1}"#,
            r#"{"sub":"a","x":"\q"}"#,
        ] {
            assert!(parse(json).is_err(), "{json}");
            assert!(
                serde_json::from_str::<serde_json::Value>(json).is_err(),
                "{json}"
            );
        }
        assert!(parse(r#"{"sub":"a","x":{"y":["\u00e9",1.5,null,true]}}"#).is_ok());
    }

    #[test]
    fn refuses_duplicates_and_non_objects() {
        assert!(parse(r#"{"sub":"a","sub":"b"}"#).is_err());
        assert!(parse(r#"["alice",1700000000]"#).is_err());
        assert!(parse(r#""alice""#).is_err());
        // Unregistered duplicates are not ours to judge.
        assert!(parse(r#"{"x":1,"x":2}"#).is_ok());
    }
}
