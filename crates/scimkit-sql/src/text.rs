//! Writing SQL text fast: `sql!(out, "literal", value, …)` appends each piece in
//! turn, without the formatting machinery (`write!` costs more than the text it
//! writes here; a 20-clause filter is several kilobytes of SQL).

/// A piece of SQL text.
pub(crate) trait SqlPiece {
    /// Appends the piece to `out`.
    fn push_to(&self, out: &mut String);
}

impl SqlPiece for str {
    #[inline]
    fn push_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl SqlPiece for String {
    #[inline]
    fn push_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl<T: SqlPiece + ?Sized> SqlPiece for &T {
    #[inline]
    fn push_to(&self, out: &mut String) {
        (**self).push_to(out);
    }
}

impl SqlPiece for usize {
    #[inline]
    fn push_to(&self, out: &mut String) {
        // Placeholders and aliases are mostly below 100.
        match *self {
            n @ 0..10 => out.push(digit(n)),
            n @ 10..100 => {
                out.push(digit(n / 10));
                out.push(digit(n % 10));
            }
            n => push_number(out, n, 1),
        }
    }
}

/// The character of a digit below 10.
fn digit(n: usize) -> char {
    char::from(b'0' + (n % 10) as u8)
}

/// Appends `n` in decimal, zero-padded to `width` digits.
pub(crate) fn push_number(out: &mut String, mut n: usize, width: usize) {
    const DIGITS: &[u8; 10] = b"0123456789";
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while n > 0 || buf.len() - i < width {
        i -= 1;
        buf[i] = DIGITS[n % 10];
        n /= 10;
        if i == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

impl SqlPiece for bool {
    fn push_to(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

impl<A: SqlPiece, B: SqlPiece, C: SqlPiece> SqlPiece for (A, B, C) {
    fn push_to(&self, out: &mut String) {
        self.0.push_to(out);
        self.1.push_to(out);
        self.2.push_to(out);
    }
}

impl<A: SqlPiece, B: SqlPiece, C: SqlPiece, D: SqlPiece, E: SqlPiece> SqlPiece for (A, B, C, D, E) {
    fn push_to(&self, out: &mut String) {
        self.0.push_to(out);
        self.1.push_to(out);
        self.2.push_to(out);
        self.3.push_to(out);
        self.4.push_to(out);
    }
}

/// Appends pieces of SQL text to a `String`.
macro_rules! sql {
    ($out:expr, $($piece:expr),+ $(,)?) => {{
        $( $crate::text::SqlPiece::push_to(&$piece, &mut $out); )+
    }};
}

#[cfg(test)]
mod tests {
    use super::SqlPiece;

    #[test]
    fn numbers_are_written_in_decimal() {
        for n in (0..1_000).chain([12_345, 1_000_000, usize::MAX]) {
            let mut out = String::new();
            n.push_to(&mut out);
            assert_eq!(out, n.to_string());
        }
    }
}
