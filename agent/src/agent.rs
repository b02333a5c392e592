//! [`Agent`]: registers the worker, heartbeats, renews its secret, and
//! drains or terminates its [`WorkSource`] when the manager says so.

use std::future::Future;
use std::time::Duration;

use skyfleet_core::protocol::{
    Action, DrainedRequest, InterruptionNotice, RegisterRequest, ReregisterRequest,
};
use time::OffsetDateTime;

use crate::client::{ClientError, ManagerClient};
use crate::decide::{self, Next, Phase, SecretTimes};
use crate::metadata::{MetadataError, MetadataSource, WorkerIdentity};
use crate::retry::RetryPolicy;
use crate::work::{Registration, WorkError, WorkSource, WorkStatus};

/// How the agent finds its identity and treats its work.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Where the identity is read; `None` detects the cloud.
    pub source: Option<MetadataSource>,
    /// The metadata base URL the detection probes (each cloud's real
    /// address when `None`).
    pub metadata_url: Option<String>,
    /// The timeout of each metadata request.
    pub metadata_timeout: Duration,
    /// How long the work has to stop after the polite signal.
    pub drain_grace: Duration,
    /// Retries of metadata and manager calls.
    pub retry: RetryPolicy,
    /// How often the cloud's interruption notice is read
    /// ([`notice`](crate::metadata::notice)); `None` never reads it.
    pub notice_interval: Option<Duration>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            source: None,
            metadata_url: None,
            metadata_timeout: Duration::from_secs(5),
            drain_grace: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            notice_interval: Some(crate::metadata::notice::NOTICE_INTERVAL),
        }
    }
}

/// How a run ended well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Drained on the manager's request, and confirmed.
    Drained,
    /// The manager said terminate.
    Terminated,
    /// The agent was asked to stop (its shutdown future completed).
    Shutdown,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The identity could not be read.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// The manager refused, or could not be reached.
    #[error(transparent)]
    Manager(#[from] ClientError),
    /// The secret expired before it could be renewed.
    #[error("the worker secret expired at {expires} before it could be renewed")]
    SecretExpired {
        /// When it expired.
        expires: OffsetDateTime,
    },
    /// The work could not be started or told of a new secret.
    #[error(transparent)]
    Work(#[from] WorkError),
}

impl AgentError {
    /// The process exit code: 3 when the manager refused the worker's
    /// credentials (401), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            AgentError::Manager(e) if e.is_unauthorized() => 3,
            _ => 1,
        }
    }
}

/// The worker-side agent. Embed it with your own [`WorkSource`], or run
/// the `skyfleet-agent` binary around a command.
#[derive(Debug, Clone)]
pub struct Agent {
    config: AgentConfig,
}

impl Agent {
    /// An agent with `config`.
    pub fn new(config: AgentConfig) -> Self {
        Agent { config }
    }

    /// Reads this worker's identity (detecting the cloud if not set).
    pub async fn identity(&self) -> Result<WorkerIdentity, AgentError> {
        let source = match &self.config.source {
            Some(s) => s.clone(),
            None => MetadataSource::detect(self.config.metadata_url.as_deref()).await?,
        };
        Ok(source
            .identity(self.config.retry, self.config.metadata_timeout)
            .await?)
    }

    /// Where this worker's interruption notice is read: the configured
    /// source, or `cloud`'s at the configured metadata URL.
    fn notice_source(&self, cloud: crate::metadata::Cloud) -> Option<(MetadataSource, Duration)> {
        let every = self.config.notice_interval?;
        let source = match &self.config.source {
            Some(s) => s.clone(),
            None => MetadataSource::for_cloud(cloud, self.config.metadata_url.as_deref()).ok()?,
        };
        (source.cloud() != crate::metadata::Cloud::Static).then_some((source, every))
    }

    /// Runs until the manager says drain (then drained) or terminate.
    pub async fn run(&self, work: impl WorkSource) -> Result<Outcome, AgentError> {
        self.run_until(work, std::future::pending()).await
    }

