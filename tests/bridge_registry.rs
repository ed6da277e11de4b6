//! The device registry's rules, on both stores, and the persistent store's durability: a
//! restart keeps everything, and a process killed (SIGKILL) mid-write leaves a consistent file.
#![cfg(feature = "bridge")]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use herald::bridge::{Device, DeviceRegistry, Environment, Replaced};

const TOPIC: &str = "com.example.app";

fn dev(subject: &str, token: &str) -> Device {
    Device::new(subject, token, TOPIC, Environment::Sandbox)
}

fn tokens(r: &DeviceRegistry, subject: &str) -> Vec<String> {
    r.devices(subject)
        .unwrap()
        .into_iter()
        .map(|d| d.token)
        .collect()
}

fn both(test: impl Fn(DeviceRegistry)) {
    test(DeviceRegistry::in_memory());
    let dir = tempfile::tempdir().unwrap();
    test(DeviceRegistry::open(dir.path().join("r.redb")).unwrap());
}

#[test]
fn register_lists_by_subject_with_topic_and_environment() {
    both(|r| {
        r.register(dev("alice", "aa01")).unwrap();
        r.register(Device::new(
            "alice",
            "aa02",
            "com.example.watch",
            Environment::Production,
        ))
        .unwrap();
        r.register(dev("bob", "bb01")).unwrap();
        let alice = r.devices("alice").unwrap();
        assert_eq!(alice.len(), 2);
        assert_eq!(alice[1].topic, "com.example.watch");
        assert_eq!(alice[1].environment, Environment::Production);
        assert_eq!(tokens(&r, "bob"), ["bb01"]);
        assert_eq!(r.len().unwrap(), 3);
    });
}

#[test]
fn replace_swaps_old_for_new_in_one_step() {
    both(|r| {
        r.register(dev("alice", "aa01")).unwrap();
        assert_eq!(
            r.replace("aa01", dev("alice", "aa02")).unwrap(),
            Replaced::Replaced
        );
        assert_eq!(tokens(&r, "alice"), ["aa02"]);
        assert!(r.device("aa01").unwrap().is_none());
        // Unknown old token: the new one is registered.
        assert_eq!(
            r.replace("ffff", dev("alice", "aa03")).unwrap(),
            Replaced::Registered
        );
        assert_eq!(tokens(&r, "alice"), ["aa02", "aa03"]);
    });
}

#[test]
fn another_subjects_token_is_never_touched() {
    both(|r| {
        r.register(dev("bob", "bb01")).unwrap();
        r.register(dev("mallory", "ee01")).unwrap();
        let before = r.all().unwrap();
        assert!(
            r.register(dev("mallory", "bb01"))
                .unwrap_err()
                .is_not_owner()
        );
        assert!(
            r.replace("bb01", dev("mallory", "ee02"))
                .unwrap_err()
                .is_not_owner()
        );
        assert!(
            r.replace("ee01", dev("mallory", "bb01"))
                .unwrap_err()
                .is_not_owner()
        );
        assert!(r.remove("mallory", "bb01").unwrap_err().is_not_owner());
        assert_eq!(r.all().unwrap(), before);
    });
}

#[test]
fn invalidation_respects_reregistration_after_the_timestamp() {
    both(|r| {
        let before = SystemTime::now() - Duration::from_secs(60);
        r.register(dev("alice", "aa01")).unwrap();
        assert!(!r.invalidate("aa01", before).unwrap());
        assert_eq!(tokens(&r, "alice"), ["aa01"]);
        assert!(r.invalidate("aa01", SystemTime::now()).unwrap());
        assert!(tokens(&r, "alice").is_empty());
        assert!(!r.invalidate("aa01", SystemTime::now()).unwrap());
    });
}

#[test]
fn registry_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.redb");
    let expected = {
        let r = DeviceRegistry::open(&path).unwrap();
        for i in 0..50u32 {
            r.register(dev(&format!("user{}", i % 7), &format!("{i:08x}")))
                .unwrap();
        }
        r.replace("00000001", dev("user1", "ffff0001")).unwrap();
        r.remove("user2", "00000002").unwrap();
        r.all().unwrap()
    };
    let r = DeviceRegistry::open(&path).unwrap();
    assert_eq!(r.all().unwrap(), expected);
    assert_eq!(r.len().unwrap(), 49);
    assert!(tokens(&r, "user1").contains(&"ffff0001".to_owned()));
}

