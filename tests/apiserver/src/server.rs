//! The HTTP front: routing Kubernetes REST paths to the store, discovery, the Table format,
//! watch streams, fault injection and the request log.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::atomic::Ordering,
    sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::{
    apply,
    exchange_log::Exchange,
    faults::Faults,
    faults::{FaultCounters, Injected},
    registry::{Registry, ResourceType},
    request_log::RequestRecord,
    selectors::{FieldSelector, LabelSelector},
    status::{ApiError, ApiResult, json_body},
    store::{
        DeleteOptions, EventKind, Filter, Matcher, Propagation, Store, WatchEvent, WriteOptions,
    },
    table::{self, IncludeObject},
};

/// Everything a request handler shares.
pub struct ServerState {
    /// Served types.
    pub registry: RwLock<Registry>,
    /// The objects.
    pub store: Mutex<Store>,
    /// Faults in force.
    pub faults: Mutex<Faults>,
    /// Every request answered.
    pub requests: Mutex<Vec<RequestRecord>>,
    /// Every request answered, with bodies and times, when asked for.
    pub exchanges: Option<Mutex<Vec<Exchange>>>,
    /// Decides which requests fault rules hit.
    pub fault_rng: Mutex<fastrand::Rng>,
    /// Faults injected so far.
    pub fault_counters: Arc<FaultCounters>,
    /// How often watch streams that asked for bookmarks get one.
    pub bookmark_interval: Duration,
    /// The longest a watch stays open when the client sets no timeout.
    pub max_watch: Duration,
    /// Whether watches may ask for streaming lists (`sendInitialEvents`).
    pub streaming_lists: bool,
    /// Where the server listens.
    pub addr: SocketAddr,
    /// Bumped to end every open watch stream (see `TestApiServer::end_watches`).
    pub watch_generation: tokio::sync::watch::Sender<u64>,
}

/// Locks a mutex, recovering from a poisoned one: a panicking test must not wedge the server.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn registry(state: &ServerState) -> std::sync::RwLockReadGuard<'_, Registry> {
    state
        .registry
        .read()
        .unwrap_or_else(PoisonError::into_inner)
}

