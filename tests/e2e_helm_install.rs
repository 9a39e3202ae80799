//! The chart on a real API server (real-cluster mode only, `RETENTION_E2E_KUBECONFIG`):
//! `helm install` with its CRDs, `helm upgrade` with non-default values, `helm uninstall` —
//! every rendered object accepted by the server's admission and validation, and the uninstall
//! leaving the CRDs, the Accounts and everything bound to them. No pod runs where there is no
//! kubelet; what is checked is what the API server accepts and keeps.

mod e2e_support;
mod tools;

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, ServiceAccount},
        networking::v1::NetworkPolicy,
        rbac::v1::{ClusterRole, Role},
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{Api, Client, ResourceExt, api::DeleteParams};
use retention_operator::api::{Account, Website};

use e2e_support::{
    Cluster, NAMESPACE, account, create, create_cluster, eventually, real_cluster, website,
};
use tools::{RELEASE, RELEASE_NAMESPACE, helm_release, helm_uninstall, run_kubectl};

fn kubeconfig() -> String {
    real_cluster()
        .map(|path| path.display().to_string())
        .unwrap_or_default()
}

/// The project's CRD names, from `crds/`.
fn project_crd_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(e2e_support::PROJECT_CRDS)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .map(|path| {
            path.file_stem()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches(".yaml")
                .to_owned()
        })
        .collect();
    names.sort();
    names
}

/// Removes the project's CRDs (and with them every object of theirs), so that the install
/// below is the one that creates them.
async fn remove_project_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in project_crd_names() {
        match crds.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => panic!("deleting CRD {name}: {e}"),
        }
    }
    for name in project_crd_names() {
        eventually(&format!("CRD {name} to go"), || async {
            matches!(crds.get_opt(&name).await, Ok(None)).then_some(())
        })
        .await;
    }
}

async fn established(client: &Client, name: &str) -> bool {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|crd| crd.status)
        .and_then(|status| status.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_installs_upgrades_and_uninstalls_on_a_real_api_server() {
    if real_cluster().is_none() {
        eprintln!(
            "skipped: needs a real API server ({}); helm installs Deployments, RBAC and \
             NetworkPolicies, which the test API server does not serve",
            e2e_support::KUBECONFIG_ENV
        );
        return;
    }
    let cluster = Cluster::connect().await;
    let client = cluster.client.clone();
    // A release left by an interrupted run would make the install fail.
    let kubeconfig_path = real_cluster().expect("real-cluster mode");
    helm_uninstall(kubeconfig_path, true);
    remove_project_crds(&client).await;

    // Install with default values: the CRDs come from the chart's crds/.
    helm_release("install", kubeconfig_path, &["--create-namespace"]);
    for name in project_crd_names() {
        eventually(&format!("CRD {name} established"), || async {
            established(&client, &name).await.then_some(())
        })
        .await;
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), RELEASE_NAMESPACE);
    let deployment = deployments.get(RELEASE).await.unwrap();
    assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(2));
    Api::<ServiceAccount>::namespaced(client.clone(), RELEASE_NAMESPACE)
        .get(RELEASE)
        .await
        .unwrap();
    Api::<ClusterRole>::all(client.clone())
        .get(RELEASE)
        .await
        .unwrap();
    Api::<Role>::namespaced(client.clone(), RELEASE_NAMESPACE)
        .get(&format!("{RELEASE}-leader-election"))
        .await
        .unwrap();

    // Objects of the CRDs helm installed, with the printer columns the CRDs declare.
    create_cluster(&client, &account("helm-acme")).await;
    create(&client, &website("helm-site", "helm-acme")).await;
    // kubectl finds the kinds of the category through discovery, which the API server
    // updates shortly after a CRD is established; a fresh cache directory each time, so that
    // a discovery document read too early is not kept.
    let cache = std::env::temp_dir().join(format!("retention-e2e-kubectl-{}", std::process::id()));
    let mut attempt = 0;
    let table = eventually("kubectl get hosting -A to list both kinds", || {
        attempt += 1;
        let cache_dir = cache.join(attempt.to_string()).display().to_string();
        let table = run_kubectl(&[
            "--kubeconfig",
            &kubeconfig(),
            "--cache-dir",
            &cache_dir,
            "get",
            "hosting",
            "-A",
        ]);
        let both = table.contains("account.hosting.ecuni.se/helm-acme")
            && table.contains("website.hosting.ecuni.se/helm-site");
        async move { both.then_some(table) }
    })
    .await;
    let _ = std::fs::remove_dir_all(&cache);
    eprintln!("kubectl get hosting -A:\n{table}");
    for column in [
        "CUSTOMER",
        "STATE",
        "PHASE",
        "READY",
        "HOLD",
        "NEXT DELETION",
        "AGE",
        "BOUND",
    ] {
        assert!(
            table.contains(column),
            "no {column} column in kubectl's table:\n{table}"
        );
    }

    // Upgrade with non-default values: each new object is accepted.
    let ca = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("corp-ca".into()),
            ..Default::default()
        },
        data: Some([("ca.crt".to_owned(), "unused".to_owned())].into()),
        ..Default::default()
    };
    let _ = Api::<ConfigMap>::namespaced(client.clone(), RELEASE_NAMESPACE)
        .create(&Default::default(), &ca)
        .await;
    helm_release(
        "upgrade",
        kubeconfig_path,
        &[
            "--set",
            "networkPolicy.enabled=true,replicaCount=3,extraCaBundle.enabled=true,\
             extraCaBundle.name=corp-ca,logFormat=text,dryRun=true",
            "--set",
            "webhookAllowCidrs={10.0.0.0/8,192.168.0.0/16}",
            // No kubelet runs the CRD hook's Job here; its command, `crds --apply`, has its
            // own test (tests/e2e_crds_apply.rs).
            "--set",
            "crds.upgrade=false",
        ],
    );
    let deployment = deployments.get(RELEASE).await.unwrap();
    assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(3));
    let policies: Api<NetworkPolicy> = Api::namespaced(client.clone(), RELEASE_NAMESPACE);
    assert!(
        !policies
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty(),
        "the upgrade with networkPolicy.enabled=true made no NetworkPolicy"
    );
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert!(
        pod.volumes
            .unwrap_or_default()
            .iter()
            .any(|v| v.config_map.as_ref().is_some_and(|c| c.name == "corp-ca")),
        "the extra CA bundle is not mounted"
    );

    // Uninstall: the release's objects go; the CRDs, the Account and its Website stay.
    helm_uninstall(kubeconfig_path, false);
    eventually("the Deployment to go", || async {
        matches!(deployments.get_opt(RELEASE).await, Ok(None)).then_some(())
    })
    .await;
    for name in project_crd_names() {
        assert!(
            established(&client, &name).await,
            "the uninstall removed or disabled CRD {name}"
        );
    }
    let accounts: Api<Account> = Api::all(client.clone());
    assert!(accounts.get_opt("helm-acme").await.unwrap().is_some());
    let websites: Api<Website> = Api::namespaced(client.clone(), NAMESPACE);
    let site = websites.get_opt("helm-site").await.unwrap();
    assert!(
        site.is_some_and(|s| s.name_any() == "helm-site"),
        "the uninstall removed a bound object"
    );
}
