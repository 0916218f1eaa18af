package nodeconfig

import (
	"encoding/json"
	"net/netip"
	"testing"
)

// TestCNIMTU: the bridge carries the host interface's MTU (R34), and the
// configuration is valid JSON with or without it.
func TestCNIMTU(t *testing.T) {
	for _, tc := range []struct {
		mtu, want int
	}{{9000, 9000}, {1450, 1450}, {0, 0}, {100, 0}} {
		content := BridgeCNI(netip.MustParsePrefix("10.244.1.0/24"), tc.mtu)
		var conf struct {
			Plugins []struct {
				Type string `json:"type"`
				MTU  int    `json:"mtu"`
			} `json:"plugins"`
		}
		if err := json.Unmarshal(content, &conf); err != nil {
			t.Fatalf("mtu %d: %v\n%s", tc.mtu, err, content)
		}
		if conf.Plugins[0].Type != "bridge" || conf.Plugins[0].MTU != tc.want {
			t.Errorf("host MTU %d: bridge %+v, want mtu %d", tc.mtu, conf.Plugins[0], tc.want)
		}
	}
}
