package layout

import (
	"net"
	"strconv"
	"testing"

	"github.com/ferry-k8s/ferry/installer/cluster"
)

// The proxy's address is spelled here as a constant; its port is
// cluster's.
func TestAPIProxyPort(t *testing.T) {
	_, port, err := net.SplitHostPort(APIProxyListen)
	if err != nil {
		t.Fatal(err)
	}
	if port != strconv.Itoa(cluster.APIProxyPort) {
		t.Errorf("APIProxyListen %s, cluster.APIProxyPort %d", APIProxyListen, cluster.APIProxyPort)
	}
}
