package cluster

import (
	"fmt"
	"maps"
	"math"
	"path"
	"slices"
	"strings"
	"time"
)

// KubeletKnob is one KubeletConfiguration field a node may override.
type KubeletKnob struct {
	// Doc says what it is for and which values it takes.
	Doc   string
	check func(v any) error
}

// KubeletKnobs are the KubeletConfiguration fields (kubelet.config.k8s.io/v1beta1)
// that spec.nodeDefaults.kubelet and spec.nodes[].kubelet may set. Every
// other field is Ferry's: some are derived from the rest of the
// configuration (clusterDomain, featureGates, addresses), the others are
// fixed for security (see kubeletOwned).
var KubeletKnobs = map[string]KubeletKnob{
	"cgroupRoot": {Doc: "absolute cgroup path the kubelet puts pods under (/ by default); e.g. /NODE for systemd-nspawn machines, which must create it first",
		check: checkAbsPath},
	"cgroupDriver": {Doc: "systemd (default) or cgroupfs; containerd's systemdCgroup follows it",
		check: enum("systemd", "cgroupfs")},
	"cgroupsPerQOS":  {Doc: "true (default) or false: a cgroup per QoS class", check: isBool},
	"failCgroupV1":   {Doc: "false lets kubelet ≥ 1.35 run on cgroup v1 hosts (R15: v1 tolerated)", check: isBool},
	"failSwapOn":     {Doc: "false lets the kubelet start on a host with swap on", check: isBool},
	"maxPods":        {Doc: "pods per node, 1–10000 (default 110)", check: intRange(1, 10000)},
	"podPidsLimit":   {Doc: "process IDs per pod, -1 (no limit) or more", check: intRange(-1, math.MaxInt32)},
	"evictionHard":   {Doc: "hard eviction thresholds: signal → quantity or percentage ({memory.available: 100Mi, nodefs.available: 5%})", check: resourceMap(evictionSignals, true)},
	"evictionSoft":   {Doc: "soft eviction thresholds, like evictionHard (with evictionSoftGracePeriod)", check: resourceMap(evictionSignals, true)},
	"systemReserved": {Doc: "resources kept for the OS: {cpu: 500m, memory: 1Gi, ephemeral-storage: 1Gi, pid: 1000}", check: resourceMap(reservable, false)},
	"kubeReserved":   {Doc: "resources kept for Kubernetes daemons, like systemReserved", check: resourceMap(reservable, false)},
	"evictionSoftGracePeriod": {Doc: "signal → duration (1m30s) for evictionSoft",
		check: durationMap(evictionSignals)},
	"reservedSystemCPUs": {Doc: "CPUs kept from pods by the static CPU manager, a cpuset such as 0-1,6", check: matches(cpuSetRE, "a cpuset such as 0-1,6")},
	"cpuManagerPolicy":   {Doc: "none (default) or static (R55: exclusive CPUs for Guaranteed pods)", check: enum("none", "static")},
	"memoryManagerPolicy": {Doc: "None (default) or Static (R55)",
		check: enum("None", "Static")},
	"topologyManagerPolicy": {Doc: "none (default), best-effort, restricted or single-numa-node (R55)",
		check: enum("none", "best-effort", "restricted", "single-numa-node")},
	"topologyManagerScope":        {Doc: "container (default) or pod", check: enum("container", "pod")},
	"imageGCHighThresholdPercent": {Doc: "disk usage (0–100) that starts image garbage collection (default 85)", check: intRange(0, 100)},
	"imageGCLowThresholdPercent":  {Doc: "disk usage (0–100) image garbage collection frees down to (default 80); below the high threshold", check: intRange(0, 100)},
	"containerLogMaxSize":         {Doc: "size at which a container log rotates, a quantity such as 10Mi", check: matches(quantityRE, "a quantity such as 10Mi")},
	"containerLogMaxFiles":        {Doc: "rotated logs kept per container, 2 or more", check: intRange(2, 1000)},
	"serializeImagePulls":         {Doc: "true (default): pull one image at a time", check: isBool},
	"maxParallelImagePulls":       {Doc: "parallel image pulls when serializeImagePulls is false, 1 or more", check: intRange(1, 1000)},
	"protectKernelDefaults":       {Doc: "true: fail instead of changing kernel settings the kubelet needs", check: isBool},
}

// kubeletOwned are KubeletConfiguration fields Ferry sets itself, with the
// reason; naming one gets that reason instead of "unknown".
var kubeletOwned = map[string]string{
	"readOnlyPort":              "always 0: no unauthenticated port (R27)",
	"enableDebuggingHandlers":   "set by Ferry (R27)",
	"enableProfilingHandler":    "profiling is off (R27)",
	"enableContentionProfiling": "profiling is off (R27)",
	"authentication":            "client certificates and webhook token review only, no anonymous access (R22)",
	"authorization":             "always Webhook (R22)",
	"tlsCertFile":               "certificates are issued and rotated by Ferry (R21, R24)",
	"tlsPrivateKeyFile":         "certificates are issued and rotated by Ferry (R21, R24)",
	"tlsCipherSuites":           "set by Ferry (R21)",
	"tlsMinVersion":             "set by Ferry (R21)",
	"rotateCertificates":        "certificates are rotated by Ferry (R24)",
	"serverTLSBootstrap":        "certificates are issued by Ferry (R24)",
	"clusterDNS":                "derived from spec.kubernetes.serviceSubnet",
	"clusterDomain":             "set from spec.kubernetes.clusterDomain",
	"featureGates":              "set from spec.kubernetes.featureGates",
	"address":                   "the node's control-plane address (R31)",
	"healthzBindAddress":        "set by Ferry (R31)",
	"port":                      "set by Ferry",
	"staticPodPath":             "kubeadm's",
	"kind":                      "part of the generated file",
	"apiVersion":                "part of the generated file",
}

