//! The Helm chart in `charts/retention-operator`: `helm lint` passes, `helm template` renders
//! with default and non-default values, and what it renders behaves as promised — hardened
//! pods, probes, two replicas with leader election, the flags the values ask for — and the
//! chart's CRDs are the generated ones in `crds/`.
//!
//! helm comes from [`tools::helm`].

mod tools;

use std::{collections::BTreeMap, path::Path};

use serde_json::Value;
use tools::{chart_dir, run_helm, run_helm_failing, workspace};

const RELEASE: &str = "ret";
const NAMESPACE: &str = "retention-system";

/// `helm template` of the chart with `sets` (each a `--set` argument), parsed into its
/// non-empty documents.
fn render(sets: &[&str]) -> Vec<Value> {
    let args: Vec<&str> = sets.iter().flat_map(|set| ["--set", set]).collect();
    render_with(&args)
}

/// `helm template` of the chart with `extra` arguments, parsed into its non-empty documents.
fn render_with(extra: &[&str]) -> Vec<Value> {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        RELEASE,
        chart.to_str().expect("a UTF-8 path"),
        "--namespace",
        NAMESPACE,
    ];
    args.extend_from_slice(extra);
    let text = run_helm(&args);
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|e| panic!("helm template output does not parse: {e}\n{text}"));
    let documents: Vec<Value> = documents.into_iter().filter(|d| !d.is_null()).collect();
    assert!(!documents.is_empty(), "helm template rendered nothing");
    for document in &documents {
        assert!(
            document["apiVersion"].is_string() && document["kind"].is_string(),
            "a rendered document lacks apiVersion or kind: {document}"
        );
        assert!(
            document["metadata"]["name"].is_string(),
            "a rendered document lacks a name: {document}"
        );
    }
    documents
}

fn of_kind<'a>(documents: &'a [Value], kind: &str) -> Vec<&'a Value> {
    documents.iter().filter(|d| d["kind"] == kind).collect()
}

fn one_of_kind<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(documents, kind);
    assert_eq!(found.len(), 1, "expected exactly one {kind}, got {found:?}");
    found[0]
}

fn deployment(documents: &[Value]) -> &Value {
    one_of_kind(documents, "Deployment")
}

fn pod_spec(documents: &[Value]) -> &Value {
    &deployment(documents)["spec"]["template"]["spec"]
}

/// Every container of the pod, init containers included.
fn containers(documents: &[Value]) -> Vec<&Value> {
    let spec = pod_spec(documents);
    let mut all: Vec<&Value> = Vec::new();
    for field in ["initContainers", "containers"] {
        if let Some(list) = spec[field].as_array() {
            all.extend(list);
        }
    }
    assert!(!all.is_empty(), "the Deployment has no containers");
    all
}

fn operator_container(documents: &[Value]) -> &Value {
    let spec = pod_spec(documents);
    let list = spec["containers"].as_array().expect("containers");
    assert_eq!(list.len(), 1, "one container expected: {list:?}");
    &list[0]
}

fn args(documents: &[Value]) -> Vec<String> {
    operator_container(documents)["args"]
        .as_array()
        .expect("the operator container has args")
        .iter()
        .map(|a| a.as_str().expect("string args").to_owned())
        .collect()
}

/// The value of `--flag=value` or `--flag value` among the args, if given.
fn flag(args: &[String], name: &str) -> Option<String> {
    let prefix = format!("--{name}=");
    for (i, arg) in args.iter().enumerate() {
        if let Some(value) = arg.strip_prefix(&prefix) {
            return Some(value.to_owned());
        }
        if *arg == format!("--{name}") {
            return Some(args.get(i + 1).cloned().unwrap_or_default());
        }
    }
    None
}

fn env_var<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

