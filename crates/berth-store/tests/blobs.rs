//! The blob store on a real directory: verified, crash-safe writes.

use std::io::Read;

use berth_store::{BlobStore, Digest, Error};

#[test]
fn digests_parse_and_print() {
    let d = Digest::of(b"hello");
    assert_eq!(
        d.to_string(),
        "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
    for bad in [
        "",
        "sha256:",
        "md5:abc",
        "sha256:XYZ",
        &format!("sha256:{}", "A".repeat(64)),
        "sha256:../../etc/passwd",
    ] {
        assert!(
            matches!(Digest::parse(bad), Err(Error::InvalidDigest(_))),
            "{bad}"
        );
    }
}

#[test]
fn put_verifies_and_stores_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = BlobStore::open(dir.path()).unwrap();
    let data = vec![42u8; 1_000_000];
    let d = Digest::of(&data);
    assert_eq!(
        s.put(&d, Some(data.len() as u64), &data[..]).unwrap(),
        1_000_000
    );
    let mut back = Vec::new();
    s.open_blob(&d).unwrap().read_to_end(&mut back).unwrap();
    assert_eq!(back, data);
    // Present already: not read again (an erroring reader proves it).
    struct Fails;
    impl Read for Fails {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("must not be read"))
        }
    }
    s.put(&d, None, Fails).unwrap();
    assert_eq!(s.list().unwrap(), vec![d.clone()]);
    s.remove(&d).unwrap();
    assert!(matches!(s.open_blob(&d), Err(Error::NotFound(_))));
}

#[test]
fn wrong_digest_wrong_size_and_failing_reads_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = BlobStore::open(dir.path()).unwrap();
    let d = Digest::of(b"the real content");
    let err = s.put(&d, None, &b"other content"[..]).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    let err = s.put(&d, Some(100), &b"the real content"[..]).unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
    let err = s.put(&d, Some(3), &b"the real content"[..]).unwrap_err();
    assert!(
        matches!(err, Error::SizeMismatch { expected: 3, .. }),
        "{err}"
    );
    let truncated = b"the real content".chain(FailingTail);
    assert!(s.put(&d, None, truncated).is_err());
    assert!(s.list().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(dir.path().join("ingest"))
            .unwrap()
            .count(),
        0,
        "no temporary left"
    );
    // The retry with the right content succeeds.
    s.put(&d, Some(16), &b"the real content"[..]).unwrap();
    assert!(s.contains(&d));
}

struct FailingTail;
impl Read for FailingTail {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset",
        ))
    }
}

#[test]
fn interrupted_writes_are_dropped_when_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    BlobStore::open(dir.path()).unwrap();
    std::fs::write(dir.path().join("ingest/123-0"), b"half a blob").unwrap();
    let s = BlobStore::open(dir.path()).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("ingest"))
            .unwrap()
            .count(),
        0
    );
    assert!(s.list().unwrap().is_empty());
}
