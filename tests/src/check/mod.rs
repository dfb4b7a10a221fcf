//! History checkers: each takes what clients observed during a run and reports the
//! observations no correct cluster could have produced, as readable text.
//!
//! The checkers are pure functions of their inputs (times are nanoseconds since the start
//! of a run), so a failing run can be saved as JSON lines and re-checked offline.

pub mod lease;
pub mod linearizable;
pub mod lock;
pub mod sequence;
pub mod watch;

/// Formats nanoseconds as milliseconds with microsecond precision, e.g. `12.345ms`.
pub fn ms(ns: u64) -> String {
    format!("{}.{:03}ms", ns / 1_000_000, (ns / 1_000) % 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ms_keeps_microseconds() {
        assert_eq!(ms(12_345_678), "12.345ms");
        assert_eq!(ms(0), "0.000ms");
    }
}
