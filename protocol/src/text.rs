//! Clipping text to a field's byte limit.
//!
//! A `string` field has a limit in **bytes** (§3 of PROTOCOL.md), but a Rust `String` may only be
//! cut at a char boundary: `String::truncate` at a byte inside a multi-byte character panics.
//! Every place that shortens text for the wire (error messages above all: they quote what the
//! client sent) goes through [`clip_text`] or [`clip_str`], which cut at the last char boundary at
//! or below the limit.

/// The longest prefix of `text` that is at most `max` bytes and ends on a char boundary.
///
/// ```
/// use sls_protocol::clip_str;
/// assert_eq!(clip_str("abc", 8), "abc");
/// assert_eq!(clip_str("aé", 2), "a"); // 'é' is 2 bytes: it would straddle the limit
/// ```
pub fn clip_str(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    // 0 is always a boundary, so this ends; a char is at most 4 bytes, so it runs at most 3 times.
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// `text`, owned, clipped to at most `max` bytes at a char boundary (see [`clip_str`]). Takes a
/// `String` without copying it, or anything else that converts into one.
///
/// ```
/// use sls_protocol::{clip_text, limits::MAX_TEXT};
/// let long = format!("{}é", "x".repeat(MAX_TEXT - 1)); // the 'é' spans bytes 127..129
/// assert_eq!(clip_text(long, MAX_TEXT), "x".repeat(MAX_TEXT - 1));
/// ```
pub fn clip_text(text: impl Into<String>, max: usize) -> String {
    let mut text = text.into();
    let end = clip_str(&text, max).len();
    text.truncate(end);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_TEXT;
    use proptest::prelude::*;

    #[test]
    fn short_text_is_untouched() {
        assert_eq!(clip_text("", 0), "");
        assert_eq!(clip_text("abc", 3), "abc");
        assert_eq!(clip_text(String::from("abc"), 100), "abc");
        assert_eq!(clip_str("héllo", 6), "héllo");
    }

    #[test]
    fn ascii_is_cut_at_the_limit() {
        assert_eq!(clip_text("abcdef", 4), "abcd");
        assert_eq!(clip_text("abcdef", 0), "");
    }

    #[test]
    fn a_char_straddling_the_limit_is_dropped_whole() {
        // 'é' = 2 bytes, '€' = 3, '🦀' = 4: the limit falls after each of their first bytes.
        assert_eq!(clip_text("aé", 2), "a");
        assert_eq!(clip_text("a€", 2), "a");
        assert_eq!(clip_text("a€", 3), "a");
        assert_eq!(clip_text("a🦀", 2), "a");
        assert_eq!(clip_text("a🦀", 3), "a");
        assert_eq!(clip_text("a🦀", 4), "a");
        assert_eq!(clip_text("a🦀b", 5), "a🦀");
        assert_eq!(clip_text("é", 1), "");
        assert_eq!(clip_text("🦀", 3), "");
    }

    #[test]
    fn a_char_ending_exactly_at_the_limit_is_kept() {
        assert_eq!(clip_text("aéb", 3), "aé");
        assert_eq!(clip_text("🦀🦀", 4), "🦀");
    }

    /// The daemon's case (issue 11): the suite parser quotes the suite's first part with `{:?}`,
    /// which spells each of 10 × U+200B as `\u{200b}` (8 bytes), then 8 × 'é': behind the
    /// 45-byte prefix, byte 128 falls inside an 'é'. `String::truncate(128)` panics on it.
    #[test]
    fn the_suite_error_of_issue_11_is_clipped_not_panicking() {
        let suite = format!("{}{}:a:b", "\u{200b}".repeat(10), "é".repeat(8));
        let first = suite.split(':').next().unwrap_or_default();
        let text = format!("invalid credential: bad OCRA suite: version {first:?} is not OCRA-1");
        assert!(text.len() > MAX_TEXT);
        assert!(
            !text.is_char_boundary(MAX_TEXT),
            "the limit must fall inside a char"
        );
        let clipped = clip_text(text.clone(), MAX_TEXT);
        assert_eq!(clipped.len(), MAX_TEXT - 1);
        assert!(text.starts_with(&clipped));
    }

    #[test]
    fn the_owned_clip_keeps_its_allocation() {
        let s = "x".repeat(200);
        let ptr = s.as_ptr();
        let clipped = clip_text(s, 10);
        assert_eq!(clipped.as_ptr(), ptr);
        assert_eq!(clipped.len(), 10);
    }

    proptest! {
        /// The clip is a prefix, fits, and is the longest prefix that fits.
        #[test]
        fn the_clip_is_the_longest_fitting_prefix(text in "\\PC{0,80}", max in 0usize..200) {
            let clipped = clip_text(text.as_str(), max);
            prop_assert!(clipped.len() <= max);
            prop_assert!(text.starts_with(&clipped));
            if clipped.len() < text.len() {
                let next = text[clipped.len()..].chars().next().map_or(0, char::len_utf8);
                prop_assert!(clipped.len() + next > max);
            }
            prop_assert_eq!(clip_str(&text, max), clipped.as_str());
        }
    }
}
