//! [`TaskSender`]: the sender half of a task's request queue, strong or weak. A task stops
//! when its last strong sender is gone; weak ones (the RPC server's, timers') never keep it
//! running past shutdown.

use tokio::sync::mpsc;

/// A strong or weak sender to a task's queue.
pub(crate) enum TaskSender<T> {
    Strong(mpsc::Sender<T>),
    Weak(mpsc::WeakSender<T>),
}

impl<T> Clone for TaskSender<T> {
    fn clone(&self) -> TaskSender<T> {
        match self {
            TaskSender::Strong(s) => TaskSender::Strong(s.clone()),
            TaskSender::Weak(w) => TaskSender::Weak(w.clone()),
        }
    }
}

impl<T> TaskSender<T> {
    /// The weak form of this sender.
    pub(crate) fn downgrade(&self) -> TaskSender<T> {
        match self {
            TaskSender::Strong(s) => TaskSender::Weak(s.downgrade()),
            TaskSender::Weak(w) => TaskSender::Weak(w.clone()),
        }
    }

    /// A usable sender, unless the task has stopped.
    pub(crate) fn get(&self) -> Option<mpsc::Sender<T>> {
        match self {
            TaskSender::Strong(s) => Some(s.clone()),
            TaskSender::Weak(w) => w.upgrade(),
        }
    }
}