fn assert_hardened(documents: &[Value]) {
    let pod = &pod_spec(documents)["securityContext"];
    assert_eq!(pod["runAsNonRoot"], true, "pod securityContext: {pod}");
    assert_eq!(pod["runAsUser"], 65532, "pod securityContext: {pod}");
    assert_eq!(pod["runAsGroup"], 65532, "pod securityContext: {pod}");
    assert_eq!(
        pod["seccompProfile"]["type"], "RuntimeDefault",
        "pod securityContext: {pod}"
    );
    for container in containers(documents) {
        let name = &container["name"];
        let sc = &container["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true, "{name}: {sc}");
        assert_eq!(sc["runAsUser"], 65532, "{name}: {sc}");
        assert_eq!(sc["runAsGroup"], 65532, "{name}: {sc}");
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{name}: {sc}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{name}: {sc}");
        assert_ne!(sc["privileged"], true, "{name}: {sc}");
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{name}: {sc}"
        );
        assert!(
            sc["capabilities"]["add"].is_null(),
            "{name} adds capabilities: {sc}"
        );
        assert_eq!(
            sc["seccompProfile"]["type"], "RuntimeDefault",
            "{name}: {sc}"
        );
        let resources = &container["resources"];
        for field in ["requests", "limits"] {
            assert!(
                resources[field]["memory"].is_string() && resources[field]["cpu"].is_string(),
                "{name} lacks resource {field}: {resources}"
            );
        }
    }
    assert_ne!(pod_spec(documents)["hostNetwork"], true);
    assert_ne!(pod_spec(documents)["hostPID"], true);
}

fn assert_probes_and_ports(documents: &[Value]) {
    let container = operator_container(documents);
    let ports = container["ports"].as_array().expect("ports");
    let http = ports
        .iter()
        .find(|p| p["name"] == "http")
        .expect("a port named http");
    assert_eq!(http["containerPort"], 8080);
    let args = args(documents);
    assert_eq!(
        flag(&args, "http-addr").as_deref(),
        Some("0.0.0.0:8080"),
        "the operator serves the http port: {args:?}"
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}: {}", container[probe]);
        assert!(
            get["port"] == "http" || get["port"] == 8080,
            "{probe} probes another port: {get}"
        );
    }
    // The metrics Service reaches the same port.
    let services = of_kind(documents, "Service");
    assert!(
        services
            .iter()
            .any(|s| s["spec"]["ports"].as_array().is_some_and(|ports| ports
                .iter()
                .any(|p| p["targetPort"] == "http" || p["targetPort"] == 8080))),
        "no Service exposes the metrics port: {services:?}"
    );
}

/// The Deployment's pods run as the ServiceAccount the chart creates, and the Service and
/// PodDisruptionBudget select exactly the Deployment's pods.
fn assert_wiring(documents: &[Value]) {
    let accounts: Vec<&Value> = of_kind(documents, "ServiceAccount")
        .into_iter()
        .filter(|a| a["metadata"]["annotations"]["helm.sh/hook"].is_null())
        .collect();
    assert_eq!(
        accounts.len(),
        1,
        "one ServiceAccount besides hooks': {accounts:?}"
    );
    let account = accounts[0];
    let spec = pod_spec(documents);
    assert_eq!(spec["serviceAccountName"], account["metadata"]["name"]);
    assert_ne!(spec["automountServiceAccountToken"], false);
    assert_ne!(account["automountServiceAccountToken"], false);

    let template_labels = &deployment(documents)["spec"]["template"]["metadata"]["labels"];
    let selector = &deployment(documents)["spec"]["selector"]["matchLabels"];
    let selects = |selector: &Value| {
        let selector = selector.as_object().expect("a label selector");
        !selector.is_empty() && selector.iter().all(|(k, v)| template_labels[k] == *v)
    };
    assert!(
        selects(selector),
        "the Deployment's selector misses its pods"
    );
    for service in of_kind(documents, "Service") {
        assert!(
            selects(&service["spec"]["selector"]),
            "Service {} misses the pods",
            service["metadata"]["name"]
        );
    }
    let pdb = one_of_kind(documents, "PodDisruptionBudget");
    assert!(selects(&pdb["spec"]["selector"]["matchLabels"]));
    assert!(
        pdb["spec"]["minAvailable"] == 1 || pdb["spec"]["maxUnavailable"] == 1,
        "the PodDisruptionBudget keeps one replica or lets one go: {pdb}"
    );

    let namespace =
        env_var(operator_container(documents), "POD_NAMESPACE").expect("POD_NAMESPACE is set");
    assert_eq!(
        namespace["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace",
        "POD_NAMESPACE comes from the downward API: {namespace}"
    );
    for document in documents {
        let kind = document["kind"].as_str().unwrap_or_default();
        if !matches!(kind, "ClusterRole" | "ClusterRoleBinding") {
            assert_eq!(
                document["metadata"]["namespace"], NAMESPACE,
                "{kind} {} is not in the release namespace",
                document["metadata"]["name"]
            );
        }
    }
}

#[test]
fn helm_lint_passes_with_default_and_non_default_values() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("a UTF-8 path");
    run_helm(&["lint", "--strict", chart]);
    run_helm(&[
        "lint",
        "--strict",
        chart,
        "--set",
        "dryRun=true,logFormat=text,serviceMonitor.enabled=true,networkPolicy.enabled=true,replicaCount=3",
    ]);
}

