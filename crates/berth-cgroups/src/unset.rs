//! Values that mean "not set".
//!
//! The OCI resources are Go structs in runc, where an absent value and zero look alike, and the
//! clients rely on it: dockerd sends `blockIO.weight: 0` and `cpu.shares: 0` for every container
//! the user gave no weight or shares, `runc update` fills every field it is not given with 0,
//! and containerd's CRI plugin sends zeros for every limit a pod does not set. runc's fs and fs2
//! drivers skip a zero (they write only `!= 0`, and `!= ""` for cpusets), so zero is "unset", not
//! a request for a zero limit. [`effective`] drops those values before anything is applied; what
//! remains is checked and written as given.

use oci_spec::runtime::{
    LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxNetwork, LinuxResources, LinuxWeightDevice,
    LinuxWeightDeviceBuilder,
};

fn nonzero_i64(v: Option<i64>) -> Option<i64> {
    v.filter(|&v| v != 0)
}

fn nonzero_u64(v: Option<u64>) -> Option<u64> {
    v.filter(|&v| v != 0)
}

fn nonzero_u16(v: Option<u16>) -> Option<u16> {
    v.filter(|&v| v != 0)
}

/// `r` without the values runc treats as unset; a group left with nothing is dropped whole, so
/// a host without that controller is not asked for it.
#[allow(deprecated)]
pub(crate) fn effective(r: &LinuxResources) -> LinuxResources {
    let mut out = r.clone();
    out.set_memory(
        r.memory()
            .map(memory)
            .filter(|m| *m != LinuxMemory::default()),
    );
    out.set_cpu(
        r.cpu()
            .as_ref()
            .map(cpu)
            .filter(|c| *c != LinuxCpu::default()),
    );
    // pids.limit 0 is unset; a negative limit is "max".
    out.set_pids(r.pids().filter(|p| p.limit() != 0));
    out.set_block_io(
        r.block_io()
            .as_ref()
            .map(block_io)
            .filter(|b| *b != LinuxBlockIo::default()),
    );
    out.set_network(
        r.network()
            .as_ref()
            .map(network)
            .filter(|n| *n != LinuxNetwork::default()),
    );
    out
}

#[allow(deprecated)]
fn memory(m: LinuxMemory) -> LinuxMemory {
    let mut out = m;
    out.set_limit(nonzero_i64(m.limit()))
        .set_reservation(nonzero_i64(m.reservation()))
        .set_swap(nonzero_i64(m.swap()))
        .set_kernel(nonzero_i64(m.kernel()))
        .set_kernel_tcp(nonzero_i64(m.kernel_tcp()))
        // Go's -1 in a uint64: "leave swappiness alone".
        .set_swappiness(m.swappiness().filter(|&v| v != u64::MAX))
        // runc only ever writes the switch on; false leaves the kernel's default.
        .set_disable_oom_killer(m.disable_oom_killer().filter(|&v| v))
        .set_use_hierarchy(m.use_hierarchy().filter(|&v| v))
        .set_check_before_update(m.check_before_update().filter(|&v| v));
    out
}

fn cpu(c: &LinuxCpu) -> LinuxCpu {
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
    let mut out = c.clone();
    out.set_shares(nonzero_u64(c.shares()))
        .set_quota(nonzero_i64(c.quota()))
        .set_period(nonzero_u64(c.period()))
        .set_realtime_runtime(nonzero_i64(c.realtime_runtime()))
        .set_realtime_period(nonzero_u64(c.realtime_period()))
        .set_cpus(nonempty(c.cpus()))
        .set_mems(nonempty(c.mems()));
    out
}

/// A weight device without its zero weights; None when neither weight is left.
fn weight_device(d: &LinuxWeightDevice) -> Option<LinuxWeightDevice> {
    let (weight, leaf) = (nonzero_u16(d.weight()), nonzero_u16(d.leaf_weight()));
    if weight.is_none() && leaf.is_none() {
        return None;
    }
    let mut b = LinuxWeightDeviceBuilder::default()
        .major(d.major())
        .minor(d.minor());
    if let Some(w) = weight {
        b = b.weight(w);
    }
    if let Some(w) = leaf {
        b = b.leaf_weight(w);
    }
    b.build().ok()
}

