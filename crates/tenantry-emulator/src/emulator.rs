//! Starting and stopping an emulator: [`EmulatorBuilder`] and the running [`Emulator`] handle.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::account::{Account, BilledUsage, CostRounding, Prices};
use crate::batch::BatchStore;
use crate::cache::PromptCache;
use crate::clock::Clock;
use crate::conn::{ConnHandle, KillableListener};
use crate::error::{Error, Result};
use crate::faults::{FaultCounts, FaultPlan, Injector};
use crate::ids::IdGen;
use crate::params::default_models;
use crate::ratelimit::RateLimiter;
use crate::responder::{EchoResponder, Responder};
use crate::server::{Shared, router};

/// The real API's limit on a batch create body: 256 MB.
pub const MAX_BATCH_BODY_BYTES: usize = 256 * 1024 * 1024;

/// Configures an [`Emulator`]. Every setter consumes and returns the builder.
#[derive(Debug)]
#[must_use]
pub struct EmulatorBuilder {
    addr: SocketAddr,
    latency: Duration,
    seed: u64,
    keys: Vec<(String, Option<String>)>,
    faults: FaultPlan,
    responder: Arc<dyn Responder>,
    time_scale: u32,
    max_batch_bytes: usize,
    models: Vec<(String, u32)>,
    body_timeout: Duration,
    requests_per_minute: Option<u64>,
    admin_keys: Vec<String>,
    prices: Vec<(String, Prices)>,
}

impl Default for EmulatorBuilder {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            latency: Duration::from_secs(1),
            seed: 0,
            keys: Vec::new(),
            faults: FaultPlan::new(),
            responder: Arc::new(EchoResponder),
            time_scale: 1,
            max_batch_bytes: MAX_BATCH_BODY_BYTES,
            models: default_models(),
            body_timeout: Duration::from_secs(30),
            requests_per_minute: None,
            admin_keys: Vec::new(),
            prices: Vec::new(),
        }
    }
}

impl EmulatorBuilder {
    /// The address to listen on. Default `127.0.0.1:0` (a free port on loopback).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Virtual time from a batch's creation until it ends (requests finish evenly spread
    /// over it; longer than the 24-hour expiry leaves some `expired`). Default 1 second;
    /// capped at 365 days.
    pub fn batch_latency(mut self, latency: Duration) -> Self {
        self.latency = latency.min(crate::server::MAX_LATENCY);
        self
    }

