//! The SQL of a shape of filter, written once and then replayed: a
//! [`Translator`](crate::Translator) keeps, for each shape of filter it translates
//! (the filter without its values), the text the translation wrote with holes
//! where placeholder numbers go, and for each comparison what it reads of its
//! attribute and the form it took (a [`Recipe`]). Replaying it computes the
//! parameters from the new values and copies the text; writing it walks the schema
//! and makes hundreds of small appends.
//!
//! A template is recorded by writing the filter with marks in place of placeholder
//! numbers (`\0P3\0` for the fourth parameter bound); no SQL the translation writes
//! holds NUL (values are bound, and a template whose replay differs from the
//! translation written directly is not kept).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use scimkit::filter::{CompValue, CompareOp, Filter};
use scimkit::path::AttrPath;

use crate::text::SqlPiece;
use crate::translate::{Dialect, Recipe};

/// Set on a placeholder number written while recording: the rest is the order in
/// which it was bound.
pub(crate) const MARK: usize = 1 << (usize::BITS - 2);

/// Writes a recorded placeholder's mark: `\0P3\0`.
pub(crate) fn push_mark(out: &mut String, n: usize) {
    out.push('\0');
    out.push('P');
    (n & !MARK).push_to(out);
    out.push('\0');
}

/// A filter's SQL with holes for its placeholder numbers.
#[derive(Debug)]
pub(crate) struct Template {
    /// Each hole with the text before it, which ends with the placeholder's sign
    /// (`?` or `$`); the hole takes the number of the parameter bound `k`-th.
    holes: Box<[(Box<str>, usize)]>,
    /// The text after the last hole.
    tail: Box<str>,
    /// How long the text is without the numbers.
    len: usize,
    /// How many parameters the filter binds (before replaying, in order).
    pub(crate) params: usize,
    /// The text filled in with the numbers values get when no two of different
    /// comparisons are equal, and those numbers: replays whose values get the
    /// same numbers (all but those where values repeat) share it.
    usual: Option<(Arc<str>, Box<[u32]>)>,
}

impl Template {
    /// Reads recorded text; `None` unless its marks are exactly `params` parameters,
    /// each used.
    pub(crate) fn parse(recorded: &str, dialect: Dialect, params: usize) -> Option<Template> {
        let mut holes = Vec::new();
        let mut seen = vec![false; params];
        let mut parts = recorded.split('\0');
        let mut literal = parts.next()?.to_owned();
        let mut len = literal.len();
        while let Some(mark) = parts.next() {
            let k: usize = mark.strip_prefix('P')?.parse().ok()?;
            *seen.get_mut(k)? = true;
            literal.push(match dialect {
                Dialect::Sqlite => '?',
                Dialect::Postgres => '$',
            });
            len += 1;
            holes.push((literal.into_boxed_str(), k));
            literal = parts.next()?.to_owned();
            len += literal.len();
        }
        if seen.contains(&false) {
            return None;
        }
        Some(Template {
            holes: holes.into_boxed_slice(),
            tail: literal.into_boxed_str(),
            len,
            params,
            usual: None,
        })
    }

    /// The text, `placeholders.get(k)` filling the holes of parameter `k`.
    pub(crate) fn replay(&self, placeholders: &Numbers) -> Arc<str> {
        match &self.usual {
            Some((text, numbers)) if placeholders.are(numbers) => Arc::clone(text),
            _ => {
                let mut text = String::new();
                self.fill(&mut text, placeholders);
                text.into()
            }
        }
    }

    /// [`Template::replay`], hole by hole.
    fn fill(&self, out: &mut String, placeholders: &Numbers) {
        out.reserve(self.capacity());
        for (text, k) in self.holes.iter() {
            out.push_str(text);
            placeholders.get(*k).push_to(out);
        }
        out.push_str(&self.tail);
    }

    /// Keeps the text filled in with `placeholders` (the numbers distinct values
    /// get, see `Writer::distinct`), to share when they come again.
    pub(crate) fn settle(&mut self, placeholders: &Numbers) {
        let mut text = String::new();
        self.fill(&mut text, placeholders);
        self.usual = Some((text.into(), placeholders.to_vec().into_boxed_slice()));
    }

    /// Room for the text with its numbers (up to 999 parameters).
    pub(crate) fn capacity(&self) -> usize {
        self.len + 3 * self.holes.len()
    }

