"""Configuration files of the test node: containerd (CRI), CNI, the pods' resolv.conf.

The two CAP_SYS_RESOURCE workarounds of this machine are here: containerd's CRI plugin uses
`restrict_oom_score_adj` (the kubelet runs with `--oom-score-adj 0`, see node_cluster.py).
"""

from __future__ import annotations

import json
from pathlib import Path

POD_SUBNET = "10.88.0.0/24"
CNI_BRIDGE = "tf-cni0"
CNI_BIN_DIR = "/usr/lib/cni"


def containerd_config(work: Path, socket: Path, pause_image: str) -> Path:
    """containerd's config.toml: own root/state/socket, CRI with overlayfs, runc v2, CNI."""
    cni_conf = write_cni_config(work / "cni-conf", work / "cni-ipam")
    path = work / "containerd.toml"
    path.write_text(
        f"""version = 2
root = "{work / "containerd-root"}"
state = "{work / "containerd-state"}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  restrict_oom_score_adj = true
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{cni_conf}"
"""
    )
    return path


def write_cni_config(conf_dir: Path, ipam_dir: Path) -> Path:
    """A bridge network for pods (gateway on the bridge, host-local IPAM kept in ipam_dir)."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "cniVersion": "0.4.0",
        "name": "tuneforge-pods",
        "plugins": [
            {
                "type": "bridge",
                "bridge": CNI_BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    (conf_dir / "10-tuneforge.conflist").write_text(json.dumps(config, indent=2))
    return conf_dir


def resolv_conf(work: Path) -> Path:
    """The kubelet's --resolv-conf: no upstream servers (nothing outside is reachable)."""
    path = work / "resolv.conf"
    path.write_text("options ndots:5\n")
    return path
