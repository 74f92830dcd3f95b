//! One module per command group.

pub mod image;
pub mod progress;
pub mod runtime;

/// An error and its causes on one line, each cause once: `context: cause: root cause`. A
/// library error whose message already includes its cause's (many do, for messages that
/// read well alone) would otherwise print it twice.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(text.trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn causes_are_printed_once() {
        let io = std::io::Error::from_raw_os_error(39);
        let lib = anyhow::Error::new(std::io::Error::other(format!("removing /x: {io}")));
        let e = lib.context("unbundling /b");
        assert_eq!(
            super::one_line(&e),
            "unbundling /b: removing /x: Directory not empty (os error 39)"
        );
        #[derive(Debug, thiserror::Error)]
        #[error("removing /x: {0}")]
        struct Both(#[source] std::io::Error);
        let e = anyhow::Error::new(Both(std::io::Error::from_raw_os_error(39))).context("c");
        assert_eq!(
            super::one_line(&e),
            "c: removing /x: Directory not empty (os error 39)"
        );
    }
}
