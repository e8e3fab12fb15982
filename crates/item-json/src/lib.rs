//! A DynamoDB Scan's answer, as DynamoDB sent it, read once into plain JSON:
//! the loop a `GET /users` page runs per attribute.
//!
//! DynamoDB answers in its JSON protocol, each value wrapped in its type
//! (`{"name": {"S": "Ada"}, "age": {"N": "36"}}`). [`ScanAnswer`] reads that
//! text front to back and writes each item unwrapped (`{"name": "Ada",
//! "age": 36}`): S as a string, N as a JSON number with every digit
//! DynamoDB stored (never through an `f64`), BOOL, NULL, M as an object, L as
//! an array, SS/NS as arrays, B/BS as base64 strings, attributes in the order
//! DynamoDB sent them. Names, strings and base64 are copied as DynamoDB
//! escaped them: a JSON string stays the same string in any JSON text. No
//! item is built in between (the SDK's `HashMap<String, AttributeValue>` per
//! item, a `String` per attribute): [`KeepAnswer`] takes the answer's bytes
//! from the SDK in place of its parse.
//!
//! What the reader relies on, and checks: the answer is JSON (RFC 8259) in
//! the shape of the DynamoDB API reference's `Scan` response and
//! `AttributeValue` (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Scan.html>,
//! <https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_AttributeValue.html>).
//! Anything else is an error, never a page: a value of a type it does not
//! know, a number that is not one, nesting twice as deep as DynamoDB's 32 levels,
//! text that is not JSON where the reader looks at it. What it leaves to
//! DynamoDB: the bytes inside a string (copied, not decoded), and the
//! answer's UTF-8, which the caller checks once on the whole page.
//!
//! It is a package of its own so that it can be built for speed while the
//! function is built for size (the root `Cargo.toml`'s
//! `[profile.release.package.item-json]`).

mod keep;
mod number;

pub use keep::KeepAnswer;
use number::write_number;

/// Where and why a Scan's answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The byte of the answer at which reading stopped.
    pub at: usize,
    /// What was expected there.
    pub expected: &'static str,
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "expected {} at byte {}", self.expected, self.at)
    }
}

impl std::error::Error for Unreadable {}

/// DynamoDB nests M and L values at most 32 levels deep; the reader, which
/// recurses, refuses twice that rather than run out of stack.
const MAX_DEPTH: usize = 64;

/// An item written by [`ScanAnswer::next_item`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    /// The JSON string (quotes included, as sent) of the item's key
    /// attribute, if that is an S.
    pub key: Option<&'a [u8]>,
}

/// A Scan's answer read front to back: its items one at a time
/// ([`next_item`](Self::next_item)), then its `LastEvaluatedKey`
/// ([`last_evaluated_key`](Self::last_evaluated_key)).
pub struct ScanAnswer<'a> {
    json: &'a [u8],
    at: usize,
    /// The attribute whose S value [`next_item`](Self::next_item) returns.
    key: &'a [u8],
    /// `LastEvaluatedKey`, as sent, where it came before `Items`.
    last_key: Option<&'a [u8]>,
    /// Inside `Items`, and whether an item was read there.
    in_items: bool,
    first: bool,
}

impl<'a> ScanAnswer<'a> {
    /// Starts reading `json`, a Scan's answer. `key` names the attribute
    /// (a string, as the table's partition key) whose value each item's
    /// read returns.
    pub fn new(json: &'a [u8], key: &'a str) -> Result<Self, Unreadable> {
        let mut answer = Self {
            json,
            at: 0,
            key: key.as_bytes(),
            last_key: None,
            in_items: false,
            first: true,
        };
        answer.open(b'{', "the answer's object")?;
        if !answer.close(b'}') {
            answer.fields()?;
        }
        Ok(answer)
    }

    /// Reads the answer's fields up to `Items`' first item, or to its end.
    fn fields(&mut self) -> Result<(), Unreadable> {
        loop {
            let name = self.string()?;
            self.colon()?;
            match name {
                b"\"Items\"" => {
                    self.open(b'[', "Items' array")?;
                    self.in_items = true;
                    return Ok(());
                }
                b"\"LastEvaluatedKey\"" => {
                    self.space();
                    let start = self.at;
                    self.skip(0)?;
                    self.last_key = Some(&self.json[start..self.at]);
                }
                _ => self.skip(0)?,
            }
            if self.close(b'}') {
                return Ok(());
            }
            self.comma()?;
        }
    }

