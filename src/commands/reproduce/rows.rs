//! `reproduce`'s results: one row per input (the CSV's, `Row::CSV_HEADER`), how a backend's
//! outcome becomes one, and the closing summary.

use std::path::Path;
use std::time::Duration;

use super::{ReproduceAction, ReproduceError};
use crate::backend::BackendOutcome;
use crate::decide::judge::Verdict;

/// One input's result: the CSV row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub block: u64,
    pub input_bytes: u64,
    pub steps: Option<u64>,
    pub proving_ms: Option<u64>,
    /// `proved`, `executed`, `checked`, `failed`, `stopped`.
    pub outcome: &'static str,
    pub reason: String,
}

impl Row {
    pub const CSV_HEADER: &'static str = "block,input_bytes,steps,proving_ms,outcome,reason";

    pub fn csv(&self) -> String {
        let num = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
        let reason = self.reason.replace('"', "\"\"");
        format!(
            "{},{},{},{},{},\"{reason}\"",
            self.block,
            self.input_bytes,
            num(self.steps),
            num(self.proving_ms),
            self.outcome
        )
    }
}

/// A backend's outcome for one input, as its row (`checked`: the guest's steps when it checked first).
pub(super) fn row(
    block: u64,
    input_bytes: u64,
    action: ReproduceAction,
    outcome: BackendOutcome,
    checked: Option<u64>,
    took: Duration,
) -> Row {
    let took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX).max(1);
    let (outcome, steps, proving_ms, reason) = match outcome {
        BackendOutcome::Ended(e) => match e.verdict {
            Verdict::Proved { proving_ms, cycles } => ("proved", cycles.or(checked), Some(proving_ms), String::new()),
            Verdict::Executed { ms, cycles } => ("executed", cycles.or(checked), Some(ms), String::new()),
            Verdict::Failed { stage, reason } => ("failed", checked, None, format!("{stage}: {reason}")),
            Verdict::Stopped | Verdict::Orphaned(_) => ("stopped", checked, None, String::new()),
        },
        BackendOutcome::Stopped | BackendOutcome::Detached => ("stopped", checked, None, String::new()),
        BackendOutcome::Lost(reason) => ("failed", checked, None, format!("coordinator: {reason}")),
    };
    // A check alone (`emulate`) that passed: the guest accepted the input.
    let outcome = if outcome == "executed" && action == ReproduceAction::Emulate { "checked" } else { outcome };
    let proving_ms = proving_ms.or((outcome != "failed").then_some(took_ms));
    Row { block, input_bytes, steps, proving_ms, outcome, reason }
}

/// The closing lines: how many of each outcome, the time taken, the guest's steps, and where
/// the proofs are.
pub fn summary(rows: &[Row], out: &Path) -> String {
    let mut outcomes: Vec<(&str, usize)> = Vec::new();
    for r in rows {
        match outcomes.iter_mut().find(|(o, _)| *o == r.outcome) {
            Some((_, n)) => *n += 1,
            None => outcomes.push((r.outcome, 1)),
        }
    }
    let counted: Vec<String> = outcomes.iter().map(|(o, n)| format!("{n} {o}")).collect();
    let mut times: Vec<u64> = rows.iter().filter_map(|r| r.proving_ms).collect();
    times.sort_unstable();
    let total_ms: u64 = times.iter().fold(0u64, |a, t| a.saturating_add(*t));
    let steps: u64 = rows.iter().filter_map(|r| r.steps).fold(0u64, |a, s| a.saturating_add(s));
    let mut lines = vec![format!(
        "summary: {} input(s): {}",
        rows.len(),
        if counted.is_empty() { "none".to_string() } else { counted.join(", ") }
    )];
    if let (Some(first), Some(last)) = (times.first(), times.last()) {
        let median = times[times.len() / 2];
        lines.push(format!(
            "time: {:.1} s in all; per input {first} ms fastest, {median} ms median, {last} ms slowest",
            total_ms as f64 / 1000.0
        ));
    }
    if steps > 0 {
        lines.push(format!("steps: {steps} in all"));
    }
    if rows.iter().any(|r| r.outcome == "proved") {
        lines.push(format!("proofs: {}/<block>/", out.display()));
    }
    lines.join("\n")
}

/// Writes the CSV report.
pub fn write_csv(path: &Path, rows: &[Row]) -> Result<(), ReproduceError> {
    let mut text = String::from(Row::CSV_HEADER);
    text.push('\n');
    for r in rows {
        text.push_str(&r.csv());
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|source| ReproduceError::Write { path: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_quote_reasons() {
        let r = Row {
            block: 7,
            input_bytes: 10,
            steps: Some(5),
            proving_ms: None,
            outcome: "failed",
            reason: "input_check: said \"no\", twice".into(),
        };
        assert_eq!(r.csv(), "7,10,5,,failed,\"input_check: said \"\"no\"\", twice\"");
    }

    #[test]
    fn the_summary_counts_outcomes_times_and_steps() {
        let row = |outcome, ms, steps| Row {
            block: 1,
            input_bytes: 1,
            steps,
            proving_ms: ms,
            outcome,
            reason: String::new(),
        };
        let rows = [row("proved", Some(300), Some(10)), row("proved", Some(100), None), row("failed", None, Some(5))];
        let text = summary(&rows, Path::new("/r"));
        assert!(text.contains("summary: 3 input(s): 2 proved, 1 failed"), "{text}");
        assert!(text.contains("0.4 s in all; per input 100 ms fastest, 300 ms median, 300 ms slowest"), "{text}");
        assert!(text.contains("steps: 15 in all") && text.contains("proofs: /r/<block>/"), "{text}");
        assert_eq!(summary(&[], Path::new("/r")), "summary: 0 input(s): none");
    }
}