#[test]
fn default_values_render_two_hardened_replicas_with_leader_election() {
    let documents = render(&[]);
    assert_hardened(&documents);
    assert_probes_and_ports(&documents);
    assert_wiring(&documents);

    assert_eq!(deployment(&documents)["spec"]["replicas"], 2);
    let args = args(&documents);
    assert_eq!(args.first().map(String::as_str), Some("run"), "{args:?}");
    assert_eq!(flag(&args, "leader-election").as_deref(), Some("true"));
    assert_eq!(
        flag(&args, "lease-name").as_deref(),
        Some("retention-operator")
    );
    assert_eq!(flag(&args, "lease-namespace").as_deref(), Some(NAMESPACE));
    assert_eq!(flag(&args, "log-format").as_deref(), Some("json"));
    assert_eq!(flag(&args, "advance-notice").as_deref(), Some("24h"));
    assert_eq!(flag(&args, "concurrency").as_deref(), Some("8"));
    assert!(
        !args.iter().any(|a| a.starts_with("--dry-run")),
        "dry run is off by default: {args:?}"
    );
    assert_eq!(
        flag(&args, "webhook-allow-cidr"),
        None,
        "no private webhook network is allowed by default: {args:?}"
    );

    let container = operator_container(&documents);
    let chart: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml parses");
    let app_version = chart["appVersion"].as_str().expect("appVersion");
    assert!(
        container["image"]
            .as_str()
            .is_some_and(|image| image.ends_with(&format!(":{app_version}"))),
        "the image tag defaults to appVersion {app_version}: {}",
        container["image"]
    );
    assert!(env_var(container, "SSL_CERT_FILE").is_none());

    // Off by default: the ServiceMonitor (needs the Prometheus operator) and the NetworkPolicy.
    assert!(of_kind(&documents, "ServiceMonitor").is_empty());
    assert!(of_kind(&documents, "NetworkPolicy").is_empty());
}

/// Every network of `webhookAllowCidrs` becomes one `--webhook-allow-cidr`, in order.
#[test]
fn allowed_webhook_networks_become_one_flag_each() {
    let documents = render(&["webhookAllowCidrs={10.20.0.0/16,fd12:3456::/48}"]);
    let args = args(&documents);
    let allowed: Vec<&str> = args
        .iter()
        .filter_map(|a| a.strip_prefix("--webhook-allow-cidr="))
        .collect();
    assert_eq!(allowed, ["10.20.0.0/16", "fd12:3456::/48"], "{args:?}");
}

