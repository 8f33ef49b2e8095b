//! Events: core/v1 Events stored like any kind (clients may create them too), the emulator's own
//! kubelet and scheduler events for pods (so `kubectl describe` explains a pod), and the
//! events.k8s.io/v1 view of the same objects.

use super::extract::{AppState, Params, PathParams};
use super::shared::Shared;
use super::status::ApiError;
use super::store::{now, Key, Kind, Store};
use super::table;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::Json;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};
use std::collections::BTreeMap;

impl Kind for Event {
    const NAMESPACED: bool = true;
    const ENFORCED: bool = false;
    const DELETE_RETURNS_STATUS: bool = true;
    const FIELDS: &'static [&'static str] = &[
        "metadata.name",
        "metadata.namespace",
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ];
    const COLUMNS: &'static [table::Column] = table::EVENT_COLUMNS;

    fn cells(&self, now: k8s_openapi::jiff::Timestamp) -> Vec<String> {
        table::event_cells(self, now)
    }

    fn table(store: &Store) -> &BTreeMap<Key, Self> {
        &store.events
    }
    fn table_mut(store: &mut Store) -> &mut BTreeMap<Key, Self> {
        &mut store.events
    }

    fn admit(_: &Store, event: &mut Self, _old: Option<&Self>) -> Result<(), ApiError> {
        // Events recorded without a count or times read as one occurrence, now.
        event.count.get_or_insert(1);
        if event.first_timestamp.is_none() && event.event_time.is_none() {
            event.first_timestamp = Some(now());
        }
        if event.last_timestamp.is_none() {
            event.last_timestamp = event.first_timestamp.clone();
        }
        Ok(())
    }

    fn field(&self, label: &str) -> String {
        let o = &self.involved_object;
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        match label {
            "metadata.name" => text(&self.metadata.name),
            "metadata.namespace" => text(&self.metadata.namespace),
            "involvedObject.kind" => text(&o.kind),
            "involvedObject.namespace" => text(&o.namespace),
            "involvedObject.name" => text(&o.name),
            "involvedObject.uid" => text(&o.uid),
            "involvedObject.apiVersion" => text(&o.api_version),
            "involvedObject.resourceVersion" => text(&o.resource_version),
            "involvedObject.fieldPath" => text(&o.field_path),
            "reason" => text(&self.reason),
            "reportingComponent" => text(&self.reporting_component),
            "source" => self
                .source
                .as_ref()
                .and_then(|s| s.component.clone())
                .unwrap_or_default(),
            "type" => text(&self.type_),
            _ => String::new(),
        }
    }
}

/// Whether an event is Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Normal,
    Warning,
}

/// Who reports a pod event, as on a real node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reporter {
    Scheduler,
    Kubelet,
}

/// Records an event about `pod` (its first container, when `container` is set), as the
/// scheduler or the kubelet does.
pub(crate) fn record_pod_event(
    shared: &Shared,
    pod: &Pod,
    container: bool,
    severity: Severity,
    reason: &str,
    message: String,
) {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut store = shared.store();
    let suffix = store.next_event_suffix();
    let event = pod_event(
        pod,
        &shared.node.name,
        &suffix,
        container,
        severity,
        reason,
        message,
    );
    // The namespace may be going away meanwhile; then the event has nowhere to go.
    let _ = store.create(&namespace, event, false);
}