    /// [`run`](Self::run), also ending when `shutdown` completes (the
    /// binary's SIGTERM): the work is stopped within the grace.
    pub async fn run_until(
        &self,
        work: impl WorkSource,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<Outcome, AgentError> {
        let mut shutdown = std::pin::pin!(shutdown);
        let identity = tokio::select! {
            id = self.identity() => id?,
            () = &mut shutdown => return Ok(Outcome::Shutdown),
        };
        self.run_with_identity(identity, work, shutdown).await
    }

    /// Runs with an identity already read.
    pub async fn run_with_identity(
        &self,
        identity: WorkerIdentity,
        mut work: impl WorkSource,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<Outcome, AgentError> {
        let mut shutdown = std::pin::pin!(shutdown);
        let boot = &identity.bootstrap;
        let client = ManagerClient::new(&boot.root_url, self.config.retry)?;
        let req = RegisterRequest {
            worker_pool_id: boot.worker_pool_id.clone(),
            worker_id: boot.worker_id.clone(),
            proof: identity.proof.clone(),
        };
        let resp = tokio::select! {
            r = client.register(&req) => r?,
            () = &mut shutdown => return Ok(Outcome::Shutdown),
        };
        tracing::info!(worker = %boot.worker_id, expires = %resp.expires, "registered");
        let mut run = Run {
            client,
            times: SecretTimes {
                received: OffsetDateTime::now_utc(),
                expires: resp.expires,
            },
            registration: Registration {
                worker_id: boot.worker_id.clone(),
                worker_pool_id: boot.worker_pool_id.clone(),
                root_url: boot.root_url.clone(),
                worker_config: resp.worker_config,
                secret: resp.secret,
                expires: resp.expires,
            },
            interval: decide::heartbeat_interval(resp.heartbeat_interval_secs),
            grace: self.config.drain_grace,
            last: WorkStatus::busy(0, 0),
            notices: self.notice_source(identity.cloud),
            notice: None,
            metadata_timeout: self.config.metadata_timeout,
            retry: self.config.retry,
        };
        work.start(&run.registration).await?;
        run.main_loop(&mut work, shutdown).await
    }
}

/// One registered run's state.
struct Run {
    client: ManagerClient,
    registration: Registration,
    times: SecretTimes,
    interval: Duration,
    grace: Duration,
    last: WorkStatus,
    /// Where the interruption notice is read, and how often.
    notices: Option<(MetadataSource, Duration)>,
    /// The interruption notice seen, reported with every heartbeat after.
    notice: Option<InterruptionNotice>,
    metadata_timeout: Duration,
    retry: RetryPolicy,
}

impl Run {
    async fn main_loop(
        &mut self,
        work: &mut impl WorkSource,
        mut shutdown: std::pin::Pin<&mut (impl Future<Output = ()> + Send)>,
    ) -> Result<Outcome, AgentError> {
        loop {
            let renewed = match self.renew_if_due().await {
                Ok(renewed) => renewed,
                Err(e) => {
                    work.stop(self.grace).await;
                    return Err(e);
                }
            };
            if renewed {
                if let Err(e) = work.rotated(&self.registration).await {
                    work.stop(self.grace).await;
                    return Err(e.into());
                }
            }
            self.last = work.status().await;
            match self.heartbeat(Phase::Working).await {
                Ok(Some(Next::StartDrain)) => return self.drain(work, shutdown).await,
                Ok(Some(Next::Terminate)) => {
                    tracing::info!("told to terminate; stopping the work");
                    work.stop(self.grace).await;
                    return Ok(Outcome::Terminated);
                }
                Ok(_) => {}
                Err(e) => {
                    work.stop(self.grace).await;
                    return Err(e);
                }
            }
            let wait = self.times.wait(OffsetDateTime::now_utc(), self.interval);
            let noticed = tokio::select! {
                n = self.watch_notice(wait) => n,
                () = &mut shutdown => {
                    tracing::info!("asked to stop; stopping the work");
                    work.stop(self.grace).await;
                    return Ok(Outcome::Shutdown);
                }
            };
            if noticed {
                // Report it at once, then drain whatever the answer (the
                // capacity goes either way) unless told to terminate.
                self.last = work.status().await;
                match self.heartbeat(Phase::Working).await {
                    Ok(Some(Next::Terminate)) => {
                        work.stop(self.grace).await;
                        return Ok(Outcome::Terminated);
                    }
                    Ok(_) => return self.drain(work, shutdown).await,
                    Err(e) => {
                        work.stop(self.grace).await;
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Waits `wait`, reading the interruption notice every notice interval
    /// meanwhile: true as soon as a notice is seen (it is kept in
    /// `self.notice`). A notice that cannot be read is logged and read
    /// again at the next interval.
    async fn watch_notice(&mut self, wait: Duration) -> bool {
        let Some((source, every)) = self.notices.clone() else {
            tokio::time::sleep(wait).await;
            return false;
        };
        let until = tokio::time::Instant::now() + wait;
        loop {
            match source.interruption(self.retry, self.metadata_timeout).await {
                Ok(Some(notice)) => {
                    tracing::warn!(
                        action = notice.action.as_str(),
                        not_before = ?notice.not_before,
                        "interruption notice: draining now"
                    );
                    self.notice = Some(notice);
                    return true;
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "could not read the interruption notice"),
            }
            let now = tokio::time::Instant::now();
            if now >= until {
                return false;
            }
            tokio::time::sleep((until - now).min(every)).await;
            if tokio::time::Instant::now() >= until {
                return false;
            }
        }
    }

    /// Heartbeats as draining while the work stops, then confirms
    /// `drained`.
    async fn drain(
        &mut self,
        work: &mut impl WorkSource,
        mut shutdown: std::pin::Pin<&mut (impl Future<Output = ()> + Send)>,
    ) -> Result<Outcome, AgentError> {
        tracing::info!(
            grace_s = self.grace.as_secs(),
            "told to drain; stopping the work"
        );
        let mut terminate = false;
        let mut failure = None;
        let mut shutdown_seen = false;
        {
            let stop = work.stop(self.grace);
            let mut stop = std::pin::pin!(stop);
            // The first heartbeat as draining goes out at once.
            let mut wait = Duration::ZERO;
            loop {
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(wait), if failure.is_none() => {
                        // The work is being stopped: a new secret is not
                        // handed to it, only used for the heartbeats.
                        let outcome = match self.renew_if_due().await {
                            Ok(_) => self.heartbeat(Phase::Draining).await,
                            Err(e) => Err(e),
                        };
                        match outcome {
                            Ok(Some(Next::Terminate)) => terminate = true,
                            Ok(_) => {}
                            Err(e) => failure = Some(e),
                        }
                        wait = self.times.wait(OffsetDateTime::now_utc(), self.interval);
                    }
                    () = &mut shutdown, if !shutdown_seen => {
                        // Already stopping: just finish.
                        shutdown_seen = true;
                    }
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if terminate {
            return Ok(Outcome::Terminated);
        }
        let resp = self
            .client
            .drained(
                &self.registration.secret,
                &DrainedRequest {
                    worker_id: self.registration.worker_id.clone(),
                },
            )
            .await?;
        if resp.action != Action::Terminate {
            tracing::warn!(
                action = resp.action.as_str(),
                "unexpected answer to drained; exiting anyway"
            );
        }
        tracing::info!("drained");
        Ok(Outcome::Drained)
    }

    /// One heartbeat in `phase`: the decision, or `None` when it could not
    /// be sent (transient: the next one may get through).
    async fn heartbeat(&mut self, phase: Phase) -> Result<Option<Next>, AgentError> {
        let mut req = decide::report(&self.registration.worker_id, phase, &self.last);
        req.interruption = self.notice.clone();
        match self.client.heartbeat(&self.registration.secret, &req).await {
            Ok(resp) => {
                self.interval = decide::heartbeat_interval(resp.heartbeat_interval_secs);
                tracing::debug!(state = %req.state, action = resp.action.as_str(), "heartbeat");
                Ok(Some(decide::on_answer(phase, resp.action)))
            }
            Err(e) if is_final(&e) => Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed; trying again at the next one");
                self.check_expiry()?;
                Ok(None)
            }
        }
    }

    /// Renews the secret when three quarters of its life have passed
    /// (true when it did); a transient failure is retried at the next
    /// look, until the secret expires.
    async fn renew_if_due(&mut self) -> Result<bool, AgentError> {
        if !self.times.renew_due(OffsetDateTime::now_utc()) {
            return Ok(false);
        }
        let req = ReregisterRequest {
            worker_id: self.registration.worker_id.clone(),
        };
        match self
            .client
            .reregister(&self.registration.secret, &req)
            .await
        {
            Ok(resp) => {
                tracing::info!(expires = %resp.expires, "secret renewed");
                self.registration.secret = resp.secret;
                self.registration.expires = resp.expires;
                self.times = SecretTimes {
                    received: OffsetDateTime::now_utc(),
                    expires: resp.expires,
                };
                Ok(true)
            }
            Err(e) if is_final(&e) => Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "renewing the secret failed; trying again");
                self.check_expiry().map(|()| false)
            }
        }
    }

    fn check_expiry(&self) -> Result<(), AgentError> {
        if self.times.expired(OffsetDateTime::now_utc()) {
            return Err(AgentError::SecretExpired {
                expires: self.times.expires,
            });
        }
        Ok(())
    }
}

/// Whether a manager error ends the run: a 401, or a refusal (4xx) that a
/// retry would not change.
fn is_final(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Unauthorized { .. } | ClientError::Refused { .. }
    )
}
