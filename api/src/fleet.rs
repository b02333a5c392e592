//! [`WorkerService`] for the fleet runtime: each call is the [`Fleet`]
//! library call of the same name, so the HTTP API and an embedder calling
//! the fleet directly behave alike.

use async_trait::async_trait;
use skyfleet_core::fleet::Fleet;
use skyfleet_core::protocol::{
    DrainedResponse, HeartbeatRequest, HeartbeatResponse, RegisterRequest, RegisterResponse,
    ReregisterResponse,
};
use skyfleet_core::provider::support::Secret;
use skyfleet_core::Result;

use crate::WorkerService;

#[async_trait]
impl WorkerService for Fleet {
    async fn register(&self, req: RegisterRequest) -> Result<RegisterResponse> {
        Fleet::register(self, req).await
    }

    async fn reregister(&self, worker_id: &str, secret: &Secret) -> Result<ReregisterResponse> {
        Fleet::reregister(self, worker_id, secret).await
    }

    async fn heartbeat(&self, secret: &Secret, req: HeartbeatRequest) -> Result<HeartbeatResponse> {
        Fleet::heartbeat(self, secret, req).await
    }

    async fn drained(&self, worker_id: &str, secret: &Secret) -> Result<DrainedResponse> {
        Fleet::drained(self, worker_id, secret).await
    }
}
