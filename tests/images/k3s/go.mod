module local.build/k3s

go 1.24
