//! The function binary, run as Lambda runs it ([`FunctionCommand`]), and the
//! running process with what it prints ([`FunctionProcess`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::emulator::open_instance;
use super::invocations::Shared;
use super::{RuntimeApi, lock};

/// The function binary as Lambda would start it: the environment of a
/// `provided.al2023` function of 128 MB, pointed at the emulator; nothing else
/// is inherited from the caller's environment ([`FunctionCommand::env`] adds
/// the function's own settings). Clone it to start another process of the same
/// function (Lambda starts a new execution environment after one died).
///
/// ```
/// use std::time::Duration;
/// use local_lambda::runtime_api::{FunctionCommand, FunctionId, RuntimeApi};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let api = RuntimeApi::start(FunctionId::named("my-function")).await;
/// // A real function binary would poll the Runtime API; this one prints its
/// // environment and exits.
/// let output = FunctionCommand::new(&api, "/usr/bin/env")
///     .env("GREETING", "hello")
///     .spawn()
///     .wait_for_exit(Duration::from_secs(10))
///     .await;
/// assert!(output.status.success());
/// assert!(output.stdout.contains(&"AWS_LAMBDA_FUNCTION_NAME=my-function".to_owned()));
/// assert!(output.stdout.contains(&"GREETING=hello".to_owned()));
/// # }
/// ```
#[derive(Clone)]
pub struct FunctionCommand {
    program: PathBuf,
    env: BTreeMap<String, String>,
    /// The emulator, and the address of its shared listener.
    api: (Arc<Shared>, String),
}

impl FunctionCommand {
    /// `program`, as Lambda would run the function `api` serves.
    pub fn new(api: &RuntimeApi, program: impl Into<PathBuf>) -> Self {
        let function = &api.shared.function;
        let (name, region) = (&function.name, &function.account.region);
        let env = [
            ("AWS_LAMBDA_RUNTIME_API", api.address()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2025/11/26/[$LATEST]0123456789abcdef0123456789abcdef".to_owned(),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
            ("AWS_REGION", region.clone()),
            ("AWS_DEFAULT_REGION", region.clone()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
            ("AWS_ENDPOINT_URL_LAMBDA", api.url()),
            ("TZ", ":UTC".to_owned()),
        ];
        Self {
            program: program.into(),
            env: env
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
            api: (api.shared.clone(), api.address()),
        }
    }

    /// Sets (or replaces) one variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Runs another executable in the same environment.
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// Leaves one variable out.
    pub fn without_env(mut self, name: &str) -> Self {
        self.env.remove(name);
        self
    }

    /// Starts the binary; it is killed when the returned handle is dropped.
    /// Pointed at the emulator, it polls a listener of its own.
    pub fn spawn(self) -> FunctionProcess {
        let (shared, shared_address) = &self.api;
        let kill = Arc::new(Notify::new());
        let mut env = self.env.clone();
        let instance = match env.get("AWS_LAMBDA_RUNTIME_API") {
            Some(address) if address == shared_address => {
                let (instance, address) = open_instance(shared, kill.clone());
                env.insert("AWS_LAMBDA_RUNTIME_API".to_owned(), address);
                Some(instance)
            }
            _ => None,
        };
        let spawned = tokio::process::Command::new(&self.program)
            .env_clear()
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) => {
                if let Some(instance) = instance
                    && let Some(process) = lock(&shared.instances).remove(&instance)
                {
                    process.server.abort();
                }
                panic!("start the function binary: {err}");
            }
        };
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            capture(child.stdout.take().expect("stdout pipe"), stdout.clone()),
            capture(child.stderr.take().expect("stderr pipe"), stderr.clone()),
        ];
        let pid = child.id();
        let (exited, exit) = tokio::sync::watch::channel(None);
        let weak = Arc::downgrade(shared);
        let killed = kill.clone();
        // Owns the child: ends it when asked (by the test, or by the
        // emulator at a deadline), and tells the emulator when it has ended.
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                () = killed.notified() => {
                    // It may have exited already; wait() reports how.
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let status = status.expect("wait for the function binary");
            if let (Some(instance), Some(shared)) = (instance, weak.upgrade()) {
                shared.instance_exited(instance, status);
            }
            let _ = exited.send(Some(status));
        });
        FunctionProcess {
            pid,
            kill,
            exit,
            stdout,
            stderr,
            readers,
        }
    }
}

fn capture(
    stream: impl AsyncRead + Unpin + Send + 'static,
    lines: Arc<Mutex<Vec<String>>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            lock(&lines).push(line);
        }
    })
}

/// The running binary and what it has printed.
pub struct FunctionProcess {
    pid: Option<u32>,
    /// Asks the task that owns the child to kill it.
    kill: Arc<Notify>,
    /// `Some` once the process has ended.
    exit: tokio::sync::watch::Receiver<Option<ExitStatus>>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

/// Everything a process printed, once it has ended.
#[derive(Debug)]
pub struct ProcessOutput {
    pub status: ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        self.kill.notify_one();
    }
}

impl FunctionProcess {
    /// The process id, while it runs.
    pub fn id(&self) -> Option<u32> {
        self.exit.borrow().is_none().then_some(self.pid).flatten()
    }

    /// The stdout lines read so far (the function's logs).
    pub fn stdout_lines(&self) -> Vec<String> {
        lock(&self.stdout).clone()
    }

    /// The stderr lines read so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        lock(&self.stderr).clone()
    }

    /// Kills the process (SIGKILL) and returns at once, as a crash would end
    /// it: whatever invocation it holds fails with `Runtime.ExitError`.
    pub fn kill(&self) {
        self.kill.notify_one();
    }

    /// Waits until the process has ended, however.
    async fn ended(&mut self) -> ExitStatus {
        let status = self
            .exit
            .wait_for(Option::is_some)
            .await
            .expect("the task that owns the function binary");
        status.expect("an exit status")
    }

    /// Waits for the process to exit on its own (failing the test after
    /// `timeout`) and returns all it printed.
    pub async fn wait_for_exit(mut self, timeout: Duration) -> ProcessOutput {
        let status = match tokio::time::timeout(timeout, self.ended()).await {
            Ok(status) => status,
            Err(_) => panic!(
                "the function binary still runs after {timeout:?}; stdout: {:?}, stderr: {:?}",
                self.stdout_lines(),
                self.stderr_lines()
            ),
        };
        self.collect(status).await
    }

    /// Kills the process and returns all it printed, to the last line.
    pub async fn stop(mut self) -> ProcessOutput {
        self.kill.notify_one();
        let status = self.ended().await;
        self.collect(status).await
    }

    async fn collect(mut self, status: ExitStatus) -> ProcessOutput {
        for reader in self.readers.drain(..) {
            // A reader ends at EOF, which follows the exit.
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        ProcessOutput {
            status,
            stdout: self.stdout_lines(),
            stderr: self.stderr_lines(),
        }
    }
}