/// The core/v1 Event the scheduler or the kubelet of `node` records about `pod` (its first
/// container, when `container` is set), named `<pod>.<suffix>`: the emulator's and the
/// reference cluster's node agent record the same ones.
pub(crate) fn pod_event(
    pod: &Pod,
    node: &str,
    suffix: &str,
    container: bool,
    severity: Severity,
    reason: &str,
    message: String,
) -> Event {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let field_path = container
        .then(|| pod.spec.as_ref().and_then(|s| s.containers.first()))
        .flatten()
        .map(|c| format!("spec.containers{{{}}}", c.name));
    let (component, host) = match reporter_of(reason) {
        Reporter::Scheduler => ("default-scheduler", None),
        Reporter::Kubelet => ("kubelet", Some(node.to_string())),
    };
    let time = now();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{pod_name}.{suffix}")),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod_name),
            namespace: Some(namespace),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            field_path,
        },
        reason: Some(reason.into()),
        message: Some(message),
        source: Some(EventSource {
            component: Some(component.into()),
            host: host.clone(),
        }),
        first_timestamp: Some(time.clone()),
        last_timestamp: Some(time),
        count: Some(1),
        type_: Some(
            match severity {
                Severity::Normal => "Normal",
                Severity::Warning => "Warning",
            }
            .into(),
        ),
        reporting_component: Some(component.into()),
        reporting_instance: Some(host.unwrap_or_default()),
        ..Default::default()
    }
}

fn reporter_of(reason: &str) -> Reporter {
    if reason == "Scheduled" || reason == "FailedScheduling" {
        Reporter::Scheduler
    } else {
        Reporter::Kubelet
    }
}

/// A core/v1 Event as events.k8s.io/v1 shows it.
fn as_events_v1(event: &Event) -> Value {
    let mut metadata = serde_json::to_value(&event.metadata).unwrap_or(json!({}));
    if let Value::Object(m) = &mut metadata {
        m.retain(|_, v| !v.is_null());
    }
    let mut v = json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": metadata,
        "eventTime": event.event_time.as_ref().map(|t| t.0.to_string()),
        "reportingController": event.reporting_component.clone().or_else(|| event.source.as_ref().and_then(|s| s.component.clone())),
        "reportingInstance": event.reporting_instance,
        "action": event.action,
        "reason": event.reason,
        "regarding": event.involved_object,
        "related": event.related,
        "note": event.message,
        "type": event.type_,
        "deprecatedSource": event.source,
        "deprecatedFirstTimestamp": event.first_timestamp,
        "deprecatedLastTimestamp": event.last_timestamp,
        "deprecatedCount": event.count,
    });
    if let Value::Object(m) = &mut v {
        m.retain(|_, v| !v.is_null());
    }
    v
}

/// `GET /apis/events.k8s.io/v1[/namespaces/NS]/events`: the stored events in that version.
pub(crate) async fn list_v1(
    State(s): AppState,
    Path(p): PathParams,
    uri: Uri,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let params = Params::from_uri(&uri)?;
    if params.flag("watch") {
        return Err(ApiError::method_not_allowed(
            "watch is not supported by the netassay sandbox API server; poll with list or get",
        ));
    }
    let labels = super::selector::LabelQuery::parse(params.get("labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = super::selector::FieldQuery::parse(
        &params
            .get("fieldSelector")
            .unwrap_or("")
            .replace("regarding.", "involvedObject."),
        Event::FIELDS,
    )
    .map_err(ApiError::bad_request)?;
    let store = s.store();
    let items: Vec<Value> = store
        .list::<Event>(p.get("namespace").map(String::as_str), &labels, &fields)
        .iter()
        .map(as_events_v1)
        .collect();
    Ok((
        StatusCode::OK,
        Json(json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "EventList",
            "metadata": {"resourceVersion": store.revision()},
            "items": items,
        })),
    ))
}

/// `GET /apis/events.k8s.io/v1/namespaces/NS/events/NAME`.
pub(crate) async fn get_v1(
    State(s): AppState,
    Path(p): PathParams,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let namespace = p.get("namespace").cloned().unwrap_or_default();
    let name = p.get("name").cloned().unwrap_or_default();
    let event = s
        .store()
        .get::<Event>(&namespace, &name)
        .map_err(|_| ApiError::not_found("events.k8s.io", "events", &name))?;
    Ok((StatusCode::OK, Json(as_events_v1(&event))))
}