/// A parsed resource path.
#[derive(Clone, Debug, Default)]
struct ResourcePath {
    group: String,
    version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

enum Route {
    NonResource(Response),
    Resource(ResourcePath),
    Admin(String),
}

type Query = BTreeMap<String, String>;

/// The single handler behind every path.
pub async fn handle(
    State(state): State<Arc<ServerState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = chrono::Utc::now();
    let path = uri.path().to_owned();
    let query: Query =
        serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let route = route(&state, &path);
    let mut record = RequestRecord {
        verb: method.as_str().to_lowercase(),
        group: String::new(),
        version: String::new(),
        resource: String::new(),
        subresource: String::new(),
        namespace: String::new(),
        name: String::new(),
        path: path.clone(),
        code: 0,
        user_agent,
    };
    let response = match route {
        Route::Admin(what) => admin(&state, &method, &what, &body),
        Route::NonResource(response) => response,
        Route::Resource(rp) => {
            let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
            record.verb = verb(&method, &rp, watching).to_owned();
            record.group = rp.group.clone();
            record.version = rp.version.clone();
            record.resource = rp.plural.clone();
            record.subresource = rp.subresource.clone().unwrap_or_default();
            record.namespace = rp.namespace.clone().unwrap_or_default();
            record.name = rp.name.clone().unwrap_or_default();
            let (latency, injected) = {
                let faults = lock(&state.faults);
                let injected = faults.injected(&record, &mut lock(&state.fault_rng));
                (faults.latency, injected)
            };
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            match injected {
                Some(Injected::Fail(code, retry_after)) => {
                    state.fault_counters.failed.fetch_add(1, Ordering::Relaxed);
                    ApiError::injected(code, retry_after).into_response()
                }
                Some(Injected::Stall(stall, true)) => {
                    state.fault_counters.stalled.fetch_add(1, Ordering::Relaxed);
                    // In a task of its own: a client that gives up drops this handler, not the
                    // request, which is served and logged all the same.
                    let state = state.clone();
                    let served = tokio::spawn(async move {
                        tokio::time::sleep(stall).await;
                        let response =
                            resource(&state, &method, rp, &query, &headers, &body, watching);
                        logged(&state, record, received, &body, response).await
                    });
                    return served.await.unwrap_or_else(|_| {
                        ApiError::internal("a detached request's task ended").into_response()
                    });
                }
                Some(Injected::Stall(stall, false)) => {
                    state.fault_counters.stalled.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(stall).await;
                    resource(&state, &method, rp, &query, &headers, &body, watching)
                }
                None => resource(&state, &method, rp, &query, &headers, &body, watching),
            }
        }
    };
    logged(&state, record, received, &body, response).await
}

/// Records a served request (`body`: the request's) in the request log, and its exchange when
/// bodies are kept; returns its answer.
async fn logged(
    state: &Arc<ServerState>,
    mut record: RequestRecord,
    received: chrono::DateTime<chrono::Utc>,
    body: &Bytes,
    response: Response,
) -> Response {
    record.code = response.status().as_u16();
    if record.path.starts_with("/_test/") {
        return response;
    }
    if record.resource.is_empty() {
        record.resource.clear();
    } else {
        record.path.clear();
    }
    let Some(exchanges) = &state.exchanges else {
        lock(&state.requests).push(record);
        return response;
    };
    let (response, response_body) = if Exchange::keeps_bodies(&record) {
        // Answers to single-object requests are whole JSON documents, never streams.
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let json = serde_json::from_slice(&bytes).ok();
        (Response::from_parts(parts, Body::from(bytes)), json)
    } else {
        (response, None)
    };
    let exchange = Exchange {
        record: record.clone(),
        received,
        completed: chrono::Utc::now(),
        request: Exchange::keeps_bodies(&record)
            .then(|| serde_json::from_slice(body).ok())
            .flatten(),
        response: response_body,
    };
    // One lock for both logs, in the same order: the exchange log's order is the request
    // log's.
    let mut requests = lock(&state.requests);
    requests.push(record);
    lock(exchanges).push(exchange);
    drop(requests);
    response
}

fn verb(method: &Method, rp: &ResourcePath, watching: bool) -> &'static str {
    match (method.as_str(), rp.name.is_some(), watching) {
        ("GET", _, true) => "watch",
        ("GET", true, false) => "get",
        ("GET", false, false) => "list",
        ("POST", _, _) => "create",
        ("PUT", _, _) => "update",
        ("PATCH", _, _) => "patch",
        ("DELETE", true, _) => "delete",
        ("DELETE", false, _) => "deletecollection",
        _ => "unknown",
    }
}

fn ok_json(value: &Value) -> Response {
    (StatusCode::OK, json_body(value)).into_response()
}

fn route(state: &ServerState, path: &str) -> Route {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segments.as_slice() {
        ["_test", what] => Route::Admin((*what).to_owned()),
        ["healthz" | "livez" | "readyz"] => {
            Route::NonResource((StatusCode::OK, "ok").into_response())
        }
        ["version"] => Route::NonResource(ok_json(&json!({
            "major": "1", "minor": "35", "gitVersion": "v1.35.0-test-apiserver",
            "gitCommit": "", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "none", "compiler": "rustc", "platform": "linux/amd64",
        }))),
        ["api"] => Route::NonResource(ok_json(&json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": state.addr.to_string()}],
        }))),
        ["apis"] => {
            let groups: Vec<Value> = registry(state)
                .groups()
                .into_iter()
                .map(|(g, v)| api_group(&g, &v))
                .collect();
            Route::NonResource(ok_json(
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            ))
        }
        ["apis", group] => match registry(state)
            .groups()
            .into_iter()
            .find(|(g, _)| g == group)
        {
            Some((g, versions)) => Route::NonResource(ok_json(&api_group(&g, &versions))),
            None => Route::NonResource(ApiError::no_route(path).into_response()),
        },
        ["api", "v1"] => discovery(state, "", "v1", path),
        ["apis", group, version] => discovery(state, group, version, path),
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest, path),
        ["apis", group, version, rest @ ..] => resource_route(group, version, rest, path),
        _ => Route::NonResource(ApiError::no_route(path).into_response()),
    }
}

