module local.build/kube-rbac-proxy

go 1.24