/// Checks the invariants a crash must not break: the subject index matches the devices,
/// `alice` (replaced in a chain of one-step replacements) has exactly one token, and `bob`'s
/// tokens (one commit each, in order) are a contiguous prefix.
fn assert_consistent(path: &Path) -> (usize, usize) {
    let r = DeviceRegistry::open(path).unwrap();
    let all = r.all().unwrap();
    let subjects: BTreeSet<_> = all.iter().map(|d| d.subject.clone()).collect();
    let indexed: usize = subjects.iter().map(|s| r.devices(s).unwrap().len()).sum();
    assert_eq!(indexed, all.len(), "subject index out of step with devices");
    let alice = tokens(&r, "alice");
    assert!(
        alice.len() <= 1,
        "a replacement was half-applied: {alice:?}"
    );
    let bob = tokens(&r, "bob");
    for (i, t) in bob.iter().enumerate() {
        assert_eq!(
            *t,
            format!("b0{i:06x}"),
            "bob's registrations are not a prefix"
        );
    }
    let chain = alice
        .first()
        .map_or(0, |t| usize::from_str_radix(&t[2..], 16).unwrap());
    (chain, bob.len())
}

/// The child's side of `registry_survives_kill_9_mid_write`: writes until killed, printing a
/// line after each pair of commits so the parent can kill it mid-write after real progress.
fn write_until_killed(path: &Path) -> ! {
    use std::io::Write;
    let (mut chain, bob) = assert_consistent(path);
    let mut bob = bob as u64;
    let r = DeviceRegistry::open(path).unwrap();
    if chain == 0 {
        r.register(dev("alice", "a0000000")).unwrap();
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").unwrap();
    let mut written = 0u64;
    loop {
        let (old, new) = (format!("a0{chain:06x}"), format!("a0{:06x}", chain + 1));
        r.replace(&old, dev("alice", &new)).unwrap();
        chain += 1;
        r.register(dev("bob", &format!("b0{bob:06x}"))).unwrap();
        bob += 1;
        written += 1;
        // The parent stops reading once it has seen enough; a full pipe then blocks us here,
        // between commits, which is fine: SIGKILL lands wherever we are.
        let _ = writeln!(out, "wrote {written}");
        let _ = out.flush();
    }
}

#[test]
fn registry_survives_kill_9_mid_write() {
    // Re-invoked as the child (see below): write until killed.
    if let Some(path) = std::env::var_os("HERALD_CRASH_CHILD") {
        write_until_killed(Path::new(&path));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let exe = std::env::current_exe().unwrap();
    let mut last = (0, 0);
    for round in 0..5u64 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "registry_survives_kill_9_mid_write",
                "--nocapture",
            ])
            .env("HERALD_CRASH_CHILD", &path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Wait until it has committed a few pairs (more each round, so the kill lands at
        // different points), give it a moment more, then SIGKILL it mid-write. Progress is read
        // from the child, not assumed from the clock: a loaded machine only makes this slower.
        let want = 3 + 2 * round;
        let mut lines =
            std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        loop {
            let line = lines.next().expect("child exited before writing").unwrap();
            if let Some(n) = line.strip_prefix("wrote ")
                && n.parse::<u64>().unwrap() >= want
            {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(7 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let now = assert_consistent(&path);
        eprintln!(
            "killed writer {round}: {} replacements, {} registrations intact",
            now.0, now.1
        );
        assert!(
            now.0 > last.0 && now.1 > last.1,
            "no progress: {now:?} after {last:?}"
        );
        last = now;
    }
}

/// The store conformance suite (the one a NATS or SQL store runs too), on both stores.
#[cfg(feature = "testkit")]
mod conformance {
    use herald::bridge::conformance::{Scale, check_store, check_store_with};
    use herald::bridge::{MemoryStore, RedbStore};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn memory_store_conforms() {
        check_store(MemoryStore::new);
    }

    #[test]
    fn memory_store_conforms_under_heavy_contention() {
        check_store_with(
            MemoryStore::new,
            Scale {
                threads: 16,
                per_thread: 60,
                registries: 8,
            },
        );
    }

    #[test]
    fn redb_store_conforms() {
        let dir = tempfile::tempdir().unwrap();
        let n = AtomicUsize::new(0);
        // Every write is a durable commit (fsync): a smaller scale keeps this quick.
        check_store_with(
            || {
                let i = n.fetch_add(1, Ordering::Relaxed);
                RedbStore::open(dir.path().join(format!("{i}.redb"))).unwrap()
            },
            Scale {
                threads: 4,
                per_thread: 12,
                registries: 2,
            },
        );
    }
}

/// Several registries over one store, as processes sharing one: replace and register race on
/// one subject and on one token without losing or doubling anything.
#[test]
fn registries_sharing_a_store_agree() {
    use std::sync::Arc;
    let store = Arc::new(herald::bridge::MemoryStore::new());
    let a = DeviceRegistry::with_store(store.clone());
    let b = DeviceRegistry::with_store(store);
    a.register(dev("alice", "aa01")).unwrap();
    assert_eq!(tokens(&b, "alice"), ["aa01"]);
    assert!(
        b.register(dev("mallory", "aa01"))
            .unwrap_err()
            .is_not_owner()
    );
    b.replace("aa01", dev("alice", "aa02")).unwrap();
    assert_eq!(tokens(&a, "alice"), ["aa02"]);
    // The released token is free for another subject through either handle.
    a.register(dev("bob", "aa01")).unwrap();
    assert_eq!(b.device("aa01").unwrap().unwrap().subject, "bob");
}