fn api_group(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup", "apiVersion": "v1", "name": group,
        "versions": versions, "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

fn discovery(state: &ServerState, group: &str, version: &str, path: &str) -> Route {
    match registry(state).resource_list(group, version) {
        Some(list) => Route::NonResource(ok_json(&list)),
        None => Route::NonResource(ApiError::no_route(path).into_response()),
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str], path: &str) -> Route {
    let own = |s: &&str| (*s).to_owned();
    let mut rp = ResourcePath {
        group: group.to_owned(),
        version: version.to_owned(),
        ..Default::default()
    };
    match rest {
        // A namespace's own subresources.
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => {
            rp.plural = "namespaces".into();
            rp.name = Some((*name).to_owned());
            rp.subresource = Some((*sub).to_owned());
        }
        ["namespaces", namespace, plural, tail @ ..] => {
            rp.namespace = Some((*namespace).to_owned());
            rp.plural = (*plural).to_owned();
            rp.name = tail.first().map(own);
            rp.subresource = tail.get(1).map(own);
            if tail.len() > 2 {
                return Route::NonResource(ApiError::no_route(path).into_response());
            }
        }
        [plural, tail @ ..] => {
            rp.plural = (*plural).to_owned();
            rp.name = tail.first().map(own);
            rp.subresource = tail.get(1).map(own);
            if tail.len() > 2 {
                return Route::NonResource(ApiError::no_route(path).into_response());
            }
        }
        [] => return Route::NonResource(ApiError::no_route(path).into_response()),
    }
    Route::Resource(rp)
}

fn resource(
    state: &Arc<ServerState>,
    method: &Method,
    rp: ResourcePath,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
    watching: bool,
) -> Response {
    let Some(t) = registry(state).find(&rp.group, &rp.version, &rp.plural) else {
        return ApiError::no_route(&format!("{}/{}/{}", rp.group, rp.version, rp.plural))
            .into_response();
    };
    if !t.namespaced && rp.namespace.is_some() {
        return ApiError::no_route(&rp.plural).into_response();
    }
    let status_only = match rp.subresource.as_deref() {
        None => false,
        Some("status") if t.status_subresource => true,
        Some(_) => {
            return ApiError::no_route(&format!(
                "{}/{}",
                rp.plural,
                rp.subresource.unwrap_or_default()
            ))
            .into_response();
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !body.is_empty() && (content_type.contains("protobuf") || content_type.contains("cbor")) {
        return ApiError::unsupported_body(content_type).into_response();
    }
    let writes = method != Method::GET;
    // kube-apiserver's managerOrUserAgent: a write without a fieldManager is recorded under its
    // User-Agent up to the first "/". Not an apply, which must name its manager.
    let defaulted;
    let query = if writes
        && !content_type.starts_with("application/apply-patch")
        && query.get("fieldManager").is_none_or(String::is_empty)
    {
        let mut with_manager = query.clone();
        with_manager.insert("fieldManager".into(), manager_from_user_agent(headers));
        defaulted = with_manager;
        &defaulted
    } else {
        query
    };
    let result = match (method.as_str(), rp.name.as_deref()) {
        ("GET", _) if watching => return watch(state, &t, &rp, query),
        ("GET", Some(name)) => get(state, &t, &rp, name, headers),
        ("GET", None) => list(state, &t, &rp, query, headers),
        ("POST", None) => create(state, &t, &rp, query, body),
        ("PUT", Some(name)) => update(state, &t, &rp, name, query, body, status_only),
        ("PATCH", Some(name)) => patch(state, &t, &rp, name, query, headers, body, status_only),
        ("DELETE", Some(name)) => delete(state, &t, &rp, name, query, body),
        ("DELETE", None) => delete_collection(state, &t, &rp, query, body),
        (other, _) => Err(ApiError::method_not_allowed(other)),
    };
    // Any write may have changed a CRD, directly or by deleting the last instance of a deleted
    // one: the served kinds follow before the answer goes out.
    if writes {
        sync_registry(state);
    }
    match result {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// Makes the registry serve the kinds of the stored CRDs, if any changed. The store stays
/// locked throughout, so concurrent writes cannot apply older CRD states over newer ones (no
/// handler takes the store's lock while holding the registry's).
pub fn sync_registry(state: &ServerState) {
    let mut store = lock(&state.store);
    if !store.take_crds_changed() {
        return;
    }
    let crds = store.crds();
    state
        .registry
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .sync_crds(&crds);
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept
                .split(',')
                .next()
                .is_some_and(|first| first.contains("as=Table"))
        })
}

fn columns(t: &ResourceType) -> Vec<table::PrinterColumn> {
    if t.printer_columns.is_empty() {
        table::default_columns()
    } else {
        t.printer_columns.clone()
    }
}

fn namespace_of(rp: &ResourcePath) -> &str {
    rp.namespace.as_deref().unwrap_or_default()
}

fn get(
    state: &ServerState,
    t: &ResourceType,
    rp: &ResourcePath,
    name: &str,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let (object, rv) = {
        let store = lock(&state.store);
        (
            store.get(t, namespace_of(rp), name)?,
            store.resource_version(),
        )
    };
    if wants_table(headers) {
        let table = table::build_table(
            &columns(t),
            &[object],
            &rv.to_string(),
            None,
            IncludeObject::Metadata,
        );
        return Ok(ok_json(&table));
    }
    Ok(ok_json(&object))
}

/// The label, field and namespace filter of a list or watch, owned so a stream can keep it.
/// The namespace, label and field filter a list, deletecollection or watch asks for.
fn filter(query: &Query, t: &ResourceType, rp: &ResourcePath) -> ApiResult<Filter> {
    Ok(Filter {
        namespace: rp.namespace.clone(),
        matches: Some(selector(query, t)?),
    })
}

fn selector(query: &Query, t: &ResourceType) -> ApiResult<Matcher> {
    let labels = LabelSelector::parse(
        query
            .get("labelSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )
    .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse_for_scope(
        query
            .get("fieldSelector")
            .map(String::as_str)
            .unwrap_or_default(),
        t.namespaced,
    )
    .map_err(ApiError::bad_request)?;
    Ok(Arc::new(move |object: &Value| {
        let object_labels: BTreeMap<String, String> = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        labels.matches(&object_labels) && fields.matches(object)
    }))
}

fn list(
    state: &ServerState,
    t: &ResourceType,
    rp: &ResourcePath,
    query: &Query,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let filter = filter(query, t, rp)?;
    let limit = match query.get("limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        ),
        None => None,
    };
    let page =
        lock(&state.store).list(t, &filter, limit, query.get("continue").map(String::as_str))?;
    if wants_table(headers) {
        let include = IncludeObject::parse(query.get("includeObject").map(String::as_str))
            .map_err(ApiError::bad_request)?;
        let table = table::build_table(
            &columns(t),
            &page.items,
            &page.resource_version.to_string(),
            page.continue_token.as_deref(),
            include,
        );
        return Ok(ok_json(&table));
    }
    let mut metadata = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(token) = &page.continue_token {
        metadata["continue"] = json!(token);
    }
    if let Some(remaining) = page.remaining {
        metadata["remainingItemCount"] = json!(remaining);
    }
    Ok(ok_json(&json!({
        "kind": format!("{}List", t.kind),
        "apiVersion": t.api_version(),
        "metadata": metadata,
        "items": page.items,
    })))
}

/// The field manager of a write that names none: the User-Agent before its first "/", without
/// unprintable characters, at most 128 characters; "unknown" when that leaves nothing.
fn manager_from_user_agent(headers: &HeaderMap) -> String {
    let agent = headers
        .get(header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let prefix: String = agent
        .split('/')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(128)
        .collect();
    if prefix.is_empty() {
        "unknown".to_owned()
    } else {
        prefix
    }
}

fn write_options(query: &Query) -> WriteOptions {
    WriteOptions {
        dry_run: query.get("dryRun").is_some_and(|v| v == "All"),
        field_manager: query.get("fieldManager").cloned(),
        apply: None,
    }
}

fn parse_json(body: &Bytes) -> ApiResult<Value> {
    let value: Value = serde_json::from_slice(body)
        .or_else(|_| serde_saphyr::from_slice::<Value>(body))
        .map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON or YAML: {e}"))
        })?;
    if !value.is_object() || value.get("metadata").is_some_and(|m| !m.is_object()) {
        return Err(ApiError::bad_request(
            "the request body must be an object with object metadata",
        ));
    }
    Ok(value)
}

fn create(
    state: &ServerState,
    t: &ResourceType,
    rp: &ResourcePath,
    query: &Query,
    body: &Bytes,
) -> ApiResult<Response> {
    let object = parse_json(body)?;
    if t.terminating {
        // kube's CRD handler refuses new instances while the CRD's finalizer deletes them.
        let name = object.pointer("/metadata/name").and_then(Value::as_str);
        return Err(ApiError::terminating_crd(t, name.unwrap_or_default()));
    }
    let created =
        lock(&state.store).create(t, rp.namespace.as_deref(), object, &write_options(query))?;
    Ok((StatusCode::CREATED, json_body(&created)).into_response())
}

fn update(
    state: &ServerState,
    t: &ResourceType,
    rp: &ResourcePath,
    name: &str,
    query: &Query,
    body: &Bytes,
    status_only: bool,
) -> ApiResult<Response> {
    let object = parse_json(body)?;
    let updated = lock(&state.store).update(
        t,
        namespace_of(rp),
        name,
        object,
        status_only,
        &write_options(query),
    )?;
    Ok(ok_json(&updated))
}

#[allow(clippy::too_many_arguments)]
fn patch(
    state: &ServerState,
    t: &ResourceType,
    rp: &ResourcePath,
    name: &str,
    query: &Query,
    headers: &HeaderMap,
    body: &Bytes,
    status_only: bool,
) -> ApiResult<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let options = write_options(query);
    let namespace = namespace_of(rp);
    let mut store = lock(&state.store);
    match content_type.as_str() {
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            // kube-apiserver's ValidatePatchOptions: 422 on PatchOptions, before any lookup.
            let Some(manager) = options.field_manager.clone().filter(|m| !m.is_empty()) else {
                return Err(ApiError::invalid(json!({
                    "message": "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    "details": {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{
                        "reason": "FieldValueRequired",
                        "message": "Required value: is required for apply patch",
                        "field": "fieldManager",
                    }]},
                })));
            };
            let mut config = parse_json(body)?;
            if t.status_subresource
                && !status_only
                && let Some(map) = config.as_object_mut()
            {
                map.remove("status");
            }
            let options = WriteOptions {
                apply: Some(apply::field_set(&config)),
                ..options
            };
            let old = match store.get(t, namespace, name) {
                Ok(old) => old,
                Err(e) if e.code == 404 && !status_only => {
                    if t.terminating {
                        return Err(ApiError::terminating_crd(t, name));
                    }
                    config["metadata"]["name"] = json!(name);
                    let created = store.create(t, rp.namespace.as_deref(), config, &options)?;
                    return Ok((StatusCode::CREATED, json_body(&created)).into_response());
                }
                Err(e) => return Err(e),
            };
            let found = apply::conflicts(&old, &config, &manager);
            let force = query.get("force").is_some_and(|f| f == "true");
            if !found.is_empty() && !force {
                return Err(ApiError::apply_conflict(&found));
            }
            let previous = managed_fields(&old, &manager);
            let mut applied = apply::apply(&old, &config, previous.as_ref());
            apply::take_over(&mut applied, &config, &manager);
            if config.pointer("/metadata/resourceVersion").is_none() {
                applied["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
            }
            let updated = store.update(t, namespace, name, applied, status_only, &options)?;
            Ok(ok_json(&updated))
        }
        "application/strategic-merge-patch+json" if t.custom => {
            Err(ApiError::unsupported_media_type(&content_type))
        }
        "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json" => {
            let old = store.get(t, namespace, name)?;
            let mut patched = old.clone();
            if content_type == "application/json-patch+json" {
                let operations: json_patch::Patch = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                apply_json_patch(&mut patched, &operations).map_err(|message| {
                    ApiError::invalid(
                        json!({"message": message, "details": {"name": name, "kind": t.plural}}),
                    )
                })?;
            } else {
                let merge: Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("invalid merge patch: {e}")))?;
                json_patch::merge(&mut patched, &merge);
            }
            let updated = store.update(t, namespace, name, patched, status_only, &options)?;
            Ok(ok_json(&updated))
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// Applies a JSON patch as kube-apiserver (evanphx/json-patch) does: a `test` for `null` at a
/// key missing from an existing object succeeds, which kube-runtime's `finalizer` relies on when
/// it adds the first finalizer.
fn apply_json_patch(
    doc: &mut Value,
    operations: &[json_patch::PatchOperation],
) -> Result<(), String> {
    for (index, operation) in operations.iter().enumerate() {
        if let json_patch::PatchOperation::Test(test) = operation
            && test.value.is_null()
        {
            let path = test.path.as_str();
            let parent = path.rsplit_once('/').map_or("", |(parent, _)| parent);
            if doc.pointer(parent).is_some_and(Value::is_object) && doc.pointer(path).is_none() {
                continue;
            }
        }
        json_patch::patch(doc, std::slice::from_ref(operation)).map_err(|e| {
            format!(
                "operation '/{index}' failed at path '{}': {}",
                e.path, e.kind
            )
        })?;
    }
    Ok(())
}

/// The manager's last applied field set.
fn managed_fields(object: &Value, manager: &str) -> Option<Value> {
    object
        .pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == "Apply")
        .map(|e| e["fieldsV1"].clone())
}