    /// Seed of every random choice: ids, results order, probabilistic faults. Default 0.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Accepts this API key (repeatable). Each key gets its own workspace. Default: no
    /// list, and any non-empty key is accepted (each distinct key its own workspace).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.keys.push((key.into(), None));
        self
    }

    /// Accepts this API key as a member of `workspace`: keys of one workspace see the same
    /// batches. Default: none.
    pub fn api_key_in_workspace(
        mut self,
        key: impl Into<String>,
        workspace: impl Into<String>,
    ) -> Self {
        self.keys.push((key.into(), Some(workspace.into())));
        self
    }

    /// Accepts this Admin API key (repeatable; it must start with `sk-ant-admin`). Admin keys
    /// are refused by the Messages and Message Batches APIs and are the only keys the usage
    /// and cost reports accept. Default: no list, and any `sk-ant-admin…` key is accepted
    /// while no [`api_key`](Self::api_key) list is set either.
    pub fn admin_key(mut self, key: impl Into<String>) -> Self {
        self.admin_keys.push(key.into());
        self
    }

    /// Prices `model` at `prices` in the account's cost report (standard context window;
    /// see [`Emulator::change_price`] for a change at a date). Default: the public list
    /// prices of the known models (see the crate docs).
    pub fn price(mut self, model: impl Into<String>, prices: Prices) -> Self {
        self.prices.push((model.into(), prices));
        self
    }

    /// Faults to inject. Default: none.
    pub fn faults(mut self, plan: FaultPlan) -> Self {
        self.faults = plan;
        self
    }

    /// Who decides message content. Default [`EchoResponder`].
    pub fn responder(mut self, responder: impl Responder) -> Self {
        self.responder = Arc::new(responder);
        self
    }

    /// Initial speed of the virtual clock (see [`Clock::set_scale`]). Default 1 (real time).
    pub fn time_scale(mut self, scale: u32) -> Self {
        self.time_scale = scale;
        self
    }

    /// Largest accepted batch create body; larger ones get 413 `request_too_large`.
    /// Default [`MAX_BATCH_BODY_BYTES`] (256 MB, the real limit).
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// Longest pause while receiving a request body; a client that stalls longer gets
    /// 408 `timeout_error` instead of holding the request open. Default 30 seconds.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// Limits each workspace to `limit` requests per (virtual) minute over all endpoints:
    /// beyond it the answer is 429 `rate_limit_error` with `retry-after`, and every answer
    /// carries `anthropic-ratelimit-requests-{limit,remaining,reset}`. Default: no limit
    /// and no rate-limit headers.
    pub fn requests_per_minute(mut self, limit: u64) -> Self {
        self.requests_per_minute = Some(limit);
        self
    }

    /// Adds (or changes) a model the emulator accepts, with its maximum output tokens.
    /// Default: the current Claude models (see the crate docs).
    pub fn model(mut self, name: impl Into<String>, max_output_tokens: u32) -> Self {
        let name = name.into();
        self.models.retain(|(known, _)| *known != name);
        self.models.push((name, max_output_tokens));
        self
    }

    /// Binds the socket and starts serving on the current Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] when the address cannot be bound, [`Error::LocalAddr`] when the
    /// bound address cannot be read.
    pub async fn start(self) -> Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: self.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(Error::LocalAddr)?;
        let base_url = base_url_for(addr);
        // Keys without an explicit workspace each get a distinct one.
        let keys = (!self.keys.is_empty()).then(|| {
            self.keys
                .into_iter()
                .enumerate()
                .map(|(i, (key, workspace))| {
                    (
                        key,
                        workspace.unwrap_or_else(|| format!("wrkspc_01key{i:04}")),
                    )
                })
                .collect::<HashMap<_, _>>()
        });
        let clock = Clock::new();
        clock.set_scale(self.time_scale);
        let shared = Arc::new(Shared {
            clock,
            latency: Mutex::new(self.latency),
            keys,
            models: self.models,
            ids: Mutex::new(IdGen::new(self.seed)),
            responder: self.responder,
            cache: PromptCache::default(),
            faults: Injector::new(self.faults, self.seed),
            batches: BatchStore::default(),
            served: crate::served::ServedLog::default(),
            base_url: base_url.clone(),
            max_batch_bytes: self.max_batch_bytes,
            body_timeout: self.body_timeout,
            rate: self.requests_per_minute.map(RateLimiter::new),
            account: Account::new(self.prices),
            admin_keys: self.admin_keys,
        });
        let app = router(shared.clone()).into_make_service_with_connect_info::<ConnHandle>();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = axum::serve(KillableListener { inner: listener }, app).with_graceful_shutdown(
            async move {
                let _ = stopped.await;
            },
        );
        let task = tokio::spawn(async move {
            let _ = server.await;
        });
        Ok(Emulator {
            shared,
            base_url,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// The URL clients dial: a wildcard bind (`0.0.0.0`, `::`) is reached through loopback.
fn base_url_for(addr: SocketAddr) -> String {
    let mut dial = addr;
    if addr.ip().is_unspecified() {
        dial.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{dial}")
}

/// A running emulator. Dropping it stops the server.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use tenantry_emulator::{Emulator, Endpoint, Fault, FaultPlan};
///
/// let emu = Emulator::builder()
///     .batch_latency(Duration::from_millis(200))
///     .seed(7)
///     .api_key("sk-test")
///     .faults(FaultPlan::new().script(Endpoint::CreateBatch, Fault::overloaded(), 2))
///     .start()
///     .await?;
/// assert!(emu.base_url().starts_with("http://127.0.0.1:"));
/// emu.clock().advance(Duration::from_secs(60));
/// assert_eq!(emu.fault_counts().total_injected(), 0);
/// emu.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Emulator {
    shared: Arc<Shared>,
    base_url: String,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Emulator {
    /// A builder with every default (see [`EmulatorBuilder`]).
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder::default()
    }

    /// The base URL clients use, e.g. `http://127.0.0.1:41234` (no trailing slash).
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The bound socket address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A snapshot of requests served and faults injected per endpoint.
    #[must_use]
    pub fn fault_counts(&self) -> FaultCounts {
        self.shared.faults.counts()
    }

    /// What the API received and billed so far: every batch's `custom_id`s and, once it
    /// ended, the requests it billed; every generated message and its usage.
    #[must_use]
    pub fn served(&self) -> crate::Served {
        self.shared.served.snapshot(self.shared.clock.now())
    }

    /// Every request the API billed so far, as its usage and cost reports count it before
    /// any [disagreement](Self::drop_from_account) is injected: each Messages API call and
    /// each processed request of an ended batch, with its dimensions; oldest first.
    #[must_use]
    pub fn billed(&self) -> Vec<BilledUsage> {
        self.shared.billed()
    }

    /// The id under which the usage report shows requests made with `key` (`apikey_01…`);
    /// derived from the key, and never the key itself.
    #[must_use]
    pub fn api_key_id(&self, key: &str) -> String {
        crate::server::api_key_id(key)
    }

    /// The workspace of `key` (`wrkspc_01…`), as the reports show it; `None` for a key the
    /// emulator does not accept.
    #[must_use]
    pub fn workspace_id(&self, key: &str) -> Option<String> {
        match &self.shared.keys {
            Some(keys) => keys.get(key).cloned(),
            None => Some(crate::server::workspace_of_key(key)),
        }
    }

    /// The account's price of `model` changes to `prices` from `from` on (virtual time of
    /// each request): the cost report prices later requests at the new rates, and a ledger
    /// with the old price book disagrees by the difference.
    pub fn change_price(&self, model: &str, from: time::OffsetDateTime, prices: Prices) {
        self.shared.account.change_price(model, from, prices);
    }

    /// The account loses the request that answered with message `message_id`: both reports
    /// leave it out, although the client received (and was billed for) it.
    pub fn drop_from_account(&self, message_id: &str) {
        self.shared.account.drop_request(message_id);
    }

    /// The account counts the request that answered with message `message_id` twice in
    /// both reports.
    pub fn double_in_account(&self, message_id: &str) {
        self.shared.account.double_request(message_id);
    }

    /// How the cost report writes its amounts from now on. Default [`CostRounding::Exact`].
    pub fn set_cost_rounding(&self, rounding: CostRounding) {
        self.shared.account.set_rounding(rounding);
    }

    /// The emulator's virtual clock.
    #[must_use]
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// Changes the batch latency for batches created from now on.
    pub fn set_batch_latency(&self, latency: Duration) {
        self.shared.set_latency(latency);
    }

    /// Replaces the fault plan; scripted rules count calls from now on. Counters are kept.
    pub fn set_faults(&self, plan: FaultPlan) {
        self.shared.faults.replace(plan);
    }

    /// Stops accepting connections and waits (up to one second) for open requests to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(1), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::base_url_for;

    #[test]
    fn wildcard_binds_are_dialed_on_loopback() {
        assert_eq!(
            base_url_for("0.0.0.0:80".parse().unwrap()),
            "http://127.0.0.1:80"
        );
        assert_eq!(base_url_for("[::]:81".parse().unwrap()), "http://[::1]:81");
        assert_eq!(
            base_url_for("10.1.2.3:82".parse().unwrap()),
            "http://10.1.2.3:82"
        );
    }
}
