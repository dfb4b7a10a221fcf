//! Operation records of a fault-injection run, and JSON-lines files to keep them.
//!
//! A run records what each client *saw*: when it invoked an operation, when the answer came
//! back and what the answer was. The checkers in [`crate::check`] decide afterwards whether
//! some ordering of the cluster could explain every answer. Times are nanoseconds since the
//! start of the run, so records never depend on a wall clock and files compare across runs.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What the client learned about whether an operation took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Took effect, and the recorded result is what the server answered.
    Ok,
    /// Definitely did not take effect (e.g. rejected before being proposed).
    Fail,
    /// Timeout, lost connection or "outcome unknown": may take effect at any time after
    /// the invocation, or never. The recorded completion time means nothing.
    Unknown,
}

/// An operation on one register (a key holding an optional `u64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RegisterOp {
    /// Read the value; `None` means the key did not exist.
    Read { value: Option<u64> },
    /// Unconditional write.
    Write { value: u64 },
    /// Compare-and-set. `expected: None` means "must not exist" (a create). When the
    /// outcome is `Ok`, `succeeded` says whether the compare held; a CAS whose compare
    /// failed is an `Ok` operation that left the register alone.
    Cas { expected: Option<u64>, new: u64, succeeded: bool },
    /// Unconditional delete. A delete answered "not found" tells only that the key was
    /// absent: record it as `Read { value: None }`.
    Delete,
}

impl RegisterOp {
    /// Short text such as `write(3)` or `cas(1->2)=ok`, for anomaly reports.
    pub fn describe(&self) -> String {
        let opt = |v: &Option<u64>| v.map_or_else(|| "nil".to_string(), |v| v.to_string());
        match self {
            RegisterOp::Read { value } => format!("read()={}", opt(value)),
            RegisterOp::Write { value } => format!("write({value})"),
            RegisterOp::Cas { expected, new, succeeded } => {
                format!("cas({}->{new})={}", opt(expected), if *succeeded { "ok" } else { "mismatch" })
            }
            RegisterOp::Delete => "delete()".to_string(),
        }
    }
}

/// One operation as one client process saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRecord {
    /// The client that issued it; a process has at most one operation outstanding.
    pub process: u64,
    pub key: String,
    pub op: RegisterOp,
    pub invoke_ns: u64,
    pub complete_ns: u64,
    pub outcome: Outcome,
}

/// A register history: every operation of a run, in any order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub records: Vec<RegisterRecord>,
}

impl History {
    pub fn new() -> History {
        History::default()
    }

    pub fn push(&mut self, record: RegisterRecord) -> &mut History {
        self.records.push(record);
        self
    }

    /// Appends one operation.
    pub fn record(
        &mut self,
        process: u64,
        key: &str,
        op: RegisterOp,
        (invoke_ns, complete_ns): (u64, u64),
        outcome: Outcome,
    ) -> &mut History {
        self.push(RegisterRecord { process, key: key.to_string(), op, invoke_ns, complete_ns, outcome })
    }

    /// Appends an operation that completed with an answer.
    pub fn ok(&mut self, process: u64, key: &str, op: RegisterOp, span: (u64, u64)) -> &mut History {
        self.record(process, key, op, span, Outcome::Ok)
    }

    /// Appends an operation whose fate is unknown (its completion time is when the client
    /// gave up).
    pub fn unknown(&mut self, process: u64, key: &str, op: RegisterOp, span: (u64, u64)) -> &mut History {
        self.record(process, key, op, span, Outcome::Unknown)
    }

    /// Appends an operation that definitely did not take effect.
    pub fn fail(&mut self, process: u64, key: &str, op: RegisterOp, span: (u64, u64)) -> &mut History {
        self.record(process, key, op, span, Outcome::Fail)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Writes one record per line.
    pub fn write_jsonl(&self, path: &Path) -> io::Result<()> {
        write_jsonl(path, &self.records)
    }

    pub fn read_jsonl(path: &Path) -> io::Result<History> {
        Ok(History { records: read_jsonl(path)? })
    }
}

/// Writes items as JSON lines (one object per line), so a crashed run still leaves every
/// line written so far readable.
pub fn write_jsonl<'a, T: Serialize + 'a>(
    path: &Path,
    items: impl IntoIterator<Item = &'a T>,
) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    for item in items {
        serde_json::to_writer(&mut out, item).map_err(io::Error::other)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Reads a JSON-lines file; blank lines are skipped, a malformed line is an error naming
/// its line number.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> io::Result<Vec<T>> {
    let reader = BufReader::new(File::open(path)?);
    let mut items = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let item = serde_json::from_str(&line).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}:{}: {e}", path.display(), n + 1))
        })?;
        items.push(item);
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_round_trip() {
        let mut h = History::new();
        h.ok(1, "a", RegisterOp::Write { value: 3 }, (10, 20))
            .unknown(2, "a", RegisterOp::Cas { expected: None, new: 4, succeeded: false }, (15, 99))
            .fail(3, "b", RegisterOp::Delete, (1, 2))
            .ok(1, "a", RegisterOp::Read { value: None }, (30, 40));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        h.write_jsonl(&path).unwrap();
        assert_eq!(History::read_jsonl(&path).unwrap(), h);
    }

    #[test]
    fn malformed_line_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, "{\"process\":1}\n").unwrap();
        let err = History::read_jsonl(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains(":1:"), "{err}");
    }
}
