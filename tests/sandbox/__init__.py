"""The local test sandbox: real etcd, kube-apiservers and kube-controller-manager, plus stand-ins
for what needs a kubelet (running pods) or an upstream operator (KubeFlex, OCM cluster-manager).

Nothing here is imported by the product code under hooks/.
"""
