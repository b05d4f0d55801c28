//! The values a translation binds to its placeholders.

use std::fmt;
use std::ops::Range;

/// A value bound to a placeholder of the translated SQL, as [`Params`] hands it
/// out.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Param<'a> {
    /// Text: a literal, or a document for PostgreSQL's containment (`@>`).
    Text(&'a str),
    /// A number, compared as the evaluator compares numbers (`f64`).
    Real(f64),
    /// A boolean, for a boolean column of a [`Mapping`](crate::Mapping) (SQLite
    /// stores it as the integer 1 or 0).
    Bool(bool),
}

/// The values of a translation's placeholders, in order: the `i`-th is placeholder
/// `i + 1` (`?1`, `$1`, …). Their texts share one buffer, so that binding a value
/// allocates nothing of its own.
///
/// ```
/// use scimkit_sql::{Param, Params};
///
/// let mut params = Params::new();
/// params.push(Param::Text("bjensen"));
/// params.push(Param::Bool(true));
/// assert_eq!(params.len(), 2);
/// assert_eq!(params.get(0), Some(Param::Text("bjensen")));
/// assert_eq!(params, [Param::Text("bjensen"), Param::Bool(true)]);
/// let texts: Vec<&str> = params
///     .iter()
///     .filter_map(|p| match p {
///         Param::Text(s) => Some(s),
///         _ => None,
///     })
///     .collect();
/// assert_eq!(texts, ["bjensen"]);
/// ```
#[derive(Clone, Default)]
pub struct Params {
    texts: String,
    items: Vec<Item>,
}

/// One value: a text as its bytes in the buffer.
#[derive(Debug, Clone, Copy)]
enum Item {
    Text { start: usize, end: usize },
    Real(f64),
    Bool(bool),
}

/// How many values and text bytes a [`Params`] had (see [`Params::mark`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    items: usize,
    texts: usize,
}

/// A text written into a [`Params`]' buffer and not yet bound (see
/// [`Params::bind_slot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot(Range<usize>);

impl Params {
    /// No values.
    pub fn new() -> Self {
        Params::default()
    }

    /// No values, with room for `values` of them and `text` bytes of their texts.
    pub fn with_capacity(values: usize, text: usize) -> Self {
        Params {
            texts: String::with_capacity(text),
            items: Vec::with_capacity(values),
        }
    }

