// A stand-in for quay.io/brancz/kube-rbac-proxy (the sidecar of KubeFlex's manager pod), whose module
// the Go module registry here does not serve: the same flags and contract. It serves TLS on
// --secure-listen-address with a self-signed certificate and forwards a request to --upstream only
// when the API server says its bearer token is valid (TokenReview) and may GET that path
// (SubjectAccessReview on the non-resource URL), as the real proxy does; it refuses everything else.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/big"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"
)

const serviceAccount = "/var/run/secrets/kubernetes.io/serviceaccount/"

func main() {
	listen := flag.String("secure-listen-address", ":8443", "")
	upstream := flag.String("upstream", "", "")
	flag.Bool("logtostderr", true, "")
	flag.Int("v", 0, "")
	flag.Parse()
	target, err := url.Parse(*upstream)
	if err != nil || *upstream == "" {
		log.Fatalf("--upstream: %v", err)
	}
	api, err := inCluster()
	if err != nil {
		log.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if token == "" || token == r.Header.Get("Authorization") {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		user, ok := api.authenticate(token)
		if !ok {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		if !api.authorize(user, r.URL.Path) {
			http.Error(w, "Forbidden", http.StatusForbidden)
			return
		}
		proxy.ServeHTTP(w, r)
	})
	cert, err := selfSigned()
	if err != nil {
		log.Fatal(err)
	}
	server := &http.Server{Addr: *listen, Handler: handler, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	log.Printf("listening on %s, forwarding to %s", *listen, *upstream)
	log.Fatal(server.ListenAndServeTLS("", ""))
}

type client struct {
	base  string
	token string
	http  *http.Client
}

func inCluster() (*client, error) {
	token, err := os.ReadFile(serviceAccount + "token")
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(serviceAccount + "ca.crt")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	host := os.Getenv("KUBERNETES_SERVICE_HOST") + ":" + os.Getenv("KUBERNETES_SERVICE_PORT")
	return &client{base: "https://" + host, token: strings.TrimSpace(string(token)),
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}, nil
}

func (c *client) post(path string, body map[string]any) (map[string]any, error) {
	data, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, c.base+path, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s: %s", path, resp.Status)
	}
	var out map[string]any
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

func (c *client) authenticate(token string) (map[string]any, bool) {
	review, err := c.post("/apis/authentication.k8s.io/v1/tokenreviews", map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": map[string]any{"token": token}})
	if err != nil {
		log.Print(err)
		return nil, false
	}
	status, _ := review["status"].(map[string]any)
	user, _ := status["user"].(map[string]any)
	authenticated, _ := status["authenticated"].(bool)
	return user, authenticated
}

func (c *client) authorize(user map[string]any, path string) bool {
	review, err := c.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", map[string]any{
		"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
		"spec": map[string]any{"user": user["username"], "groups": user["groups"], "uid": user["uid"],
			"nonResourceAttributes": map[string]any{"path": path, "verb": "get"}}})
	if err != nil {
		log.Print(err)
		return false
	}
	status, _ := review["status"].(map[string]any)
	allowed, _ := status["allowed"].(bool)
	return allowed
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	template := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kube-rbac-proxy"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