    /// Appends the next item's plain JSON to `out`; `None` once every item
    /// was read. On an error `out` holds part of the item.
    pub fn next_item(&mut self, out: &mut Vec<u8>) -> Result<Option<Item<'a>>, Unreadable> {
        if !self.in_items {
            return Ok(None);
        }
        if self.items_ended()? {
            return Ok(None);
        }
        if !self.first {
            self.comma()?;
        }
        self.first = false;
        let key = self.write_map(out, 0)?;
        Ok(Some(Item { key }))
    }

    /// The answer's `LastEvaluatedKey` as sent (DynamoDB JSON), once every
    /// item was read; `None` on the last page.
    pub fn last_evaluated_key(mut self) -> Result<Option<&'a [u8]>, Unreadable> {
        while self.in_items && !self.items_ended()? {
            if !self.first {
                self.comma()?;
            }
            self.first = false;
            self.skip(0)?;
        }
        Ok(self.last_key)
    }

    /// Whether `Items`' closing bracket is next; if so, the answer's fields
    /// after it are read.
    fn items_ended(&mut self) -> Result<bool, Unreadable> {
        if !self.close(b']') {
            return Ok(false);
        }
        self.in_items = false;
        if !self.close(b'}') {
            self.comma()?;
            self.fields()?;
        }
        Ok(true)
    }

    /// An M value (an item at depth 0): its attributes as a JSON object.
    /// Returns the key attribute's S string.
    fn write_map(
        &mut self,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<Option<&'a [u8]>, Unreadable> {
        self.open(b'{', "an object of attributes")?;
        out.push(b'{');
        let mut key = None;
        if !self.close(b'}') {
            loop {
                let name = self.string()?;
                self.colon()?;
                out.extend_from_slice(name);
                out.push(b':');
                let s = self.write_value(out, depth)?;
                if depth == 0
                    && name.len() == self.key.len() + 2
                    && &name[1..name.len() - 1] == self.key
                {
                    key = s;
                }
                if self.close(b'}') {
                    break;
                }
                self.comma()?;
                out.push(b',');
            }
        }
        out.push(b'}');
        Ok(key)
    }

    /// One attribute value, `{"T": v}`, as plain JSON. Returns the string of an S.
    fn write_value(
        &mut self,
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<Option<&'a [u8]>, Unreadable> {
        self.open(b'{', "an attribute value")?;
        let kind = self.string()?;
        self.colon()?;
        let mut s = None;
        match kind {
            b"\"S\"" => {
                let string = self.string()?;
                out.extend_from_slice(string);
                s = Some(string);
            }
            b"\"N\"" => self.write_number(out)?,
            b"\"BOOL\"" => {
                if self.literal(b"true") {
                    out.extend_from_slice(b"true");
                } else if self.literal(b"false") {
                    out.extend_from_slice(b"false");
                } else {
                    return Err(self.unreadable("true or false"));
                }
            }
            b"\"NULL\"" => {
                if !self.literal(b"true") {
                    return Err(self.unreadable("NULL's true"));
                }
                out.extend_from_slice(b"null");
            }
            b"\"B\"" => out.extend_from_slice(self.string()?),
            b"\"M\"" => {
                self.deeper(depth)?;
                self.write_map(out, depth + 1)?;
            }
            b"\"L\"" => {
                self.deeper(depth)?;
                self.write_list(out, |answer, out| {
                    answer.write_value(out, depth + 1).map(drop)
                })?;
            }
            b"\"SS\"" | b"\"BS\"" => self.write_list(out, |answer, out| {
                out.extend_from_slice(answer.string()?);
                Ok(())
            })?,
            b"\"NS\"" => self.write_list(out, Self::write_number)?,
            _ => return Err(self.unreadable("an attribute type of DynamoDB's")),
        }
        if !self.close(b'}') {
            return Err(self.unreadable("the end of an attribute value"));
        }
        Ok(s)
    }

    fn write_list(
        &mut self,
        out: &mut Vec<u8>,
        mut write: impl FnMut(&mut Self, &mut Vec<u8>) -> Result<(), Unreadable>,
    ) -> Result<(), Unreadable> {
        self.open(b'[', "an array")?;
        out.push(b'[');
        if !self.close(b']') {
            loop {
                write(self, out)?;
                if self.close(b']') {
                    break;
                }
                self.comma()?;
                out.push(b',');
            }
        }
        out.push(b']');
        Ok(())
    }

    /// An N (a number sent as a string) as a JSON number, digit for digit.
    fn write_number(&mut self, out: &mut Vec<u8>) -> Result<(), Unreadable> {
        let at = self.at;
        let string = self.string()?;
        let digits = std::str::from_utf8(&string[1..string.len() - 1]).map_err(|_| Unreadable {
            at,
            expected: "a number",
        })?;
        write_number(out, digits).map_err(|()| Unreadable {
            at,
            expected: "a number",
        })
    }

    fn deeper(&self, depth: usize) -> Result<(), Unreadable> {
        if depth + 1 >= MAX_DEPTH {
            return Err(self.unreadable("at most 64 levels of nesting"));
        }
        Ok(())
    }

    /// Skips one JSON value of any kind.
    fn skip(&mut self, depth: usize) -> Result<(), Unreadable> {
        self.space();
        match self.json.get(self.at) {
            Some(b'"') => {
                self.string()?;
            }
            Some(b'{') => self.skip_elements(b'}', depth, |answer| {
                answer.string()?;
                answer.colon()
            })?,
            Some(b'[') => self.skip_elements(b']', depth, |_| Ok(()))?,
            Some(b't' | b'f' | b'n') => {
                if !(self.literal(b"true") || self.literal(b"false") || self.literal(b"null")) {
                    return Err(self.unreadable("a JSON value"));
                }
            }
            Some(b'-' | b'0'..=b'9') => {
                let rest = &self.json[self.at..];
                self.at += rest
                    .iter()
                    .take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .count();
            }
            _ => return Err(self.unreadable("a JSON value")),
        }
        Ok(())
    }

    /// An object's members or an array's elements, from its opening bracket
    /// to `close`: each one's `name` read (an object's), then its value skipped.
    fn skip_elements(
        &mut self,
        close: u8,
        depth: usize,
        name: impl Fn(&mut Self) -> Result<(), Unreadable>,
    ) -> Result<(), Unreadable> {
        self.deeper(depth)?;
        self.at += 1;
        if !self.close(close) {
            loop {
                name(self)?;
                self.skip(depth + 1)?;
                if self.close(close) {
                    break;
                }
                self.comma()?;
            }
        }
        Ok(())
    }

    /// A JSON string, quotes included, as sent; escapes are skipped over,
    /// not decoded.
    fn string(&mut self) -> Result<&'a [u8], Unreadable> {
        self.space();
        let start = self.at;
        if self.json.get(start) != Some(&b'"') {
            return Err(self.unreadable("a string"));
        }
        let mut at = start + 1;
        loop {
            match memchr::memchr2(b'"', b'\\', &self.json[at..]) {
                Some(found) if self.json[at + found] == b'"' => {
                    self.at = at + found + 1;
                    return Ok(&self.json[start..self.at]);
                }
                // An escape: the byte after the backslash is never the end.
                Some(found) if at + found + 1 < self.json.len() => at += found + 2,
                _ => return Err(self.unreadable("the end of a string")),
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        self.space();
        let found = self.json[self.at..].starts_with(word);
        if found {
            self.at += word.len();
        }
        found
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.json.get(self.at) {
            self.at += 1;
        }
    }

    fn open(&mut self, byte: u8, expected: &'static str) -> Result<(), Unreadable> {
        self.space();
        if self.json.get(self.at) != Some(&byte) {
            return Err(self.unreadable(expected));
        }
        self.at += 1;
        Ok(())
    }

    /// Whether `byte` (a closing bracket) is next, and if so steps over it.
    fn close(&mut self, byte: u8) -> bool {
        self.space();
        let found = self.json.get(self.at) == Some(&byte);
        self.at += usize::from(found);
        found
    }

    fn colon(&mut self) -> Result<(), Unreadable> {
        self.open(b':', "a colon")
    }

    fn comma(&mut self) -> Result<(), Unreadable> {
        self.open(b',', "a comma or a closing bracket")
    }

    fn unreadable(&self, expected: &'static str) -> Unreadable {
        Unreadable {
            at: self.at,
            expected,
        }
    }
}

#[cfg(test)]
mod tests;
