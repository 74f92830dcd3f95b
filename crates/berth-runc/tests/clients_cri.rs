//! Kubernetes' path: containerd's CRI plugin (Debian's containerd 1.6) with berth-runc as the
//! runc binary of its `io.containerd.runc.v2` runtime, driven through the CRI gRPC API as the
//! kubelet drives it: RunPodSandbox, CreateContainer, StartContainer, ExecSync, the log file,
//! ContainerStats, UpdateContainerResources, StopContainer, RemoveContainer, StopPodSandbox,
//! RemovePodSandbox.
//!
//! This is what needs `kill --all` to succeed on a stopped container (the shim sends it after
//! every exit) and `update` to leave the device rules alone (containerd sends its deny-all
//! rule back with every update).
//!
//! containerd runs in a network and mount namespace of its own (testkit's `Isolated`) with its
//! own config, root, state, socket and runc root; the pod's cgroup parent lies beneath the
//! test's cgroup; the images (a sandbox image that sleeps, busybox) are imported with
//! `ctr -n k8s.io images import`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::isolated::Isolated;
use berth_testkit::{CgroupParent, busybox_rootfs, images, unique};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::{Channel, Endpoint, Uri};

const SANDBOX_IMAGE: &str = "berth.test/pause:1";
const IMAGE: &str = "berth.test/busybox:1";
const NS: &str = "k8s.io";

// Dropped in this order: the daemon, then its cgroups, then its directories.
struct Containerd {
    daemon: Isolated,
    cgroup: CgroupParent,
    dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Containerd {
        assert!(
            berth_testkit::is_root(),
            "the client tests must run as root"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-cri-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let cgroup = CgroupParent::new(&unique("cri"));
        let p = |s: &str| d.join(s).display().to_string();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox}"
  # The sandbox asks for oomScoreAdj -998; root here lacks CAP_SYS_RESOURCE to lower it.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "berth"
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.berth.options]
        BinaryName = "{runc}"
        Root = "{runc_root}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni}/bin"
    conf_dir = "{cni}/conf"
"#,
            root = p("root"),
            state = p("state"),
            sock = p("containerd.sock"),
            opt = p("opt"),
            sandbox = SANDBOX_IMAGE,
            runc = common::runc_bin().display(),
            runc_root = p("runc"),
            cni = p("cni"),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let config_path = p("config.toml");
        let daemon = Isolated::start(
            &["containerd", "--config", &config_path],
            &[],
            &d.join("containerd.log"),
        );
        let mut c = Containerd {
            daemon,
            cgroup,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !c.ctr(&["version"]).status.success() {
            assert!(
                c.daemon.running() && Instant::now() < deadline,
                "containerd did not come up: {}",
                c.daemon.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.sock())
            .args(["-n", NS])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running ctr")
    }

    /// An image of the busybox fixture running `cmd`, named `name:tag`, imported for the CRI.
    fn import(&self, name: &str, tag: &str, cmd: &[&str]) {
        let layout = self.dir.path().join(format!("layout-{tag}-{}", cmd.len()));
        images::oci_layout(&layout, tag, &busybox_rootfs(), cmd);
        let tar = layout.with_extension("tar");
        std::fs::write(&tar, images::tar_dir(&layout)).unwrap();
        let o = self.ctr(&[
            "images",
            "import",
            "--base-name",
            name,
            tar.to_str().unwrap(),
        ]);
        assert!(
            o.status.success(),
            "ctr import: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let list = self.ctr(&["images", "list", "-q"]);
        let list = String::from_utf8_lossy(&list.stdout);
        assert!(
            list.lines().any(|l| l == format!("{name}:{tag}")),
            "{name}:{tag} not imported: {list}"
        );
    }

    /// berth-runc's state directories under the runtime's root.
    fn runtime_states(&self) -> Vec<PathBuf> {
        let ns = self.dir.path().join("runc").join(NS);
        std::fs::read_dir(ns)
            .into_iter()
            .flatten()
            .flatten()
            // The runtime's seccomp program cache is not a container.
            .filter(|e| e.file_name() != "@seccomp")
            .map(|e| e.path())
            .collect()
    }

    /// The host-side cgroup file of a container (or sandbox) beneath the pod's parent.
    fn cgroup_file(&self, id: &str, controller: &str, file: &str) -> String {
        let rel = format!("{}/{id}", self.cgroup.path.trim_start_matches('/'));
        let v1 = Path::new("/sys/fs/cgroup").join(controller).join(&rel);
        let dir = if v1.is_dir() {
            v1
        } else {
            Path::new("/sys/fs/cgroup").join(&rel)
        };
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
            .trim()
            .to_string()
    }
}

async fn connect(sock: PathBuf) -> RuntimeServiceClient<Channel> {
    let channel = Endpoint::try_from("http://[::]:0")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let sock = sock.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(sock).await?))
            }
        }))
        .await
        .expect("connecting to containerd's CRI");
    RuntimeServiceClient::new(channel)
}