    /// How many bytes it keeps.
    fn size(&self) -> usize {
        let usual = self
            .usual
            .as_ref()
            .map_or(0, |(text, numbers)| text.len() + numbers.len() * 4);
        self.len + self.holes.len() * 24 + usual
    }
}

/// Placeholder numbers, on the stack up to [`Numbers::INLINE`] of them.
#[derive(Debug)]
pub(crate) struct Numbers {
    inline: [u32; Numbers::INLINE],
    len: usize,
    spill: Vec<u32>,
    /// Whether a number past `u32::MAX` was pushed (none is: databases take
    /// fewer parameters); such numbers are not kept.
    overflow: bool,
}

impl Numbers {
    const INLINE: usize = 64;

    pub(crate) fn new() -> Self {
        Numbers {
            inline: [0; Numbers::INLINE],
            len: 0,
            spill: Vec::new(),
            overflow: false,
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, n: usize) {
        let Ok(n) = u32::try_from(n) else {
            self.overflow = true;
            return;
        };
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = n,
            None => self.spill.push(n),
        }
        self.len += 1;
    }

    /// How many there are; `None` if one could not be kept.
    pub(crate) fn len(&self) -> Option<usize> {
        (!self.overflow).then_some(self.len)
    }

    /// Whether these are `numbers`, in order.
    #[inline]
    fn are(&self, numbers: &[u32]) -> bool {
        match self.inline.get(..self.len) {
            Some(inline) => inline == numbers,
            None => {
                numbers.len() == self.len
                    && numbers.get(..Numbers::INLINE) == Some(&self.inline[..])
                    && numbers.get(Numbers::INLINE..) == Some(&self.spill[..])
            }
        }
    }

    /// The numbers, in order.
    fn to_vec(&self) -> Vec<u32> {
        let inline = self.inline.get(..self.len).unwrap_or(&self.inline);
        inline.iter().chain(&self.spill).copied().collect()
    }

    /// The `k`-th number (0 past the end).
    #[inline]
    pub(crate) fn get(&self, k: usize) -> usize {
        let n = match self.inline.get(k) {
            Some(&n) => n,
            None => self
                .spill
                .get(k - Numbers::INLINE)
                .copied()
                .unwrap_or_default(),
        };
        n as usize
    }
}

/// What one comparison of a recorded filter wrote.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Nothing a filter can see (an undefined attribute): a constant.
    Never,
    /// A test on an attribute.
    Leaf(Recipe),
}

/// A recorded shape of filter.
#[derive(Debug)]
pub(crate) struct Shape {
    /// The filter recorded (its values are not used).
    pub(crate) filter: Filter,
    pub(crate) template: Template,
    /// Each comparison, in the order the filter lists them.
    pub(crate) leaves: Box<[Outcome]>,
    /// How many bytes the texts of its parameters took when recorded (room for
    /// them when replayed).
    pub(crate) texts: usize,
}

impl Shape {
    /// About how many bytes it keeps.
    fn size(&self) -> usize {
        self.template.size()
            + weight(&self.filter)
            + self.leaves.len() * (std::mem::size_of::<Outcome>() + 64)
    }

    /// Whether `other` is this shape recorded again with values that gave every
    /// comparison the same form.
    fn same_as(&self, other: &Shape) -> bool {
        same_shape(&self.filter, &other.filter)
            && self.leaves.len() == other.leaves.len()
            && self
                .leaves
                .iter()
                .zip(other.leaves.iter())
                .all(|(a, b)| match (a, b) {
                    (Outcome::Never, Outcome::Never) => true,
                    (Outcome::Leaf(a), Outcome::Leaf(b)) => a.shape() == b.shape(),
                    _ => false,
                })
    }
}

/// About how many bytes a filter takes.
fn weight(f: &Filter) -> usize {
    let node = std::mem::size_of::<Filter>();
    node + match f {
        Filter::And(parts) | Filter::Or(parts) => parts.iter().map(weight).sum(),
        Filter::Not(inner) => weight(inner),
        Filter::ValuePath(path, inner) => path.to_string().len() + weight(inner),
        Filter::Compare(path, _, value) => {
            path.to_string().len() + value.as_str().map_or(0, str::len) + 32
        }
        Filter::Present(path) => path.to_string().len() + 16,
    }
}

/// A translator's recorded shapes, by [`shape_hash`].
#[derive(Debug, Default)]
pub(crate) struct Shapes {
    map: HashMap<u64, Vec<Shape>, BuildHasherDefault<KeyHasher>>,
    count: usize,
    bytes: usize,
}