    /// How many values there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The `i`-th value (placeholder `i + 1`).
    pub fn get(&self, i: usize) -> Option<Param<'_>> {
        self.items.get(i).map(|item| self.param(*item))
    }

    /// The values in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            params: self,
            items: self.items.iter(),
        }
    }

    /// Adds a value (a host's own, after the translation's): it becomes
    /// placeholder [`Params::len`].
    pub fn push(&mut self, p: Param<'_>) {
        let item = match p {
            Param::Text(s) => {
                let start = self.texts.len();
                self.texts.push_str(s);
                Item::Text {
                    start,
                    end: self.texts.len(),
                }
            }
            Param::Real(f) => Item::Real(f),
            Param::Bool(b) => Item::Bool(b),
        };
        self.items.push(item);
    }

    fn param(&self, item: Item) -> Param<'_> {
        match item {
            Item::Text { start, end } => Param::Text(self.text_at(start..end)),
            Item::Real(f) => Param::Real(f),
            Item::Bool(b) => Param::Bool(b),
        }
    }

    /// The text at `range` of the buffer: a whole text written there, so on
    /// character boundaries.
    fn text_at(&self, range: Range<usize>) -> &str {
        self.texts.get(range).unwrap_or_default()
    }

    /// Binds `p` as [`Params::push`] does, unless it is a text equal to one of the
    /// last two values (an index guard and the exact test after it compare with one
    /// text): that value's placeholder is answered instead, so that every
    /// placeholder up to [`Params::len`] stays in use. Answers the placeholder.
    pub(crate) fn bind(&mut self, p: Param<'_>) -> usize {
        if let Param::Text(text) = p {
            if let Some(n) = self.recent(text) {
                return n;
            }
        }
        self.push(p);
        self.items.len()
    }

    /// The placeholder of a text equal to `text` among the last two values.
    #[inline]
    fn recent(&self, text: &str) -> Option<usize> {
        self.recent_bytes(text.as_bytes(), usize::MAX)
    }

    /// [`Params::recent`] of a text, which starts at `start` if it is in the
    /// buffer: compared as bytes (equal texts are equal byte strings).
    #[inline]
    fn recent_bytes(&self, text: &[u8], start: usize) -> Option<usize> {
        let len = self.items.len();
        let last = len.checked_sub(1)?;
        if self.is_text(last, text, start) {
            return Some(len);
        }
        let before = last.checked_sub(1)?;
        self.is_text(before, text, start).then_some(last)
    }

    /// Whether value `i` is the text `text` (which starts at `start` if it is in
    /// the buffer).
    #[inline]
    fn is_text(&self, i: usize, text: &[u8], start: usize) -> bool {
        match self.items.get(i) {
            Some(&Item::Text { start: s, end }) => {
                end.wrapping_sub(s) == text.len()
                    && (s == start || self.texts.as_bytes().get(s..end) == Some(text))
            }
            _ => false,
        }
    }

    /// Writes a text into the buffer, without binding it yet: `write` appends it to
    /// the buffer it is given (and answers `false` to leave nothing written).
    #[inline]
    pub(crate) fn write_slot(&mut self, write: impl FnOnce(&mut String) -> bool) -> Option<Slot> {
        let start = self.texts.len();
        if write(&mut self.texts) {
            Some(Slot(start..self.texts.len()))
        } else {
            self.texts.truncate(start);
            None
        }
    }

    /// The text of a slot.
    #[inline]
    pub(crate) fn slot(&self, slot: &Slot) -> &str {
        self.text_at(slot.0.clone())
    }

    /// Writes the text before `upto` bytes of `slot`, then `last`: a text derived
    /// from the slot's (see `after_prefix`).
    pub(crate) fn derive_slot(&mut self, slot: &Slot, upto: usize, last: char) -> Slot {
        let start = self.texts.len();
        let kept = slot.0.start..slot.0.start.saturating_add(upto).min(slot.0.end);
        let kept = self.texts.get(kept).unwrap_or_default();
        // Copied out of the buffer before it grows: on the stack when short.
        let mut short = [0; 32];
        match short.get_mut(..kept.len()) {
            Some(to) => {
                to.copy_from_slice(kept.as_bytes());
                let copy = std::str::from_utf8(to).unwrap_or_default();
                self.texts.push_str(copy);
            }
            None => {
                let copy = kept.to_owned();
                self.texts.push_str(&copy);
            }
        }
        self.texts.push(last);
        Slot(start..self.texts.len())
    }

    /// Binds a slot's text as [`Params::bind`] binds a text.
    #[inline]
    pub(crate) fn bind_slot(&mut self, slot: Slot) -> usize {
        self.bind_range(slot.0.start, slot.0.end)
    }

    /// Binds a slot's text as a new value, even if it equals a recent one.
    pub(crate) fn push_slot(&mut self, slot: Slot) -> usize {
        self.items.push(Item::Text {
            start: slot.0.start,
            end: slot.0.end,
        });
        self.items.len()
    }

    /// Binds the text of placeholder `n` again as [`Params::bind`] binds a text,
    /// without copying it; `n` itself if it is not a text.
    #[inline]
    pub(crate) fn bind_again(&mut self, n: usize) -> usize {
        match n.checked_sub(1).and_then(|i| self.items.get(i)) {
            Some(&Item::Text { start, end }) => self.bind_range(start, end),
            _ => n,
        }
    }

    #[inline]
    fn bind_range(&mut self, start: usize, end: usize) -> usize {
        let text = self.texts.as_bytes().get(start..end).unwrap_or_default();
        if let Some(n) = self.recent_bytes(text, start) {
            return n;
        }
        self.items.push(Item::Text { start, end });
        self.items.len()
    }

    /// How many bytes their texts take.
    pub(crate) fn text_len(&self) -> usize {
        self.texts.len()
    }

    /// Where the values end now, to [`Params::rewind`] to.
    pub(crate) fn mark(&self) -> Mark {
        Mark {
            items: self.items.len(),
            texts: self.texts.len(),
        }
    }

    /// Forgets the values bound (and the texts written) since `mark`.
    pub(crate) fn rewind(&mut self, mark: Mark) {
        self.items.truncate(mark.items);
        self.texts.truncate(mark.texts);
    }

    /// Forgets every value, keeping the room.
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.texts.clear();
    }
}