var (
	evictionSignals = []string{"memory.available", "nodefs.available", "nodefs.inodesFree", "imagefs.available", "imagefs.inodesFree", "containerfs.available", "containerfs.inodesFree", "pid.available", "allocatableMemory.available"}
	reservable      = []string{"cpu", "memory", "ephemeral-storage", "pid"}
)

// checkKubelet checks overrides at path (spec.nodeDefaults.kubelet, …).
func checkKubelet(p string, m map[string]any) []error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(m)) {
		kp := p + "." + k
		knob, ok := KubeletKnobs[k]
		switch {
		case !ok && kubeletOwned[k] != "":
			errs = append(errs, fieldErr(kp, "not overridable: %s", kubeletOwned[k]))
		case !ok:
			errs = append(errs, fieldErr(kp, "not a kubelet setting Ferry lets you override (allowed: %s)", strings.Join(slices.Sorted(maps.Keys(KubeletKnobs)), ", ")))
		default:
			if err := knob.check(m[k]); err != nil {
				errs = append(errs, fieldErr(kp, "%v", err))
			}
		}
	}
	return errs
}

// checkEffectiveKubelet checks what only the merged overrides can show.
func checkEffectiveKubelet(p string, m map[string]any) []error {
	hi, okHi := asInt(m["imageGCHighThresholdPercent"])
	lo, okLo := asInt(m["imageGCLowThresholdPercent"])
	if okHi && okLo && lo >= hi {
		return []error{fieldErr(p+".imageGCLowThresholdPercent", "%d must be below imageGCHighThresholdPercent (%d)", lo, hi)}
	}
	return nil
}

func isBool(v any) error {
	if _, ok := v.(bool); !ok {
		return fmt.Errorf("must be true or false, got %s", describe(v))
	}
	return nil
}

func enum(values ...string) func(any) error {
	return func(v any) error {
		s, ok := v.(string)
		if !ok || !slices.Contains(values, s) {
			return fmt.Errorf("must be one of %s, got %s", strings.Join(values, ", "), describe(v))
		}
		return nil
	}
}

func intRange(lo, hi int) func(any) error {
	return func(v any) error {
		n, ok := asInt(v)
		if !ok || n < lo || n > hi {
			return fmt.Errorf("must be a whole number from %d to %d, got %s", lo, hi, describe(v))
		}
		return nil
	}
}

func matches(re interface{ MatchString(string) bool }, what string) func(any) error {
	return func(v any) error {
		s, ok := v.(string)
		if !ok || !re.MatchString(s) {
			return fmt.Errorf("must be %s, got %s", what, describe(v))
		}
		return nil
	}
}

func checkAbsPath(v any) error {
	s, ok := v.(string)
	if !ok || !path.IsAbs(s) || path.Clean(s) != s {
		return fmt.Errorf("must be a clean absolute path such as /kubepods, got %s", describe(v))
	}
	return nil
}

// resourceMap checks {key: quantity} with keys from keys (and percentages
// when percent).
func resourceMap(keys []string, percent bool) func(any) error {
	return func(v any) error {
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("must be a mapping such as {%s: 1Gi}, got %s", keys[1], describe(v))
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !slices.Contains(keys, k) {
				return fmt.Errorf("%s: unknown key (want one of %s)", k, strings.Join(keys, ", "))
			}
			s, _ := m[k].(string)
			if n, isNum := asInt(m[k]); isNum && n >= 0 {
				continue // a plain number (pid: 1000)
			}
			if !quantityRE.MatchString(s) && (!percent || !percentRE.MatchString(s)) {
				what := "a quantity such as 1Gi"
				if percent {
					what += " or a percentage such as 10%"
				}
				return fmt.Errorf("%s: must be %s, got %s", k, what, describe(m[k]))
			}
		}
		return nil
	}
}

func durationMap(keys []string) func(any) error {
	return func(v any) error {
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("must be a mapping such as {memory.available: 1m30s}, got %s", describe(v))
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if !slices.Contains(keys, k) {
				return fmt.Errorf("%s: unknown key (want one of %s)", k, strings.Join(keys, ", "))
			}
			if d, ok := m[k].(string); !ok || !validDuration(d) {
				return fmt.Errorf("%s: must be a duration such as 1m30s, got %s", k, describe(m[k]))
			}
		}
		return nil
	}
}

func validDuration(s string) bool {
	d, err := time.ParseDuration(s)
	return err == nil && d >= 0
}

// asInt is v as a whole number (YAML numbers arrive as float64).
func asInt(v any) (int, bool) {
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) || f > math.MaxInt32 || f < math.MinInt32 {
		return 0, false
	}
	return int(f), true
}

// describe shows a value of the file in an error.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("%q", x)
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	return fmt.Sprint(v)
}
