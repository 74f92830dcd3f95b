//! A full disk: a tiny tmpfs mounted in a private mount namespace (root only; skipped
//! otherwise). The writer returns errors and goes on once there is room; the files hold
//! whole entries only; readers (one following all along) read every entry that was
//! written, once.

mod common;

use berth_logs::{Entry, ReadOptions, Stream, read};
use common::*;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use std::io;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `f` on a thread of its own, in a mount namespace of its own, with a tmpfs of
/// `size` on a fresh directory. The mount goes with the namespace when the thread ends.
fn in_small_tmpfs(size: &'static str, f: impl FnOnce(&Path) + Send + 'static) {
    std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNS).unwrap();
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let opts = format!("size={size},mode=0700");
        mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            MsFlags::empty(),
            Some(opts.as_str()),
        )
        .unwrap();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(dir.path())));
        umount2(dir.path(), MntFlags::MNT_DETACH).unwrap();
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    })
    .join()
    .unwrap();
}

fn line(i: usize) -> String {
    format!("entry {i:06} {}\n", "x".repeat(i % 50))
}

/// Writes entries `range` one per call; the numbers of those that were written.
fn write_range(
    w: &mut berth_logs::Writer,
    range: std::ops::Range<usize>,
    errors: &mut usize,
) -> Vec<usize> {
    let mut ok = Vec::new();
    for i in range {
        match w.write(Stream::Stdout, line(i).as_bytes()) {
            Ok(()) => ok.push(i),
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
                *errors += 1;
            }
        }
    }
    ok
}

fn numbers(entries: &[Entry]) -> Vec<usize> {
    texts(entries)
        .iter()
        .map(|s| s[6..12].parse().unwrap())
        .collect()
}

#[test]
fn a_full_disk_then_room_again() {
    if !root_or_skip("a_full_disk_then_room_again") {
        return;
    }
    in_small_tmpfs("64k", |dir| {
        let path = dir.join("c-json.log");
        let mut w = writer(&path, 0, 1);
        // A follower all along: it must see every written entry once, although pieces of
        // entries come and go under it.
        let stop = Arc::new(AtomicBool::new(false));
        let follower = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let opts = ReadOptions {
                    follow: true,
                    ..Default::default()
                };
                read(
                    &path,
                    1,
                    &opts,
                    &mut |e| {
                        got.push(e);
                        ControlFlow::Continue(())
                    },
                    &|| stop.load(Ordering::SeqCst),
                )
                .map(|()| got)
            })
        };
        let mut errors = 0;
        let mut ok = write_range(&mut w, 0..2000, &mut errors);
        assert!(
            ok.len() > 300 && errors > 500,
            "{} written, {errors} failed",
            ok.len()
        );
        // Whole entries only, each one written.
        let lines = raw_lines(&path);
        assert_eq!(lines.len(), ok.len());
        assert_eq!(numbers(&read_all(&path, 1)), ok);
        // A partial line waiting in the writer survives the failures too.
        let _ = w.write(Stream::Stderr, b"partial ");
        // Room again: the writer goes on by itself.
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_REMOUNT,
            Some("size=4m,mode=0700"),
        )
        .unwrap();
        let mut more_errors = 0;
        let more = write_range(&mut w, 2000..2500, &mut more_errors);
        assert_eq!(more_errors, 0);
        assert_eq!(more.len(), 500);
        ok.extend(more);
        w.write(Stream::Stderr, b"line\n").unwrap();
        let all = read_all(&path, 1);
        assert_eq!(numbers(&all[..all.len() - 1]), ok);
        assert_eq!(all[all.len() - 1].line, b"partial line\n");
        assert_eq!(raw_lines(&path).len(), ok.len() + 1);
        stop.store(true, Ordering::SeqCst);
        let followed = follower.join().unwrap().unwrap();
        assert_eq!(followed, all);
    });
}

#[test]
fn a_full_disk_with_rotation() {
    if !root_or_skip("a_full_disk_with_rotation") {
        return;
    }
    in_small_tmpfs("64k", |dir| {
        // Something else takes most of the room; the log's three 8 KiB files do not fit.
        let filler = dir.join("filler");
        std::fs::write(&filler, vec![0u8; 44 * 1024]).unwrap();
        let logs = dir.join("logs");
        std::fs::create_dir(&logs).unwrap();
        let path = logs.join("c-json.log");
        let mut w = writer(&path, 8 * 1024, 3);
        let mut errors = 0;
        let mut ok = write_range(&mut w, 0..3000, &mut errors);
        assert!(
            errors > 0 && ok.len() > 100,
            "{} written, {errors} failed",
            ok.len()
        );
        check(&path, &ok);
        std::fs::remove_file(&filler).unwrap();
        let mut more_errors = 0;
        let more = write_range(&mut w, 3000..3500, &mut more_errors);
        assert_eq!(more_errors, 0);
        ok.extend(more);
        check(&path, &ok);
        assert_eq!(names(&logs), ["c-json.log", "c-json.log.1", "c-json.log.2"]);
    });
}

/// The files hold whole entries only, and what they hold is every written entry from the
/// first one kept to the last (rotation removes whole files only).
fn check(path: &Path, ok: &[usize]) {
    let mut lines = 0;
    for f in files(path, 3) {
        lines += raw_lines(&f).len();
    }
    let got = numbers(&read_all(path, 3));
    assert_eq!(got.len(), lines, "every line is an entry");
    let first = ok
        .iter()
        .position(|&i| i == got[0])
        .expect("only written entries");
    assert_eq!(got, ok[first..]);
}

#[test]
fn no_room_to_open_is_an_error_then_recovers() {
    if !root_or_skip("no_room_to_open_is_an_error_then_recovers") {
        return;
    }
    // No inode left for the new file of a rotation: the write fails, the entry is
    // dropped, the next write after room is made goes to a new file.
    in_small_tmpfs("1m,nr_inodes=3", |dir| {
        let path = dir.join("c-json.log");
        let extra = dir.join("extra");
        let mut w = writer(&path, 200, 2);
        w.write(Stream::Stdout, b"one\n").unwrap();
        w.write(Stream::Stdout, b"two\n").unwrap();
        // The root directory, the log and this: no inode left.
        std::fs::write(&extra, b"").unwrap();
        let e = loop {
            // Rotates after about two entries: the new file cannot be made.
            match w.write(Stream::Stdout, b"three and more\n") {
                Ok(()) => continue,
                Err(e) => break e,
            }
        };
        assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
        assert!(e.to_string().contains("c-json.log"), "{e}");
        assert!(w.write(Stream::Stdout, b"still full\n").is_err());
        std::fs::remove_file(&extra).unwrap();
        w.write(Stream::Stdout, b"room again\n").unwrap();
        let all = texts(&read_all(&path, 2));
        assert_eq!(all.last().map(String::as_str), Some("room again\n"));
        assert!(!all.iter().any(|l| l == "still full\n"));
    });
}