impl PartialEq for Params {
    fn eq(&self, other: &Params) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<'a> PartialEq<[Param<'a>]> for Params {
    fn eq(&self, other: &[Param<'a>]) -> bool {
        self.iter().eq(other.iter().copied())
    }
}

impl<'a, const N: usize> PartialEq<[Param<'a>; N]> for Params {
    fn eq(&self, other: &[Param<'a>; N]) -> bool {
        self == other.as_slice()
    }
}

impl<'a> PartialEq<Vec<Param<'a>>> for Params {
    fn eq(&self, other: &Vec<Param<'a>>) -> bool {
        self == other.as_slice()
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> FromIterator<Param<'a>> for Params {
    fn from_iter<I: IntoIterator<Item = Param<'a>>>(iter: I) -> Self {
        let mut params = Params::new();
        for p in iter {
            params.push(p);
        }
        params
    }
}

impl<'a> IntoIterator for &'a Params {
    type Item = Param<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The values of a [`Params`], in order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    params: &'a Params,
    items: std::slice::Iter<'a, Item>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Param<'a>;

    fn next(&mut self) -> Option<Param<'a>> {
        let item = *self.items.next()?;
        Some(self.params.param(item))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl std::iter::FusedIterator for Iter<'_> {}

impl<'a> DoubleEndedIterator for Iter<'a> {
    fn next_back(&mut self) -> Option<Param<'a>> {
        let item = *self.items.next_back()?;
        Some(self.params.param(item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_recent_texts_share_a_placeholder() {
        let mut p = Params::new();
        assert_eq!(p.bind(Param::Text("a")), 1);
        assert_eq!(p.bind(Param::Real(1.0)), 2);
        assert_eq!(p.bind(Param::Text("a")), 1);
        assert_eq!(p.bind(Param::Text("b")), 3);
        assert_eq!(p.bind(Param::Bool(true)), 4);
        assert_eq!(p.bind(Param::Bool(true)), 5);
        assert_eq!(
            p.bind(Param::Text("b")),
            6,
            "only the last two are looked at"
        );
        let slot = p.write_slot(|t| {
            t.push('b');
            true
        });
        assert_eq!(slot.map(|s| p.bind_slot(s)), Some(6));
        assert_eq!(
            p,
            [
                Param::Text("a"),
                Param::Real(1.0),
                Param::Text("b"),
                Param::Bool(true),
                Param::Bool(true),
                Param::Text("b"),
            ]
        );
    }

    #[test]
    fn slots_derive_and_truncate() {
        let mut p = Params::new();
        p.push(Param::Text("x"));
        assert!(
            p.write_slot(|t| {
                t.push_str("junk");
                false
            })
            .is_none()
        );
        let slot = p.write_slot(|t| {
            t.push_str("ab");
            true
        });
        let Some(slot) = slot else {
            panic!("written");
        };
        assert_eq!(p.slot(&slot), "ab");
        let upper = p.derive_slot(&slot, 1, 'c');
        assert_eq!(p.slot(&upper), "ac");
        assert_eq!(p.bind_slot(slot), 2);
        assert_eq!(p.bind_slot(upper), 3);
        // Longer than what is copied on the stack.
        let long = "é".repeat(20);
        let slot = p.write_slot(|t| {
            t.push_str(&long);
            true
        });
        let upper = slot.map(|s| p.derive_slot(&s, long.len() - 2, 'ê'));
        let expected = format!("{}ê", "é".repeat(19));
        assert_eq!(upper.as_ref().map(|u| p.slot(u)), Some(expected.as_str()));
        let mark = p.mark();
        p.push(Param::Text("tail"));
        p.push(Param::Real(2.5));
        p.rewind(mark);
        assert_eq!(p, [Param::Text("x"), Param::Text("ab"), Param::Text("ac")]);
        p.push(Param::Text("y"));
        assert_eq!(
            p,
            vec![
                Param::Text("x"),
                Param::Text("ab"),
                Param::Text("ac"),
                Param::Text("y")
            ]
        );
        assert_eq!(p.iter().next_back(), Some(Param::Text("y")));
        p.clear();
        assert!(p.is_empty());
    }
}
