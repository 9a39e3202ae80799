//! The RBAC proof by a real authorizer (real-cluster mode only, `RETENTION_E2E_KUBECONFIG`,
//! with the API server's audit log): the chart is installed with helm, and the operator binary
//! runs as a separate process authenticated as the chart's ServiceAccount (a token from the
//! TokenRequest API), bound by nothing but the chart's ClusterRole, Roles and bindings.
//!
//! 1. A full lifecycle — lease, termination, stamps, status, events, erasure, the processor's
//!    signing Secret and webhook, backup expiry, bookkeeping, the finalizer — with zero 403s:
//!    none in the audit log for the ServiceAccount, none in the operator's log, none counted in
//!    its metrics.
//! 2. For each rule of each rendered role, a run with that rule removed: the audit log shows a
//!    403 for a call the rule grants (the rule is needed), and which call it was.
//!
//! The audit log is `RETENTION_E2E_AUDIT_LOG`, or `audit.log` beside the kubeconfig (where
//! `.ci/control-plane` writes it).

mod e2e_support;
mod receiver;
mod tools;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use chrono::Utc;
use k8s_openapi::api::{
    authentication::v1::{TokenRequest, TokenRequestSpec},
    coordination::v1::Lease,
    core::v1::{Secret, ServiceAccount},
    rbac::v1::{ClusterRole, PolicyRule, Role},
};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    config::Kubeconfig,
};
use retention_operator::api::{
    Account, AccountPhase, NotificationState, RetentionPolicy, SecretKeyRef, Website,
};
use serde_json::json;

use e2e_support::request_log::{audit_log, read_audit};
use e2e_support::{
    AccountExt, Cluster, DataProcessorExt, HostedExt, KUBECONFIG_ENV, bookkeeping_record, create,
    create_cluster, data_record, database, default_policy, domain, eventually, eventually_within,
    mailbox, processor, real_cluster, website, website_backup,
};
use receiver::{Receiver, Reply, loopback_pki};
use tools::{RELEASE, RELEASE_NAMESPACE};

/// The chart's ServiceAccount as the authorizer names it.
const OPERATOR_USER: &str = "system:serviceaccount:retention-system:retention-operator";
/// The policy of these runs: everything due within seconds, by the system clock the operator
/// process reads.
const POLICY: &str = "rbac-fast";

/// One request of the operator's ServiceAccount in the audit log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Call {
    verb: String,
    group: String,
    resource: String,
    subresource: String,
    name: String,
    code: u16,
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        let sub = if self.subresource.is_empty() {
            String::new()
        } else {
            format!("/{}", self.subresource)
        };
        write!(f, "{} {group} {}{sub}", self.verb, self.resource)?;
        if !self.name.is_empty() {
            write!(f, " {}", self.name)?;
        }
        write!(f, " → {}", self.code)
    }
}

/// The audit log from a byte offset on.
struct AuditReader {
    path: PathBuf,
    offset: u64,
}

impl AuditReader {
    /// Reads from the end of the log as it is now.
    fn at_end(path: &Path) -> Self {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        Self {
            path: path.to_owned(),
            offset,
        }
    }

    /// The ServiceAccount's calls logged since the last read (complete lines only).
    fn read(&mut self) -> Vec<Call> {
        let (entries, offset) = read_audit(&self.path, self.offset);
        self.offset = offset;
        entries
            .into_iter()
            .filter(|entry| entry.user == OPERATOR_USER)
            .map(|entry| Call {
                verb: entry.request.verb,
                group: entry.request.group,
                resource: entry.request.resource,
                subresource: entry.request.subresource,
                name: entry.request.name,
                code: entry.request.code,
            })
            .collect()
    }
}

/// Installs the chart (default values), replacing a release an interrupted run left.
fn helm_install() {
    let kubeconfig = real_cluster().expect("real-cluster mode");
    tools::helm_uninstall(kubeconfig, true);
    tools::helm_release("install", kubeconfig, &["--create-namespace"]);
}

