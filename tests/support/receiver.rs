//! A real HTTP receiver on loopback for the control-plane event post (`POST /api/agent/events`), answering with a
//! status the test can change.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// A real HTTP receiver for `/api/agent/events` that answers with a settable status.
pub struct Receiver {
    pub addr: SocketAddr,
    pub status: Arc<AtomicU16>,
    /// How long it takes to answer, in milliseconds (a slow control plane).
    pub delay_ms: Arc<AtomicU64>,
    pub events: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let status = Arc::new(AtomicU16::new(204));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let events: Arc<Mutex<Vec<Value>>> = Arc::default();
        let (s, d, e) = (status.clone(), delay_ms.clone(), events.clone());
        let app = axum::Router::new().route(
            "/api/agent/events",
            axum::routing::post(move |body: axum::body::Bytes| {
                let (s, d, e) = (s.clone(), d.clone(), e.clone());
                async move {
                    let delay = d.load(Ordering::SeqCst);
                    if delay > 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                    }
                    let code = s.load(Ordering::SeqCst);
                    if code == 204 {
                        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        if let Some(list) = v["events"].as_array() {
                            e.lock().unwrap().extend(list.iter().cloned());
                        }
                    }
                    axum::http::StatusCode::from_u16(code).unwrap()
                }
            }),
        );
        // Loopback, or inside the test bed's node its bridge address, where Pods reach it.
        let host = super::stack::stack_host();
        let listener = tokio::net::TcpListener::bind(format!("{host}:0"))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            addr,
            status,
            delay_ms,
            events,
        }
    }

    pub fn keys(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| e["eventKey"].as_str().map(str::to_string))
            .collect()
    }
}
