//! OOM kills, as the memory cgroup counts them (`oom_kill N` in memory.events on v2,
//! memory.oom_control on v1).

use std::path::Path;

/// The count in `file`.
pub fn read_kills(file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(file).ok()?;
    parse(&text)
}

fn parse(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts() {
        assert_eq!(
            super::parse("oom_kill_disable 0\nunder_oom 0\noom_kill 4\n"),
            Some(4)
        );
        assert_eq!(
            super::parse("low 0\nhigh 0\nmax 1\noom 1\noom_kill 1\noom_group_kill 0\n"),
            Some(1)
        );
        assert_eq!(super::parse("oom 1\n"), None);
    }
}
