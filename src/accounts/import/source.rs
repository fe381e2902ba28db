//! The byte source of an import: strips a UTF-8 BOM, counts bytes and finds the line each
//! record starts on.

use std::collections::VecDeque;
use std::io::{self, Read};

/// Strips a UTF-8 BOM at the very start, counts the bytes read and remembers where the line
/// feeds are, so records get their true line numbers (the csv crate's own line count skips
/// blank lines).
pub(super) struct Source<R> {
    inner: R,
    head: [u8; 3],
    head_pos: usize,
    head_len: usize,
    started: bool,
    /// Bytes read from `inner` (the BOM included).
    pub(super) bytes: u64,
    /// Bytes handed to the parser (the BOM excluded): the parser's byte offsets.
    out_pos: u64,
    /// Offsets of `\n` handed out and not yet passed by [`Source::line_of_record`].
    newlines: VecDeque<u64>,
    /// Line feeds already passed.
    passed: u64,
    /// Offset of the last line feed passed.
    last_passed: Option<u64>,
}

impl<R: Read> Source<R> {
    pub(super) fn new(inner: R) -> Self {
        Self {
            inner,
            head: [0; 3],
            head_pos: 0,
            head_len: 0,
            started: false,
            bytes: 0,
            out_pos: 0,
            newlines: VecDeque::new(),
            passed: 0,
            last_passed: None,
        }
    }

    /// The line a record starts on, given the parser's offset `end` just past the record and
    /// the number of line feeds inside its fields.
    pub(super) fn line_of_record(&mut self, end: u64, newlines_inside: u64) -> u64 {
        while self.newlines.front().is_some_and(|&o| o < end) {
            self.last_passed = self.newlines.pop_front();
            self.passed += 1;
        }
        // Line feeds before the record's first byte, whether or not the parser has already
        // consumed the record's own terminator.
        let terminator_seen = end > 0 && self.last_passed == Some(end - 1);
        let before = self.passed - u64::from(terminator_seen);
        before.saturating_sub(newlines_inside) + 1
    }

    fn hand_out(&mut self, buf: &[u8]) -> usize {
        for (i, &b) in buf.iter().enumerate() {
            if b == b'\n' {
                self.newlines.push_back(self.out_pos + i as u64);
            }
        }
        self.out_pos += buf.len() as u64;
        buf.len()
    }
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.started {
            self.started = true;
            while self.head_len < 3 {
                match self.inner.read(&mut self.head[self.head_len..]) {
                    Ok(0) => break,
                    Ok(n) => {
                        self.head_len += n;
                        self.bytes += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if self.head[..self.head_len] == [0xEF, 0xBB, 0xBF] {
                self.head_len = 0;
            }
        }
        if self.head_pos < self.head_len {
            let n = (self.head_len - self.head_pos).min(buf.len());
            buf[..n].copy_from_slice(&self.head[self.head_pos..self.head_pos + n]);
            self.head_pos += n;
            return Ok(self.hand_out(&buf[..n]));
        }
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(self.hand_out(&buf[..n]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_is_stripped_once_and_counted() {
        let mut s = Source::new(&b"\xEF\xBB\xBFab"[..]);
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"ab");
        assert_eq!(s.bytes, 5);
        let mut s = Source::new(&b"a"[..]);
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"a");
    }
}
