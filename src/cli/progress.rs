//! Progress bars for long steps: drawn on stderr only when it is a
//! terminal, so logs, pipes and CI output stay exactly the messages.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// A bar for `what`, hidden unless stderr is a terminal. The caller sets
/// its length and position.
pub(super) fn bar(what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    pb.set_style(ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}").expect("a valid template").progress_chars("=> "));
    pb.set_message(what.to_string());
    pb
}