fn delete_options(query: &Query, body: &Bytes) -> ApiResult<DeleteOptions> {
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let policy = body["propagationPolicy"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| query.get("propagationPolicy").cloned());
    let propagation = match policy.as_deref() {
        None => None,
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some("Orphan") => Some(Propagation::Orphan),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown propagationPolicy {other:?}"
            )));
        }
    };
    let orphan = body["orphanDependents"]
        .as_bool()
        .or_else(|| query.get("orphanDependents").map(|v| v == "true"));
    let dry_run = body["dryRun"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == "All"))
        || query.get("dryRun").is_some_and(|v| v == "All");
    Ok(DeleteOptions {
        propagation: propagation.or(if orphan == Some(true) {
            Some(Propagation::Orphan)
        } else {
            None
        }),
        uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_owned),
        resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned),
        dry_run,
    })
}

fn delete(
    state: &ServerState,
    t: &ResourceType,
    rp: &ResourcePath,
    name: &str,
    query: &Query,
    body: &Bytes,
) -> ApiResult<Response> {
    let options = delete_options(query, body)?;
    let deleted = lock(&state.store).delete(t, namespace_of(rp), name, &options)?;
    // An object gone at once is answered with a Success Status, as kube-apiserver's generic
    // store does unless the kind sets ReturnDeletedObject (PVCs) or deletes in its own way.
    let returns_object = matches!(
        (t.group.as_str(), t.plural.as_str()),
        ("", "persistentvolumeclaims" | "namespaces")
            | ("apiextensions.k8s.io", "customresourcedefinitions")
    );
    if deleted.gone && !returns_object {
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {"name": name, "group": t.group, "kind": t.plural,
                        "uid": deleted.object["metadata"]["uid"]},
        });
        return Ok(ok_json(&status));
    }
    Ok(ok_json(&deleted.object))
}