fn block_io(b: &LinuxBlockIo) -> LinuxBlockIo {
    let devices: Vec<LinuxWeightDevice> = b
        .weight_device()
        .iter()
        .flatten()
        .filter_map(weight_device)
        .collect();
    let nonempty = |v: &Option<Vec<_>>| v.clone().filter(|v: &Vec<_>| !v.is_empty());
    let mut out = b.clone();
    out.set_weight(nonzero_u16(b.weight()))
        .set_leaf_weight(nonzero_u16(b.leaf_weight()))
        .set_weight_device((!devices.is_empty()).then_some(devices))
        .set_throttle_read_bps_device(nonempty(b.throttle_read_bps_device()))
        .set_throttle_write_bps_device(nonempty(b.throttle_write_bps_device()))
        .set_throttle_read_iops_device(nonempty(b.throttle_read_iops_device()))
        .set_throttle_write_iops_device(nonempty(b.throttle_write_iops_device()));
    out
}

fn network(n: &LinuxNetwork) -> LinuxNetwork {
    let mut out = n.clone();
    out.set_class_id(n.class_id().filter(|&v| v != 0))
        .set_priorities(n.priorities().clone().filter(|p| !p.is_empty()));
    out
}

#[cfg(test)]
mod tests {
    use super::effective;
    use oci_spec::runtime::LinuxResources;
    use serde_json::json;

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn dockerd_defaults_are_nothing() {
        // What dockerd 20.10 sends for `docker run busybox` (no limits given).
        let r = res(json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {"disableOOMKiller": false},
            "cpu": {"shares": 0},
            "blockIO": {"weight": 0},
            "pids": {"limit": 0}
        }));
        let e = effective(&r);
        assert!(e.memory().is_none(), "{e:?}");
        assert!(e.cpu().is_none(), "{e:?}");
        assert!(e.block_io().is_none(), "{e:?}");
        assert!(e.pids().is_none(), "{e:?}");
        assert_eq!(e.devices(), r.devices(), "devices are kept");
    }

    #[test]
    fn runc_update_zeros_are_nothing() {
        // `runc update --resources -` fills what it is not given with zeros and empty strings.
        let r = res(json!({
            "memory": {"limit": 0, "reservation": 0, "swap": 0, "kernel": 0, "kernelTCP": 0,
                       "swappiness": u64::MAX},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "realtimeRuntime": 0,
                    "realtimePeriod": 0, "cpus": "", "mems": ""},
            "blockIO": {"weight": 0, "leafWeight": 0,
                        "weightDevice": [{"major": 8, "minor": 0, "weight": 0, "leafWeight": 0}]},
            "network": {"classID": 0}
        }));
        let e = effective(&r);
        assert_eq!(e, LinuxResources::default(), "{e:?}");
    }

    #[test]
    fn set_values_are_kept() {
        let r = res(json!({
            "memory": {"limit": 4096, "swap": -1, "swappiness": 0, "disableOOMKiller": true},
            "cpu": {"shares": 512, "quota": -1, "cpus": "0"},
            "blockIO": {"weight": 500,
                        "weightDevice": [{"major": 8, "minor": 0, "weight": 0, "leafWeight": 20}]},
            "pids": {"limit": -1}
        }));
        let e = effective(&r);
        let m = e.memory().unwrap();
        assert_eq!(m.limit(), Some(4096));
        assert_eq!(m.swap(), Some(-1));
        assert_eq!(m.swappiness(), Some(0));
        assert_eq!(m.disable_oom_killer(), Some(true));
        let c = e.cpu().as_ref().unwrap();
        assert_eq!(c.shares(), Some(512));
        assert_eq!(c.quota(), Some(-1));
        assert_eq!(c.cpus().as_deref(), Some("0"));
        let b = e.block_io().as_ref().unwrap();
        assert_eq!(b.weight(), Some(500));
        let wd = b.weight_device().as_ref().unwrap();
        assert_eq!((wd[0].weight(), wd[0].leaf_weight()), (None, Some(20)));
        assert_eq!(e.pids().unwrap().limit(), -1);
    }
}
