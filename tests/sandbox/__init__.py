"""The local test sandbox: a real single-node hosting cluster (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kubelet on containerd and runc, kube-proxy, CoreDNS) and a
registry, in a network namespace of its own; plus stand-ins for what upstream runs that cannot run
here: the KubeFlex operator's vcluster machinery, and the OCM hub in spaces that have no node.

Nothing here is imported by the product code under hooks/.
"""
