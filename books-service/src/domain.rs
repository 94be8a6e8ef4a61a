//! Request fields parsed into types that can only hold valid values.

use crate::error::{Error, Result};

/// A book id: a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookId(i64);

impl BookId {
    pub fn parse(raw: i64) -> Result<Self> {
        if raw <= 0 {
            return Err(Error::invalid("id", "must be a positive integer"));
        }
        Ok(Self(raw))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A book's name, author or publisher: 1 to 50 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookText(String);

impl BookText {
    pub const MAX_CHARS: usize = 50;

    pub fn parse(field: &'static str, raw: &str) -> Result<Self> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(Error::invalid(field, "must not be empty"));
        }
        if text.chars().count() > Self::MAX_CHARS {
            return Err(Error::invalid(field, format!("must be at most {} characters", Self::MAX_CHARS)));
        }
        if text.chars().any(char::is_control) {
            return Err(Error::invalid(field, "must not contain control characters"));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The tutorial's `book_prize`: an integer >= 0.
pub fn parse_book_prize(raw: i64) -> Result<i64> {
    if raw < 0 {
        return Err(Error::invalid("book_prize", "must be an integer >= 0"));
    }
    Ok(raw)
}

/// A valid new book.
#[derive(Debug, Clone)]
pub struct NewBook {
    pub name: String,
    pub author: String,
    pub publisher: String,
    pub book_prize: i64,
}

impl NewBook {
    pub fn parse(name: &str, author: &str, publisher: &str, book_prize: i64) -> Result<Self> {
        Ok(Self {
            name: BookText::parse("name", name)?.into_inner(),
            author: BookText::parse("author", author)?.into_inner(),
            publisher: BookText::parse("publisher", publisher)?.into_inner(),
            book_prize: parse_book_prize(book_prize)?,
        })
    }
}

/// The fields an update sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct BookPatch {
    pub name: Option<String>,
    pub author: Option<String>,
    pub publisher: Option<String>,
    pub book_prize: Option<i64>,
}

impl BookPatch {
    pub fn parse(
        name: Option<&str>,
        author: Option<&str>,
        publisher: Option<&str>,
        book_prize: Option<i64>,
    ) -> Result<Self> {
        let text =
            |field, raw: Option<&str>| raw.map(|raw| BookText::parse(field, raw).map(BookText::into_inner)).transpose();
        Ok(Self {
            name: text("name", name)?,
            author: text("author", author)?,
            publisher: text("publisher", publisher)?,
            book_prize: book_prize.map(parse_book_prize).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn book_text_counts_characters_not_bytes() {
        assert!(BookText::parse("name", &"Ж".repeat(50)).is_ok());
        assert!(BookText::parse("name", &"Ж".repeat(51)).is_err());
        assert_eq!(BookText::parse("name", "  Dune ").unwrap().into_inner(), "Dune");
    }

    #[test]
    fn empty_and_control_texts_are_refused_with_their_field() {
        let error = BookText::parse("author", "   ").unwrap_err();
        assert_eq!(error.to_string(), "author: must not be empty");
        assert!(BookText::parse("name", "a\u{0}b").is_err());
    }

    #[test]
    fn ids_and_prizes_have_lower_bounds() {
        assert!(BookId::parse(0).is_err());
        assert!(BookId::parse(-1).is_err());
        assert_eq!(BookId::parse(7).unwrap().get(), 7);
        assert!(parse_book_prize(-5).is_err());
        assert_eq!(parse_book_prize(0).unwrap(), 0);
    }
}
