//! Named points where the crash tests stop the agent. When `KENKO_TEST_CRASHPOINT` names a
//! point, the agent announces it on stderr and waits there forever, so the test can `kill -9`
//! the real process at exactly that step. Unset (always, in production) it costs one load.

use std::io::Write;
use std::sync::OnceLock;

static TARGET: OnceLock<Option<String>> = OnceLock::new();

/// Stops here if the crash tests asked for this point.
#[allow(
    clippy::disallowed_methods,
    reason = "a test hook, not a setting: read here so no configuration can name it"
)]
pub fn hit(name: &str) {
    let target = TARGET.get_or_init(|| std::env::var("KENKO_TEST_CRASHPOINT").ok());
    if target.as_deref() == Some(name) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "kenko-crashpoint: {name}");
        let _ = err.flush();
        loop {
            std::thread::park();
        }
    }
}

static PAUSE: OnceLock<Option<String>> = OnceLock::new();

/// Waits here, when the tests asked for this point with `KENKO_TEST_PAUSE`, until a line
/// arrives on stdin: the test changes the world at exactly this step (appends to the file
/// being taken, swaps it for a link) and lets the agent go on. Announced on stderr as
/// `kenko-pause: NAME`.
#[allow(
    clippy::disallowed_methods,
    reason = "a test hook, not a setting: read here so no configuration can name it"
)]
pub fn pause(name: &str) {
    let target = PAUSE.get_or_init(|| std::env::var("KENKO_TEST_PAUSE").ok());
    if target.as_deref() == Some(name) {
        {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "kenko-pause: {name}");
            let _ = err.flush();
        }
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
}
