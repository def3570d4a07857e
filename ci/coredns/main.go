// CoreDNS with only the plugins the sandbox's cluster DNS uses, built the way CoreDNS documents
// for a reduced plugin set ("compile-time enabling or disabling plugins"): the default build pulls
// in the cloud SDKs of route53, azure and clouddns, minutes of compile time for nothing here.
package main

import (
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
)

// The order of core/dnsserver/zdirectives.go, restricted to the plugins above.
var directives = []string{"bind", "ready", "health", "errors", "log", "cache", "template", "kubernetes"}

func init() { dnsserver.Directives = directives }

func main() { coremain.Run() }