/// At most this many bytes of shapes are kept.
const MAX_BYTES: usize = 16 << 20;

/// At most this many shapes are kept under one hash: the same shape recorded with
/// values that gave it other forms, or shapes whose hashes collide. A client that
/// sends colliding shapes on purpose makes a look-up try this many at most.
const PER_HASH: usize = 4;

impl Shapes {
    /// The recorded shapes whose hash is `hash` (see [`shape_hash`]).
    pub(crate) fn candidates(&self, hash: u64) -> &[Shape] {
        self.map.get(&hash).map_or(&[], Vec::as_slice)
    }

    /// The recorded shape of `filter`, if any.
    #[cfg(test)]
    pub(crate) fn find(&self, hash: u64, filter: &Filter) -> Option<&Shape> {
        self.map
            .get(&hash)?
            .iter()
            .find(|s| same_shape(&s.filter, filter))
    }

    /// Keeps `shape`: after the oldest under its hash if there are [`PER_HASH`]
    /// already, after every other if there are `max` or they take too much room.
    /// Answers what it forgot, for the caller to drop once it has let go of its
    /// lock.
    pub(crate) fn insert(&mut self, hash: u64, shape: Shape, max: usize) -> Vec<Shape> {
        if self.candidates(hash).iter().any(|s| s.same_as(&shape)) {
            return vec![shape];
        }
        let size = shape.size();
        let mut forgotten = Vec::new();
        if self.count >= max || self.bytes + size > MAX_BYTES {
            forgotten.extend(self.map.drain().flat_map(|(_, shapes)| shapes));
            self.count = 0;
            self.bytes = 0;
        }
        let same_hash = self.map.entry(hash).or_default();
        if same_hash.len() >= PER_HASH {
            let oldest = same_hash.remove(0);
            self.count = self.count.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(oldest.size());
            forgotten.push(oldest);
        }
        same_hash.push(shape);
        self.count += 1;
        self.bytes += size;
        forgotten
    }
}

/// Whether `f` holds a value filter (`emails[type eq "work"]`), which a shape does
/// not replay.
pub(crate) fn has_value_path(f: &Filter) -> bool {
    match f {
        Filter::And(parts) | Filter::Or(parts) => parts.iter().any(has_value_path),
        Filter::Not(inner) => has_value_path(inner),
        Filter::ValuePath(..) => true,
        Filter::Compare(..) | Filter::Present(_) => false,
    }
}

/// Walks `recorded` and `filter` together, calling `visit` on each comparison of
/// `filter` (`pr` or a test) in the order the translation writes them, as long as
/// the two have the same shape ([`same_shape`]) up to it; answers whether they have
/// it and `visit` never answered `false`.
pub(crate) fn each_leaf_pair<'f>(
    recorded: &Filter,
    filter: &'f Filter,
    visit: &mut impl FnMut(&'f Filter) -> bool,
) -> bool {
    if let Some(whole) = leaf_pair(recorded, filter, visit) {
        return whole;
    }
    match (recorded, filter) {
        (Filter::And(x), Filter::And(y)) | (Filter::Or(x), Filter::Or(y)) => {
            x.len() == y.len()
                && x.iter().zip(y).all(|(a, b)| match leaf_pair(a, b, visit) {
                    Some(whole) => whole,
                    None => each_leaf_pair(a, b, visit),
                })
        }
        (Filter::Not(x), Filter::Not(y)) => each_leaf_pair(x, y, visit),
        _ => false,
    }
}

/// [`each_leaf_pair`] of two comparisons; `None` when `filter` is not one.
#[inline]
fn leaf_pair<'f>(
    recorded: &Filter,
    filter: &'f Filter,
    visit: &mut impl FnMut(&'f Filter) -> bool,
) -> Option<bool> {
    Some(match (recorded, filter) {
        (Filter::Compare(p, o, v), Filter::Compare(q, r, w)) => {
            o == r && value_class(v) == value_class(w) && p == q && visit(filter)
        }
        (Filter::Present(p), Filter::Present(q)) => p == q && visit(filter),
        (_, Filter::Compare(..) | Filter::Present(_)) => false,
        _ => return None,
    })
}

