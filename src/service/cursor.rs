//! Cursors for cursor pagination (RFC 9865): opaque, URL-safe strings that carry
//! where the next page starts (the last `id` of a page in the default order, or an
//! offset under a `sortBy`), the count, the listing's `totalResults` as it began,
//! and a fingerprint of the query they belong to. They hold no server state, so they do not expire and any instance of a
//! service can continue a listing another began; a checksum catches a cursor that
//! was mangled or made up (RFC 9865 §5.2: answered with `invalidCursor`), and what
//! a cursor can reach is still scoped by the request's own context.

use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::store::Sort;

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Position {
    /// After this id, in the default (id) order: a keyset position.
    After(String),
    /// At this 0-based offset of a sorted result.
    Offset(usize),
}

/// A decoded cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The query it belongs to ([`fingerprint`]).
    pub(crate) fingerprint: u64,
    /// The page size of the first page (RFC 9865 §2.1: later pages keep it).
    pub(crate) count: usize,
    /// `totalResults` as the listing began: later pages report it rather than
    /// count again (a count over a million rows costs more than the page).
    pub(crate) total: u64,
    /// Where the next page starts.
    pub(crate) position: Position,
}

/// 64-bit FNV-1a: stable across processes and releases, unlike std's hashers.
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in *part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// What identifies a listing across its pages: the resource type, the filter and
/// the sort (in canonical form, so spelling differences do not matter).
pub(crate) fn fingerprint(
    resource_type: &str,
    filter: Option<&Filter>,
    sort: Option<&Sort>,
) -> u64 {
    let filter = filter.map(ToString::to_string).unwrap_or_default();
    let sort = sort
        .map(|s| format!("{} {}", s.by, s.order))
        .unwrap_or_default();
    fnv(&[
        resource_type.to_ascii_lowercase().as_bytes(),
        filter.as_bytes(),
        sort.to_ascii_lowercase().as_bytes(),
    ])
}

const SALT: &[u8] = b"scimkit cursor v1";
const HEX: &[u8; 16] = b"0123456789abcdef";

impl Cursor {
    /// The cursor as a client sees it: hex digits only (RFC 3986 unreserved).
    pub(crate) fn encode(&self) -> String {
        let (kind, value) = match &self.position {
            Position::After(id) => ("a", id.clone()),
            Position::Offset(n) => ("o", n.to_string()),
        };
        let body = format!(
            "{:016x}\n{}\n{}\n{kind}\n{value}",
            self.fingerprint, self.count, self.total
        );
        let check = fnv(&[SALT, body.as_bytes()]);
        let text = format!("{check:016x}\n{body}");
        let mut out = String::with_capacity(text.len() * 2);
        for b in text.bytes() {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }

    /// Reads a cursor this module wrote.
    ///
    /// # Errors
    /// 400 `invalidCursor` for anything else.
    pub(crate) fn decode(text: &str) -> Result<Cursor> {
        let invalid = || {
            Error::invalid_cursor(
                "the cursor is not one this service returned; start again with an empty \
                 cursor and follow each page's nextCursor",
            )
        };
        if text.len() % 2 != 0 || text.len() > 4096 {
            return Err(invalid());
        }
        let digit = |c: u8| (c as char).to_digit(16);
        let bytes: Vec<u8> = text
            .as_bytes()
            .chunks(2)
            .map(|pair| Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8))
            .collect::<Option<_>>()
            .ok_or_else(invalid)?;
        let text = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (check, body) = text.split_once('\n').ok_or_else(invalid)?;
        if u64::from_str_radix(check, 16).ok() != Some(fnv(&[SALT, body.as_bytes()])) {
            return Err(invalid());
        }
        let mut parts = body.splitn(5, '\n');
        let mut next = || parts.next().ok_or_else(invalid);
        let fingerprint = u64::from_str_radix(next()?, 16).map_err(|_| invalid())?;
        let count = next()?.parse().map_err(|_| invalid())?;
        let total = next()?.parse().map_err(|_| invalid())?;
        let position = match (next()?, next()?) {
            ("a", id) => Position::After(id.to_owned()),
            // An offset the database could not take is no cursor of ours.
            ("o", n) => match n.parse::<usize>() {
                Ok(n) if i64::try_from(n).is_ok_and(|n| n < i64::MAX / 2) => Position::Offset(n),
                _ => return Err(invalid()),
            },
            _ => return Err(invalid()),
        };
        Ok(Cursor {
            fingerprint,
            count,
            total,
            position,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_tampering() {
        for position in [
            Position::After("2819c223-7f76-453a-919d-413861904646".to_owned()),
            Position::After("with\nnewline".to_owned()),
            Position::Offset(1234),
        ] {
            let c = Cursor {
                fingerprint: 42,
                count: 10,
                total: 1_000_000,
                position,
            };
            let text = c.encode();
            assert!(text.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(Cursor::decode(&text).unwrap(), c);
            // Flip one digit anywhere: refused.
            for i in [0, text.len() / 2, text.len() - 1] {
                let mut t = text.clone().into_bytes();
                t[i] = if t[i] == b'0' { b'1' } else { b'0' };
                let t = String::from_utf8(t).unwrap();
                let e = Cursor::decode(&t).unwrap_err();
                assert_eq!(e.scim_type().map(|s| s.as_str()), Some("invalidCursor"));
            }
        }
        // A well-formed cursor with an offset no database takes is refused too.
        let huge = Cursor {
            fingerprint: 1,
            count: 10,
            total: 0,
            position: Position::Offset(usize::MAX - 1),
        };
        assert!(Cursor::decode(&huge.encode()).is_err());
        for junk in ["", "zz", "abc", "00", &"ab".repeat(3000)] {
            assert!(Cursor::decode(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn fingerprints_follow_the_canonical_query() {
        let f1: Filter = "userName eq \"a\"".parse().unwrap();
        let f2: Filter = "userName  EQ \"a\"".parse().unwrap();
        let f3: Filter = "userName eq \"b\"".parse().unwrap();
        assert_eq!(
            fingerprint("User", Some(&f1), None),
            fingerprint("user", Some(&f2), None)
        );
        assert_ne!(
            fingerprint("User", Some(&f1), None),
            fingerprint("User", Some(&f3), None)
        );
        assert_ne!(
            fingerprint("User", None, None),
            fingerprint("Group", None, None)
        );
    }
}