#[test]
fn non_default_values_reach_the_operator() {
    let documents = render(&[
        "dryRun=true,logFormat=text,serviceMonitor.enabled=true,networkPolicy.enabled=true,replicaCount=3",
        "concurrency=2,advanceNotice=0s,leaderElection.leaseName=ret-lease,image.tag=v9",
        "serviceAccount.name=custom-sa",
    ]);
    assert_hardened(&documents);
    assert_probes_and_ports(&documents);
    assert_wiring(&documents);

    assert_eq!(deployment(&documents)["spec"]["replicas"], 3);
    let args = args(&documents);
    assert!(args.iter().any(|a| a == "--dry-run"), "{args:?}");
    assert_eq!(flag(&args, "log-format").as_deref(), Some("text"));
    assert_eq!(flag(&args, "concurrency").as_deref(), Some("2"));
    assert_eq!(flag(&args, "advance-notice").as_deref(), Some("0s"));
    assert_eq!(flag(&args, "leader-election").as_deref(), Some("true"));
    assert_eq!(flag(&args, "lease-name").as_deref(), Some("ret-lease"));
    assert!(
        operator_container(&documents)["image"]
            .as_str()
            .is_some_and(|image| image.ends_with(":v9"))
    );
    assert_eq!(pod_spec(&documents)["serviceAccountName"], "custom-sa");

    let monitor = one_of_kind(&documents, "ServiceMonitor");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["port"], "http");
    assert_eq!(endpoint["path"], "/metrics");
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("ServiceMonitor selector");
    assert!(
        of_kind(&documents, "Service").iter().any(|service| selector
            .iter()
            .all(|(k, v)| service["metadata"]["labels"][k] == *v)),
        "the ServiceMonitor selects no Service"
    );

    let policy = one_of_kind(&documents, "NetworkPolicy");
    let spec = &policy["spec"];
    assert_eq!(
        spec["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    let ingress = spec["ingress"].as_array().expect("ingress rules");
    assert!(
        ingress.iter().all(|rule| rule["ports"]
            .as_array()
            .is_some_and(|ports| ports.iter().all(|p| p["port"] == "http"))),
        "ingress is allowed to the metrics port only: {ingress:?}"
    );
    let egress = spec["egress"].as_array().expect("egress rules");
    let allows_port = |port: i64, protocol: &str| {
        egress.iter().any(|rule| {
            rule["ports"].as_array().is_some_and(|ports| {
                ports
                    .iter()
                    .any(|p| p["port"] == port && p["protocol"] == protocol)
            })
        })
    };
    assert!(allows_port(53, "UDP") && allows_port(53, "TCP"), "DNS");
    assert!(allows_port(443, "TCP"), "the API server and webhooks");
    assert!(allows_port(6443, "TCP"), "an API server on 6443");
    for rule in egress {
        assert!(
            rule["ports"].as_array().is_some_and(|p| !p.is_empty()),
            "every egress rule names its ports: {rule}"
        );
    }
}

#[test]
fn the_extra_ca_bundle_is_mounted_and_named_by_ssl_cert_file() {
    for kind in ["ConfigMap", "Secret"] {
        let kind_set = format!("extraCaBundle.kind={kind}");
        let documents = render(&[
            "extraCaBundle.enabled=true,extraCaBundle.name=corp-ca,extraCaBundle.key=bundle.pem",
            &kind_set,
        ]);
        assert_hardened(&documents);
        let container = operator_container(&documents);
        let file = env_var(container, "SSL_CERT_FILE").expect("SSL_CERT_FILE");
        let file = file["value"].as_str().expect("a value");
        let mounts = container["volumeMounts"].as_array().expect("volumeMounts");
        let mount = mounts
            .iter()
            .find(|m| file.starts_with(&format!("{}/", m["mountPath"].as_str().unwrap_or("-"))))
            .unwrap_or_else(|| panic!("no mount holds {file}: {mounts:?}"));
        assert_eq!(mount["readOnly"], true);
        assert!(file.ends_with("/bundle.pem"), "{file}");
        // The image's public roots stay trusted beside the extra bundle.
        assert_eq!(
            env_var(container, "SSL_CERT_DIR").map(|v| &v["value"]),
            Some(&Value::from("/etc/ssl/certs"))
        );
        let volumes = pod_spec(&documents)["volumes"].as_array().expect("volumes");
        let volume = volumes
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("the mounted volume");
        let source = match kind {
            "ConfigMap" => &volume["configMap"]["name"],
            _ => &volume["secret"]["secretName"],
        };
        assert_eq!(source, "corp-ca", "{kind}: {volume}");
    }
}

#[test]
fn values_that_would_be_unsafe_or_invalid_are_refused() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("a UTF-8 path");
    // Several replicas without leader election would all delete.
    let message = run_helm_failing(&[
        "template",
        RELEASE,
        chart,
        "--set",
        "replicaCount=2,leaderElection.enabled=false",
    ]);
    assert!(message.contains("leaderElection"), "{message}");
    // Shards without Leases would all act on every account.
    let message = run_helm_failing(&[
        "template",
        RELEASE,
        chart,
        "--set",
        "shards=2,replicaCount=1,leaderElection.enabled=false",
    ]);
    assert!(
        message.contains("shards > 1 needs leaderElection"),
        "{message}"
    );
    let message = run_helm_failing(&["template", RELEASE, chart, "--set", "logFormat=xml"]);
    assert!(message.contains("logFormat"), "{message}");

    // One replica without leader election is allowed, for a single local run.
    let documents = render(&["replicaCount=1,leaderElection.enabled=false"]);
    let args = args(&documents);
    assert_eq!(flag(&args, "leader-election").as_deref(), Some("false"));
    assert_eq!(flag(&args, "lease-name"), None);
}

