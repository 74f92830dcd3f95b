//! Names: Docker's rules for container names, and a generated name (`adjective_scientist`)
//! when the client gives none.

use rand::Rng;

const LEFT: &[&str] = &[
    "admiring", "agile", "amazing", "bold", "brave", "busy", "calm", "clever", "cool", "crisp",
    "daring", "eager", "elated", "epic", "fervent", "fond", "gallant", "gentle", "happy",
    "hopeful", "jolly", "keen", "kind", "lucid", "merry", "modest", "nifty", "noble", "patient",
    "quick", "quiet", "relaxed", "serene", "sharp", "steady", "sweet", "tender", "upbeat",
    "vibrant", "wise", "witty", "zealous",
];

const RIGHT: &[&str] = &[
    "agnesi",
    "babbage",
    "bohr",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euler",
    "faraday",
    "fermi",
    "feynman",
    "galileo",
    "gauss",
    "goodall",
    "hamilton",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamarr",
    "lovelace",
    "maxwell",
    "meitner",
    "mirzakhani",
    "newton",
    "noether",
    "pascal",
    "planck",
    "ritchie",
    "shannon",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
    "yalow",
];

/// A random `adjective_name`.
pub fn generate() -> String {
    let mut r = rand::rng();
    format!(
        "{}_{}",
        LEFT[r.random_range(0..LEFT.len())],
        RIGHT[r.random_range(0..RIGHT.len())]
    )
}

/// Is `name` (without its leading `/`) a valid container name: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`?
pub fn valid(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// A new container ID: 64 random hex digits, not all digits (Docker avoids IDs a short form
/// of which reads as a number).
pub fn new_id() -> String {
    let mut r = rand::rng();
    loop {
        let bytes: [u8; 32] = r.random();
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if !id[..12].bytes().all(|c| c.is_ascii_digit()) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert!(super::valid("web_1"));
        assert!(super::valid("a.b-c"));
        assert!(!super::valid("a"));
        assert!(!super::valid("_a"));
        assert!(!super::valid("a/b"));
        assert!(!super::valid("a b"));
        assert!(super::valid(&super::generate()));
        assert_eq!(super::new_id().len(), 64);
    }
}