/// What of a value can change the text of its comparison (besides failing to
/// read as the attribute's type, which a replay notices).
#[inline]
fn value_class(v: &CompValue) -> u64 {
    match v {
        CompValue::Null => 0,
        CompValue::Bool(b) => 1 + u64::from(*b),
        CompValue::Number(_) => 3,
        CompValue::String(s) if s.is_empty() => 4,
        CompValue::String(_) => 5,
    }
}

/// A path's text as one word, for hashing: its length and its bytes, those
/// past the sixteenth mixed in a word at a time (paths with the same text and
/// other parts, which only [`AttrPath::new`] makes, are told apart when
/// compared).
#[inline(always)]
fn path_word(p: &AttrPath) -> u64 {
    let b = p.as_str().as_bytes();
    let n = b.len();
    let word = |at: usize| {
        b.get(at..at.saturating_add(8))
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_le_bytes)
    };
    if n < 8 {
        let mut w = [0; 8];
        for (to, &c) in w.iter_mut().zip(b) {
            *to = c;
        }
        return u64::from_le_bytes(w) ^ (n as u64) << 59;
    }
    // The first and last eight bytes (overlapping when shorter than 16), and
    // whole words between.
    let mut acc = word(0) ^ (n as u64) << 59;
    let mut at = 8;
    while at + 8 < n {
        acc = (acc.rotate_left(23) ^ word(at)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        at += 8;
    }
    acc.rotate_left(29) ^ word(n - 8)
}

/// A small number for each operator.
#[inline]
pub(crate) fn op_code(op: CompareOp) -> u32 {
    match op {
        CompareOp::Eq => 1,
        CompareOp::Ne => 2,
        CompareOp::Co => 3,
        CompareOp::Sw => 4,
        CompareOp::Ew => 5,
        CompareOp::Gt => 6,
        CompareOp::Ge => 7,
        CompareOp::Lt => 8,
        CompareOp::Le => 9,
        _ => 15,
    }
}

/// Hashes a comparison (`pr` or a test); `false` for anything else.
#[inline(always)]
fn hash_leaf(h: &mut KeyHasher, f: &Filter) -> bool {
    match f {
        Filter::Compare(path, op, value) => {
            h.write_u64(4 << 32 | value_class(value) << 8 | u64::from(op_code(*op)));
            h.write_u64(path_word(path));
            true
        }
        Filter::Present(path) => {
            h.write_u64(5 << 32);
            h.write_u64(path_word(path));
            true
        }
        _ => false,
    }
}

fn hash_filter(h: &mut KeyHasher, f: &Filter) {
    if hash_leaf(h, f) {
        return;
    }
    match f {
        Filter::And(parts) | Filter::Or(parts) => {
            h.write_u64(if matches!(f, Filter::And(_)) { 1 } else { 2 } << 32 | parts.len() as u64);
            for p in parts {
                if !hash_leaf(h, p) {
                    hash_filter(h, p);
                }
            }
        }
        Filter::Not(inner) => {
            h.write_u64(3 << 32);
            hash_filter(h, inner);
        }
        Filter::ValuePath(path, inner) => {
            h.write_u64(6 << 32);
            h.write_u64(path_word(path));
            hash_filter(h, inner);
        }
        Filter::Compare(..) | Filter::Present(_) => {}
    }
}

/// A hash of the shape of `f`: what [`same_shape`] compares.
pub(crate) fn shape_hash(f: &Filter) -> u64 {
    let mut h = KeyHasher::default();
    hash_filter(&mut h, f);
    h.finish()
}

/// Whether `a` and `b` are one filter but for their values (paths spelled alike).
pub(crate) fn same_shape(a: &Filter, b: &Filter) -> bool {
    match (a, b) {
        (Filter::And(x), Filter::And(y)) | (Filter::Or(x), Filter::Or(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_shape(a, b))
        }
        (Filter::Not(x), Filter::Not(y)) => same_shape(x, y),
        (Filter::Compare(p, o, v), Filter::Compare(q, r, w)) => {
            o == r && value_class(v) == value_class(w) && p == q
        }
        (Filter::Present(p), Filter::Present(q)) => p == q,
        (Filter::ValuePath(p, x), Filter::ValuePath(q, y)) => p == q && same_shape(x, y),
        _ => false,
    }
}