/// `shards`: one replica per shard at least, `--shards`, every replica replaced at an upgrade
/// (two shard counts never run at once), and the Lease rights sharding needs; without it,
/// one Lease by name and rolling updates, as before.
#[test]
fn sharding_runs_a_replica_per_shard_and_never_two_shard_counts_at_once() {
    let documents = render(&["shards=4"]);
    let spec = &deployment(&documents)["spec"];
    assert_eq!(spec["replicas"], 4);
    assert_eq!(spec["strategy"]["type"], "Recreate");
    assert_eq!(flag(&args(&documents), "shards").as_deref(), Some("4"));
    let lease_rules = |documents: &[Value]| -> Vec<Value> {
        of_kind(documents, "Role")
            .into_iter()
            .flat_map(|role| role["rules"].as_array().cloned().unwrap_or_default())
            .filter(|rule| {
                rule["resources"]
                    .as_array()
                    .is_some_and(|r| r.contains(&Value::from("leases")))
            })
            .collect()
    };
    let verbs = |rules: &[Value]| -> Vec<String> {
        let mut verbs: Vec<String> = rules
            .iter()
            .flat_map(|r| r["verbs"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        verbs.sort();
        verbs.dedup();
        verbs
    };
    let sharded = lease_rules(&documents);
    assert_eq!(
        verbs(&sharded),
        ["create", "delete", "get", "list", "update"]
    );
    // More replicas than shards: the extra ones stand by.
    let documents = render(&["shards=2,replicaCount=3"]);
    assert_eq!(deployment(&documents)["spec"]["replicas"], 3);

    let documents = render(&[]);
    let spec = &deployment(&documents)["spec"];
    assert_eq!(spec["strategy"]["type"], "RollingUpdate");
    assert_eq!(flag(&args(&documents), "shards"), None);
    let single = lease_rules(&documents);
    assert_eq!(verbs(&single), ["create", "get", "update"]);
    assert!(
        single.iter().any(|r| r["resourceNames"].is_array()),
        "one Lease by name: {single:?}"
    );
    // Going back to one shard can ask for Recreate too.
    let documents = render(&["updateStrategy=Recreate"]);
    assert_eq!(
        deployment(&documents)["spec"]["strategy"]["type"],
        "Recreate"
    );
}

/// The chart's values.schema.json refuses a value of the wrong type, out of range, or under a
/// misspelt key, in `helm lint --strict` and in `helm template` (so in install and upgrade),
/// naming the value.
#[test]
fn values_of_the_wrong_type_out_of_range_or_misspelt_are_refused_by_the_schema() {
    let chart = chart_dir();
    let chart = chart.to_str().expect("a UTF-8 path");
    for (set, named) in [
        ("replicaCount=abc", "/replicaCount"),
        ("shards=0", "/shards"),
        ("updateStrategy=Rolling", "/updateStrategy"),
        ("serviceMonitr.enabled=true", "serviceMonitr"),
        ("concurrency=-5", "/concurrency"),
        ("concurrency=0", "/concurrency"),
        ("advanceNotice=1day", "/advanceNotice"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("webhookAllowCidrs={10.0.0.0}", "/webhookAllowCidrs/0"),
        ("networkPolicy.dns.port=0", "/networkPolicy/dns/port"),
        ("serviceMonitor.interval=soon", "/serviceMonitor/interval"),
        (
            "processorSecrets.namespaces={Billing}",
            "/processorSecrets/namespaces/0",
        ),
    ] {
        let lint = run_helm_failing(&["lint", "--strict", chart, "--set", set]);
        assert!(lint.contains(named), "lint of {set}: {lint}");
        let template = run_helm_failing(&["template", RELEASE, chart, "--set", set]);
        assert!(template.contains(named), "template of {set}: {template}");
    }
    // Documented values of each shape pass.
    run_helm(&[
        "lint",
        "--strict",
        chart,
        "--set",
        "podDisruptionBudget.maxUnavailable=50%,advanceNotice=2d,serviceMonitor.interval=1m30s",
        "--set",
        "webhookAllowCidrs={10.20.0.0/16,fd12:3456::/48},processorSecrets.namespaces={billing}",
    ]);
}

#[test]
fn extra_args_env_and_volumes_and_an_image_digest_reach_the_operator() {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let digest_set = format!("image.digest={digest},image.tag=v9");
    let documents = render(&[
        "extraArgs={--brake-write-interval=30s}",
        "extraEnv[0].name=HTTPS_PROXY,extraEnv[0].value=http://proxy.internal:3128",
        "extraVolumes[0].name=scratch,extraVolumes[0].emptyDir.medium=Memory",
        "extraVolumeMounts[0].name=scratch,extraVolumeMounts[0].mountPath=/scratch",
        "extraCaBundle.enabled=true,extraCaBundle.name=corp-ca",
        &digest_set,
    ]);
    assert_hardened(&documents);
    assert_wiring(&documents);
    let args = args(&documents);
    assert_eq!(flag(&args, "brake-write-interval").as_deref(), Some("30s"));
    assert_eq!(args[0], "run", "the chart's args come first: {args:?}");
    let container = operator_container(&documents);
    assert_eq!(
        env_var(container, "HTTPS_PROXY").expect("HTTPS_PROXY")["value"],
        "http://proxy.internal:3128"
    );
    assert!(
        env_var(container, "SSL_CERT_FILE").is_some(),
        "the chart's env stays"
    );
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(mounts, ["extra-ca-bundle", "scratch"]);
    let volumes: Vec<&str> = pod_spec(&documents)["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(volumes.len(), 2, "{volumes:?}");
    assert!(volumes.contains(&"scratch") && volumes.contains(&"extra-ca-bundle"));
    assert_eq!(
        container["image"],
        format!("ghcr.io/ecuni/retention-operator@{digest}").as_str(),
        "a digest pins the image, whatever the tag"
    );
}

#[test]
fn replicas_spread_over_nodes_and_zones_unless_told_otherwise() {
    let documents = render(&[]);
    let pod_labels = &deployment(&documents)["spec"]["template"]["metadata"]["labels"];
    let constraints = pod_spec(&documents)["topologySpreadConstraints"]
        .as_array()
        .expect("a default spread");
    let keys: Vec<&str> = constraints
        .iter()
        .filter_map(|c| c["topologyKey"].as_str())
        .collect();
    assert_eq!(
        keys,
        ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
    );
    for constraint in constraints {
        // A soft spread: a one-node cluster still runs both replicas.
        assert_eq!(constraint["whenUnsatisfiable"], "ScheduleAnyway");
        let selector = constraint["labelSelector"]["matchLabels"]
            .as_object()
            .expect("matchLabels");
        assert!(!selector.is_empty());
        for (label, value) in selector {
            assert_eq!(&pod_labels[label], value, "the spread selects the pods");
        }
    }
    let none = render_with(&["--set-json", "topologySpreadConstraints=[]"]);
    assert!(pod_spec(&none).get("topologySpreadConstraints").is_none());
    let own = render(&[
        "topologySpreadConstraints[0].maxSkew=2,topologySpreadConstraints[0].topologyKey=rack,topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
    ]);
    let own = pod_spec(&own)["topologySpreadConstraints"]
        .as_array()
        .expect("the given spread");
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["topologyKey"], "rack");
}

/// The rules of the rendered ClusterRole `name`, as (resource, verb) pairs.
fn cluster_role_rules(documents: &[Value], name: &str) -> Vec<(String, String)> {
    let role = of_kind(documents, "ClusterRole")
        .into_iter()
        .find(|r| r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no ClusterRole {name}"));
    let mut pairs = Vec::new();
    for rule in role["rules"].as_array().expect("rules") {
        assert_eq!(rule["apiGroups"], serde_json::json!(["hosting.ecuni.se"]));
        for resource in rule["resources"].as_array().expect("resources") {
            for verb in rule["verbs"].as_array().expect("verbs") {
                pairs.push((
                    resource.as_str().unwrap().to_owned(),
                    verb.as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    pairs
}

#[test]
fn roles_for_people_and_the_account_system_never_change_a_receipt() {
    let documents = render(&[
        "rbac.accountSystem.subjects[0].kind=ServiceAccount,rbac.accountSystem.subjects[0].name=accounts,rbac.accountSystem.subjects[0].namespace=billing",
    ]);
    let name = format!("{RELEASE}-retention-operator");
    for (suffix, aggregated_to, may) in [
        ("view", &["view", "edit", "admin"][..], "list"),
        ("edit", &["edit", "admin"][..], "delete"),
        ("account-system", &[][..], "create"),
    ] {
        let role_name = format!("{name}-{suffix}");
        let role = of_kind(&documents, "ClusterRole")
            .into_iter()
            .find(|r| r["metadata"]["name"] == role_name.as_str())
            .expect("the role");
        for builtin in ["view", "edit", "admin"] {
            let label = format!("rbac.authorization.k8s.io/aggregate-to-{builtin}");
            let expected = aggregated_to.contains(&builtin);
            assert_eq!(
                role["metadata"]["labels"][&label] == "true",
                expected,
                "{role_name} {label}"
            );
        }
        let rules = cluster_role_rules(&documents, &role_name);
        assert!(
            rules.iter().any(|(r, v)| r == "websites" && v == may),
            "{role_name} may {may} websites"
        );
        for (resource, verb) in &rules {
            if resource.starts_with("erasurereceipts") {
                assert!(
                    ["get", "list", "watch"].contains(&verb.as_str()),
                    "{role_name} may {verb} {resource}"
                );
            }
            assert!(
                !resource.contains('*') && verb != "*",
                "{role_name}: a wildcard"
            );
        }
    }
    let binding = of_kind(&documents, "ClusterRoleBinding")
        .into_iter()
        .find(|b| b["roleRef"]["name"] == format!("{name}-account-system").as_str())
        .expect("the account system's binding");
    assert_eq!(binding["subjects"][0]["name"], "accounts");

    let none = render(&[
        "rbac.aggregateToDefaultRoles=false,rbac.accountSystem.create=false,crds.upgrade=false",
    ]);
    let names: Vec<&str> = of_kind(&none, "ClusterRole")
        .iter()
        .filter_map(|r| r["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, [name.as_str()], "only the operator's own");
}

#[test]
fn an_upgrade_first_applies_the_crds_by_a_hook_that_may_touch_nothing_else() {
    let documents = render(&[]);
    let job = one_of_kind(&documents, "Job");
    let hook = |document: &Value| {
        let annotations = &document["metadata"]["annotations"];
        assert_eq!(annotations["helm.sh/hook"], "pre-upgrade", "{document}");
        annotations["helm.sh/hook-weight"]
            .as_str()
            .expect("a weight")
            .parse::<i32>()
            .unwrap()
    };
    let job_weight = hook(job);
    let pod = &job["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["args"], serde_json::json!(["crds", "--apply"]));
    assert_eq!(container["image"], operator_container(&documents)["image"]);
    assert_eq!(pod["restartPolicy"], "Never");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    let account = pod["serviceAccountName"]
        .as_str()
        .expect("its own ServiceAccount");
    assert_ne!(
        Some(account),
        pod_spec(&documents)["serviceAccountName"].as_str()
    );
    for kind in ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"] {
        let document = of_kind(&documents, kind)
            .into_iter()
            .find(|d| d["metadata"]["name"] == account)
            .unwrap_or_else(|| panic!("the hook's {kind}"));
        assert!(
            hook(document) < job_weight,
            "the {kind} exists before the Job"
        );
    }
    let role = of_kind(&documents, "ClusterRole")
        .into_iter()
        .find(|d| d["metadata"]["name"] == account)
        .unwrap();
    let rules = role["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(
        rules[0]["apiGroups"],
        serde_json::json!(["apiextensions.k8s.io"])
    );
    assert_eq!(
        rules[0]["resources"],
        serde_json::json!(["customresourcedefinitions"])
    );
    assert_eq!(rules[0]["verbs"], serde_json::json!(["get", "patch"]));
    let mut names: Vec<String> = rules[0]["resourceNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect();
    names.sort();
    let mut ours: Vec<String> = retention_operator::api::all_crds()
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    ours.sort();
    assert_eq!(names, ours, "this operator's CRDs and no other");

    let off = render(&["crds.upgrade=false"]);
    assert!(of_kind(&off, "Job").is_empty());
}

/// Every file of a directory by name, with its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| {
            let entry = entry.expect("a directory entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(entry.path()).expect("a readable file");
            (name, bytes)
        })
        .collect()
}

#[test]
fn the_chart_crds_are_the_generated_crds() {
    let generated = files(&workspace().join("crds"));
    let charted = files(&chart_dir().join("crds"));
    assert!(!generated.is_empty(), "crds/ is empty");
    assert_eq!(
        charted.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "the chart's crds/ holds other files than crds/; copy them: \
         cp crds/*.yaml charts/retention-operator/crds/"
    );
    for (name, bytes) in &generated {
        assert!(
            charted[name] == *bytes,
            "charts/retention-operator/crds/{name} differs from crds/{name}; copy it: \
             cp crds/*.yaml charts/retention-operator/crds/"
        );
    }
}
