// A stand-in for the k3s server of the vcluster chart KubeFlex installs (rancher/k3s, which cannot be
// had here): `k3s server` runs a space's control plane as one container, as k3s does, from the
// pinned Kubernetes binaries in this image: etcd (k3s keeps its state in sqlite), kube-apiserver and
// kube-controller-manager.
//
// As k3s, it makes the API server's serving certificate when it starts, for the names and addresses
// of --tls-san (a Service's ClusterIP is known only then), signed by the cluster CA (--ca-cert,
// --ca-key), written to --serving-cert and --serving-key. The components' flags follow, after
// `--etcd`, `--apiserver` and `--controller-manager` markers. When one of them ends, so does the
// container, and the kubelet restarts it: the state stays in the data volume.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

var binaries = map[string]string{"--etcd": "/bin/etcd", "--apiserver": "/bin/kube-apiserver",
	"--controller-manager": "/bin/kube-controller-manager"}

type options struct {
	sans                                   []string
	caCert, caKey, servingCert, servingKey string
}

func main() {
	if len(os.Args) < 2 || os.Args[1] != "server" {
		log.Fatalf("usage: k3s server [--tls-san=NAME]... --ca-cert=F --ca-key=F --serving-cert=F --serving-key=F " +
			"--etcd ARGS... --apiserver ARGS... --controller-manager ARGS...")
	}
	var opts options
	order, args := []string{}, map[string][]string{}
	current := ""
	for _, arg := range os.Args[2:] {
		if _, ok := binaries[arg]; ok {
			current = arg
			order = append(order, arg)
			continue
		}
		if current != "" {
			args[current] = append(args[current], arg)
			continue
		}
		name, value, _ := strings.Cut(arg, "=")
		switch name {
		case "--tls-san":
			// An unset variable stays $(NAME) in the pod's args: not a name to certify.
			if value != "" && !strings.HasPrefix(value, "$(") {
				opts.sans = append(opts.sans, value)
			}
		case "--ca-cert":
			opts.caCert = value
		case "--ca-key":
			opts.caKey = value
		case "--serving-cert":
			opts.servingCert = value
		case "--serving-key":
			opts.servingKey = value
		default:
			log.Fatalf("unknown option %q before a component", arg)
		}
	}
	if err := servingCertificate(opts); err != nil {
		log.Fatalf("k3s: serving certificate: %v", err)
	}
	os.Exit(run(order, args))
}

func servingCertificate(opts options) error {
	pair, err := tls.LoadX509KeyPair(opts.caCert, opts.caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return err
	}
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    time.Now().Add(-5 * time.Minute),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, san := range opts.sans {
		if ip := net.ParseIP(san); ip != nil {
			template.IPAddresses = append(template.IPAddresses, ip)
		} else {
			template.DNSNames = append(template.DNSNames, san)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, pair.PrivateKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(opts.servingCert), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(opts.servingKey, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	log.Printf("k3s: serving certificate for %s", strings.Join(opts.sans, ", "))
	return os.WriteFile(opts.servingCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func run(order []string, args map[string][]string) int {
	ended := make(chan string, len(order))
	var children []*exec.Cmd
	for i, component := range order {
		cmd := exec.Command(binaries[component], args[component]...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			log.Fatalf("%s: %v", binaries[component], err)
		}
		children = append(children, cmd)
		go func(name string, cmd *exec.Cmd) {
			err := cmd.Wait()
			ended <- fmt.Sprintf("%s ended: %v", name, err)
		}(binaries[component], cmd)
		if i == 0 && component == "--etcd" {
			time.Sleep(time.Second) // etcd's port opens within a second; the API server retries anyway
		}
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	code, running := 0, len(children)
	select {
	case sig := <-signals:
		log.Printf("k3s: %v: stopping", sig)
	case why := <-ended:
		log.Printf("k3s: %s: stopping the others", why)
		code, running = 1, running-1
	}
	for _, cmd := range children {
		_ = cmd.Process.Signal(syscall.SIGTERM) // one that has ended ignores it
	}
	deadline := time.After(10 * time.Second)
	for ; running > 0; running-- {
		select {
		case <-ended:
		case <-deadline:
			return code
		}
	}
	return code
}