/// A hasher for shapes: a multiply-rotate mix of words, eight bytes at a time
/// (what it hashes is compared in full before it is used).
#[derive(Debug, Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut w = [0; 8];
            w.copy_from_slice(word);
            self.write_u64(u64::from_le_bytes(w));
        }
        let rest = words.remainder();
        let mut w = [0; 8];
        if let Some(to) = w.get_mut(..rest.len()) {
            to.copy_from_slice(rest);
        }
        self.write_u64(u64::from_le_bytes(w) ^ (rest.len() as u64) << 59);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_become_holes_and_are_filled() {
        let mut recorded = String::from("(j1.x = ");
        push_mark(&mut recorded, MARK | 1);
        recorded.push_str("::text OR ");
        push_mark(&mut recorded, MARK);
        recorded.push(')');
        let numbers = |list: &[usize]| {
            let mut n = Numbers::new();
            list.iter().for_each(|&k| n.push(k));
            n
        };
        let t = Template::parse(&recorded, Dialect::Postgres, 2).unwrap();
        assert_eq!(&*t.replay(&numbers(&[7, 12])), "(j1.x = $12::text OR $7)");
        let mut t = Template::parse(&recorded, Dialect::Sqlite, 2).unwrap();
        let out = t.replay(&numbers(&[1, 2]));
        // The text kept for the recorded numbers, shared; other numbers fill it in.
        t.settle(&numbers(&[1, 2]));
        let usual = t.replay(&numbers(&[1, 2]));
        assert_eq!(usual, out);
        assert!(Arc::ptr_eq(&usual, &t.replay(&numbers(&[1, 2]))));
        assert_eq!(&*t.replay(&numbers(&[1, 1])), "(j1.x = ?1::text OR ?1)");
        // Past the numbers kept on the stack.
        let many = numbers(&(1..=100).collect::<Vec<_>>());
        let read = (
            many.len().unwrap_or_default(),
            many.get(0),
            many.get(63),
            many.get(64),
            many.get(99),
        );
        assert_eq!(read, (100, 1, 64, 65, 100));
        assert_eq!(many.get(100), 0);
        let listed: Vec<u32> = (1..=100).collect();
        assert!(many.are(&listed) && many.to_vec() == listed);
        assert!(!many.are(&listed[..99]) && !many.are(&[&listed[..99], &[7]].concat()));
        assert!(!many.are(&[&[7], &listed[1..]].concat()));
        assert_eq!(&*out, "(j1.x = ?2::text OR ?1)");
        // A count that does not match what was recorded is refused.
        assert!(Template::parse(&recorded, Dialect::Sqlite, 3).is_none());
        assert!(Template::parse("a\0P0", Dialect::Sqlite, 1).is_none());
        assert!(Template::parse("a\0Q0\0", Dialect::Sqlite, 0).is_none());
    }

    #[test]
    fn shapes_ignore_values_but_not_what_changes_the_text() {
        let f = |s: &str| s.parse::<Filter>().unwrap();
        let same = [
            (
                r#"userName eq "a" and active eq true"#,
                r#"userName eq "b" and active eq true"#,
            ),
            (r#"title sw "x""#, r#"title sw "yz""#),
            (r#"not (x.y gt 1)"#, r#"not (x.y gt 2.5)"#),
        ];
        for (a, b) in same {
            assert!(same_shape(&f(a), &f(b)), "{a} / {b}");
            assert_eq!(shape_hash(&f(a)), shape_hash(&f(b)), "{a} / {b}");
        }
        let different = [
            (r#"userName eq "a""#, r#"USERNAME eq "a""#),
            (r#"userName eq "a""#, r#"userName ne "a""#),
            (r#"active eq true"#, r#"active eq false"#),
            (r#"title sw "x""#, r#"title sw """#),
            (r#"a eq 1 and b eq 1"#, r#"a eq 1 or b eq 1"#),
            (r#"a eq 1 and b eq 1"#, r#"a eq 1 and b eq 1 and c eq 1"#),
            (r#"name.givenName pr"#, r#"name pr"#),
        ];
        for (a, b) in different {
            assert!(!same_shape(&f(a), &f(b)), "{a} / {b}");
        }
        // Shapes identity providers send side by side hash apart.
        for (a, b) in [
            (r#"name.givenName eq "a""#, r#"name.familyName eq "a""#),
            (r#"emails.value eq "a""#, r#"emails.type eq "a""#),
            (r#"meta.created gt "a""#, r#"meta.lastModified gt "a""#),
            (r#"userName eq "a""#, r#"externalId eq "a""#),
        ] {
            assert_ne!(shape_hash(&f(a)), shape_hash(&f(b)), "{a} / {b}");
        }
    }
}
