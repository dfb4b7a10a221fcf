//! Batched ReadIndex: one leadership confirmation serves every read that was waiting
//! when it started (etcd's read loop). A reader arriving while a round runs waits for the
//! next one, which is what makes the answer linearizable.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use crate::batcher::WriteError;

#[derive(Clone)]
pub struct ReadGate {
    tx: mpsc::UnboundedSender<oneshot::Sender<Result<u64, WriteError>>>,
}

impl ReadGate {
    /// `source` obtains a read index (a log index whose application makes a read current);
    /// the gate runs on `runtime`, best the one `source` talks to.
    pub fn start<F, Fut>(
        runtime: &tokio::runtime::Handle,
        source: F,
        on_round: impl Fn() + Send + 'static,
    ) -> ReadGate
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, WriteError>> + Send,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<Result<u64, WriteError>>>();
        runtime.spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = vec![first];
                while let Ok(w) = rx.try_recv() {
                    waiters.push(w);
                }
                on_round();
                let result = source().await;
                for w in waiters {
                    let _ = w.send(result.clone());
                }
            }
        });
        ReadGate { tx }
    }

    /// A read index obtained after this call started.
    pub async fn read_index(&self) -> Result<u64, WriteError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(tx).map_err(|_| WriteError::Unknown("shutting down".into()))?;
        rx.await.map_err(|_| WriteError::Unknown("shutting down".into()))?
    }
}
