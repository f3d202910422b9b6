//! Fault injection: saves killed at random moments, a file-size limit, an address-space limit
//! and a read-only directory. The faults hit a child process (tests/c/fault_test.c), since
//! limits and the user are per process; each test takes a second or two.

#[path = "common/c_program.rs"]
mod c_program;
mod common;
#[path = "common/process.rs"]
mod process;
#[path = "common/setup.rs"]
mod setup;
use c_program::{compile, program, run_program};
use common::Xorshift;
use process::scratch_dir;

use lre::CpuOptimizer;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Kills of a saving child per run, and the most when none of them landed inside a save yet
/// (about half of them do: the rest hit the rename or the folder's fsync).
const KILLS: usize = 6;
const MAX_KILLS: usize = 24;

/// The temporary files beside `dir/run.lre` whose names say `pid` wrote them.
fn temporaries_of(dir: &Path, pid: u32) -> Vec<String> {
    let prefix = format!(".run.lre.tmp-{pid}-");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.strip_prefix(&prefix)
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    names.sort();
    names
}

/// Starts the saving child and waits until it has written both reference states.
fn start_saving(exe: &Path, dir: &Path) -> Child {
    let mut child = program(exe)
        .arg("save-loop")
        .args(["run.lre", "a.lre", "b.lre"].map(|f| dir.join(f)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the saving child");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the child's output");
    assert_eq!(line, "ready\n", "the saving child did not start");
    child
}

fn plant(dir: &Path, name: &str) {
    std::fs::write(dir.join(name), b"partial state").unwrap();
}

#[test]
fn saves_killed_at_random_moments_leave_a_whole_state_and_their_leftovers_are_removed() {
    let dir = scratch_dir("faults-kill");
    let path = dir.join("run.lre");
    let exe = compile("fault_test.c", &[], "kill");
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    println!("seed {seed}");
    let mut rng = Xorshift(seed);
    let mut dead = Vec::new();
    let mut killed_mid_save = 0;
    for round in 0..MAX_KILLS {
        if round >= KILLS && killed_mid_save > 0 {
            break;
        }
        let mut child = start_saving(&exe, &dir);
        let delay = Duration::from_micros((200_000.0 * (rng.uniform() + 0.5)) as u64);
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let pid = child.id();
        let state = std::fs::read(&path).unwrap();
        let (a, b) = (
            std::fs::read(dir.join("a.lre")).unwrap(),
            std::fs::read(dir.join("b.lre")).unwrap(),
        );
        assert_ne!(a, b);
        assert!(
            state == a || state == b,
            "round {round} (seed {seed}): killed after {delay:?}, run.lre ({} bytes) is neither \
             state A ({} bytes) nor state B ({} bytes)",
            state.len(),
            a.len(),
            b.len()
        );
        CpuOptimizer::<f64>::from_state(&state).expect("the file loads");
        killed_mid_save += usize::from(!temporaries_of(&dir, pid).is_empty());
        dead.push(pid);
    }
    println!(
        "{killed_mid_save} of {} kills left a temporary file",
        dead.len()
    );
    assert!(
        killed_mid_save > 0,
        "no kill landed in the middle of a save: the test did not test cleanup"
    );

    // Leftovers of dead writers (planted too, so that each check has one), beside the files
    // that must stay: a live writer's (this process, a sleeping child), another path's, and a
    // name that is not a temporary file.
    let me = std::process::id();
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let keep = [
        format!(".run.lre.tmp-{me}-77"),
        format!(".run.lre.tmp-{}-0", sleeper.id()),
        format!(".other.lre.tmp-{}-0", dead[0]),
        format!(".run.lre.tmp-{}-x", dead[0]),
    ];
    for name in &keep {
        plant(&dir, name);
    }
    let gone_after = |what: &str| {
        for pid in &dead {
            assert_eq!(
                temporaries_of(&dir, *pid),
                Vec::<String>::new(),
                "{what} left the temporary files of dead writer {pid}"
            );
        }
        for name in &keep {
            assert!(dir.join(name).exists(), "{what} removed {name}");
        }
    };

    plant(&dir, &format!(".run.lre.tmp-{}-1", dead[1]));
    let opt = CpuOptimizer::<f64>::from_file(&path).expect("load");
    gone_after("a load");

    plant(&dir, &format!(".run.lre.tmp-{}-2", dead[2]));
    opt.save_file(&path).expect("save");
    gone_after("a save");
    assert_eq!(std::fs::read(&path).unwrap(), opt.state());

    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

#[test]
fn a_save_over_the_file_size_limit_fails_cleanly() {
    let dir = scratch_dir("faults-fsize");
    let exe = compile("fault_test.c", &[], "fsize");
    run_program(&exe, &["file-size", dir.to_str().unwrap()], false);
}

#[test]
fn a_step_that_cannot_grow_the_window_changes_nothing() {
    let exe = compile("fault_test.c", &[], "as");
    run_program(&exe, &["address-space"], false);
}

#[test]
fn a_save_into_a_read_only_directory_fails_cleanly() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch_dir("faults-read-only");
    let exe = compile("fault_test.c", &[], "read-only");
    run_program(&exe, &["read-only", dir.to_str().unwrap()], false);
    // The program made it read-only; make it removable again for the next run.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}