/// A CRI call's result, or a panic naming the call and containerd's end of log.
fn ok<T>(what: &str, r: Result<tonic::Response<T>, tonic::Status>, c: &Containerd) -> T {
    match r {
        Ok(r) => r.into_inner(),
        Err(e) => {
            let log = c.daemon.log();
            let lines: Vec<&str> = log.lines().collect();
            panic!(
                "{what}: {e}\ncontainerd's log (end):\n{}",
                lines[lines.len().saturating_sub(40)..].join("\n")
            )
        }
    }
}

async fn exec_sync(
    rt: &mut RuntimeServiceClient<Channel>,
    c: &Containerd,
    id: &str,
    script: &str,
) -> (i32, String, String) {
    let r = ok(
        "ExecSync",
        rt.exec_sync(ExecSyncRequest {
            container_id: id.into(),
            cmd: vec!["sh".into(), "-c".into(), script.into()],
            timeout: 30,
        })
        .await,
        c,
    );
    (
        r.exit_code,
        String::from_utf8_lossy(&r.stdout).into_owned(),
        String::from_utf8_lossy(&r.stderr).into_owned(),
    )
}

async fn pod_lifecycle(c: &Containerd) {
    let mut rt = connect(c.sock()).await;
    let logs = c.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let name = unique("pod");
    let sandbox_config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.clone(),
            uid: name.clone(),
            namespace: "default".into(),
            attempt: 0,
        }),
        // No hostname: a pod on the node's network shares its UTS namespace too (as the kubelet
        // leaves it empty for host-network pods).
        log_directory: logs.display().to_string(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: c.cgroup.path.clone(),
            security_context: Some(LinuxSandboxSecurityContext {
                // The pod uses containerd's network namespace (no CNI needed): it is the test's
                // own already.
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    pid: NamespaceMode::Pod as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = ok(
        "RunPodSandbox",
        rt.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(sandbox_config.clone()),
            runtime_handler: "berth".into(),
        })
        .await,
        c,
    )
    .pod_sandbox_id;

    let ctr = ok(
        "CreateContainer",
        rt.create_container(CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: "main".into(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: IMAGE.into(),
                    ..Default::default()
                }),
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo hello from the pod; exec sleep 1000".into(),
                ],
                log_path: "main.log".into(),
                linux: Some(LinuxContainerConfig {
                    resources: Some(LinuxContainerResources {
                        memory_limit_in_bytes: 64 << 20,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            sandbox_config: Some(sandbox_config.clone()),
        })
        .await,
        c,
    )
    .container_id;
    ok(
        "StartContainer",
        rt.start_container(StartContainerRequest {
            container_id: ctr.clone(),
        })
        .await,
        c,
    );
    // Both run on berth-runc: its state directories, in berth's format.
    let states = c.runtime_states();
    for id in [&pod, &ctr] {
        let s = states
            .iter()
            .find(|s| s.ends_with(id))
            .unwrap_or_else(|| panic!("no berth-runc state for {id}: {states:?}"));
        let saved = std::fs::read_to_string(s.join("state.json")).unwrap();
        assert!(saved.contains("\"phase\""), "{saved}");
    }

    let (code, out, err) =
        exec_sync(&mut rt, c, &ctr, "echo exec ok; cat /proc/1/comm; exit 3").await;
    // Pid 1 of the pod's pid namespace is the sandbox's process.
    assert_eq!((code, out.as_str()), (3, "exec ok\nsleep\n"), "{err}");

    // The log file, in the CRI's format: "<time> stdout F <line>".
    let log = logs.join("main.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.ends_with(" stdout F hello from the pod"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "log {}: {text:?}", log.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let stats = ok(
        "ContainerStats",
        rt.container_stats(ContainerStatsRequest {
            container_id: ctr.clone(),
        })
        .await,
        c,
    )
    .stats
    .expect("stats");
    let mem = stats.memory.expect("memory stats");
    assert!(
        mem.working_set_bytes.is_some_and(|v| v.value > 0),
        "{mem:?}"
    );
    assert!(stats.cpu.is_some());

    // Update: containerd sends the spec's device rules (deny-all) with the new limit.
    ok(
        "UpdateContainerResources",
        rt.update_container_resources(UpdateContainerResourcesRequest {
            container_id: ctr.clone(),
            linux: Some(LinuxContainerResources {
                memory_limit_in_bytes: 48 << 20,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await,
        c,
    );
    let limit = if Path::new("/sys/fs/cgroup/memory").is_dir() {
        c.cgroup_file(&ctr, "memory", "memory.limit_in_bytes")
    } else {
        c.cgroup_file(&ctr, "memory", "memory.max")
    };
    assert_eq!(limit, (48u64 << 20).to_string());
    let (code, out, err) = exec_sync(
        &mut rt,
        c,
        &ctr,
        "echo x > /dev/null && exec 3<>/dev/ptmx && echo devices ok",
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "devices ok\n"), "{err}");

    // Stop: the shim kills, waits for the exit, then sends `kill --all ID 9` (must succeed).
    ok(
        "StopContainer",
        rt.stop_container(StopContainerRequest {
            container_id: ctr.clone(),
            timeout: 2,
        })
        .await,
        c,
    );
    let status = ok(
        "ContainerStatus",
        rt.container_status(ContainerStatusRequest {
            container_id: ctr.clone(),
            verbose: false,
        })
        .await,
        c,
    )
    .status
    .expect("status");
    assert_eq!(status.state, ContainerState::ContainerExited as i32);
    ok(
        "RemoveContainer",
        rt.remove_container(RemoveContainerRequest {
            container_id: ctr.clone(),
        })
        .await,
        c,
    );
    ok(
        "StopPodSandbox",
        rt.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await,
        c,
    );
    ok(
        "RemovePodSandbox",
        rt.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await,
        c,
    );
    let left = ok(
        "ListContainers",
        rt.list_containers(ListContainersRequest::default()).await,
        c,
    );
    assert!(left.containers.is_empty(), "{left:?}");
    let left = ok(
        "ListPodSandbox",
        rt.list_pod_sandbox(ListPodSandboxRequest::default()).await,
        c,
    );
    assert!(left.items.is_empty(), "{left:?}");
}

#[test]
fn cri_pod_and_container_lifecycle_on_berth_runc() {
    let mut c = Containerd::start();
    c.import("berth.test/pause", "1", &["sleep", "2147483647"]);
    c.import("berth.test/busybox", "1", &["sh"]);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(pod_lifecycle(&c));

    // Nothing is left: no shim, container or cgroup, no berth-runc state.
    let states = c.runtime_states();
    assert!(states.is_empty(), "berth-runc state left: {states:?}");
    let procs = c.cgroup.processes();
    assert!(procs.is_empty(), "pod processes left: {procs:?}");
    let cgroups = c.cgroup.children();
    assert!(cgroups.is_empty(), "pod cgroups left: {cgroups:?}");
    assert!(
        c.daemon.stop(Duration::from_secs(30)),
        "containerd did not stop on SIGTERM"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.daemon.leftovers().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = c.daemon.leftovers();
    assert!(left.is_empty(), "processes left by containerd: {left:?}");
}
