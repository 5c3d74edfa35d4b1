//! A scripted Kubernetes API for the backend's tests: a kube::Client over tower-test's mock
//! service, and a task that answers each request with the next step of a script after
//! checking its method, path and query. No network: requests never leave the process.
//!
//! A step's reply is fixed JSON, a stream of watch events (one JSON per line, then the end
//! of the stream), or built from what was written before: the last object echoed back
//! (`Echo`), a JSON merge patch applied to a base object (`MergePatch`, what the API server
//! does with our Node and Pod patches), or the last object returned as the one item of a list.

use std::sync::{Arc, Mutex};

use http::{Method, Request, Response};
use kube::{Client, client::Body};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

pub enum Reply {
    Json(u16, Value),
    /// Watch events, one per line; the stream ends after the last.
    Events(Vec<Value>),
    /// The request's body with this resourceVersion (a create or replace that succeeds).
    Echo(u16, &'static str),
    /// The request's body, a JSON merge patch, applied to the last object returned (or to
    /// `base` when given), with this resourceVersion.
    MergePatch(Option<Value>, &'static str),
    /// The last object returned.
    Last,
    /// A list holding the last object returned, at this resourceVersion.
    ListOfLast(&'static str),
}

pub struct Step {
    method: Method,
    path: String,
    query: Vec<String>,
    reply: Reply,
}

impl Step {
    pub fn new(method: Method, path: &str, reply: Reply) -> Step {
        Step {
            method,
            path: path.to_string(),
            query: Vec::new(),
            reply,
        }
    }

    pub fn get(path: &str, reply: Reply) -> Step {
        Step::new(Method::GET, path, reply)
    }

    /// The request's query must contain `text` (as sent, URL-encoded).
    pub fn query(mut self, text: &str) -> Step {
        self.query.push(text.to_string());
        self
    }
}

/// What the script saw: the JSON bodies of the requests, in order (Null for none).
pub struct Served {
    task: JoinHandle<Vec<Value>>,
}

impl Served {
    /// The request bodies, once every step was served (fails if one was not, or if a
    /// request did not match its step).
    pub async fn bodies(self) -> Vec<Value> {
        self.task.await.expect("the scripted API server failed")
    }
}

/// A client whose requests the script answers, in order.
pub fn scripted(steps: Vec<Step>) -> (Client, Served) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let last = Arc::new(Mutex::new(Value::Null));
    let task = tokio::spawn(async move {
        let mut bodies = Vec::new();
        for (index, step) in steps.into_iter().enumerate() {
            let (request, send) = handle.next_request().await.unwrap_or_else(|| {
                panic!(
                    "step {index}: no request came ({} {})",
                    step.method, step.path
                )
            });
            let (parts, body) = request.into_parts();
            let query = parts.uri.query().unwrap_or_default().to_string();
            assert_eq!(
                (&parts.method, parts.uri.path()),
                (&step.method, step.path.as_str()),
                "step {index}: unexpected request {} {}?{query}",
                parts.method,
                parts.uri.path()
            );
            for text in &step.query {
                assert!(
                    query.contains(text.as_str()),
                    "step {index}: query {query:?} lacks {text:?}"
                );
            }
            let bytes = body.collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            let (status, payload) = reply(step.reply, &body, &last);
            bodies.push(body);
            let response = Response::builder()
                .status(status)
                .body(Body::from(payload))
                .unwrap();
            send.send_response(response);
        }
        bodies
    });
    (Client::new(service, "default"), Served { task })
}

fn reply(reply: Reply, body: &Value, last: &Mutex<Value>) -> (u16, Vec<u8>) {
    let mut last = last.lock().unwrap();
    let with_version = |mut object: Value, version: &str| {
        object["metadata"]["resourceVersion"] = json!(version);
        object
    };
    let (status, value) = match reply {
        Reply::Events(events) => {
            let lines: String = events.iter().map(|event| format!("{event}\n")).collect();
            return (200, lines.into_bytes());
        }
        Reply::Json(status, value) => (status, value),
        Reply::Echo(status, version) => (status, with_version(body.clone(), version)),
        Reply::MergePatch(base, version) => {
            let mut object = base.unwrap_or_else(|| last.clone());
            merge_patch(&mut object, body);
            (200, with_version(object, version))
        }
        Reply::Last => (200, last.clone()),
        Reply::ListOfLast(version) => {
            let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": version}, "items": [last.clone()]});
            return (200, list.to_string().into_bytes());
        }
    };
    if (200..300).contains(&status) && value.get("metadata").is_some() {
        *last = value.clone();
    }
    (status, value.to_string().into_bytes())
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let target = target.as_object_mut().unwrap();
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// A Kubernetes Status (the body of an error answer, or of an ERROR watch event).
pub fn status(code: u16, reason: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": code, "reason": reason, "message": reason})
}

/// A list answer at `version`.
pub fn list(items: Vec<Value>, version: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": version}, "items": items})
}

/// A watch event line.
pub fn event(kind: &str, object: Value) -> Value {
    json!({"type": kind, "object": object})
}

/// A manul.dev/v1 object of `kind` named `name` at `version` with `spec`.
pub fn custom(kind: &str, name: &str, version: &str, spec: Value) -> Value {
    json!({"apiVersion": "manul.dev/v1", "kind": kind,
        "metadata": {"name": name, "resourceVersion": version}, "spec": spec})
}

/// A BOOKMARK event at `version`.
pub fn bookmark(kind: &str, version: &str) -> Value {
    event(
        "BOOKMARK",
        json!({"apiVersion": "manul.dev/v1", "kind": kind, "metadata": {"resourceVersion": version}}),
    )
}