fn delete_collection(
    state: &ServerState,
    t: &ResourceType,
    rp: &ResourcePath,
    query: &Query,
    body: &Bytes,
) -> ApiResult<Response> {
    let options = delete_options(query, body)?;
    let filter = filter(query, t, rp)?;
    let mut store = lock(&state.store);
    let page = store.list(t, &filter, None, None)?;
    let mut items = Vec::new();
    for object in page.items {
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match store.delete(t, &namespace, &name, &options) {
            Ok(deleted) => items.push(deleted.object),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ok_json(&json!({
        "kind": format!("{}List", t.kind),
        "apiVersion": t.api_version(),
        "metadata": {"resourceVersion": store.resource_version().to_string()},
        "items": items,
    })))
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn bookmark(t: &ResourceType, rv: u64, initial_events_end: bool) -> Value {
    let mut object = json!({"kind": t.kind, "apiVersion": t.api_version(), "metadata": {"resourceVersion": rv.to_string()}});
    if initial_events_end {
        object["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    object
}

fn watch(
    state: &Arc<ServerState>,
    t: &Arc<ResourceType>,
    rp: &ResourcePath,
    query: &Query,
) -> Response {
    let filter = match filter(query, t, rp) {
        Ok(filter) => filter,
        Err(e) => return e.into_response(),
    };
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true" || v == "1");
    let send_initial = query.get("sendInitialEvents").is_some_and(|v| v == "true");
    if send_initial && !state.streaming_lists {
        return ApiError::invalid(json!({
            "message": "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled"
        }))
        .into_response();
    }
    if send_initial && !bookmarks {
        return ApiError::invalid(
            json!({"message": "sendInitialEvents requires allowWatchBookmarks=true"}),
        )
        .into_response();
    }
    let requested_rv = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty())
        .cloned();
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(state.max_watch, Duration::from_secs)
        .min(state.max_watch);
    let (cut_events, cut_after) = {
        let faults = lock(&state.faults);
        (faults.cut_watch_after_events, faults.cut_watch_after)
    };
    let mut initial: Vec<Bytes> = Vec::new();
    let (start_rv, receiver) = {
        let store = lock(&state.store);
        match requested_rv.as_deref() {
            None | Some("0") => {
                let (objects, rv, receiver) = store.snapshot(t);
                for object in objects.iter().filter(|o| filter.accepts(o)) {
                    initial.push(event_line("ADDED", object));
                }
                if send_initial {
                    initial.push(event_line("BOOKMARK", &bookmark(t, rv, true)));
                }
                (rv, receiver)
            }
            Some(text) => {
                let Ok(since) = text.parse::<u64>() else {
                    return ApiError::bad_request(format!("invalid resourceVersion {text:?}"))
                        .into_response();
                };
                match store.watch_from(&t.storage_key(), since) {
                    Ok((backlog, receiver)) => {
                        if send_initial {
                            let (objects, rv, receiver) = store.snapshot(t);
                            for object in objects.iter().filter(|o| filter.accepts(o)) {
                                initial.push(event_line("ADDED", object));
                            }
                            initial.push(event_line("BOOKMARK", &bookmark(t, rv, true)));
                            (rv, receiver)
                        } else {
                            for event in backlog.iter().filter(|e| filter.accepts(&e.object)) {
                                initial.push(event_line(event.kind.as_str(), &event.object));
                            }
                            (
                                backlog.last().map_or(since, |e| e.resource_version),
                                receiver,
                            )
                        }
                    }
                    Err(expired) => {
                        state
                            .fault_counters
                            .watches_expired
                            .fetch_add(1, Ordering::Relaxed);
                        // kube-apiserver answers 200 and an ERROR event once a watch is set up.
                        initial.push(event_line("ERROR", &expired.to_status()));
                        let (sender, rx) = mpsc::channel(initial.len().max(1));
                        for line in initial {
                            let _ = sender.try_send(Ok::<Bytes, std::io::Error>(line));
                        }
                        return stream_response(rx);
                    }
                }
            }
        }
    };
    let (sender, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1024);
    let task = WatchTask {
        t: t.clone(),
        filter,
        bookmarks,
        bookmark_interval: state.bookmark_interval,
        timeout,
        cut_events,
        cut_after,
        counters: state.fault_counters.clone(),
        ended: state.watch_generation.subscribe(),
    };
    tokio::spawn(task.run(initial, start_rv, receiver, sender));
    stream_response(rx)
}

fn stream_response(rx: mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Response {
    let mut response = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

struct WatchTask {
    t: Arc<ResourceType>,
    filter: Filter,
    bookmarks: bool,
    bookmark_interval: Duration,
    timeout: Duration,
    cut_events: Option<usize>,
    cut_after: Option<Duration>,
    counters: Arc<FaultCounters>,
    /// Changes when every open watch is to end.
    ended: tokio::sync::watch::Receiver<u64>,
}

impl WatchTask {
    async fn run(
        mut self,
        initial: Vec<Bytes>,
        mut last_rv: u64,
        mut receiver: broadcast::Receiver<Arc<WatchEvent>>,
        sender: mpsc::Sender<Result<Bytes, std::io::Error>>,
    ) {
        let mut sent = 0usize;
        let deadline = tokio::time::Instant::now()
            + self.cut_after.map_or(self.timeout, |c| c.min(self.timeout));
        let cut = |sent: usize| {
            let cut = self.cut_events.is_some_and(|n| sent >= n);
            if cut {
                self.counters.watches_cut.fetch_add(1, Ordering::Relaxed);
            }
            cut
        };
        for line in initial {
            if cut(sent) || sender.send(Ok(line)).await.is_err() {
                return;
            }
            sent += 1;
        }
        let mut ticker = tokio::time::interval(self.bookmark_interval);
        ticker.tick().await;
        let storage = self.t.storage_key();
        loop {
            if cut(sent) {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    if self.cut_after.is_some_and(|c| c < self.timeout) {
                        self.counters.watches_cut.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                }
                () = sender.closed() => return,
                _ = self.ended.changed() => return,
                _ = ticker.tick(), if self.bookmarks => {
                    if sender.send(Ok(event_line("BOOKMARK", &bookmark(&self.t, last_rv, false)))).await.is_err() {
                        return;
                    }
                }
                received = receiver.recv() => match received {
                    Ok(event) => {
                        if event.resource_version <= last_rv {
                            continue;
                        }
                        // Every event up to here was seen, whatever its type: bookmarks carry
                        // this resourceVersion, so a resumed watch is not sent back into a
                        // window that other types' writes have compacted.
                        last_rv = event.resource_version;
                        if event.storage != storage || !self.filter.accepts(&event.object) {
                            continue;
                        }
                        let kind = match event.kind {
                            EventKind::Added => "ADDED",
                            EventKind::Modified => "MODIFIED",
                            EventKind::Deleted => "DELETED",
                        };
                        if sender.send(Ok(event_line(kind, &event.object))).await.is_err() {
                            return;
                        }
                        sent += 1;
                    }
                    // A watcher too slow to keep up is dropped, as kube-apiserver drops it.
                    Err(_) => return,
                },
            }
        }
    }
}

/// The admin endpoints the binary exposes under `/_test/` for tests in other processes.
fn admin(state: &ServerState, method: &Method, what: &str, body: &Bytes) -> Response {
    match (method.as_str(), what) {
        ("GET", "faults") => {
            ok_json(&serde_json::to_value(&*lock(&state.faults)).unwrap_or_default())
        }
        ("PUT", "faults") => match serde_json::from_slice::<Faults>(body) {
            Ok(faults) => {
                *lock(&state.faults) = faults;
                ok_json(&json!({}))
            }
            Err(e) => ApiError::bad_request(e.to_string()).into_response(),
        },
        ("GET", "requests") => {
            ok_json(&serde_json::to_value(&*lock(&state.requests)).unwrap_or_default())
        }
        ("DELETE", "requests") => {
            lock(&state.requests).clear();
            ok_json(&json!({}))
        }
        ("PUT", "event-window") => match serde_json::from_slice::<usize>(body) {
            Ok(window) => {
                lock(&state.store).set_window(window);
                ok_json(&json!({}))
            }
            Err(e) => ApiError::bad_request(e.to_string()).into_response(),
        },
        _ => ApiError::no_route(what).into_response(),
    }
}