/// A kubeconfig for the chart's ServiceAccount: the admin kubeconfig's cluster, and a token
/// from the TokenRequest API.
async fn service_account_kubeconfig(client: &Client, dir: &Path) -> PathBuf {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        },
        ..Default::default()
    };
    let token = Api::<ServiceAccount>::namespaced(client.clone(), RELEASE_NAMESPACE)
        .create_token_request(RELEASE, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let admin = Kubeconfig::read_from(real_cluster().unwrap()).unwrap();
    let cluster = admin.clusters[0].cluster.clone().unwrap();
    let ca = cluster
        .certificate_authority_data
        .expect("the kubeconfig carries its CA (certificate-authority-data)");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: operator\n  user:\n    token: \
         {token}\ncontexts:\n- name: operator\n  context:\n    cluster: c\n    user: \
         operator\ncurrent-context: operator\n",
        cluster.server.unwrap()
    );
    let path = dir.join("operator.kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

/// The operator binary, running as the ServiceAccount; killed when dropped.
struct Operator {
    child: std::process::Child,
    log: PathBuf,
    metrics_port: u16,
}

impl Operator {
    fn start(kubeconfig: &Path, dir: &Path, name: &str) -> Self {
        let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join(format!("{name}.log"));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_retention-operator"))
            .args([
                "run",
                // The paged fallback for an API server without streaming lists needs list
                // as well as watch: every rule of the chart is then exercised.
                "--initial-lists=paged",
                &format!("--http-addr=127.0.0.1:{metrics_port}"),
                "--advance-notice=0s",
                "--webhook-allow-cidr=127.0.0.0/8",
            ])
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", RELEASE_NAMESPACE)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            log,
            metrics_port,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn metrics(&self) -> Option<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.metrics_port))
            .await
            .ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        (response.split_whitespace().nth(1) == Some("200")).then_some(response)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The objects of one run, named `*-{run}`: a terminated account with one object of every
/// kind, a Website bound to no account, a processor with a webhook (its signing key in the release namespace, where the
/// chart lets the operator read Secrets), a backup that expires and invoices whose
/// bookkeeping period has ended.
async fn scenario(client: &Client, run: &str, receiver: &Receiver, ca_pem: &[u8]) -> String {
    let account = format!("acme-{run}");
    let crm = format!("crm-{run}");
    let secret_name = format!("{crm}-hmac");
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(secret_name.clone()),
            ..Default::default()
        },
        string_data: Some([("secret".to_owned(), "rbac-proof".to_owned())].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(client.clone(), RELEASE_NAMESPACE)
        .patch(
            &secret_name,
            &PatchParams::apply("e2e-test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .unwrap();
    let mut crm_processor = processor(&crm)
        .webhook(receiver.url().as_str())
        .ca_bundle(ca_pem);
    if let Some(webhook) = crm_processor.spec.erasure.webhook.as_mut() {
        webhook.secret_ref = SecretKeyRef {
            namespace: RELEASE_NAMESPACE.into(),
            name: secret_name,
            key: "secret".into(),
        };
    }
    create_cluster(client, &crm_processor).await;

    let now = Utc::now();
    let terminated = e2e_support::account(&account)
        .policy_ref(POLICY)
        .terminated_at(now);
    create_cluster(client, &terminated).await;
    create(client, &website(&format!("www-{run}"), &account)).await;
    create(client, &mailbox(&format!("info-{run}"), &account)).await;
    create(client, &database(&format!("db-{run}"), &account)).await;
    // Bound to no Account: reported on its own status (Bound=False), never deleted.
    create(
        client,
        &website(&format!("orphan-{run}"), &format!("nobody-{run}")),
    )
    .await;
    create(client, &domain(&format!("dom-{run}"), &account)).await;
    create(
        client,
        &data_record(&format!("crm-{run}"), &account).processor(&crm),
    )
    .await;
    create(
        client,
        &bookkeeping_record(&format!("invoices-{run}"), &account, "2018-12-31"),
    )
    .await;
    create(
        client,
        &website_backup(
            &format!("www-{run}-backup"),
            &account,
            &format!("www-{run}"),
            now - chrono::TimeDelta::hours(1),
        ),
    )
    .await;
    account
}

async fn install_policy(client: &Client) {
    let mut policy = default_policy();
    policy.metadata.name = Some(POLICY.into());
    policy.spec.grace_period = "5s".parse().unwrap();
    policy.spec.grace_periods.mailbox = Some("5s".parse().unwrap());
    policy.spec.backups.after_termination = Some("5s".parse().unwrap());
    Api::<RetentionPolicy>::all(client.clone())
        .patch(
            POLICY,
            &PatchParams::apply("e2e-test").force(),
            &Patch::Apply(&policy),
        )
        .await
        .unwrap();
}

/// Forgets the Lease, so that the next operator must create it.
async fn delete_lease(client: &Client) {
    match Api::<Lease>::namespaced(client.clone(), RELEASE_NAMESPACE)
        .delete(RELEASE, &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => panic!("deleting the Lease: {e}"),
    }
}

/// A role of the chart, as installed: where it is and its rules.
#[derive(Clone, Debug)]
enum Granting {
    ClusterRole(String),
    Role(String),
}

impl Granting {
    async fn rules(&self, client: &Client) -> Vec<PolicyRule> {
        match self {
            Self::ClusterRole(name) => Api::<ClusterRole>::all(client.clone())
                .get(name)
                .await
                .unwrap()
                .rules
                .unwrap_or_default(),
            Self::Role(name) => Api::<Role>::namespaced(client.clone(), RELEASE_NAMESPACE)
                .get(name)
                .await
                .unwrap()
                .rules
                .unwrap_or_default(),
        }
    }

    async fn set_rules(&self, client: &Client, rules: &[PolicyRule]) {
        // A merge patch replaces the whole list.
        let patch = Patch::Merge(json!({ "rules": rules }));
        match self {
            Self::ClusterRole(name) => {
                Api::<ClusterRole>::all(client.clone())
                    .patch(name, &PatchParams::default(), &patch)
                    .await
                    .unwrap();
            }
            Self::Role(name) => {
                Api::<Role>::namespaced(client.clone(), RELEASE_NAMESPACE)
                    .patch(name, &PatchParams::default(), &patch)
                    .await
                    .unwrap();
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Self::ClusterRole(name) => format!("ClusterRole {name}"),
            Self::Role(name) => format!("Role {RELEASE_NAMESPACE}/{name}"),
        }
    }
}

/// Whether `rule` grants `call` (verb, group and resource or resource/subresource; names when
/// the rule lists them).
fn grants(rule: &PolicyRule, call: &Call) -> bool {
    let resource = if call.subresource.is_empty() {
        call.resource.clone()
    } else {
        format!("{}/{}", call.resource, call.subresource)
    };
    let listed = |list: &Option<Vec<String>>, value: &str| {
        list.as_ref()
            .is_some_and(|l| l.iter().any(|v| v == value || v == "*"))
    };
    rule.verbs.iter().any(|v| v == &call.verb || v == "*")
        && listed(&rule.api_groups, &call.group)
        && listed(&rule.resources, &resource)
        && rule
            .resource_names
            .as_ref()
            .is_none_or(|names| names.is_empty() || names.contains(&call.name))
}

fn describe(rule: &PolicyRule) -> String {
    format!(
        "{:?} {:?} {:?}{}",
        rule.api_groups.clone().unwrap_or_default(),
        rule.resources.clone().unwrap_or_default(),
        rule.verbs,
        rule.resource_names
            .as_ref()
            .map(|n| format!(" names {n:?}"))
            .unwrap_or_default()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_rbac_grants_every_call_of_a_lifecycle_and_each_rule_is_needed() {
    if real_cluster().is_none() {
        eprintln!(
            "skipped: needs a real API server with its RBAC authorizer and audit log \
             ({KUBECONFIG_ENV}); the test API server authorizes every request (tests/rbac.rs \
             proves the rules against its request log instead)"
        );
        return;
    }
    let Some(audit) = audit_log() else {
        panic!(
            "{KUBECONFIG_ENV} is set but no audit log was found: set RETENTION_E2E_AUDIT_LOG \
             or put audit.log beside the kubeconfig (.ci/control-plane does)"
        );
    };
    let cluster = Cluster::connect().await;
    let client = cluster.client.clone();
    helm_install();
    install_policy(&client).await;
    delete_lease(&client).await;
    let dir = std::env::temp_dir().join(format!("retention-e2e-rbac-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = service_account_kubeconfig(&client, &dir).await;
    let pki = loopback_pki();
    let receiver = Receiver::start(&pki, Reply::Status(200)).await;

    // 1. The whole lifecycle with the chart's RBAC: no 403.
    let mut reader = AuditReader::at_end(&audit);
    let operator = Operator::start(&kubeconfig, &dir, "rbac-full");
    let account = scenario(&client, "full", &receiver, &pki.ca_pem).await;
    let accounts: Api<Account> = Api::all(client.clone());
    eventually(
        "the erasure request acknowledged and the account Erased",
        || async {
            let status = accounts.get_opt(&account).await.ok()??.status?;
            (status.phase == Some(AccountPhase::Erased)
                && status
                    .processors
                    .iter()
                    .any(|p| p.state == NotificationState::Acknowledged))
            .then_some(())
        },
    )
    .await;
    assert!(
        Api::<Website>::namespaced(client.clone(), e2e_support::NAMESPACE)
            .get_opt("www-full")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !receiver.received().is_empty(),
        "no erasure request arrived"
    );
    accounts
        .delete(&account, &DeleteParams::default())
        .await
        .unwrap();
    eventually("the Account released by its finalizer", || async {
        matches!(accounts.get_opt(&account).await, Ok(None)).then_some(())
    })
    .await;
    let lease = Api::<Lease>::namespaced(client.clone(), RELEASE_NAMESPACE)
        .get(RELEASE)
        .await
        .unwrap();
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("rbac-full")
    );
    let metrics = eventually("the operator's metrics", || operator.metrics()).await;
    // Every request is in the audit log once it completes; the last ones may still be on the
    // way, so read until the log has the finalizer's patch.
    let mut calls: Vec<Call> = Vec::new();
    eventually_within(
        "the audit log to show the finalizer's removal",
        Duration::from_secs(30),
        || {
            calls.extend(reader.read());
            let done = calls
                .iter()
                .any(|c| c.resource == "accounts" && c.verb == "patch" && c.name == account);
            async move { done.then_some(()) }
        },
    )
    .await;
    let log = operator.log();
    drop(operator);
    let forbidden: Vec<&Call> = calls.iter().filter(|c| c.code == 403).collect();
    let used: BTreeSet<String> = calls
        .iter()
        .map(|c| {
            Call {
                name: String::new(),
                code: 0,
                ..c.clone()
            }
            .to_string()
        })
        .collect();
    eprintln!(
        "the operator as {OPERATOR_USER}: {} requests, {} forbidden; calls used:\n  {}",
        calls.len(),
        forbidden.len(),
        used.iter()
            .map(|c| c.trim_end_matches(" → 0").to_owned())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    assert!(
        forbidden.is_empty(),
        "403s with the chart's RBAC: {forbidden:#?}"
    );
    // A 403 shows in kube's error as `code: 403` and `reason: "Forbidden"`;
    // a bare "403" is no sign of one, as uids and timestamps hold it too.
    assert!(
        !log.contains("code: 403") && !log.to_lowercase().contains("forbidden"),
        "the operator logged a 403:\n{log}"
    );
    assert!(
        !metrics.contains("reason=\"Forbidden\"") && !metrics.contains("code=\"403\""),
        "the operator counted a 403:\n{metrics}"
    );
    for needed in [
        "create", "get", "update", "list", "watch", "patch", "delete",
    ] {
        assert!(
            calls.iter().any(|c| c.verb == needed),
            "the lifecycle made no {needed} call: the proof would not cover it"
        );
    }

    // 2. Each rule removed in turn: a 403 for a call that rule grants.
    let roles = [
        Granting::ClusterRole(RELEASE.into()),
        Granting::Role(format!("{RELEASE}-leader-election")),
        Granting::Role(format!("{RELEASE}-processor-secrets")),
    ];
    let mut run = 0;
    let mut findings = Vec::new();
    for role in &roles {
        let rules = role.rules(&client).await;
        for (index, rule) in rules.iter().enumerate() {
            run += 1;
            let mut without = rules.clone();
            without.remove(index);
            role.set_rules(&client, &without).await;
            delete_lease(&client).await;
            let mut reader = AuditReader::at_end(&audit);
            let name = format!("rbac-without-{run}");
            let operator = Operator::start(&kubeconfig, &dir, &name);
            scenario(&client, &format!("r{run}"), &receiver, &pki.ca_pem).await;
            let denied = eventually_within(
                &format!("a 403 with {} rule {}", role.name(), describe(rule)),
                Duration::from_secs(90),
                || {
                    let denied = reader
                        .read()
                        .into_iter()
                        .find(|c| c.code == 403 && grants(rule, c));
                    async move { denied }
                },
            )
            .await;
            drop(operator);
            role.set_rules(&client, &rules).await;
            findings.push(format!(
                "{} without {}: {denied}",
                role.name(),
                describe(rule)
            ));
        }
    }
    eprintln!(
        "each rule removed in turn ({run} runs):\n  {}",
        findings.join("\n  ")
    );
    tools::helm_uninstall(real_cluster().expect("real-cluster mode"), false);
    let _ = std::fs::remove_dir_all(&dir);
}
