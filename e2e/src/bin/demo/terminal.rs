//! The demo's terminal: step lines with spinners, aligned tables, colours only on a terminal,
//! and Ctrl-C handling (stop at the next step and clean up; a second one forces). Does terminal
//! and signal I/O.

use std::fmt::Display;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::{Check, LABEL};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// On Ctrl-C (or SIGTERM): the first one makes the demo stop at the next step and clean up
/// through the harness's guards; a second one removes the demo's namespaces and exits 130.
pub(crate) fn install_signal_handler(out: Out) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            for round in 0.. {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                if round == 0 {
                    INTERRUPTED.store(true, Ordering::Relaxed);
                    eprintln!(
                        "\n{}",
                        out.red("interrupted: cleaning up (press Ctrl-C again to force)")
                    );
                } else {
                    break;
                }
            }
        });
        eprintln!("removing the demo's namespaces");
        manul_e2e::netns::remove_all_of(std::process::id());
        std::process::exit(130);
    });
}

/// The terminal: step lines with spinners, tables, colours (only on a terminal).
#[derive(Clone)]
pub(crate) struct Out {
    quiet: bool,
    color: bool,
}

impl Out {
    pub(crate) fn new(quiet: bool) -> Out {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Out { quiet, color }
    }

    pub(crate) fn paint(&self, code: &str, s: impl Display) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    pub(crate) fn red(&self, s: impl Display) -> String {
        self.paint("1;31", s)
    }

    pub(crate) fn line(&self, s: impl Display) {
        if !self.quiet {
            println!("{s}");
        }
    }

    pub(crate) fn heading(&self, s: &str) {
        self.line(format!("\n{}", self.paint("1", s)));
    }

    pub(crate) fn spinner(&self, label: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("  {spinner:.cyan} {msg} {elapsed:.dim}") {
            bar.set_style(style);
        }
        bar.set_message(format!("{label:<LABEL$}"));
        bar.enable_steady_tick(Duration::from_millis(80));
        bar
    }

    /// Runs one step under a spinner, then prints `✓ label  detail  (time)` or `✗ label`.
    pub(crate) fn step<T>(
        &self,
        label: &str,
        f: impl FnOnce() -> Result<(T, String)>,
    ) -> Result<T> {
        self.step_lines(label, || f().map(|(v, line)| (v, vec![line])))
    }

    pub(crate) fn step_lines<T>(
        &self,
        label: &str,
        f: impl FnOnce() -> Result<(T, Vec<String>)>,
    ) -> Result<T> {
        if interrupted() {
            bail!("interrupted before {label}");
        }
        self.step_even_if_interrupted(label, f)
    }

    /// A step that runs after Ctrl-C too (cleaning up).
    pub(crate) fn step_even_if_interrupted<T>(
        &self,
        label: &str,
        f: impl FnOnce() -> Result<(T, Vec<String>)>,
    ) -> Result<T> {
        let bar = self.spinner(label);
        let start = Instant::now();
        let result = f();
        bar.finish_and_clear();
        let took = start.elapsed();
        match result {
            Ok((v, mut lines)) => {
                if took >= Duration::from_millis(300) {
                    let t = self.paint("2", format!("({:.1}s)", took.as_secs_f64()));
                    match lines.first_mut() {
                        Some(first) if !first.is_empty() => *first = format!("{first}  {t}"),
                        _ => lines = vec![t],
                    }
                }
                self.mark(true, label, &lines);
                Ok(v)
            }
            Err(e) => {
                self.mark(false, label, &["failed".to_string()]);
                Err(e.context(format!("{label} failed")))
            }
        }
    }

    pub(crate) fn mark(&self, ok: bool, label: &str, lines: &[String]) {
        let mark = if ok {
            self.paint("1;32", "✓")
        } else {
            self.paint("1;31", "✗")
        };
        let first = lines.first().map(String::as_str).unwrap_or("");
        self.line(format!("  {mark} {label:<LABEL$} {first}").trim_end());
        for more in lines.iter().skip(1) {
            self.line(format!("    {:LABEL$} {more}", ""));
        }
    }

    /// An information block aligned with the step lines, without a mark.
    pub(crate) fn detail(&self, label: &str, lines: &[String]) {
        let first = lines.first().map(String::as_str).unwrap_or("");
        self.line(format!(
            "  {} {label:<LABEL$} {first}",
            self.paint("1;32", "✓")
        ));
        for more in lines.iter().skip(1) {
            self.line(format!("    {:LABEL$} {more}", ""));
        }
    }

    /// One connectivity check: spinner, then `✓ label  what  result` or `✗ … error`.
    pub(crate) fn path(
        &self,
        label: &'static str,
        what: &str,
        f: impl FnOnce() -> Result<String>,
    ) -> Check {
        if interrupted() {
            let result = Err(anyhow!("interrupted"));
            return Check { label, result };
        }
        let bar = self.spinner(label);
        let result = f();
        bar.finish_and_clear();
        let ok = result.is_ok();
        let text = match &result {
            Ok(s) => s.clone(),
            Err(e) => self.red(format!("{e:#}")),
        };
        self.mark(ok, label, &[what.to_string(), text]);
        Check { label, result }
    }

    /// A route (or any line) with a dimmed comment in a column of its own.
    pub(crate) fn annotated(&self, line: &str, why: &str) {
        if why.is_empty() {
            self.line(format!("  {line}"));
        } else {
            let why = self.paint("2", format!("# {why}"));
            self.line(format!("  {line:<46} {why}"));
        }
    }

    pub(crate) fn table(&self, header: &[&str], rows: &[Vec<String>]) {
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain([header[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let fmt = |cells: Vec<String>| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let head = fmt(header.iter().map(|h| h.to_string()).collect());
        self.line(format!("  {}", self.paint("2", head)));
        for row in rows {
            self.line(format!("  {}", fmt(row.clone())));
        }
    }
}
