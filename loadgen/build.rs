//! Records the git revision this build comes from as `SLS_GIT_REVISION` (read by `meta.rs`
//! with `option_env!`): `SLS_GIT_REVISION` from the environment when a packager sets it, else
//! `git rev-parse --short=12 HEAD`, else nothing (a tarball without `.git`: "unknown").

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-env-changed=SLS_GIT_REVISION");
    if let Ok(r) = std::env::var("SLS_GIT_REVISION") {
        println!("cargo:rustc-env=SLS_GIT_REVISION={r}");
        return;
    }
    // Rebuilt when HEAD moves (a commit, a checkout), not on every build.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        for f in ["HEAD", "logs/HEAD"] {
            let p = std::path::Path::new(&dir).join(f);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
    if let Some(rev) = git(&["rev-parse", "--short=12", "HEAD"]) {
        println!("cargo:rustc-env=SLS_GIT_REVISION={rev}");
    }
}
