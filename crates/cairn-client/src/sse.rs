//! A Server-Sent Events parser (the WHATWG event-stream format), fed bytes as they arrive.
//!
//! One deliberate difference from a browser's EventSource: an event reports the `id:` given
//! in its own block, not the sticky "last event id", because Cairn puts an id only on the
//! last event of a revision and the watch logic needs to see exactly which events close a
//! revision. Blocks with an id or an event name but no data are dispatched too.

/// Largest event accepted (field text of one block): a watch event carries at most a 1 MiB
/// value twice (node and prev), base64-inflated.
const MAX_EVENT_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name, `"message"` when none was given.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` of this block, if it had one.
    pub id: Option<String>,
}

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The last byte fed was `\r`: a `\n` right after it ends nothing more.
    after_cr: bool,
    /// Whether the stream's first line was seen (a leading BOM is dropped there).
    started: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an SSE event exceeds {MAX_EVENT_BYTES} bytes")]
pub struct TooLarge;

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; complete events are appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), TooLarge> {
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line(out);
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                    if self.size + self.line.len() > MAX_EVENT_BYTES {
                        return Err(TooLarge);
                    }
                }
            }
        }
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let raw = std::mem::take(&mut self.line);
        let mut text = String::from_utf8_lossy(&raw).into_owned();
        if !self.started {
            self.started = true;
            if let Some(rest) = text.strip_prefix('\u{feff}') {
                text = rest.to_owned();
            }
        }
        if text.is_empty() {
            self.dispatch(out);
            return;
        }
        if text.starts_with(':') {
            return; // a comment (keep-alives are sent as comments)
        }
        let (field, value) = match text.find(':') {
            Some(i) => {
                let value = &text[i + 1..];
                (&text[..i], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (text.as_str(), ""),
        };
        self.size += value.len();
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {} // `retry` and unknown fields do not concern us
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        let id = self.id.take();
        let data = std::mem::take(&mut self.data);
        let has_data = std::mem::replace(&mut self.has_data, false);
        self.size = 0;
        if has_data || id.is_some() || event.is_some() {
            out.push(SseEvent { event: event.unwrap_or_else(|| "message".to_owned()), data, id });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], piece: usize) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            p.feed(chunk, &mut out).unwrap();
        }
        out
    }

    fn ev(event: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent { event: event.into(), data: data.into(), id: id.map(Into::into) }
    }

    #[test]
    fn parses_cairn_watch_frames_whatever_the_chunking() {
        let input = b"event: set\ndata: {\"revision\":3}\nid: 3\n\n: keep-alive\n\nevent: progress\ndata: {\"revision\":5}\nid: 5\n\n";
        let want =
            vec![ev("set", "{\"revision\":3}", Some("3")), ev("progress", "{\"revision\":5}", Some("5"))];
        for piece in [1, 2, 3, 7, input.len()] {
            assert_eq!(parse_in_pieces(input, piece), want, "chunks of {piece}");
        }
    }

    #[test]
    fn multi_line_data_and_line_endings() {
        // \r\n, \r and \n all end lines, even when \r and \n arrive in different chunks.
        let input = b"data: first\r\ndata:second\rdata:  third\n\r\n";
        for piece in [1, 2, input.len()] {
            assert_eq!(parse_in_pieces(input, piece), vec![ev("message", "first\nsecond\n third", None)]);
        }
    }

    #[test]
    fn ids_are_per_event_and_comments_are_skipped() {
        let input =
            b"\xEF\xBB\xBFevent: create\ndata: a\n\n:comment\nevent: create\ndata: b\nid: 4\n\ndata: c\n\n";
        assert_eq!(
            parse_in_pieces(input, 5),
            vec![ev("create", "a", None), ev("create", "b", Some("4")), ev("message", "c", None)]
        );
    }

    #[test]
    fn fields_without_colon_or_value_and_empty_blocks() {
        let input = b"data\n\n\n\nevent: cancelled\n\nid: 9\n\nretry: 100\nfoo: bar\n\n";
        assert_eq!(
            parse_in_pieces(input, 4),
            vec![ev("message", "", None), ev("cancelled", "", None), ev("message", "", Some("9"))]
        );
    }

    #[test]
    fn an_unfinished_event_is_not_dispatched() {
        assert!(parse_in_pieces(b"event: set\ndata: x\nid: 3\n", 3).is_empty());
    }

    #[test]
    fn refuses_endless_events() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        let line = vec![b'x'; MAX_EVENT_BYTES + 1];
        assert_eq!(p.feed(&line, &mut out), Err(TooLarge));
    }
}
